"""Training-step throughput and peak memory of the built-in SimCLR recipe (``pretrainlab simclr bench``)."""

from __future__ import annotations

from typing import Any

from pretrainlab.core.builtin import api


def bench(device: str = "auto", steps: int = 20, warmup: int = 3, batch_size: int | None = None,
          precision: str = "auto", compile: bool = False) -> list[dict[str, Any]]:
    import torch

    from pretrainlab.core.bench import bench_task

    cfg = api.load(None, "tiny", [])
    bs = batch_size or 256
    size = cfg.data.image_size
    return [bench_task(api.build_task(cfg), lambda: {"image": torch.rand(bs, 3, size, size)}, steps=steps, warmup=warmup,
                       device=device, precision=precision, compile=compile, name="simclr-smallcnn", train=cfg.train)]
