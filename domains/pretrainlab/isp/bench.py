"""``pretrainlab isp bench``: per-generator Full-HD inference latency + training-step throughput / memory."""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch


def fullhd_latency(gen: torch.nn.Module, device: torch.device, dtype: torch.dtype | None, reps: int = 3) -> float:
    """Mean seconds to render one 1920x1080 frame (packed input 4 x 540 x 960)."""
    x = torch.rand(1, 4, 540, 960, device=device)
    gen = gen.to(device).eval()
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        gen(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            gen(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) / reps


def run_bench(a: argparse.Namespace) -> list[dict[str, Any]]:
    from pretrainlab.core.bench import bench_task, report
    from pretrainlab.core.config import merge
    from pretrainlab.core.train import autocast_dtype, select_device
    from pretrainlab.isp.config import ISPConfig
    from pretrainlab.isp.feature_networks import FeatureNets
    from pretrainlab.isp.generators import GENERATORS, build_generator, count_macs, count_params
    from pretrainlab.isp.unpaired_training import ISPTask

    dev = select_device(a.device)
    dtype = autocast_dtype(a.precision, dev)
    names = list(GENERATORS) if a.generator == "all" else [a.generator]
    size = a.size or (128 if dev.type == "cuda" else 32)
    bs = a.batch_size or (32 if dev.type == "cuda" else 4)
    results = []
    for name in names:
        gen = build_generator(name)
        lat = fullhd_latency(gen, dev, dtype, reps=3 if dev.type == "cuda" else 1)
        # paper-size discriminators / ViT on CUDA, the tiny ones on CPU (feature nets at random init)
        over: dict[str, Any] = {"model.generator": name, "loss.mode": "unpaired"}
        if dev.type != "cuda":
            over.update({"loss.disc_width": 16, "loss.disc_fc": 256, "loss.colour_hidden": 128})
        cfg = merge(ISPConfig(), over)
        task = ISPTask(cfg, FeatureNets(cfg.features).freeze())
        task.always_d = True
        h = size

        def make_batch(h: int = h) -> dict[str, torch.Tensor]:
            return {"raw": torch.rand(bs, 4, h, h), "ref": torch.rand(bs, 3, 2 * h, 2 * h),
                    "real": torch.rand(bs, 3, 2 * h, 2 * h), "target": torch.rand(bs, 3, 2 * h, 2 * h)}

        steps = a.steps if dev.type == "cuda" else min(a.steps, 5)
        res = bench_task(task, make_batch, steps=steps, warmup=min(a.warmup, 2), device=a.device,
                         precision=a.precision, compile=a.compile, name=f"isp-{name}-unpaired-train-step",
                         extra={"generator": name, "generator_params": count_params(gen),
                                "GMACs_FullHD": count_macs(gen.cpu(), (540, 960)) / 1e9,
                                "fullhd_latency_s": lat, "patch": 2 * h,
                                "note": "training step = G forward + 5 grad-norm passes + 3 discriminators with R1/R2"})
        results.append(res)
    report(results, a.out)
    return results
