"""Schedules and EMA target networks: formulas at known points."""

from __future__ import annotations

import math

import pytest
import torch

from pretrainlab.core.ema import ema_update, frozen_copy
from pretrainlab.core.schedules import cosine_momentum, lr_factor


def test_warmup_then_cosine() -> None:
    assert lr_factor(0, 110, warmup_steps=10) == pytest.approx(0.1)
    assert lr_factor(9, 110, warmup_steps=10) == pytest.approx(1.0)
    assert lr_factor(10, 110, warmup_steps=10) == pytest.approx(1.0)
    assert lr_factor(60, 110, warmup_steps=10) == pytest.approx(0.5)  # half-way down the half cosine
    assert lr_factor(110, 110, warmup_steps=10, min_ratio=0.1) == pytest.approx(0.1)


def test_linear_and_constant() -> None:
    assert lr_factor(50, 100, kind="linear") == pytest.approx(0.5)
    assert lr_factor(73, 100, kind="constant") == 1.0
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_factor(1, 10, kind="step")


def test_poly_like_insightface() -> None:
    # insightface PolyScheduler: base_lr * (1 - (k - warmup) / (total - warmup)) ** 2 after warm-up
    assert lr_factor(10, 110, warmup_steps=10, kind="poly") == pytest.approx(1.0)
    assert lr_factor(60, 110, warmup_steps=10, kind="poly") == pytest.approx(0.25)
    assert lr_factor(35, 110, warmup_steps=10, kind="poly", power=1.0) == pytest.approx(0.75)
    assert lr_factor(110, 110, warmup_steps=10, kind="poly", min_ratio=0.1) == pytest.approx(0.1)


def test_byol_momentum_schedule() -> None:
    # BYOL Sec. 3.2: tau = 1 - (1 - tau_base)(cos(pi k / K) + 1) / 2
    assert cosine_momentum(0, 100, 0.996) == pytest.approx(0.996)
    assert cosine_momentum(100, 100, 0.996) == pytest.approx(1.0)
    assert cosine_momentum(50, 100, 0.99) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 2) + 1) / 2)


def test_ema_update_formula_and_frozen_target() -> None:
    online = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    target = frozen_copy(online)
    assert not any(p.requires_grad for p in target.parameters())
    before = target[0].weight.clone()
    with torch.no_grad():
        online[0].weight.add_(1.0)
    online[1].running_mean.fill_(2.0)
    ema_update(target, online, decay=0.9)
    torch.testing.assert_close(target[0].weight, 0.9 * before + 0.1 * online[0].weight)
    torch.testing.assert_close(target[1].running_mean, torch.full((3,), 2.0))


def test_warmup_styles() -> None:
    from pretrainlab.core.schedules import lr_factor

    assert lr_factor(0, 100, 10, "cosine", warmup_style="from_zero") == 0.0  # pl_bolts
    assert lr_factor(5, 100, 10, "cosine", warmup_style="from_zero") == 0.5
    assert lr_factor(0, 100, 10, "cosine") == 0.1 and lr_factor(9, 100, 10, "cosine") == 1.0
    assert [lr_factor(s, 100, 4, "poly", power=1.0, warmup_style="insightface") for s in range(4)] == \
        [1.0, 0.25, 0.5, 0.75]  # arcface_torch PolynomialLRWarmup


def test_lars_variants() -> None:
    import torch

    from pretrainlab.core.optim import LARS

    def one_step(**kw):  # type: ignore[no-untyped-def]
        w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))  # |w| = 5
        b = torch.nn.Parameter(torch.tensor([1.0]))
        w.grad, b.grad = torch.tensor([[0.6, 0.8]]), torch.tensor([2.0])  # |g_w| = 1
        LARS([{"params": [w, b], "weight_decay": 0.1}], lr=1.0, momentum=0.0, eta=0.01, **kw).step()
        return w.detach(), b.detach()

    # SimCLR variant: trust ratio eta |w| / |g + wd w| on weights; biases untouched by the ratio and decay
    w, b = one_step()
    d = torch.tensor([[0.6, 0.8]]) + 0.1 * torch.tensor([[3.0, 4.0]])
    q = 0.01 * 5 / torch.norm(d)
    torch.testing.assert_close(w, torch.tensor([[3.0, 4.0]]) - q * d)
    torch.testing.assert_close(b, torch.tensor([1.0 - 2.0]))
    # pl_bolts variant: every parameter, q = eta |p| / (|g| + wd |p| + eps)
    w, b = one_step(exclude_1d=False, trust="sum_of_norms")
    q = 0.01 * 5 / (1 + 0.1 * 5 + 1e-8)
    torch.testing.assert_close(w, torch.tensor([[3.0, 4.0]]) - q * d)
    qb = 0.01 * 1 / (2 + 0.1 * 1 + 1e-8)
    torch.testing.assert_close(b, torch.tensor([1.0 - qb * (2.0 + 0.1)]))


