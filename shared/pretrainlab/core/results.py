"""The reproduction harness: a paper's table as rows x seeds, claims with paired verdicts, results files.

A domain's ``reproduce.py`` declares only what is its own: the rows, the function that runs one
(row, seed) cell, the claims (declared BEFORE the run), the deviations and the paper's numbers::

    TABLE = Table(domain="lidar", paper=PAPER, rows=[Row("scratch", ...), Row("E-SSL3D", ...)],
                  run=run_cell, claims=[Claim("E-SSL3D beats scratch at 5 % labels", a="E-SSL3D",
                  b="scratch", metric="mAP3D_mod@5pct", headline=True)], ...)

and :meth:`Table.reproduce` does the rest: seeds per profile, a progress bar, one cached JSON per
finished cell (an interrupted reproduction resumes where it stopped; a change of the domain's code
or of the table starts afresh), aggregation, the claims' verdicts from :mod:`pretrainlab.core.stats`,
``results.json`` / ``results.md`` / plots, and the top-level report of ``reproduce --all``.

``results.json``::

    {"domain", "paper", "profile", "device", "seeds", "wall_time_s", "cpu_time_s", "environment",
     "rows": [{"name", "seeds": [...], "metrics": {m: {"mean", "std", "n", "values": [...]}}, "paper"?}],
     "claims": [{"claim", "kind", "metric", "a", "b", "better", "margin" | "delta", "n", "effect",
                 "ci", "confidence", "half_width", "verdict", "holds", "evidence", "headline", ...}],
     "headline": claim text, "deviations": [...], "paper_numbers": {...}, "notes": str, "plots": [...]}

Rows' ``values`` are in the order of their ``seeds``, so anyone can recompute every verdict.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pretrainlab.core import stats as S
from pretrainlab.core.io import atomic_write_json, atomic_write_text

REQUIRED = ("domain", "paper", "profile", "device", "seeds", "wall_time_s", "rows", "claims")
CLAIM_FIELDS = ("claim", "kind", "verdict", "holds", "evidence", "headline")
PAIRED_FIELDS = ("metric", "a", "b", "better", "n", "effect", "ci", "half_width")
DEFAULT_SEEDS = {"smoke": [0, 1], "tiny": [0, 1, 2, 3, 4], "full": [0, 1, 2]}
HEADLINE_MIN_SEEDS = 5


# ------------------------------------------------------------------------------------------ rows

def summarize(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "n", "values"}`` with the sample standard deviation (0 for one value)."""
    vals = [math.nan if v is None else float(v) for v in values]
    if not vals:
        raise ValueError("no values to summarise")
    finite = [v for v in vals if not math.isnan(v)]
    mean = statistics.fmean(finite) if finite else math.nan
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return {"mean": mean, "std": std, "n": len(finite), "values": vals}


def row(name: str, metrics: Mapping[str, Sequence[float]], seeds: Sequence[int] | None = None,
        **extra: Any) -> dict[str, Any]:
    """One table row from per-seed metric values (in the order of ``seeds``)."""
    out: dict[str, Any] = {"name": name}
    if seeds is not None:
        out["seeds"] = [int(s) for s in seeds]
    out["metrics"] = {k: summarize(v) for k, v in metrics.items()}
    out.update(extra)
    return out


# ---------------------------------------------------------------------------------------- claims

@dataclasses.dataclass
class Claim:
    """One of the paper's claims, declared before the run.

    ``kind``: "pairwise" (``a`` beats ``b`` by more than ``margin``), "equivalence" (``a`` within
    ``delta`` of ``b``) or "other" (``decide(results) -> (verdict, evidence)``, e.g. a speed ratio).
    ``metric``: one metric name, or a list whose per-seed mean is compared. ``better``: "higher" or
    "lower". ``family``: claims that test several candidates at once share a family name and are
    Holm-corrected together (never pick the best of several test-set means). ``headline``: the
    paper's central claim (exactly one per domain).
    """

    claim: str
    a: str = ""
    b: str = ""
    metric: str | list[str] = ""
    better: str = "higher"
    kind: str = "pairwise"
    margin: float = 0.0
    delta: float | None = None
    headline: bool = False
    family: str | None = None
    decide: Callable[[dict[str, Any]], tuple[str, str]] | None = None
    unit: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("pairwise", "equivalence", "other"):
            raise ValueError(f"claim '{self.claim}': kind must be pairwise, equivalence or other")
        if self.better not in ("higher", "lower"):
            raise ValueError(f"claim '{self.claim}': better must be 'higher' or 'lower'")
        if self.kind == "other":
            if self.decide is None:
                raise ValueError(f"claim '{self.claim}': an 'other' claim needs decide(results)")
            return
        if not (self.a and self.b and self.metric):
            raise ValueError(f"claim '{self.claim}': a paired claim needs rows a, b and a metric")
        if self.kind == "equivalence" and (self.delta is None or self.delta <= 0):
            raise ValueError(f"claim '{self.claim}': an equivalence claim needs delta > 0")
        if self.family is not None and self.kind != "pairwise":
            raise ValueError(f"claim '{self.claim}': Holm families hold pairwise claims only")


