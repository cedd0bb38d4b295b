"""Great-circle (haversine) distance, vectorised for numpy and torch.

PIGEON (Haas et al. 2024) measures every distance with the haversine formula
(Sec. 3.3, Eq. 1); its reference code uses the WGS-84 equatorial radius 6378.137 km.
"""

from __future__ import annotations

import numpy as np
import torch

EARTH_RADIUS_KM = 6378.137  # PIGEON reference code (WGS-84 equatorial radius)


def haversine_np(a: np.ndarray, b: np.ndarray, radius: float = EARTH_RADIUS_KM) -> np.ndarray:
    """Distance in km between ``a (..., 2)`` and ``b (..., 2)`` given as (lat, lon) degrees (broadcast)."""
    a = np.radians(np.asarray(a, dtype=np.float64))
    b = np.radians(np.asarray(b, dtype=np.float64))
    dlat = b[..., 0] - a[..., 0]
    dlon = b[..., 1] - a[..., 1]
    h = np.sin(dlat / 2) ** 2 + np.cos(a[..., 0]) * np.cos(b[..., 0]) * np.sin(dlon / 2) ** 2
    return 2 * radius * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def haversine(a: torch.Tensor, b: torch.Tensor, radius: float = EARTH_RADIUS_KM) -> torch.Tensor:
    """Torch version of :func:`haversine_np`: ``(..., 2)`` x ``(..., 2)`` degrees -> km (float32)."""
    a = torch.deg2rad(a.float())
    b = torch.deg2rad(b.float())
    dlat = b[..., 0] - a[..., 0]
    dlon = b[..., 1] - a[..., 1]
    h = torch.sin(dlat / 2) ** 2 + torch.cos(a[..., 0]) * torch.cos(b[..., 0]) * torch.sin(dlon / 2) ** 2
    return 2 * radius * torch.asin(torch.sqrt(h.clamp(0.0, 1.0)))


def pairwise_haversine(x: torch.Tensor, c: torch.Tensor, radius: float = EARTH_RADIUS_KM) -> torch.Tensor:
    """``x (B, 2)`` and ``c (K, 2)`` (lat, lon degrees) -> ``(B, K)`` km."""
    return haversine(x[:, None, :], c[None, :, :], radius)


def to_unit_xyz(latlon: np.ndarray) -> np.ndarray:
    """``(N, 2)`` degrees -> ``(N, 3)`` points on the unit sphere (for KD-tree nearest-neighbour search)."""
    r = np.radians(np.asarray(latlon, dtype=np.float64))
    cl = np.cos(r[:, 0])
    return np.stack([cl * np.cos(r[:, 1]), cl * np.sin(r[:, 1]), np.sin(r[:, 0])], axis=1)
