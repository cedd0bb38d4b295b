"""BYOLIP / SiamLIP (Fini et al. 2023, Sec. 3 "baselines"; reference ``losses.SiamLIPLoss``):
BYOL's regression (Grill et al. 2020, Eq. 2) ACROSS modalities: the online image prediction
regresses the (momentum-encoder) text projection and vice versa, for the global pair and every
(augmented image, augmented text) pair; averaged, added to the CLIP-rocket loss. Projector
(Linear-BN-ReLU-Linear, out 128) + predictor of the same shape; the target is an EMA copy of the
backbone and projectors with momentum 0.99 (cosine-increased to 1 as in BYOL).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from pretrainlab.core.losses import byol_loss


def byolip_loss(p_image: Tensor, p_text: Tensor, t_image: Tensor, t_text: Tensor,
                p_images_aug: Sequence[Tensor], p_texts_aug: Sequence[Tensor],
                t_images_aug: Sequence[Tensor], t_texts_aug: Sequence[Tensor]) -> Tensor:
    """Mean ``2 - 2 cos`` between predictions ``p`` and the other modality's targets ``t`` (all ``(B, D)``)."""
    terms = [byol_loss(p_image, t_text), byol_loss(p_text, t_image)]
    terms += [byol_loss(p, t) for p in p_images_aug for t in t_texts_aug]
    terms += [byol_loss(p, t) for p in p_texts_aug for t in t_images_aug]
    return torch.stack(terms).mean()
