"""The CLIP-rocket loss ("CL2L" in the reference code): one global pair + augmented pairs.

Fini et al. 2023, Sec. 4 (improved recipe) and reference ``losses.CL2LLoss``:

* global pair: CLIP's symmetric InfoNCE on the LINEAR projections ``z`` with the learnable
  temperature ``t`` (init 1/0.07), all-gather with gradient, no label smoothing;
* augmented pairs: for every (augmented image ``a``, augmented text ``b``) pair, the symmetric
  InfoNCE on the MLP projections ``h`` with its own temperature ``t_h`` (init 1/0.1) and label
  smoothing 0.1; ``L_aug`` is the mean over the ``A x A`` pairs;
* per direction ``(L_global + A * L_aug) / (1 + A)``, the two directions averaged.

Since ``clip_loss`` already averages both directions, the total equals
``(clip(z_i, z_t) + A * mean_ab clip(h_i^a, h_t^b)) / (1 + A)``, which is what we compute.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from pretrainlab.core.losses import clip_loss


def rocket_loss(z_image: Tensor, z_text: Tensor, h_images: Sequence[Tensor], h_texts: Sequence[Tensor],
                logit_scale: Tensor | float, h_logit_scale: Tensor | float, label_smoothing: float = 0.1,
                gather: bool = True) -> dict[str, Tensor]:
    """CLIP-rocket objective.

    Args:
        z_image, z_text: ``(B, D)`` linear projections of the global pair.
        h_images, h_texts: ``A`` tensors ``(B, D)`` each, MLP projections of the augmented pairs.
        logit_scale, h_logit_scale: exponentiated temperatures of the two branches.
        label_smoothing: on the augmented terms (CLIP-rocket: 0.1).

    Returns:
        ``{"loss", "loss_global", "loss_aug"}`` scalars (float32).
    """
    l_global = clip_loss(z_image, z_text, logit_scale, 0.0, gather)
    a = len(h_images)
    if a == 0:
        return {"loss": l_global, "loss_global": l_global}
    if len(h_texts) != a:
        raise ValueError(f"rocket_loss needs as many augmented texts as images, got {len(h_texts)} and {a}")
    terms = [clip_loss(hi, ht, h_logit_scale, label_smoothing, gather) for hi in h_images for ht in h_texts]
    l_aug = torch.stack(terms).mean()
    return {"loss": (l_global + a * l_aug) / (1 + a), "loss_global": l_global, "loss_aug": l_aug}
