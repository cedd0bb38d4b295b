"""The ONE training loop of pretrainlab.

A method is a :class:`Task` (an ``nn.Module``) whose ``forward(batch)`` returns a dict of named
scalar losses, ``"loss"`` being the total that is optimised. :class:`Trainer` owns everything
else: device choice, bf16 autocast on CUDA, gradient accumulation, clipping, warm-up + cosine /
linear / poly schedules, the optimizer(s), EMA hooks, non-finite-loss handling, logging (progress bar,
``metrics.jsonl``, TensorBoard when installed), checkpoints, exact resume and DDP under torchrun.

Tasks with several optimizers (e.g. a GAN's generator and discriminator) declare them with
:meth:`Task.optim_groups`: each group names the loss key it minimises and its parameters, and
may step only every ``k`` optimizer steps. Each group's loss is back-propagated into its own
parameters only (``autograd.backward(inputs=...)``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from pretrainlab.core import distributed as D
from pretrainlab.core.checkpoint import (
    find_checkpoint,
    load_state,
    load_tensors,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from pretrainlab.core.config import TrainConfig, save_config, to_dict
from pretrainlab.core.data import ResumableSampler, batch_size_of, default_collate_to
from pretrainlab.core.io import atomic_write_text
from pretrainlab.core.optim import build_optimizer
from pretrainlab.core.schedules import lr_factor


class NonFiniteLossError(RuntimeError):
    """Raised when the loss / gradients stay non-finite past ``train.max_nan_skips``."""


@dataclasses.dataclass
class OptimGroup:
    """One optimizer: the loss it minimises, its parameters and how often it steps."""

    name: str = "main"
    loss_key: str = "loss"
    params: list[nn.Parameter] | None = None  # None: every trainable parameter not claimed by another group
    lr: float | None = None  # None: train.lr
    weight_decay: float | None = None  # None: train.weight_decay
    every: int = 1  # step once every `every` optimizer steps
    clip_grad: float | None = None  # max grad norm of this group's parameters; None: train.clip_grad, 0: off


class Task(nn.Module):
    """Base class of every pre-training / fine-tuning method.

    ``forward(batch) -> {"loss": total, "<term>": value, ...}``; every value a 0-d tensor.
    """

    def optim_groups(self) -> list[OptimGroup]:
        return [OptimGroup()]

    def on_step_end(self, step: int, max_steps: int) -> None:
        """Called after every optimizer step (``step`` is 1-based): EMA / momentum updates go here."""

    def batch_size(self, batch: Any) -> int:
        return batch_size_of(batch)


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    step: int
    checkpoint: Path | None
    history: list[dict[str, Any]]
    wall_time_s: float
    samples_per_s: float
    nan_skipped: int


def select_device(spec: str = "auto") -> torch.device:
    """``auto``: CUDA (this process's local rank) when available, else CPU."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", D.local_rank() % torch.cuda.device_count())
        return torch.device("cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device '{spec}' requested but CUDA is not available")
    return dev


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    raise ValueError(f"unknown precision '{precision}' (use auto, bf16 or fp32)")


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def set_deterministic(on: bool) -> None:
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


class _Logger:
    """Rank-0 logging: ``metrics.jsonl`` (always), TensorBoard (when installed), progress bar."""

    def __init__(self, run_dir: Path, cfg: TrainConfig, start_step: int, enabled: bool) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        self.bar = None
        if not enabled:
            return
        if start_step > 0 and self.path.exists():  # drop rows logged after the checkpoint we resume from
            rows = [ln for ln in self.path.read_text().splitlines() if ln.strip()]
            keep = [ln for ln in rows if json.loads(ln).get("step", 0) <= start_step]
            atomic_write_text(self.path, "".join(k + "\n" for k in keep))
        elif start_step == 0 and self.path.exists():
            self.path.unlink()
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"))
            except (ImportError, OSError):  # tensorboard not installed: metrics.jsonl is enough
                self.tb = None
        if cfg.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=cfg.max_steps, initial=start_step, desc="train", unit="step",
                            dynamic_ncols=True, file=sys.stderr)

    def log(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.tb.add_scalar(k, v, row["step"])
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{row.get('loss', float('nan')):.4g}",
                                 samples_s=f"{row.get('samples_per_s', 0):.1f}", refresh=False)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()


