"""A sweep of bad input and misuse over every ct verb and the demo's prediction functions: each case
must end with ONE clean line ``error: ...`` naming the file or the config key (exit 2), no traceback,
no output left behind, no hang (pytest-timeout)."""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pretrainlab.core.cli import main
from pretrainlab.core.testing import write_zip

pytestmark = pytest.mark.timeout(120)


# ------------------------------------------------------------------------------------------ builders
def _png_header_bomb(path: Path, w: int = 60000, h: int = 60000) -> Path:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b""))
    return path


def _nifti_header_bomb(path: Path) -> Path:
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.int16)
    hdr.set_data_shape((30000, 30000, 3000))
    path.write_bytes(hdr.binaryblock + b"\x00" * 4 + b"\x00" * 64)  # 348-byte header, extension flag, a few bytes
    return path


def _series(root: Path, name: str = "s", n: int = 4, **kw) -> Path:
    from pretrainlab.ct.synthetic import write_dicom_series

    hu = np.full((n, 16, 16), -500.0, np.float32)
    hu[:, 4:12, 4:12] = np.arange(n)[:, None, None] * 40.0
    write_dicom_series(hu, root / name, None, **kw)
    return root / name


def _flat(root: Path, names: list[str], size: int = 16) -> Path:
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names):
        Image.fromarray(np.full((size, size), 10 * i, np.uint8)).save(root / n)
    return root


def _edit_dicom(f: Path, **tags) -> None:
    import pydicom

    ds = pydicom.dcmread(f)
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.save_as(f)


def _covid(root: Path, smoke: Path) -> Path:
    shutil.copytree(smoke / "downstream" / "covid", root)
    return root


# ------------------------------------------------------------------------------------------ the sweep
Case = tuple[str, Callable[[Path, Path], tuple[list[str], list[str], list[Path]]]]


def _reduce(args: list[str]) -> list[str]:
    return ["ct", "reduce", *args]


def c_missing_input(t: Path, s: Path):
    return _reduce(["--input", str(t / "nope"), "--out", str(t / "o")]), ["nope: no such file or folder"], [t / "o"]


def c_text_file(t: Path, s: Path):
    (t / "a.txt").write_text("x")
    return _reduce(["--input", str(t / "a.txt"), "--out", str(t / "o")]), ["a.txt: unsupported file"], [t / "o"]


def c_single_dcm(t: Path, s: Path):
    d = _series(t)
    return _reduce(["--input", str(d / "IM_0000.dcm"), "--out", str(t / "o")]), ["IM_0000.dcm: a single DICOM slice"], [t / "o"]


def c_single_png(t: Path, s: Path):
    _flat(t / "f", ["v_0.png"])
    return _reduce(["--input", str(t / "f" / "v_0.png"), "--out", str(t / "o")]), ["v_0.png: a single PNG slice"], [t / "o"]


def c_empty_folder(t: Path, s: Path):
    (t / "empty").mkdir()
    return _reduce(["--input", str(t / "empty"), "--out", str(t / "o")]), ["empty: no CT volumes found"], [t / "o"]


def c_negative_k(t: Path, s: Path):
    _flat(t / "f", ["v_0.png", "v_1.png"])
    return _reduce(["--input", str(t / "f"), "--k", "-3", "--out", str(t / "o")]), ["reduction.hash_k", "-3"], [t / "o"]


def c_threshold_alias_negative(t: Path, s: Path):
    _flat(t / "f", ["v_0.png", "v_1.png"])
    return _reduce(["--input", str(t / "f"), "--strategy", "hash", "--threshold", "-1", "--out", str(t / "o")]), \
        ["reduction.hash_k"], [t / "o"]


def c_override_negative_k(t: Path, s: Path):
    _flat(t / "f", ["v_0.png", "v_1.png"])
    return _reduce(["--input", str(t / "f"), "--out", str(t / "o"), "reduction.hash_k=-1"]), ["reduction.hash_k"], [t / "o"]


def c_fractional_k(t: Path, s: Path):
    _flat(t / "f", ["v_0.png", "v_1.png"])
    return _reduce(["--input", str(t / "f"), "--k", "2.5", "--out", str(t / "o")]), ["whole number", "hash_k"], [t / "o"]


def c_every_n_zero(t: Path, s: Path):
    _flat(t / "f", ["v_0.png", "v_1.png"])
    return _reduce(["--input", str(t / "f"), "--method", "every_n", "--k", "0", "--out", str(t / "o")]), \
        ["reduction.every_n"], [t / "o"]


