"""Pre-processing of CT slices as the reference pipeline (Wolf et al. 2024; reference
``Less_is_More/PreTrain-Data_Preprocessing/LIDC_3DDICOM_to_2Dpng.py``).

* DICOM -> HU, :func:`reference_hu` = the reference's ``get_pixels_hu`` to the line: the stored
  pixels cast to int16; raw values equal to -2000 (outside the field of view) set to 0; when
  ``RescaleSlope != 1`` the product ``slope * raw`` is computed in float64 and cast back to int16
  (truncation toward zero); then ``+= int16(RescaleIntercept)`` in int16 arithmetic. A missing
  intercept / slope is -1024 / 1 in the reference (the reader refuses a file without them unless
  ``preprocess.allow_missing_rescale=true``, and then assumes the reference's values).
* NIfTI: nibabel applies ``scl_slope`` / ``scl_inter``; voxels are HU already.
* No windowing: each slice is min-max scaled to 0-255 in float64 and written with
  ``cv2.imwrite``, which rounds half to even (NaN of a constant slice -> 0):
  :func:`minmax_uint8` (``pretrainlab.core.reduction.to_uint8_slices``, the one implementation).
  CT windowing (``center`` / ``width``) is an option that is NOT the paper's pipeline.
"""

from __future__ import annotations

import numpy as np

from pretrainlab.core.reduction import to_uint8_slices

PADDING_RAW = -2000  # ref: get_pixels_hu, image[image == -2000] = 0 (outside-of-scan pixels)
DEFAULT_INTERCEPT = -1024  # ref: intercept = scans.RescaleIntercept if 'RescaleIntercept' in scans else -1024
DEFAULT_SLOPE = 1  # ref: slope = scans.RescaleSlope if 'RescaleSlope' in scans else 1


def reference_hu(raw: np.ndarray, slope: float, intercept: float,
                 padding_value: int | None = PADDING_RAW) -> tuple[np.ndarray, bool]:
    """``get_pixels_hu`` of the reference: stored pixels -> int16 HU.

    Returns ``(hu int16, wrapped)``: ``wrapped`` is True when the reference's int16 arithmetic
    overflowed somewhere (a uint16 pixel above 32767, or ``raw + intercept`` outside int16): the
    values are the reference's (wrapped) ones, and the caller should warn.
    """
    raw = np.asarray(raw)
    image = raw.astype(np.int16)  # ref: image.astype(np.int16)
    wide = raw.astype(np.int64)
    wrapped = bool((wide != image).any())
    if padding_value is not None:
        image[image == padding_value] = 0
        wide[wide == padding_value] = 0
    if slope != 1:
        prod = slope * image.astype(np.float64)
        image = prod.astype(np.int16)  # ref: truncation toward zero (and int16 wrap)
        wide = np.trunc(slope * wide.astype(np.float64)).astype(np.int64)
    inter16 = np.int16(intercept)  # ref: np.int16(intercept) truncates a fractional intercept
    with np.errstate(over="ignore"):
        image += inter16
    wide += int(inter16)
    wrapped = wrapped or bool((wide != image).any())
    return np.asarray(image, dtype=np.int16), wrapped


def dicom_to_hu(raw: np.ndarray, slope: float, intercept: float, padding_value: int | None = PADDING_RAW) -> np.ndarray:
    """``(..., H, W)`` stored pixel values -> HU float32, with the reference's integer arithmetic
    (:func:`reference_hu`; the wrap-around flag is dropped)."""
    return reference_hu(raw, slope, intercept, padding_value)[0].astype(np.float32)


def minmax_uint8(volume: np.ndarray) -> np.ndarray:
    """Per-slice min-max to 0-255 uint8, rounded half to even as the reference's ``cv2.imwrite``:
    ``(Z, H, W)`` -> ``(Z, H, W)`` uint8 (constant slices -> 0)."""
    return to_uint8_slices(volume)


def window_uint8(volume: np.ndarray, center: float = 40.0, width: float = 400.0) -> np.ndarray:
    """CT window ``[center - width/2, center + width/2]`` -> 0-255 uint8 (an option, not the paper's).

    The formula of MONAI's ``ScaleIntensityRange(a_min, a_max, b_min=0, b_max=255, clip=True)``
    (``(x - a_min) / (a_max - a_min) * 255``, clipped), rounded half to even as above.
    """
    lo = center - width / 2.0
    x = (np.asarray(volume, dtype=np.float64) - lo) / width * 255.0
    return np.clip(np.rint(x), 0.0, 255.0).astype(np.uint8)


def to_slices(hu: np.ndarray, window: str = "minmax", center: float = 40.0, width: float = 400.0) -> np.ndarray:
    """HU volume ``(Z, H, W)`` -> 8-bit slices ``(Z, H, W)`` with the configured scaling."""
    if window == "minmax":
        return minmax_uint8(hu)
    if window == "ct":
        return window_uint8(hu, center, width)
    raise ValueError(f"unknown window {window!r} (minmax | ct)")
