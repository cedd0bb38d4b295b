"""``pretrainlab geo bench``: the three numbers the issue asks for.

1. Semantic geocell construction time for ``--cells-points`` (10^5) synthetic-world locations
   (PIGEOTTO sizes 1000 / 2000 and OPTICS rounds, Voronoi shapes included).
2. Training samples/s and peak memory of the geocell stage (``GeolocationTask`` with haversine
   smoothing + auxiliary heads and the freezing scheme) and of the contrastive pre-training stage.
3. Inference images/s including retrieval refinement against a 10^5-image index.

On CUDA the default tower is ViT-B-16 at 224 px (batch 256); on CPU test-vit-small at 64 px.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch


def _cells_bench(n: int) -> dict[str, Any]:
    from pretrainlab.geo.semantic_geocells import GeocellConfig, build_geocells
    from pretrainlab.geo.world import sample_locations

    m = sample_locations(n, np.random.default_rng(0))
    ll = np.stack([m["lat"], m["lon"]], axis=1)
    # PIGEOTTO sizes for a 10^5..10^6 image set; OPTICS fitted on <= 500 points per cell (speed)
    cfg = GeocellConfig(min_size=1000, max_size=2000, optics_max_points=500)
    t = time.perf_counter()
    cells, _ = build_geocells(ll, cfg, progress=False)
    return {"geocell_points": n, "geocells": len(cells), "geocell_build_s": time.perf_counter() - t}


def run_bench(a: argparse.Namespace) -> dict[str, Any]:
    from pretrainlab.core.bench import bench_task, report
    from pretrainlab.core.train import autocast_dtype, select_device
    from pretrainlab.geo.config import GeoConfig
    from pretrainlab.geo.contrastive_pretraining import ContrastivePretrainTask
    from pretrainlab.geo.geolocation import GeolocationTask
    from pretrainlab.geo.model import ModelConfig
    from pretrainlab.geo.retrieval_refinement import RefinementIndex, refine

    dev = select_device(a.device)
    cuda = dev.type == "cuda"
    name = a.model or ("ViT-B-16" if cuda else "test-vit-small")
    size = getattr(a, "image_size", None) or (224 if cuda else 64)
    bs = a.batch_size or (256 if cuda else 32)
    k = 2000
    cfg = GeoConfig(model=ModelConfig(clip_model=name, image_size=size), n_cells=k)
    results: dict[str, Any] = {}

    def batch() -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        return {"image": torch.randint(0, 256, (bs, 3, size, size), dtype=torch.uint8, generator=g),
                "latlon": torch.rand(bs, 2, generator=g) * torch.tensor([180.0, 360.0]) - torch.tensor([90.0, 180.0]),
                "cell": torch.randint(0, k, (bs,), generator=g), "climate": torch.randint(0, 30, (bs,), generator=g),
                "month": torch.randint(0, 12, (bs,), generator=g), "regression": torch.randn(bs, 6, generator=g)}

    task = GeolocationTask(cfg)
    task.centroids.copy_(torch.rand(k, 2) * torch.tensor([180.0, 360.0]) - torch.tensor([90.0, 180.0]))
    results["train_geocells"] = bench_task(task, batch, steps=a.steps, warmup=a.warmup, device=a.device,
                                           precision=a.precision, compile=a.compile, name=f"pigeon-geocells-{name}",
                                           extra={"image_size": size, "n_cells": k})
    ctx = task.clip.context_length if hasattr(task.clip, "context_length") else 77
    vocab = task.clip.vocab_size if hasattr(task.clip, "vocab_size") else 49408
    pre = ContrastivePretrainTask(cfg)

    def pbatch() -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(1)
        return {"image": torch.randint(0, 256, (bs, 3, size, size), dtype=torch.uint8, generator=g),
                "tokens": torch.randint(1, vocab, (bs, ctx), generator=g)}

    results["contrastive_pretraining"] = bench_task(pre, pbatch, steps=max(5, a.steps // 4), warmup=a.warmup,
                                                    device=a.device, precision=a.precision, compile=a.compile,
                                                    name=f"pigeon-contrastive-{name}", extra={"image_size": size})
    del pre
    # inference with refinement against a 10^5-image index (random embeddings: timing only)
    n_index, d = 100_000, task.heads.geocell.in_features
    g = torch.Generator().manual_seed(2)
    emb = torch.nn.functional.normalize(torch.randn(n_index, d, generator=g), dim=-1)
    member = torch.randint(0, 20 * k, (n_index,), generator=g)
    protos = torch.nn.functional.normalize(torch.randn(20 * k, d, generator=g), dim=-1)
    index = RefinementIndex(emb, torch.rand(n_index, 2, generator=g) * 90, member, protos,
                            torch.arange(20 * k) % k).to(dev)
    task.to(dev).eval()
    x = batch()["image"].to(dev)
    dtype = autocast_dtype(a.precision, dev)
    steps = max(3, a.steps // 10)
    with torch.inference_mode():
        for i in range(steps + 1):
            if i == 1:
                if cuda:
                    torch.cuda.synchronize(dev)
                t = time.perf_counter()
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
                out = task.predict(x)
            probs = torch.softmax(out["geocell"].float(), -1)
            refine(out["embedding"], probs, task.centroids, index, cfg.refine)
        if cuda:
            torch.cuda.synchronize(dev)
    results["inference_with_refinement"] = {"images_per_s": bs * steps / (time.perf_counter() - t),
                                            "batch_size": bs, "index_images": n_index}
    if a.cells_points > 0:  # CPU work (OPTICS / Voronoi): 0 skips it
        results["geocells"] = _cells_bench(a.cells_points)
    report(results, a.out)
    return results
