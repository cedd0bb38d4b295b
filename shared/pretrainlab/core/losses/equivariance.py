"""Equivariance by classification: predict the (quantised) transformation.

Dangovski et al. 2022, "Equivariant Contrastive Learning" (E-SSL), Sec. 3: besides the invariant
SSL objective, a head predicts the transformation applied to the input (e.g. the four-fold
rotation of Gidaris et al. 2018) with a cross-entropy loss. Continuous transformations (a
relative rotation angle) are quantised into ``n_bins`` equal classes here.

Deviations: continuous angles are binned (E-SSL predicts discrete transformations); the bins
are equal-width over ``[-pi, pi)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from pretrainlab.core.losses._precision import float32_loss


def rotation_bins(angle: Tensor, n_bins: int = 10) -> Tensor:
    """Quantise relative rotation angles into ``n_bins`` equal bins over ``[-pi, pi)``.

    Args:
        angle: ``(B,)`` angles in radians (any real value; wrapped into ``[-pi, pi)`` first).
        n_bins: number of classes.

    Returns:
        ``(B,)`` long bin indices in ``[0, n_bins)``; bin ``j`` covers
        ``[-pi + j * 2pi / n_bins, -pi + (j + 1) * 2pi / n_bins)``.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    # computed in the input's precision so that -pi and pi of that precision land in bin 0
    a = angle if angle.is_floating_point() else angle.float()
    two_pi = torch.tensor(2 * math.pi, dtype=a.dtype, device=a.device)
    wrapped = torch.remainder(a + two_pi / 2, two_pi)  # [0, 2pi)
    idx = torch.floor(wrapped / two_pi * n_bins).long()
    return idx.clamp_(0, n_bins - 1)


@float32_loss
def equivariance_classification_loss(logits: Tensor, target_bins: Tensor) -> Tensor:
    """Cross-entropy of the transformation-prediction head.

    Args:
        logits: ``(B, n_bins)`` head outputs.
        target_bins: ``(B,)`` long targets (e.g. from ``rotation_bins``).

    Returns:
        Scalar mean cross-entropy.
    """
    return F.cross_entropy(logits.float(), target_bins.long())
