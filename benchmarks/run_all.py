"""Run every installed domain's ``bench`` verb (each in its own process) and print one table.

    python benchmarks/run_all.py --device cpu --steps 5            # make bench
    python benchmarks/run_all.py --device cuda --precision bf16 --steps 200   # scripts/device_check.sh

Each domain writes ``<out>/<domain>.json`` (samples/s, step time, peak memory, device, config);
the table and ``<out>/summary.json`` gather them. A domain that fails or runs past ``--timeout``
is listed with its error and the rest go on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from pretrainlab.core.cli import domains

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="auto")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--only", nargs="+", default=None)
    p.add_argument("--timeout", type=float, default=300, help="seconds per domain")
    p.add_argument("--out", type=Path, default=Path("runs/bench"))
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    names = [n for n in domains() if a.only is None or n in a.only]
    rows: list[dict] = []
    t_all = time.time()
    for name in names:
        out = a.out / f"{name}.json"
        out.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "pretrainlab.core.cli", name, "bench", "--device", a.device, "--precision",
               a.precision, "--steps", str(a.steps), "--warmup", str(a.warmup), "--out", str(out)]
        if a.compile:
            cmd.append("--compile")
        print(f"== {name}: {' '.join(cmd[3:])}", flush=True)
        t0 = time.time()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout, check=False)
            err = "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]
        except subprocess.TimeoutExpired:
            err = f"timed out after {a.timeout:.0f} s"
        wall = time.time() - t0
        if not err and out.exists():
            res = json.loads(out.read_text())
            for r in res if isinstance(res, list) else [res]:
                rows.append({"domain": name, **r, "wall_s": wall})
        else:
            rows.append({"domain": name, "error": err or "no output", "wall_s": wall})
    lines = [f"{'domain':8s} {'benchmark':28s} {'batch':>5s} {'samples/s':>10s} {'step ms':>8s} {'peak MB':>9s}  device"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['domain']:8s} FAILED: {r['error']}")
            continue
        lines.append(f"{r['domain']:8s} {str(r.get('name', ''))[:28]:28s} {r.get('batch_size', 0):>5} "
                     f"{r.get('samples_per_s', 0):>10.1f} {1000 * r.get('step_time_s', 0):>8.1f} "
                     f"{r.get('peak_mem_mb', 0):>9.0f}  {r.get('device', '')} {r.get('precision', '')}")
    table = "\n".join(lines)
    print(table)
    print(f"benchmarked {len(names)} domains in {time.time() - t_all:.0f} s")
    (a.out / "summary.json").write_text(json.dumps(rows, indent=2))
    (a.out / "summary.txt").write_text(table + "\n")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
