"""Paired statistics for the claims of a reproduction: verdicts from intervals, never from means.

A claim compares two rows ``a`` and ``b`` of a table on one metric (or the per-seed mean of several)
over the SAME seeds. With the per-seed differences ``d_i = a_i - b_i`` (sign-flipped when lower is
better, so a positive effect always favours ``a``), ``n`` seeds, mean ``m`` and sample standard
deviation ``s``, the 95 % paired Student-t interval is ``m -/+ t(0.975, n - 1) * s / sqrt(n)``.

Rules (``verdict``):

- pairwise ("a beats b", optionally by ``margin``): **holds** iff ``lo > margin``; **contradicted** iff
  ``hi < margin``; else **inconclusive**.
- equivalence ("a comes close to / matches b", within ``delta``): **holds** iff the whole interval lies
  inside ``[-delta, delta]``; **contradicted** iff it lies entirely outside it (``lo > delta`` or
  ``hi < -delta``); else **inconclusive**.

``half_width`` (``t * s / sqrt(n)``) is the smallest effect the run could have detected. With fewer
than two seeds no interval exists and the verdict is inconclusive.

A family of claims that test several candidates at once ("the best reduction beats ALL") is corrected
with Holm's step-down procedure (:func:`holm_levels`): each claim's interval is computed at the level
Holm assigns to it, so a verdict never comes from the maximum of several test-set means.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from typing import Any

HOLDS, INCONCLUSIVE, CONTRADICTED = "holds", "inconclusive", "contradicted"
VERDICTS = (HOLDS, INCONCLUSIVE, CONTRADICTED)
CONFIDENCE = 0.95


def t_quantile(q: float, df: int) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(q, df))


def t_sf(x: float, df: int) -> float:
    """Upper tail ``P(T > x)`` of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.sf(x, df))


@dataclasses.dataclass(frozen=True)
class Interval:
    """A paired interval: ``effect`` = mean of the (oriented) differences, ``[lo, hi]`` at ``confidence``."""

    effect: float
    lo: float
    hi: float
    n: int
    confidence: float
    diffs: tuple[float, ...]

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2 if self.n >= 2 else math.inf

    def as_dict(self) -> dict[str, Any]:
        ok = self.n >= 2
        return {"n": self.n, "effect": self.effect, "ci": [self.lo, self.hi] if ok else None,
                "confidence": self.confidence, "half_width": self.half_width if ok else None,
                "diffs": list(self.diffs)}


