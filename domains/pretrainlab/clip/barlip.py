"""BarLIP (Fini et al. 2023, Sec. 3 "baselines"; a port of the reference ``losses.BarLIPLoss``):
Barlow Twins (Zbontar et al. 2021) ACROSS modalities, between the image and text projections of the
global pair and of every (augmented image, augmented text) pair, averaged over the ``1 + A^2`` pairs
and added to the CLIP-rocket loss.

Projector (ref ``models.BARLIP``): Linear-BN-ReLU, Linear-BN-ReLU (hidden 3000), Linear (8192), BN
(affine). The loss takes the projector outputs as they are (its last BN standardises them; no
extra normalisation): ``C = z1^T z2 / N`` (all-reduced and averaged over ranks), ``(C - I)^2`` with
the off-diagonal terms weighted by lambda = 5e-3, summed, times 0.025.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from pretrainlab.core.distributed import is_distributed, world_size
from pretrainlab.core.losses._precision import float32_loss


@float32_loss
def barlip_pair_loss(z1: Tensor, z2: Tensor, lambd: float = 5e-3, scale: float = 0.025) -> Tensor:
    """ref ``BarLIPLoss.barlip_loss`` on ``(N, D)`` projector outputs."""
    z1, z2 = z1.float(), z2.float()
    n, d = z1.shape
    corr = torch.einsum("bi,bj->ij", z1, z2) / n
    if is_distributed():  # ref: dist.all_reduce(corr) / world (in place: the value is averaged, the
        avg = corr.detach().clone()  # gradient stays this rank's)
        dist.all_reduce(avg)
        corr = corr + (avg / world_size() - corr.detach())
    diag = torch.eye(d, device=corr.device)
    cdif = (corr - diag).pow(2)
    weight = torch.where(diag.bool(), torch.ones_like(cdif), torch.full_like(cdif, lambd))
    return scale * (cdif * weight).sum()


def barlip_loss(v_image: Tensor, v_text: Tensor, v_images_aug: Sequence[Tensor], v_texts_aug: Sequence[Tensor],
                lambd: float = 5e-3, scale: float = 0.025) -> Tensor:
    """Mean over the global pair and all augmented (image, text) pairs; ``(B, D)`` inputs."""
    terms = [barlip_pair_loss(v_image, v_text, lambd, scale)]
    terms += [barlip_pair_loss(vi, vt, lambd, scale) for vi in v_images_aug for vt in v_texts_aug]
    return torch.stack(terms).mean()
