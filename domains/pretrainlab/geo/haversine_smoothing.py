"""Haversine label smoothing (PIGEON Sec. 3.3, Eq. 2).

For an image at ``x`` and geocell centroids ``c_i`` the soft label of cell ``i`` is

    y_i = exp(-(Hav(c_i, x) - Hav(c_ref, x)) / tau)

with ``c_ref`` the nearest centroid (``reference="min"``, the default, as in the reference code:
labels in (0, 1], 1 for the nearest cell) or the centroid of the image's true geocell
(``reference="true"``, Eq. 2 as printed; both coincide when the true cell's centroid is the
nearest one, but with semantic cells a point can lie nearer another cell's centroid and the
labels then exceed 1 by orders of magnitude). The labels are used un-normalised as targets of the cross-entropy
``L = -sum_i y_i log p_i`` (Eq. 3); ``normalize=True`` divides them by their sum instead (a
proper distribution; not the paper). ``tau`` = 75 km (PIGEON) / 65 km (PIGEOTTO).

Everything is computed in float32 (bf16-safe) and vectorised over the batch and cells.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pretrainlab.geo.haversine import EARTH_RADIUS_KM, pairwise_haversine


def haversine_smooth_labels(latlon: torch.Tensor, centroids: torch.Tensor, tau: float,
                            true_cell: torch.Tensor | None = None, reference: str = "min",
                            normalize: bool = False, radius: float = EARTH_RADIUS_KM) -> torch.Tensor:
    """Soft labels ``(B, K)`` for locations ``latlon (B, 2)`` and ``centroids (K, 2)`` (degrees).

    ``reference="true"`` needs ``true_cell (B,)``; ``reference="min"`` uses the nearest centroid.
    """
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    d = pairwise_haversine(latlon.float(), centroids.float(), radius)  # (B, K) km
    if reference == "true":
        if true_cell is None:
            raise ValueError("reference='true' needs true_cell")
        ref = d.gather(1, true_cell.long().view(-1, 1))
    elif reference == "min":
        ref = d.min(dim=1, keepdim=True).values
    else:
        raise ValueError(f"unknown reference '{reference}' (use 'true' or 'min')")
    y = torch.exp(-(d - ref) / tau)
    if normalize:
        y = y / y.sum(dim=1, keepdim=True)
    return y


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``-mean_b sum_i y_bi log softmax(logits)_bi`` in float32; ``logits, targets (B, K)``."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        logp = F.log_softmax(logits.float(), dim=-1)
        return -(targets.float() * logp).sum(dim=-1).mean()


def haversine_smoothing_loss(logits: torch.Tensor, latlon: torch.Tensor, centroids: torch.Tensor, tau: float,
                             true_cell: torch.Tensor | None = None, reference: str = "min",
                             normalize: bool = False) -> torch.Tensor:
    """The PIGEON geocell loss (Eq. 3): soft cross-entropy against haversine-smoothed labels."""
    with torch.no_grad():
        y = haversine_smooth_labels(latlon, centroids, tau, true_cell, reference, normalize)
    return soft_cross_entropy(logits, y)
