"""The CLI verbs in-process, reproduce on the smoke profile, bench."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pretrainlab.core.cli import main


def test_data_and_simulate_verbs(tmp_path: Path) -> None:
    assert main(["lidar", "simulate", "--out", str(tmp_path / "sim"), "--profile", "smoke", "--train", "2", "--val", "1",
                 "--sequences", "1", "--frames", "2", "--columns", "128"]) == 0
    assert len(list((tmp_path / "sim" / "training" / "velodyne").glob("*.bin"))) == 3
    assert (tmp_path / "sim" / "sequences" / "00" / "flow" / "000000.npy").exists()
    assert (tmp_path / "sim" / "manifest.json").exists()
    # an existing folder is refused with a clear error (exit 2), nothing overwritten
    assert main(["lidar", "simulate", "--out", str(tmp_path / "sim"), "--train", "1", "--val", "1"]) == 2


def test_pretrain_finetune_eval_detect_verbs(lidar_smoke: Path, tmp_path: Path, capsys) -> None:
    pre = tmp_path / "pre"
    assert main(["lidar", "pretrain", "--profile", "smoke", "--config", "essl3d", "--out", str(pre),
                 "--data", str(lidar_smoke), "train.max_steps=1", "train.progress=false"]) == 0
    det = tmp_path / "det"
    assert main(["lidar", "finetune", "--profile", "smoke", "--init", str(pre), "--out", str(det),
                 "--data", str(lidar_smoke), "train.progress=false"]) == 0
    assert main(["lidar", "eval", "--ckpt", str(det), "--data", str(lidar_smoke), "--out", str(tmp_path / "m.json")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert "3d_mAP_moderate" in m and "bev_Car_easy" in m
    out = tmp_path / "preds"
    assert main(["lidar", "detect", "--input", str(lidar_smoke / "training" / "velodyne"), "--ckpt", str(det),
                 "--out", str(out)]) == 0
    files = sorted(out.glob("*.txt"))
    assert len(files) == 12
    from pretrainlab.lidar.formats import Calib, read_kitti_label

    for f in files:  # KITTI label files with scores, readable by our own reader
        for o in read_kitti_label(f, Calib.default()):
            assert o.score is not None
    # a pre-training checkpoint is not a detector: clear error, exit 2
    assert main(["lidar", "detect", "--input", str(lidar_smoke / "training" / "velodyne" / "000000.bin"),
                 "--ckpt", str(pre), "--out", str(tmp_path / "x")]) == 2
    assert "not a detection checkpoint" in capsys.readouterr().err


def test_detect_rejects_bad_scan(lidar_detector_ckpt: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\0" * 20)
    assert main(["lidar", "detect", "--input", str(bad), "--ckpt", str(lidar_detector_ckpt), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.bin" in err and "multiple of 16" in err
    assert not (tmp_path / "o" / "bad.txt").exists()


def test_reproduce_smoke(lidar_smoke: Path, tmp_path: Path) -> None:
    from pretrainlab.core.results import validate

    out = tmp_path / "rep"
    assert main(["lidar", "reproduce", "--profile", "smoke", "--out", str(out), "--seeds", "0", "1", "2"]) == 0
    res = json.loads((out / "results.json").read_text())
    validate(res)
    assert [r["name"] for r in res["rows"]] == ["scratch", "invariant contrastive", "spatial only", "temporal only",
                                                "E-SSL3D (spatial + temporal)"]
    assert len(res["rows"][0]["metrics"]["mAP3D_mod@5pct"]["values"]) == 3
    assert len(res["claims"]) == 3 and res["deviations"]
    assert (out / "results.md").exists() and list(out.glob("*.png"))


def test_bench_cpu(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["lidar", "bench", "--device", "cpu", "--profile", "smoke", "--steps", "1", "--warmup", "0",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res[0]["scans_per_s"] > 0
    assert all(np.isfinite(r["samples_per_s"]) for r in res[1:])
