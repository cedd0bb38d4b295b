"""``pretrainlab clip bench``: training-step throughput / memory, and the open_clip peer comparison.

1. Step benchmark (``pretrainlab.core.bench.bench_task``) of the chosen objective (default the
   CLIP-rocket recipe: 3 image views + 3 captions per sample) on a GPU-sized model on CUDA
   (ViT-B-32, batch 256) or ``clip-nano`` on a CPU; data loading excluded.
2. ``--peer``: end-to-end training samples/s of ``pretrainlab clip pretrain`` (objective ``clip``, the
   trainer with its data loader, one worker) against ``python -m open_clip_train.main`` (its training
   loop with ``--dataset-type synthetic``, one worker) on the same model config, batch size, precision
   and step count. Each measurement is a whole process; the two are alternated ``--pairs`` times
   (ours first on even pairs, open_clip first on odd ones, so drifting machine load hits both
   alike) and the report gives every pair's ratio, their median and range, and the load average.
   Both rates are batch size / mean step time of the last log window (a third of the steps), so
   start-up and the first steps are excluded on both sides (open_clip's own per-line "/s" figure uses
   the last batch only, so we parse its windowed "Batch (t)" mean instead).

Deviation: open_clip's synthetic dataset is one random PIL image re-transformed per sample, ours is
the generated scene set (decoded once, crops taken per sample from the full-resolution image); both
are reported as data + step throughput, which is what a user of each trainer gets.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PEER_LINE = re.compile(r"Batch \(t\): ([0-9.]+), ([0-9.e+]+)/s")
TINY_MODELS = ("clip-nano", "test-vit-tiny", "test-vit-small", "test-rn-tiny")


def _step_bench(a: argparse.Namespace, model: str, bs: int) -> dict[str, Any]:
    import torch

    from pretrainlab.clip.pipeline import load
    from pretrainlab.clip.task import CLIPRocketTask
    from pretrainlab.core.bench import bench_task

    tiny = model in TINY_MODELS
    cfg = load(a.objective, "tiny" if tiny else "full", [f"model.name={model}"])  # full: the paper's head widths
    task = CLIPRocketTask(cfg)
    s, n_txt, n_views = task.image_size, task.num_texts, 1 + task.num_aug_views

    def make_batch() -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        return {"image": torch.randint(0, 256, (bs, n_views, 3, s, s), dtype=torch.uint8, generator=g),
                "text": torch.randint(1, 49000, (bs, n_txt, task.context_length), generator=g)}

    return bench_task(task, make_batch, steps=a.steps, warmup=a.warmup, device=a.device, precision=a.precision,
                      compile=a.compile, name=f"clip-{a.objective}-{model}",
                      extra={"model": model, "objective": a.objective, "views_per_sample": n_views})


def _run(argv: list[str], timeout: int = 3600) -> tuple[int, str, float]:
    t0 = time.time()
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    return proc.returncode, proc.stdout + proc.stderr, time.time() - t0


def ours_process(model: str, bs: int, steps: int, device: str, precision: str, data: Path) -> dict[str, Any]:
    """One ``pretrainlab clip pretrain`` process; samples/s of its last log window."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        argv = [sys.executable, "-m", "pretrainlab.core.cli", "clip", "pretrain", "--config", "clip", "--profile", "tiny",
                "--data", str(data), "--out", str(run), f"model.name={model}", f"train.batch_size={bs}",
                f"train.max_steps={steps}", f"train.device={device}", f"train.precision={precision}",
                "train.progress=false", f"train.log_every={max(1, steps // 3)}", "train.warmup_steps=0",
                "train.tensorboard=false", "train.num_workers=1", "train.ckpt_every=0"]
        code, text, wall = _run(argv)
        rows = []
        if (run / "metrics.jsonl").exists():
            rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    if code != 0 or not rows:
        return {"trainer": "pretrainlab clip pretrain", "error": f"exit {code}: {text.strip()[-400:]}"}
    return {"trainer": "pretrainlab clip pretrain", "samples_per_s": float(rows[-1]["samples_per_s"]), "wall_s": wall}


