"""Invariant contrastive baseline (the approach the paper argues against, Sec. 1 / 4.3).

Two rigid views of a scan (the same transform ranges as the spatial branch); the BEV map of each
view is globally max-pooled, projected, and NT-Xent (SimCLR) pulls the two views together
against the other scans of the batch: every transform is treated as an invariance.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pretrainlab.core.losses import nt_xent
from pretrainlab.lidar.config import SpatialConfig
from pretrainlab.lidar.pillar_backbone import PillarBEVBackbone
from pretrainlab.lidar.rigid_transforms import apply_points, sample_transforms


class InvariantContrastive(nn.Module):
    """``(backbone, projector, points (B,N,4), mask, range) -> {"nce"}`` on pooled ``(B, D)`` embeddings."""

    def __init__(self, cfg: SpatialConfig, temperature: float) -> None:
        super().__init__()
        self.cfg, self.temperature = cfg, temperature

    def forward(self, backbone: PillarBEVBackbone, proj: nn.Module, points: Tensor, mask: Tensor,
                pc_range: list[float]) -> dict[str, Tensor]:
        c = self.cfg
        B = points.shape[0]
        t1 = sample_transforms(B, c.rotation_range, c.translation_max, c.scale_range, c.flip_p, points.device)
        t2 = sample_transforms(B, c.rotation_range, c.translation_max, c.scale_range, c.flip_p, points.device)
        bev = backbone(torch.cat([apply_points(points, t1), apply_points(points, t2)]), torch.cat([mask, mask]), pc_range)
        z = proj(bev.amax(dim=(2, 3)))
        z1, z2 = z.chunk(2)
        return {"nce": nt_xent(z1, z2, temperature=self.temperature)}
