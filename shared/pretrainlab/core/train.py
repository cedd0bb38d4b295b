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
from collections.abc import Callable, Iterable, Iterator, Sequence
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
from pretrainlab.core.io import atomic_write_text, dumps_json
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

    Several optimizers (a GAN): :meth:`optim_groups` declares them. Before the micro-batches of
    every optimizer step the trainer calls :meth:`begin_step` with the 0-based step and the names of
    the groups that step (``OptimGroup.every``); ``forward`` must return the loss of every due group
    and may skip the others (``self.is_due(name)``). The step counts every optimizer step, also one
    skipped for a non-finite loss, so a task never keeps its own counter.
    """

    step_index: int = 0
    due_groups: frozenset[str] = frozenset({"main"})

    def optim_groups(self) -> list[OptimGroup]:
        return [OptimGroup()]

    def begin_step(self, step: int, due: frozenset[str]) -> None:
        """Called by the trainer before an optimizer step's micro-batches (``step`` is 0-based)."""
        self.step_index = step
        self.due_groups = due

    def is_due(self, group: str) -> bool:
        """Whether optimizer group ``group`` steps at the current step (see :meth:`begin_step`)."""
        return group in self.due_groups

    def on_step_end(self, step: int, max_steps: int) -> None:
        """Called after every applied optimizer step (``step`` is 1-based): EMA / momentum updates go here."""

    def lr_scale(self, group: str, step: int) -> float:
        """A factor on optimizer group ``group``'s learning rate at ``step`` (0-based), on top of the
        schedule: e.g. a backbone unfrozen later with its own ramp. Default 1."""
        return 1.0

    def batch_size(self, batch: Any) -> int:
        return batch_size_of(batch)


class SeededItems(Dataset):
    """A map-style dataset whose items draw their randomness from (seed, epoch, index).

    Inside a DataLoader worker, the global torch / numpy / python RNGs are seeded from
    ``(seed, epoch, index)`` before each item is read, so augmentations drawn in workers are the
    same whatever the number of workers, differ per epoch (and per rank, whose indices differ),
    and a run resumed mid-epoch sees exactly the items it would have seen. In the main process
    (``num_workers=0``) items use the trainer's RNG state, which the checkpoint restores.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        if torch.utils.data.get_worker_info() is not None:
            import random

            s = ((self.seed * 1_000_003 + self.epoch) * 10_000_019 + int(index)) % (2**63 - 1)
            # the CPU generator only: torch.manual_seed would also queue a lazy CUDA / XPU seed, formatting a
            # stack trace per item in a worker that never initialises CUDA (~6 ms per batch of 48; the same
            # CPU random stream)
            torch.random.default_generator.manual_seed(s)
            np.random.seed(s % (2**32))
            random.seed(s)
        return self.dataset[index]


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


_TB_WARNED = False


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
            except (ImportError, OSError) as e:  # tensorboard not installed: metrics.jsonl is enough, say so once
                self.tb = None
                global _TB_WARNED
                if not _TB_WARNED:
                    _TB_WARNED = True
                    print(f"note: TensorBoard logging is off ({type(e).__name__}: {e}); metrics go to metrics.jsonl. "
                          "`pip install tensorboard` (in the dev extra) or set train.tensorboard=false",
                          file=sys.stderr)
        if cfg.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=cfg.max_steps, initial=start_step, desc="train", unit="step",
                            dynamic_ncols=True, file=sys.stderr)

    def log(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(dumps_json(row) + "\n")
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


@dataclasses.dataclass
class Engine:
    """What a prepared task trains with: the wrapped model, its optimizer groups and optimizers."""

    task: Task
    model: nn.Module  # the task, possibly wrapped (DDP) and compiled
    ddp: nn.parallel.DistributedDataParallel | None
    groups: list[tuple[OptimGroup, list[nn.Parameter]]]
    optimizers: list[torch.optim.Optimizer]

    @property
    def single(self) -> bool:
        return len(self.groups) == 1 and self.groups[0][0].every == 1

    def due(self, step: int) -> list[int]:
        """Indices of the groups that step at optimizer step ``step`` (0-based)."""
        return [i for i, (g, _) in enumerate(self.groups) if step % g.every == 0]


@dataclasses.dataclass
class LoopState:
    """Where a run stands (saved in every checkpoint)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of this epoch already consumed
    nan_skips: int = 0


