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
from pretrainlab.ct.formats import (
    find_sources,
    find_volumes,
    flat_groups,
    read_brain,
    read_covid_ct,
    read_dicom_series,
    read_medmnist,
    read_nifti,
    read_png_folder,
    read_task,
    read_volume,
)
from pretrainlab.ct.preprocessing import dicom_to_hu, minmax_uint8, reference_hu, window_uint8
from pretrainlab.ct.synthetic import INTERCEPT, write_dicom_series, write_nifti


# ------------------------------------------------------------------ formulas
def test_dicom_to_hu_formula() -> None:
    raw = np.array([[-2000, 0, 1024, 3000]], dtype=np.int16)
    hu = dicom_to_hu(raw, slope=2.0, intercept=-1024.0, padding_value=-2000)
    # padding -> 0 first (reference), then HU = slope * raw + intercept
    np.testing.assert_allclose(hu, [[-1024.0, -1024.0, 1024.0, 4976.0]])


def test_reference_hu_truncates_like_get_pixels_hu() -> None:
    """int16 arithmetic: slope * raw in float64 cast back to int16 (toward zero) only when the slope is
    not 1, then += int16(intercept) (a fractional intercept truncated too)."""
    raw = np.array([[-2000, 1, 3, -3, 7]], dtype=np.int16)
    hu, wrapped = reference_hu(raw, 2.5, -1024.7)
    np.testing.assert_array_equal(hu, [[-1024, -1022, -1017, -1031, -1007]])  # 2.5 -> 2, 7.5 -> 7, -7.5 -> -7
    assert hu.dtype == np.int16 and not wrapped
    _, wrapped = reference_hu(np.array([[40000]], dtype=np.uint16), 1.0, -1024.0)
    assert wrapped  # the reference's astype(int16) wraps a uint16 pixel above 32767: flagged

def test_minmax_uint8_matches_core_per_slice(ct_phantom) -> None:
    hu = ct_phantom[0]
    u8 = minmax_uint8(hu)
    for z in (0, 7, len(hu) - 1):
        np.testing.assert_array_equal(u8[z], to_uint8(hu[z]))
    assert u8.dtype == np.uint8 and u8[:, :, :].max() == 255
    np.testing.assert_array_equal(minmax_uint8(np.full((2, 4, 4), 5.0)), 0)  # constant slices -> 0


def test_window_option() -> None:
    hu = np.array([[[-1000.0, -160.0, 40.0, 240.0, 1000.0]]])
    np.testing.assert_array_equal(window_uint8(hu, 40, 400)[0, 0], [0, 0, 128, 255, 255])  # 127.5 -> 128


# ------------------------------------------------------------------ readers on generated data
def test_generated_layout_and_readers(ct_smoke: Path) -> None:
    srcs, skipped = find_sources(ct_smoke / "pretrain")
    assert {s.kind for s in srcs} == {"nifti", "dicom"} and not skipped
    v = read_volume(srcs[1].path)
    assert v.hu is not None and v.hu.ndim == 3 and v.hu.dtype == np.float32
    assert -1100 < v.hu.min() < -900 and v.hu.max() > 300  # HU range of air .. bone
    sp = read_task(ct_smoke, "covid", "train")
    assert sp.classes == ("CT_COVID", "CT_NonCOVID") and set(sp.labels.tolist()) == {0, 1}
    assert sp.image(0).dtype == np.uint8
    sp = read_task(ct_smoke, "organ", "test")
    assert sp.image(0).shape == (28, 28) and len(sp.classes) == 11
    assert read_task(ct_smoke, "organ64", "test").image(0).shape == (64, 64)


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
    from pretrainlab.ct.synthetic import save_png

    u8 = minmax_uint8(ct_phantom[0][:5])
    for i, s in enumerate(u8):
        save_png(s, tmp_path / "vol" / f"{i:04d}.png")
    np.testing.assert_array_equal(read_png_folder(tmp_path / "vol").slices, u8)
    np.savez(tmp_path / "m.npz", train_images=u8, train_labels=np.arange(5)[:, None])
    x, y = read_medmnist(tmp_path / "m.npz", "train")
    assert x.shape == u8.shape and y.tolist() == [0, 1, 2, 3, 4]


def test_flat_layout_groups_by_name_in_string_order(tmp_path: Path) -> None:
    from pretrainlab.ct.synthetic import save_png

    img = np.zeros((8, 8), np.uint8)
    for name in ["LIDC-IDRI-0002_14.png", "LIDC-IDRI-0001_10.png", "LIDC-IDRI-0001_2.png", "LIDC-IDRI-0001_1.png",
                 "a_b_c_3.png", "noprefix.png"]:
        save_png(img, tmp_path / "flat" / name)
    (tmp_path / "flat" / "notes.txt").write_text("ignored")
    groups = {n: [p.name for p in files] for n, files in flat_groups(tmp_path / "flat")}
    assert groups == {"LIDC-IDRI-0001": ["LIDC-IDRI-0001_1.png", "LIDC-IDRI-0001_10.png", "LIDC-IDRI-0001_2.png"],
                      "LIDC-IDRI-0002": ["LIDC-IDRI-0002_14.png"], "a_b_c": ["a_b_c_3.png"], "flat": ["noprefix.png"]}


