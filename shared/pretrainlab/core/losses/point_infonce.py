"""PointInfoNCE (PointContrast).

Xie et al. 2020, "PointContrast: Unsupervised Pre-training for 3D Point Cloud Understanding",
Sec. 3.2, Eq. 1: for matched point pairs ``(i, i)`` of two overlapping views,
``L = - sum_i log exp(f1_i . f2_i / tau) / sum_{k} exp(f1_i . f2_k / tau)``; the other matched
points of view 2 are the negatives. The reference code (``NCELossTrainer``) computes
``CE(q @ k.T / T, arange(N))`` over features normalised by the network.

Deviations: the features are L2-normalised here (``normalize=True``) instead of relying on the
network; the mean (not sum) over pairs is returned; only one direction (f1 -> f2), as the paper.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pretrainlab.core.losses._precision import float32_loss
from pretrainlab.core.losses.infonce import info_nce


@float32_loss
def point_info_nce(
    f1: Tensor,
    f2: Tensor,
    temperature: float = 0.07,  # tau of PointContrast Eq. 1; 0.07 is MoCo's value, recipes set their own
    normalize: bool = True,
) -> Tensor:
    """PointInfoNCE over ``N`` matched point features.

    Args:
        f1: ``(N, D)`` features of the matched points in view 1.
        f2: ``(N, D)`` features of the same points in view 2 (row ``i`` matches ``f1[i]``).
        temperature: ``tau``.
        normalize: L2-normalise the features.

    Returns:
        Scalar mean loss.
    """
    if f1.shape != f2.shape or f1.dim() != 2:
        raise ValueError(f"point_info_nce expects two (N, D) tensors of the same shape, got {tuple(f1.shape)} and {tuple(f2.shape)}")
    labels = torch.arange(f1.shape[0], device=f1.device)
    return info_nce(f1, f2, labels, temperature=temperature, normalize=normalize)