def peer_process(model: str, bs: int, steps: int, device: str, precision: str) -> dict[str, Any]:
    """One ``open_clip_train.main`` process (the domain's configs registered); its last window's samples/s."""
    prec = {"bf16": "amp_bf16", "fp32": "fp32"}.get(precision, "amp_bf16" if device.startswith("cuda") else "fp32")
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["--dataset-type", "synthetic", "--train-num-samples", str(bs * steps), "--batch-size", str(bs),
                "--model", model, "--epochs", "1", "--lr", "1e-3", "--warmup", "0", "--workers", "1",
                "--precision", prec, "--log-every-n-steps", str(max(1, steps // 3)), "--logs", tmp,
                "--report-to", "", "--save-frequency", "0", "--name", "peer"]
        if not device.startswith("cuda"):
            argv += ["--device", "cpu"]
        code = ("import sys; from pretrainlab.clip.models import register_domain_configs; register_domain_configs(); "
                "from open_clip_train.main import main; main(sys.argv[1:])")
        rc, text, wall = _run([sys.executable, "-c", code, *argv])
    # "Batch (t): AVG, RATE/s": AVG is the mean step time (data included) since the previous log line
    # (open_clip resets its meters after each log); RATE uses the last batch only.
    rates = [bs / float(m.group(1)) for m in PEER_LINE.finditer(text) if float(m.group(1)) > 0]
    if rc != 0 or not rates:
        return {"trainer": "open_clip_train.main", "error": f"exit {rc}: {text.strip()[-400:]}"}
    return {"trainer": "open_clip_train.main", "samples_per_s": rates[-1], "wall_s": wall}


def peer_pairs(model: str, bs: int, steps: int, device: str, precision: str, pairs: int) -> dict[str, Any]:
    """``pairs`` alternated (ours, open_clip) process pairs -> every ratio, median, range."""
    from pretrainlab.clip.pipeline import synthetic_data
    from pretrainlab.core.data import DataError

    data = synthetic_data("tiny")
    runs = []
    for i in range(pairs):
        load0 = os.getloadavg()[0]
        if i % 2 == 0:
            ours = ours_process(model, bs, steps, device, precision, data)
            peer = peer_process(model, bs, steps, device, precision)
        else:
            peer = peer_process(model, bs, steps, device, precision)
            ours = ours_process(model, bs, steps, device, precision, data)
        for r in (ours, peer):
            if "error" in r:
                raise DataError(r["trainer"], f"benchmark process failed: {r['error']}")
        runs.append({"pair": i, "ours_first": i % 2 == 0, "ours": ours["samples_per_s"], "open_clip": peer["samples_per_s"],
                     "ratio": ours["samples_per_s"] / peer["samples_per_s"], "load_avg_1min": load0})
        print(f"pair {i + 1}/{pairs}: pretrain {ours['samples_per_s']:.1f} / open_clip {peer['samples_per_s']:.1f} samples/s "
              f"= {runs[-1]['ratio']:.2f} (load {load0:.1f})", file=sys.stderr)
    ratios = [r["ratio"] for r in runs]
    return {"model": model, "batch_size": bs, "steps": steps, "device": device, "precision": precision, "pairs": runs,
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "ours_median": statistics.median(r["ours"] for r in runs),
            "open_clip_median": statistics.median(r["open_clip"] for r in runs),
            "cpu_count": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def run_bench(a: argparse.Namespace) -> dict[str, Any]:
    from pretrainlab.core.bench import report
    from pretrainlab.core.config import ConfigError
    from pretrainlab.core.train import select_device

    for key, v, lo in (("--steps", a.steps, 1), ("--warmup", a.warmup, 0), ("--peer-steps", a.peer_steps, 3),
                       ("--pairs", a.pairs, 1), ("--batch-size", a.batch_size if a.batch_size is not None else 1, 1)):
        if v < lo:
            raise ConfigError(f"{key}: {v} is not allowed; expected >= {lo}")
    dev = select_device(a.device)
    model = a.model or ("ViT-B-32" if dev.type == "cuda" else "clip-nano")
    bs = a.batch_size or (256 if dev.type == "cuda" else 48)
    res: dict[str, Any] = {"step": _step_bench(a, model, bs)}
    if a.peer:
        res["peer"] = p = peer_pairs(model, bs, a.peer_steps, str(dev), a.precision, a.pairs)
        print(f"pretrain / open_clip_train over {a.pairs} alternated process pairs: median {p['ratio_median']:.2f} "
              f"(range {p['ratio_min']:.2f}-{p['ratio_max']:.2f})", file=sys.stderr)
    report(res, a.out)
    return res