def test_covid_ct_as_published(tmp_path: Path) -> None:
    """Images in CT_COVID/ and CT_NonCOVID/ (Images-processed), split lists in Data-split/<class>/; COVID = 0."""
    from pretrainlab.ct.synthetic import save_png

    root = tmp_path / "COVID-CT"
    for cls, names in (("CT_COVID", ["2020.01.24.919183-p27-132.png", "a%1.png"]), ("CT_NonCOVID", ["0.jpg", "1%0.png"])):
        for n in names:
            save_png(np.full((10, 12), 9, np.uint8), root / "Images-processed" / cls / n)
        txt = root / "Data-split" / cls.removeprefix("CT_") / f"train{cls}.txt"
        txt.parent.mkdir(parents=True, exist_ok=True)
        txt.write_text("\r\n".join(names) + "\r\n")  # Windows line ends as in the published lists
    sp = read_covid_ct(root, "train")
    assert sp.labels.tolist() == [0, 0, 1, 1] and [p.name for p in sp.paths] == ["2020.01.24.919183-p27-132.png",
                                                                                  "a%1.png", "0.jpg", "1%0.png"]
    (root / "Data-split" / "NonCOVID" / "trainCT_NonCOVID.txt").write_text("0.jpg\nmissing.png\n")
    with pytest.raises(DataError, match=r"trainCT_NonCOVID.txt: line 2: missing.png is not in"):
        read_covid_ct(root, "train")
    with pytest.raises(DataError, match="valCT_COVID.txt"):
        read_covid_ct(root, "val")


def test_brain_layout_and_its_validation_split(tmp_path: Path) -> None:
    """train/<class>/*, test/<class>/*; val = the first int(0.15 n) of np.random.seed(42); shuffle(arange(n))."""
    from pretrainlab.ct.synthetic import save_png

    root = tmp_path / "brain"
    for split, n in (("train", 20), ("test", 4)):
        for cls in ("with", "without"):
            for i in range(n):
                save_png(np.full((6, 6), i, np.uint8), root / split / cls / f"{cls}_{i:02d}.png")
    files = sorted((root / "train" / "with").iterdir()) + sorted((root / "train" / "without").iterdir())
    idx = np.arange(40)
    np.random.seed(42)
    np.random.shuffle(idx)
    val, tr, te = read_brain(root, "val"), read_brain(root, "train"), read_brain(root, "test")
    assert [p.name for p in val.paths] == [files[i].name for i in idx[:6]]
    assert [p.name for p in tr.paths] == [files[i].name for i in idx[6:]]
    assert len(te) == 8 and te.classes == val.classes == ("with", "without")
    assert read_task(tmp_path, "brain", "val").paths == val.paths


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
    with pytest.warns(UserWarning, match="assumed the reference's slope 1, intercept -1024"):
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
    (tmp_path / "brain" / "train" / "a").mkdir(parents=True)
    (tmp_path / "brain" / "train" / "b").mkdir(parents=True)
    (tmp_path / "brain" / "train" / "a" / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="x.png: not a readable image"):
        read_brain(tmp_path / "brain", "train").image(0)
    np.savez(tmp_path / "m.npz", train_images=np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(DataError, match="m.npz: has no array"):
        read_medmnist(tmp_path / "m.npz", "train")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no volumes here")
    with pytest.raises(DataError, match="empty: no CT volumes found"):
        find_volumes(tmp_path / "empty")


def test_reduce_output_is_atomic(tmp_path: Path, ct_smoke: Path) -> None:
    """A reduction that fails on its second volume leaves no half-written output folder."""
    import shutil

    from pretrainlab.ct.config import ReductionConfig
    from pretrainlab.ct.selective_reduction import reduce_to_folder

    src = tmp_path / "in"
    shutil.copytree(ct_smoke / "pretrain", src)
    (src / "zz_broken.nii.gz").write_bytes(b"junk")
    with pytest.raises(DataError, match="zz_broken.nii.gz: not a readable NIfTI"):
        reduce_to_folder(src, tmp_path / "out", None, ReductionConfig(), progress=False)
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
    write_dicom_series(hu[:4], root / "xray", meta["fov"], modality="DX")  # skipped by modality, listed
    (root / "zz_broken.nii.gz").write_bytes(b"junk")
    cfg = ReductionConfig(strategy="hash")
    with pytest.raises(DataError, match="zz_broken.nii.gz: not a readable NIfTI"):
        reduce_and_gather(root, None, cfg, 16, progress=False)
    with pytest.warns(UserWarning, match="skipped"):
        slices, rep = reduce_and_gather(root, None, cfg, 16, skip_bad=True, progress=False)
    assert [s["volume"] for s in rep["skipped"]] == ["xray", "zz_broken"] and slices.shape[1:] == (16, 16)
    assert "modality DX" in rep["skipped"][0]["reason"] and "not a readable NIfTI" in rep["skipped"][1]["reason"]
    _, rep2 = reduce_all(load_volumes(ct_smoke / "pretrain", progress=False), cfg, progress=False)
    assert rep["slices_kept"] == rep2["slices_kept"] == len(slices)  # the same selection as the in-memory path
