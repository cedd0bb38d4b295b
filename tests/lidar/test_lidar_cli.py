"""The CLI verbs in-process: simulate, pretrain -> finetune -> eval -> detect -> kitti-eval, bench."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pretrainlab.core.cli import main


def test_simulate_verb(tmp_path: Path, capsys) -> None:
    assert main(["lidar", "simulate", "--out", str(tmp_path / "sim"), "--profile", "smoke", "--train", "2", "--val", "1",
                 "--sequences", "1", "--frames", "2", "--columns", "128"]) == 0
    root = tmp_path / "sim"
    assert len(list((root / "training" / "velodyne").glob("*.bin"))) == 3
    assert len(list((root / "training" / "image_2").glob("*.png"))) == 3
    assert (root / "sequences" / "00" / "flow" / "000000.npy").exists()
    assert (root / "manifest.json").exists()
    assert "scans/s" in capsys.readouterr().out
    # an existing folder is refused with a clear error (exit 2), nothing overwritten
    assert main(["lidar", "simulate", "--out", str(root), "--train", "1", "--val", "1"]) == 2
    # sizes are validated before anything is written
    assert main(["lidar", "simulate", "--out", str(tmp_path / "bad"), "--columns", "0"]) == 2
    assert "--columns: 0 is not allowed" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_pretrain_finetune_eval_detect_kitti_eval(lidar_smoke: Path, tmp_path: Path, capsys) -> None:
    pre = tmp_path / "pre"
    assert main(["lidar", "pretrain", "--profile", "smoke", "--config", "essl3d", "--out", str(pre),
                 "--data", str(lidar_smoke), "train.max_steps=1", "train.progress=false"]) == 0
    det = tmp_path / "det"
    assert main(["lidar", "finetune", "--profile", "smoke", "--init", str(pre), "--out", str(det),
                 "--data", str(lidar_smoke), "train.progress=false"]) == 0
    assert list(det.glob("checkpoints/step_*/metrics.json"))
    assert main(["lidar", "eval", "--ckpt", str(det), "--data", str(lidar_smoke), "--out", str(tmp_path / "m.json")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert "3d_mAP_moderate" in m and set(m["kitti"]) == {"Car", "Pedestrian", "Cyclist"}
    assert set(m["kitti"]["Car"]) >= {"3d", "bev", "bbox"}
    # detect on the val scans -> detection files that kitti-eval reads against the labels
    val = (lidar_smoke / "ImageSets" / "val.txt").read_text().split()
    scans = tmp_path / "scans"
    scans.mkdir()
    for i in val:
        (scans / f"{i}.bin").write_bytes((lidar_smoke / "training" / "velodyne" / f"{i}.bin").read_bytes())
    out = tmp_path / "preds"
    assert main(["lidar", "detect", "--input", str(scans), "--ckpt", str(det), "--out", str(out)]) == 0
    assert sorted(p.stem for p in out.glob("*.txt")) == sorted(val)
    for f in out.glob("*.txt"):
        for line in f.read_text().splitlines():
            assert len(line.split()) == 16 and line.split()[1:3] == ["-1", "-1"]
    (tmp_path / "val.txt").write_text("\n".join(val) + "\n")
    assert main(["lidar", "kitti-eval", "--labels", str(lidar_smoke / "training" / "label_2"), "--detections",
                 str(out), "--frames", str(tmp_path / "val.txt"), "--out", str(tmp_path / "ap.json")]) == 0
    ap = json.loads((tmp_path / "ap.json").read_text())
    # the same detections through `eval` and through files: the same official numbers (the files hold
    # 4 decimals, so the overlaps may move by ~1e-4)
    for c in ("Car", "Pedestrian", "Cyclist"):
        for metric in ("3d", "bev"):
            assert ap[c][metric]["moderate"] == pytest.approx(m["kitti"][c][metric]["moderate"], abs=0.5)
    # a pre-training checkpoint is not a detector: clear error, exit 2
    capsys.readouterr()
    assert main(["lidar", "detect", "--input", str(scans), "--ckpt", str(pre), "--out", str(tmp_path / "x")]) == 2
    assert "not a detection checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_finetune_default_recipe_is_the_detector(lidar_smoke: Path, tmp_path: Path) -> None:
    """The standard chain of the conformance test: finetune with no --config means the detect recipe."""
    assert main(["lidar", "finetune", "--profile", "smoke", "--data", str(lidar_smoke), "--out", str(tmp_path / "f"),
                 "train.progress=false"]) == 0
    meta = json.loads(next((tmp_path / "f").glob("checkpoints/step_*/meta.json")).read_text())
    assert "head" in meta["config"]


def test_detect_keeps_inputs_apart_and_writes_nothing_on_failure(lidar_detector_ckpt: Path, lidar_smoke: Path,
                                                                 tmp_path: Path, capsys) -> None:
    from pretrainlab.lidar.formats import read_velodyne_bin, write_pcd

    pts = read_velodyne_bin(lidar_smoke / "training" / "velodyne" / "000000.bin")
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    (d / "a.bin").write_bytes(pts.tobytes())
    np.save(d / "a.npy", pts)
    write_pcd(d / "sub" / "a.pcd", pts)
    out = tmp_path / "out"
    assert main(["lidar", "detect", "--input", str(d), "--ckpt", str(lidar_detector_ckpt), "--out", str(out),
                 "--calib", "none"]) == 0
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*.txt"))
    assert names == ["a.bin.txt", "a.npy.txt", "sub/a.txt"]  # colliding stems keep their extension
    for p in out.rglob("*.txt"):
        for line in p.read_text().splitlines():
            assert len(line.split()) == 9  # x y z dx dy dz heading class score
    # one bad file among good ones: exit 2, the output folder is left as it was
    (d / "zz.bin").write_bytes(b"\0" * 20)
    before = sorted(out.rglob("*"))
    assert main(["lidar", "detect", "--input", str(d), "--ckpt", str(lidar_detector_ckpt), "--out", str(out)]) == 2
    assert "zz.bin" in capsys.readouterr().err
    assert sorted(out.rglob("*")) == before


def test_reproduce_smoke(lidar_smoke: Path, tmp_path: Path) -> None:
    from pretrainlab.core.results import validate

    out = tmp_path / "rep"
    assert main(["lidar", "reproduce", "--profile", "smoke", "--out", str(out), "--seeds", "0", "1"]) == 0
    res = json.loads((out / "results.json").read_text())
    validate(res)
    assert [r["name"] for r in res["rows"]][:2] == ["scratch", "E-SSL3D (spatial + temporal)"]
    assert len(res["rows"][0]["metrics"]["mAP3D_mod@5pct"]["values"]) == 2
    assert sum(c["headline"] for c in res["claims"]) == 1 and res["deviations"]
    assert (out / "results.md").exists()
    # a finished table started again is re-measured from its pre-training up (the old backbone may be stale)
    meta = next((out / "pretrain-essl3d" / "checkpoints").glob("step_*")) / "meta.json"
    first = meta.stat().st_mtime_ns
    assert main(["lidar", "reproduce", "--profile", "smoke", "--out", str(out), "--seeds", "0", "1"]) == 0
    assert meta.stat().st_mtime_ns != first


def test_bench_cpu(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["lidar", "bench", "--device", "cpu", "--profile", "smoke", "--steps", "1", "--warmup", "0",
                 "--sim-scans", "2", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    sims = [r for r in res if r["name"].startswith("simulator")]
    assert {r["rays_per_scan"] for r in sims} == {64 * 1024, 64 * 2048}
    for r in sims:
        for k in ("raycast", "scan", "scan_flow"):
            assert r[f"{k}_scans_per_s"] > 0 and r[f"{k}_scans_per_cpu_s"] > 0
    assert all(np.isfinite(r["samples_per_s"]) for r in res if "samples_per_s" in r)
    with pytest.raises(SystemExit) as e:
        main(["lidar", "bench", "--steps", "0"])
    assert e.value.code == 2
