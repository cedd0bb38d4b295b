"""``pretrainlab geo bench``: what a full-scale run costs.

1. Training samples/s and peak memory of the geocell stage (``GeolocationTask`` with haversine
   smoothing + auxiliary heads and the freezing scheme) and of the contrastive stage, timed through
   the trainer's own ``train_step``.
2. Inference images/s including retrieval refinement against an ``--index-images`` (10^6) index held
   as a run holds it (memory-mapped member embeddings and prototypes).
3. Semantic geocell construction for each ``--cells-points`` count (10^5 and 10^6): PIGEOTTO's sizes
   1000 / 2000 and the reference's OPTICS rounds on all points of a cell; the point assignment and the
   Voronoi shapes timed apart (wall and CPU seconds).
4. ``--stream-images N``: peak-RSS growth while streaming N generated images through the loader.

On CUDA the default tower is ViT-B-16 at 224 px (batch 256); on CPU test-vit-small at 64 px.
"""

from __future__ import annotations

from typing import Any

from pretrainlab.geo import api

N_CELLS = 2000  # PIGEOTTO-scale number of geocells for the timing


def _setup(device: str, model: str | None, image_size: int | None, batch_size: int | None) -> tuple[Any, int, bool]:
    from pretrainlab.core.train import select_device

    cuda = select_device(device).type == "cuda"
    name = model or ("ViT-B-16" if cuda else "test-vit-small")
    size = image_size or (224 if cuda else 64)
    cfg = api.load("pigeon", "full" if cuda else "tiny",
                   [f"model.clip_model={name}", f"model.image_size={size}", "model.pretrained="])
    return cfg, batch_size or (256 if cuda else 32), cuda


def bench(device: str = "auto", steps: int = 20, warmup: int = 3, batch_size: int | None = None,
          precision: str = "auto", compile: bool = False, model: str | None = None,
          image_size: int | None = None) -> list[dict[str, Any]]:
    """Training steps of the geocell stage and of the contrastive stage (the standard bench)."""
    import torch

    from pretrainlab.core.bench import bench_task

    cfg, bs, _ = _setup(device, model, image_size, batch_size)
    size, k = cfg.model.image_size, N_CELLS

    def batch() -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        return {"image": torch.randint(0, 256, (bs, 3, size, size), dtype=torch.uint8, generator=g),
                "latlon": torch.rand(bs, 2, generator=g) * torch.tensor([180.0, 360.0]) - torch.tensor([90.0, 180.0]),
                "cell": torch.randint(0, k, (bs,), generator=g), "climate": torch.randint(0, 30, (bs,), generator=g),
                "month": torch.randint(0, 12, (bs,), generator=g), "regression": torch.randn(bs, 6, generator=g)}

    task = api.new_task(cfg, k)
    task.centroids.copy_(torch.rand(k, 2) * torch.tensor([180.0, 360.0]) - torch.tensor([90.0, 180.0]))
    out = [bench_task(task, batch, steps=steps, warmup=warmup, device=device, precision=precision, compile=compile,
                      name=f"pigeon-geocells-{cfg.model.clip_model}", extra={"image_size": size, "n_cells": k},
                      train=cfg.train)]
    pre = api.new_contrastive_task(cfg)
    ctx = getattr(pre.clip, "context_length", 77)
    vocab = getattr(pre.clip, "vocab_size", 49408)

    def pbatch() -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(1)
        return {"image": torch.randint(0, 256, (bs, 3, size, size), dtype=torch.uint8, generator=g),
                "tokens": torch.randint(1, vocab, (bs, ctx), generator=g)}

    out.append(bench_task(pre, pbatch, steps=max(5, steps // 4), warmup=warmup, device=device, precision=precision,
                          compile=compile, name=f"pigeon-contrastive-{cfg.model.clip_model}",
                          extra={"image_size": size}, train=cfg.contrastive.train))
    return out


def run_bench(device: str = "auto", steps: int = 20, warmup: int = 3, batch_size: int | None = None,
              precision: str = "auto", compile: bool = False, model: str | None = None, image_size: int | None = None,
              index_images: int = 1_000_000, cells_points: list[int] | tuple[int, ...] = (100_000, 1_000_000),
              stream_images: int = 0) -> list[dict[str, Any]]:
    """Everything ``geo bench`` reports (see the module docstring)."""
    out = bench(device, steps, warmup, batch_size, precision, compile, model, image_size)
    cfg, bs, _ = _setup(device, model, image_size, batch_size)
    if index_images > 0:
        out.append(api.measure_refinement(api.new_task(cfg, N_CELLS), cfg, index_images, bs, max(3, steps // 10),
                                          device, precision))
    if stream_images > 0:
        out.append({"name": "streaming", **api.measure_streaming(stream_images)})
    for n in [p for p in cells_points if p > 0]:
        out.append({"name": f"geocells-{n}", **api.measure_geocells(n)})
    return out