def test_task_lr_scale_multiplies_the_schedule(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import torch

    from pretrainlab.core.config import TrainConfig
    from pretrainlab.core.train import OptimGroup, Task, Trainer

    class Two(Task):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
            self.lrs: list[tuple[float, float]] = []

        def optim_groups(self) -> list[OptimGroup]:
            return [OptimGroup("a", "loss", list(self.a.parameters())), OptimGroup("b", "loss_b", list(self.b.parameters()))]

        def lr_scale(self, group: str, step: int) -> float:
            return 0.0 if group == "b" and step < 2 else 1.5 ** step if group == "b" else 1.0

        def forward(self, batch):  # type: ignore[no-untyped-def]
            x, y = batch
            return {"loss": (self.a(x).squeeze(-1) - y).pow(2).mean(), "loss_b": (self.b(x).squeeze(-1) - y).pow(2).mean()}

    t = Two()
    b0 = t.b.weight.detach().clone()
    x = torch.randn(32, 2)
    ds = torch.utils.data.TensorDataset(x, x.sum(-1))
    cfg = TrainConfig(max_steps=2, batch_size=8, lr=0.1, schedule="constant", progress=False, tensorboard=False,
                      device="cpu")
    Trainer(cfg, tmp_path).fit(t, ds)
    assert torch.equal(t.b.weight, b0)  # scale 0 for the first two steps: b frozen by its ramp


def test_decay_1d_puts_every_parameter_in_the_decayed_group() -> None:
    import torch

    from pretrainlab.core.config import TrainConfig
    from pretrainlab.core.optim import build_optimizer

    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    default = build_optimizer(m.parameters(), TrainConfig(weight_decay=0.1, optimizer="adam"))
    assert [len(g["params"]) for g in default.param_groups] == [1, 3]
    assert [g["weight_decay"] for g in default.param_groups] == [0.1, 0.0]
    every = build_optimizer(m.parameters(), TrainConfig(weight_decay=0.1, optimizer="adam", decay_1d=True))
    assert [len(g["params"]) for g in every.param_groups] == [4] and every.param_groups[0]["weight_decay"] == 0.1


def test_fused_optimizer_same_update_and_falls_back() -> None:
    """train.fused_optimizer: torch's fused Adam(W) gives the foreach update up to float rounding; where
    torch has no fused kernel for a parameter it falls back to foreach instead of failing."""
    import torch

    from pretrainlab.core.config import TrainConfig
    from pretrainlab.core.optim import build_optimizer

    for name in ("adamw", "adam"):
        torch.manual_seed(0)
        a = torch.nn.Linear(16, 8)
        b = torch.nn.Linear(16, 8)
        b.load_state_dict(a.state_dict())
        w0 = a.weight.detach().clone()
        oa = build_optimizer(a.parameters(), TrainConfig(optimizer=name, lr=1e-2, weight_decay=0.1))
        ob = build_optimizer(b.parameters(), TrainConfig(optimizer=name, lr=1e-2, weight_decay=0.1, fused_optimizer=True))
        assert oa.defaults["foreach"] and not oa.defaults.get("fused") and ob.defaults["fused"]
        for _ in range(5):
            x = torch.randn(4, 16)
            for m, o in ((a, oa), (b, ob)):
                o.zero_grad()
                m(x).square().mean().backward()
                o.step()
        assert torch.allclose(a.weight, b.weight, atol=1e-6) and not torch.allclose(a.weight, w0, atol=1e-4)  # both moved
    meta = torch.nn.Linear(4, 4, device="meta")  # no fused kernel on this device: torch would fail at step()
    o = build_optimizer(meta.parameters(), TrainConfig(optimizer="adamw", fused_optimizer=True))
    assert o.defaults["foreach"] and not o.defaults.get("fused")


def test_seeded_items_seed_the_cpu_stream_without_lazy_device_seeds(monkeypatch) -> None:
    """In a worker, SeededItems seeds the CPU generator exactly as torch.manual_seed would (the same
    augmentation stream) without torch.manual_seed's lazy CUDA / XPU seeding (a stack trace per item)."""
    import torch

    from pretrainlab.core import train

    class Draw(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> torch.Tensor:
            return torch.rand(3)

    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: object())  # as inside a worker
    calls = []
    monkeypatch.setattr(torch, "manual_seed", lambda s: calls.append(s))
    items = train.SeededItems(Draw(), seed=7)
    got = [items[i] for i in range(4)]
    assert not calls  # no torch.manual_seed per item
    for i, g in enumerate(got):
        s = ((7 * 1_000_003 + 0) * 10_000_019 + i) % (2**63 - 1)
        assert torch.equal(g, torch.rand(3, generator=torch.Generator().manual_seed(s)))
