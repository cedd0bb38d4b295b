"""Spatial branch of E-SSL3D (paper Sec. 3.2): equivariant spatial self-supervision.

Two random rigid views of one scan (``rigid_transforms``). Which objective for which transform
(the paper's choice): translation, scaling and flip have small ranges and are learnt
contrastively, with PointInfoNCE (Xie et al. 2020) over ``n_points`` matched points whose features
are read at each point's own location in each view, so the feature of a point must follow the
point (equivariance, not invariance); rotation is learnt by equivariance-by-classification
(Dangovski et al. 2022): a transform classifier ``s`` predicts the bin (of 10) of the relative
rotation ``theta_2 - theta_1`` between the views from the two views' features, with a
cross-entropy loss.

Deviation: the classifier ``s`` reads a ``pool_grid x pool_grid`` average-pooled BEV map of each
view (the paper does not state its pooling; a global pool would discard the layout that reveals
the rotation). ``flip`` is applied before the rotation; the class target is the rotation part only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pretrainlab.core.losses import equivariance_classification_loss, point_info_nce, rotation_bins
from pretrainlab.lidar.config import SpatialConfig
from pretrainlab.lidar.pillar_backbone import PillarBEVBackbone, gather_bev
from pretrainlab.lidar.rigid_transforms import apply_points, apply_xy, sample_transforms


def projector(cin: int, dim: int) -> nn.Sequential:
    """Projector m: point-wise 2-layer MLP ``(..., cin) -> (..., dim)``."""
    return nn.Sequential(nn.Linear(cin, cin), nn.LayerNorm(cin), nn.ReLU(inplace=True), nn.Linear(cin, dim))


class TransformClassifier(nn.Module):
    """Classifier s: ``(bev1, bev2) (B, C, H, W) -> logits (B, n_bins)`` of the relative rotation."""

    def __init__(self, channels: int, pool_grid: int, n_bins: int) -> None:
        super().__init__()
        self.pool_grid = pool_grid
        d = 2 * channels * pool_grid * pool_grid
        self.mlp = nn.Sequential(nn.Linear(d, 256), nn.LayerNorm(256), nn.ReLU(inplace=True), nn.Linear(256, n_bins))

    def forward(self, bev1: Tensor, bev2: Tensor) -> Tensor:
        g = self.pool_grid
        a = F.adaptive_avg_pool2d(bev1, g).flatten(1)
        b = F.adaptive_avg_pool2d(bev2, g).flatten(1)
        return self.mlp(torch.cat([a, b], 1))


class SpatialBranch(nn.Module):
    """``(backbone, projector, points (B,N,4), mask (B,N), range) -> {"pnce", "ce", "rot_acc"}``."""

    def __init__(self, cfg: SpatialConfig, channels: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.classifier = TransformClassifier(channels, cfg.pool_grid, cfg.rotation_bins)

    def forward(self, backbone: PillarBEVBackbone, proj: nn.Module, points: Tensor, mask: Tensor,
                pc_range: list[float], use_pnce: bool = True, use_ce: bool = True) -> dict[str, Tensor]:
        c = self.cfg
        B, N, _ = points.shape
        t1 = sample_transforms(B, c.rotation_range, c.translation_max, c.scale_range, c.flip_p, points.device)
        t2 = sample_transforms(B, c.rotation_range, c.translation_max, c.scale_range, c.flip_p, points.device)
        v1, v2 = apply_points(points, t1), apply_points(points, t2)
        bev = backbone(torch.cat([v1, v2]), torch.cat([mask, mask]), pc_range)
        bev1, bev2 = bev.chunk(2)
        out: dict[str, Tensor] = {}
        if use_pnce:
            idx = torch.randint(0, N, (B, c.n_points), device=points.device)  # matched points (repeat-padded scans)
            xy = torch.gather(points[..., :2], 1, idx[..., None].expand(-1, -1, 2))
            f1 = proj(gather_bev(bev1, apply_xy(xy, t1), pc_range))  # (B, M, D)
            f2 = proj(gather_bev(bev2, apply_xy(xy, t2), pc_range))
            # negatives are the other matched points of the same scan (PointContrast), per scan
            losses = [point_info_nce(f1[b], f2[b], temperature=c.temperature) for b in range(B)]
            out["pnce"] = torch.stack(losses).mean()
        if use_ce:
            target = rotation_bins(t2["theta"] - t1["theta"], c.rotation_bins)
            logits = self.classifier(bev1, bev2)
            out["ce"] = equivariance_classification_loss(logits, target)
            out["rot_acc"] = (logits.argmax(1) == target).float().mean().detach()
        return out
