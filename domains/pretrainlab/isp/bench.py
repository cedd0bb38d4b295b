"""``pretrainlab isp bench``: per generator, Full-HD inference latency and the unpaired training step.

The training step is the core trainer's own ``train_step`` with every discriminator due at every
step (``loss.d_every = 1``): generator forward, the five gradient-norm passes of the balancing, the
three discriminators with R1 / R2. On CUDA the paper's sizes are used (VGG-19 / AlexNet at full
width, ViT-B/16 at 224, discriminators 48-128-192-192-128 + FC 1024, 256x256 patches); on a CPU
the tiny profile's sizes. Feature networks are randomly initialised (their weights do not change
the cost).
"""

from __future__ import annotations

import time
from typing import Any

from pretrainlab.isp import api

GENERATORS = ("efficientisp", "robustisp", "rmfanet_tiny")


def fullhd_latency(gen: Any, device: Any, dtype: Any, reps: int = 3) -> float:
    """Mean seconds to render one 1920x1080 frame (packed input 4 x 540 x 960)."""
    import torch

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


def bench(device: str = "auto", steps: int = 20, warmup: int = 3, batch_size: int | None = None,
          precision: str = "auto", compile: bool = False, generators: tuple[str, ...] = GENERATORS) -> list[dict[str, Any]]:
    import torch

    from pretrainlab.core.bench import bench_task
    from pretrainlab.core.config import ConfigError
    from pretrainlab.core.train import autocast_dtype, select_device

    if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ConfigError(f"--device: '{device}' is not allowed; allowed: auto, cpu, cuda, cuda:N")
    if steps < 1 or warmup < 0 or (batch_size is not None and batch_size < 1):
        raise ConfigError(f"--steps {steps} / --warmup {warmup} / --batch-size {batch_size}: expected steps >= 1, "
                          "warmup >= 0, batch size >= 1")
    unknown = [g for g in generators if g not in GENERATORS]
    if unknown:
        raise ConfigError(f"generators: {unknown} not allowed; allowed: {', '.join(GENERATORS)}")
    dev = select_device(device)
    cuda = dev.type == "cuda"
    dtype = autocast_dtype(precision, dev)
    h = 128 if cuda else 32  # packed patch side (RGB 256 on CUDA: the UltraISP patches)
    bs = batch_size or (32 if cuda else 4)
    results = []
    for name in generators:
        over = ["loss.d_every=1", f"model.generator={name}", "loss.mode=unpaired"]
        if cuda:
            over += ["features.width_div=1"]
        cfg = api.load(f"{name}_unpaired", "full" if cuda else "tiny", over)
        task = api.random_task(cfg, (2 * h, 2 * h), paper_vit=cuda)  # CUDA: the paper's ViT-B/16 at 224
        gen = api.build_generator(name)
        lat = fullhd_latency(gen, dev, dtype, reps=3 if cuda else 1)

        def make_batch() -> dict[str, torch.Tensor]:
            return {"raw": torch.rand(bs, 4, h, h), "ref": torch.rand(bs, 3, 2 * h, 2 * h),
                    "real": torch.rand(bs, 3, 2 * h, 2 * h)}

        res = bench_task(task, make_batch, steps=steps, warmup=warmup, device=device, precision=precision,
                         compile=compile, name=f"isp-{name}-unpaired-train-step", train=cfg.train,
                         extra={"generator": name, "generator_params": api.count_params(gen),
                                "GMACs_FullHD": api.gmacs_fullhd(gen.cpu()), "fullhd_latency_s": lat,
                                "patch": 2 * h, "note": "G forward + 5 grad-norm passes + 3 discriminators with R1/R2"})
        results.append(res)
    return results
