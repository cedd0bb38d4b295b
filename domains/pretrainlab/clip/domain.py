"""CLI registration of the CLIP domain: ``pretrainlab clip <verb>``.

Heavy imports stay inside the verb functions so ``pretrainlab --help`` is fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pretrainlab.core.cli import (
    Domain,
    Verb,
    add_bench_args,
    add_config_args,
    add_data_args,
    default_run_dir,
    demo_verb,
    reproduce_verb,
    run_generate,
)

NAME = "clip"
PAPER = "Fini et al. 2023, Improved baselines for vision-language pre-training (CLIP-rocket), TMLR"


# ------------------------------------------------------------------ data
def _data_args(p: argparse.ArgumentParser) -> None:
    add_data_args(p, "CSV + webdataset shards + benchmarks")


def _data(a: argparse.Namespace) -> int:
    from pretrainlab.clip.synthetic import generate

    return run_generate(generate, a)


# ------------------------------------------------------------------ pretrain / finetune
def _pretrain(a: argparse.Namespace) -> int:
    from pretrainlab.clip.pipeline import load, pretrain

    cfg = load(a.config, a.profile, a.overrides)
    run = a.out or default_run_dir(NAME, a.config or "rocket")
    pretrain(cfg, a.data, run, resume=a.resume)
    print(run)
    return 0


def _finetune_args(p: argparse.ArgumentParser) -> None:
    add_config_args(p, "rocket")
    p.add_argument("--init", type=Path, required=True, help="checkpoint whose open_clip weights start the run")


def _finetune(a: argparse.Namespace) -> int:
    """Continue pre-training (or adapt to new data) from a checkpoint's open_clip weights."""
    from pretrainlab.clip.pipeline import build_dataset, export_open_clip, load, synthetic_data
    from pretrainlab.clip.task import CLIPRocketTask
    from pretrainlab.core.checkpoint import find_checkpoint, load_weights
    from pretrainlab.core.train import Trainer, seed_everything

    cfg = load(a.config, a.profile, a.overrides)
    seed_everything(cfg.train.seed)
    task = CLIPRocketTask(cfg)
    folder = find_checkpoint(a.init)
    load_weights(task.clip, folder / "model.safetensors", prefix="clip.")
    run = a.out or default_run_dir(NAME, f"finetune-{a.config or 'rocket'}")
    ds = build_dataset(cfg, a.data or synthetic_data(cfg.data.profile), task, progress=cfg.train.progress)
    Trainer(cfg.train, run, full_config=cfg).fit(task, ds, resume=a.resume)
    export_open_clip(task, Path(run) / "open_clip_model.safetensors")
    print(run)
    return 0


# ------------------------------------------------------------------ eval
def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True, help="run folder / checkpoints / step folder")
    p.add_argument("--data", type=Path, default=None, help="dataset root with zeroshot/ and retrieval/ "
                   "(default: the checkpoint's synthetic set)")
    p.add_argument("--out", type=Path, default=None, help="metrics.json (default: next to the checkpoint)")
    p.add_argument("--device", default="cpu")


def _eval(a: argparse.Namespace) -> int:
    from pretrainlab.clip.pipeline import evaluate, load_task, synthetic_data
    from pretrainlab.core.checkpoint import find_checkpoint
    from pretrainlab.core.io import atomic_write_json

    task = load_task(a.ckpt, a.device)
    metrics = evaluate(task, a.data or synthetic_data(task.cfg.data.profile))
    out = a.out or find_checkpoint(a.ckpt) / "metrics.json"
    atomic_write_json(out, metrics)
    print(json.dumps(metrics, indent=1))
    return 0


# ------------------------------------------------------------------ zeroshot / embed
def _zeroshot_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--image", type=Path, required=True, help="an image file")
    p.add_argument("--labels", required=True, help='comma-separated class names, e.g. "red circle,blue square"')
    p.add_argument("--template", default="a photo of a {}.", help="prompt template ({} = label)")
    p.add_argument("--mix", type=float, default=1.0, help="w: w*linear + (1-w)*MLP head (CLIP-rocket models)")


