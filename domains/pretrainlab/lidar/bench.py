"""Throughput of the LiDAR domain: the simulator (ray casting alone and whole scans, at the tiny and the
full resolution), E-SSL3D pre-training and detector fine-tuning steps (the trainer's own step)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def bench(device: str = "auto", steps: int = 20, warmup: int = 3, batch_size: int | None = None,
          precision: str = "auto", compile: bool = False, profile: str | None = None,
          sim_scans: int = 20) -> list[dict[str, Any]]:
    """Simulator rates (tiny and full resolution), then pre-training and fine-tuning samples/s and memory."""
    from pretrainlab.core.bench import bench_task
    from pretrainlab.core.train import select_device
    from pretrainlab.lidar import api

    dev = select_device(device)
    profile = profile or ("full" if dev.type == "cuda" else "tiny")
    results = [api.simulator_rates(api.sim_columns("tiny"), sim_scans), api.simulator_rates(api.sim_columns("full"), sim_scans)]
    pc, dc = api.load("essl3d", profile), api.load("detect", profile)
    bs_p, bs_d = batch_size or pc.train.batch_size, batch_size or dc.train.batch_size
    rng = np.random.default_rng(0)
    scans = api.simulated_scans(4, api.sim_columns(profile))

    def scan_batch(bs: int, n: int, rg: list[float], radius: float | None) -> torch.Tensor:
        out = []
        for i in range(bs):
            p = scans[i % len(scans)].points
            keep = (np.hypot(p[:, 0], p[:, 1]) < radius) if radius else \
                ((p[:, 0] >= rg[0]) & (p[:, 0] < rg[3]) & (p[:, 1] >= rg[1]) & (p[:, 1] < rg[4]))
            p = p[keep]
            out.append(torch.from_numpy(p[rng.integers(0, len(p), n)]))
        return torch.stack(out)

    r, n = pc.data.pretrain_range, pc.data.max_points
    pts = scan_batch(bs_p, n, r, pc.data.crop_radius_ratio * (r[3] - r[0]) / 2)
    pre_batch = {"points": pts, "mask": torch.ones(bs_p, n, dtype=torch.bool), "prev_points": pts.clone(),
                 "prev_mask": torch.ones(bs_p, n, dtype=torch.bool), "prev_flow": torch.zeros(bs_p, n, 3)}
    task_p = api.make_task(pc)
    results.append(bench_task(task_p, lambda: pre_batch, steps=steps, warmup=warmup, device=device, precision=precision,
                              compile=compile, name=f"essl3d-pretrain-{profile}", train=pc.train,
                              extra={"points_per_scan": n, "grid": list(task_p.backbone.grid_shape(r))}))
    nd, K = dc.data.max_points, dc.data.max_objects
    boxes = torch.zeros(bs_d, K, 7)
    labels = torch.full((bs_d, K), -1, dtype=torch.long)
    for i in range(bs_d):
        for j, o in enumerate(scans[i % len(scans)].objects[:K]):
            boxes[i, j] = torch.from_numpy(o.box)
            labels[i, j] = ("Car", "Pedestrian", "Cyclist").index(o.cls)
    det_batch = {"points": scan_batch(bs_d, nd, dc.data.detect_range, None), "mask": torch.ones(bs_d, nd, dtype=torch.bool),
                 "boxes": boxes, "labels": labels}
    results.append(bench_task(api.make_task(dc), lambda: det_batch, steps=steps, warmup=warmup, device=device,
                              precision=precision, compile=compile, name=f"detector-finetune-{profile}", train=dc.train,
                              extra={"points_per_scan": nd}))
    return results
