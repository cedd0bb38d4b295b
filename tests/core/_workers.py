"""Child-process programs for the core tests (run with ``python _workers.py MODE ...`` or under torchrun).

* ``resume OUT [KILL_AT]``: train :class:`NoisyTask` deterministically; with ``KILL_AT`` the process
  SIGKILLs itself right after that optimizer step (a hard crash mid-run, no clean-up).
* ``ddp DATA OUT``: under torchrun, check the all-gather-with-grad NT-Xent against one process
  holding the global batch, then train the built-in SimCLR recipe and dump every rank's weights.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch
from torch import nn


class NoisyTask(torch.nn.Module):
    """A regression task that consumes RNG (dropout + input noise), so exact resume needs RNG state."""

    def __init__(self, kill_at: int = 0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 1))
        self.kill_at = kill_at

    def forward(self, batch):  # type: ignore[no-untyped-def]
        x, y = batch
        x = x + 0.05 * torch.randn_like(x)
        loss = nn.functional.mse_loss(self.net(x).squeeze(-1), y)
        return {"loss": loss}

    def on_step_end(self, step: int, max_steps: int) -> None:
        if self.kill_at and step == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


class AugmentedData(torch.utils.data.Dataset):
    """Regression pairs whose inputs get random noise when read: an augmentation drawn in the
    DataLoader workers' global RNG (as real image / audio pipelines do)."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(96, 8, generator=g)
        self.y = self.x[:, :3].sum(-1) + 0.1 * torch.randn(96, generator=g)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        return self.x[i] + 0.1 * torch.randn(8), self.y[i]


def run_resume(out: Path, kill_at: int, resume: bool, workers: int = 0) -> None:
    from pretrainlab.core.config import TrainConfig
    from pretrainlab.core.train import Task, Trainer

    class T(NoisyTask, Task):
        pass

    torch.manual_seed(0)
    cfg = TrainConfig(max_steps=24, batch_size=8, grad_accum=2, lr=1e-2, warmup_steps=3, clip_grad=1.0,
                      schedule="cosine", log_every=1, ckpt_every=5, deterministic=True, seed=3,
                      progress=False, tensorboard=False, device="cpu", num_workers=workers)
    Trainer(cfg, out).fit(T(kill_at), AugmentedData(), resume=resume)


def run_ddp(data: Path, out: Path) -> None:
    import torch.distributed as dist

    from pretrainlab.core import distributed as D
    from pretrainlab.core.builtin.api import load, pretrain
    from pretrainlab.core.checkpoint import save_weights
    from pretrainlab.core.losses import nt_xent

    D.init_distributed(torch.device("cpu"))
    r, w = D.rank(), D.world_size()
    # 1) gradient of the gathered NT-Xent == gradient of the global-batch loss (DDP averages over ranks)
    g = torch.Generator().manual_seed(7)
    z1_all, z2_all = torch.randn(w * 4, 16, generator=g), torch.randn(w * 4, 16, generator=g)
    z1 = z1_all[r * 4:(r + 1) * 4].clone().requires_grad_(True)
    z2 = z2_all[r * 4:(r + 1) * 4].clone().requires_grad_(True)
    loss = nt_xent(z1, z2, temperature=0.5, gather=True)
    loss.backward()
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    ref1, ref2 = z1_all.clone().requires_grad_(True), z2_all.clone().requires_grad_(True)
    # the reference is computed locally on the full batch (no gathering: not the distributed path)
    ref = _nt_xent_reference(ref1, ref2, 0.5)
    ref.backward()
    check = {
        "loss": float(mean_loss / w), "ref_loss": float(ref),
        "grad_err": float(max((z1.grad / w - ref1.grad[r * 4:(r + 1) * 4]).abs().max(),
                              (z2.grad / w - ref2.grad[r * 4:(r + 1) * 4]).abs().max())),
    }
    # 2) one-time preparation: rank 0 generates a cached dataset, the other rank waits and reuses it
    from pretrainlab.core.data import cached_synthetic

    def generate(folder: Path, profile: str, seed: int) -> None:
        with open(out / "generated.jsonl", "a") as f:
            f.write(json.dumps({"rank": r}) + "\n")
        (folder / "x.txt").write_text("x")

    os.environ["PRETRAINLAB_CACHE"] = str(out / "cache")
    cached_synthetic("ddp-test", generate, "smoke", 0)
    # 3) train the built-in recipe for a few steps; every rank dumps its weights
    cfg = load(None, "smoke", ["train.max_steps=3", "train.progress=false", "train.device=cpu"])
    task, res = pretrain(cfg, data, out / "run")
    save_weights(task, out / f"rank{r}.safetensors")
    (out / f"rank{r}.json").write_text(json.dumps({**check, "world": w, "step": res.step}))
    D.cleanup()


