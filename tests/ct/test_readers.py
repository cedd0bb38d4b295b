"""Readers on generated data, the pre-processing formulas, and one test per class of bad input."""

from __future__ import annotations

import gzip
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from pretrainlab.core.data import DataError
from pretrainlab.core.reduction import to_uint8
from pretrainlab.ct.phantom import INTERCEPT, write_dicom_series, write_nifti
from pretrainlab.ct.preprocessing import dicom_to_hu, minmax_uint8, window_uint8
from pretrainlab.ct.readers import (
    find_volumes,
    read_dicom_series,
    read_image_folder,
    read_medmnist,
    read_nifti,
    read_png_folder,
    read_task,
    read_volume,
)


# ------------------------------------------------------------------ formulas
def test_dicom_to_hu_formula() -> None:
    raw = np.array([[-2000, 0, 1024, 3000]], dtype=np.int16)
    hu = dicom_to_hu(raw, slope=2.0, intercept=-1024.0, padding_value=-2000)
    # padding -> 0 first (reference), then HU = slope * raw + intercept
    np.testing.assert_allclose(hu, [[-1024.0, -1024.0, 1024.0, 4976.0]])


def test_minmax_uint8_matches_core_per_slice(ct_phantom) -> None:
    hu = ct_phantom[0]
    u8 = minmax_uint8(hu)
    for z in (0, 7, len(hu) - 1):
        np.testing.assert_array_equal(u8[z], to_uint8(hu[z]))
    assert u8.dtype == np.uint8 and u8[:, :, :].max() == 255
    np.testing.assert_array_equal(minmax_uint8(np.full((2, 4, 4), 5.0)), 0)  # constant slices -> 0


def test_window_option() -> None:
    hu = np.array([[[-1000.0, -160.0, 40.0, 240.0, 1000.0]]])
    np.testing.assert_array_equal(window_uint8(hu, 40, 400)[0, 0], [0, 0, 127, 255, 255])


# ------------------------------------------------------------------ readers on generated data
def test_generated_layout_and_readers(ct_smoke: Path) -> None:
    vols = find_volumes(ct_smoke / "pretrain")
    kinds = {read_volume(p).kind for p in vols}
    assert kinds == {"nifti", "dicom"}
    v = read_volume(vols[1])
    assert v.hu is not None and v.hu.ndim == 3 and v.hu.dtype == np.float32
    assert -1100 < v.hu.min() < -900 and v.hu.max() > 300  # HU range of air .. bone
    x, y, n = read_task(ct_smoke / "downstream", "lesion", "train")
    assert x.dtype == np.uint8 and set(np.unique(y)) == {0, 1} and n == 2
    x, y, n = read_task(ct_smoke / "downstream", "organ", "test")
    assert x.shape[1:] == (28, 28) and n == 11
    x64, _, _ = read_task(ct_smoke / "downstream", "organ64", "test")
    assert x64.shape[1:] == (64, 64)


def test_nifti_and_dicom_round_trip_agree(tmp_path: Path, ct_phantom) -> None:
    hu, meta = ct_phantom
    write_nifti(hu, tmp_path / "v.nii.gz")
    write_dicom_series(hu, tmp_path / "dcm", meta["fov"], shuffle_names=True)  # names out of slice order
    a = read_nifti(tmp_path / "v.nii.gz").hu
    b = read_dicom_series(tmp_path / "dcm").hu
    np.testing.assert_array_equal(a, np.round(hu))
    np.testing.assert_array_equal(b, np.round(hu))  # sorted by position; padding -2000 -> 0 -> HU -1024
    assert (b[:, ~meta["fov"]] == INTERCEPT).all()


