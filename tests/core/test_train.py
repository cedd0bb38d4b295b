"""The one training loop: learning, accumulation, NaN handling, exact resume after SIGKILL, DDP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from pretrainlab.core.checkpoint import find_checkpoint, load_tensors
from pretrainlab.core.config import TrainConfig
from pretrainlab.core.train import NonFiniteLossError, OptimGroup, Task, Trainer

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def _cfg(**kw) -> TrainConfig:  # type: ignore[no-untyped-def]
    base = {"max_steps": 30, "batch_size": 16, "lr": 5e-2, "log_every": 1, "progress": False, "tensorboard": False,
                "device": "cpu", "seed": 0}
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _regression(n: int = 128) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return torch.utils.data.TensorDataset(x, x @ torch.tensor([1.0, -2.0, 0.5, 3.0]))


class Linear(Task):
    def __init__(self, nan_at: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.calls = 0
        self.nan_at = nan_at

    def forward(self, batch):  # type: ignore[no-untyped-def]
        x, y = batch
        self.calls += 1
        loss = nn.functional.mse_loss(self.lin(x).squeeze(-1), y)
        if self.calls in self.nan_at:
            loss = loss * float("nan")
        return {"loss": loss, "mse": loss.detach()}


def _losses(run: Path) -> list[float]:
    return [json.loads(ln)["loss"] for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]


def test_loss_goes_down_and_outputs_written(tmp_path: Path) -> None:
    res = Trainer(_cfg(lr=0.3), tmp_path).fit(Linear(), _regression())
    losses = _losses(tmp_path)
    assert res.step == 30 and len(losses) == 30
    assert losses[-1] < 0.05 * losses[0]
    assert (tmp_path / "config.yaml").exists() and (tmp_path / "train_summary.json").exists()
    assert find_checkpoint(tmp_path).name == "step_000030"


def test_grad_accum_matches_large_batch(tmp_path: Path) -> None:
    """2 micro-batches of 8 == 1 batch of 16 when the batches hold the same samples (plain SGD)."""
    torch.manual_seed(0)
    a = Linear()
    b = Linear()
    b.load_state_dict(a.state_dict())
    ds = _regression(16)
    common = {"max_steps": 1, "optimizer": "sgd", "momentum": 0.0, "lr": 0.1, "schedule": "constant"}
    Trainer(_cfg(batch_size=16, **common), tmp_path / "a").fit(a, ds)
    Trainer(_cfg(batch_size=8, grad_accum=2, **common), tmp_path / "b").fit(b, ds)
    torch.testing.assert_close(a.lin.weight, b.lin.weight, rtol=1e-5, atol=1e-6)


def test_nan_skip_counts_and_keeps_weights_finite(tmp_path: Path) -> None:
    task = Linear(nan_at=(3, 4))
    res = Trainer(_cfg(max_steps=10, max_nan_skips=5), tmp_path).fit(task, _regression())
    assert res.nan_skipped == 2
    assert torch.isfinite(task.lin.weight).all()
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert summary["nan_skipped"] == 2


def test_nan_stop_raises_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    task = Linear(nan_at=(5,))
    with pytest.raises(NonFiniteLossError, match="step 5"):
        Trainer(_cfg(max_steps=10, nan_policy="stop", ckpt_every=2), tmp_path).fit(task, _regression())
    ckpt = find_checkpoint(tmp_path)
    assert ckpt.name == "step_000004"
    weights, _ = load_tensors(ckpt / "model.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_too_many_nan_skips_stop(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLossError):
        Trainer(_cfg(max_steps=10, max_nan_skips=1), tmp_path).fit(Linear(nan_at=(2, 3)), _regression())


class TwoGroups(Task):
    """Two optimizers, one stepping every 2 steps: a GAN-shaped task."""

    def __init__(self) -> None:
        super().__init__()
        self.g = nn.Linear(4, 1)
        self.d = nn.Linear(4, 1)

    def optim_groups(self) -> list[OptimGroup]:
        return [OptimGroup("g", "g_loss", list(self.g.parameters())),
                OptimGroup("d", "d_loss", list(self.d.parameters()), every=2)]

    def forward(self, batch):  # type: ignore[no-untyped-def]
        x, y = batch
        g_loss = nn.functional.mse_loss(self.g(x).squeeze(-1) + self.d(x).squeeze(-1).detach() * 0, y)
        d_loss = nn.functional.mse_loss(self.d(x).squeeze(-1), -y)
        return {"loss": g_loss + d_loss, "g_loss": g_loss, "d_loss": d_loss}


def test_optim_groups_update_only_their_params(tmp_path: Path) -> None:
    task = TwoGroups()
    g0, d0 = task.g.weight.detach().clone(), task.d.weight.detach().clone()
    Trainer(_cfg(max_steps=1), tmp_path / "one").fit(task, _regression())
    assert not torch.equal(task.g.weight, g0) and not torch.equal(task.d.weight, d0)  # step 0: both step
    d1 = task.d.weight.detach().clone()
    g1 = task.g.weight.detach().clone()
    # one more step (step index 1): only g is due
    Trainer(_cfg(max_steps=2), tmp_path / "one").fit(task, _regression(), resume=True)
    assert torch.equal(task.d.weight, d1) and not torch.equal(task.g.weight, g1)


class ClipDOnly(TwoGroups):
    """The GAN-shaped task with the discriminator's gradient clipped and the generator's not."""

    def optim_groups(self) -> list[OptimGroup]:
        return [OptimGroup("g", "g_loss", list(self.g.parameters())),
                OptimGroup("d", "d_loss", list(self.d.parameters()), clip_grad=1e-3)]


def test_per_group_clip_grad(tmp_path: Path) -> None:
    task = ClipDOnly()
    params = [p.detach().clone() for p in (*task.g.parameters(), *task.d.parameters())]
    Trainer(_cfg(max_steps=1, optimizer="sgd", momentum=0.0, lr=0.1), tmp_path).fit(task, _regression())
    moved = [p.detach() - p0 for p, p0 in zip((*task.g.parameters(), *task.d.parameters()), params)]
    g_step = torch.linalg.vector_norm(torch.cat([m.flatten() for m in moved[:2]]))
    d_step = torch.linalg.vector_norm(torch.cat([m.flatten() for m in moved[2:]]))
    assert d_step <= 0.1 * 1e-3 * (1 + 1e-4)  # lr x the group's max norm
    assert g_step > 100 * d_step  # train.clip_grad = 0: the generator is not clipped


class LazyGAN(Task):
    """A GAN-shaped task that computes the discriminator loss only on the steps its group is due (as a
    real GAN must, to save the discriminator pass), and a NaN at one chosen optimizer step."""

    def __init__(self, nan_step: int) -> None:
        super().__init__()
        self.g = nn.Linear(4, 1)
        self.d = nn.Linear(4, 1)
        self.nan_step = nan_step
        self.seen: list[tuple[int, frozenset[str]]] = []

    def optim_groups(self) -> list[OptimGroup]:
        return [OptimGroup("g", "g_loss", list(self.g.parameters())),
                OptimGroup("d", "d_loss", list(self.d.parameters()), every=2)]

    def forward(self, batch):  # type: ignore[no-untyped-def]
        x, y = batch
        self.seen.append((self.step_index, self.due_groups))
        g_loss = nn.functional.mse_loss(self.g(x).squeeze(-1), y)
        if self.step_index == self.nan_step:
            g_loss = g_loss * float("nan")
        out = {"loss": g_loss, "g_loss": g_loss}
        if self.is_due("d"):
            out["d_loss"] = nn.functional.mse_loss(self.d(x).squeeze(-1), -y)
        return out


def test_skipped_step_keeps_a_multi_optimizer_task_in_step(tmp_path: Path) -> None:
    """A non-finite (skipped) step still counts: the task is told which groups are due at every step and
    the trainer never asks for a loss the task did not have to compute."""
    task = LazyGAN(nan_step=1)
    res = Trainer(_cfg(max_steps=6), tmp_path).fit(task, _regression())
    assert res.nan_skipped == 1 and res.step == 6
    due = [sorted(g) for _, g in task.seen]
    assert [s for s, _ in task.seen] == [0, 1, 2, 3, 4, 5]
    assert due == [["d", "g"], ["g"], ["d", "g"], ["g"], ["d", "g"], ["g"]]


def test_missing_loss_of_a_due_group_is_a_clear_error(tmp_path: Path) -> None:
    class Forgetful(LazyGAN):
        def forward(self, batch):  # type: ignore[no-untyped-def]
            out = super().forward(batch)
            out.pop("d_loss", None)
            return out

    with pytest.raises(KeyError, match=r"Forgetful.forward returned no \['d_loss'\] at step 0 although group\(s\) \['d'\]"):
        Trainer(_cfg(max_steps=2), tmp_path).fit(Forgetful(nan_step=-1), _regression())


def _run_worker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    return subprocess.run([sys.executable, str(HERE / "_workers.py"), *args], env=env, capture_output=True,
                          text=True, timeout=300, check=check)


@pytest.mark.parametrize("workers", [0, 2])
def test_sigkill_and_resume_logs_identical_losses(tmp_path: Path, workers: int) -> None:
    """A run SIGKILLed after step 13 (checkpoint at 10, mid-epoch) and resumed logs exactly the
    uninterrupted losses, also with DataLoader workers drawing augmentations in the dataset."""
    ref, crashed = tmp_path / "ref", tmp_path / "crashed"
    w = f"--workers={workers}"
    _run_worker("resume", str(ref), w)
    p = _run_worker("resume", str(crashed), "13", w, check=False)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert find_checkpoint(crashed).name == "step_000010"
    assert not list((crashed / "checkpoints").glob("*.tmp*")), "half-written checkpoint left behind"
    _run_worker("resume", str(crashed), "--resume", w)
    a, b = _losses(ref), _losses(crashed)
    assert len(a) == len(b) == 24
    assert a == b  # bit-identical in deterministic CPU mode


@pytest.mark.ddp
def test_torchrun_two_processes_gloo(tmp_path: Path) -> None:
    """2-process torchrun (gloo): gathered NT-Xent gradient == global-batch gradient; ranks end equal."""
    from pretrainlab.core.builtin.api import synthetic_data

    data = synthetic_data("smoke")
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    p = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", str(HERE / "_workers.py"), "ddp",
                        str(data), str(tmp_path)], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    infos = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for info in infos:
        assert info["world"] == 2 and info["step"] == 3
        assert info["loss"] == pytest.approx(info["ref_loss"], rel=1e-5)
        assert info["grad_err"] < 1e-6
    w0, _ = load_tensors(tmp_path / "rank0.safetensors")
    w1, _ = load_tensors(tmp_path / "rank1.safetensors")
    assert w0.keys() == w1.keys()
    # BN running statistics are per rank (DDP re-broadcasts rank 0's buffers before every forward)
    params = [k for k in w0 if "running_" not in k]
    assert len(params) > 10
    for k in params:
        torch.testing.assert_close(w0[k], w1[k], rtol=0, atol=0, msg=k)
    ckpt, _ = load_tensors(find_checkpoint(tmp_path / "run") / "model.safetensors")
    assert find_checkpoint(tmp_path / "run").name == "step_000003"
    torch.testing.assert_close(ckpt["encoder.fc.weight"], w0["encoder.fc.weight"], rtol=0, atol=0)
    # one-time preparation under torchrun: only rank 0 ran the generator
    assert [json.loads(x)["rank"] for x in (tmp_path / "generated.jsonl").read_text().splitlines()] == [0]


@pytest.mark.ddp
def test_torchrun_gan_groups_and_no_sync_under_compile(tmp_path: Path) -> None:
    """2 gloo processes: a two-optimizer task's averaged gradients keep the ranks equal; with
    train.compile=true and grad_accum=2, DDP's no_sync still skips the all-reduce of the first micro-batch."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    p = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", str(HERE / "_workers.py"), "ddp_gan",
                        str(tmp_path)], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    infos = [json.loads((tmp_path / f"gan{r}.json").read_text()) for r in (0, 1)]
    for info in infos:
        assert info["no_sync_calls"] == 3  # 3 optimizer steps x (grad_accum 2 - 1)
        assert info["d_steps"] == 2  # every=2 over 3 steps: steps 0 and 2
    g0, _ = load_tensors(tmp_path / "gan0.safetensors")
    g1, _ = load_tensors(tmp_path / "gan1.safetensors")
    for k in g0:
        torch.testing.assert_close(g0[k], g1[k], rtol=0, atol=0, msg=k)
    init, _ = load_tensors(tmp_path / "gan_init.safetensors")
    assert not torch.equal(init["g.weight"], g0["g.weight"]) and not torch.equal(init["d.weight"], g0["d.weight"])
