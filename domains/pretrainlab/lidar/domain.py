"""CLI registration of the LiDAR domain: ``pretrainlab lidar <verb>``.

Verbs: data, simulate, pretrain, finetune, eval, detect, reproduce, demo, bench. Heavy imports
stay inside the verb functions so ``pretrainlab --help`` is fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pretrainlab.core.cli import (
    Domain,
    Verb,
    add_bench_args,
    add_config_args,
    add_data_args,
    default_run_dir,
    demo_verb,
    reproduce_verb,
    run_generate,
)

NAME = "lidar"
RECIPES = Path(__file__).parent / "recipes"
DATA_VERSION = "2"  # bump when the simulator changes (cached synthetic data is regenerated)
PAPER = "Hegde et al. 2024, Equivariant Spatio-Temporal Self-Supervision for LiDAR Object Detection (ECCV)"


def load_pretrain(config: str | None, profile: str | None, overrides: list[str]):  # -> PretrainConfig
    from pretrainlab.core.config import load_config
    from pretrainlab.lidar.config import PretrainConfig

    return load_config(PretrainConfig, config or "essl3d", recipes_dir=RECIPES, profile=profile, overrides=overrides)


def load_detect(config: str | None, profile: str | None, overrides: list[str]):  # -> DetectConfig
    from pretrainlab.core.config import load_config
    from pretrainlab.lidar.config import DetectConfig

    return load_config(DetectConfig, config or "detect", recipes_dir=RECIPES, profile=profile, overrides=overrides)


def synthetic_data(profile: str, seed: int = 0) -> Path:
    """The simulator's KITTI-format data for ``profile`` (generated once into the cache)."""
    from pretrainlab.core.data import cached_synthetic
    from pretrainlab.lidar import simulator

    return cached_synthetic(NAME, simulator.generate, profile, seed, version=DATA_VERSION)


# ------------------------------------------------------------------------------------ verbs

def _data_args(p: argparse.ArgumentParser) -> None:
    add_data_args(p, "KITTI-format scans, labels, calib, sequences")


def _data(a: argparse.Namespace) -> int:
    from pretrainlab.lidar.simulator import generate

    return run_generate(generate, a)


def _simulate_args(p: argparse.ArgumentParser) -> None:
    _data_args(p)
    p.add_argument("--train", type=int, default=None, help="labelled train scans (default: the profile's)")
    p.add_argument("--val", type=int, default=None, help="labelled val scans")
    p.add_argument("--sequences", type=int, default=None, help="unlabelled sequences (with scene flow)")
    p.add_argument("--frames", type=int, default=None, help="scans per sequence")
    p.add_argument("--columns", type=int, default=None, help="azimuth steps per revolution (2048 = full resolution)")


def _simulate(a: argparse.Namespace) -> int:
    import time

    from pretrainlab.core.data import generate_dataset
    from pretrainlab.lidar import simulator

    prof = dict(simulator.PROFILES[a.profile])
    for k in ("train", "val", "sequences", "frames", "columns"):
        if getattr(a, k) is not None:
            prof[k] = getattr(a, k)
    simulator.PROFILES["custom"] = prof
    t0 = time.time()
    generate_dataset(simulator.generate, a.out, "custom", a.seed, overwrite=a.overwrite)
    n = prof["train"] + prof["val"] + prof["sequences"] * prof["frames"]
    print(f"{n / (time.time() - t0):.1f} scans/s including writing ({prof['columns']} columns x 64 beams)")
    return 0


def _pretrain(a: argparse.Namespace) -> int:
    from pretrainlab.lidar.pipeline import pretrain

    cfg = load_pretrain(a.config, a.profile, a.overrides)
    data = a.data or synthetic_data(cfg.data_profile)
    run = a.out or default_run_dir(NAME, f"pretrain-{cfg.method}")
    pretrain(cfg, data, run, resume=a.resume)
    print(run)
    return 0


def _finetune_args(p: argparse.ArgumentParser) -> None:
    add_config_args(p, "detect")
    p.add_argument("--init", type=Path, default=None, help="pre-training checkpoint / run folder (default: scratch)")


