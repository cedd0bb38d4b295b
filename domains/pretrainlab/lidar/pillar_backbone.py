"""Encoder f: a pillar (BEV voxel) encoder + SECOND-style 2D BEV network, in pure PyTorch.

The paper (Sec. 4, implementation details) uses OpenPCDet's VoxelBackBone8x (sparse 3D convs)
of SECOND / Voxel R-CNN. Deviation (documented in the recipes and results.md): a PointPillars-
style pillar encoder (Lang et al. 2019) — a point-wise MLP and a scatter-max into a BEV grid —
followed by the SECOND 2D BEV network (two conv blocks at strides 1 and 2, deconvolved and
concatenated), so that it runs on CPU and GPU without compiled extensions. The point features
are read back at any (x, y) location by bilinear sampling of the BEV map (``gather_bev``): the
feature of a point follows the point under rigid transforms, which the equivariant objectives
of the paper rely on.

Point inputs are padded to a fixed count per scan: ``points (B, N, 4)`` and ``mask (B, N)``
(False = padding); everything is vectorised (no per-sample loop, no host sync).
The point features use z, intensity and the offsets to the pillar centre, but not the absolute
x, y, so the encoder is translation-equivariant on the grid and one set of weights serves any
point-cloud range (pre-training uses a symmetric range, detection the KITTI front range).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclasses.dataclass
class BackboneConfig:
    voxel_size: float = 0.5  # pillar side (m); OpenPCDet SECOND uses 0.05 m voxels with 8x stride
    pillar_channels: int = 32  # PointNet output per pillar (PointPillars: 64)
    channels: int = 32  # C of the first BEV block (SECOND: 64 / 128 at strides 1 / 2 of its BEV map)
    layers: tuple[int, int] = (2, 2)  # convs per BEV block (SECOND: 5, 5)

    CHECKS: ClassVar[dict[str, Any]] = {"voxel_size": ">0", "pillar_channels": ">=1", "channels": ">=1", "layers": ">=1"}


class PillarBEVBackbone(nn.Module):
    """``(points (B,N,4), mask (B,N), range [x0,y0,z0,x1,y1,z1]) -> BEV features (B, 2C, H, W)``.

    ``H = (y1 - y0) / voxel``, ``W = (x1 - x0) / voxel`` (rows index y, columns index x).
    """

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.cfg = cfg
        pc, c = cfg.pillar_channels, cfg.channels
        self.point_mlp = nn.Sequential(nn.Linear(5, pc), nn.LayerNorm(pc), nn.ReLU(inplace=True), nn.Linear(pc, pc))
        self.out_channels = 2 * c

        def block(cin: int, cout: int, n: int, stride: int) -> nn.Sequential:
            mods: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            for _ in range(n - 1):
                mods += [nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            return nn.Sequential(*mods)

        self.block1 = block(pc, c, cfg.layers[0], 1)
        self.block2 = block(c, 2 * c, cfg.layers[1], 2)
        self.up1 = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.up2 = nn.Sequential(nn.ConvTranspose2d(2 * c, c, 2, 2, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))

    def grid_shape(self, pc_range: tuple[float, ...] | list[float]) -> tuple[int, int]:
        v = self.cfg.voxel_size
        return round((pc_range[4] - pc_range[1]) / v), round((pc_range[3] - pc_range[0]) / v)

    def scatter(self, points: Tensor, mask: Tensor, pc_range: tuple[float, ...] | list[float]) -> Tensor:
        """Pillar features ``(B, Cp, H, W)`` by scatter-max of the point MLP (empty pillars: 0)."""
        B, _N, _ = points.shape
        H, W = self.grid_shape(pc_range)
        v = self.cfg.voxel_size
        ix = torch.floor((points[..., 0] - pc_range[0]) / v).long()
        iy = torch.floor((points[..., 1] - pc_range[1]) / v).long()
        inside = mask & (ix >= 0) & (ix < W) & (iy >= 0) & (iy < H) & (points[..., 2] >= pc_range[2]) & (points[..., 2] < pc_range[5])
        cx = (ix.to(points.dtype) + 0.5) * v + pc_range[0]
        cy = (iy.to(points.dtype) + 0.5) * v + pc_range[1]
        feats_in = torch.stack([points[..., 0] - cx, points[..., 1] - cy, points[..., 2], points[..., 3],
                                inside.to(points.dtype)], -1)
        f = self.point_mlp(feats_in)  # (B, N, Cp)
        cells = H * W
        flat = torch.where(inside, iy * W + ix, torch.full_like(ix, cells)) + torch.arange(B, device=points.device)[:, None] * (cells + 1)
        C = f.shape[-1]
        out = torch.zeros(B * (cells + 1), C, device=f.device, dtype=f.dtype)
        out = out.scatter_reduce(0, flat.reshape(-1, 1).expand(-1, C), f.reshape(-1, C), reduce="amax", include_self=False)
        out = out.view(B, cells + 1, C)[:, :cells]
        return out.permute(0, 2, 1).reshape(B, C, H, W)

    def forward(self, points: Tensor, mask: Tensor, pc_range: tuple[float, ...] | list[float]) -> Tensor:
        x = self.scatter(points, mask, pc_range)
        x1 = self.block1(x)
        x2 = self.block2(x1)
        up2 = self.up2(x2)
        if up2.shape[-2:] != x1.shape[-2:]:
            up2 = F.interpolate(up2, size=x1.shape[-2:], mode="nearest")
        return torch.cat([self.up1(x1), up2], 1)


def gather_bev(bev: Tensor, xy: Tensor, pc_range: tuple[float, ...] | list[float]) -> Tensor:
    """Bilinear features at metric locations: ``bev (B, C, H, W)``, ``xy (B, M, 2)`` -> ``(B, M, C)``."""
    gx = (xy[..., 0] - pc_range[0]) / (pc_range[3] - pc_range[0]) * 2 - 1
    gy = (xy[..., 1] - pc_range[1]) / (pc_range[4] - pc_range[1]) * 2 - 1
    grid = torch.stack([gx, gy], -1).unsqueeze(1).to(bev.dtype)  # (B, 1, M, 2)
    out = F.grid_sample(bev, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.squeeze(2).transpose(1, 2)
