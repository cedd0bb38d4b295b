"""Temporal branch of E-SSL3D (paper Sec. 3.3): scene-flow-equivariant BYOL.

The online network (f, m, q) sees frame ``t``; the target network (f', m') — an EMA of the online
one (decay 0.999) — sees frame ``t-1`` whose points are moved by the scene flow ``d(t-1 -> t)`` and
re-voxelised. Features are gathered at the moved coordinates in both BEV maps and the online
prediction regresses the target projection: ``L_flow = MSE(normalise(q(m(f(x_t)))), normalise(m'(f'(warp(x_{t-1})))))``.

Scene flow: the paper uses a frozen pre-trained PV-RAFT. Here the flow is pluggable
(``data.flow_source``): ``file`` reads the simulator's exact per-point flow
(``sequences/SS/flow/NNNNNN.npy``); ``icp`` estimates the ego motion between the scans by open3d
point-to-point ICP and uses it for every point (static-world approximation; moving objects get
the ego flow only) — the default for real sequences without flow. Deviation: MSE is the
element-wise mean over the feature dimension (``byol_loss / D``), which keeps the paper's weight
of 300 in a sensible range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pretrainlab.core.losses import byol_loss
from pretrainlab.lidar.config import TemporalConfig
from pretrainlab.lidar.pillar_backbone import PillarBEVBackbone, gather_bev


def icp_flow(prev: np.ndarray, cur: np.ndarray, max_dist: float = 1.0, iterations: int = 30,
             ground_z: float | None = -1.4) -> np.ndarray:
    """Ego-motion flow ``(N_prev, 3)`` of ``prev (N, >=3)`` into ``cur``'s frame by open3d ICP.

    Ground points (``z < ground_z``) are left out of the registration (they slide along the road).
    """
    import open3d as o3d

    def pcd(p: np.ndarray) -> object:
        q = p[:, :3] if ground_z is None else p[p[:, 2] > ground_z, :3]
        if len(q) < 10:
            q = p[:, :3]
        return o3d.geometry.PointCloud(o3d.utility.Vector3dVector(q.astype(np.float64)))

    reg = o3d.pipelines.registration.registration_icp(
        pcd(prev), pcd(cur), max_dist, np.eye(4), o3d.pipelines.registration.TransformationEstimationPointToPoint(),
        o3d.pipelines.registration.ICPConvergenceCriteria(max_iteration=iterations))
    T = np.asarray(reg.transformation)
    moved = prev[:, :3] @ T[:3, :3].T + T[:3, 3]
    return (moved - prev[:, :3]).astype(np.float32)


def read_flow(path: Path, n: int) -> np.ndarray:
    """A flow ``.npy`` ``(n, 3)`` float; DataError if it does not match the scan's point count."""
    from pretrainlab.core.data import DataError

    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(path, f"not a readable flow .npy ({e})") from e
    if f.shape != (n, 3):
        raise DataError(path, f"flow has shape {tuple(f.shape)}, expected ({n}, 3) to match the scan")
    if not np.isfinite(f).all():
        raise DataError(path, "flow holds NaN / inf values")
    return f.astype(np.float32)


class Predictor(nn.Module):
    """BYOL predictor q: point-wise MLP ``(..., D) -> (..., D)``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.LayerNorm(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class TemporalBranch(nn.Module):
    """``L_flow`` between the online features of frame t and the EMA target's of warped frame t-1."""

    def __init__(self, cfg: TemporalConfig, proj_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.predictor = Predictor(proj_dim, cfg.predictor_hidden)

    def forward(self, backbone: PillarBEVBackbone, proj: nn.Module, target_backbone: nn.Module, target_proj: nn.Module,
                points: Tensor, mask: Tensor, prev_points: Tensor, prev_mask: Tensor, prev_flow: Tensor,
                pc_range: list[float]) -> dict[str, Tensor]:
        """``points (B,N,4)`` frame t; ``prev_points (B,N,4)`` frame t-1; ``prev_flow (B,N,3)`` t-1 -> t."""
        B, N, _ = prev_points.shape
        warped = torch.cat([prev_points[..., :3] + prev_flow, prev_points[..., 3:]], -1)
        idx = torch.randint(0, N, (B, self.cfg.n_points), device=points.device)
        xy = torch.gather(warped[..., :2], 1, idx[..., None].expand(-1, -1, 2))
        online = self.predictor(proj(gather_bev(backbone(points, mask, pc_range), xy, pc_range)))
        with torch.no_grad():
            target = target_proj(gather_bev(target_backbone(warped, prev_mask, pc_range), xy, pc_range))
        D = online.shape[-1]
        return {"flow": byol_loss(online.reshape(-1, D), target.reshape(-1, D)) / D}