def _finetune(a: argparse.Namespace) -> int:
    from pretrainlab.lidar.pipeline import evaluate, finetune, save_metrics

    ov = list(a.overrides) + ([f"init={a.init}"] if a.init else [])
    cfg = load_detect(a.config, a.profile, ov)
    data = a.data or synthetic_data(cfg.data_profile)
    run = a.out or default_run_dir(NAME, "detect")
    task, res = finetune(cfg, data, run, resume=a.resume)
    from pretrainlab.lidar.formats import load_frames

    metrics = evaluate(task, load_frames(data, "val"))
    if res.checkpoint is not None:
        save_metrics(Path(res.checkpoint) / "metrics.json", metrics)
    print(run)
    return 0


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True, help="detection checkpoint or run folder")
    p.add_argument("--data", type=Path, default=None, help="KITTI / custom dataset folder (default: synthetic)")
    p.add_argument("--split", default="val")
    p.add_argument("--out", type=Path, default=None, help="metrics.json path (default: next to the checkpoint)")


def _eval(a: argparse.Namespace) -> int:
    from pretrainlab.core.checkpoint import find_checkpoint
    from pretrainlab.lidar.formats import load_frames
    from pretrainlab.lidar.pipeline import evaluate, load_detector, save_metrics

    task = load_detector(a.ckpt)
    data = a.data or synthetic_data(task.cfg.data_profile)
    metrics = evaluate(task, load_frames(data, a.split))
    out = a.out or find_checkpoint(a.ckpt) / "metrics.json"
    save_metrics(out, metrics)
    print({k: round(v, 2) for k, v in metrics.items() if "moderate" in k})
    return 0


def _detect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", type=Path, required=True, help="a point file (.bin/.pcd/.ply/.npy) or a folder of them")
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="folder for one label .txt per scan")
    p.add_argument("--calib", type=Path, default=None,
                   help="KITTI calib .txt (default: the KITTI object calibration; 'none' = OpenPCDet custom output)")


def _detect(a: argparse.Namespace) -> int:
    from pretrainlab.lidar.formats import Calib, read_calib
    from pretrainlab.lidar.pipeline import collect_inputs, detect_inputs, load_detector

    if a.calib is not None and str(a.calib).lower() == "none":
        calib = None
    else:
        calib = read_calib(a.calib) if a.calib else Calib.default()
    files = collect_inputs(a.input)
    written = detect_inputs(load_detector(a.ckpt), files, a.out, calib)
    print(f"wrote {len(written)} label files to {a.out}")
    return 0


def _bench_args(p: argparse.ArgumentParser) -> None:
    add_bench_args(p)
    p.add_argument("--profile", default=None, choices=["smoke", "tiny", "full"],
                   help="model / batch size (default: full on CUDA, tiny on CPU)")


