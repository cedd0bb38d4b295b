"""Pre-training, fine-tuning, evaluation and inference entry points (used by the CLI, reproduce, demo)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pretrainlab.core.data import DataError
from pretrainlab.lidar.config import DetectConfig, PretrainConfig
from pretrainlab.lidar.formats import IMAGE_SIZE, Calib, Frame, Object3D, crop_to_range, load_frames


def pretrain(cfg: PretrainConfig, data_root: Path, run_dir: Path, resume: bool = False) -> tuple[Any, Any]:
    """Run E-SSL3D (or a baseline, ``cfg.method``) pre-training; returns ``(task, TrainResult)``."""
    from pretrainlab.core.train import Trainer, seed_everything
    from pretrainlab.lidar.datasets import PretrainPairs
    from pretrainlab.lidar.essl3d import ESSL3DTask

    seed_everything(cfg.train.seed)
    task = ESSL3DTask(cfg)
    ds = PretrainPairs(Path(data_root), cfg.data, need_flow=task.uses_temporal)
    res = Trainer(cfg.train, run_dir, full_config=cfg).fit(task, ds, resume=resume)
    return task, res


def load_pretrained_backbone(task: Any, init: str | Path) -> str:
    """Copy the ``backbone.`` weights of a pre-training (or detection) checkpoint into ``task.backbone``."""
    from pretrainlab.core.checkpoint import find_checkpoint, load_weights

    folder = find_checkpoint(Path(init))
    load_weights(task.backbone, folder / "model.safetensors", strict=True, prefix="backbone.")
    return str(folder)


def finetune(cfg: DetectConfig, data_root: Path, run_dir: Path, resume: bool = False,
             frames: list[Frame] | None = None) -> tuple[Any, Any]:
    """Fine-tune the detector on ``label_fraction`` of the train split (from ``cfg.init`` or scratch)."""
    from pretrainlab.core.train import Trainer, seed_everything
    from pretrainlab.lidar.centerpoint_head import DetectorTask
    from pretrainlab.lidar.datasets import DetectionFrames, label_subset

    seed_everything(cfg.train.seed)
    task = DetectorTask(cfg)
    if cfg.init:
        load_pretrained_backbone(task, cfg.init)
    frames = frames if frames is not None else load_frames(Path(data_root), "train")
    sub = [frames[i] for i in label_subset(len(frames), cfg.label_fraction, cfg.train.seed)]
    ds = DetectionFrames(sub, cfg.data, tuple(cfg.head.classes))
    train_cfg = cfg.train
    if len(ds) < train_cfg.batch_size:  # 5 % of a small set: fewer scans than a batch
        train_cfg = dataclasses.replace(train_cfg, batch_size=len(ds))
    res = Trainer(train_cfg, run_dir, full_config=cfg).fit(task, ds, resume=resume)
    return task, res


def in_camera_fov(box: np.ndarray, calib: Calib | None) -> bool:
    """Box centre in front of camera 2 and inside its image (always True without calibration)."""
    if calib is None:
        return True
    rect = calib.lidar_to_rect(box[None, :3].astype(np.float64))
    if rect[0, 2] <= 0.5:
        return False
    u, v = calib.rect_to_image(rect)[0]
    return 0 <= u < IMAGE_SIZE[0] and 0 <= v < IMAGE_SIZE[1]


def points_batch(scans: list[np.ndarray], cfg: DetectConfig, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop each scan to the detection range and pad to a common size (mask False on padding)."""
    crops = [crop_to_range(p, cfg.data.detect_range)[0] for p in scans]
    n = max(1, max(len(c) for c in crops))
    pts = torch.zeros(len(crops), n, 4)
    mask = torch.zeros(len(crops), n, dtype=torch.bool)
    for i, c in enumerate(crops):
        pts[i, :len(c)] = torch.from_numpy(c[:, :4])
        mask[i, :len(c)] = True
    return pts.to(device), mask.to(device)