class Trainer:
    """Runs a :class:`Task` over a dataset for ``cfg.max_steps`` optimizer steps.

    ``run_dir`` receives ``config.yaml`` (``full_config`` when given, else the train config),
    ``metrics.jsonl``, ``checkpoints/step_*`` and ``train_summary.json``.
    """

    def __init__(self, cfg: TrainConfig, run_dir: str | Path, full_config: Any = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.full_config = full_config if full_config is not None else cfg
        self.device = select_device(cfg.device)
        self.distributed = D.init_distributed(self.device)
        self.rank, self.world = D.rank(), D.world_size()
        self.is_main = self.rank == 0

    # ------------------------------------------------------------------ pieces
    def _groups(self, task: Task) -> list[tuple[OptimGroup, list[nn.Parameter]]]:
        groups = task.optim_groups()
        claimed: set[int] = set()
        for g in groups:
            if g.params is not None:
                claimed.update(id(p) for p in g.params)
        out = []
        for g in groups:
            params = g.params if g.params is not None else [
                p for p in task.parameters() if p.requires_grad and id(p) not in claimed]
            params = [p for p in params if p.requires_grad]
            if not params:
                raise ValueError(f"optimizer group '{g.name}' has no trainable parameters")
            out.append((g, params))
        return out

    def _loader(self, dataset: Dataset, collate_fn: Callable[[list[Any]], Any] | None,
                sampler: ResumableSampler | None) -> DataLoader:
        cfg = self.cfg
        g = torch.Generator().manual_seed(cfg.seed)
        kwargs: dict[str, Any] = {"batch_size": cfg.batch_size, "collate_fn": collate_fn,
                                      "num_workers": cfg.num_workers, "pin_memory": self.device.type == "cuda",
                                      "drop_last": True, "generator": g}
        if cfg.num_workers > 0:
            kwargs["persistent_workers"] = False
            kwargs["prefetch_factor"] = 4
        if sampler is not None:
            kwargs["sampler"] = sampler
        return DataLoader(dataset, **kwargs)

    # ------------------------------------------------------------------ main entry
    def fit(self, task: Task, dataset: Dataset | Iterable[Any], collate_fn: Callable[[list[Any]], Any] | None = None,
            resume: bool | str | Path = False) -> TrainResult:
        cfg = self.cfg
        if cfg.max_steps <= 0:
            raise ValueError("train.max_steps must be positive")
        set_deterministic(cfg.deterministic)
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.full_config, self.run_dir / "config.yaml")
        D.barrier()

        task.to(self.device)
        if cfg.channels_last and self.device.type == "cuda":
            task.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        groups = self._groups(task)
        optimizers = [build_optimizer(params, cfg, g.lr, g.weight_decay) for g, params in groups]
        single = len(groups) == 1 and groups[0][0].every == 1

        # ---- resume
        start_step, epoch, batch_in_epoch, nan_skips = 0, 0, 0, 0
        restored_rng = None
        ckpt_dir = self.run_dir / "checkpoints"
        if resume:
            src = ckpt_dir if resume is True else Path(resume)
            try:
                folder = find_checkpoint(src)
            except Exception:
                folder = None
                if resume is not True:
                    raise
            if folder is not None:
                weights, _ = load_tensors(folder / "model.safetensors", self.device)
                task.load_state_dict(weights)
                st = load_state(folder / "state.safetensors")
                for opt, osd in zip(optimizers, st["optimizers"]):
                    opt.load_state_dict(osd)
                start_step, epoch = int(st["step"]), int(st["epoch"])
                batch_in_epoch, nan_skips = int(st["batch_in_epoch"]), int(st["nan_skips"])
                restored_rng = st["rng"][self.rank] if self.rank < len(st["rng"]) else None
                if self.is_main:
                    print(f"resuming from {folder} at step {start_step}", file=sys.stderr)

        # per-rank RNG for augmentation / dropout (model init already happened, identically on all ranks)
        if restored_rng is not None:
            set_rng_state(restored_rng)
        elif start_step == 0:
            seed_everything(cfg.seed * 1000 + self.rank)

        model: nn.Module = task
        if self.distributed and single:
            model = nn.parallel.DistributedDataParallel(
                task, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters)
        elif self.distributed:  # several optimizer groups: gradients are averaged by hand
            for p in task.state_dict().values():
                torch.distributed.broadcast(p, 0)
        if cfg.compile:
            model = torch.compile(model)  # type: ignore[assignment]

        sampler = None
        if not isinstance(dataset, IterableDataset):
            sampler = ResumableSampler(len(dataset), seed=cfg.seed, shuffle=True, rank=self.rank, world=self.world)  # type: ignore[arg-type]
            per_rank = len(sampler) // cfg.batch_size
            if per_rank == 0:
                raise ValueError(f"dataset of {len(dataset)} samples gives no full batch of "  # type: ignore[arg-type]
                                 f"{cfg.batch_size} per process; lower train.batch_size")
        amp_dtype = autocast_dtype(cfg.precision, self.device)
        logger = _Logger(self.run_dir, cfg, start_step, self.is_main)

        step = start_step
        history: list[dict[str, Any]] = []
        sums: dict[str, torch.Tensor] = {}
        n_sum = 0
        samples_since, t_since = 0, time.perf_counter()
        t0 = time.perf_counter()
        total_samples = 0
        micro = 0
        last_ckpt: Path | None = None
        task.train()
        try:
            while step < cfg.max_steps:
                if sampler is not None:
                    sampler.set_epoch(epoch, batch_in_epoch * cfg.batch_size)
                loader = self._loader(dataset, collate_fn, sampler) if sampler is not None else \
                    (dataset if isinstance(dataset, DataLoader) else self._loader(dataset, collate_fn, None))
                for batch in loader:
                    batch_in_epoch += 1
                    batch = default_collate_to(batch, self.device, non_blocking=True)
                    micro += 1
                    last_micro = micro % cfg.grad_accum == 0
                    due = [(g, p, o) for (g, p), o in zip(groups, optimizers) if step % g.every == 0]
                    sync_ctx = model.no_sync() if (isinstance(model, nn.parallel.DistributedDataParallel)
                                                   and not last_micro) else contextlib.nullcontext()
                    with sync_ctx:
                        with torch.autocast(self.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                            out = model(batch)
                        if "loss" not in out and single:
                            raise KeyError(f"{type(task).__name__}.forward must return a dict with 'loss'")
                        if single:
                            (out["loss"].float() / cfg.grad_accum).backward()
                        else:
                            for i, (g, params, _) in enumerate(due):
                                torch.autograd.backward(out[g.loss_key].float() / cfg.grad_accum, inputs=params,
                                                        retain_graph=i < len(due) - 1)
                    bs = task.batch_size(batch) * self.world
                    samples_since += bs
                    total_samples += bs
                    for k, v in out.items():
                        if isinstance(v, torch.Tensor) and v.ndim == 0:
                            sums[k] = sums.get(k, torch.zeros((), device=self.device)) + v.detach().float()
                    n_sum += 1
                    if not last_micro:
                        continue

                    # ---- optimizer step(s)
                    factor = lr_factor(step, cfg.max_steps, cfg.warmup_steps, cfg.schedule, cfg.min_lr_ratio,
                                       cfg.poly_power)
                    finite = torch.ones((), device=self.device, dtype=torch.bool)
                    for g, params, opt in due:
                        if not single:
                            D.all_reduce_grads(params)
                        for pg in opt.param_groups:
                            pg["lr"] = pg["base_lr"] * factor
                        grads = [p.grad for p in params if p.grad is not None]
                        max_norm = cfg.clip_grad if g.clip_grad is None else g.clip_grad
                        if max_norm > 0:
                            norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
                        else:
                            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in grads])) \
                                if grads else torch.zeros((), device=self.device)
                        finite &= torch.isfinite(norm)
                        finite &= torch.isfinite(out[g.loss_key].detach()) if g.loss_key in out else finite
                    if self.distributed:
                        flag = (~finite).float()
                        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
                        finite = flag == 0
                    ok = bool(finite)  # one host sync per step: never apply a non-finite update
                    if ok:
                        for _, _, opt in due:
                            opt.step()
                    else:
                        nan_skips += 1
                        if cfg.nan_policy == "stop" or nan_skips > cfg.max_nan_skips:
                            raise NonFiniteLossError(
                                f"non-finite loss or gradient at step {step + 1} ({nan_skips} skipped so far); "
                                f"last good checkpoint: {last_ckpt or 'none'}. Lower train.lr, set train.clip_grad, "
                                f"or check the data.")
                        if self.is_main:
                            print(f"warning: non-finite loss at step {step + 1}; update skipped "
                                  f"({nan_skips}/{cfg.max_nan_skips})", file=sys.stderr)
                    for _, _, opt in due:
                        opt.zero_grad(set_to_none=True)
                    for opt in optimizers:
                        opt.zero_grad(set_to_none=True)
                    step += 1
                    if ok:
                        task.on_step_end(step, cfg.max_steps)
                    logger.advance()

                    if step % cfg.log_every == 0 or step == cfg.max_steps:
                        now = time.perf_counter()
                        row: dict[str, Any] = {"step": step, "epoch": epoch}
                        vals = torch.stack(list(sums.values())).cpu().tolist() if sums else []
                        for k, v in zip(sums.keys(), vals):
                            row[k] = v / max(1, n_sum)
                        row["lr"] = cfg.lr * factor
                        row["samples_per_s"] = samples_since / max(1e-9, now - t_since)
                        row["time_s"] = now - t0
                        row["nan_skipped"] = nan_skips
                        history.append(row)
                        logger.log(row)
                        sums, n_sum, samples_since, t_since = {}, 0, 0, now
                    if cfg.ckpt_every and step % cfg.ckpt_every == 0 and step < cfg.max_steps:
                        last_ckpt = self._save(task, optimizers, step, epoch, batch_in_epoch, nan_skips)
                    if step >= cfg.max_steps:
                        break
                else:
                    epoch += 1
                    batch_in_epoch = 0
                    continue
                break
            last_ckpt = self._save(task, optimizers, step, epoch, batch_in_epoch, nan_skips)
        finally:
            logger.close()
        wall = time.perf_counter() - t0
        sps = total_samples / max(1e-9, wall)
        result = TrainResult(self.run_dir, step, last_ckpt, history, wall, sps, nan_skips)
        if self.is_main:
            final = history[-1] if history else {}
            summary = {"step": step, "wall_time_s": wall, "samples_per_s": sps, "nan_skipped": nan_skips,
                       "final": final, "checkpoint": str(last_ckpt) if last_ckpt else None,
                       "device": str(self.device), "world_size": self.world}
            from pretrainlab.core.io import atomic_write_json

            atomic_write_json(self.run_dir / "train_summary.json", summary)
            loss = final.get("loss", float("nan"))
            print(f"trained {step} steps in {wall:.1f} s ({sps:.1f} samples/s) on {self.device}"
                  f"{f' x{self.world}' if self.world > 1 else ''}, final loss {loss:.4g}; "
                  f"checkpoint {last_ckpt}", file=sys.stderr)
        return result

    def _save(self, task: Task, optimizers: list[torch.optim.Optimizer], step: int, epoch: int,
              batch_in_epoch: int, nan_skips: int) -> Path | None:
        rngs: list[Any] = [rng_state()]
        if self.distributed:
            gathered: list[Any] = [None] * self.world
            torch.distributed.all_gather_object(gathered, rngs[0])
            rngs = gathered
        path = None
        if self.is_main:
            state = {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "nan_skips": nan_skips,
                     "optimizers": [o.state_dict() for o in optimizers], "rng": rngs}
            path = save_checkpoint(self.run_dir / "checkpoints", step, task.state_dict(), state,
                                   {"config": to_dict(self.full_config), "task": type(task).__name__},
                                   keep=self.cfg.keep_checkpoints)
        D.barrier()
        return path if self.is_main else self.run_dir / "checkpoints" / f"step_{step:06d}"


def evaluate_batches(fn: Callable[[Any], Any], loader: Iterable[Any], device: torch.device) -> list[Any]:
    """Run ``fn`` over batches under ``torch.inference_mode`` (helper for evaluation code)."""
    out = []
    with torch.inference_mode():
        for b in loader:
            out.append(fn(default_collate_to(b, device)))
    return out


__all__ = [
    "NonFiniteLossError",
    "OptimGroup",
    "Task",
    "TrainResult",
    "Trainer",
    "autocast_dtype",
    "evaluate_batches",
    "seed_everything",
    "select_device",
    "set_deterministic",
]
