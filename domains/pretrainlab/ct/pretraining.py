"""Contrastive pre-training on the (reduced) slice set through the core trainer, with the
reference's schedule (ref: Less_is_More ``swav_module_lidc.py``, pytorch-lightning 1.6).

* A fixed number of epochs over the reduced set, so a reduced set means proportionally fewer
  iterations: ``max_steps = ceil(epochs * (kept // batch))`` (``drop_last=True`` as the reference).
* Learning rate (:func:`swav_lr`): ``LambdaLR(linear_warmup_decay(warmup, total, cosine=True))`` of
  pl_bolts: ``lr * step / warmup`` during the warm-up (from 0), then ``lr * 0.5 (1 + cos(pi p))``
  with ``p = (step - warmup) / (total - warmup)``, NOT clamped; ``start_lr`` and ``final_lr`` are
  passed to the module but unused by it. ``warmup = iters * warmup_epochs`` and ``total = iters *
  max_epochs`` with ``iters = train_iters_per_epoch`` AS THE MODULE SEES IT when Lightning calls
  ``configure_optimizers``: 1, because PL 1.6 calls it before ``train_dataloader()`` (where the module
  computes the real value). So in the reference the warm-up lasts 10 steps and the cosine has a
  period of ``2 (max_epochs - 10)`` steps, repeating over the whole run
  (``ssl.scheduler_iters_per_epoch = 1``, the default, reproduces that; ``0`` uses the real
  iterations per epoch, the evident intent: 10 warm-up epochs, one cosine down to 0 at the end).
* Prototypes: ``on_after_backward`` drops their gradient while ``current_epoch <
  freeze_prototypes_epochs`` (313 in the README's command, counted in EPOCHS by the module:
  with the default 800 epochs they stay at their random init for the first 313).
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


def resize_slices(slices: Sequence[np.ndarray] | np.ndarray, size: int) -> torch.Tensor:
    """8-bit slices of any sizes -> ``(N, size, size)`` uint8 (bilinear with antialiasing, rounded)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    arrs = [np.asarray(s) for s in slices]
    for i, a in enumerate(arrs):
        groups.setdefault(a.shape, []).append(i)
    res = torch.empty((len(arrs), size, size), dtype=torch.uint8)
    for shape, idx in groups.items():
        x = torch.from_numpy(np.ascontiguousarray(np.stack([arrs[i] for i in idx])))[:, None].float()
        if shape != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        res[idx] = x[:, 0].round().clamp(0, 255).to(torch.uint8)
    return res


class SliceDataset(Dataset):
    """Kept slices as ``{"image": (1, S, S) uint8}`` (resized once to ``size``)."""

    def __init__(self, slices: np.ndarray | torch.Tensor, size: int) -> None:
        t = torch.as_tensor(slices)
        if t.ndim != 3:
            raise ValueError(f"slices must be (N, H, W), got {tuple(t.shape)}")
        self.images = t if t.shape[-2:] == (size, size) and t.dtype == torch.uint8 else resize_slices(list(t.numpy()), size)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i][None]}


