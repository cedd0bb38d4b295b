"""The command line of the LiDAR domain: ``pretrainlab lidar <verb>`` (nothing imports this module).

Standard verbs from ``api.SPEC`` (data, pretrain, reproduce, report, demo); this domain replaces
``finetune`` (the ``detect`` recipe by default, then the val evaluation), ``eval`` (``--split``) and
``bench`` (``--profile``) and adds ``simulate``, ``kitti-eval`` and ``detect``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pretrainlab.core.domain import (
    Verb,
    add_bench_args,
    add_config_args,
    add_data_args,
    default_run_dir,
    run_folder,
)
from pretrainlab.lidar.api import SPEC


def _nonneg(name: str, value: int | None, low: int = 0) -> None:
    from pretrainlab.core.config import ConfigError

    if value is not None and value < low:
        raise ConfigError(f"{name}: {value} is not allowed; expected an integer >= {low}")


def _json_out(flag: str, path: Path | None) -> None:
    """A JSON output path must not be a folder (the write would fail half-way)."""
    from pretrainlab.core.config import ConfigError

    if path is not None and path.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder; expected the path of a .json file")


def _simulate_args(p: argparse.ArgumentParser) -> None:
    add_data_args(p, "KITTI-format scans, labels, calib, images and sequences with flow")
    p.add_argument("--train", type=int, default=None, help="labelled train scans (default: the profile's)")
    p.add_argument("--val", type=int, default=None, help="labelled val scans")
    p.add_argument("--sequences", type=int, default=None, help="unlabelled sequences (with scene flow)")
    p.add_argument("--frames", type=int, default=None, help="scans per sequence (>= 2)")
    p.add_argument("--columns", type=int, default=None, help="azimuth steps per revolution (2048 = full resolution)")


def _simulate(a: argparse.Namespace) -> int:
    from pretrainlab.lidar import api

    sizes = {k: getattr(a, k) for k in ("train", "val", "sequences", "frames", "columns") if getattr(a, k) is not None}
    rate = api.simulate(a.out, a.profile, a.seed, overwrite=a.overwrite, **sizes)
    print(f"{a.out}: {rate:.1f} scans/s including writing")
    return 0


def _finetune_args(p: argparse.ArgumentParser) -> None:
    add_config_args(p, "detect")
    p.add_argument("--init", type=Path, default=None, help="pre-training checkpoint / run folder (default: scratch)")


def _finetune(a: argparse.Namespace) -> int:
    from pretrainlab.core.domain import write_metrics
    from pretrainlab.lidar import api

    cfg = api.load(a.config, a.profile, list(a.overrides))
    data = a.data or api.synthetic_data(cfg.data.profile)
    run = a.out or default_run_dir("lidar", f"finetune-{Path(str(a.config)).stem}")
    with run_folder(run, a.resume, a.overwrite) as r:
        task, res = api.finetune(cfg, data, r, init=a.init, resume=a.resume)
    metrics = api.evaluate_task(task.eval(), api.open_split(task.cfg, data, "val"))
    if res.checkpoint is not None:
        print(write_metrics(Path(res.checkpoint) / "metrics.json", metrics))
    print(run)
    return 0


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True, help="detection checkpoint or run folder")
    p.add_argument("--data", type=Path, default=None, help="KITTI object / custom folder (default: the synthetic set)")
    p.add_argument("--split", default="val", help="ImageSets/<split>.txt (default: val)")
    p.add_argument("--out", type=Path, default=None, help="metrics JSON (default: metrics.json beside the checkpoint)")


def _eval(a: argparse.Namespace) -> int:
    from pretrainlab.core.checkpoint import find_checkpoint
    from pretrainlab.core.domain import write_metrics
    from pretrainlab.lidar import api

    _json_out("--out", a.out)
    metrics = api.evaluate(a.ckpt, a.data, a.split)
    out = write_metrics(a.out or find_checkpoint(a.ckpt) / "metrics.json", metrics)
    print(out)
    print(api.format_table(metrics["kitti"]))
    return 0


def _kitti_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labels", type=Path, required=True, help="folder of KITTI label_2 files (15 fields, any KITTI type)")
    p.add_argument("--detections", type=Path, required=True,
                   help="folder of detection files of the same names (16 fields, score last; empty = none)")
    p.add_argument("--frames", type=Path, default=None, help="ids to evaluate, one per line (default: every NNNNNN.txt)")
    p.add_argument("--out", type=Path, required=True, help="JSON: {class: {3d|bev|bbox|aos: {easy|moderate|hard: AP}}}")


def _kitti_eval(a: argparse.Namespace) -> int:
    from pretrainlab.core.domain import write_metrics
    from pretrainlab.lidar import api

    _json_out("--out", a.out)
    table = api.evaluate_folders(a.labels, a.detections, a.frames)
    print(write_metrics(a.out, table))
    print(api.format_table(table))
    return 0


def _detect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", type=Path, required=True, help="a point file (.bin/.pcd/.ply/.npy) or a folder of them")
    p.add_argument("--ckpt", type=Path, required=True, help="detection checkpoint or run folder")
    p.add_argument("--out", type=Path, required=True, help="folder for one detection .txt per scan")
    p.add_argument("--calib", default=None,
                   help="KITTI calib .txt (default: the KITTI object calibration); 'none': no camera, OpenPCDet "
                        "custom lines in the LiDAR frame")
    p.add_argument("--image-shape", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="camera image size for the field of view and the 2D boxes (default: 375 1242)")


def _detect(a: argparse.Namespace) -> int:
    from pretrainlab.lidar import api

    if a.image_shape is not None:
        _nonneg("--image-shape", min(a.image_shape), 1)
    written = api.detect(a.ckpt, a.input, a.out, a.calib, a.image_shape)
    print(f"wrote {len(written)} detection files to {a.out}")
    return 0


def _bench_args(p: argparse.ArgumentParser) -> None:
    add_bench_args(p)
    p.add_argument("--profile", default=None, choices=["smoke", "tiny", "full"],
                   help="model / batch size (default: full on CUDA, tiny on CPU)")
    p.add_argument("--sim-scans", type=int, default=20, help="scans per simulator measurement")


def _bench(a: argparse.Namespace) -> int:
    from pretrainlab.core.bench import report
    from pretrainlab.lidar.bench import bench

    _nonneg("--steps", a.steps, 1)
    _nonneg("--warmup", a.warmup, 0)
    _nonneg("--batch-size", a.batch_size, 1)
    _nonneg("--sim-scans", a.sim_scans, 1)
    _json_out("--out", a.out)
    report(bench(a.device, a.steps, a.warmup, a.batch_size, a.precision, a.compile, a.profile, a.sim_scans), a.out)
    return 0


def get_domain() -> Any:
    return SPEC.cli([
        Verb("simulate", "run the 64-beam LiDAR simulator with custom sizes and report scans/s", _simulate_args,
             _simulate, "pretrainlab lidar simulate --out data/sim --train 20 --val 10 --sequences 2 --frames 10"),
        Verb("finetune", "fine-tune the 3D detector (label_fraction=0.05: 5 percent of the labels), then evaluate on val",
             _finetune_args, _finetune,
             "pretrainlab lidar finetune --profile smoke --init runs/lidar/pretrain-essl3d-<time> label_fraction=0.2"),
        Verb("eval", "official KITTI R40 AP (3D / BEV / 2D / AOS, easy / moderate / hard) of a detection checkpoint",
             _eval_args, _eval, "pretrainlab lidar eval --ckpt runs/lidar/finetune-detect-<time> --data /data/kitti"),
        Verb("kitti-eval", "official KITTI R40 AP of detection files against label_2 files (OpenPCDet's evaluation)",
             _kitti_eval_args, _kitti_eval,
             "pretrainlab lidar kitti-eval --labels kitti/training/label_2 --detections preds/ --frames val.txt --out ap.json"),
        Verb("detect", "detect on point files, write KITTI detection files (16 fields, score last)", _detect_args, _detect,
             "pretrainlab lidar detect --input scans/ --ckpt runs/lidar/finetune-detect-<time> --out preds/"),
        Verb("bench", "simulator scans/s; pre-training and fine-tuning samples/s and peak memory", _bench_args, _bench,
             "pretrainlab lidar bench --device cuda --precision bf16 --steps 200"),
    ])
