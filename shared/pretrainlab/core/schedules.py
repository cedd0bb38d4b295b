"""Learning-rate and momentum schedules as pure functions of the step (no hidden state to save)."""

from __future__ import annotations

import math


def lr_factor(step: int, max_steps: int, warmup_steps: int = 0, kind: str = "cosine",
              min_ratio: float = 0.0, power: float = 2.0, warmup_style: str = "linear") -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based).

    Linear warm-up over ``warmup_steps`` (``warmup_style``: "linear" from ``1/warmup`` to 1;
    "from_zero" from 0, as pl_bolts' ``linear_warmup_decay``; "insightface": the full lr at step 0,
    then ``step / warmup``, as arcface_torch's ``PolynomialLRWarmup``), then ``cosine`` (half cosine down
    to ``min_ratio``), ``linear`` (straight down to ``min_ratio``), ``poly`` (``(1 - t) ** power``
    down to ``min_ratio``; insightface's ``PolyScheduler`` uses power 2, its ``PolynomialLRWarmup`` 1) or
    ``constant``.
    """
    if warmup_steps > 0 and step < warmup_steps:
        if warmup_style == "insightface":
            return 1.0 if step == 0 else step / warmup_steps
        if warmup_style == "from_zero":
            return step / warmup_steps
        if warmup_style != "linear":
            raise ValueError(f"unknown warmup_style '{warmup_style}' (use linear, from_zero or insightface)")
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    span = max(1, max_steps - warmup_steps)
    t = min(1.0, max(0.0, (step - warmup_steps) / span))
    if kind == "cosine":
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))
    if kind == "linear":
        return min_ratio + (1.0 - min_ratio) * (1.0 - t)
    if kind == "poly":
        return min_ratio + (1.0 - min_ratio) * (1.0 - t) ** power
    raise ValueError(f"unknown schedule '{kind}' (use cosine, linear, poly or constant)")


def cosine_momentum(step: int, max_steps: int, base: float = 0.996, final: float = 1.0) -> float:
    """BYOL's target momentum: ``1 - (1 - base) * (cos(pi k / K) + 1) / 2`` rising to ``final``."""
    t = min(1.0, step / max(1, max_steps))
    return final - (final - base) * (math.cos(math.pi * t) + 1.0) / 2.0
