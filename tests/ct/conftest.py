"""Fixtures of the CT tests: the smoke phantoms, a phantom volume, and a LIDC-IDRI-style DICOM tree
built from pydicom's real CT slice (``CT_small.dcm``), deterministic and independent of numpy's RNG
so the reference scripts could be run on the very same files (``tests/ct/data/README.md``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def ct_smoke() -> Path:
    from pretrainlab.ct.api import synthetic_data

    return synthetic_data("smoke")


@pytest.fixture(scope="session")
def ct_phantom():
    """One small phantom volume in HU and its meta."""
    from pretrainlab.ct.synthetic import phantom_volume

    return phantom_volume(np.random.default_rng(3), 40, 48, n_lesions=3)


def _write(base_ds, arr: np.ndarray, path: Path, n: int, series: str, z: int, slope: float = 1.0,
           intercept: float = -1024.0, modality: str = "CT") -> None:
    import copy

    ds = copy.deepcopy(base_ds)
    ds.PixelData = np.ascontiguousarray(arr.astype(np.int16)).tobytes()
    ds.Rows, ds.Columns = arr.shape
    uid = f"1.2.826.0.1.3680043.8.498.77.{n}"
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.8.498.78.{series}"
    ds.InstanceNumber = z + 1
    ds.ImagePositionPatient = [-64.0, -64.0, float(2.5 * z)]
    ds.Modality = modality
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path))


def build_lidc_tree(root: Path) -> Path:
    """A LIDC-IDRI-style tree ``root/LIDC-IDRI-<n>/<study>/<series>/*.dcm`` from ``CT_small.dcm``.

    * LIDC-IDRI-0001: a CT series of 14 slices (1-001.dcm ...; rolled copies of the real slice, a run of
      near-duplicates, a constant slice, -2000 padding) + its annotation .xml + a hidden file; an X-ray
      series of 2 files (skipped: not more than 10 files).
    * LIDC-IDRI-0002: a series with RescaleSlope 2.5 (the reference's int16 truncation), and a series of
      10 .dcm + 1 .xml + 1 .DCM (11 entries > 10; the .DCM is not exported) whose slices span 510 raw
      values, so half of their pixels scale to x.5 (rounding half to even).
    * LIDC-IDRI-0003: exactly 10 files (not exported).
    """
    import pydicom
    from pydicom.data import get_testdata_file

    base_ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    base = base_ds.pixel_array.astype(np.int32)
    n = 0
    p1 = root / "LIDC-IDRI-0001" / "01-01-2000-NA-NA-30178" / "3000566.000000-NA-03192"
    for z in range(14):
        arr = np.roll(base, 3 * z, axis=0) + 2 * z
        if z in (5, 6):  # near-duplicates of slice 4
            arr = np.roll(base, 12, axis=0) + 8 + ((np.indices(base.shape).sum(0) + z) % 2)
        if z == 9:
            arr = np.full_like(base, 1000)  # constant: 0 / 0 in the reference's min-max
        if z == 10:
            arr = arr.copy()
            arr[:6, :] = -2000  # outside-the-scan padding
        _write(base_ds, arr, p1 / f"1-{z + 1:03d}.dcm", n, "1", z)
        n += 1
    (p1 / "069.xml").write_text("<LidcReadMessage/>")
    (p1 / ".DS_Store").write_bytes(b"\x00")
    xr = root / "LIDC-IDRI-0001" / "01-01-2000-NA-NA-94466" / "3000923.000000-NA-62357"
    for z in range(2):
        _write(base_ds, base, xr / f"1-{z + 1}.dcm", n, "2", z, modality="DX")
        n += 1
    p2 = root / "LIDC-IDRI-0002" / "01-01-2000-NA-NA-98329"
    for z in range(12):
        arr = base // 2 + 50 * z
        arr[-4:, :] = -2000
        _write(base_ds, arr, p2 / "3000522.000000-NA-04919" / f"1-{z + 1:03d}.dcm", n, "3", z, slope=2.5)
        n += 1
    ramp = (np.arange(base.size) % 511).reshape(base.shape)
    for z in range(10):
        _write(base_ds, np.roll(ramp, 7 * z, axis=1), p2 / "3000533.000000-NA-05020" / f"1-{z + 1:03d}.dcm", n, "4", z,
               intercept=0.0)
        n += 1
    (p2 / "3000533.000000-NA-05020" / "158.xml").write_text("<LidcReadMessage/>")
    _write(base_ds, ramp, p2 / "3000533.000000-NA-05020" / "1-011.DCM", n, "4", 10, intercept=0.0)
    n += 1
    p3 = root / "LIDC-IDRI-0003" / "01-01-2000-NA-NA-01234" / "3000611.000000-NA-03136"
    for z in range(10):
        _write(base_ds, np.roll(base, -5 * z, axis=1), p3 / f"1-{z + 1:03d}.dcm", n, "5", z)
        n += 1
    return root


@pytest.fixture(scope="session")
def lidc_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lidc_tree(tmp_path_factory.mktemp("lidc") / "LIDC-IDRI")
