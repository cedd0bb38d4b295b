"""BYOLIP / SiamLIP (Fini et al. 2023, Sec. 3 "baselines"; a port of the reference
``losses.SiamLIPLoss`` with ``models.SIAMLIP``): a SimSiam / BYOL regression ACROSS modalities. The
image prediction regresses the text projection (and vice versa) for the global pair and every
(augmented image, augmented text) pair; ``2 - 2 cos(p, v.detach())`` averaged over the
``2 + 2 A^2`` terms and added to the CLIP-rocket loss.

Targets: BYOLIP (ref ``--momentum``) takes ``v`` from a momentum copy of the whole model updated after
every step with a CONSTANT ``tau = 0.99`` (``p_mom = tau p_mom + (1 - tau) p``; ref ``main.train``);
SiamLIP (``method.momentum_target: false``) takes the online ``v``, detached. Projector: Linear(no
bias)-BN-ReLU-Linear(no bias) + BN(affine=False), 2048 -> 128; predictor Linear(no bias)-BN-ReLU-Linear.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pretrainlab.core.losses._precision import float32_loss


@float32_loss
def negative_cosine(p: Tensor, v: Tensor) -> Tensor:
    """ref ``SiamLIPLoss.negative_cosine_similarity``: ``2 - 2 * mean_b cos(p_b, v_b)`` with ``v`` detached."""
    p = F.normalize(p.float(), dim=-1)
    v = F.normalize(v.detach().float(), dim=-1)
    return 2 - 2 * (p * v).sum(dim=1).mean()


def byolip_loss(p_image: Tensor, p_text: Tensor, v_image: Tensor, v_text: Tensor,
                p_images_aug: Sequence[Tensor], p_texts_aug: Sequence[Tensor],
                v_images_aug: Sequence[Tensor], v_texts_aug: Sequence[Tensor]) -> Tensor:
    """Mean of ``2 - 2 cos`` between each prediction and the other modality's target (all ``(B, D)``)."""
    terms = [negative_cosine(p_image, v_text), negative_cosine(p_text, v_image)]
    terms += [negative_cosine(p, v) for p in p_images_aug for v in v_texts_aug]
    terms += [negative_cosine(p, v) for p in p_texts_aug for v in v_images_aug]
    return torch.stack(terms).mean()