def _zeroshot(a: argparse.Namespace) -> int:
    from pretrainlab.clip.formats import decode_image
    from pretrainlab.clip.pipeline import load_task
    from pretrainlab.clip.zeroshot import zero_shot_predict
    from pretrainlab.core.data import DataError

    labels = [x.strip() for x in a.labels.split(",") if x.strip()]
    if len(labels) < 2:
        raise DataError("--labels", "give at least two comma-separated labels")
    task = load_task(a.ckpt)
    try:
        raw = a.image.read_bytes()
    except OSError as e:
        raise DataError(a.image, f"cannot read ({e.strerror or e})") from e
    img = decode_image(raw, str(a.image), task.image_size)[None]
    probs = zero_shot_predict(task, img, labels, (a.template,), a.mix)[0]
    for lab, p in sorted(zip(labels, probs.tolist()), key=lambda t: -t[1]):
        print(f"{p:7.3f}  {lab}")
    return 0


def _embed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--input", type=Path, required=True,
                   help="a folder of images, or an image-text source (CSV/TSV, shards, captions.jsonl folder)")
    p.add_argument("--out", type=Path, required=True, help="output .safetensors (image / text embeddings)")


def _embed(a: argparse.Namespace) -> int:
    from pretrainlab.clip.embed import embed_source
    from pretrainlab.clip.pipeline import load_task

    task = load_task(a.ckpt)
    info = embed_source(task, a.input, a.out)
    print(json.dumps(info))
    return 0


# ------------------------------------------------------------------ reproduce / bench
def _bench_args(p: argparse.ArgumentParser) -> None:
    add_bench_args(p)
    p.add_argument("--model", default=None, help="open_clip config (default: ViT-B-32 on CUDA, clip-nano on CPU)")
    p.add_argument("--objective", default="rocket", help="objective of the step benchmark")
    p.add_argument("--peer", action="store_true",
                   help="also run pretrain vs python -m open_clip_train.main side by side (objective clip)")
    p.add_argument("--peer-steps", type=int, default=30)


def _bench(a: argparse.Namespace) -> int:
    from pretrainlab.clip.bench import run_bench

    run_bench(a)
    return 0


def get_domain() -> Domain:
    return Domain(
        name=NAME, title="CLIP-rocket: CLIP + SSL baselines and the improved recipe on open_clip",
        paper=PAPER, extra="clip",
        verbs=[
            Verb("data", "write the synthetic image-text set (CSV + webdataset shards + benchmarks)", _data_args,
                 _data, "pretrainlab clip data --out data/clip --profile tiny"),
            Verb("pretrain", "pre-train CLIP / SLIP / BarLIP / BYOLIP / SwALIP / CLIP-rocket",
                 lambda p: add_config_args(p, "rocket"), _pretrain,
                 "pretrainlab clip pretrain --config rocket --profile tiny --data train.csv"),
            Verb("finetune", "continue pre-training from a checkpoint's open_clip weights", _finetune_args, _finetune,
                 "pretrainlab clip finetune --init runs/clip/<run> --config rocket --data new.csv"),
            Verb("eval", "zero-shot top-1/5 (linear, MLP, mixtures), retrieval R@1/5/10, linear probe", _eval_args,
                 _eval, "pretrainlab clip eval --ckpt runs/clip/<run> --data data/clip"),
            Verb("zeroshot", "zero-shot classify one image over comma-separated labels", _zeroshot_args, _zeroshot,
                 'pretrainlab clip zeroshot --ckpt runs/clip/<run> --image x.jpg --labels "red circle,blue star"'),
            Verb("embed", "image / text embeddings of a folder or an image-text source", _embed_args, _embed,
                 "pretrainlab clip embed --ckpt runs/clip/<run> --input data/clip/train.csv --out emb.safetensors"),
            reproduce_verb(NAME, "the paper's table at the given scale (6 rows + projector mixture, >= 3 seeds)",
                           "pretrainlab.clip.reproduce:reproduce"),
            Verb("bench", "training-step throughput / memory (and --peer: vs open_clip_train.main)", _bench_args,
                 _bench, "pretrainlab clip bench --device cuda --precision bf16 --steps 200"),
            demo_verb(NAME),
        ],
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(0)
