"""The public Python API of the LiDAR domain: what the CLI, ``reproduce.py``, ``bench.py`` and the demo call.

    from pretrainlab.lidar import api
    data = api.synthetic_data("smoke")
    api.pretrain(api.load("essl3d", "smoke"), data, Path("runs/pre"))
    api.finetune(api.load("detect", "smoke"), data, Path("runs/det"), init=Path("runs/pre"))
    metrics = api.evaluate(Path("runs/det"), data)                       # official KITTI R40 AP
    table = api.evaluate_folders(Path("label_2"), Path("detections"))     # the same, on label files

Heavy imports stay inside the functions (this module is imported by ``pretrainlab --help``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pretrainlab.core.domain import DomainSpec

PAPER = "Hegde et al. 2024, Equivariant Spatio-Temporal Self-Supervision for LiDAR Object Detection (ECCV)"
SPEC = DomainSpec(
    name="lidar", title="LiDAR 3D detection with equivariant spatio-temporal self-supervision (E-SSL3D)",
    paper=PAPER, package="pretrainlab.lidar", config="pretrainlab.lidar.config:PretrainConfig",
    configs={"detect": "pretrainlab.lidar.config:DetectConfig"}, default_recipe="essl3d",
    generator="pretrainlab.lidar.synthetic:generate", recipes=Path(__file__).parent / "recipes", data_version="5",
    data_help="the simulated KITTI-format data (object split with labels / calib / images, sequences with flow)",
    readers={
        "KITTI object (training/{velodyne,label_2,calib,image_2}, ImageSets)": "pretrainlab.lidar.formats:LabelledSplit",
        "KITTI label / detection file (label_2, 15 / 16 fields)": "pretrainlab.lidar.formats:read_kitti_annos",
        "KITTI calib": "pretrainlab.lidar.formats:read_calib",
        "scan sequences (KITTI odometry / SemanticKITTI, KITTI raw, KITTI-360)": "pretrainlab.lidar.formats:list_sequences",
        "KITTI .bin scan": "pretrainlab.lidar.formats:read_velodyne_bin",
        ".pcd / .ply / .npy point cloud": "pretrainlab.lidar.formats:read_points",
        "OpenPCDet custom (points/*.npy, labels/*.txt)": "pretrainlab.lidar.formats:read_custom_label",
        "scene flow (.npy (N, 3) / .npz index + flow)": "pretrainlab.lidar.temporal_flow:read_flow",
    },
    reproduce_help="scratch vs E-SSL3D (and the ablation rows) x label fractions, paired over seeds",
    examples={
        "data": "pretrainlab lidar data --out data/lidar --profile tiny",
        "pretrain": "pretrainlab lidar pretrain --profile smoke --config essl3d train.lr=1e-3",
        "finetune": "pretrainlab lidar finetune --profile smoke --init runs/lidar/pretrain-essl3d-<time> label_fraction=0.2",
        "eval": "pretrainlab lidar eval --ckpt runs/lidar/finetune-detect-<time> --data /data/kitti --split val",
        "bench": "pretrainlab lidar bench --device cuda --precision bf16 --steps 200",
    },
)
load = SPEC.load
synthetic_data = SPEC.synthetic_data


# ------------------------------------------------------------------------------------- training

def pretrain(cfg: Any, data: Path, run: Path, resume: bool = False) -> tuple[Any, Any]:
    """E-SSL3D (or a baseline row, ``cfg.method``) pre-training on the scan sequences under ``data``."""
    from pretrainlab.core.train import Trainer, seed_everything
    from pretrainlab.lidar.config import PretrainConfig
    from pretrainlab.lidar.datasets import PretrainPairs
    from pretrainlab.lidar.essl3d import ESSL3DTask

    _expect(cfg, PretrainConfig, "pretrain", "essl3d | spatial | temporal | invariant")
    seed_everything(cfg.train.seed)
    task = ESSL3DTask(cfg)
    ds = PretrainPairs(Path(data), cfg.data, need_flow=task.uses_temporal)
    res = Trainer(cfg.train, run, full_config=cfg).fit(task, ds, resume=resume)
    return task, res


def _expect(cfg: Any, cls: type, verb: str, recipes: str) -> None:
    from pretrainlab.core.config import ConfigError

    if not isinstance(cfg, cls):
        raise ConfigError(f"--config: {verb} needs a {cls.__name__} recipe ({recipes}), got a {type(cfg).__name__}")


def open_split(cfg: Any, data: Path, split: str) -> Any:
    """A labelled split of a KITTI object / OpenPCDet custom folder (``formats.LabelledSplit``, streamed)."""
    from pretrainlab.lidar.formats import LabelledSplit

    shape = tuple(cfg.data.image_shape) if cfg.data.image_shape else None
    return LabelledSplit(Path(data), split, image_shape=shape)  # type: ignore[arg-type]


def finetune(cfg: Any, data: Path, run: Path, init: Path | None = None, resume: bool = False) -> tuple[Any, Any]:
    """Fine-tune the detector on ``label_fraction`` of the train split, from ``init`` (or ``cfg.init``) or scratch."""
    from pretrainlab.core.checkpoint import find_checkpoint, load_weights
    from pretrainlab.core.train import Trainer, seed_everything
    from pretrainlab.lidar.centerpoint_head import DetectorTask
    from pretrainlab.lidar.config import DetectConfig
    from pretrainlab.lidar.datasets import DetectionFrames, label_subset

    _expect(cfg, DetectConfig, "finetune", "detect")
    if init is not None:
        cfg = dataclasses.replace(cfg, init=str(init))
    seed_everything(cfg.train.seed)
    task = DetectorTask(cfg)
    if cfg.init:
        load_weights(task.backbone, find_checkpoint(Path(cfg.init)) / "model.safetensors", strict=True, prefix="backbone.")
    split = open_split(cfg, data, "train")
    sub = split.subset(label_subset(len(split), cfg.label_fraction, cfg.train.seed).tolist())
    ds = DetectionFrames(sub, cfg.data, tuple(cfg.head.classes))
    train_cfg = cfg.train
    if len(ds) < train_cfg.batch_size:  # 5 % of a small set: fewer scans than a batch
        train_cfg = dataclasses.replace(train_cfg, batch_size=len(ds))
    res = Trainer(train_cfg, run, full_config=cfg).fit(task, ds, resume=resume)
    return task, res


def load_task(ckpt: Path) -> tuple[Any, Any]:
    """A detection checkpoint (run folder or step folder) -> ``(DetectorTask in eval mode, DetectConfig)``."""
    from pretrainlab.core.checkpoint import CheckpointError, find_checkpoint, load_weights, read_meta
    from pretrainlab.core.config import ConfigError, from_dict
    from pretrainlab.lidar.centerpoint_head import DetectorTask
    from pretrainlab.lidar.config import DetectConfig

    folder = find_checkpoint(Path(ckpt))
    conf = read_meta(folder).get("config") or {}
    if "head" not in conf:
        raise CheckpointError(f"{folder}: not a detection checkpoint (a pre-training one? fine-tune it first)")
    try:
        cfg = from_dict(DetectConfig, conf)
    except ConfigError as e:
        raise CheckpointError(f"{folder}: its config does not fit this version of the lidar domain ({e})") from e
    task = DetectorTask(cfg)
    load_weights(task, folder / "model.safetensors")
    return task.eval(), cfg


# ------------------------------------------------------------------------------------- detection

def model_points(frame: Any, cfg: Any) -> Any:
    """The points the detector sees: the camera field of view (``data.fov_only``) and the detection range."""
    from pretrainlab.lidar.datasets import detector_points

    return detector_points(frame, cfg.data)


def predict_frames(task: Any, frames: list[Any], batch: int = 4) -> list[list[Any]]:
    """Detections (LiDAR-frame :class:`~pretrainlab.lidar.formats.Object3D`) of frames in memory."""
    import numpy as np
    import torch

    device = next(task.parameters()).device
    out: list[list[Any]] = []
    for i in range(0, len(frames), batch):
        scans = [model_points(f, task.cfg) for f in frames[i:i + batch]]
        n = max(1, max(len(c) for c in scans))
        pts = torch.zeros(len(scans), n, 4)
        mask = torch.zeros(len(scans), n, dtype=torch.bool)
        for j, c in enumerate(scans):
            pts[j, :len(c)] = torch.from_numpy(np.ascontiguousarray(c[:, :4], dtype=np.float32))
            mask[j, :len(c)] = True
        out += task.predict(pts.to(device), mask.to(device))
    return out


def iter_predictions(task: Any, split: Any, batch: int = 4) -> Iterator[tuple[int, Any, list[Any]]]:
    """``(index, frame, detections)`` over a split, reading ``batch`` frames at a time (streamed)."""
    from tqdm.auto import tqdm

    for i in tqdm(range(0, len(split), batch), desc="detect", unit="batch", leave=False):
        idx = list(range(i, min(i + batch, len(split))))
        frames = [split[j] for j in idx]
        yield from zip(idx, frames, predict_frames(task, frames, batch))


def detection_annos(frame: Any, dets: list[Any]) -> Any:
    """Detections as the KITTI evaluation reads them: camera frame, projected 2D boxes, alpha (OpenPCDet's
    ``generate_prediction_dicts``); OpenPCDet's pseudo-camera conversion without calibration."""
    from pretrainlab.lidar.formats import custom_objects_to_annos, objects_to_annos

    if frame.calib is None:
        return custom_objects_to_annos(dets)
    return objects_to_annos(dets, frame.calib, frame.image_shape, detections=True)


