"""``pretrainlab clip bench``: training-step throughput / memory, and the open_clip peer comparison.

1. Step benchmark (``pretrainlab.core.bench.bench_task``) of the chosen objective (default the
   CLIP-rocket recipe: 3 image views + 3 captions per sample) on a GPU-sized model on CUDA
   (ViT-B-32, batch 256) or ``clip-nano`` on a CPU; data loading excluded.
2. ``--peer``: end-to-end training samples/s of ``pretrainlab clip pretrain`` (objective ``clip``,
   the trainer with its data loader) against ``python -m open_clip_train.main`` (its training loop
   with ``--dataset-type synthetic``) on the same model config, batch size and precision, run one
   after the other in this process's machine; reports the ratio (target >= 1.0).

Deviation: open_clip's synthetic dataset is one random PIL image re-transformed per sample,
ours is the generated scene set decoded once (augmentations on the device); both are reported
as data + step throughput, which is what a user of each trainer gets.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PEER_LINE = re.compile(r"Batch \(t\): ([0-9.]+), ([0-9.e+]+)/s")


def _step_bench(a: argparse.Namespace, model: str, bs: int) -> dict[str, Any]:
    import torch

    from pretrainlab.clip.pipeline import load
    from pretrainlab.clip.task import CLIPRocketTask
    from pretrainlab.core.bench import bench_task

    tiny = model in ("clip-nano", "test-vit-tiny", "test-vit-small", "test-rn-tiny")
    cfg = load(a.objective, "tiny" if tiny else "full", [f"model.name={model}"])  # full: the paper's head widths
    task = CLIPRocketTask(cfg)
    s, n_txt = task.image_size, task.num_texts
    ctx = int(task.clip.positional_embedding.shape[0])

    def make_batch() -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        return {"image": torch.randint(0, 256, (bs, 3, s, s), dtype=torch.uint8, generator=g),
                "text": torch.randint(1, 49000, (bs, n_txt, ctx), generator=g)}

    return bench_task(task, make_batch, steps=a.steps, warmup=a.warmup, device=a.device, precision=a.precision,
                      compile=a.compile, name=f"clip-{a.objective}-{model}",
                      extra={"model": model, "objective": a.objective, "views_per_sample": 1 + cfg.method.num_augs
                             if task.uses_aug_pairs else 1})


def _ours(model: str, bs: int, steps: int, device: str, precision: str) -> dict[str, Any]:
    from pretrainlab.clip.pipeline import load, pretrain

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load("clip", "tiny", [f"model.name={model}", f"train.batch_size={bs}", f"train.max_steps={steps}",
                                    f"train.device={device}", f"train.precision={precision}", "train.progress=false",
                                    f"train.log_every={max(1, steps // 3)}", "train.warmup_steps=0",
                                    "train.tensorboard=false", "train.num_workers=1"])
        _, res = pretrain(cfg, None, Path(tmp) / "run")
    last = res.history[-1]["samples_per_s"] if res.history else res.samples_per_s
    return {"trainer": "pretrainlab clip pretrain", "samples_per_s": float(last),
            "samples_per_s_incl_startup": res.samples_per_s}


def _peer(model: str, bs: int, steps: int, device: str, precision: str) -> dict[str, Any]:
    """Run open_clip_train.main (with the domain's configs registered) and parse its samples/s."""
    prec = {"bf16": "amp_bf16", "fp32": "fp32"}.get(precision, "amp_bf16" if device.startswith("cuda") else "fp32")
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["--dataset-type", "synthetic", "--train-num-samples", str(bs * steps), "--batch-size", str(bs),
                "--model", model, "--epochs", "1", "--lr", "1e-3", "--warmup", "0", "--workers", "1",
                "--precision", prec, "--log-every-n-steps", str(max(1, steps // 3)), "--logs", tmp,
                "--report-to", "", "--save-frequency", "0", "--name", "peer"]
        code = ("import sys; from pretrainlab.clip.models import register_domain_configs; register_domain_configs(); "
                "from open_clip_train.main import main; main(sys.argv[1:])")
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=1800, check=False)
        wall = time.time() - t0
    text = proc.stdout + proc.stderr
    # "Batch (t): AVG, RATE/s": AVG is the mean step time (data included) since the previous log line
    # (open_clip resets its meters after each log); RATE uses the last batch only, so it is noisy.
    rates = [bs / float(m.group(1)) for m in PEER_LINE.finditer(text) if float(m.group(1)) > 0]
    if proc.returncode != 0 or not rates:
        return {"trainer": "open_clip_train.main", "error": f"exit {proc.returncode}: {text.strip()[-400:]}"}
    return {"trainer": "open_clip_train.main", "samples_per_s": rates[-1], "wall_s": wall,
            "note": "batch_size / mean step time of the last log window"}


def run_bench(a: argparse.Namespace) -> dict[str, Any]:
    from pretrainlab.core.bench import report
    from pretrainlab.core.train import select_device

    dev = select_device(a.device)
    model = a.model or ("ViT-B-32" if dev.type == "cuda" else "clip-nano")
    bs = a.batch_size or (256 if dev.type == "cuda" else 48)
    res: dict[str, Any] = {"step": _step_bench(a, model, bs)}
    if a.peer:
        ours = _ours(model, bs, a.peer_steps, str(dev), a.precision)
        peer = _peer(model, bs, a.peer_steps, str(dev), a.precision)
        ratio = ours["samples_per_s"] / peer["samples_per_s"] if "samples_per_s" in peer else None
        res["peer"] = {"model": model, "batch_size": bs, "steps": a.peer_steps, "ours": ours, "open_clip": peer,
                       "ratio": ratio}
        print(f"pretrain {ours['samples_per_s']:.1f} samples/s vs open_clip_train "
              f"{peer.get('samples_per_s', float('nan')):.1f} samples/s: ratio {ratio if ratio is None else round(ratio, 2)}",
              file=sys.stderr)
    report(res, a.out)
    return res