def run_ddp_gan(out: Path) -> None:
    """Under torchrun: a two-group task (gradients averaged by hand), then a single-group task with
    train.compile=true (eager backend) and grad_accum=2, counting DDP.no_sync calls."""
    import functools

    from pretrainlab.core import distributed as D
    from pretrainlab.core.checkpoint import save_weights
    from pretrainlab.core.config import TrainConfig
    from pretrainlab.core.train import OptimGroup, Task, Trainer

    D.init_distributed(torch.device("cpu"))
    r = D.rank()

    class GAN(Task):
        def __init__(self) -> None:
            super().__init__()
            self.g, self.d = nn.Linear(8, 1), nn.Linear(8, 1)
            self.d_steps = 0

        def optim_groups(self) -> list[OptimGroup]:
            return [OptimGroup("g", "g_loss", list(self.g.parameters())),
                    OptimGroup("d", "d_loss", list(self.d.parameters()), every=2)]

        def forward(self, batch):  # type: ignore[no-untyped-def]
            x, y = batch
            out = {"g_loss": nn.functional.mse_loss(self.g(x).squeeze(-1), y)}
            out["loss"] = out["g_loss"]
            if self.is_due("d"):
                out["d_loss"] = nn.functional.mse_loss(self.d(x).squeeze(-1), -y)
            return out

        def on_step_end(self, step: int, max_steps: int) -> None:
            self.d_steps += int(self.is_due("d"))

    torch.manual_seed(0)
    gan = GAN()
    if r == 0:
        save_weights(gan, out / "gan_init.safetensors")
    data = AugmentedData()
    cfg = TrainConfig(max_steps=3, batch_size=4, grad_accum=2, lr=1e-2, log_every=1, progress=False,
                      tensorboard=False, device="cpu", seed=1)
    Trainer(cfg, out / "gan").fit(gan, data)
    save_weights(gan, out / f"gan{r}.safetensors")

    calls = {"n": 0}
    orig = nn.parallel.DistributedDataParallel.no_sync

    def counting(self, *a, **k):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return orig(self, *a, **k)

    nn.parallel.DistributedDataParallel.no_sync = counting  # type: ignore[method-assign]
    torch.compile = functools.partial(torch.compile, backend="eager")  # type: ignore[assignment]

    class Single(NoisyTask, Task):
        pass

    Trainer(TrainConfig(**{**cfg.__dict__, "compile": True}), out / "single").fit(Single(), data)
    (out / f"gan{r}.json").write_text(json.dumps({"no_sync_calls": calls["n"], "d_steps": gan.d_steps}))
    D.cleanup()


def _nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, t: float) -> torch.Tensor:
    """Algorithm 1 of SimCLR written out with an explicit loop over anchors (independent of the core)."""
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=-1)
    n = z.shape[0] // 2
    sim = z @ z.t() / t
    total = z.new_zeros(())
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        others = torch.cat([sim[i, :i], sim[i, i + 1:]])
        total = total - (sim[i, j] - torch.logsumexp(others, 0))
    return total / (2 * n)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "resume":
        workers = next((int(a.split("=")[1]) for a in sys.argv if a.startswith("--workers=")), 0)
        args = [a for a in sys.argv[2:] if a != "--resume" and not a.startswith("--workers=")]
        run_resume(Path(args[0]), int(args[1]) if len(args) > 1 else 0, resume="--resume" in sys.argv,
                   workers=workers)
    elif mode == "ddp":
        run_ddp(Path(sys.argv[2]), Path(sys.argv[3]))
    elif mode == "ddp_gan":
        run_ddp_gan(Path(sys.argv[2]))
    else:
        raise SystemExit(f"unknown mode {mode}")