def gather_slices(volumes: Sequence[tuple[str, Any]], kept: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """Stack the kept slices of every volume, each resized to ``size`` -> ``(N, S, S)`` uint8."""
    parts = [resize_slices([np.asarray(sl[int(i)]) for i in idx], size) for (_, sl), idx in zip(volumes, kept) if len(idx)]
    if not parts:
        raise ValueError("the reduction kept no slices")
    return torch.cat(parts)


def pretrain_steps(cfg: CTConfig, n_slices: int) -> tuple[int, int]:
    """``(max_steps, steps_per_epoch)`` for a fixed number of epochs over ``n_slices`` (drop_last)."""
    bs = cfg.train.batch_size
    if n_slices < 2:
        raise ValueError(f"{n_slices} kept slice(s): too few to pre-train (need >= 2)")
    per_epoch = n_slices // min(bs, n_slices)
    return max(1, math.ceil(cfg.pretrain.epochs * per_epoch)), per_epoch


def swav_lr(step: int, lr: float, warmup_steps: int, total_steps: int) -> float:
    """pl_bolts ``linear_warmup_decay(warmup, total, cosine=True)`` times the base lr, at LambdaLR step ``step``."""
    if step < warmup_steps:
        return lr * float(step) / float(max(1, warmup_steps))
    progress = float(step - warmup_steps) / float(max(1, total_steps - warmup_steps))
    return lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def swav_schedule(cfg: CTConfig, per_epoch: int) -> tuple[int, int]:
    """``(warmup_steps, total_steps)`` the reference's scheduler uses (see the module docstring)."""
    ipe = cfg.ssl.scheduler_iters_per_epoch or per_epoch
    return ipe * cfg.ssl.warmup_epochs, int(ipe * cfg.pretrain.epochs)


class FolderSliceDataset(Dataset):
    """The reduced PNG slices of a folder as ``{"image": (1, S, S) uint8}``: decoded and resized per
    item (DataLoader workers), or all at once when ``preload`` (small sets)."""

    def __init__(self, files: Sequence[Path], size: int, preload: bool = False) -> None:
        self.files = [Path(f) for f in files]
        self.size = size
        self.images = self._load_all() if preload else None

    def _load(self, i: int) -> torch.Tensor:
        from pretrainlab.ct.formats import read_png_image

        return resize_slices([read_png_image(self.files[i])], self.size)[0]

    def _load_all(self) -> torch.Tensor:
        from pretrainlab.ct.formats import read_png_image

        return resize_slices([read_png_image(f) for f in self.files], self.size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        img = self.images[i] if self.images is not None else self._load(i)
        return {"image": img[None]}


def pretrain_dataset(cfg: CTConfig, slices: torch.Tensor | None = None, files: Sequence[Path] = ()) -> Dataset:
    """In-memory slices, or the reduced PNG files (held in RAM when under ``pretrain.ram_cache_mb``)."""
    size = cfg.model.image_size
    if slices is not None:
        if cfg.pretrain.max_slices and len(slices) > cfg.pretrain.max_slices:
            g = torch.Generator().manual_seed(cfg.train.seed)
            slices = slices[torch.randperm(len(slices), generator=g)[: cfg.pretrain.max_slices]]
        return SliceDataset(slices, size)
    files = list(files)
    if cfg.pretrain.max_slices and len(files) > cfg.pretrain.max_slices:
        g = torch.Generator().manual_seed(cfg.train.seed)
        files = [files[i] for i in torch.randperm(len(files), generator=g)[: cfg.pretrain.max_slices].tolist()]
    return FolderSliceDataset(files, size, preload=len(files) * size * size <= cfg.pretrain.ram_cache_mb * 2**20)


def pretrain(cfg: CTConfig, dataset: Dataset | torch.Tensor, run_dir: Path, resume: bool = False) -> tuple[Any, Any]:
    """Pre-train the configured method on a slice dataset (or ``(N, S, S)`` uint8 slices); returns
    ``(task, TrainResult)``."""
    from pretrainlab.core.train import Trainer, seed_everything
    from pretrainlab.ct.contrastive import build_pretrain_task

    ds = pretrain_dataset(cfg, dataset) if isinstance(dataset, torch.Tensor) else dataset
    steps, per_epoch = pretrain_steps(cfg, len(ds))  # type: ignore[arg-type]
    bs = min(cfg.train.batch_size, len(ds))  # type: ignore[arg-type]  # a set smaller than one batch: one smaller batch
    tc = dataclasses.replace(cfg.train, max_steps=steps, batch_size=bs, schedule="constant", warmup_steps=0)
    cfg = dataclasses.replace(cfg, train=tc)
    seed_everything(tc.seed)
    warm, total = swav_schedule(cfg, per_epoch)
    lr = tc.lr
    task = build_pretrain_task(cfg, freeze_prototypes_steps=cfg.ssl.freeze_prototypes_epochs * per_epoch,
                               lr_fn=lambda s: swav_lr(s, lr, warm, total))
    result = Trainer(tc, run_dir, full_config=cfg).fit(task, ds, resume=resume)
    return task, result
