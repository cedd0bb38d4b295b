"""Spatial branch of E-SSL3D (paper Sec. 3.2): equivariant spatial self-supervision.

Which objective for which transform (the paper's split): translation, scaling and flip have small
ranges and are learnt contrastively; rotation is learnt by equivariance-by-classification
(Dangovski et al. 2022) only. So the branch builds three views of one scan:

- ``v1 = T1(x)``, ``v2 = T2(x)`` with ``T = translate o scale o flip`` (no rotation): PointInfoNCE
  (Xie et al. 2020) over ``n_points`` matched points whose features are read at each point's own
  location in each view (the feature of a point must follow the point: equivariance, not
  invariance); negatives are the other matched points of the same scan (PointContrast).
- ``v3 = R(theta) v1``, ``theta ~ U(rotation_range)``: the transform classifier ``s`` reads ``v1`` and
  ``v3`` and predicts the bin of ``theta`` (``rotation_bins`` equal bins over ``rotation_range``) with a
  cross-entropy loss. ``v3`` is ``v1`` rotated about the sensor, so the pair differs by a pure
  rotation: the same flip, scale and translation on both sides (a reflection has no relative
  rotation, and a rotated pair never enters the contrastive loss, which would teach the features
  to ignore rotation).

Deviation: the classifier ``s`` reads a ``pool_grid x pool_grid`` average-pooled BEV map of each
view (the paper does not state its pooling; a global pool would discard the layout that reveals
the rotation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pretrainlab.core.losses import equivariance_classification_loss, point_info_nce
from pretrainlab.lidar.config import SpatialConfig
from pretrainlab.lidar.pillar_backbone import PillarBEVBackbone, gather_bev
from pretrainlab.lidar.rigid_transforms import apply_points, apply_xy, rotation_only, sample_transforms


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


def range_bins(theta: Tensor, lo: float, hi: float, n_bins: int) -> Tensor:
    """``(B,)`` angles in ``[lo, hi)`` -> ``(B,)`` long bins: ``n_bins`` equal bins over the range."""
    b = torch.floor((theta - lo) / (hi - lo) * n_bins).long()
    return b.clamp(0, n_bins - 1)


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
        dev = points.device
        no_rot = (0.0, 0.0)
        t1 = sample_transforms(B, no_rot, c.translation_max, c.scale_range, c.flip_p, dev)
        t2 = sample_transforms(B, no_rot, c.translation_max, c.scale_range, c.flip_p, dev)
        lo, hi = c.rotation_range
        theta = lo + (hi - lo) * torch.rand(B, device=dev)
        v1, v2 = apply_points(points, t1), apply_points(points, t2)
        v3 = apply_points(v1, rotation_only(theta))
        views, masks = [v1], [mask]
        if use_pnce:
            views.append(v2)
            masks.append(mask)
        if use_ce:
            views.append(v3)
            masks.append(mask)
        bev = backbone(torch.cat(views), torch.cat(masks), pc_range).chunk(len(views))
        out: dict[str, Tensor] = {}
        if use_pnce:
            idx = torch.randint(0, N, (B, c.n_points), device=dev)  # matched points (repeat-padded scans)
            xy = torch.gather(points[..., :2], 1, idx[..., None].expand(-1, -1, 2))
            f1 = proj(gather_bev(bev[0], apply_xy(xy, t1), pc_range))  # (B, M, D)
            f2 = proj(gather_bev(bev[1], apply_xy(xy, t2), pc_range))
            losses = [point_info_nce(f1[b], f2[b], temperature=c.temperature) for b in range(B)]
            out["pnce"] = torch.stack(losses).mean()
        if use_ce:
            target = range_bins(theta, lo, hi, c.rotation_bins)
            logits = self.classifier(bev[0], bev[-1])
            out["ce"] = equivariance_classification_loss(logits, target)
            out["rot_acc"] = (logits.argmax(1) == target).float().mean().detach()
        return out
