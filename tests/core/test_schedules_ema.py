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