def evaluate_task(task: Any, split: Any) -> dict[str, Any]:
    """The official KITTI R40 AP of a detector on a split: flat metrics + the ``"kitti"`` table."""
    from pretrainlab.lidar.kitti_eval import kitti_eval, summarize

    cfg = task.cfg
    gts, dts, n = [], [], 0
    for _i, f, dets in iter_predictions(task, split):
        gts.append(f.eval_annos())
        dts.append(detection_annos(f, dets))
        n += len(dets)
    table = kitti_eval(gts, dts, tuple(cfg.head.classes))
    res: dict[str, Any] = summarize(table, cfg.eval.difficulty)
    res["kitti"] = table
    print(f"evaluated {len(split)} scans, {n} detections: 3D mAP ({cfg.eval.difficulty}, R40) "
          f"{res['3d_mAP_' + cfg.eval.difficulty]:.2f}")
    return res


def evaluate(ckpt: Path, data: Path | None = None, split: str = "val") -> dict[str, Any]:
    """A detection checkpoint's official KITTI R40 AP on ``split`` of ``data`` (default: its synthetic set)."""
    task, cfg = load_task(ckpt)
    data = Path(data) if data else synthetic_data(cfg.data.profile)
    return evaluate_task(task, open_split(cfg, data, split))


def evaluate_folders(labels: Path, detections: Path, frames: Path | None = None) -> dict[str, Any]:
    """``kitti-eval``: the official KITTI R40 AP of detection files against ``label_2`` files."""
    from pretrainlab.lidar.kitti_eval import evaluate_folders as _eval

    return _eval(labels, detections, frames)