def c_ssim_out_of_range(t: Path, s: Path):
    _flat(t / "f", ["v_0.png", "v_1.png"])
    return _reduce(["--input", str(t / "f"), "--method", "ssim", "--k", "2", "--out", str(t / "o")]), \
        ["reduction.ssim_threshold"], [t / "o"]


def c_mi_nan(t: Path, s: Path):
    _flat(t / "f", ["v_0.png", "v_1.png"])
    return _reduce(["--input", str(t / "f"), "--method", "mi", "--k", "nan", "--out", str(t / "o")]), \
        ["reduction.mi_threshold"], [t / "o"]


def c_mi_bins(t: Path, s: Path):
    _flat(t / "f", ["v_0.png", "v_1.png"])
    return _reduce(["--input", str(t / "f"), "--method", "mi", "--out", str(t / "o"), "reduction.mi_bins=1"]), \
        ["reduction.mi_bins"], [t / "o"]


def c_unknown_key(t: Path, s: Path):
    _flat(t / "f", ["v_0.png", "v_1.png"])
    return _reduce(["--input", str(t / "f"), "--out", str(t / "o"), "reduction.hashk=3"]), ["reduction.hashk"], [t / "o"]


def c_truncated_nifti(t: Path, s: Path):
    (t / "v.nii.gz").write_bytes(b"\x1f\x8b\x08\x00broken")
    return _reduce(["--input", str(t / "v.nii.gz"), "--out", str(t / "o")]), ["v.nii.gz: not a readable NIfTI"], [t / "o"]


def c_nifti_bomb(t: Path, s: Path):
    _nifti_header_bomb(t / "bomb.nii")
    return _reduce(["--input", str(t / "bomb.nii"), "--out", str(t / "o")]), ["bomb.nii: header declares"], [t / "o"]


def c_nifti_nan(t: Path, s: Path):
    import nibabel as nib

    data = np.zeros((8, 8, 4), np.float32)
    data[1, 1, 1] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(t / "nan.nii.gz"))
    return _reduce(["--input", str(t / "nan.nii.gz"), "--out", str(t / "o")]), ["nan.nii.gz: 1 non-finite voxel"], [t / "o"]


def c_nifti_2d(t: Path, s: Path):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((8, 8), np.int16), np.eye(4)), str(t / "flat.nii"))
    return _reduce(["--input", str(t / "flat.nii"), "--out", str(t / "o")]), ["flat.nii: a 2-D image"], [t / "o"]


def c_png_bomb(t: Path, s: Path):
    _flat(t / "f", ["v_0.png"])
    _png_header_bomb(t / "f" / "v_1.png")
    return _reduce(["--input", str(t / "f"), "--out", str(t / "o")]), ["v_1.png", "too large"], [t / "o"]