def differences(a: Sequence[float], b: Sequence[float], better: str = "higher") -> list[float]:
    """Per-seed differences ``a - b`` (``b - a`` when lower is better)."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', got {better!r}")
    if len(a) != len(b):
        raise ValueError(f"paired values need the same seeds: {len(a)} vs {len(b)} values")
    sign = 1.0 if better == "higher" else -1.0
    return [sign * (float(x) - float(y)) for x, y in zip(a, b)]


def _half_width(sd: float, n: int, confidence: float) -> float:
    """``t(1 - alpha / 2, n - 1) * sd / sqrt(n)``: the half-width of a two-sided paired interval."""
    return t_quantile(1 - (1 - confidence) / 2, n - 1) * sd / math.sqrt(n)


def paired_interval(a: Sequence[float], b: Sequence[float], better: str = "higher",
                    confidence: float = CONFIDENCE) -> Interval:
    """The paired Student-t interval of the oriented difference (see the module docstring)."""
    d = differences(a, b, better)
    n = len(d)
    if n == 0:
        raise ValueError("no paired values")
    if any(math.isnan(x) for x in d):
        raise ValueError("paired values contain NaN")
    m = statistics.fmean(d)
    if n < 2:
        return Interval(m, -math.inf, math.inf, n, confidence, tuple(d))
    half = _half_width(statistics.stdev(d), n, confidence)
    return Interval(m, m - half, m + half, n, confidence, tuple(d))


def pairwise_verdict(iv: Interval, margin: float = 0.0) -> str:
    """holds iff lo > margin; contradicted iff hi < margin; else inconclusive."""
    if iv.n < 2:
        return INCONCLUSIVE
    if iv.lo > margin:
        return HOLDS
    if iv.hi < margin:
        return CONTRADICTED
    return INCONCLUSIVE


def equivalence_verdict(iv: Interval, delta: float) -> str:
    """holds iff [lo, hi] lies inside [-delta, delta]; contradicted iff entirely outside; else inconclusive."""
    if delta <= 0:
        raise ValueError(f"equivalence needs delta > 0, got {delta}")
    if iv.n < 2:
        return INCONCLUSIVE
    if -delta <= iv.lo and iv.hi <= delta:
        return HOLDS
    if iv.lo > delta or iv.hi < -delta:
        return CONTRADICTED
    return INCONCLUSIVE


def one_sided_p(d: Sequence[float], margin: float = 0.0) -> float:
    """The smaller one-sided paired-t p-value of ``mean(d) > margin`` or ``mean(d) < margin``.

    It is below ``(1 - confidence) / 2`` exactly when the two-sided interval at ``confidence``
    excludes ``margin`` (what makes a pairwise verdict decisive).
    """
    n = len(d)
    if n < 2:
        return 1.0
    m = statistics.fmean(d)
    s = statistics.stdev(d)
    if s == 0:
        return 0.0 if m != margin else 1.0
    tstat = (m - margin) / (s / math.sqrt(n))
    return t_sf(abs(tstat), n - 1)


def holm_levels(pvalues: Sequence[float], confidence: float = CONFIDENCE) -> list[float]:
    """Holm's step-down procedure as per-claim interval levels.

    ``alpha = 1 - confidence`` is split over the ``m`` claims: the claim with the i-th smallest
    p-value (0-based) gets level ``1 - alpha / (m - i)`` as long as every claim before it was
    decisive at its own level; once one is not, the rest keep the most conservative level that was
    reached (Holm stops rejecting there).
    """
    m = len(pvalues)
    alpha = 1 - confidence
    order = sorted(range(m), key=lambda i: pvalues[i])
    levels = [0.0] * m
    stopped = False
    last = 1 - alpha / m if m else confidence
    for rank, i in enumerate(order):
        level = 1 - alpha / (m - rank)
        if stopped:
            level = last
        elif pvalues[i] >= (alpha / 2) / (m - rank):
            stopped = True
        levels[i] = level
        last = level
    return levels


def seeds_for_half_width(sd: float, half_width: float, confidence: float = CONFIDENCE, max_n: int = 100_000) -> int:
    """The fewest seeds ``n >= 2`` whose paired interval is at most ``half_width`` wide on each side
    when the differences spread with standard deviation ``sd``: ``t(n - 1) * sd / sqrt(n) <= half_width``.

    A planning figure from a measured spread (the sample ``sd`` of a run is itself uncertain); an
    interval excludes 0 at that ``n`` only if the true effect is larger than ``half_width``.
    """
    if half_width <= 0 or sd < 0 or not math.isfinite(sd):
        raise ValueError(f"need half_width > 0 and a finite sd >= 0, got {half_width}, {sd}")
    z = statistics.NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    n = max(2, math.ceil((z * sd / half_width) ** 2))  # the normal bound: t's interval is wider, never narrower
    while _half_width(sd, n, confidence) > half_width:
        n += 1
        if n > max_n:
            raise ValueError(f"more than {max_n} seeds for a half-width of {half_width} at sd {sd}")
    return n


__all__ = [
    "CONFIDENCE",
    "CONTRADICTED",
    "HOLDS",
    "INCONCLUSIVE",
    "VERDICTS",
    "Interval",
    "differences",
    "equivalence_verdict",
    "holm_levels",
    "one_sided_p",
    "paired_interval",
    "pairwise_verdict",
    "seeds_for_half_width",
    "t_quantile",
]

