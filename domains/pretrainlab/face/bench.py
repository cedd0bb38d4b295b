"""``pretrainlab face bench``: fine-tuning step throughput and peak memory of full fine-tuning, plain LoRA
and PETALface on the paper-size Swin face backbone (120 px, [2, 18, 2]) on a GPU (the tiny backbone on a
CPU), timed through the trainer's own ``train_step`` (two optimizer groups, clipping on the backbone),
plus embedding (inference) images/s. The weight-free quality scorer stands in for BRISQUE (no IQA
weights offline)."""

from __future__ import annotations

import time
from typing import Any

from pretrainlab.face import api


def bench(device: str = "auto", steps: int = 20, warmup: int = 3, batch_size: int | None = None,
          precision: str = "auto", compile: bool = False) -> list[dict[str, Any]]:
    import torch

    from pretrainlab.core.bench import bench_task
    from pretrainlab.core.train import autocast_dtype, select_device

    dev = select_device(device)
    gpu = dev.type == "cuda"
    profile = "full" if gpu else "tiny"
    bs = batch_size or (64 if gpu else 32)  # ref: 8 x 8 GPUs = 64
    n_cls = 2570  # TinyFace training identities
    runs: list[dict[str, Any]] = []
    task: Any = None
    s = 0
    for recipe in ("full_finetune", "lora", "petalface"):
        cfg = api.load(recipe, profile, ["quality.scorer=sharpness"])
        s = cfg.model.image_size
        task = api.new_task(cfg, n_cls)
        runs.append(bench_task(task, lambda s=s: {"image": torch.rand(bs, 3, s, s) * 2 - 1,
                                                  "label": torch.randint(0, n_cls, (bs,))},
                               steps=steps, warmup=warmup, device=device, precision=precision, compile=compile,
                               name=f"face-{recipe}-swin{s}", train=cfg.train))
        if gpu:
            torch.cuda.empty_cache()
    task = task.to(dev).eval()  # embedding throughput of PETALface (inference, flip test off)
    x = torch.rand(bs, 3, s, s, device=dev) * 2 - 1
    dtype = autocast_dtype(precision, dev)
    n = max(1, steps // 2)
    with torch.inference_mode(), torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
        for _ in range(2):
            task.embed(x)
        if gpu:
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        for _ in range(n):
            task.embed(x)
        if gpu:
            torch.cuda.synchronize(dev)
    runs.append({"name": f"face-petalface-embed-swin{s}", "samples_per_s": bs * n / (time.perf_counter() - t0),
                 "batch_size": bs, "device": str(dev), "train": False})
    return runs