def test_png_folder_and_medmnist(tmp_path: Path, ct_phantom) -> None:
    from pretrainlab.ct.phantom import save_png

    u8 = minmax_uint8(ct_phantom[0][:5])
    for i, s in enumerate(u8):
        save_png(s, tmp_path / "vol" / f"{i:04d}.png")
    np.testing.assert_array_equal(read_png_folder(tmp_path / "vol").slices, u8)
    np.savez(tmp_path / "m.npz", train_images=u8, train_labels=np.arange(5)[:, None])
    x, y = read_medmnist(tmp_path / "m.npz", "train")
    assert x.shape == u8.shape and y.tolist() == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------ bad input, one class per test
@pytest.fixture()
def series(tmp_path: Path, ct_phantom) -> Path:
    hu, meta = ct_phantom
    write_dicom_series(hu[:6], tmp_path / "s", meta["fov"])
    return tmp_path / "s"


def test_corrupt_dicom_header(series: Path) -> None:
    good = (series / "IM_0002.dcm").read_bytes()
    (series / "IM_0002.dcm").write_bytes(good[:300])  # truncated inside the header
    with pytest.raises(DataError, match="IM_0002.dcm: corrupt or unreadable DICOM header"):
        read_dicom_series(series)
    (series / "IM_0002.dcm").write_bytes(good)
    (series / "IM_0003.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage" * 3)
    with pytest.raises(DataError, match="IM_0003.dcm: corrupt or unreadable DICOM header"):
        read_dicom_series(series)


def test_non_ct_modality(tmp_path: Path, ct_phantom) -> None:
    hu, meta = ct_phantom
    write_dicom_series(hu[:4], tmp_path / "mr", meta["fov"], modality="MR")
    with pytest.raises(DataError, match="modality is MR, not CT"):
        read_dicom_series(tmp_path / "mr")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        vol = read_dicom_series(tmp_path / "mr", allow_non_ct=True)
    assert vol.warnings and any("not CT" in str(x.message) for x in w)


def test_missing_rescale_tags(tmp_path: Path, ct_phantom) -> None:
    hu, meta = ct_phantom
    write_dicom_series(hu[:4], tmp_path / "norescale", meta["fov"], rescale=False)
    with pytest.raises(DataError, match="IM_0000.dcm: missing RescaleSlope / RescaleIntercept"):
        read_dicom_series(tmp_path / "norescale")
    with pytest.warns(UserWarning, match="assumed slope 1"):
        read_dicom_series(tmp_path / "norescale", allow_missing_rescale=True)


def test_mixed_series(tmp_path: Path, ct_phantom) -> None:
    hu, meta = ct_phantom
    uid_a = write_dicom_series(hu[:4], tmp_path / "a", meta["fov"])
    write_dicom_series(hu[4:7], tmp_path / "b", meta["fov"])
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for d in ("a", "b"):
        for f in (tmp_path / d).iterdir():
            shutil.copy(f, mixed / f"{d}_{f.name}")
    with pytest.raises(DataError, match=r"mixed: mixes 2 DICOM series.*series_uid"):
        read_dicom_series(mixed)
    assert len(read_dicom_series(mixed, series_uid=uid_a)) == 4


def test_2d_inputs(tmp_path: Path, ct_phantom) -> None:
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((16, 16), np.int16), np.eye(4)), str(tmp_path / "flat.nii"))
    with pytest.raises(DataError, match="flat.nii: a 2-D image"):
        read_nifti(tmp_path / "flat.nii")
    hu, meta = ct_phantom
    write_dicom_series(hu[:1], tmp_path / "one", meta["fov"])
    with pytest.raises(DataError, match="a single 2-D slice"):
        read_dicom_series(tmp_path / "one")
    with pytest.raises(DataError, match="a single DICOM slice"):
        find_volumes(tmp_path / "one" / "IM_0000.dcm")


def test_non_finite_voxels(tmp_path: Path) -> None:
    import nibabel as nib

    data = np.zeros((8, 8, 4), np.float32)
    data[2, 3, 1] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "nan.nii.gz"))
    with pytest.raises(DataError, match="nan.nii.gz: 1 non-finite voxel"):
        read_nifti(tmp_path / "nan.nii.gz")


