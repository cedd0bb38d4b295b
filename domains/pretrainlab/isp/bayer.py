"""Bayer mosaic packing and per-dataset normalisation (paper Sec. 4 "Datasets"; ref code).

A RAW mosaic ``(H, W)`` is packed to 4 channels ``(4, H/2, W/2)`` in the reference order
``[1::2, 1::2], [0::2, 1::2], [0::2, 0::2], [1::2, 0::2]`` (for RGGB: B, G, R, G; ref:
pretrained/run_inference.py ``preprocess_raw_image``), then normalised per packed channel
``(x - black) / divisor`` with the dataset's constants (:data:`NORM_PRESETS`).

NTIRE 2026 ``.npy`` RAWs are packed in another order, R, G, G, B (the challenge baseline's
``RawToRgbTransform``: ``r = x[0]``, ``g = (x[1] + x[2]) / 2``, ``b = x[3]``);
:func:`ntire_to_packed` / :func:`packed_to_ntire` convert.
"""

from __future__ import annotations

import torch

PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
# packing order of the reference code: (row offset, col offset) of each packed channel
PACK_OFFSETS = ((1, 1), (0, 1), (0, 0), (1, 0))
# NTIRE 2026 .npy channel order R, G(0,1), G(1,0), B (of an RGGB mosaic) -> our packed index
NTIRE_TO_PACKED = (3, 1, 0, 2)  # packed[i] = ntire[NTIRE_TO_PACKED[i]]
PACKED_TO_NTIRE = (2, 1, 3, 0)  # ntire[j] = packed[PACKED_TO_NTIRE[j]]

# name -> (black level per packed channel, divisor per packed channel): x_norm = (x - black) / divisor
NORM_PRESETS: dict[str, tuple[tuple[float, float, float, float], tuple[float, float, float, float]]] = {
    # PyNET / MAI loaders: raw / (4 * 255)
    "zurich": ((0.0, 0.0, 0.0, 0.0), (1020.0, 1020.0, 1020.0, 1020.0)),
    "mai": ((0.0, 0.0, 0.0, 0.0), (1020.0, 1020.0, 1020.0, 1020.0)),
    # ref: pretrained/run_inference.py and load_dataset.py raw_transform: (x - [62, 60, 58, 61]) / (1023 - [...]);
    # the reference applies it to every dataset it trains on (Fujifilm UltraISP and Zurich alike)
    "fujifilm": ((62.0, 60.0, 58.0, 61.0), (961.0, 963.0, 965.0, 962.0)),
    # ref: pretrained/model.py preprocess_raw_with_three_channel_split: clamp(raw - 63, 0) / 1023 (RMFA-Net)
    "rmfanet": ((63.0, 63.0, 63.0, 63.0), (1023.0, 1023.0, 1023.0, 1023.0)),
    # NTIRE 2026 baseline (load_dataset_ntire.RawTransform, predict.py): raw / 1023
    "ntire": ((0.0, 0.0, 0.0, 0.0), (1023.0, 1023.0, 1023.0, 1023.0)),
    # this project's unprocessed 10-bit mosaics (black 60, white 1023)
    "synthetic": ((60.0, 60.0, 60.0, 60.0), (963.0, 963.0, 963.0, 963.0)),
}
# the preprocessing of the reference's released generators (render --weights)
REFERENCE_NORM = {"efficientisp": "fujifilm", "robustisp": "fujifilm", "rmfanet_tiny": "rmfanet"}


def check_pattern(pattern: str) -> str:
    p = str(pattern).upper()
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


def ntire_to_packed(x: torch.Tensor) -> torch.Tensor:
    """NTIRE ``(..., 4, h, w)`` in R, G, G, B order -> the reference packing order (B, G, R, G)."""
    return x[..., list(NTIRE_TO_PACKED), :, :]


def packed_to_ntire(x: torch.Tensor) -> torch.Tensor:
    """Reference packing order ``(..., 4, h, w)`` -> NTIRE R, G, G, B."""
    return x[..., list(PACKED_TO_NTIRE), :, :]


def color_masks(pattern: str, h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """``(3, H, W)`` 0/1 masks of the R, G, B sites of a mosaic with the given pattern."""
    p = check_pattern(pattern)
    m = torch.zeros(3, h, w, device=device)
    idx = {"R": 0, "G": 1, "B": 2}
    for k, (r, c) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        m[idx[p[k]], r::2, c::2] = 1.0
    return m


def rgb_planes(packed: torch.Tensor, pattern: str = "RGGB") -> torch.Tensor:
    """RMFA-Net input: ``(B, 4, h, w)`` normalised packed -> R / G / B planes ``(B, 3, 2h, 2w)``.

    As the reference (pretrained/model.py ``preprocess_raw_with_three_channel_split``): each plane
    keeps the mosaic's (clamped at 0) samples of its colour and holds ONES everywhere else.
    """
    mos = unpack(packed).clamp_min(0)
    m = color_masks(pattern, mos.shape[-2], mos.shape[-1], packed.device).to(mos.dtype)[None]
    return mos * m + (1 - m)


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


def check_norm(norm: str) -> str:
    if norm not in NORM_PRESETS:
        raise ValueError(f"unknown normalisation '{norm}'; use one of {', '.join(NORM_PRESETS)}")
    return norm


def normalise(packed: torch.Tensor, norm: str) -> torch.Tensor:
    """``(..., 4, h, w)`` raw counts -> ``(x - black) / divisor`` per packed channel (float32, no clamp)."""
    black, div = NORM_PRESETS[check_norm(norm)]
    b = torch.tensor(black, dtype=torch.float32, device=packed.device).view(4, 1, 1)
    d = torch.tensor(div, dtype=torch.float32, device=packed.device).view(4, 1, 1)
    return (packed.float() - b) / d


def denormalise(x: torch.Tensor, norm: str) -> torch.Tensor:
    """Inverse of :func:`normalise`: normalised ``(..., 4, h, w)`` -> counts."""
    black, div = NORM_PRESETS[check_norm(norm)]
    b = torch.tensor(black, dtype=torch.float32, device=x.device).view(4, 1, 1)
    d = torch.tensor(div, dtype=torch.float32, device=x.device).view(4, 1, 1)
    return x.float() * d + b
