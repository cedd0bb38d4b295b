"""Barlow Twins redundancy-reduction loss.

Zbontar et al. 2021, "Barlow Twins: Self-Supervised Learning via Redundancy Reduction", Sec. 2,
Eq. 1 and Eq. 2 (and Algorithm 1): embeddings are standardised along the batch, the
cross-correlation ``C = z1_norm.T @ z2_norm / N`` is formed, and
``L = sum_i (1 - C_ii)^2 + lambda * sum_i sum_{j != i} C_ij^2``.

Deviations: the standardisation is a non-affine batch norm (``(z - mean) / sqrt(var + 1e-5)``
with the biased variance), as the reference code's ``nn.BatchNorm1d(affine=False)``; ``scale``
multiplies the total (the reference code's early ``--scale-loss`` argument; 1 = the paper's
Eq. 1). Under torch.distributed (``gather=True``) the embeddings of every rank are gathered with
gradient, so ``C`` is the global-batch correlation as in the reference code (SyncBN + all_reduce
of ``C``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from pretrainlab.core.distributed import all_gather_with_grad, is_distributed
from pretrainlab.core.losses._precision import float32_loss


def _batch_standardise(z: Tensor, eps: float = 1e-5) -> Tensor:
    """``(N, D)`` -> ``(N, D)`` zero-mean, unit-(biased)-variance columns (BatchNorm1d, no affine)."""
    mean = z.mean(dim=0, keepdim=True)
    var = z.var(dim=0, unbiased=False, keepdim=True)
    return (z - mean) / torch.sqrt(var + eps)


@float32_loss
def barlow_twins_loss(
    z1: Tensor,
    z2: Tensor,
    lambd: float = 5.1e-3,  # Zbontar et al. 2021, Sec. 4 "Implementation details": lambda = 5e-3 (code: 0.0051)
    scale: float = 1.0,
    gather: bool = True,
) -> Tensor:
    """Barlow Twins loss of two views' projections.

    Args:
        z1: ``(B, D)`` projector outputs of view 1.
        z2: ``(B, D)`` projector outputs of view 2.
        lambd: weight of the redundancy-reduction (off-diagonal) term.
        scale: overall multiplier.
        gather: under torch.distributed, compute ``C`` over the global batch.

    Returns:
        Scalar loss.
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"barlow_twins_loss expects two (B, D) tensors of the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    a = z1.float()
    b = z2.float()
    if gather and is_distributed():
        a = all_gather_with_grad(a)
        b = all_gather_with_grad(b)
    n = a.shape[0]
    c = _batch_standardise(a).t() @ _batch_standardise(b) / n  # (D, D)
    diag = torch.diagonal(c)
    on_diag = (1 - diag).pow(2).sum()
    off_diag = c.pow(2).sum() - diag.pow(2).sum()
    return scale * (on_diag + lambd * off_diag)
