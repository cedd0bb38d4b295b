"""Bayer mosaic packing and per-dataset normalisation (paper Sec. 4 "Datasets"; PyNET / ref code).

A RAW mosaic ``(H, W)`` is packed to 4 channels ``(4, H/2, W/2)`` in the reference order
``[1::2, 1::2], [0::2, 1::2], [0::2, 0::2], [1::2, 0::2]`` (for RGGB: B, G, R, G), then
normalised ``(x - black) / (white - black)`` with the dataset's constants.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
# packing order of the reference code: (row offset, col offset) of each packed channel
PACK_OFFSETS = ((1, 1), (0, 1), (0, 0), (1, 0))
# name -> (black level per packed channel, white level)
NORM_PRESETS: dict[str, tuple[tuple[float, float, float, float], float]] = {
    "zurich": ((0.0, 0.0, 0.0, 0.0), 1020.0),  # PyNET: raw / (4 * 255)
    "mai": ((0.0, 0.0, 0.0, 0.0), 1020.0),  # MAI 2021 (PyNET loader)
    "fujifilm": ((62.0, 60.0, 58.0, 61.0), 1023.0),  # Fujifilm UltraISP (ref code)
    "ntire": ((0.0, 0.0, 0.0, 0.0), 1023.0),  # NTIRE 2026 .npy: / 1023
    "synthetic": ((60.0, 60.0, 60.0, 60.0), 1023.0),  # this project's unprocessed 10-bit mosaics
}


def check_pattern(pattern: str) -> str:
    p = pattern.upper()
    if p not in PATTERNS:
        raise ValueError(f"unknown Bayer pattern '{pattern}'; use one of {', '.join(PATTERNS)}")
    return p


def pack(mosaic: torch.Tensor) -> torch.Tensor:
    """``(..., H, W)`` mosaic -> ``(..., 4, H/2, W/2)`` in the reference channel order."""
    return torch.stack([mosaic[..., r::2, c::2] for r, c in PACK_OFFSETS], dim=-3)


def unpack(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack`: ``(B, 4, h, w)`` -> ``(B, 1, 2h, 2w)``."""
    b, _, h, w = packed.shape
    out = packed.new_zeros(b, 1, 2 * h, 2 * w)
    for i, (r, c) in enumerate(PACK_OFFSETS):
        out[:, 0, r::2, c::2] = packed[:, i]
    return out


def color_masks(pattern: str, h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """``(3, H, W)`` 0/1 masks of the R, G, B sites of a mosaic with the given pattern."""
    p = check_pattern(pattern)
    m = torch.zeros(3, h, w, device=device)
    idx = {"R": 0, "G": 1, "B": 2}
    for k, (r, c) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        m[idx[p[k]], r::2, c::2] = 1.0
    return m


def rgb_split(packed: torch.Tensor, pattern: str = "RGGB") -> torch.Tensor:
    """RMFA-Net input: ``(B, 4, h, w)`` -> full-resolution R / G / B planes ``(B, 3, 2h, 2w)``.

    Each plane holds the mosaic's samples of that colour and zeros elsewhere.
    """
    mos = unpack(packed)
    return mos * color_masks(pattern, mos.shape[-2], mos.shape[-1], packed.device).to(mos.dtype)


def to_rggb(mosaic: torch.Tensor, pattern: str) -> torch.Tensor:
    """Re-align a ``(..., H, W)`` mosaic of any pattern to RGGB by cropping one row / column.

    Output ``(..., H', W')`` with even ``H', W'``.
    """
    p = check_pattern(pattern)
    dr = 1 if p in ("GBRG", "BGGR") else 0
    dc = 1 if p in ("GRBG", "BGGR") else 0
    m = mosaic[..., dr:, dc:]
    h, w = m.shape[-2] // 2 * 2, m.shape[-1] // 2 * 2
    return m[..., :h, :w]


def normalise(packed: torch.Tensor, norm: str) -> torch.Tensor:
    """``(..., 4, h, w)`` raw counts -> ``(x - black) / (white - black)`` per packed channel."""
    if norm not in NORM_PRESETS:
        raise ValueError(f"unknown normalisation '{norm}'; use one of {', '.join(NORM_PRESETS)}")
    black, white = NORM_PRESETS[norm]
    b = torch.tensor(black, dtype=torch.float32).view(4, 1, 1)
    return (packed.float() - b) / (white - b)


def resize_like(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
