"""Is the rotation of a simulated street scan readable, and did a pre-trained lidar backbone collapse?

    OMP_NUM_THREADS=1 python benchmarks/lidar_rotation_signal.py [--ckpt RUN ...]

1. Signal in the data: for every tiny pre-training scan (3 passes), a view ``v1`` (flip / scale /
   translation as the spatial branch draws them) and ``v3 = R(theta) v1`` with theta uniform in the
   paper's (-pi/2, pi/2); a linear classifier on 8 x 8 blocks of above-ground occupancy of both views
   (80 % of the pairs to fit, 20 % to score) predicts theta's bin out of 10 (chance 0.10).
2. Collapse: for each ``--ckpt`` pre-training run (and a randomly initialised backbone), the mean
   cosine similarity between the projected features of points of 10 scans (1 = every point the same)
   and the effective rank of the backbone features.

Measured 2026-12-03 (README, "What the tiny run says"; ``--ckpt runs/lidar/reproduce-tiny/pretrain-essl3d``):
the occupancy probe scored 0.372; the table's E-SSL3D backbone a mean cosine of 0.344 against 0.992 for a
random one: no collapse.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from pretrainlab.lidar import api
from pretrainlab.lidar.datasets import PretrainPairs
from pretrainlab.lidar.pillar_backbone import gather_bev
from pretrainlab.lidar.rigid_transforms import apply_points, rotation_only, sample_transforms
from pretrainlab.lidar.spatial_equivariance import range_bins


def occupancy(p: torch.Tensor, m: torch.Tensor, half: float, grid: int = 8, ground: float = -1.2) -> torch.Tensor:
    """``(B, N, 4)`` points -> ``(B, grid * grid)`` share of the above-ground points in each block."""
    ix = ((p[..., 0] + half) / (2 * half) * grid).long().clamp(0, grid - 1)
    iy = ((p[..., 1] + half) / (2 * half) * grid).long().clamp(0, grid - 1)
    hi = (m & (p[..., 2] > ground)).float()
    out = torch.zeros(p.shape[0], grid * grid).scatter_add_(1, iy * grid + ix, hi)
    return out / (hi.sum(1, keepdim=True) + 1)


def probe_accuracy(ds: PretrainPairs, cfg, passes: int = 3) -> float:  # type: ignore[no-untyped-def]
    s = cfg.spatial
    half = cfg.data.pretrain_range[3]
    lo, hi = s.rotation_range
    xs, ys = [], []
    for _ in range(passes):
        for i in range(len(ds)):
            it = ds[i]
            p, m = it["points"][None], it["mask"][None]
            v1 = apply_points(p, sample_transforms(1, (0.0, 0.0), s.translation_max, s.scale_range, s.flip_p, "cpu"))
            theta = lo + (hi - lo) * torch.rand(1)
            v3 = apply_points(v1, rotation_only(theta))
            xs.append(torch.cat([occupancy(v1, m, half), occupancy(v3, m, half)], 1))
            ys.append(range_bins(theta, lo, hi, s.rotation_bins))
    x, y = torch.cat(xs), torch.cat(ys)
    fit = torch.arange(len(y)) < int(0.8 * len(y))
    z = (x - x[fit].mean(0)) / (x[fit].std(0) + 1e-6)
    w = torch.zeros(x.shape[1], s.rotation_bins, requires_grad=True)
    b = torch.zeros(s.rotation_bins, requires_grad=True)
    opt = torch.optim.Adam([w, b], 1e-2)
    for _ in range(2000):
        loss = F.cross_entropy(z[fit] @ w + b, y[fit]) + 1e-3 * (w**2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(((z[~fit] @ w + b).argmax(1) == y[~fit]).float().mean())


def diversity(task, ds: PretrainPairs, rng: list[float]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(mean cosine between projected point features, effective rank of the backbone features)."""
    task.eval()
    with torch.no_grad():
        items = [ds[i] for i in range(0, len(ds), max(1, len(ds) // 10))][:10]
        p = torch.stack([t["points"] for t in items])
        m = torch.stack([t["mask"] for t in items])
        idx = torch.randint(0, p.shape[1], (p.shape[0], 256))
        xy = torch.gather(p[..., :2], 1, idx[..., None].expand(-1, -1, 2))
        f = gather_bev(task.backbone(p, m, rng), xy, rng).reshape(-1, task.backbone.out_channels)
        z = F.normalize(task.projector(f), dim=-1)
        n = len(z)
        cos = float(((z @ z.T).sum() - n) / (n * n - n))
        sv = torch.linalg.svdvals(f - f.mean(0))
        return cos, float((sv**2).sum() ** 2 / (sv**4).sum())


def main(argv: list[str] | None = None) -> int:
    from pretrainlab.core.checkpoint import find_checkpoint, load_weights
    from pretrainlab.lidar.essl3d import ESSL3DTask

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", nargs="*", type=Path, default=[], help="pre-training run folders to check for collapse")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    cfg = api.load("essl3d", "tiny", [])
    ds = PretrainPairs(api.synthetic_data(cfg.data.profile), cfg.data, need_flow=False)
    print(f"rotation bin from 8x8 occupancy of both views, linear probe: {probe_accuracy(ds, cfg):.3f} "
          f"(chance {1 / cfg.spatial.rotation_bins:.2f})")
    for ck in [None, *args.ckpt]:
        task = ESSL3DTask(cfg)
        if ck is not None:
            load_weights(task, find_checkpoint(ck) / "model.safetensors", strict=False)
        cos, rank = diversity(task, ds, cfg.data.pretrain_range)
        print(f"{'random init' if ck is None else ck}: mean cosine {cos:.3f}, effective rank {rank:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