def c_truncated_png(t: Path, s: Path):
    _flat(t / "f", ["v_0.png", "v_1.png"])
    b = (t / "f" / "v_1.png").read_bytes()
    (t / "f" / "v_1.png").write_bytes(b[: len(b) // 2])
    return _reduce(["--input", str(t / "f"), "--out", str(t / "o")]), ["v_1.png"], [t / "o"]


def c_png_16bit(t: Path, s: Path):
    from PIL import Image

    _flat(t / "f", ["v_0.png"])
    Image.fromarray(np.full((16, 16), 3000, np.uint16)).save(t / "f" / "v_1.png")
    return _reduce(["--input", str(t / "f"), "--out", str(t / "o")]), ["v_1.png", "more than 8 bits"], [t / "o"]


def c_not_a_png(t: Path, s: Path):
    _flat(t / "f", ["v_0.png"])
    (t / "f" / "v_1.png").write_bytes(b"this is text, not a PNG")
    return _reduce(["--input", str(t / "f"), "--out", str(t / "o")]), ["v_1.png: not a readable image"], [t / "o"]


def c_dicom_bad_header(t: Path, s: Path):
    d = _series(t)
    (d / "IM_0001.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage" * 3)
    return _reduce(["--input", str(d), "--out", str(t / "o")]), ["IM_0001.dcm: corrupt or unreadable DICOM header"], [t / "o"]


def c_dicom_size_bomb(t: Path, s: Path):
    d = _series(t)
    for f in sorted(d.iterdir()):
        _edit_dicom(f, Rows=60000, Columns=60000)
    return _reduce(["--input", str(d), "--out", str(t / "o")]), ["header declares", "60000"], [t / "o"]


def c_dicom_truncated_pixels(t: Path, s: Path):
    d = _series(t, n=4)
    b = (d / "IM_0003.dcm").read_bytes()
    (d / "IM_0003.dcm").write_bytes(b[:-300])
    return _reduce(["--input", str(d), "--out", str(t / "o")]), ["IM_0003.dcm"], [t / "o"]


def c_dicom_mixed_series(t: Path, s: Path):
    a, b = _series(t, "a"), _series(t, "b")
    for f in b.iterdir():
        shutil.copy(f, a / f"b_{f.name}")
    return _reduce(["--input", str(a), "--out", str(t / "o")]), ["mixes 2 DICOM series", "series_uid"], [t / "o"]


def c_dicom_not_ct(t: Path, s: Path):
    d = _series(t, "mr", modality="MR")
    return _reduce(["--input", str(d), "--out", str(t / "o")]), ["modality is MR, not CT", "allow_non_ct"], [t / "o"]


def c_dicom_no_rescale(t: Path, s: Path):
    d = _series(t, "nr", rescale=False)
    return _reduce(["--input", str(d), "--out", str(t / "o")]), ["missing RescaleSlope", "allow_missing_rescale"], [t / "o"]


def c_out_exists(t: Path, s: Path):
    _flat(t / "f", ["v_0.png", "v_1.png"])
    (t / "o").mkdir()
    (t / "o" / "keep.txt").write_text("mine")
    return _reduce(["--input", str(t / "f"), "--out", str(t / "o")]), ["o: already exists", "--overwrite"], []


def c_out_inside_input(t: Path, s: Path):
    _flat(t / "f", ["v_0.png", "v_1.png"])
    return _reduce(["--input", str(t / "f"), "--out", str(t / "f" / "o")]), ["is inside the input"], [t / "f" / "o"]


def c_name_collision(t: Path, s: Path):
    _flat(t / "f" / "a", ["v_0.png"])
    _flat(t / "f" / "b", ["v_1.png"])
    return _reduce(["--input", str(t / "f"), "--out", str(t / "o")]), ["volume name 'v'", "collide"], [t / "o"]


def c_reference_png_wrong_layout(t: Path, s: Path):
    _flat(t / "f", ["v_0.png", "v_1.png"])
    return _reduce(["--reference-png", "--input", str(t / "f"), "--out", str(t / "o")]), \
        ["no series folder with more than 10 files"], [t / "o"]


def c_deepnet_without_backbone(t: Path, s: Path):
    import os

    os.environ["PRETRAINLAB_RUNS"] = str(t / "no-runs")  # no pre-training run to fall back on (restored by the test)
    _flat(t / "f", ["v_0.png", "v_1.png"])
    return _reduce(["--input", str(t / "f"), "--method", "deepnet", "--out", str(t / "o")]), \
        ["deepnet needs a pre-trained backbone"], [t / "o"]


def c_deepnet_bad_ckpt(t: Path, s: Path):
    _flat(t / "f", ["v_0.png", "v_1.png"])
    (t / "junk.safetensors").write_bytes(b"not safetensors")
    return _reduce(["--input", str(t / "f"), "--method", "deepnet", "--ckpt", str(t / "junk.safetensors"),
                    "--out", str(t / "o")]), ["junk"], [t / "o"]


def c_export_missing(t: Path, s: Path):
    return ["ct", "export-png", "--input", str(t / "nope"), "--out", str(t / "o")], ["nope: not a folder"], [t / "o"]


def c_export_no_series(t: Path, s: Path):
    _series(t / "root" / "P1" / "study", "series", n=3)
    return ["ct", "export-png", "--input", str(t / "root"), "--out", str(t / "o")], \
        ["root: no series folder with more than 10 files"], [t / "o"]


def c_export_min_files(t: Path, s: Path):
    (t / "root").mkdir()
    return ["ct", "export-png", "--input", str(t / "root"), "--out", str(t / "o"), "--min-files", "-1"], \
        ["--min-files -1"], [t / "o"]


def c_export_out_exists(t: Path, s: Path):
    (t / "root").mkdir()
    (t / "o").mkdir()
    return ["ct", "export-png", "--input", str(t / "root"), "--out", str(t / "o")], ["o: already exists"], []


def c_export_broken_slice(t: Path, s: Path):
    d = _series(t / "root" / "P1" / "study", "series", n=12)
    (d / "IM_0005.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage" * 3)
    return ["ct", "export-png", "--input", str(t / "root"), "--out", str(t / "o")], \
        ["IM_0005.dcm: corrupt or unreadable DICOM header"], [t / "o"]


def c_pretrain_finetune_recipe(t: Path, s: Path):
    return ["ct", "pretrain", "--config", "finetune", "--profile", "smoke", "--data", str(s), "--out", str(t / "r")], \
        ["takes a pre-training recipe"], [t / "r"]


def c_pretrain_zero_epochs(t: Path, s: Path):
    return ["ct", "pretrain", "--profile", "smoke", "--data", str(s), "--out", str(t / "r"), "pretrain.epochs=0"], \
        ["pretrain.epochs"], [t / "r"]


def c_pretrain_bad_crops(t: Path, s: Path):
    return ["ct", "pretrain", "--profile", "smoke", "--data", str(s), "--out", str(t / "r"), "ssl.nmb_crops=[1,2]"], \
        ["ssl.nmb_crops"], [t / "r"]


def c_pretrain_broken_volume(t: Path, s: Path):
    (t / "d" / "pretrain").mkdir(parents=True)
    (t / "d" / "pretrain" / "x.nii.gz").write_bytes(b"junk")
    return ["ct", "pretrain", "--profile", "smoke", "--data", str(t / "d"), "--out", str(t / "r")], \
        ["x.nii.gz: not a readable NIfTI"], [t / "r"]


def c_pretrain_nan_lr(t: Path, s: Path):
    return ["ct", "pretrain", "--profile", "smoke", "--data", str(s), "--out", str(t / "r"), "train.lr=nan"], \
        ["train.lr"], [t / "r"]


def c_finetune_pretrain_recipe(t: Path, s: Path):
    return ["ct", "finetune", "--config", "hash6", "--profile", "smoke", "--data", str(s), "--out", str(t / "r")], \
        ["takes the fine-tuning recipe"], [t / "r"]


def c_finetune_missing_init(t: Path, s: Path):
    return ["ct", "finetune", "--profile", "smoke", "--data", str(s), "--init", str(t / "nope"), "--out", str(t / "r")], \
        ["nope"], [t / "r"]


def c_finetune_unfreeze_after_end(t: Path, s: Path):
    return ["ct", "finetune", "--profile", "smoke", "--data", str(s), "--out", str(t / "r"), "finetune.unfreeze_epoch=9"], \
        ["finetune.unfreeze_epoch"], [t / "r"]


def c_finetune_split_not_utf8(t: Path, s: Path):
    root = _covid(t / "d" / "downstream" / "covid", s)
    (root / "Data-split" / "COVID" / "trainCT_COVID.txt").write_bytes(b"\xff\xfe\xfa broken")
    return ["ct", "finetune", "--profile", "smoke", "--data", str(t / "d"), "--out", str(t / "r")], \
        ["trainCT_COVID.txt: not UTF-8"], [t / "r"]


def c_finetune_split_missing_image(t: Path, s: Path):
    root = _covid(t / "d" / "downstream" / "covid", s)
    txt = root / "Data-split" / "NonCOVID" / "valCT_NonCOVID.txt"
    txt.write_text(txt.read_text() + "ghost.png\n")
    return ["ct", "finetune", "--profile", "smoke", "--data", str(t / "d"), "--out", str(t / "r")], \
        ["valCT_NonCOVID.txt: line", "ghost.png is not in"], [t / "r"]


def c_finetune_npz_truncated(t: Path, s: Path):
    (t / "d" / "downstream" / "organ").mkdir(parents=True)
    b = (s / "downstream" / "organ" / "organsmnist.npz").read_bytes()
    (t / "d" / "downstream" / "organ" / "organsmnist.npz").write_bytes(b[: len(b) // 2])
    return ["ct", "finetune", "--profile", "smoke", "--task", "organ", "--data", str(t / "d"), "--out", str(t / "r")], \
        ["organsmnist.npz"], [t / "r"]


def c_finetune_npz_pickle(t: Path, s: Path):
    (t / "d" / "downstream" / "organ").mkdir(parents=True)
    np.savez(t / "d" / "downstream" / "organ" / "organsmnist.npz",
             train_images=np.array([object()], dtype=object), train_labels=np.zeros(1))
    return ["ct", "finetune", "--profile", "smoke", "--task", "organ", "--data", str(t / "d"), "--out", str(t / "r")], \
        ["organsmnist.npz", "pickle"], [t / "r"]


def c_finetune_npz_wrong_labels(t: Path, s: Path):
    (t / "d" / "downstream" / "organ").mkdir(parents=True)
    z = {f"{sp}_{k}": v for sp in ("train", "val", "test") for k, v in
         (("images", np.zeros((4, 28, 28), np.uint8)), ("labels", np.array([[0], [1], [2], [42]], np.uint8)))}
    np.savez(t / "d" / "downstream" / "organ" / "organsmnist.npz", **z)
    return ["ct", "finetune", "--profile", "smoke", "--task", "organ", "--data", str(t / "d"), "--out", str(t / "r")], \
        ["organsmnist.npz", "outside 0..10"], [t / "r"]


def c_finetune_no_brain(t: Path, s: Path):
    (t / "d").mkdir()
    return ["ct", "finetune", "--profile", "smoke", "--task", "brain", "--data", str(t / "d"), "--out", str(t / "r")], \
        ["class folder not found"], [t / "r"]


def c_eval_missing_ckpt(t: Path, s: Path):
    return ["ct", "eval", "--ckpt", str(t / "nope"), "--data", str(s)], ["nope"], []


def c_eval_pretrain_ckpt(t: Path, s: Path):
    from pretrainlab.ct import api

    api.pretrain(api.load("hash6", "smoke", ["train.progress=false"]), s, t / "pt")
    return ["ct", "eval", "--ckpt", str(t / "pt"), "--data", str(s), "--out", str(t / "m.json")], \
        ["not a fine-tuned CT classifier"], [t / "m.json"]


def c_bench_zero_volumes(t: Path, s: Path):
    return ["ct", "bench", "--volumes", "0", "--device", "cpu"], ["--volumes 0"], []


CASES = [v for k, v in sorted(globals().items()) if k.startswith("c_")]


@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__[2:])
def test_bad_input_gives_one_clean_line(case: Callable, tmp_path: Path, ct_smoke: Path,
                                        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv("PRETRAINLAB_RUNS", os.environ.get("PRETRAINLAB_RUNS", "runs"))  # undone after the case
    argv, expected, absent = case(tmp_path, ct_smoke)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    for text in expected:
        assert text in lines[0], (text, lines[0])
    for p in absent:
        assert not p.exists(), f"{p} left behind"
    left = [p.name for p in tmp_path.rglob(".*.tmp")]
    assert not left, left


# ------------------------------------------------------------------------------------------ demo functions
@pytest.fixture(scope="module")
def app():
    from pretrainlab.core.demo import load_app_module

    return load_app_module("ct")


def _put(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


DEMO_CASES = {
    "no upload": (lambda t: None, "please upload"),
    "wrong type": (lambda t: write_zip(t / "x.rar", {"a": b"1"}), "unsupported file type"),
    "empty nifti": (lambda t: _put(t / "e.nii", b""), "e.nii: file is empty"),
    "broken zip": (lambda t: _put(t / "b.zip", b"PK\x03\x04 not really"), "b.zip: not a readable zip"),
    "empty zip": (lambda t: write_zip(t / "z.zip", {}), "z.zip: the zip is empty"),
    "zip of text": (lambda t: write_zip(t / "t.zip", {"notes.txt": b"hello"}), "t.zip: no DICOM files"),
    "nifti bomb": (lambda t: _nifti_header_bomb(t / "bomb.nii"), "bomb.nii: header declares"),
    "zip with one slice": (lambda t: write_zip(t / "one.zip", {"a.dcm": (_series(t, n=1) / "IM_0000.dcm").read_bytes()}),
                           "one.zip"),
}


@pytest.mark.parametrize("name", sorted(DEMO_CASES))
def test_demo_upload_errors_name_the_upload(app, name: str, tmp_path: Path) -> None:
    from pretrainlab.core.data import DataError

    make, text = DEMO_CASES[name]
    with pytest.raises(DataError) as e:
        app.load_upload(make(tmp_path))
    assert text in str(e.value) and str(tmp_path) not in str(e.value)


@pytest.mark.parametrize("strategy,threshold,key", [("hash", -1, "reduction.hash_k"), ("hash", 1.5, "reduction.hash_k"),
                                                    ("every_n", 0, "reduction.every_n"), ("mi", 3.0, "reduction.mi_threshold"),
                                                    ("ssim", float("inf"), "reduction.ssim_threshold")])
def test_demo_reduce_refuses_bad_thresholds(app, strategy: str, threshold: float, key: str) -> None:
    from pretrainlab.core.config import ConfigError

    _, sl = app.phantom_case(1, 12, 16)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        app.reduce_case(sl, strategy, threshold)


def test_demo_reduce_refuses_an_unknown_strategy(app) -> None:
    from pretrainlab.core.data import DataError

    with pytest.raises(DataError, match="unknown strategy 'bogus'"):
        app.reduce_case(np.zeros((3, 8, 8), np.uint8), "bogus", 1.0)