class Trainer:
    """Runs a :class:`Task` over a dataset for ``cfg.max_steps`` optimizer steps.

    ``run_dir`` receives ``config.yaml`` (``full_config`` when given, else the train config),
    ``metrics.jsonl``, ``checkpoints/step_*`` and ``train_summary.json``. :meth:`fit` is made of
    :meth:`prepare` (device, optimizers, DDP / compile), :meth:`restore` (resume), the data loop,
    :meth:`train_step` (one optimizer step over its micro-batches; ``core.bench`` times exactly
    this) and the logging / checkpoint steps.
    """

    def __init__(self, cfg: TrainConfig, run_dir: str | Path, full_config: Any = None) -> None:
        from pretrainlab.core.config import validate

        self.cfg = validate(cfg)
        self.run_dir = Path(run_dir)
        self.full_config = full_config if full_config is not None else cfg
        self.device = select_device(cfg.device)
        self.distributed = D.init_distributed(self.device)
        self.rank, self.world = D.rank(), D.world_size()
        self.is_main = self.rank == 0
        self.amp_dtype = autocast_dtype(cfg.precision, self.device)

    # ------------------------------------------------------------------ preparation
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
            if g.every < 1:
                raise ValueError(f"optimizer group '{g.name}': every must be >= 1, got {g.every}")
            out.append((g, params))
        return out

    def prepare(self, task: Task) -> Engine:
        """Move the task to the device, build its optimizers, wrap it for DDP and ``torch.compile``."""
        cfg = self.cfg
        task.to(self.device)
        if cfg.channels_last and self.device.type == "cuda":
            task.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        groups = self._groups(task)
        optimizers = [build_optimizer(params, cfg, g.lr, g.weight_decay) for g, params in groups]
        single = len(groups) == 1 and groups[0][0].every == 1
        model: nn.Module = task
        ddp = None
        if self.distributed and single:
            ddp = nn.parallel.DistributedDataParallel(
                task, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters)
            model = ddp
        elif self.distributed:  # several optimizer groups: gradients are averaged by hand in train_step
            for p in task.state_dict().values():
                torch.distributed.broadcast(p, 0)
        if cfg.compile:
            model = torch.compile(model)  # type: ignore[assignment]
        return Engine(task, model, ddp, groups, optimizers)

    def restore(self, eng: Engine, resume: bool | str | Path) -> LoopState:
        """Load weights, optimizer and RNG state from the latest (or the given) checkpoint."""
        st = LoopState()
        if not resume:
            seed_everything(self.cfg.seed * 1000 + self.rank)
            return st
        src = self.run_dir / "checkpoints" if resume is True else Path(resume)
        try:
            folder = find_checkpoint(src)
        except Exception:
            if resume is not True:
                raise
            seed_everything(self.cfg.seed * 1000 + self.rank)
            return st
        weights, _ = load_tensors(folder / "model.safetensors", self.device)
        eng.task.load_state_dict(weights)
        saved = load_state(folder / "state.safetensors")
        for opt, osd in zip(eng.optimizers, saved["optimizers"]):
            opt.load_state_dict(osd)
        st = LoopState(int(saved["step"]), int(saved["epoch"]), int(saved["batch_in_epoch"]), int(saved["nan_skips"]))
        rng = saved["rng"][self.rank] if self.rank < len(saved["rng"]) else None
        if rng is not None:
            set_rng_state(rng)
        else:
            seed_everything(self.cfg.seed * 1000 + self.rank)
        if self.is_main:
            print(f"resuming from {folder} at step {st.step}", file=sys.stderr)
        return st

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

    def _epochs(self, dataset: Dataset | Iterable[Any], collate_fn: Callable[[list[Any]], Any] | None,
                st: LoopState) -> Iterator[Any]:
        """Micro-batches, epoch after epoch, starting where ``st`` says (``st.epoch`` / ``batch_in_epoch``
        are advanced here)."""
        cfg = self.cfg
        if isinstance(dataset, (IterableDataset, DataLoader)) or not hasattr(dataset, "__len__"):
            while True:
                loader = dataset if isinstance(dataset, DataLoader) else self._loader(dataset, collate_fn, None)  # type: ignore[arg-type]
                for batch in loader:
                    st.batch_in_epoch += 1
                    yield batch
                st.epoch += 1
                st.batch_in_epoch = 0
        items = SeededItems(dataset, cfg.seed)  # type: ignore[arg-type]
        sampler = ResumableSampler(len(items), seed=cfg.seed, shuffle=True, rank=self.rank, world=self.world)
        if len(sampler) // cfg.batch_size == 0:
            from pretrainlab.core.config import ConfigError

            raise ConfigError(f"train.batch_size: {cfg.batch_size} is more than the {len(sampler)} samples each of the "
                              f"{self.world} process(es) gets from this dataset ({len(items)} in all); lower it")
        while True:
            items.epoch = st.epoch
            sampler.set_epoch(st.epoch, st.batch_in_epoch * cfg.batch_size)
            for batch in self._loader(items, collate_fn, sampler):  # type: ignore[arg-type]
                st.batch_in_epoch += 1
                yield batch
            st.epoch += 1
            st.batch_in_epoch = 0

    # ------------------------------------------------------------------ one optimizer step
    def train_step(self, eng: Engine, micro_batches: Sequence[Any], step: int) -> tuple[dict[str, torch.Tensor], bool]:
        """Forward / backward over ``micro_batches`` (gradient accumulation), then clip, check and step
        every group due at ``step``. Returns (the summed 0-d outputs, whether the update was applied).

        A non-finite loss or gradient in any due group skips the whole update (on every rank).
        """
        cfg, task = self.cfg, eng.task
        due_idx = eng.due(step)
        due = [(eng.groups[i][0], eng.groups[i][1], eng.optimizers[i]) for i in due_idx]
        task.begin_step(step, frozenset(g.name for g, _, _ in due))
        n = len(micro_batches)
        sums: dict[str, torch.Tensor] = {}
        last_out: dict[str, torch.Tensor] = {}
        for k, batch in enumerate(micro_batches):
            batch = default_collate_to(batch, self.device, non_blocking=True)
            sync = eng.ddp.no_sync() if eng.ddp is not None and k < n - 1 else contextlib.nullcontext()
            with sync:
                with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                    out = eng.model(batch)
                missing = [g.loss_key for g, _, _ in due if g.loss_key not in out]
                if missing:
                    raise KeyError(f"{type(task).__name__}.forward returned no {missing} at step {step} although "
                                   f"group(s) {[g.name for g, _, _ in due if g.loss_key in missing]} are due "
                                   f"(returned: {sorted(out)})")
                if eng.single:
                    (out["loss"].float() / n).backward()
                else:
                    for i, (g, params, _) in enumerate(due):
                        torch.autograd.backward(out[g.loss_key].float() / n, inputs=params, retain_graph=i < len(due) - 1)
            for key, v in out.items():
                if isinstance(v, torch.Tensor) and v.ndim == 0:
                    sums[key] = sums.get(key, torch.zeros((), device=self.device)) + v.detach().float() / n
            last_out = out
        factor = lr_factor(step, cfg.max_steps, cfg.warmup_steps, cfg.schedule, cfg.min_lr_ratio, cfg.poly_power,
                           cfg.warmup_style)
        finite = torch.ones((), device=self.device, dtype=torch.bool)
        for g, params, opt in due:
            if not eng.single:
                D.all_reduce_grads(params)
            scale = task.lr_scale(g.name, step)
            for pg in opt.param_groups:
                pg["lr"] = pg["base_lr"] * factor * scale
            grads = [p.grad for p in params if p.grad is not None]
            max_norm = cfg.clip_grad if g.clip_grad is None else g.clip_grad
            if max_norm > 0:
                norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
            else:
                norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in grads])) \
                    if grads else torch.zeros((), device=self.device)
            finite &= torch.isfinite(norm)
            finite &= torch.isfinite(last_out[g.loss_key].detach())
        if self.distributed:
            flag = (~finite).float()
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            finite = flag == 0
        ok = bool(finite)  # one host sync per step: never apply a non-finite update
        if ok:
            for _, _, opt in due:
                opt.step()
        for opt in eng.optimizers:
            opt.zero_grad(set_to_none=True)
        sums["lr"] = torch.tensor(cfg.lr * factor)
        return sums, ok

    # ------------------------------------------------------------------ the loop
    def fit(self, task: Task, dataset: Dataset | Iterable[Any], collate_fn: Callable[[list[Any]], Any] | None = None,
            resume: bool | str | Path = False) -> TrainResult:
        cfg = self.cfg
        set_deterministic(cfg.deterministic)
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.full_config, self.run_dir / "config.yaml")
        D.barrier()
        eng = self.prepare(task)
        st = self.restore(eng, resume)
        logger = _Logger(self.run_dir, cfg, st.step, self.is_main)
        history: list[dict[str, Any]] = []
        sums: dict[str, torch.Tensor] = {}
        n_sum = 0
        samples_since, t_since = 0, time.perf_counter()
        t0 = time.perf_counter()
        total_samples = 0
        last_ckpt: Path | None = None
        task.train()
        batches = self._epochs(dataset, collate_fn, st)
        try:
            while st.step < cfg.max_steps:
                micro = [next(batches) for _ in range(cfg.grad_accum)]
                out, ok = self.train_step(eng, micro, st.step)
                bs = sum(task.batch_size(b) for b in micro) * self.world
                samples_since += bs
                total_samples += bs
                for k, v in out.items():
                    sums[k] = sums.get(k, torch.zeros((), device=self.device)) + v.to(self.device)
                n_sum += 1
                if not ok:
                    st.nan_skips += 1
                    if cfg.nan_policy == "stop" or st.nan_skips > cfg.max_nan_skips:
                        raise NonFiniteLossError(
                            f"non-finite loss or gradient at step {st.step + 1} ({st.nan_skips} skipped so far); "
                            f"last good checkpoint: {last_ckpt or 'none'}. Lower train.lr, set train.clip_grad, "
                            f"or check the data.")
                    if self.is_main:
                        print(f"warning: non-finite loss at step {st.step + 1}; update skipped "
                              f"({st.nan_skips}/{cfg.max_nan_skips})", file=sys.stderr)
                st.step += 1
                if ok:
                    task.on_step_end(st.step, cfg.max_steps)
                logger.advance()
                if st.step % cfg.log_every == 0 or st.step == cfg.max_steps:
                    now = time.perf_counter()
                    row = self._log_row(st, sums, n_sum, samples_since / max(1e-9, now - t_since), now - t0)
                    history.append(row)
                    logger.log(row)
                    sums, n_sum, samples_since, t_since = {}, 0, 0, now
                if cfg.ckpt_every and st.step % cfg.ckpt_every == 0 and st.step < cfg.max_steps:
                    last_ckpt = self._save(eng, st)
            last_ckpt = self._save(eng, st)
        finally:
            logger.close()
        wall = time.perf_counter() - t0
        sps = total_samples / max(1e-9, wall)
        result = TrainResult(self.run_dir, st.step, last_ckpt, history, wall, sps, st.nan_skips)
        if self.is_main:
            self._summary(result)
        return result

    def _log_row(self, st: LoopState, sums: dict[str, torch.Tensor], n: int, sps: float, t: float) -> dict[str, Any]:
        row: dict[str, Any] = {"step": st.step, "epoch": st.epoch}
        vals = torch.stack([v.float().cpu() for v in sums.values()]).tolist() if sums else []
        for k, v in zip(sums.keys(), vals):
            row[k] = v / max(1, n)
        row["samples_per_s"] = sps
        row["time_s"] = t
        row["nan_skipped"] = st.nan_skips
        return row

    def _summary(self, r: TrainResult) -> None:
        from pretrainlab.core.io import atomic_write_json

        final = r.history[-1] if r.history else {}
        atomic_write_json(self.run_dir / "train_summary.json", {
            "step": r.step, "wall_time_s": r.wall_time_s, "samples_per_s": r.samples_per_s, "nan_skipped": r.nan_skipped,
            "final": final, "checkpoint": str(r.checkpoint) if r.checkpoint else None, "device": str(self.device),
            "world_size": self.world})
        loss = final.get("loss", float("nan"))
        print(f"trained {r.step} steps in {r.wall_time_s:.1f} s ({r.samples_per_s:.1f} samples/s) on {self.device}"
              f"{f' x{self.world}' if self.world > 1 else ''}, final loss {loss:.4g}; checkpoint {r.checkpoint}",
              file=sys.stderr)

    def _save(self, eng: Engine, st: LoopState) -> Path | None:
        rngs: list[Any] = [rng_state()]
        if self.distributed:
            gathered: list[Any] = [None] * self.world
            torch.distributed.all_gather_object(gathered, rngs[0])
            rngs = gathered
        path = None
        if self.is_main:
            state = {"step": st.step, "epoch": st.epoch, "batch_in_epoch": st.batch_in_epoch, "nan_skips": st.nan_skips,
                     "optimizers": [o.state_dict() for o in eng.optimizers], "rng": rngs}
            path = save_checkpoint(self.run_dir / "checkpoints", st.step, eng.task.state_dict(), state,
                                   {"config": to_dict(self.full_config), "task": type(eng.task).__name__},
                                   keep=self.cfg.keep_checkpoints)
        D.barrier()
        return path if self.is_main else self.run_dir / "checkpoints" / f"step_{st.step:06d}"


__all__ = [
    "Engine",
    "LoopState",
    "NonFiniteLossError",
    "OptimGroup",
    "SeededItems",
    "Task",
    "TrainResult",
    "Trainer",
    "autocast_dtype",
    "seed_everything",
    "select_device",
    "set_deterministic",
]
