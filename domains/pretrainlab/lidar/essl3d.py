"""E-SSL3D pre-training task (paper Sec. 3): spatial + temporal equivariant self-supervision.

``L = w_pnce * L_pnce + w_ce * L_ce + w_flow * L_flow`` with the paper's weights (0.01, 1, 300)
as config fields (``weights``). ``method`` selects the rows of the paper's table from the same
code: ``essl3d`` (both branches), ``spatial`` (spatial only), ``temporal`` (temporal only) and
``invariant`` (the invariant contrastive baseline). The target network (f', m') of the temporal
branch is an EMA of the online backbone and projector, updated after every optimizer step.

Batch (all tensors; scans repeat-padded to ``N`` points):
``{"points": (B,N,4), "mask": (B,N), "prev_points": (B,N,4), "prev_mask": (B,N), "prev_flow": (B,N,3)}``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pretrainlab.core.ema import ema_update, frozen_copy
from pretrainlab.core.train import Task
from pretrainlab.lidar.config import PRETRAIN_METHODS, PretrainConfig
from pretrainlab.lidar.invariant_contrastive import InvariantContrastive
from pretrainlab.lidar.pillar_backbone import PillarBEVBackbone
from pretrainlab.lidar.spatial_equivariance import SpatialBranch, projector
from pretrainlab.lidar.temporal_flow import TemporalBranch


class ESSL3DTask(Task):
    """Pre-training task; ``self.backbone`` is what fine-tuning loads (prefix ``backbone.``)."""

    def __init__(self, cfg: PretrainConfig) -> None:
        super().__init__()
        if cfg.method not in PRETRAIN_METHODS:
            raise ValueError(f"unknown pre-training method '{cfg.method}'; use one of {PRETRAIN_METHODS}")
        self.cfg = cfg
        self.backbone = PillarBEVBackbone(cfg.backbone)
        C = self.backbone.out_channels
        self.projector = projector(C, cfg.proj_dim)
        self.uses_spatial = cfg.method in ("essl3d", "spatial")
        self.uses_temporal = cfg.method in ("essl3d", "temporal")
        if self.uses_spatial:
            self.spatial = SpatialBranch(cfg.spatial, C)
        if self.uses_temporal:
            self.temporal = TemporalBranch(cfg.temporal, cfg.proj_dim)
            self.target_backbone = frozen_copy(self.backbone)
            self.target_projector = frozen_copy(self.projector)
        if cfg.method == "invariant":
            self.invariant = InvariantContrastive(cfg.spatial, cfg.invariant_temperature)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        cfg, w = self.cfg, self.cfg.weights
        rng = cfg.data.pretrain_range
        pts, mask = batch["points"], batch["mask"]
        out: dict[str, Tensor] = {}
        total = pts.new_zeros((), dtype=torch.float32)
        if self.uses_spatial:
            s = self.spatial(self.backbone, self.projector, pts, mask, rng)
            total = total + w.pnce * s["pnce"] + w.ce * s["ce"]
            out.update(s)
        if self.uses_temporal:
            t = self.temporal(self.backbone, self.projector, self.target_backbone, self.target_projector,
                              pts, mask, batch["prev_points"], batch["prev_mask"], batch["prev_flow"], rng)
            total = total + w.flow * t["flow"]
            out.update(t)
        if cfg.method == "invariant":
            i = self.invariant(self.backbone, self.projector, pts, mask, rng)
            total = total + i["nce"]
            out.update(i)
        out["loss"] = total
        return out

    def on_step_end(self, step: int, max_steps: int) -> None:
        if self.uses_temporal:
            ema_update(self.target_backbone, self.backbone, self.cfg.temporal.ema_decay)
            ema_update(self.target_projector, self.projector, self.cfg.temporal.ema_decay)

    def train(self, mode: bool = True) -> ESSL3DTask:
        super().train(mode)
        if self.uses_temporal:  # the target network always runs in eval mode (BatchNorm statistics frozen)
            self.target_backbone.eval()
            self.target_projector.eval()
        return self

    def pretrained_modules(self) -> nn.Module:
        return self.backbone
