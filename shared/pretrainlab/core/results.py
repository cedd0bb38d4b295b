"""Reproduction results: one JSON schema for every domain, ``results.md``, plots, the report.

``results.json``::

    {"domain", "paper", "profile", "device", "seeds": [...], "wall_time_s",
     "rows": [{"name": str, "metrics": {metric: {"mean", "std", "values": [...]}}}],
     "claims": [{"claim": str, "holds": bool, "evidence": str}],
     "deviations": [str, ...], "paper_numbers": {...}}          # the last two are optional
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pretrainlab.core.io import atomic_write_json, atomic_write_text

REQUIRED = ("domain", "paper", "profile", "device", "seeds", "wall_time_s", "rows", "claims")


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "values"}`` with the sample standard deviation (0 for one value)."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("no values to summarise")
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return {"mean": statistics.fmean(vals), "std": std, "values": vals}


def row(name: str, metrics: dict[str, Sequence[float]], **extra: Any) -> dict[str, Any]:
    """One table row from per-seed metric values."""
    return {"name": name, "metrics": {k: summarize(v) for k, v in metrics.items()}, **extra}


def claim(text: str, holds: bool, evidence: str) -> dict[str, Any]:
    return {"claim": text, "holds": bool(holds), "evidence": evidence}


def validate(results: dict[str, Any]) -> None:
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
    for c in results["claims"]:
        if not {"claim", "holds", "evidence"} <= set(c) or not isinstance(c["holds"], bool):
            raise ValueError(f"claim {c!r} is malformed")


def _fmt(s: dict[str, Any], digits: int = 3) -> str:
    if s["mean"] is None or (isinstance(s["mean"], float) and math.isnan(s["mean"])):
        return "n/a"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def table_md(results: dict[str, Any], digits: int = 3) -> str:
    metrics: list[str] = []
    for r in results["rows"]:
        for m in r["metrics"]:
            if m not in metrics:
                metrics.append(m)
    lines = ["| row | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for r in results["rows"]:
        cells = [_fmt(r["metrics"][m], digits) if m in r["metrics"] else "" for m in metrics]
        lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_md(results: dict[str, Any], extra: str = "") -> str:
    out = [f"# {results['domain']}: reproduction ({results['profile']} profile)", "",
           f"Paper: {results['paper']}", "",
           f"Device: {results['device']}; seeds: {results['seeds']}; wall time: {results['wall_time_s']:.0f} s", "",
           "Mean ± sample standard deviation over seeds.", "", table_md(results), "", "## Claims", ""]
    for c in results["claims"]:
        out.append(f"- **{'holds' if c['holds'] else 'does not hold'}**: {c['claim']} — {c['evidence']}")
    if results.get("paper_numbers"):
        out += ["", "## The paper's numbers (for comparison; different data and scale)", "",
                "```", json.dumps(results["paper_numbers"], indent=2), "```"]
    if results.get("deviations"):
        out += ["", "## Deviations from the paper", ""] + [f"- {d}" for d in results["deviations"]]
    for p in results.get("plots", []):
        out += ["", f"![{Path(p).stem}]({p})"]
    if extra:
        out += ["", extra]
    return "\n".join(out) + "\n"


def bar_plot(results: dict[str, Any], metric: str, path: Path, title: str | None = None) -> Path:
    """Mean ± std of one metric per row, as a PNG."""
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


def finished_utc(path: Path) -> str:
    """When a results file was written (its modification time), to the minute, in UTC."""
    import datetime

    t = datetime.datetime.fromtimestamp(Path(path).stat().st_mtime, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M")


def write_report(paths: Sequence[Path], out: Path, failures: dict[str, str] | None = None) -> Path:
    """Aggregate several ``results.json`` into one markdown report with their tables and plots."""
    out = Path(out)
    parts = ["# pretrainlab reproduction report", ""]
    summary = ["| domain | profile | device | seeds | wall time (s) | claims holding | finished (UTC) |",
               "|---|---|---|---|---|---|---|"]
    sections = []
    for p in paths:
        res = json.loads(Path(p).read_text())
        held = sum(c["holds"] for c in res["claims"])
        summary.append(f"| {res['domain']} | {res['profile']} | {res['device']} | {len(res['seeds'])} | "
                       f"{res['wall_time_s']:.0f} | {held}/{len(res['claims'])} | {finished_utc(Path(p))} |")
        rel = Path(p).parent
        try:
            rel = rel.relative_to(out.parent)
        except ValueError:
            pass
        sec = [f"## {res['domain']} — {res['paper']}", "", table_md(res), ""]
        sec += [f"- {'holds' if c['holds'] else 'does not hold'}: {c['claim']} ({c['evidence']})" for c in res["claims"]]
        sec += [f"\n![{res['domain']} {pl}]({rel / pl})" for pl in res.get("plots", [])]
        sections.append("\n".join(sec))
    for name, why in (failures or {}).items():
        summary.append(f"| {name} | failed | | | | {why} | |")
    parts += summary + [""] + sections
    atomic_write_text(out, "\n".join(parts) + "\n")
    return out
