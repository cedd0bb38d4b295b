"""Load test of the hub: N concurrent sessions (API clients) call every app's example endpoints for a
while against one hub server on 127.0.0.1, and each checks that it got its own, valid answer.

    python benchmarks/hub_load.py --sessions 8 --seconds 120            # the issue's load test
    python benchmarks/hub_load.py --sessions 2 --seconds 20 --only simclr

Each app that wants to be load-tested defines ``load_test_calls(sample_dir) -> [(api_name, inputs,
check)]`` (see apps/simclr/app.py). The script starts the hub (``apps/hub/app.py --port P``), warms every
endpoint once (checkpoints resolve, smoke models train), samples the server's resident memory (VmRSS
of the server process and its children) every second, then runs the sessions. It prints one JSON
line (RSS after the serial warm-up, at each quarter of the loaded run, peak) and exits 1 on any error,
any wrong answer, or RSS growth beyond ``--max-growth-mb`` after the first quarter of the loaded run
(the load's own warm-up: concurrent requests allocate thread pools and allocator arenas once).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, from /proc (Linux)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += float(line.split()[1]) / 1024
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            todo += [int(k) for k in kids]
        except OSError:
            continue
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--only", nargs="+", default=None, help="only these domains' tabs")
    ap.add_argument("--max-growth-mb", type=float, default=300.0,
                    help="allowed growth of the server's RSS after warm-up (default 300 MB)")
    ap.add_argument("--call-timeout", type=float, default=120.0,
                    help="seconds one call may take before it counts as an error (default 120)")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON summary here too")
    a = ap.parse_args(argv)

    from gradio_client import Client

    from pretrainlab.core.demo import load_app_module
    from pretrainlab.core.testing import free_port

    sys.path.insert(0, str(ROOT / "apps" / "hub"))
    hub = load_app_module("hub")
    names = [n for n in hub.available_apps() if a.only is None or n in a.only]
    sample_dir = Path(tempfile.mkdtemp(prefix="hub-load-"))
    calls = []
    for n in names:
        mod = load_app_module(n)
        if hasattr(mod, "load_test_calls"):
            calls += [(n, *c) for c in mod.load_test_calls(sample_dir)]
    if not calls:
        print("no app defines load_test_calls", file=sys.stderr)
        return 2
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, str(ROOT / "apps" / "hub" / "app.py"), "--port", str(port)]
    if a.only:
        cmd += ["--only", *a.only]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    errors: list[str] = []
    stats = {"calls": 0, "ok": 0}
    lock = threading.Lock()
    rss: list[tuple[float, float]] = []
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(600):
            try:
                client = Client(url, verbose=False)
                break
            except Exception:  # noqa: BLE001 - not up yet
                if server.poll() is not None:
                    raise SystemExit(f"hub exited: {server.stderr.read()[-2000:] if server.stderr else ''}") from None
                time.sleep(1)
        else:
            raise SystemExit("hub did not start within 600 s")
        t_warm = time.time()
        for dom, api, inputs, check in calls:  # warm-up: checkpoints resolve, smoke models train once
            out = client.predict(*inputs, api_name=f"/{api}")
            if not check(out):
                errors.append(f"warm-up {dom} /{api}: unexpected answer {str(out)[:200]}")
        warm_s = time.time() - t_warm
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                rss.append((time.time(), _rss_mb(server.pid)))
                stop.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        base = _rss_mb(server.pid)
        deadline = time.time() + a.seconds

        def session(i: int) -> None:
            rng = random.Random(i)
            c = Client(url, verbose=False)
            while time.time() < deadline:
                dom, api, inputs, check = rng.choice(calls)
                job = None
                try:
                    job = c.submit(*inputs, api_name=f"/{api}")
                    out = job.result(timeout=a.call_timeout)  # a lost request is an error, not a hang
                    good = check(out)
                except TimeoutError:
                    good, out = False, f"no answer within {a.call_timeout:.0f} s (request lost or stuck)"
                    if job is not None:
                        job.cancel()
                except Exception as e:  # noqa: BLE001 - any failure is a finding
                    good, out = False, f"{type(e).__name__}: {e}"
                with lock:
                    stats["calls"] += 1
                    stats["ok"] += int(bool(good))
                    if not good:
                        errors.append(f"session {i} {dom} /{api}: {str(out)[:200]}")

        threads = [threading.Thread(target=session, args=(i,)) for i in range(a.sessions)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - t0
        stop.set()
        sampler.join()
        peak = max(v for _, v in rss) if rss else base
        # the first quarter of the loaded run is the load's own warm-up (8 concurrent sessions allocate thread
        # pools, allocator arenas and per-request buffers once); growth is measured after it
        q1 = t0 + elapsed / 4
        settled = [v for t, v in rss if t >= q1] or [base]
        quarters = [next((v for t, v in rss if t >= t0 + elapsed * k / 4), rss[-1][1] if rss else base)
                    for k in (1, 2, 3)] + [rss[-1][1] if rss else base]
        summary = {"sessions": a.sessions, "seconds": round(elapsed, 1), "apps": names, "endpoints": len(calls),
                   "calls": stats["calls"], "ok": stats["ok"], "errors": len(errors), "warm_up_s": round(warm_s, 1),
                   "rss_after_warmup_mb": round(base, 1), "rss_peak_mb": round(peak, 1),
                   "rss_end_mb": round(rss[-1][1], 1) if rss else None,
                   "rss_quarters_mb": [round(v, 1) for v in quarters],
                   "growth_after_first_quarter_mb": round(max(settled) - settled[0], 1),
                   "max_growth_mb": a.max_growth_mb, "calls_per_s": round(stats["calls"] / max(1e-9, elapsed), 2)}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    print(json.dumps(summary))
    for e in errors[:20]:
        print("error:", e, file=sys.stderr)
    if a.out:
        a.out.write_text(json.dumps({**summary, "error_samples": errors[:20]}, indent=2))
    grew = summary["growth_after_first_quarter_mb"]
    if grew > a.max_growth_mb:
        print(f"error: under steady load the server's memory grew by {grew:.0f} MB, over the {a.max_growth_mb:.0f} MB "
              "bound", file=sys.stderr)
    return 0 if not errors and stats["calls"] > 0 and grew <= a.max_growth_mb else 1


if __name__ == "__main__":
    sys.exit(main())
