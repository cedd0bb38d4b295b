"""``pretrainlab speech bench``: TERA pre-training step throughput (frames/s), peak memory, and upstream
feature extraction speed as a multiple of real time.

The training step is the paper's base model (3 layers, 768 hidden, 12 heads, FFN 3072) on
``batch x 1000`` frames of 80-dim log-mel (10 s utterances) with the full T-F-M alteration (on a CPU:
the tiny model, 3 s utterances), timed by the core's ``bench_task`` (the trainer's own ``train_step``:
autocast forward, backward, clipping, AdamW). Extraction is s3prl's upstream forward (log-mel + the
frozen encoder in eval mode) over utterances of the same length, in seconds of audio per second.
s3prl's own model code is not a dependency, so it is not timed side by side.
"""

from __future__ import annotations

import time
from typing import Any

from pretrainlab.speech import api


def bench(device: str = "auto", steps: int = 20, warmup: int = 3, batch_size: int | None = None,
          precision: str = "auto", compile: bool = False) -> list[dict[str, Any]]:
    import torch

    from pretrainlab.core.bench import bench_task
    from pretrainlab.core.config import ConfigError
    from pretrainlab.core.train import autocast_dtype, select_device

    for flag, value, least in (("--steps", steps, 1), ("--warmup", warmup, 0), ("--batch-size", batch_size, 1)):
        if value is not None and value < least:
            raise ConfigError(f"{flag}: {value} is not allowed; expected an integer >= {least}")
    dev = select_device(device)
    cfg = api.load("tera", "full" if dev.type == "cuda" else "tiny", [])
    frames = 1000 if dev.type == "cuda" else 300
    bs = batch_size or (32 if dev.type == "cuda" else 8)
    torch.manual_seed(0)
    task = api.new_task(cfg)

    def make_batch() -> dict[str, torch.Tensor]:
        lengths = torch.randint(frames // 2, frames + 1, (bs,))
        lengths[0] = frames
        return {"feat": torch.randn(bs, frames, cfg.features.dim), "lengths": lengths}

    res = bench_task(task, make_batch, steps=steps, warmup=warmup, device=device, precision=precision,
                     compile=compile, name=f"tera-{cfg.model.layers}x{cfg.model.hidden}", train=cfg.train,
                     extra={"frames_per_utt": frames, "model": f"{cfg.model.layers} layers, {cfg.model.hidden} hidden"})
    res["frames_per_s"] = res["samples_per_s"] * frames
    res["audio_hours_per_s"] = res["frames_per_s"] / 100 / 3600

    enc = task.encoder.eval()
    dtype = autocast_dtype(precision, dev)
    seconds = frames / 100.0
    wave = torch.randn(int(16000 * seconds)) * 0.1
    n = 10 if dev.type == "cuda" else 3
    with torch.inference_mode():
        for i in range(n + 1):
            if i == 1:
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                t0 = time.perf_counter()
            f = api.features(wave, cfg).to(dev)[None]
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
                enc(f, torch.tensor([f.shape[1]], device=dev))
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    res["extraction_x_realtime"] = n * seconds / (time.perf_counter() - t0)
    return [res]