def _row_by_name(rows: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any]:
    for r in rows:
        if r["name"] == name:
            return r
    raise KeyError(f"no row named '{name}' (rows: {[r['name'] for r in rows]})")


def paired_values(rows: Sequence[Mapping[str, Any]], a: str, b: str, metric: str | Sequence[str],
                  seeds: Sequence[int] | None = None) -> tuple[list[int], list[float], list[float]]:
    """The common seeds of rows ``a`` and ``b`` and their per-seed values of ``metric`` (a list of
    metrics: their per-seed mean), in seed order."""
    ra, rb = _row_by_name(rows, a), _row_by_name(rows, b)
    metrics = [metric] if isinstance(metric, str) else list(metric)

    def per_seed(r: Mapping[str, Any]) -> dict[int, float]:
        rs = r.get("seeds") or list(seeds or range(len(r["metrics"][metrics[0]]["values"])))
        cols = []
        for m in metrics:
            if m not in r["metrics"]:
                raise KeyError(f"row '{r['name']}' has no metric '{m}'")
            cols.append(r["metrics"][m]["values"])
        return {int(s): statistics.fmean(math.nan if c[i] is None else float(c[i]) for c in cols)
                for i, s in enumerate(rs)}

    va, vb = per_seed(ra), per_seed(rb)
    common = [s for s in va if s in vb and not math.isnan(va[s]) and not math.isnan(vb[s])]
    return common, [va[s] for s in common], [vb[s] for s in common]


