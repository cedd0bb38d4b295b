"""Throughput / memory benchmark of a Task's training step (``pretrainlab <d> bench``).

Measures what the trainer does per step (forward under autocast, backward, optimizer step) on
one fixed batch, so data loading is excluded: samples/s, mean step time, peak memory (max
allocated on CUDA, peak RSS on CPU).
"""

from __future__ import annotations

import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pretrainlab.core.config import TrainConfig
from pretrainlab.core.io import atomic_write_json, dumps_json
from pretrainlab.core.train import Task


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if sys.platform != "darwin" else r / 2**20


def bench_task(task: Task, make_batch: Callable[[], Any], *, steps: int = 20, warmup: int = 3,
               device: str = "auto", precision: str = "auto", compile: bool = False, lr: float = 1e-4,
               name: str = "", extra: dict[str, Any] | None = None, train: TrainConfig | None = None) -> dict[str, Any]:
    """Time ``steps`` optimizer steps of ``task`` on ``make_batch()`` after ``warmup`` untimed ones.

    Each step is the trainer's own :meth:`~pretrainlab.core.train.Trainer.train_step` (forward under
    autocast, backward, clipping, the finite check, the optimizer step of every group due at that
    step), so what is timed is what training runs. ``train``: the task's TrainConfig (optimizer,
    clipping); its device / precision / compile are replaced by the arguments.
    """
    import dataclasses
    import tempfile

    from pretrainlab.core.train import Trainer

    cfg = dataclasses.replace(train or TrainConfig(lr=lr), device=device, precision=precision, compile=compile,
                              max_steps=max(1, warmup + steps), warmup_steps=0, progress=False, tensorboard=False)
    trainer = Trainer(cfg, Path(tempfile.gettempdir()) / "pretrainlab-bench-unused")
    dev = trainer.device
    eng = trainer.prepare(task)
    task.train()
    batch = make_batch()
    bs = task.batch_size(batch)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    for i in range(warmup):
        trainer.train_step(eng, [batch], i)
    _sync(dev)
    t0 = time.perf_counter()
    for i in range(steps):
        trainer.train_step(eng, [batch], warmup + i)
    _sync(dev)
    dt = time.perf_counter() - t0
    dtype = trainer.amp_dtype
    res: dict[str, Any] = {
        "name": name or type(task).__name__,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda"
        else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "precision": str(dtype).replace("torch.", "") if dtype else "fp32",
        "compile": compile,
        "batch_size": bs,
        "steps": steps,
        "step_time_s": dt / steps,
        "samples_per_s": bs * steps / dt,
        "params": sum(p.numel() for p in task.parameters()),
        "trainable_params": sum(p.numel() for p in task.parameters() if p.requires_grad),
    }
    if dev.type == "cuda":
        res["peak_mem_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
        res["peak_mem_kind"] = "cuda max allocated"
    else:
        res["peak_mem_mb"] = peak_rss_mb()
        res["peak_mem_kind"] = "process peak RSS"
    res.update(extra or {})
    return res


def report(results: dict[str, Any] | list[dict[str, Any]], out: Path | None = None) -> None:
    """Print the JSON and write it to ``out`` when given."""
    print(dumps_json(results, indent=2))
    if out is not None:
        atomic_write_json(Path(out), results)
