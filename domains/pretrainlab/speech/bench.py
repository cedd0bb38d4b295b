"""``pretrainlab speech bench``: TERA pre-training step throughput (frames/s), peak memory, and feature
extraction speed as a multiple of real time.

The training step is the paper's base model (3 layers, 768 hidden, 12 heads, FFN 3072) on
``batch x 1000`` frames of 80-dim log-mel (10 s utterances) with the full T-F-M alteration (on a CPU:
the tiny model, 3 s utterances), timed by the core's ``bench_task`` (forward under autocast, backward,
AdamW step). Feature extraction is the frozen encoder's forward over utterances of the same length (log-mel + encoder), reported as seconds of audio
per second. s3prl is not installed here, so no side-by-side run with its model code.
"""

from __future__ import annotations

import argparse
import time

import torch


def run_bench(a: argparse.Namespace) -> dict:
    from pretrainlab.core.bench import bench_task, report
    from pretrainlab.core.train import autocast_dtype, select_device
    from pretrainlab.speech.domain import load
    from pretrainlab.speech.features import extract
    from pretrainlab.speech.tera import TeraTask

    dev = select_device(a.device)
    profile = "full" if dev.type == "cuda" else "tiny"
    cfg = load("tera", profile, [])
    frames = 1000 if dev.type == "cuda" else 300
    bs = a.batch_size or (32 if dev.type == "cuda" else 8)
    D = cfg.features.dim
    torch.manual_seed(0)
    task = TeraTask(cfg)

    def make_batch() -> dict[str, torch.Tensor]:
        lengths = torch.randint(frames // 2, frames + 1, (bs,))
        lengths[0] = frames
        return {"feat": torch.randn(bs, frames, D), "lengths": lengths}

    res = bench_task(task, make_batch, steps=a.steps, warmup=a.warmup, device=a.device, precision=a.precision,
                     compile=a.compile, lr=cfg.train.lr, name=f"tera-{cfg.model.layers}x{cfg.model.hidden}",
                     extra={"frames_per_utt": frames, "model": f"{cfg.model.layers} layers, {cfg.model.hidden} hidden"})
    res["frames_per_s"] = res["samples_per_s"] * frames
    res["audio_hours_per_s"] = res["frames_per_s"] / 100 / 3600

    # feature extraction: waveform -> log-mel -> frozen encoder, x real time
    enc = task.encoder.eval()
    dtype = autocast_dtype(a.precision, dev)
    seconds = frames / 100.0
    wave = torch.randn(int(16000 * seconds)) * 0.1
    n = 10 if dev.type == "cuda" else 3
    with torch.inference_mode():
        for i in range(n + 1):
            if i == 1:
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                t0 = time.perf_counter()
            f = extract(wave, cfg.features).to(dev)[None]
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
                enc(f, torch.tensor([f.shape[1]], device=dev))
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    dt = time.perf_counter() - t0
    res["extraction_x_realtime"] = n * seconds / dt
    report(res, a.out)
    return res