def predict_frames(task: Any, frames: list[Frame], batch: int = 4, fov_filter: bool = True) -> list[list[Object3D]]:
    """Detections for each frame (camera-FOV filtered when the frame has a calibration)."""
    from tqdm.auto import tqdm

    device = next(task.parameters()).device
    out: list[list[Object3D]] = []
    for i in tqdm(range(0, len(frames), batch), desc="detect", unit="batch", leave=False):
        chunk = frames[i:i + batch]
        pts, mask = points_batch([f.points for f in chunk], task.cfg, device)
        for f, dets in zip(chunk, task.predict(pts, mask)):
            out.append([d for d in dets if not fov_filter or in_camera_fov(d.box, f.calib)])
    return out


def evaluate(task: Any, frames: list[Frame]) -> dict[str, float]:
    """KITTI AP40 (BEV and 3D, easy / moderate / hard) + the moderate summary."""
    from pretrainlab.lidar.kitti_ap import DIFFICULTIES, kitti_ap, summarize

    cfg: DetectConfig = task.cfg
    dets = predict_frames(task, frames)
    ap = kitti_ap(dets, [f.objects for f in frames], cfg.head.classes, cfg.eval.iou_thresholds, cfg.eval.recall_points)
    res = summarize(ap, cfg.head.classes, DIFFICULTIES[cfg.eval.difficulty])
    res.update({k: v for k, v in ap.items() if k not in res})
    n = sum(len(d) for d in dets)
    print(f"evaluated {len(frames)} scans, {n} detections: 3D mAP ({DIFFICULTIES[cfg.eval.difficulty]}) "
          f"{res['3d_mAP_' + DIFFICULTIES[cfg.eval.difficulty]]:.2f}")
    return res


def load_detector(ckpt: str | Path) -> Any:
    """A DetectorTask from a fine-tuning checkpoint (config read from the checkpoint's meta)."""
    from pretrainlab.core.checkpoint import CheckpointError, find_checkpoint, load_weights, read_meta
    from pretrainlab.core.config import from_dict
    from pretrainlab.lidar.centerpoint_head import DetectorTask

    folder = find_checkpoint(Path(ckpt))
    conf = read_meta(folder).get("config") or {}
    if "head" not in conf:
        raise CheckpointError(f"{folder}: not a detection checkpoint (a pre-training one? fine-tune it first)")
    cfg = from_dict(DetectConfig, conf)
    task = DetectorTask(cfg)
    load_weights(task, folder / "model.safetensors")
    return task.eval()


def write_detections(out_dir: Path, name: str, dets: list[Object3D], calib: Calib | None) -> Path:
    """KITTI label file (scores as the 16th field) or, without calibration, the OpenPCDet custom format + score."""
    from pretrainlab.core.io import atomic_write_text
    from pretrainlab.lidar.formats import bbox2d_of, format_kitti_label

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.txt"
    if calib is not None:
        lines = []
        for d in dets:
            bb, tr = bbox2d_of(d.box, calib)
            lines.append(format_kitti_label(dataclasses.replace(d, bbox2d=bb, truncated=tr), calib))
        atomic_write_text(path, "".join(s + "\n" for s in lines))
    else:
        atomic_write_text(path, "".join(" ".join(f"{v:.4f}" for v in d.box) + f" {d.cls} {d.score or 0:.4f}\n" for d in dets))
    return path


def detect_inputs(task: Any, inputs: list[Path], out_dir: Path, calib: Calib | None = None) -> list[Path]:
    """Detect on point files; KITTI-format label files (with scores) per scan in ``out_dir``."""
    from pretrainlab.lidar.formats import read_points

    written = []
    for p in inputs:
        pts = read_points(p)
        f = Frame(pts, [], calib, p)
        dets = predict_frames(task, [f], fov_filter=False)[0]
        written.append(write_detections(Path(out_dir), p.stem, dets, calib))
    return written


def collect_inputs(path: Path) -> list[Path]:
    from pretrainlab.lidar.formats import POINT_SUFFIXES

    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in POINT_SUFFIXES)
        if not files:
            raise DataError(path, f"no point files ({', '.join(POINT_SUFFIXES)}) in this folder")
        return files
    if not path.exists():
        raise DataError(path, "input not found")
    return [path]


def save_metrics(path: Path, metrics: dict[str, Any]) -> None:
    from pretrainlab.core.io import atomic_write_json

    atomic_write_json(Path(path), json.loads(json.dumps(metrics, default=float)))
