"""BarLIP (Fini et al. 2023, Sec. 3 "baselines"; reference ``losses.BarLIPLoss``): Barlow Twins
(Zbontar et al. 2021) applied ACROSS modalities, between image and text projections of the global
pair and of every (augmented image, augmented text) pair, averaged over the ``1 + A^2`` pairs,
added to the CLIP-rocket loss. Projector: 3 layers of 8192 with BN (last layer BN too);
lambda = 5e-3, loss scale 0.025.

Deviation: the core's loss standardises each side along the batch (BatchNorm without affine),
the reference feeds the projector's BN output directly (affine BN); same at initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from pretrainlab.core.losses import barlow_twins_loss


def barlip_loss(v_image: Tensor, v_text: Tensor, v_images_aug: Sequence[Tensor], v_texts_aug: Sequence[Tensor],
                lambd: float = 5e-3, scale: float = 0.025) -> Tensor:
    """Mean Barlow Twins loss over the global pair and all augmented (image, text) pairs; ``(B, D)`` inputs."""
    terms = [barlow_twins_loss(v_image, v_text, lambd=lambd, scale=scale)]
    terms += [barlow_twins_loss(vi, vt, lambd=lambd, scale=scale) for vi in v_images_aug for vt in v_texts_aug]
    return torch.stack(terms).mean()
