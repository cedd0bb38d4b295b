"""``pretrainlab face bench``: fine-tuning step throughput and peak memory of full fine-tuning,
plain LoRA and PETALface on the paper-size Swin face backbone (120 px, [2, 18, 2]) on a GPU
(the tiny backbone on a CPU), plus embedding (inference) images/s."""

from __future__ import annotations

import time
from typing import Any

import torch


def run_bench(device: str = "auto", steps: int = 20, warmup: int = 3, batch_size: int | None = None,
              precision: str = "auto", compile: bool = False) -> dict[str, Any]:
    from pretrainlab.core.bench import bench_task
    from pretrainlab.core.train import autocast_dtype, select_device
    from pretrainlab.face.api import load
    from pretrainlab.face.petalface import FaceTask

    dev = select_device(device)
    gpu = dev.type == "cuda"
    profile = "full" if gpu else "tiny"
    bs = batch_size or (128 if gpu else 32)
    n_cls = 2570  # TinyFace training identities
    out: dict[str, Any] = {"profile": profile, "runs": []}
    for recipe in ("full_finetune", "lora", "petalface"):
        cfg = load(recipe, profile, ["quality.scorer=sharpness"])  # the weight-free scorer (no IQA weights offline)
        s = cfg.model.image_size
        task = FaceTask(cfg, n_cls)
        res = bench_task(task, lambda s=s: {"image": torch.rand(bs, 3, s, s) * 2 - 1, "label": torch.randint(0, n_cls, (bs,))},
                         steps=steps, warmup=warmup, device=device, precision=precision, compile=compile,
                         name=f"face-{recipe}-swin{s}")
        out["runs"].append(res)
        if gpu:
            torch.cuda.empty_cache()
    # embedding throughput (PETALface, inference, flip TTA off)
    task = task.to(dev).eval()
    x = torch.rand(bs, 3, s, s, device=dev) * 2 - 1  # normalised input
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
    out["embed_images_per_s"] = bs * n / (time.perf_counter() - t0)
    print(" | ".join(f"{r['name']}: {r['samples_per_s']:.0f} samples/s, {r['peak_mem_mb']:.0f} MB" for r in out["runs"])
          + f" | embedding: {out['embed_images_per_s']:.0f} images/s")
    return out