def format_table(table: dict[str, Any]) -> str:
    """A text table of a :func:`evaluate_folders` / ``metrics["kitti"]`` result."""
    from pretrainlab.lidar.kitti_eval import format_table as fmt

    return fmt(table)


def collect_inputs(path: Path) -> list[Path]:
    """A point file, or every point file under a folder (recursively, sorted)."""
    from pretrainlab.core.data import DataError
    from pretrainlab.lidar.formats import POINT_SUFFIXES

    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in POINT_SUFFIXES and p.is_file())
        if not files:
            raise DataError(path, f"no point files ({', '.join(POINT_SUFFIXES)}) in this folder")
        return files
    if not path.exists():
        raise DataError(path, "input not found")
    return [path]


def output_names(inputs: list[Path], base: Path | None) -> list[str]:
    """One output name per input, ``<relative folder>/<stem>.txt``; inputs whose names would collide
    (``a.bin`` and ``a.pcd``) keep their extension (``a.bin.txt``, ``a.pcd.txt``)."""
    rel = [p.relative_to(base) if base is not None else Path(p.name) for p in inputs]
    plain = [str(r.with_suffix(".txt")) for r in rel]
    return [n if plain.count(n) == 1 else str(r) + ".txt" for n, r in zip(plain, rel)]


def detect(ckpt: Path, inputs: Path, out: Path, calib: Path | str | None = None,
           image_shape: tuple[int, int] | None = None) -> list[Path]:
    """Detect on point files; one detection file per scan in ``out``.

    ``calib``: a KITTI calib file, None for the KITTI object benchmark's own calibration, or ``"none"``
    (no camera). With a camera: detection files as OpenPCDet writes them (16 fields, ``-1 -1``
    truncation / occlusion, score last) from the points inside the camera's field of view of
    ``image_shape`` (default KITTI's 375 x 1242), as the detector was trained. Without: OpenPCDet
    custom lines ``x y z dx dy dz heading class score`` (LiDAR frame) from all points. Every input is
    read and detected before anything is written; the files are written to a temporary folder and
    moved in at the end, so a failure leaves ``out`` as it was (files of the same name are replaced).
    """
    import os
    import shutil
    import tempfile

    from pretrainlab.core.data import DataError
    from pretrainlab.lidar.formats import (
        KITTI_IMAGE_SHAPE,
        Calib,
        Frame,
        format_annos,
        read_calib,
        read_points,
    )

    cam = None if str(calib).lower() == "none" else (read_calib(calib) if calib else Calib.default())
    shape = tuple(image_shape) if image_shape else KITTI_IMAGE_SHAPE
    inputs = Path(inputs)
    files = collect_inputs(inputs)
    names = output_names(files, inputs if inputs.is_dir() else None)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(out, "exists and is not a folder")
    task, _cfg = load_task(ckpt)
    texts = []
    for p in files:
        frame = Frame(read_points(p), [], cam, p, image_shape=shape if cam is not None else None)  # type: ignore[arg-type]
        dets = predict_frames(task, [frame])[0]
        if cam is not None:
            texts.append(format_annos(detection_annos(frame, dets), detections=True))
        else:
            texts.append("".join(" ".join(f"{v:.4f}" for v in d.box) + f" {d.cls} {d.score or 0:.4f}\n" for d in dets))
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".detect-", suffix=".tmp"))
    written = []
    try:
        for name, text in zip(names, texts):
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
        for name in names:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / name, out / name)
            written.append(out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return written


def scan_frame(path: Path, fov: bool = True) -> Any:
    """A point file as a :class:`~pretrainlab.lidar.formats.Frame` without labels; with ``fov`` the KITTI object
    calibration and image size (375 x 1242) bound the camera's field of view, as in training."""
    from pretrainlab.lidar.formats import KITTI_IMAGE_SHAPE, Calib, Frame, read_points

    cam = Calib.default() if fov else None
    return Frame(read_points(path), [], cam, Path(path), image_shape=KITTI_IMAGE_SHAPE if fov else None)


def box_corners(box: Any) -> Any:
    """``(7,)`` LiDAR box -> ``(8, 3)`` corners (bottom 4, then top 4)."""
    from pretrainlab.lidar.formats import box_corners as corners

    return corners(box)


def make_task(cfg: Any) -> Any:
    """The task of a config: ``ESSL3DTask`` (pre-training) or ``DetectorTask`` (fine-tuning)."""
    from pretrainlab.lidar.config import DetectConfig

    if isinstance(cfg, DetectConfig):
        from pretrainlab.lidar.centerpoint_head import DetectorTask

        return DetectorTask(cfg)
    from pretrainlab.lidar.essl3d import ESSL3DTask

    return ESSL3DTask(cfg)


def sim_columns(profile: str) -> int:
    """Azimuth steps per revolution of the simulator's ``profile`` data set."""
    from pretrainlab.lidar.synthetic import PROFILES

    return int(PROFILES[profile]["columns"])


def simulated_scans(n: int, columns: int = 1024, seed: int = 0) -> list[Any]:
    """``n`` simulated scans (``synthetic.Scan``: points, instance ids, labelled objects), one scene each."""
    import numpy as np

    from pretrainlab.lidar.synthetic import LidarSimulator, Scene, SensorConfig

    sim = LidarSimulator(SensorConfig(n_columns=columns))
    rng = np.random.default_rng(seed)
    return [sim.scan(Scene(np.random.default_rng(seed + 1000 + i)), 0.0, rng) for i in range(n)]


def simulator_rates(columns: int, n_scans: int = 20) -> dict[str, Any]:
    """Simulator scans/s (ray casting alone, whole scans, scans + flow; wall and CPU time)."""
    from pretrainlab.lidar.synthetic import simulator_rates as rates

    return rates(columns, n_scans)


def simulate(out: Path, profile: str = "tiny", seed: int = 0, overwrite: bool = False, **sizes: int) -> float:
    """Run the simulator into ``out`` with custom sizes; returns scans per second (writing included)."""
    import functools
    import time

    from pretrainlab.core.data import generate_dataset
    from pretrainlab.lidar import synthetic

    synthetic.check_sizes(sizes)
    t0 = time.time()
    generate_dataset(functools.partial(synthetic.generate, **sizes), Path(out), profile, seed, overwrite=overwrite)
    p = {**synthetic.PROFILES[profile], **sizes}
    return (p["train"] + p["val"] + p["sequences"] * p["frames"]) / (time.time() - t0)


__all__ = [
    "PAPER",
    "SPEC",
    "collect_inputs",
    "detect",
    "detection_annos",
    "evaluate",
    "evaluate_folders",
    "evaluate_task",
    "finetune",
    "format_table",
    "iter_predictions",
    "load",
    "load_task",
    "make_task",
    "model_points",
    "open_split",
    "output_names",
    "predict_frames",
    "pretrain",
    "sim_columns",
    "simulate",
    "simulated_scans",
    "simulator_rates",
    "synthetic_data",
]
