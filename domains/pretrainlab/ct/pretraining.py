"""Contrastive pre-training on the (reduced) slice set through the core trainer.

The paper pre-trains for a fixed number of epochs, so a reduced set means proportionally fewer
iterations: ``max_steps = ceil(epochs * kept_slices / batch_size)``. The prototypes are frozen
for the first epoch's iterations (``freeze_prototypes_steps = 0`` means one epoch).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from pretrainlab.ct.config import CTConfig


class SliceDataset(Dataset):
    """Kept slices as ``{"image": (1, S, S) uint8}`` (resized once to ``size``)."""

    def __init__(self, slices: np.ndarray | torch.Tensor, size: int) -> None:
        t = torch.as_tensor(slices)
        if t.ndim != 3:
            raise ValueError(f"slices must be (N, H, W), got {tuple(t.shape)}")
        x = t[:, None].float()
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        self.images = x.round().clamp(0, 255).to(torch.uint8)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i]}


def gather_slices(volumes: Sequence[tuple[str, np.ndarray]], kept: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """Stack the kept slices of every volume, each resized to ``size`` -> ``(N, S, S)`` uint8."""
    parts = []
    for (_, sl), idx in zip(volumes, kept):
        x = torch.from_numpy(np.ascontiguousarray(sl[np.asarray(idx, dtype=np.int64)]))[:, None].float()
        if len(x):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            parts.append(x[:, 0].round().clamp(0, 255).to(torch.uint8))
    if not parts:
        raise ValueError("the reduction kept no slices")
    return torch.cat(parts)


def pretrain_steps(cfg: CTConfig, n_slices: int) -> tuple[int, int]:
    """``(max_steps, steps_per_epoch)`` for a fixed number of epochs over ``n_slices``."""
    bs = cfg.pretrain.train.batch_size
    if n_slices < 2:
        raise ValueError(f"{n_slices} kept slice(s): too few to pre-train (need >= 2)")
    per_epoch = n_slices // min(bs, n_slices)
    return max(1, math.ceil(cfg.pretrain.epochs * per_epoch)), per_epoch


def pretrain(cfg: CTConfig, slices: torch.Tensor, run_dir: Path, resume: bool = False) -> tuple[Any, Any]:
    """Pre-train the configured method on ``slices (N, S, S)`` uint8; returns ``(task, TrainResult)``."""
    from pretrainlab.core.train import Trainer, seed_everything
    from pretrainlab.ct.contrastive import build_pretrain_task

    if cfg.pretrain.max_slices and len(slices) > cfg.pretrain.max_slices:
        g = torch.Generator().manual_seed(cfg.pretrain.train.seed)
        slices = slices[torch.randperm(len(slices), generator=g)[: cfg.pretrain.max_slices]]
    ds = SliceDataset(slices, cfg.model.image_size)
    steps, per_epoch = pretrain_steps(cfg, len(ds))
    bs = min(cfg.pretrain.train.batch_size, len(ds))  # a reduced set smaller than one batch: one smaller batch
    tc = dataclasses.replace(cfg.pretrain.train, max_steps=steps, batch_size=bs)
    cfg = dataclasses.replace(cfg, pretrain=dataclasses.replace(cfg.pretrain, train=tc))
    seed_everything(tc.seed)
    freeze = cfg.ssl.freeze_prototypes_steps or per_epoch
    task = build_pretrain_task(cfg, freeze)
    result = Trainer(tc, run_dir, full_config=cfg).fit(task, ds, resume=resume)
    return task, result