def _fmt_num(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return "n/a"
    return f"{x:+.{digits}f}"


def evaluate_claims(claims: Sequence[Claim], results: dict[str, Any], digits: int = 3) -> list[dict[str, Any]]:
    """The verdict of every claim from the rows' per-seed values (see :mod:`pretrainlab.core.stats`)."""
    rows = results["rows"]
    out: list[dict[str, Any] | None] = [None] * len(claims)
    # Holm families: one level per claim from the family's p-values
    levels: dict[int, float] = {}
    families: dict[str, list[int]] = {}
    for i, c in enumerate(claims):
        if c.family:
            families.setdefault(c.family, []).append(i)
    for idx in families.values():
        ps = []
        for i in idx:
            c = claims[i]
            _, va, vb = paired_values(rows, c.a, c.b, c.metric)
            ps.append(S.one_sided_p(S.differences(va, vb, c.better), c.margin) if va else 1.0)
        for i, lvl in zip(idx, S.holm_levels(ps)):
            levels[i] = lvl
    for i, c in enumerate(claims):
        base: dict[str, Any] = {"claim": c.claim, "kind": c.kind, "headline": bool(c.headline)}
        if c.kind == "other":
            assert c.decide is not None
            verdict, evidence = c.decide(results)
            if verdict not in S.VERDICTS:
                raise ValueError(f"claim '{c.claim}': decide() returned {verdict!r}, not one of {S.VERDICTS}")
            out[i] = {**base, "verdict": verdict, "holds": verdict == S.HOLDS, "evidence": evidence}
            continue
        seeds, va, vb = paired_values(rows, c.a, c.b, c.metric)
        base.update({"metric": c.metric, "a": c.a, "b": c.b, "better": c.better})
        if c.kind == "pairwise":
            base["margin"] = c.margin
        else:
            base["delta"] = c.delta
        if not va:
            out[i] = {**base, "n": 0, "effect": None, "ci": None, "confidence": S.CONFIDENCE, "half_width": None,
                      "seeds": [], "verdict": S.INCONCLUSIVE, "holds": False,
                      "evidence": f"no seed has values for both '{c.a}' and '{c.b}'"}
            continue
        level = levels.get(i, S.CONFIDENCE)
        iv = S.paired_interval(va, vb, c.better, level)
        if c.kind == "pairwise":
            verdict = S.pairwise_verdict(iv, c.margin)
            rule = f"supported when the interval lies above {c.margin:g}, refuted when below"
        else:
            assert c.delta is not None
            verdict = S.equivalence_verdict(iv, c.delta)
            rule = f"supported when the interval lies inside [-{c.delta:g}, {c.delta:g}], refuted when outside"
        d = iv.as_dict()
        unit = f" {c.unit}" if c.unit else ""
        metric = c.metric if isinstance(c.metric, str) else "mean of " + ", ".join(c.metric)
        orient = f"{c.a} - {c.b}" if c.better == "higher" else f"{c.b} - {c.a} (lower is better)"
        ci = d["ci"]
        ci_txt = f"[{_fmt_num(ci[0], digits)}, {_fmt_num(ci[1], digits)}]" if ci else "n/a (one seed)"
        corr = f", Holm-corrected in family '{c.family}' (level {level:.4f})" if c.family else ""
        evidence = (f"{metric}: {orient} = {_fmt_num(iv.effect, digits)}{unit}, {level:.0%} paired t interval "
                    f"{ci_txt} over {iv.n} seeds{corr}; {rule}; per-seed "
                    f"{[round(x, digits) for x in iv.diffs]}")
        out[i] = {**base, "n": iv.n, "effect": iv.effect, "ci": ci, "confidence": level, "half_width": d["half_width"],
                  "seeds": seeds, "verdict": verdict, "holds": verdict == S.HOLDS, "evidence": evidence,
                  **({"family": c.family} if c.family else {})}
    return [c for c in out if c is not None]


def legacy_claim(text: str, holds: bool, evidence: str) -> dict[str, Any]:
    """A claim decided outside the paired statistics (kind "other")."""
    return {"claim": text, "kind": "other", "verdict": S.HOLDS if holds else S.INCONCLUSIVE, "holds": bool(holds),
            "evidence": evidence, "headline": False}


# the old name, kept while domains move to Table / Claim
claim = legacy_claim


# ------------------------------------------------------------------------------------ validation

def validate(results: dict[str, Any]) -> None:
    """Raise ValueError when ``results`` does not follow the schema above."""
    missing = [k for k in REQUIRED if k not in results]
    if missing:
        raise ValueError(f"results lack {missing}")
    if not isinstance(results["rows"], list) or not results["rows"]:
        raise ValueError("results.rows must be a non-empty list")
    for r in results["rows"]:
        if "name" not in r or "metrics" not in r:
            raise ValueError(f"row {r!r} lacks name / metrics")
        for m, s in r["metrics"].items():
            if not {"mean", "std", "values"} <= set(s):
                raise ValueError(f"row {r['name']} metric {m} lacks mean / std / values")
            if "seeds" in r and len(r["seeds"]) != len(s["values"]):
                raise ValueError(f"row {r['name']} metric {m}: {len(s['values'])} values for {len(r['seeds'])} seeds")
    for c in results["claims"]:
        if not set(CLAIM_FIELDS) <= set(c) or not isinstance(c["holds"], bool):
            raise ValueError(f"claim {c!r} is malformed (needs {CLAIM_FIELDS})")
        if c["verdict"] not in S.VERDICTS or c["holds"] != (c["verdict"] == S.HOLDS):
            raise ValueError(f"claim {c['claim']!r}: verdict {c['verdict']!r} / holds {c['holds']!r} disagree")
        if c["kind"] in ("pairwise", "equivalence") and not set(PAIRED_FIELDS) <= set(c):
            raise ValueError(f"claim {c['claim']!r}: a paired claim needs {PAIRED_FIELDS}")
    heads = [c for c in results["claims"] if c.get("headline")]
    if len(heads) > 1:
        raise ValueError(f"{len(heads)} headline claims; a table has at most one")


def recompute_verdicts(results: dict[str, Any]) -> list[str]:
    """Each paired claim's verdict recomputed from the rows' values (tests compare it with the file)."""
    out = []
    for c in results["claims"]:
        if c["kind"] == "other":
            out.append(c["verdict"])
            continue
        _seeds, va, vb = paired_values(results["rows"], c["a"], c["b"], c["metric"])
        if not va:
            out.append(S.INCONCLUSIVE)
            continue
        iv = S.paired_interval(va, vb, c["better"], c.get("confidence", S.CONFIDENCE))
        out.append(S.pairwise_verdict(iv, c.get("margin", 0.0)) if c["kind"] == "pairwise"
                   else S.equivalence_verdict(iv, c["delta"]))
    return out


# ------------------------------------------------------------------------------------ markdown

def _fmt(s: Mapping[str, Any], digits: int = 3) -> str:
    mean = s.get("mean")
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    return f"{mean:.{digits}f} ± {s['std']:.{digits}f}"


def table_md(results: Mapping[str, Any], digits: int = 3, metrics: Sequence[str] | None = None) -> str:
    """The rows as a markdown table: mean ± sample std over seeds, the number of seeds per row."""
    if metrics is None:
        metrics = []
        for r in results["rows"]:
            for m in r["metrics"]:
                if m not in metrics:
                    metrics.append(m)
    has_paper = any(r.get("paper") for r in results["rows"])
    head = "| row | seeds | " + " | ".join(metrics) + (" | paper |" if has_paper else " |")
    lines = [head, "|---" * (len(metrics) + 2 + has_paper) + "|"]
    for r in results["rows"]:
        n = len(r.get("seeds") or next(iter(r["metrics"].values()))["values"])
        cells = [_fmt(r["metrics"][m], digits) if m in r["metrics"] else "" for m in metrics]
        paper = ""
        if has_paper:
            p = r.get("paper") or {}
            paper = " | " + ("; ".join(f"{k} {v}" for k, v in p.items()) if isinstance(p, dict) else str(p))
        lines.append(f"| {r['name']} | {n} | " + " | ".join(cells) + paper + " |")
    return "\n".join(lines)


def claim_line(c: Mapping[str, Any], digits: int = 3) -> str:
    """``- **verdict** (headline): claim — evidence; smallest detectable effect``."""
    head = " (headline)" if c.get("headline") else ""
    extra = ""
    if c.get("kind") in ("pairwise", "equivalence") and c.get("half_width") is not None:
        extra = f"; smallest effect this run could detect: ±{c['half_width']:.{digits}f}"
    return f"- **{c['verdict']}**{head}: {c['claim']} — {c['evidence']}{extra}"


def claims_md(results: Mapping[str, Any], digits: int = 3) -> str:
    claims = sorted(results["claims"], key=lambda c: not c.get("headline"))
    return "\n".join(claim_line(c, digits) for c in claims)


def verdict_counts(results: Mapping[str, Any]) -> dict[str, int]:
    counts = {v: 0 for v in S.VERDICTS}
    for c in results["claims"]:
        counts[c["verdict"]] += 1
    return counts


def headline_of(results: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((c for c in results["claims"] if c.get("headline")), None)


def results_md(results: Mapping[str, Any], extra: str = "", plots: bool = True, digits: int = 3) -> str:
    cpu = results.get("cpu_time_s")
    out = [f"# {results['domain']}: reproduction ({results['profile']} profile)", "",
           f"Paper: {results['paper']}", "",
           f"Device: {results['device']}; seeds: {results['seeds']}; wall time: {results['wall_time_s']:.0f} s"
           + (f"; CPU time: {cpu:.0f} s" if cpu is not None else ""), "",
           "Mean ± sample standard deviation over each row's seeds.", "", table_md(results, digits), "",
           "## Claims", "",
           ("Each claim is decided by the 95 % paired Student-t interval of the per-seed difference (the same "
            "seeds for both rows), never by comparing means; the verdict is one of three: the interval supports "
            "the claim, refutes it (contradicted), or cannot tell (inconclusive)."), "",
           claims_md(results, digits)]
    if results.get("notes"):
        out += ["", "## Notes", "", str(results["notes"])]
    if results.get("paper_numbers"):
        out += ["", "## The paper's numbers (for comparison; different data and scale)", "",
                "```", json.dumps(results["paper_numbers"], indent=2), "```"]
    if results.get("deviations"):
        out += ["", "## Deviations from the paper and its reference code", ""] + [f"- {d}" for d in results["deviations"]]
    if plots:
        for p in results.get("plots", []):
            out += ["", f"![{Path(p).stem}]({p})"]
    if extra:
        out += ["", extra]
    return "\n".join(out) + "\n"


def bar_plot(results: Mapping[str, Any], metric: str, path: Path, title: str | None = None) -> Path:
    """Mean ± std of one metric per row with each seed's value, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results["rows"] if metric in r["metrics"]]
    names = [r["name"] for r in rows]
    means = [r["metrics"][metric]["mean"] for r in rows]
    stds = [r["metrics"][metric]["std"] for r in rows]
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(rows) + 2), 3.2))
    ax.bar(range(len(rows)), means, yerr=stds, capsize=4, color="#4C72B0")
    for i, r in enumerate(rows):
        vals = r["metrics"][metric]["values"]
        ax.scatter([i] * len(vals), vals, color="k", s=8, zorder=3)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(title or f"{results['domain']}: {metric} ({results['profile']})", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_results(out_dir: Path, results: dict[str, Any], plot_metrics: Sequence[str] = (), extra_md: str = "") -> Path:
    """Validate, plot, and write ``results.json`` + ``results.md`` into ``out_dir``."""
    validate(results)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = list(results.get("plots", []))
    for m in plot_metrics:
        p = bar_plot(results, m, out_dir / f"{m.replace('/', '_').replace('@', 'at')}.png")
        plots.append(p.name)
    results["plots"] = plots
    atomic_write_json(out_dir / "results.json", results)
    atomic_write_text(out_dir / "results.md", results_md(results, extra_md))
    return out_dir / "results.json"


# ------------------------------------------------------------------------------------ the harness

@dataclasses.dataclass
class Row:
    """One row of a paper's table. ``params`` is whatever the run function needs (a recipe name,
    overrides); ``seeds``: None = every seed of the profile, k = its first k seeds."""

    name: str
    params: Any = None
    seeds: int | None = None
    paper: dict[str, Any] | str | None = None


@dataclasses.dataclass
class Context:
    """What a cell's run function gets besides its row and seed."""

    profile: str
    out: Path
    data: Path | None
    seeds: list[int]
    shared: dict[str, Any]
    # True when this call resumes an interrupted run of the same table (same rows, seeds, data and source):
    # only then may ``setup`` reuse what an earlier call left in ``out`` (a pre-training run, say)
    resumed: bool = False

    def cell_dir(self, row: Row, seed: int) -> Path:
        """A folder for this cell's run (checkpoints, logs)."""
        return self.out / "runs" / slug(row.name) / f"seed{seed}"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "row"


def _source_hash(modules: Sequence[str]) -> str:
    """A hash of the source files of the given packages / modules (what the cached cells depend on)."""
    import importlib.util

    h = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        paths: list[Path] = []
        if spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                paths += sorted(p for p in Path(loc).rglob("*") if p.suffix in (".py", ".yaml", ".yml", ".json")
                                and "results" not in p.relative_to(loc).parts[:1])
        elif spec.origin:
            paths.append(Path(spec.origin))
        for p in paths:
            h.update(str(p.name).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _cpu_seconds() -> float:
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def environment() -> dict[str, Any]:
    import torch

    return {"python": platform.python_version(), "machine": platform.machine(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


@dataclasses.dataclass
class Table:
    """A paper's table: rows x seeds of ``run(row, seed, ctx) -> {metric: value}``, plus its claims.

    ``setup(ctx)`` runs once before the cells (shared data, feature networks...) and may fill
    ``ctx.shared``; ``finish(ctx, results)`` may add plots / fields after the cells. ``seeds``: per
    profile. ``plot_metrics``: a bar plot each. ``notes``: a paragraph for results.md (what the
    columns are, what the tiny scale traded away). ``modules``: packages whose source the cached
    cells depend on (default: the domain's package and the core).
    """

    domain: str
    paper: str
    rows: list[Row]
    run: Callable[[Row, int, Context], Mapping[str, float]]
    claims: list[Claim] = dataclasses.field(default_factory=list)
    seeds: dict[str, list[int]] = dataclasses.field(default_factory=lambda: dict(DEFAULT_SEEDS))
    setup: Callable[[Context], None] | None = None
    finish: Callable[[Context, dict[str, Any]], None] | None = None
    deviations: list[str] | Callable[[str], list[str]] = dataclasses.field(default_factory=list)
    paper_numbers: dict[str, Any] = dataclasses.field(default_factory=dict)
    plot_metrics: list[str] = dataclasses.field(default_factory=list)
    notes: str | Callable[[str], str] = ""
    metrics: list[str] | None = None  # column order of the table (default: first seen)
    modules: list[str] | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        names = [r.name for r in self.rows]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.domain}: duplicate row names {names}")
        for c in self.claims:
            for r in (c.a, c.b):
                if r and r not in names:
                    raise ValueError(f"{self.domain}: claim '{c.claim}' names unknown row '{r}' (rows: {names})")
        heads = [c for c in self.claims if c.headline]
        if len(heads) > 1:
            raise ValueError(f"{self.domain}: {len(heads)} headline claims; declare exactly one")

    # -------------------------------------------------------------- helpers
    def seeds_for(self, profile: str, seeds: Sequence[int] | None = None) -> list[int]:
        return [int(s) for s in (seeds if seeds else self.seeds.get(profile, DEFAULT_SEEDS.get(profile, [0, 1, 2])))]

    def row_seeds(self, r: Row, seeds: Sequence[int]) -> list[int]:
        return list(seeds) if r.seeds is None else list(seeds)[: r.seeds]

    def headline(self) -> Claim | None:
        return next((c for c in self.claims if c.headline), None)

    def _key(self, profile: str, seeds: Sequence[int], data: Path | None) -> str:
        mods = self.modules or [f"pretrainlab.{self.domain}", "pretrainlab.core"]
        blob = json.dumps({"profile": profile, "seeds": list(seeds), "data": str(data) if data else None,
                           "rows": [[r.name, repr(r.params), r.seeds] for r in self.rows],
                           "source": _source_hash(mods)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    # -------------------------------------------------------------- the run
    def reproduce(self, profile: str, out: Path, seeds: Sequence[int] | None = None, data: Path | None = None,
                  resume: bool = True, progress: bool = True) -> Path:
        """Run every missing (row, seed) cell, then write results.json / results.md / plots into ``out``.

        Finished cells are cached in ``out/cells/``; an interrupted run resumes (``resume=True``) as
        long as the table, the seeds, the data and the source code are unchanged. A run that
        finished is measured afresh when started again.
        """
        from tqdm.auto import tqdm

        t0, cpu0 = time.time(), _cpu_seconds()
        out = Path(out)
        seeds = self.seeds_for(profile, seeds)
        ctx = Context(profile, out, Path(data) if data else None, seeds, {})
        cells_dir = out / "cells"
        key = self._key(profile, seeds, ctx.data)
        marker = cells_dir / "table.json"
        out_existed, runs_existed = out.exists(), (out / "runs").exists()
        if cells_dir.exists():  # resume an interrupted run of the same table; a finished one is re-measured
            old = json.loads(marker.read_text()).get("key") if marker.exists() else None
            if not resume or old != key or (cells_dir / "complete").exists():
                shutil.rmtree(cells_dir)
            else:
                ctx.resumed = True
        cells_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(marker, {"key": key, "domain": self.domain, "profile": profile, "seeds": seeds})
        jobs = [(r, s) for r in self.rows for s in self.row_seeds(r, seeds)]
        done = {(r.name, s): cells_dir / slug(r.name) / f"seed{s}.json" for r, s in jobs}
        todo = [(r, s) for r, s in jobs if not done[(r.name, s)].exists()]
        if len(todo) < len(jobs):
            print(f"{self.domain}: resuming: {len(jobs) - len(todo)} of {len(jobs)} cells already done in {cells_dir}",
                  file=sys.stderr)
        bar = None
        try:
            if todo and self.setup is not None:
                self.setup(ctx)
            bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=f"{self.domain} reproduce ({profile})",
                       unit="cell", disable=not progress, file=sys.stderr, dynamic_ncols=True)
            for r, s in todo:
                bar.set_postfix_str(f"{r.name} / seed {s}")
                t_cell = time.time()
                metrics = {k: float(v) for k, v in dict(self.run(r, s, ctx)).items()}
                atomic_write_json(done[(r.name, s)], {"row": r.name, "seed": s, "metrics": metrics,
                                                      "time_s": time.time() - t_cell})
                bar.update()
        except BaseException:
            if bar is not None:
                bar.close()
                print(file=sys.stderr)  # the error goes on a line of its own, not after the bar
            # nothing finished: leave no folder behind that this call created (a resumable run keeps its cells)
            if not any(p.exists() for p in done.values()):
                for created in ([out] if not out_existed else [cells_dir] + ([] if runs_existed else [out / "runs"])):
                    shutil.rmtree(created, ignore_errors=True)
            raise
        bar.close()
        rows = []
        for r in self.rows:
            rs = self.row_seeds(r, seeds)
            cells = [json.loads(done[(r.name, s)].read_text())["metrics"] for s in rs]
            names: list[str] = []
            for c in cells:
                names += [m for m in c if m not in names]
            vals = {m: [c.get(m, math.nan) for c in cells] for m in names}
            rows.append(row(r.name, vals, rs, **({"paper": r.paper} if r.paper else {})))
        deviations = self.deviations(profile) if callable(self.deviations) else list(self.deviations)
        notes = self.notes(profile) if callable(self.notes) else self.notes
        results: dict[str, Any] = {
            "domain": self.domain, "paper": self.paper, "profile": profile,
            "device": ctx.shared.get("device", self.device), "seeds": seeds, "rows": rows,
            "claims": [], "deviations": deviations, "paper_numbers": self.paper_numbers, "notes": notes,
            "environment": environment(), "data": str(ctx.data) if ctx.data else "synthetic",
        }
        if self.finish is not None:
            self.finish(ctx, results)
        results["claims"] = evaluate_claims(self.claims, results)
        head = headline_of(results)
        results["headline"] = head["claim"] if head else None
        results["wall_time_s"] = time.time() - t0
        results["cpu_time_s"] = _cpu_seconds() - cpu0
        path = write_results(out, results, plot_metrics=self.plot_metrics)
        atomic_write_text(cells_dir / "complete", key + "\n")
        c = verdict_counts(results)
        hv = f"; headline: {head['verdict']}" if head else ""
        print(f"{self.domain} reproduce ({profile}): {len(self.rows)} rows x {len(seeds)} seeds in "
              f"{results['wall_time_s']:.0f} s; claims: {c['holds']} hold, {c['inconclusive']} inconclusive, "
              f"{c['contradicted']} contradicted{hv} -> {out / 'results.md'}", file=sys.stderr)
        return path


# ------------------------------------------------------------------------- committed results, README

README_BEGIN = "<!-- results:{profile}:begin (generated by `pretrainlab {domain} report --readme`; do not edit) -->"
README_END = "<!-- results:{profile}:end -->"


def committed_results(package_dir: Path, profile: str = "tiny") -> Path:
    """Where a domain's measured results live in the repository: ``<package>/results/<profile>/``."""
    return Path(package_dir) / "results" / profile


def readme_block(results: Mapping[str, Any], digits: int = 3) -> str:
    """The README section generated from a results file: table, claims, run facts."""
    c = verdict_counts(results)
    head = headline_of(results)
    cpu = results.get("cpu_time_s")
    lines = [f"Measured by `pretrainlab {results['domain']} reproduce --profile {results['profile']}` on "
             f"{results['device']} ({results.get('environment', {}).get('cpu_count', '?')} CPU cores): "
             f"{results['wall_time_s']:.0f} s wall" + (f", {cpu:.0f} s CPU" if cpu is not None else "")
             + f"; seeds {results['seeds']}. Mean ± sample std over each row's seeds "
             f"(file: `results/{results['profile']}/results.json`).", "",
             table_md(results, digits), "",
             (f"Claims ({c['holds']} hold, {c['inconclusive']} inconclusive, {c['contradicted']} contradicted; "
             "95 % paired t intervals over the same seeds):"), "", claims_md(results, digits)]
    if head is None:
        lines += ["", "No headline claim is declared."]
    return "\n".join(lines)


def render_readme(text: str, results: Mapping[str, Any]) -> str:
    """``text`` with the block between the results markers replaced by :func:`readme_block`."""
    begin = README_BEGIN.format(profile=results["profile"], domain=results["domain"])
    end = README_END.format(profile=results["profile"])
    block = f"{begin}\n{readme_block(results)}\n{end}"
    pat = re.compile(re.escape(begin.split(" (")[0]) + r".*?" + re.escape(end), re.DOTALL)
    if not pat.search(text):
        raise ValueError(f"the README has no '{begin.split(' (')[0]}' ... '{end}' markers; add them where the "
                         "table belongs")
    return pat.sub(lambda _m: block, text, count=1)


def publish(results_json: Path, package_dir: Path, readme: Path | None = None) -> tuple[Path, Path | None]:
    """Copy a finished run's results into ``<package>/results/<profile>/`` (results.json + a results.md
    without plot links) and regenerate the README block from it."""
    res = json.loads(Path(results_json).read_text())
    validate(res)
    res = {**res, "plots": []}
    dest = committed_results(package_dir, res["profile"])
    atomic_write_json(dest / "results.json", res)
    atomic_write_text(dest / "results.md", results_md(res, plots=False))
    if readme is not None and readme.exists():
        atomic_write_text(readme, render_readme(readme.read_text(), res))
    return dest / "results.json", readme


OVERVIEW_BEGIN = "<!-- overview:{profile}:begin (generated by `pretrainlab report`; do not edit) -->"
OVERVIEW_END = "<!-- overview:{profile}:end -->"


def overview_block(committed: Mapping[str, Mapping[str, Any]], make_run: Mapping[str, Any] | None,
                   profile: str = "tiny", digits: int = 3) -> str:
    """The top-level README's table: each domain's headline verdict and claim counts from its
    committed results, and what ``make run`` measured when its summary was committed."""
    lines = [("| domain | headline claim | verdict | effect [95 % CI] | seeds | claims: holds / inconclusive / "
             "contradicted | CPU time (s) |"), "|---|---|---|---|---|---|---|"]
    for name, res in committed.items():
        head = headline_of(res)
        c = verdict_counts(res)
        cpu = res.get("cpu_time_s")
        if head is not None and head.get("ci"):
            eff = f"{head['effect']:+.{digits}f} [{head['ci'][0]:+.{digits}f}, {head['ci'][1]:+.{digits}f}]"
        else:
            eff = "n/a"
        link = ("shared/pretrainlab/core/builtin" if name == "simclr" else f"domains/pretrainlab/{name}") + "/README.md"
        cpu_txt = f"{cpu:.0f}" if cpu is not None else "n/a"
        lines.append(f"| [{name}]({link}) | {head['claim'] if head else 'none'} | **{head['verdict'] if head else 'n/a'}** | "
                     f"{eff} | {head.get('n', '') if head else ''} | {c['holds']} / {c['inconclusive']} / "
                     f"{c['contradicted']} | {cpu_txt} |")
    out = "\n".join(lines)
    if make_run:
        out += (f"\n\n`make run` ({make_run['profile']} profile, JOBS={make_run['jobs']}, {make_run.get('cpu_count')} CPU "
                f"cores, {make_run.get('machine')}, finished {make_run.get('finished_utc')} UTC): "
                f"**{make_run['wall_time_s'] / 60:.1f} min** for {len(make_run['domains'])} domains"
                + (f"; failed: {', '.join(make_run['failed'])}" if make_run.get("failed") else "") + ".")
    return out


def render_overview(text: str, block: str, profile: str = "tiny") -> str:
    begin = OVERVIEW_BEGIN.format(profile=profile)
    end = OVERVIEW_END.format(profile=profile)
    pat = re.compile(re.escape(begin.split(" (")[0]) + r".*?" + re.escape(end), re.DOTALL)
    if not pat.search(text):
        raise ValueError(f"the top-level README has no '{begin.split(' (')[0]}' ... '{end}' markers")
    return pat.sub(lambda _m: f"{begin}\n{block}\n{end}", text, count=1)


# ------------------------------------------------------------------------------------ the report

def finished_utc(path: Path) -> str:
    """When a results file was written (its modification time), to the minute, in UTC."""
    import datetime

    t = datetime.datetime.fromtimestamp(Path(path).stat().st_mtime, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M")


def write_report(paths: Sequence[Path], out: Path, failures: dict[str, str] | None = None) -> Path:
    """Aggregate several ``results.json`` into one markdown report with their tables and plots."""
    out = Path(out)
    parts = ["# pretrainlab reproduction report", "",
             "Verdicts from 95 % paired t intervals over seeds: holds / inconclusive / contradicted.", ""]
    summary = [("| domain | profile | device | seeds | wall time (s) | headline | holds / inconclusive / contradicted "
               "| finished (UTC) |"), "|---|---|---|---|---|---|---|---|"]
    sections = []
    for p in paths:
        res = json.loads(Path(p).read_text())
        c = verdict_counts(res)
        head = headline_of(res)
        summary.append(f"| {res['domain']} | {res['profile']} | {res['device']} | {len(res['seeds'])} | "
                       f"{res['wall_time_s']:.0f} | {head['verdict'] if head else 'none'} | "
                       f"{c['holds']} / {c['inconclusive']} / {c['contradicted']} | {finished_utc(Path(p))} |")
        rel = Path(p).parent
        try:
            rel = rel.relative_to(out.parent)
        except ValueError:
            pass
        sec = [f"## {res['domain']} — {res['paper']}", "", table_md(res), "", claims_md(res)]
        sec += [f"\n![{res['domain']} {pl}]({rel / pl})" for pl in res.get("plots", [])]
        sections.append("\n".join(sec))
    for name, why in (failures or {}).items():
        summary.append(f"| {name} | failed | | | | | {why} | |")
    parts += summary + [""] + sections
    atomic_write_text(out, "\n".join(parts) + "\n")
    return out
