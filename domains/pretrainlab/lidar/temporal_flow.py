"""Temporal branch of E-SSL3D (paper Sec. 3.3): scene-flow-equivariant BYOL.

The online network (f, m, q) sees frame ``t``; the target network (f', m') — an EMA of the online
one (decay 0.999) — sees frame ``t-1`` whose points are moved by the scene flow ``d(t-1 -> t)`` and
re-voxelised. Features are gathered at the moved coordinates in both BEV maps and the online
prediction regresses the target projection: ``L_flow = MSE(normalise(q(m(f(x_t)))), normalise(m'(f'(warp(x_{t-1})))))``.

Scene flow: the paper uses a frozen pre-trained PV-RAFT. Here the flow is pluggable
(``data.flow_source``):

- ``file``: precomputed per-frame flow files beside the scan folder, ``flow/<stem>.npy`` (or under
  ``data.flow_root``, mirroring the data folder): a ``(N, 3)`` float array, the displacement of each
  of the ``N`` points of scan ``t`` (in file order) into the LiDAR frame of scan ``t + 1``; or a
  ``.npz`` with ``index (M,)`` (rows of the scan) and ``flow (M, 3)`` when a learned estimator (PV-RAFT
  samples 8192 points) gives flow for a subset: only those points enter the temporal branch. The
  simulator writes exact flow in the first form.
- ``icp``: the ego motion between the two scans by open3d point-to-point ICP on non-ground points,
  applied to every point (the fallback for real sequences without flow). It models a static world:
  a moving car, cyclist or pedestrian gets the ego motion only, so its warped points land where the
  object was, not where it moved; learned flow (or the simulator's exact flow) does not have this
  error.

Deviation: MSE is the element-wise mean over the feature dimension (``byol_loss / D``), which keeps
the paper's weight of 300 in a sensible range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pretrainlab.core.losses import byol_loss
from pretrainlab.lidar.config import TemporalConfig
from pretrainlab.lidar.formats import ScanSequence
from pretrainlab.lidar.pillar_backbone import PillarBEVBackbone, gather_bev


def icp_transform(prev: np.ndarray, cur: np.ndarray, max_dist: float = 1.0, iterations: int = 30,
                  ground_z: float | None = -1.4) -> np.ndarray:
    """The 4x4 rigid transform taking ``prev (N, >=3)`` onto ``cur`` (open3d point-to-point ICP).

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
    return np.asarray(reg.transformation).copy()


def flow_file(seq: ScanSequence, scan: Path, root: Path, flow_root: str = "") -> Path:
    """The flow file of ``scan``: ``<flow dir>/<stem>.npy`` or ``.npz`` (DataError naming both when absent)."""
    from pretrainlab.core.data import DataError

    d = seq.flow_dir
    if flow_root:
        try:
            d = Path(flow_root) / seq.flow_dir.relative_to(root)
        except ValueError:
            d = Path(flow_root) / seq.flow_dir.name
    for suffix in (".npy", ".npz"):
        if (d / f"{scan.stem}{suffix}").exists():
            return d / f"{scan.stem}{suffix}"
    raise DataError(d / f"{scan.stem}.npy", "no scene-flow file for this scan (.npy or .npz); bring precomputed "
                                            "flow or set data.flow_source=icp")


def read_flow(path: Path, n: int) -> tuple[np.ndarray | None, np.ndarray]:
    """A flow file -> ``(index (M,) or None, flow (M, 3) float32)`` for a scan of ``n`` points (DataError if
    it does not match)."""
    from pretrainlab.core.data import DataError
    from pretrainlab.core.guards import load_npy

    path = Path(path)
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                if "index" not in z or "flow" not in z:
                    raise DataError(path, f"a flow .npz needs arrays 'index' and 'flow', found {sorted(z.files)}")
                for k in ("index", "flow"):
                    info = z.zip.getinfo(f"{k}.npy")
                    if info.file_size > 64 * n * 8 + 4096:
                        raise DataError(path, f"'{k}' declares {info.file_size} bytes for a scan of {n} points")
                idx, f = np.asarray(z["index"]), np.asarray(z["flow"])
        except DataError:
            raise
        except (OSError, ValueError, KeyError, EOFError) as e:
            raise DataError(path, f"not a readable flow .npz ({e})") from e
        if idx.dtype.kind not in "iu" or idx.ndim != 1:
            raise DataError(path, f"'index' must be a 1-D integer array, got {idx.dtype} {tuple(idx.shape)}")
        if f.shape != (len(idx), 3):
            raise DataError(path, f"'flow' has shape {tuple(f.shape)}, expected ({len(idx)}, 3) to match 'index'")
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise DataError(path, f"'index' holds rows outside the scan's {n} points")
        if len(idx) == 0:
            raise DataError(path, "'index' is empty: no point has flow")
    else:
        f = np.asarray(load_npy(path))
        idx = None
        if f.shape != (n, 3):
            raise DataError(path, f"flow has shape {tuple(f.shape)}, expected ({n}, 3) to match the scan")
    if f.dtype.kind not in "fiu":
        raise DataError(path, f"flow must be numeric, got dtype {f.dtype}")
    if not np.isfinite(f).all():
        raise DataError(path, "flow holds NaN / inf values")
    return (None if idx is None else idx.astype(np.int64)), f.astype(np.float32)


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
