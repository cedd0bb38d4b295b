"""CLI registration of the CLIP domain: ``pretrainlab clip <verb>``.

Heavy imports stay inside the verb functions so ``pretrainlab --help`` is fast. Business logic lives
in :mod:`pretrainlab.clip.pipeline`, :mod:`pretrainlab.clip.embed` and :mod:`pretrainlab.clip.zeroshot`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

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


def _model_args(p: argparse.ArgumentParser, ckpt_help: str) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--ckpt", type=Path, help=ckpt_help)
    g.add_argument("--weights", help="open_clip weights: a local state_dict (.safetensors / .pt), an open_clip "
                                     "tag (e.g. openai) or hf-hub:<repo>; needs --model")
    p.add_argument("--model", default=None, help="open_clip model name of --weights (e.g. ViT-B-32)")
    p.add_argument("--device", default="cpu")


def _task(a: argparse.Namespace) -> Any:
    from pretrainlab.clip.pipeline import load_task, load_weights_task
    from pretrainlab.core.config import ConfigError

    if a.weights is not None:
        if not a.model:
            raise ConfigError("--model: give the open_clip model name of --weights (e.g. --model ViT-B-32)")
        return load_weights_task(a.weights, a.model, a.device)
    if a.model:
        raise ConfigError("--model: only used with --weights (a checkpoint knows its model)")
    return load_task(a.ckpt, a.device)


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
    run = a.out or default_run_dir(NAME, Path(a.config or "rocket").stem)
    pretrain(cfg, a.data, run, resume=a.resume)
    print(run)
    return 0


def _finetune_args(p: argparse.ArgumentParser) -> None:
    add_config_args(p, "rocket")
    p.add_argument("--init", type=Path, required=True, help="run / checkpoint folder whose open_clip weights start the run")


def _finetune(a: argparse.Namespace) -> int:
    from pretrainlab.clip.pipeline import finetune, load

    cfg = load(a.config, a.profile, a.overrides)
    run = a.out or default_run_dir(NAME, f"finetune-{Path(a.config or 'rocket').stem}")
    finetune(cfg, a.data, run, a.init, resume=a.resume)
    print(run)
    return 0


# ------------------------------------------------------------------ eval
def _eval_args(p: argparse.ArgumentParser) -> None:
    _model_args(p, "run folder / checkpoints / step folder, or a run's open_clip_model.safetensors")
    p.add_argument("--data", type=Path, default=None, help="dataset root with zeroshot/ and retrieval/, or an "
                   "ImageNet-style folder (val/<wnid>/*.JPEG) (default: the checkpoint's synthetic set)")
    p.add_argument("--out", type=Path, default=None, help="metrics.json (default: next to the checkpoint; with "
                   "--weights: runs/clip/eval-<model>-<time>/metrics.json)")


def _eval(a: argparse.Namespace) -> int:
    from pretrainlab.clip.pipeline import evaluate, synthetic_data
    from pretrainlab.core.checkpoint import find_checkpoint
    from pretrainlab.core.io import atomic_write_json

    if a.out is not None and (a.out.is_dir() or a.out.suffix != ".json"):
        raise _err(a.out, "--out must name a .json file")
    task = _task(a)
    metrics = evaluate(task, a.data or synthetic_data(task.cfg.data.profile))
    if a.out is not None:
        out = a.out
    elif a.ckpt is not None and a.ckpt.is_dir():
        out = find_checkpoint(a.ckpt) / "metrics.json"
    else:
        out = default_run_dir(NAME, f"eval-{task.cfg.model.name}") / "metrics.json"
    atomic_write_json(out, metrics)
    print(json.dumps(metrics, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _err(path: Any, problem: str) -> Exception:
    from pretrainlab.core.data import DataError

    return DataError(path, problem)


# ------------------------------------------------------------------ zeroshot / embed
def _zeroshot_args(p: argparse.ArgumentParser) -> None:
    _model_args(p, "run folder / checkpoint, or a run's open_clip_model.safetensors")
    p.add_argument("--image", type=Path, required=True, help="an image file")
    p.add_argument("--labels", required=True, help='comma-separated class names, e.g. "red circle,blue square"')
    p.add_argument("--template", default="a photo of a {}.", help="prompt template ({} = label)")
    p.add_argument("--mix", type=float, default=1.0, help="w in [0, 1]: w*linear + (1-w)*MLP head (CLIP-rocket models)")


def _zeroshot(a: argparse.Namespace) -> int:
    from pretrainlab.clip.formats import read_image_file
    from pretrainlab.clip.zeroshot import zero_shot_predict
    from pretrainlab.core.config import ConfigError

    labels = [x.strip() for x in a.labels.split(",") if x.strip()]
    if len(labels) < 2:
        raise ConfigError("--labels: give at least two comma-separated labels")
    if len(set(labels)) != len(labels):
        raise ConfigError("--labels: a label is given twice")
    if a.template.count("{}") != 1:
        raise ConfigError(f"--template: {a.template!r} needs exactly one '{{}}' for the label")
    if not 0.0 <= a.mix <= 1.0:
        raise ConfigError(f"--mix: {a.mix!r} is not allowed; expected a number in [0, 1]")
    img = read_image_file(a.image)
    task = _task(a)
    probs = zero_shot_predict(task, task.preprocess(img)[None], labels, (a.template,), a.mix)[0]
    for lab, p in sorted(zip(labels, probs.tolist()), key=lambda t: -t[1]):
        print(f"{p:7.3f}  {lab}")
    return 0


def _embed_args(p: argparse.ArgumentParser) -> None:
    _model_args(p, "run folder / checkpoint, or a run's open_clip_model.safetensors")
    p.add_argument("--input", type=Path, required=True,
                   help="a folder of images, or an image-text source (CSV/TSV, shards, captions.jsonl folder)")
    p.add_argument("--out", type=Path, required=True, help="output .safetensors (image / text embeddings)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers decoding the images")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def _embed(a: argparse.Namespace) -> int:
    from pretrainlab.clip.embed import check_out, embed_source
    from pretrainlab.core.config import ConfigError

    if a.batch_size < 1:
        raise ConfigError(f"--batch-size: {a.batch_size} is not allowed; expected >= 1")
    if a.workers < 0:
        raise ConfigError(f"--workers: {a.workers} is not allowed; expected >= 0")
    check_out(a.out, a.input, a.overwrite)
    task = _task(a)
    info = embed_source(task, a.input, a.out, a.batch_size, a.workers, task.cfg.data.max_bad_fraction, a.overwrite)
    print(json.dumps(info))
    return 0


# ------------------------------------------------------------------ bench
def _bench_args(p: argparse.ArgumentParser) -> None:
    add_bench_args(p)
    p.add_argument("--model", default=None, help="open_clip config (default: ViT-B-32 on CUDA, clip-nano on CPU)")
    p.add_argument("--objective", default="rocket", help="objective of the step benchmark")
    p.add_argument("--peer", action="store_true",
                   help="also time pretrain against python -m open_clip_train.main (objective clip), as whole "
                        "processes alternated --pairs times; reports the median ratio and its range")
    p.add_argument("--peer-steps", type=int, default=60)
    p.add_argument("--pairs", type=int, default=5, help="alternated (pretrain, open_clip_train) process pairs")
    p.add_argument("--memory", type=int, nargs="+", default=None, metavar="N",
                   help="instead: peak RSS of one streamed epoch over generated sets of N pairs (CSV and shards)")
    p.add_argument("--memory-workers", type=int, default=2)
    p.add_argument("--memory-dir", type=Path, default=None, help="keep (and reuse) the generated sets here")


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
                 "pretrainlab clip pretrain --config rocket --profile tiny --data 'shards/{000000..000003}.tar'"),
            Verb("finetune", "continue pre-training from a checkpoint's open_clip weights", _finetune_args, _finetune,
                 "pretrainlab clip finetune --init runs/clip/<run> --config rocket --data new.csv"),
            Verb("eval", "zero-shot top-1/5 (linear, MLP, mixtures), retrieval R@1/5/10, linear probe", _eval_args,
                 _eval, "pretrainlab clip eval --weights open_clip_model.safetensors --model ViT-B-32 --data imagenet/"),
            Verb("zeroshot", "zero-shot classify one image over comma-separated labels", _zeroshot_args, _zeroshot,
                 'pretrainlab clip zeroshot --ckpt runs/clip/<run> --image x.jpg --labels "red circle,blue star"'),
            Verb("embed", "image / text embeddings of a folder or an image-text source", _embed_args, _embed,
                 "pretrainlab clip embed --weights open_clip_model.safetensors --model ViT-B-32 --input pairs.csv "
                 "--out emb.safetensors"),
            reproduce_verb(NAME, "the paper's table at the given scale (6 rows + projector mixture, >= 3 seeds)",
                           "pretrainlab.clip.reproduce:reproduce"),
            Verb("bench", "training-step throughput / memory (and --peer: vs open_clip_train.main)", _bench_args,
                 _bench, "pretrainlab clip bench --device cuda --precision bf16 --steps 200"),
            demo_verb(NAME),
        ],
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(0)
