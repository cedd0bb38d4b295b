"""Selectable alternatives to SwAV (the issue asks for SimCLR and MoCo; the paper's companion
repository SSL-MedicalImagining-CL-MAE has a MoCo variant): same backbone, the two global crops of
:func:`pretrainlab.ct.swav.multi_crop` as the two views.

* SimCLR (Chen et al. 2020): 2-layer projection head, NT-Xent (``core.losses.nt_xent``).
* MoCo v2 (Chen et al. 2020, "Improved Baselines"): momentum key encoder (EMA,
  ``core.ema``), a queue of negative keys, InfoNCE (``core.losses.info_nce``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pretrainlab.core.ema import ema_update, frozen_copy
from pretrainlab.core.losses import info_nce, nt_xent
from pretrainlab.core.train import Task
from pretrainlab.ct.config import CTConfig
from pretrainlab.ct.resnet import build_backbone, to_input
from pretrainlab.ct.swav import multi_crop


def _two_views(x: torch.Tensor, cfg: CTConfig) -> tuple[torch.Tensor, torch.Tensor]:
    s = dataclasses.replace(cfg.ssl, nmb_crops=(2, 0))
    v1, v2 = multi_crop(x, s)[:2]
    return to_input(v1, s.norm_mean, s.norm_std), to_input(v2, s.norm_mean, s.norm_std)


class _Encoder(nn.Module):
    def __init__(self, cfg: CTConfig) -> None:
        super().__init__()
        self.backbone, dim = build_backbone(cfg.model)
        self.head = nn.Sequential(nn.Linear(dim, cfg.model.hidden_mlp), nn.ReLU(inplace=True),
                                  nn.Linear(cfg.model.hidden_mlp, cfg.model.feat_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x.contiguous(memory_format=torch.channels_last)))


class SimCLRTask(Task):
    """batch ``{"image": (B, 1, H, W) uint8}`` -> ``{"loss"}`` (NT-Xent of two views)."""

    def __init__(self, cfg: CTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = _Encoder(cfg)
        self.backbone = self.encoder.backbone

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["image"].float() / 255.0
        with torch.no_grad():
            v1, v2 = _two_views(x, self.cfg)
        z1, z2 = self.encoder(torch.cat([v1, v2])).chunk(2)
        return {"loss": nt_xent(z1, z2, temperature=self.cfg.ssl.simclr_temperature)}


class MoCoTask(Task):
    """MoCo v2: query encoder + EMA key encoder + queue; ``{"loss"}``."""

    def __init__(self, cfg: CTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = _Encoder(cfg)
        self.backbone = self.encoder.backbone
        self.key_encoder = frozen_copy(self.encoder)
        self.register_buffer("queue", F.normalize(torch.randn(cfg.ssl.moco_queue, cfg.model.feat_dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    def on_step_end(self, step: int, max_steps: int) -> None:
        ema_update(self.key_encoder, self.encoder, self.cfg.ssl.moco_momentum)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["image"].float() / 255.0
        with torch.no_grad():
            v1, v2 = _two_views(x, self.cfg)
            k = F.normalize(self.key_encoder(v2).float(), dim=1)
        q = self.encoder(v1)
        b = q.shape[0]
        keys = torch.cat([k, self.queue.clone()])
        loss = info_nce(q, keys, torch.arange(b, device=q.device), temperature=self.cfg.ssl.simclr_temperature)
        with torch.no_grad():  # enqueue without a host sync: ring buffer indexed on the device
            n = self.queue.shape[0]
            idx = (self.ptr + torch.arange(b, device=q.device)) % n
            self.queue.index_copy_(0, idx, k.to(self.queue.dtype))
            self.ptr.copy_((self.ptr + b) % n)
        return {"loss": loss}


def build_pretrain_task(cfg: CTConfig, freeze_prototypes_steps: int = 0, lr_fn: Any = None) -> Task:
    """SwAV (paper) or the selected alternative; every task exposes ``.backbone`` and follows
    ``lr_fn(step) -> lr`` (the reference's schedule) through ``lr_scale``."""
    from pretrainlab.ct.swav import SwAVTask

    m = cfg.ssl.method
    if m == "swav":
        return SwAVTask(cfg, freeze_prototypes_steps, lr_fn)
    task: Task = SimCLRTask(cfg) if m == "simclr" else MoCoTask(cfg) if m == "moco" else None  # type: ignore[assignment]
    if task is None:
        raise ValueError(f"unknown ssl.method {m!r} (swav | simclr | moco)")
    if lr_fn is not None:
        task.lr_scale = lambda group, step: float(lr_fn(step)) / cfg.train.lr  # type: ignore[method-assign]
    return task
