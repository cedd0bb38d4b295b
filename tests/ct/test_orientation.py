"""The same scan written as a DICOM series and as NIfTI (dcm2niix's orientation) reads identically, both
equal MONAI ``LoadImage`` + ``Orientation(axcodes="LPS")`` transposed to (Z, Y, X), and the slice spacing
comes from the slice positions, not SliceThickness."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from pretrainlab.ct.formats import read_dicom_series, read_nifti
from pretrainlab.ct.synthetic import write_dicom_series, write_nifti


@pytest.fixture()
def scan(ct_phantom) -> np.ndarray:
    hu = np.round(ct_phantom[0][:12]).astype(np.float32)
    hu[:, 2:6, 3:9] = 2000.0  # an asymmetric marker: top-left of the display (anterior, patient's right)
    return hu


def _monai(path: Path, reader: str) -> np.ndarray:
    from monai.transforms import LoadImage, Orientation

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = LoadImage(reader=reader, image_only=True, ensure_channel_first=True)(str(path))
        img = Orientation(axcodes="LPS")(img)
    return np.asarray(img)[0].transpose(2, 1, 0)


def test_dicom_and_nifti_of_one_scan_read_the_same(scan: np.ndarray, tmp_path: Path) -> None:
    write_dicom_series(scan, tmp_path / "dcm", None, shuffle_names=True)
    write_nifti(scan, tmp_path / "scan.nii.gz")
    d = read_dicom_series(tmp_path / "dcm")
    n = read_nifti(tmp_path / "scan.nii.gz")
    np.testing.assert_array_equal(d.hu, scan)  # the DICOM display orientation, slices inferior -> superior
    np.testing.assert_array_equal(n.hu, scan)  # not rotated by 180 degrees
    assert d.hu[0, 3, 4] == 2000.0 and n.hu[0, 3, 4] == 2000.0
    assert d.spacing == pytest.approx((2.5, 1.0, 1.0)) and n.spacing == pytest.approx((2.5, 1.0, 1.0))


def test_readers_equal_monai_load_image_and_orientation(scan: np.ndarray, tmp_path: Path) -> None:
    write_dicom_series(scan, tmp_path / "dcm", None)
    write_nifti(scan, tmp_path / "scan.nii.gz")
    np.testing.assert_allclose(_monai(tmp_path / "dcm", "PydicomReader"), read_dicom_series(tmp_path / "dcm").hu)
    np.testing.assert_allclose(_monai(tmp_path / "scan.nii.gz", "NibabelReader"), read_nifti(tmp_path / "scan.nii.gz").hu)


def test_a_series_stored_upside_down_is_reoriented(scan: np.ndarray, tmp_path: Path) -> None:
    """A series whose rows run posterior -> anterior and columns left -> right (IOP -1 0 0 0 -1 0) is the
    same anatomy stored rotated; both we and MONAI bring it back to the display orientation."""
    import pydicom

    write_dicom_series(scan, tmp_path / "flip", None)
    for f in sorted((tmp_path / "flip").glob("*.dcm")):
        ds = pydicom.dcmread(f)
        z = float(ds.ImagePositionPatient[2])
        h, w = int(ds.Rows), int(ds.Columns)
        ds.PixelData = np.ascontiguousarray(ds.pixel_array[::-1, ::-1]).tobytes()
        ds.ImageOrientationPatient = [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0]
        ds.ImagePositionPatient = [float(w - 1), float(h - 1), z]
        ds.save_as(f)
    ours = read_dicom_series(tmp_path / "flip").hu
    np.testing.assert_array_equal(ours, scan)
    np.testing.assert_allclose(_monai(tmp_path / "flip", "PydicomReader"), ours)


def test_slice_spacing_from_positions_not_slice_thickness(scan: np.ndarray, tmp_path: Path) -> None:
    import pydicom

    write_dicom_series(scan, tmp_path / "s", None, spacing=(1.25, 0.7, 0.7))
    for f in (tmp_path / "s").glob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.SliceThickness = 5.0  # thick slices reconstructed every 1.25 mm (overlapping), as in many CT series
        ds.save_as(f)
    assert read_dicom_series(tmp_path / "s").spacing == pytest.approx((1.25, 0.7, 0.7))
    f0 = sorted((tmp_path / "s").glob("*.dcm"))[3]
    f0.unlink()  # a missing slice: warned, not hidden
    with pytest.warns(UserWarning, match="uneven slice positions"):
        read_dicom_series(tmp_path / "s")
