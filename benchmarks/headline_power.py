"""What it would take to decide each domain's headline: seeds and CPU time at the committed spread.

    python benchmarks/headline_power.py [--domains lidar clip] [--budget-min 15] [--json FILE]

For the headline claim of every committed tiny table (``domains/pretrainlab/<d>/results/tiny/results.json``)
it recomputes the per-seed differences from the rows' values and prints: seeds, effect, 95 % paired
interval, the standard deviation of the difference, and the seeds a 95 % interval of a given
half-width would need at that spread (``core.stats.seeds_for_half_width``), with the CPU time at the
table's measured cost per seed (``cpu_time_s`` / seeds: a planning figure, it counts the whole table,
rows other than the headline's and any one-off pre-training included) for two half-widths: the
measured ``|effect|`` (what a decisive interval would need if the true effect were the measured one;
pairwise claims) and half of today's half-width.

The measured spread of a few seeds is itself uncertain; these are planning figures, not results.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from pretrainlab.core.results import headline_of, paired_values
from pretrainlab.core.stats import paired_interval, seeds_for_half_width

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = ("lidar", "clip", "ct", "speech", "geo", "face", "isp")


def plan(results: dict, budget_min: float) -> dict:
    c = headline_of(results)
    if c is None:
        raise SystemExit(f"{results['domain']}: no headline claim")
    _, a, b = paired_values(results["rows"], c["a"], c["b"], c["metric"])
    iv = paired_interval(a, b, c.get("better", "higher"))
    sd = statistics.stdev(iv.diffs)
    per_seed_min = results["cpu_time_s"] / len(results["seeds"]) / 60
    out = {"domain": results["domain"], "verdict": c["verdict"], "n": iv.n, "effect": iv.effect, "ci": [iv.lo, iv.hi],
           "sd": sd, "cpu_min_per_seed": per_seed_min, "plans": []}
    margin = c.get("margin", 0.0) if c.get("kind") == "pairwise" else None
    targets = []
    if margin is not None and abs(iv.effect - margin) > 0:
        targets.append(("|effect|", abs(iv.effect - margin)))
    targets.append(("half today's", iv.half_width / 2))
    for label, h in targets:
        n = seeds_for_half_width(sd, h) if sd > 0 else 2
        out["plans"].append({"half_width": h, "label": label, "seeds": n, "cpu_min": n * per_seed_min,
                             "within_budget": n * per_seed_min <= budget_min})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domains", nargs="*", default=list(DOMAINS))
    ap.add_argument("--budget-min", type=float, default=15.0, help="per-domain CPU budget of a tiny table (minutes)")
    ap.add_argument("--json", type=Path, help="also write the plans here")
    args = ap.parse_args(argv)
    plans = []
    for d in args.domains:
        path = ROOT / "domains" / "pretrainlab" / d / "results" / "tiny" / "results.json"
        p = plan(json.loads(path.read_text()), args.budget_min)
        plans.append(p)
        print(f"{d:7s} {p['verdict']:13s} n={p['n']:2d} effect {p['effect']:+.4g} 95% [{p['ci'][0]:+.4g}, "
              f"{p['ci'][1]:+.4g}] sd {p['sd']:.4g}; {p['cpu_min_per_seed']:.2f} CPU-min per seed")
        for q in p["plans"]:
            print(f"        half-width {q['half_width']:.4g} ({q['label']}): {q['seeds']} seeds, "
                  f"~{q['cpu_min']:.0f} CPU-min{'' if q['within_budget'] else f' (over the {args.budget_min:g}-min budget)'}")
    if args.json:
        args.json.write_text(json.dumps(plans, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
