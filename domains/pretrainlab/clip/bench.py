"""``pretrainlab clip bench``: training-step throughput / memory, and the open_clip peer comparison.

1. Step benchmark (``pretrainlab.core.bench.bench_task``) of the chosen objective (default the
   CLIP-rocket recipe: 3 image views + 3 captions per sample) on a GPU-sized model on CUDA
   (ViT-B-32, batch 256) or ``clip-nano`` on a CPU; data loading excluded.
2. ``--peer``: end-to-end training samples/s of ``pretrainlab clip pretrain`` (objective ``clip``)
   against ``python -m open_clip_train.main`` on the same data (the first ``steps x batch`` pairs of the
   generated tiny set's open_clip CSV, ``--dataset-type csv``: one pass), model config, batch size,
   precision and step count. Each measurement is a whole process; the two are alternated ``--pairs``
   times (ours first on even pairs, open_clip first on odd ones, so drifting machine load hits both
   alike) and the report gives every pair's ratio, their median and range, and the load average.
   Both rates are steady-state samples/s: both trainers log every ``steps // 12`` steps and the rate of
   a process is that of its median log window among those after the first third of the steps
   (start-up, worker start and the first steps excluded on both sides; a burst of load from other
   work on a shared machine spoils a few windows, not the median), from our ``metrics.jsonl`` (wall
   time between log rows) and from open_clip's "Batch (t)" window means (wall time per step, data
   wait included, printed to the millisecond: about +-1.5 % on a clip-nano step; its per-line "/s"
   figure uses the last batch only).

What each side does per step inside those windows (the same model, batch, loss and optimizer):

* data, one DataLoader worker each, decoding every JPEG per sample (ours with ``data.preload=false``,
  so neither side decodes the set up front): ours reads the CSV record, decodes, takes the bicubic
  ``RandomResizedCrop`` (scale ``image_aug.global_scale`` = 0.5-1, torchvision's algorithm) from the
  full-resolution image to uint8, tokenises the caption (open_clip's tokenizer ids, word-cached) and the
  trainer reseeds the worker's RNGs from (seed, epoch, index) per item (exact resume); open_clip decodes,
  takes the same crop (``--aug-cfg scale=`` ours), converts to a normalised float tensor and tokenises.
* main process: ours converts the uint8 batch to float and normalises it, runs ``encode_image`` /
  ``encode_text`` (open_clip's own forward), the CLIP loss (``rocket_loss`` without augmented pairs:
  the value and gradients of open_clip's ``ClipLoss``, ``tests/clip/test_method.py``), backward, the
  global gradient norm and loss finiteness check (one host sync; the trainer's non-finite-step skip,
  which open_clip does not have), the AdamW step with torch's fused kernel (``train.fused_optimizer``,
  on in the clip config: one pass over each tensor; the same update up to float rounding),
  ``zero_grad``, the logit-scale clamp and sums its 4 scalar outputs on the device; open_clip runs
  ``model(images, texts)``, ``ClipLoss``, backward, AdamW (torch's default implementation, foreach)
  and the clamp. Both log every ``steps // 12`` steps (ours a
  ``metrics.jsonl`` row, open_clip its ``.item()`` calls and log line); neither checkpoints or
  evaluates inside the windows (``train.ckpt_every=0`` / ``--save-frequency 0``).

Remaining differences: the learning rate / weight decay / Adam epsilon of each trainer's defaults (no
effect on the work done), the prefetch depth (ours 4 batches, open_clip 2), the finiteness check
above (1-2 % of a clip-nano step) and the AdamW kernel (fused vs foreach: the speed-up this trainer
chose, about 7 ms of a ~35 ms clip-nano step, whose parameters are mostly the 49408 x 32 token
embedding).
"""

from __future__ import annotations

import argparse
import io
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

from pretrainlab.clip import api
from pretrainlab.core.data import DataError

TINY_MODELS = ("clip-nano", "test-vit-tiny", "test-vit-small", "test-rn-tiny")


def _step_batch(task: Any, bs: int) -> dict[str, Any]:
    import torch

    s, n_txt, n_views = task.image_size, task.num_texts, 1 + task.num_aug_views
    g = torch.Generator().manual_seed(0)
    return {"image": torch.randint(0, 256, (bs, n_views, 3, s, s), dtype=torch.uint8, generator=g),
            "text": torch.randint(1, 49000, (bs, n_txt, task.context_length), generator=g)}


