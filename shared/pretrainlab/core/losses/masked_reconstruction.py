"""Masked reconstruction loss (L1 over the masked positions only).

As in masked autoencoding (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners",
Sec. 3: "we compute the loss only on masked patches") and masked acoustic modelling
(Liu et al. 2020, "Mockingjay", Sec. 3.2: L1 reconstruction of the masked frames).

Deviations: L1 rather than MAE's MSE (Mockingjay / TERA use L1); an empty mask gives 0 with a
finite graph instead of NaN.
"""

from __future__ import annotations

from torch import Tensor

from pretrainlab.core.losses._precision import float32_loss


@float32_loss
def masked_l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean ``|pred - target|`` over the masked elements.

    Args:
        pred: ``(B, T, D)`` reconstruction.
        target: ``(B, T, D)`` target.
        mask: ``(B, T)`` or ``(B, T, D)`` bool, True where the loss is taken. A ``(B, T)`` mask
            counts all ``D`` features of each masked step.

    Returns:
        Scalar mean over masked elements; 0 (differentiable) if nothing is masked.
    """
    if pred.shape != target.shape:
        raise ValueError(f"masked_l1: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    m = mask.bool()
    if m.dim() == pred.dim() - 1:
        m = m.unsqueeze(-1)
    m = m.expand_as(pred).float()
    diff = (pred.float() - target.float()).abs() * m
    return diff.sum() / m.sum().clamp(min=1.0)
