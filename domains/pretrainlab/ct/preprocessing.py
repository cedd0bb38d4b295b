"""Pre-processing of CT volumes as the reference pipeline (Wolf et al. 2024, Sec. Data; reference
``Less_is_More`` DICOM -> PNG script).

* DICOM: raw pixels equal to the padding value (``-2000``, the out-of-field-of-view marker of
  many scanners) are set to 0, then Hounsfield units ``HU = RescaleSlope * raw + RescaleIntercept``.
* NIfTI: nibabel applies ``scl_slope`` / ``scl_inter``; voxels are HU already.
* Each slice is min-max scaled to 0-255 and stored as 8-bit (no windowing): :func:`minmax_uint8`.
  CT windowing (``center`` / ``width``, MONAI's ``ScaleIntensityRange`` formula) is an option
  that is NOT the paper's pipeline.
"""

from __future__ import annotations

import numpy as np


def dicom_to_hu(raw: np.ndarray, slope: float, intercept: float, padding_value: float | None = -2000.0) -> np.ndarray:
    """``(..., H, W)`` stored pixel values -> HU float32 (padding pixels set to 0 first, as the reference)."""
    x = raw.astype(np.float32, copy=True)
    if padding_value is not None:
        x[raw == padding_value] = 0.0
    if slope != 1.0:
        x *= np.float32(slope)
    x += np.float32(intercept)
    return x


def minmax_uint8(volume: np.ndarray) -> np.ndarray:
    """Per-slice min-max to 0-255 uint8: ``(Z, H, W)`` float -> ``(Z, H, W)`` uint8 (constant slices -> 0).

    Vectorised form of ``pretrainlab.core.reduction.to_uint8`` applied to every slice (same
    truncation by ``astype(uint8)``).
    """
    v = np.asarray(volume, dtype=np.float64)
    if v.ndim == 2:
        v = v[None]
    lo = v.min(axis=(1, 2), keepdims=True)
    hi = v.max(axis=(1, 2), keepdims=True)
    span = hi - lo
    safe = np.where(span > 0, span, 1.0)
    out = (v - lo) / safe * 255.0
    out[np.broadcast_to(span <= 0, out.shape)] = 0.0
    return out.astype(np.uint8)


def window_uint8(volume: np.ndarray, center: float = 40.0, width: float = 400.0) -> np.ndarray:
    """CT window ``[center - width/2, center + width/2]`` -> 0-255 uint8.

    The formula of MONAI's ``ScaleIntensityRange(a_min, a_max, b_min=0, b_max=255, clip=True)``
    (``(x - a_min) / (a_max - a_min) * 255``, clipped), in numpy: importing MONAI costs seconds.
    """
    lo = center - width / 2.0
    x = (np.asarray(volume, dtype=np.float32) - np.float32(lo)) / np.float32(width) * np.float32(255.0)
    return np.clip(x, 0.0, 255.0).astype(np.uint8)


def to_slices(hu: np.ndarray, window: str = "minmax", center: float = 40.0, width: float = 400.0) -> np.ndarray:
    """HU volume ``(Z, H, W)`` -> 8-bit slices ``(Z, H, W)`` with the configured scaling."""
    if window == "minmax":
        return minmax_uint8(hu)
    if window == "ct":
        return window_uint8(hu, center, width)
    raise ValueError(f"unknown window {window!r} (minmax | ct)")