def bench(device: str = "auto", steps: int = 20, warmup: int = 3, batch_size: int | None = None,
          precision: str = "auto", compile: bool = False, model: str | None = None,
          objective: str = "rocket") -> list[dict[str, Any]]:
    """The trainer's own step (``core.bench.bench_task``) of ``objective`` (default the CLIP-rocket recipe:
    3 views + 3 captions per sample) on ViT-B-32 (CUDA, batch 256) or clip-nano (CPU, batch 48);
    data loading excluded."""
    from pretrainlab.core.bench import bench_task
    from pretrainlab.core.train import select_device

    dev = select_device(device)
    model = model or ("ViT-B-32" if dev.type == "cuda" else "clip-nano")
    bs = batch_size or (256 if dev.type == "cuda" else 48)
    cfg = api.load(objective, "tiny" if model in TINY_MODELS else "full", [f"model.name={model}"])
    task = api.build_task(cfg)
    return [bench_task(task, lambda: _step_batch(task, bs), steps=steps, warmup=warmup, device=device,
                       precision=precision, compile=compile, name=f"clip-{objective}-{model}", train=cfg.train,
                       extra={"model": model, "objective": objective, "views_per_sample": 1 + task.num_aug_views})]


def _run(argv: list[str], timeout: int = 3600, cwd: Path | None = None) -> tuple[int, str, float]:
    t0 = time.time()
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, env=env, cwd=cwd)
    return proc.returncode, proc.stdout + proc.stderr, time.time() - t0


