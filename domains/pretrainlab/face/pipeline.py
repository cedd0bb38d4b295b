"""Training stages and checkpoint loading of the face domain (used through ``pretrainlab.face.api``).

Stage 1 (``method=pretrain``, the paper's WebFace stage, done by this project): a Swin face
backbone trained from scratch with the margin loss on high-resolution identities.
Stage 2 (``full`` / ``lora`` / ``petalface``): fine-tuning on the mixed / low-resolution
identities (TinyFace training set) starting from the stage-1 checkpoint (``init``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from pretrainlab.face.config import FaceConfig

NAME = "face"


def train_split(cfg: FaceConfig) -> str:
    return cfg.data.train_dir if cfg.method == "pretrain" else cfg.data.finetune_dir


def schedule_from_epochs(cfg: FaceConfig, n_images: int) -> FaceConfig:
    """ref: train_iqa.py ``total_step = num_image // total_batch * num_epoch`` (same for the warm-up);
    only when ``epochs`` / ``warmup_epochs`` are set (> 0), else ``train.max_steps`` / ``warmup_steps``."""
    import dataclasses

    from pretrainlab.core import distributed as D

    per_epoch = max(1, n_images // (cfg.train.batch_size * cfg.train.grad_accum * D.world_size()))
    t = cfg.train
    if cfg.epochs > 0:
        t = dataclasses.replace(t, max_steps=max(1, int(per_epoch * cfg.epochs)))
    if cfg.warmup_epochs > 0:
        t = dataclasses.replace(t, warmup_steps=min(t.max_steps - 1, int(per_epoch * cfg.warmup_epochs)))
    return dataclasses.replace(cfg, train=t)


def train(cfg: FaceConfig, data_root: Path, run_dir: Path, resume: bool = False,
          write_threshold: bool = True):  # -> (FaceTask, TrainResult)
    """Run one stage with the core Trainer; writes ``face_threshold.json`` (validation threshold) too."""
    from pretrainlab.core.config import ConfigError
    from pretrainlab.core.data import DataError
    from pretrainlab.core.io import atomic_write_json
    from pretrainlab.core.train import Trainer, seed_everything
    from pretrainlab.face.formats import FaceTrainDataset, FaceTrainSet
    from pretrainlab.face.petalface import FaceTask, load_pretrained_backbone

    if cfg.method != "pretrain" and not cfg.init:
        raise ConfigError(f"init: method={cfg.method} fine-tunes a pre-trained backbone: pass --init CKPT (or init=...)")
    seed_everything(cfg.train.seed)
    ds = FaceTrainDataset(FaceTrainSet.open(Path(data_root) / train_split(cfg), cfg.data.max_images), cfg.model.image_size)
    cfg = schedule_from_epochs(cfg, len(ds))
    task = FaceTask(cfg, ds.num_classes)
    _ = task.scorer  # PETALface: build the IQA scorer now (a missing weight file fails before any run folder)
    if cfg.init:
        load_pretrained_backbone(task, cfg.init)
    result = Trainer(cfg.train, run_dir, full_config=cfg).fit(task, ds, resume=resume)
    from pretrainlab.core import distributed as D

    if not D.is_main() or not write_threshold:  # the validation threshold is written once, by rank 0
        return task, result
    try:
        from pretrainlab.face.evaluation import verification

        thr = verification(task, cfg, Path(data_root), next(task.parameters()).device)
        atomic_write_json(Path(run_dir) / "face_threshold.json",
                          {"threshold": thr["threshold"], "hr_verif_acc": thr["hr_verif_acc"], "data": str(data_root)})
    except (DataError, OSError, ValueError) as e:  # no verification split in a user's training data: verify falls back
        print(f"note: no verification threshold written ({e})", file=sys.stderr)
    return task, result


def load_model(ckpt: str | Path, device: str | torch.device = "cpu", overrides: list[str] | None = None):
    """(FaceTask, FaceConfig, source path, how it was trained) of a face checkpoint or a reference ``model.pt``.

    ``overrides``: ``key=value`` settings applied on top of the stored config (``quality.*``, ``eval.*``, ...).
    """
    from pretrainlab.core.checkpoint import CheckpointError, find_checkpoint, load_tensors, read_meta
    from pretrainlab.core.config import ConfigError, from_dict, merge, parse_overrides
    from pretrainlab.face.petalface import FaceTask, import_reference, is_reference_file

    if is_reference_file(ckpt):
        task, cfg = import_reference(ckpt, overrides)
        return task.to(device).eval(), cfg, Path(ckpt), "imported reference weights (PETALface model.pt layout)"
    folder = find_checkpoint(Path(ckpt))
    meta = read_meta(folder)
    try:
        stored = meta["config"]
        cfg = from_dict(FaceConfig, stored)
    except ConfigError as e:
        raise CheckpointError(f"{folder}: config does not fit this version of the face domain ({e})") from None
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"{folder}: not a face checkpoint ({e})") from None
    if overrides:
        cfg = merge(cfg, parse_overrides(list(overrides)))
    tensors, _ = load_tensors(folder / "model.safetensors")
    if "margin.weight" not in tensors:
        raise CheckpointError(f"{folder}: not a face checkpoint (no margin.weight)")
    task = FaceTask(cfg, int(tensors["margin.weight"].shape[0]))
    try:
        task.load_state_dict(tensors)
    except RuntimeError as e:
        raise CheckpointError(f"{folder}: weights do not fit the face model: {str(e).splitlines()[0]}") from None
    from pretrainlab.core.demo import describe_checkpoint

    return task.to(device).eval(), cfg, folder, f"{cfg.method}, {describe_checkpoint(folder)}"


def threshold_for(folder: Path) -> tuple[float | None, str]:
    """The decision threshold chosen on validation pairs after training (run folder), if any."""
    import json

    for parent in [folder, *folder.parents][:4]:
        f = parent / "face_threshold.json"
        if f.is_file():
            d = json.loads(f.read_text())
            return float(d["threshold"]), f"threshold {d['threshold']:.3f} chosen on the validation pairs of {d.get('data', '?')}"
    return None, "no validation threshold stored with the checkpoint"


def _save_threshold(run_dir: Path, metrics: dict[str, Any], data: Path) -> None:
    from pretrainlab.core.io import atomic_write_json

    atomic_write_json(Path(run_dir) / "face_threshold.json",
                      {"threshold": metrics["threshold"], "hr_verif_acc": metrics["hr_verif_acc"], "data": str(data)})