def test_corrupt_nifti(tmp_path: Path, ct_phantom) -> None:
    write_nifti(ct_phantom[0], tmp_path / "ok.nii.gz")
    raw = gzip.decompress((tmp_path / "ok.nii.gz").read_bytes())
    (tmp_path / "trunc.nii.gz").write_bytes(gzip.compress(raw[:200]))
    (tmp_path / "junk.nii").write_bytes(b"not a nifti header at all" * 20)
    for name in ("trunc.nii.gz", "junk.nii"):
        with pytest.raises(DataError, match=f"{name}: not a readable NIfTI"):
            read_nifti(tmp_path / name)


def test_bad_downstream_files(tmp_path: Path) -> None:
    (tmp_path / "lesion" / "train" / "a").mkdir(parents=True)
    (tmp_path / "lesion" / "train" / "b").mkdir(parents=True)
    (tmp_path / "lesion" / "train" / "a" / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="x.png: not a readable image"):
        read_image_folder(tmp_path / "lesion" / "train")
    np.savez(tmp_path / "m.npz", train_images=np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(DataError, match="m.npz: lacks 'train_images' / 'train_labels'"):
        read_medmnist(tmp_path / "m.npz", "train")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no volumes here")
    with pytest.raises(DataError, match="empty: no CT volumes found"):
        find_volumes(tmp_path / "empty")


def test_reduce_output_is_atomic(tmp_path: Path) -> None:
    """A failing reduction leaves no half-written output folder."""
    from pretrainlab.ct.selective_reduction import write_reduction

    vols = [("v", np.zeros((3, 8, 8), np.uint8))]
    with pytest.raises(IndexError):
        write_reduction(tmp_path / "out", vols, [np.array([0, 99])], {"strategy": "x"})
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


@pytest.mark.slow
def test_monai_cache_reader_matches_plain_loop(ct_smoke: Path, tmp_path: Path) -> None:
    """The optional MONAI CacheDataset path (importing MONAI costs ~8 s of CPU) reads the same
    slices and still raises the DataError naming the file."""
    from pretrainlab.ct.selective_reduction import load_volumes

    plain = load_volumes(ct_smoke / "pretrain", progress=False)
    cached = load_volumes(ct_smoke / "pretrain", progress=False, num_workers=2)
    assert [n for n, _ in plain] == [n for n, _ in cached]
    for (_, a), (_, b) in zip(plain, cached):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "x.nii.gz").write_bytes(b"junk")
    with pytest.raises(DataError, match="x.nii.gz: not a readable NIfTI"):
        load_volumes(tmp_path, progress=False, num_workers=2)


def test_streaming_reduction_skips_bad_volumes(tmp_path: Path, ct_smoke: Path, ct_phantom) -> None:
    """Real archives hold non-CT series: with skip_bad the run goes on and lists them; without, it stops."""
    from pretrainlab.ct.config import ReductionConfig
    from pretrainlab.ct.selective_reduction import load_volumes, reduce_all, reduce_and_gather

    root = tmp_path / "archive"
    shutil.copytree(ct_smoke / "pretrain", root)
    hu, meta = ct_phantom
    write_dicom_series(hu[:4], root / "xray", meta["fov"], modality="DX")
    cfg = ReductionConfig(strategy="hash")
    with pytest.raises(DataError, match="xray.*modality is DX"):
        reduce_and_gather(root, None, cfg, 16, progress=False)
    with pytest.warns(UserWarning, match="skipped"):
        slices, rep = reduce_and_gather(root, None, cfg, 16, skip_bad=True, progress=False)
    assert len(rep["skipped"]) == 1 and slices.shape[1:] == (16, 16)
    _, rep2 = reduce_all(load_volumes(ct_smoke / "pretrain", progress=False), cfg, progress=False)
    assert rep["slices_kept"] == rep2["slices_kept"] == len(slices)  # the same selection as the in-memory path
