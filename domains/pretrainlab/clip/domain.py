"""The command line of the CLIP domain: ``pretrainlab clip <verb>`` (nothing imports this module but the CLI).

Standard verbs come from ``api.SPEC`` (data, pretrain, finetune, reproduce, report, demo); ``eval`` and
``bench`` are replaced by versions with the domain's options (``--weights/--model``; ``--peer``,
``--memory``), and ``zeroshot`` / ``embed`` are the domain's own. Each verb parses its arguments and
calls one api function.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pretrainlab.clip.api import SPEC
from pretrainlab.core.domain import Verb, add_bench_args


def _model_args(p: argparse.ArgumentParser, ckpt_help: str) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--ckpt", type=Path, help=ckpt_help)
    g.add_argument("--weights", help="open_clip weights: a local state_dict (.safetensors / .pt), an open_clip "
                                     "tag (e.g. openai) or hf-hub:<repo>; needs --model")
    p.add_argument("--model", default=None, help="open_clip model name of --weights (e.g. ViT-B-32)")
    p.add_argument("--device", default="cpu")


def _task(a: argparse.Namespace) -> Any:
    from pretrainlab.clip.api import model_from_args

    return model_from_args(a.ckpt, a.weights, a.model, a.device)


# ------------------------------------------------------------------ eval
def _eval_args(p: argparse.ArgumentParser) -> None:
    _model_args(p, "run folder / checkpoints / step folder, or a run's open_clip_model.safetensors")
    p.add_argument("--data", type=Path, default=None, help="dataset root with zeroshot/ and retrieval/, or an "
                   "ImageNet-style folder (val/<wnid>/*.JPEG) (default: the checkpoint's synthetic set)")
    p.add_argument("--out", type=Path, default=None, help="metrics.json (default: next to the checkpoint; with "
                   "--weights: runs/clip/eval-<model>-<time>/metrics.json)")


def _eval(a: argparse.Namespace) -> int:
    from pretrainlab.clip.api import eval_verb

    out, metrics = eval_verb(a.ckpt, a.weights, a.model, a.device, a.data, a.out)
    print(json.dumps(metrics, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------ zeroshot / embed
def _zeroshot_args(p: argparse.ArgumentParser) -> None:
    _model_args(p, "run folder / checkpoint, or a run's open_clip_model.safetensors")
    p.add_argument("--image", type=Path, required=True, help="an image file")
    p.add_argument("--labels", required=True, help='comma-separated class names, e.g. "red circle,blue square"')
    p.add_argument("--template", default="a photo of a {}.", help="prompt template ({} = label)")
    p.add_argument("--mix", type=float, default=1.0, help="w in [0, 1]: w*linear + (1-w)*MLP head (CLIP-rocket models)")


def _zeroshot(a: argparse.Namespace) -> int:
    from pretrainlab.clip.api import zeroshot_verb

    for label, p in zeroshot_verb(a.ckpt, a.weights, a.model, a.device, a.image, a.labels, a.template, a.mix):
        print(f"{p:7.3f}  {label}")
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
    from pretrainlab.clip.api import embed_verb

    info = embed_verb(a.ckpt, a.weights, a.model, a.device, a.input, a.out, a.batch_size, a.workers, a.overwrite)
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


def get_domain() -> Any:
    return SPEC.cli([
        Verb("eval", "zero-shot top-1/5 (linear, MLP, mixtures), retrieval R@1/5/10, linear probe -> metrics.json",
             _eval_args, _eval,
             "pretrainlab clip eval --weights open_clip_model.safetensors --model ViT-B-32 --data imagenet/"),
        Verb("zeroshot", "zero-shot classify one image over comma-separated labels", _zeroshot_args, _zeroshot,
             'pretrainlab clip zeroshot --ckpt runs/clip/<run> --image x.jpg --labels "red circle,blue star"'),
        Verb("embed", "image / text embeddings of a folder or an image-text source", _embed_args, _embed,
             "pretrainlab clip embed --weights open_clip_model.safetensors --model ViT-B-32 --input pairs.csv "
             "--out emb.safetensors"),
        Verb("bench", "training-step throughput / memory; --peer: vs open_clip_train.main; --memory: RSS", _bench_args,
             _bench, "pretrainlab clip bench --device cpu --peer --pairs 5"),
    ])