def _log_every(steps: int) -> int:
    """Steps per log window of both trainers: about 12 windows per run (8 of them kept)."""
    return max(1, steps // 12)


def _steady_rate(windows: list[tuple[int, int, float]], skip_until: int) -> float:
    """Steps/s of the median log window ``(first step, last step, seconds)`` among those that start after
    ``skip_until`` (a burst of load on the shared machine spoils a few windows, not the median)."""
    rates = [(b - a + 1) / t for a, b, t in windows if a > skip_until and t > 0]
    return statistics.median(rates) if rates else float("nan")


def ours_process(model: str, bs: int, steps: int, device: str, precision: str, data: Path) -> dict[str, Any]:
    """One ``pretrainlab clip pretrain`` process on the CSV ``data``; steady-state samples/s (the median
    log window after the first third of the steps)."""
    log = _log_every(steps)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        argv = [sys.executable, "-m", "pretrainlab.core.cli", "clip", "pretrain", "--config", "clip", "--profile", "tiny",
                "--data", str(data), "--out", str(run), f"model.name={model}", f"train.batch_size={bs}",
                f"train.max_steps={steps}", f"train.device={device}", f"train.precision={precision}",
                "train.progress=false", f"train.log_every={log}", "train.warmup_steps=0",
                "train.tensorboard=false", "train.num_workers=1", "train.ckpt_every=0", "data.preload=false"]
        code, text, wall = _run(argv)
        rows = []
        if (run / "metrics.jsonl").exists():
            rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    if code != 0 or not rows:
        return {"trainer": "pretrainlab clip pretrain", "error": f"exit {code}: {text.strip()[-400:]}"}
    windows, prev = [], 0
    for r in rows:  # each row: samples/s over the steps since the previous row
        n = int(r["step"]) - prev
        windows.append((prev + 1, int(r["step"]), n * bs / float(r["samples_per_s"])))
        prev = int(r["step"])
    return {"trainer": "pretrainlab clip pretrain", "samples_per_s": bs * _steady_rate(windows, steps // 3), "wall_s": wall}


PEER_WINDOW = re.compile(r"\[\s*(\d+)/\d+ \(\s*[0-9.]+%\)\] Data \(t\): [0-9.]+ Batch \(t\): ([0-9.]+)")


def peer_process(model: str, bs: int, steps: int, device: str, precision: str, data: Path) -> dict[str, Any]:
    """One ``open_clip_train.main`` process (the domain's configs registered) on the same open_clip CSV
    (``--dataset-type csv``: one epoch = ``steps`` batches); steady-state samples/s from its log lines
    ("Batch (t)" is the mean step time since the previous line), median window after the first third."""
    prec = {"bf16": "amp_bf16", "fp32": "fp32"}.get(precision, "amp_bf16" if device.startswith("cuda") else "fp32")
    log = _log_every(steps)
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["--dataset-type", "csv", "--train-data", str(data), "--csv-img-key", "filepath",
                "--csv-caption-key", "title", "--batch-size", str(bs),
                "--model", model, "--epochs", "1", "--lr", "1e-3", "--warmup", "0", "--workers", "1",
                "--precision", prec, "--log-every-n-steps", str(log), "--logs", tmp,
                "--report-to", "", "--save-frequency", "0", "--name", "peer",
                "--aug-cfg", f"scale={tuple(api.load('clip', 'tiny').image_aug.global_scale)}"]  # our crop scale
        if not device.startswith("cuda"):
            argv += ["--device", "cpu"]
        code = ("import sys; from pretrainlab.clip.api import register_models; register_models(); "
                "from open_clip_train.main import main; main(sys.argv[1:])")
        rc, text, wall = _run([sys.executable, "-c", code, *argv])
    windows, prev = [], 0
    for m in PEER_WINDOW.finditer(text):
        done = int(m.group(1)) // bs  # batches seen so far
        windows.append((prev + 1, done, (done - prev) * float(m.group(2))))
        prev = done
    if rc != 0 or not windows:
        return {"trainer": "open_clip_train.main", "error": f"exit {rc}: {text.strip()[-400:]}"}
    return {"trainer": "open_clip_train.main", "samples_per_s": bs * _steady_rate(windows, steps // 3), "wall_s": wall}


def _subset_csv(src: Path, n: int, out: Path) -> Path:
    """The first ``n`` pairs of an open_clip CSV, with absolute image paths (both trainers read it)."""
    lines = src.read_text(encoding="utf-8").splitlines()
    if len(lines) - 1 < n:
        raise DataError(src, f"holds {len(lines) - 1} pairs; --peer-steps x --batch-size needs {n}")
    rows = [f"{(src.parent / r.split(chr(9))[0]).resolve()}\t{r.split(chr(9), 1)[1]}" for r in lines[1:n + 1]]
    out.write_text("\n".join([lines[0], *rows]) + "\n", encoding="utf-8")
    return out


def peer_pairs(model: str, bs: int, steps: int, device: str, precision: str, pairs: int) -> dict[str, Any]:
    """``pairs`` alternated (ours, open_clip) process pairs -> every ratio, median, range."""
    tmp = tempfile.TemporaryDirectory()
    data = _subset_csv(api.synthetic_data("tiny") / "train.csv", bs * steps, Path(tmp.name) / "pairs.csv")
    runs = []
    for i in range(pairs):
        load0 = os.getloadavg()[0]
        if i % 2 == 0:
            ours = ours_process(model, bs, steps, device, precision, data)
            peer = peer_process(model, bs, steps, device, precision, data)
        else:
            peer = peer_process(model, bs, steps, device, precision, data)
            ours = ours_process(model, bs, steps, device, precision, data)
        for r in (ours, peer):
            if "error" in r:
                raise DataError(r["trainer"], f"benchmark process failed: {r['error']}")
        runs.append({"pair": i, "ours_first": i % 2 == 0, "ours": ours["samples_per_s"], "open_clip": peer["samples_per_s"],
                     "ratio": ours["samples_per_s"] / peer["samples_per_s"], "load_avg_1min": load0})
        print(f"pair {i + 1}/{pairs}: pretrain {ours['samples_per_s']:.1f} / open_clip {peer['samples_per_s']:.1f} samples/s "
              f"= {runs[-1]['ratio']:.2f} (load {load0:.1f})", file=sys.stderr)
    tmp.cleanup()
    ratios = [r["ratio"] for r in runs]
    return {"model": model, "batch_size": bs, "steps": steps, "device": device, "precision": precision, "pairs": runs,
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "ours_median": statistics.median(r["ours"] for r in runs),
            "open_clip_median": statistics.median(r["open_clip"] for r in runs),
            "cpu_count": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def _write_pairs(root: Path, n: int, per_shard: int = 1000) -> None:
    """``n`` small smooth JPEG pairs as an open_clip CSV (``images/``) and webdataset shards."""
    import numpy as np
    from PIL import Image

    (root / "images").mkdir(parents=True, exist_ok=True)
    shards = api.shard_writer(root / "shards", "train", per_shard)
    ramp = np.linspace(0, 255, 64, dtype=np.float32)
    lines = ["filepath\ttitle"]
    for i in range(n):
        arr = np.stack([np.broadcast_to(ramp, (48, 64)), np.full((48, 64), i % 256, np.float32),
                        np.broadcast_to(ramp[::-1], (48, 64))], axis=-1).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=85)
        data, cap = buf.getvalue(), f"a smooth gradient number {i} with {i % 7} stripes"
        (root / "images" / f"{i:07d}.jpg").write_bytes(data)
        lines.append(f"images/{i:07d}.jpg\t{cap}")
        shards.write(f"{i:07d}", {"jpg": data, "txt": cap.encode()})
    shards.close()
    (root / "train.csv").write_text("\n".join(lines) + "\n")


def _rss_kb() -> tuple[int, int]:
    """(VmRSS now, VmHWM peak) of this process in KiB (Linux /proc)."""
    vals = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                vals[line.split(":")[0]] = int(line.split()[1])
    return vals.get("VmRSS", 0), vals.get("VmHWM", 0)


def _epoch_rss(source: str, n: int, workers: int, batch: int) -> dict[str, Any]:
    """Stream one epoch of ``source`` through the training dataset of the full recipe (preload off,
    CLIP-rocket views and captions) in a fresh process; peak RSS of the process and of its workers."""
    code = f"""
import json, resource, sys, time, torch
from pretrainlab.clip.bench import _rss_kb
from pretrainlab.clip.api import build_dataset, build_task, load
cfg = load("rocket", "full", ["model.name=clip-nano", "model.mlp_hidden=32", "data.preload=false"])
task = build_task(cfg)
before = _rss_kb()[0]
t0 = time.time()
ds = build_dataset(cfg, {source!r}, task, progress=False)
index_s = time.time() - t0
after_index = _rss_kb()[0]
loader = torch.utils.data.DataLoader(ds, batch_size={batch}, num_workers={workers}, shuffle=False if
    isinstance(ds, torch.utils.data.IterableDataset) else True)
seen = 0
for b in loader:
    seen += b["image"].shape[0]
    if seen >= {n}:
        break
del loader
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({{"samples": seen, "rss_model_kb": before, "rss_after_index_kb": after_index,
                  "peak_main_kb": _rss_kb()[1], "peak_worker_kb": kids, "index_s": index_s,
                  "epoch_s": time.time() - t0}}))
"""
    rc, text, _ = _run([sys.executable, "-c", code])
    if rc != 0:
        return {"error": text.strip()[-600:]}
    return json.loads(text.strip().splitlines()[-1])


def memory_bench(sizes: list[int], workers: int = 2, batch: int = 256, keep: Path | None = None) -> dict[str, Any]:
    """Peak memory of one streamed epoch for generated sets of ``sizes`` pairs, CSV and shards (generated
    into a temporary folder, or into ``keep/<n>`` and reused when already there)."""
    out: dict[str, Any] = {"workers": workers, "batch_size": batch, "runs": []}
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(keep) / str(n) if keep else Path(tmp)
            t0 = time.time()
            if not (root / "train.csv").exists():
                _write_pairs(root, n)
            gen = time.time() - t0
            for fmt, src in (("csv", str(root / "train.csv")),
                             ("wds", str(root / "shards" / f"train-{{000000..{(n - 1) // 1000:06d}}}.tar"))):
                r = _epoch_rss(src, n, workers, batch)
                r.update(pairs=n, format=fmt, generate_s=gen)
                out["runs"].append(r)
                print(f"{fmt} {n} pairs: main peak {r.get('peak_main_kb', 0) / 1024:.0f} MiB, worker peak "
                      f"{r.get('peak_worker_kb', 0) / 1024:.0f} MiB ({r.get('samples')} samples)", file=sys.stderr)
    return out


def run_bench(a: argparse.Namespace) -> dict[str, Any]:
    from pretrainlab.core.bench import report
    from pretrainlab.core.config import ConfigError
    from pretrainlab.core.train import select_device

    for key, v, lo in (("--steps", a.steps, 1), ("--warmup", a.warmup, 0), ("--peer-steps", a.peer_steps, 3),
                       ("--pairs", a.pairs, 1), ("--batch-size", a.batch_size if a.batch_size is not None else 1, 1)):
        if v < lo:
            raise ConfigError(f"{key}: {v} is not allowed; expected >= {lo}")
    if a.memory and (min(a.memory) < 100 or a.memory_workers < 0):
        raise ConfigError("--memory: sizes must be >= 100 pairs and --memory-workers >= 0")
    if a.memory:
        res_mem = memory_bench(a.memory, a.memory_workers, keep=a.memory_dir)
        report({"memory": res_mem}, a.out)
        return {"memory": res_mem}
    res: dict[str, Any] = {"step": bench(a.device, a.steps, a.warmup, a.batch_size, a.precision, a.compile, a.model,
                                         a.objective)[0]}
    if a.peer:
        dev = select_device(a.device)
        model = a.model or ("ViT-B-32" if dev.type == "cuda" else "clip-nano")
        bs = a.batch_size or (256 if dev.type == "cuda" else 48)
        res["peer"] = p = peer_pairs(model, bs, a.peer_steps, str(dev), a.precision, a.pairs)
        print(f"pretrain / open_clip_train over {a.pairs} alternated process pairs: median {p['ratio_median']:.2f} "
              f"(range {p['ratio_min']:.2f}-{p['ratio_max']:.2f})", file=sys.stderr)
    report(res, a.out)
    return res