def _bench(a: argparse.Namespace) -> int:
    import time

    import numpy as np
    import torch

    from pretrainlab.core.bench import bench_task, report
    from pretrainlab.core.train import select_device
    from pretrainlab.lidar.centerpoint_head import DetectorTask
    from pretrainlab.lidar.essl3d import ESSL3DTask
    from pretrainlab.lidar.simulator import LidarSimulator, Scene, SensorConfig

    dev = select_device(a.device)
    profile = a.profile or ("full" if dev.type == "cuda" else "tiny")
    pc = load_pretrain(None, profile, [])
    dc = load_detect(None, profile, [])
    bs_p = a.batch_size or pc.train.batch_size
    bs_d = a.batch_size or dc.train.batch_size
    rng = np.random.default_rng(0)
    sim = LidarSimulator(SensorConfig())
    scene = Scene(rng)
    sim.scan(scene, 0.0, rng)
    t0 = time.perf_counter()
    n_scans = 10
    scans = [sim.scan(scene, 0.1 * i, rng) for i in range(n_scans)]
    sim_rate = n_scans / (time.perf_counter() - t0)

    def scan_batch(bs: int, n: int, rg: list[float], radius: float | None) -> torch.Tensor:
        out = []
        for i in range(bs):
            p = scans[i % n_scans].points
            keep = (np.hypot(p[:, 0], p[:, 1]) < radius) if radius else \
                ((p[:, 0] >= rg[0]) & (p[:, 0] < rg[3]) & (p[:, 1] >= rg[1]) & (p[:, 1] < rg[4]))
            p = p[keep]
            out.append(torch.from_numpy(p[rng.integers(0, len(p), n)]))
        return torch.stack(out)

    r = pc.data.pretrain_range
    n = pc.data.max_points
    pts = scan_batch(bs_p, n, r, pc.data.crop_radius_ratio * (r[3] - r[0]) / 2)
    pre_batch = {"points": pts, "mask": torch.ones(bs_p, n, dtype=torch.bool), "prev_points": pts.clone(),
                 "prev_mask": torch.ones(bs_p, n, dtype=torch.bool), "prev_flow": torch.zeros(bs_p, n, 3)}
    res_p = bench_task(ESSL3DTask(pc), lambda: pre_batch, steps=a.steps, warmup=a.warmup, device=a.device,
                       precision=a.precision, compile=a.compile, name=f"essl3d-pretrain-{profile}",
                       extra={"points_per_scan": n, "grid": list(ESSL3DTask(pc).backbone.grid_shape(r))})
    nd = dc.data.max_points
    K = dc.data.max_objects
    boxes = torch.zeros(bs_d, K, 7)
    labels = torch.full((bs_d, K), -1, dtype=torch.long)
    for i in range(bs_d):
        objs = scans[i % n_scans].objects[:K]
        for j, o in enumerate(objs):
            boxes[i, j] = torch.from_numpy(o.box)
            labels[i, j] = ("Car", "Pedestrian", "Cyclist").index(o.cls)
    det_batch = {"points": scan_batch(bs_d, nd, dc.data.detect_range, None), "mask": torch.ones(bs_d, nd, dtype=torch.bool),
                 "boxes": boxes, "labels": labels}
    res_d = bench_task(DetectorTask(dc), lambda: det_batch, steps=a.steps, warmup=a.warmup, device=a.device,
                       precision=a.precision, compile=a.compile, name=f"detector-finetune-{profile}",
                       extra={"points_per_scan": nd})
    report([{"name": "simulator", "scans_per_s": sim_rate, "rays_per_scan": 64 * 2048, "device": "cpu (open3d)"},
            res_p, res_d], a.out)
    return 0


def get_domain() -> Domain:
    return Domain(
        name=NAME, title="LiDAR 3D detection with equivariant spatio-temporal self-supervision (E-SSL3D)",
        paper=PAPER, extra="lidar",
        verbs=[
            Verb("data", "write the simulated KITTI-format dataset (object split + sequences with flow)", _data_args, _data,
                 "pretrainlab lidar data --out data/lidar --profile tiny"),
            Verb("simulate", "run the 64-beam LiDAR simulator with custom sizes and report scans/s", _simulate_args,
                 _simulate, "pretrainlab lidar simulate --out data/sim --train 20 --val 10 --sequences 2 --frames 10"),
            Verb("pretrain", "E-SSL3D pre-training (or a baseline: --config spatial|temporal|invariant)",
                 lambda p: add_config_args(p, "essl3d"), _pretrain,
                 "pretrainlab lidar pretrain --profile smoke --config essl3d train.lr=1e-3"),
            Verb("finetune", "fine-tune the 3D detector (label_fraction=0.05 = 5 percent of the labels), then evaluate", _finetune_args,
                 _finetune, "pretrainlab lidar finetune --profile smoke --init runs/lidar/pretrain-essl3d-<time> label_fraction=0.2"),
            Verb("eval", "KITTI AP40 (BEV / 3D, easy / moderate / hard) of a detection checkpoint", _eval_args, _eval,
                 "pretrainlab lidar eval --ckpt runs/lidar/detect-<time> --data /data/kitti"),
            Verb("detect", "detect on point files, write KITTI label files with scores", _detect_args, _detect,
                 "pretrainlab lidar detect --input scans/ --ckpt runs/lidar/detect-<time> --out preds/"),
            reproduce_verb(NAME, "rows scratch / invariant / spatial / temporal / E-SSL3D x 5/20/100 percent labels, >= 3 seeds",
                           "pretrainlab.lidar.reproduce:reproduce"),
            Verb("bench", "simulator scans/s; pre-training and fine-tuning samples/s and peak memory", _bench_args, _bench,
                 "pretrainlab lidar bench --device cuda --precision bf16 --steps 200"),
            demo_verb(NAME),
        ],
    )
