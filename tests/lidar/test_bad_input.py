"""A sweep of bad input and misuse over every lidar verb and the demo's prediction function (issue #23).

Each CLI case asserts: exit code 2, the last line of stderr is ``error: ...`` naming the file or the key,
no traceback, no output left behind; each demo case: a DataError naming the upload. A case that
hangs fails on the timeout.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pretrainlab.core.cli import main
from pretrainlab.core.data import DataError

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def pre_ckpt(lidar_smoke: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pretrainlab.lidar import api

    run = tmp_path_factory.mktemp("lidar_pre") / "run"
    api.pretrain(api.load("essl3d", "smoke", ["train.max_steps=1", "train.progress=false"]), lidar_smoke, run)
    return run


def _copy(lidar_smoke: Path, dst: Path) -> Path:
    for d in ("training", "ImageSets"):
        shutil.copytree(lidar_smoke / d, dst / d)
    return dst


# ------------------------------------------------------------------------------ point files (detect)

def _bin(p: Path) -> None:
    p.write_bytes(b"\0" * 18)


def _empty_bin(p: Path) -> None:
    p.write_bytes(b"")


def _nan_bin(p: Path) -> None:
    a = np.ones((8, 4), np.float32)
    a[2, 1] = np.nan
    a.tofile(p)


def _pickle_npy(p: Path) -> None:
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)


def _bomb_npy(p: Path) -> None:
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 4), }"
    header += " " * (117 - len(header)) + "\n"
    p.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 64)


def _truncated_npy(p: Path) -> None:
    np.save(p, np.ones((100, 4), np.float32))
    p.write_bytes(p.read_bytes()[:300])


def _narrow_npy(p: Path) -> None:
    np.save(p, np.ones((10, 2), np.float32))


def _text_npy(p: Path) -> None:
    np.save(p, np.array([["a", "b", "c"]]))


def _bomb_ply(p: Path) -> None:  # the 99-byte PLY of issue #23 that declared 999,999,999 vertices
    p.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 999999999\nproperty float x\n"
                  b"property float y\nproperty float z\nend_header\n" + b"\0" * 12)


def _truncated_ascii_ply(p: Path) -> None:
    p.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 10\nproperty float x\nproperty float y\nproperty float z\n"
                  b"end_header\n1 2 3\n4 5 6\n7 8 9\n")


def _ply_without_x(p: Path) -> None:
    p.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float a\nproperty float y\nproperty float z\n"
                  b"end_header\n1 2 3\n")


def _ply_faces_first(p: Path) -> None:
    p.write_bytes(b"ply\nformat ascii 1.0\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n3 0 1 2\n")


def _not_ply(p: Path) -> None:
    p.write_bytes(b"hello world, not a point cloud\n" * 4)


def _bomb_pcd(p: Path) -> None:
    p.write_bytes(b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1000000000000\nHEIGHT 1\n"
                  b"POINTS 1000000000000\nDATA binary\n" + b"\0" * 24)


def _truncated_ascii_pcd(p: Path) -> None:
    p.write_bytes(b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 5\nHEIGHT 1\nPOINTS 5\n"
                  b"DATA ascii\n1 2 3\n")


def _corrupt_compressed_pcd(p: Path) -> None:
    p.write_bytes(b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 4\nHEIGHT 1\nPOINTS 4\n"
                  b"DATA binary_compressed\n" + struct.pack("<II", 6, 48) + b"\xe0\xff\xff\x01\x02\x03")


def _pcd_without_fields(p: Path) -> None:
    p.write_bytes(b"VERSION 0.7\nSIZE 4 4 4\nTYPE F F F\nPOINTS 1\nDATA ascii\n1 2 3\n")


def _pcd_bad_mode(p: Path) -> None:
    p.write_bytes(b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nPOINTS 1\nDATA zipped\n1 2 3\n")


POINT_CASES: list[tuple[str, str, Callable[[Path], None], str]] = [
    ("bin-size", "scan.bin", _bin, "not a multiple of 16"),
    ("bin-empty", "scan.bin", _empty_bin, "empty scan"),
    ("bin-nan", "scan.bin", _nan_bin, "NaN / inf"),
    ("npy-pickle", "scan.npy", _pickle_npy, "Python objects"),
    ("npy-memory-bomb", "scan.npy", _bomb_npy, "header declares"),
    ("npy-truncated", "scan.npy", _truncated_npy, "truncated or corrupt"),
    ("npy-2-columns", "scan.npy", _narrow_npy, "expected an (N, >=3) point array"),
    ("npy-strings", "scan.npy", _text_npy, "expected a numeric array"),
    ("ply-memory-bomb", "scan.ply", _bomb_ply, "header declares"),
    ("ply-truncated-ascii", "scan.ply", _truncated_ascii_ply, "truncated"),
    ("ply-no-x", "scan.ply", _ply_without_x, "no 'x' field"),
    ("ply-mesh", "scan.ply", _ply_faces_first, "first element is not 'vertex'"),
    ("ply-garbage", "scan.ply", _not_ply, "not a PLY file"),
    ("pcd-memory-bomb", "scan.pcd", _bomb_pcd, "header declares"),
    ("pcd-truncated-ascii", "scan.pcd", _truncated_ascii_pcd, "truncated"),
    ("pcd-corrupt-lzf", "scan.pcd", _corrupt_compressed_pcd, "corrupt binary_compressed"),
    ("pcd-no-fields", "scan.pcd", _pcd_without_fields, "lacks FIELDS"),
    ("pcd-bad-mode", "scan.pcd", _pcd_bad_mode, "unsupported PCD DATA mode"),
    ("wrong-suffix", "scan.las", lambda p: p.write_bytes(b"x" * 32), "unsupported point file type"),
]


def _cli_error(capsys: pytest.CaptureFixture, argv: list[str], must: str, names: str) -> str:
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse refusing a flag: "pretrainlab lidar <verb>: error: argument ..."
        rc = e.code
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert rc == 2, err
    assert "Traceback" not in err
    assert lines and (lines[-1].startswith("error: ") or ": error: argument " in lines[-1]), err
    assert must in lines[-1] and names in lines[-1], lines[-1]
    return lines[-1]


@pytest.mark.parametrize("case,name,make,must", POINT_CASES, ids=[c[0] for c in POINT_CASES])
def test_detect_refuses_bad_point_files(case: str, name: str, make: Callable[[Path], None], must: str,
                                        lidar_detector_ckpt: Path, lidar_smoke: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "good.bin").write_bytes((lidar_smoke / "training" / "velodyne" / "000000.bin").read_bytes())
    make(d / name)
    target = d if name.endswith((".bin", ".npy", ".ply", ".pcd")) else d / name
    _cli_error(capsys, ["lidar", "detect", "--input", str(target), "--ckpt", str(lidar_detector_ckpt),
                        "--out", str(tmp_path / "out")], must, name)
    assert not (tmp_path / "out").exists()  # the good file's detections are not written either


# ------------------------------------------------------------------------------ dataset files (eval)

def _label_non_utf8(root: Path) -> str:
    (root / "training" / "label_2" / "000008.txt").write_bytes(b"Car 0.00 0 0.1 \xff\xfe")
    return "000008.txt"


def _label_fields(root: Path) -> str:
    (root / "training" / "label_2" / "000008.txt").write_text("Car 0 0 1 2 3\n")
    return "000008.txt"


def _label_type(root: Path) -> str:
    (root / "training" / "label_2" / "000008.txt").write_text("Spaceship 0 0 0 1 2 3 4 1.5 1.6 4 1 2 10 0\n")
    return "000008.txt"


def _label_nan(root: Path) -> str:
    (root / "training" / "label_2" / "000008.txt").write_text("Car 0 0 0 1 2 3 4 nan 1.6 4 1 2 10 0\n")
    return "000008.txt"


def _label_occlusion(root: Path) -> str:
    (root / "training" / "label_2" / "000008.txt").write_text("Car 0 1.5 0 1 2 3 4 1.5 1.6 4 1 2 10 0\n")
    return "000008.txt"


def _calib_key(root: Path) -> str:
    p = root / "training" / "calib" / "000008.txt"
    p.write_text("\n".join(ln for ln in p.read_text().splitlines() if not ln.startswith("P2")))
    return "000008.txt"


def _calib_text(root: Path) -> str:
    (root / "training" / "calib" / "000008.txt").write_text("P2: a b c\n")
    return "000008.txt"


def _calib_missing(root: Path) -> str:
    (root / "training" / "calib" / "000008.txt").unlink()
    return "000008.txt"


def _image_missing(root: Path) -> str:
    (root / "training" / "image_2" / "000008.png").unlink()
    return "000008.png"


def _image_garbage(root: Path) -> str:
    (root / "training" / "image_2" / "000008.png").write_bytes(b"not a png" * 10)
    return "000008.png"


def _split_missing(root: Path) -> str:
    (root / "ImageSets" / "val.txt").unlink()
    return "val.txt"


def _split_traversal(root: Path) -> str:
    (root / "ImageSets" / "val.txt").write_text("000008\n../../etc/passwd\n")
    return "val.txt"


def _scan_truncated(root: Path) -> str:
    p = root / "training" / "velodyne" / "000008.bin"
    p.write_bytes(p.read_bytes()[:1001])
    return "000008.bin"


def _not_a_dataset(root: Path) -> str:
    shutil.rmtree(root / "training")
    return str(root)


DATA_CASES = [
    ("label-non-utf8", _label_non_utf8, "not UTF-8"), ("label-fields", _label_fields, "6 fields"),
    ("label-type", _label_type, "unknown type 'Spaceship'"), ("label-nan", _label_nan, "NaN / inf"),
    ("label-occlusion", _label_occlusion, "not an integer"), ("calib-key", _calib_key, "lacks 'P2'"),
    ("calib-text", _calib_text, "non-numeric"), ("calib-missing", _calib_missing, "calibration file missing"),
    ("image-missing", _image_missing, "camera image missing"), ("image-garbage", _image_garbage, "not a readable image"),
    ("split-missing", _split_missing, "split file missing"), ("split-traversal", _split_traversal, "not a file name"),
    ("scan-truncated", _scan_truncated, "not a multiple of 16"), ("not-a-dataset", _not_a_dataset, "not a KITTI object"),
]


@pytest.mark.parametrize("case,make,must", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_eval_refuses_bad_dataset_files(case: str, make: Callable[[Path], str], must: str, lidar_detector_ckpt: Path,
                                        lidar_smoke: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _copy(lidar_smoke, tmp_path / "data")
    names = make(root)
    out = tmp_path / "m.json"
    _cli_error(capsys, ["lidar", "eval", "--ckpt", str(lidar_detector_ckpt), "--data", str(root), "--out", str(out)],
               must, names)
    assert not out.exists()


# ------------------------------------------------------------------------------ kitti-eval

def _kitti_folders(tmp_path: Path, det_text: str = "", lab_text: str | None = None) -> tuple[Path, Path]:
    lab, det = tmp_path / "lab", tmp_path / "det"
    lab.mkdir()
    det.mkdir()
    (lab / "000000.txt").write_text(lab_text if lab_text is not None else
                                    "Car 0.00 0 0.1 100 100 150 160 1.5 1.6 4.0 0 1.65 20 0.2\n")
    (det / "000000.txt").write_text(det_text)
    return lab, det


KITTI_EVAL_CASES = [
    ("labels-missing", lambda t: (t / "nope", _kitti_folders(t)[1], None), "label folder not found", "nope"),
    ("detections-missing", lambda t: (_kitti_folders(t)[0], t / "nodet", None), "detection folder not found", "nodet"),
    ("det-15-fields", lambda t: (*_kitti_folders(t, "Car -1 -1 0 1 2 3 4 1.5 1.6 4 1 2 10 0\n"), None),
     "15 fields, expected 16", "000000.txt"),
    ("det-file-missing", lambda t: (*_kitti_folders(t), "extra"), "label file missing", "000001.txt"),
    ("frames-duplicate", lambda t: (*_kitti_folders(t), "dup"), "listed twice", "ids.txt"),
    ("no-frames", lambda t: (*_kitti_folders(t, lab_text=""), "empty"), "no frame to evaluate", "ids.txt"),
    ("label-bad-number", lambda t: (*_kitti_folders(t, lab_text="Car x 0 0 1 2 3 4 1 1 1 1 1 1 1\n"), None),
     "non-numeric", "000000.txt"),
]


@pytest.mark.parametrize("case,make,must,names", KITTI_EVAL_CASES, ids=[c[0] for c in KITTI_EVAL_CASES])
def test_kitti_eval_refuses_bad_input(case: str, make: Callable, must: str, names: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    lab, det, frames = make(tmp_path)
    argv = ["lidar", "kitti-eval", "--labels", str(lab), "--detections", str(det), "--out", str(tmp_path / "ap.json")]
    if frames is not None:
        ids = {"extra": "000000\n000001\n", "dup": "000000\n000000\n", "empty": "\n"}[frames]
        (tmp_path / "ids.txt").write_text(ids)
        argv += ["--frames", str(tmp_path / "ids.txt")]
    _cli_error(capsys, argv, must, names)
    assert not (tmp_path / "ap.json").exists()


# ------------------------------------------------------------------------------ config keys and flags

CONFIG_CASES = [
    (["pretrain", "--profile", "smoke", "train.batch_size=0"], "train.batch_size"),
    (["pretrain", "--profile", "smoke", "data.flow_source=bogus"], "data.flow_source"),
    (["pretrain", "--profile", "smoke", "spatial.rotation_bins=1"], "spatial.rotation_bins"),
    (["pretrain", "--profile", "smoke", "spatial.rotation_range=[1.0,-1.0]"], "spatial.rotation_range"),
    (["pretrain", "--profile", "smoke", "temporal.ema_decay=1.5"], "temporal.ema_decay"),
    (["pretrain", "--profile", "smoke", "weights.flow=-1"], "weights.flow"),
    (["pretrain", "--profile", "smoke", "data.pretrain_range=[0,0,0,0,0,0]"], "data.pretrain_range"),
    (["pretrain", "--profile", "smoke", "--config", "detect"], "--config"),
    (["finetune", "--profile", "smoke", "label_fraction=0"], "label_fraction"),
    (["finetune", "--profile", "smoke", "head.classes=[Car,Van]"], "head.classes"),
    (["finetune", "--profile", "smoke", "data.image_shape=[0,100]"], "data.image_shape"),
    (["finetune", "--profile", "smoke", "backbone.voxel_size=0"], "backbone.voxel_size"),
    (["finetune", "--profile", "smoke", "head.nms_iou=2"], "head.nms_iou"),
    (["finetune", "--profile", "smoke", "--config", "essl3d"], "--config"),
    (["simulate", "--out", "{tmp}/sim", "--frames", "1"], "--frames"),
    (["simulate", "--out", "{tmp}/sim", "--train", "-3"], "--train"),
    (["bench", "--steps", "0"], "--steps"),
    (["bench", "--sim-scans", "0"], "--sim-scans"),
    (["kitti-eval", "--labels", "{tmp}", "--detections", "{tmp}", "--out", "{tmp}"], "--out"),
]


@pytest.mark.parametrize("argv,key", CONFIG_CASES, ids=[" ".join(c[0][:1] + c[0][-1:]) for c in CONFIG_CASES])
def test_bad_keys_and_flags_are_named_before_anything_is_written(argv: list[str], key: str, lidar_smoke: Path,
                                                                 tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if args[0] in ("pretrain", "finetune"):
        args += ["--data", str(lidar_smoke), "--out", str(tmp_path / "run")]
    _cli_error(capsys, ["lidar", *args], "", key)
    assert not (tmp_path / "run").exists() and not (tmp_path / "sim").exists()


def test_detect_image_shape_and_calib_are_checked(lidar_detector_ckpt: Path, lidar_smoke: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    scan = lidar_smoke / "training" / "velodyne" / "000000.bin"
    base = ["lidar", "detect", "--input", str(scan), "--ckpt", str(lidar_detector_ckpt), "--out", str(tmp_path / "o")]
    _cli_error(capsys, [*base, "--image-shape", "0", "10"], "", "--image-shape")
    _cli_error(capsys, [*base, "--calib", str(tmp_path / "nocalib.txt")], "calibration file missing", "nocalib.txt")
    (tmp_path / "file").write_text("x")
    _cli_error(capsys, [*base[:-1], str(tmp_path / "file")], "not a folder", "file")
    (tmp_path / "empty").mkdir()
    _cli_error(capsys, ["lidar", "detect", "--input", str(tmp_path / "empty"), "--ckpt", str(lidar_detector_ckpt),
                        "--out", str(tmp_path / "o")], "no point files", "empty")
    assert not (tmp_path / "o").exists()


def test_checkpoints_are_checked(pre_ckpt: Path, lidar_smoke: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture) -> None:
    _cli_error(capsys, ["lidar", "eval", "--ckpt", str(pre_ckpt), "--data", str(lidar_smoke)],
               "not a detection checkpoint", str(pre_ckpt.name))
    _cli_error(capsys, ["lidar", "eval", "--ckpt", str(tmp_path / "none")], "", "none")


def test_temporal_pretraining_needs_sequences(lidar_smoke: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _copy(lidar_smoke, tmp_path / "data")  # a KITTI object folder: no sequence
    _cli_error(capsys, ["lidar", "pretrain", "--profile", "smoke", "--config", "temporal", "--data", str(root),
                        "--out", str(tmp_path / "run")], "no pair of consecutive scans", "data")
    assert not (tmp_path / "run").exists()


def test_bad_flow_files_name_the_file(lidar_smoke: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = lidar_smoke / "sequences" / "00"
    shutil.copytree(src, tmp_path / "data" / "sequences" / "00")
    flow = tmp_path / "data" / "sequences" / "00" / "flow" / "000000.npy"
    np.save(flow, np.full((5, 3), np.nan, np.float32))
    _cli_error(capsys, ["lidar", "pretrain", "--profile", "smoke", "--config", "temporal", "--data",
                        str(tmp_path / "data"), "--out", str(tmp_path / "run"), "train.progress=false"],
               "expected (", "000000.npy")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ the demo

@pytest.fixture(scope="module")
def app(lidar_detector_ckpt: Path):
    from pretrainlab.core.demo import load_app_module

    return load_app_module("lidar")


DEMO_CASES = [
    ("cloud.las", lambda p: p.write_bytes(b"x" * 20), "unsupported file type"),
    ("empty.bin", lambda p: p.write_bytes(b""), "file is empty"),
    ("bomb.ply", _bomb_ply, "header declares"),
    ("bomb.npy", _bomb_npy, "header declares"),
    ("far.npy", lambda p: np.save(p, np.array([[500, 500, 0, 0]], np.float32)), "no points inside"),
    ("behind.npy", lambda p: np.save(p, np.c_[-np.ones((50, 1)) * 10, np.zeros((50, 3))].astype(np.float32)),
     "no points inside"),
]


@pytest.mark.parametrize("name,make,must", DEMO_CASES, ids=[c[0] for c in DEMO_CASES])
def test_demo_refuses_bad_uploads(name: str, make: Callable[[Path], None], must: str, app, lidar_detector_ckpt: Path,
                                  tmp_path: Path) -> None:
    make(tmp_path / name)
    with pytest.raises(DataError, match=must) as e:
        app.predict(str(tmp_path / name), 0, lidar_detector_ckpt)
    assert name in str(e.value) or "(scan)" in str(e.value)


def test_demo_sample_index_is_checked(app, lidar_detector_ckpt: Path) -> None:
    with pytest.raises(DataError, match="pick a simulated scan between 0 and"):
        app.predict(None, 99, lidar_detector_ckpt)
