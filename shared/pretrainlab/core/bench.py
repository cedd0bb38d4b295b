"""Throughput / memory benchmark of a Task's training step (``pretrainlab <d> bench``).

Measures what the trainer does per step (forward under autocast, backward, optimizer step) on
one fixed batch, so data loading is excluded: samples/s, mean step time, peak memory (max
allocated on CUDA, peak RSS on CPU).
"""

from __future__ import annotations

import json
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pretrainlab.core.config import TrainConfig
from pretrainlab.core.data import default_collate_to
from pretrainlab.core.io import atomic_write_json
from pretrainlab.core.optim import build_optimizer
from pretrainlab.core.train import Task, autocast_dtype, select_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if sys.platform != "darwin" else r / 2**20


def bench_task(task: Task, make_batch: Callable[[], Any], *, steps: int = 20, warmup: int = 3,
               device: str = "auto", precision: str = "auto", compile: bool = False, lr: float = 1e-4,
               name: str = "", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Time ``steps`` training steps of ``task`` on ``make_batch()`` after ``warmup`` untimed ones."""
    dev = select_device(device)
    task.to(dev).train()
    cfg = TrainConfig(lr=lr, precision=precision)
    groups = task.optim_groups()
    opts = []
    claimed = {id(p) for g in groups if g.params is not None for p in g.params}
    for g in groups:
        params = g.params if g.params is not None else [p for p in task.parameters() if p.requires_grad and id(p) not in claimed]
        opts.append((g, [p for p in params if p.requires_grad], build_optimizer(params, cfg)))
    model = torch.compile(task) if compile else task
    dtype = autocast_dtype(precision, dev)
    batch = default_collate_to(make_batch(), dev)
    bs = task.batch_size(batch)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    def step() -> None:
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            out = model(batch)
        for i, (g, params, _) in enumerate(opts):
            torch.autograd.backward(out[g.loss_key].float(), inputs=params, retain_graph=i < len(opts) - 1)
        for _, _, o in opts:
            o.step()
            o.zero_grad(set_to_none=True)
        task.on_step_end(1, 1000)

    for _ in range(warmup):
        step()
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(dev)
    dt = time.perf_counter() - t0
    res: dict[str, Any] = {
        "name": name or type(task).__name__,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
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
    print(json.dumps(results, indent=2))
    if out is not None:
        atomic_write_json(Path(out), results)
