"""The command line of the face domain: ``pretrainlab face <verb>`` (the CLI only; nothing imports it).

Standard verbs from ``api.SPEC``; replaced here: ``pretrain`` / ``finetune`` (their default recipes are
``pretrain`` and ``petalface``), ``eval`` (also a reference ``model.pt``, ``key=value`` settings). Own
verbs: ``embed``, ``verify``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pretrainlab.core.domain import Verb, add_config_args, default_run_dir, run_folder, write_metrics
from pretrainlab.face.api import SPEC


def _overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="settings on top of the checkpoint's config, e.g. quality.threshold=40 eval.flip_tta=false")


def _train(kind: str, recipe: str) -> Any:
    def run(a: argparse.Namespace) -> int:
        from pretrainlab.face import api

        cfg = api.load(a.config or recipe, a.profile, list(a.overrides or []))
        data = a.data or api.synthetic_data(cfg.data.profile)
        out = a.out or default_run_dir("face", f"{kind}-{cfg.method}")
        with run_folder(out, a.resume, a.overwrite) as r:
            if kind == "pretrain":
                api.pretrain(cfg, data, r, resume=a.resume)
            else:
                api.finetune(cfg, data, r, init=a.init, resume=a.resume)
        print(out)
        return 0

    return run


def _finetune_args(p: argparse.ArgumentParser) -> None:
    add_config_args(p, "petalface")
    p.add_argument("--init", type=Path, required=True,
                   help="pre-trained backbone: a `face pretrain` run / checkpoint, or a reference model.pt (swin_256new)")


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True, help="a face run / checkpoint folder, or a PETALface model.pt")
    p.add_argument("--data", type=Path, default=None,
                   help="folder with the verification set (verify/pairs.txt or data.verify_dir=<x>.bin) and tinyface/ "
                        "(default: the synthetic set)")
    p.add_argument("--out", type=Path, default=None, help="metrics JSON (default: metrics.json beside the checkpoint)")
    p.add_argument("--ijb", type=Path, default=None,
                   help="also IJB-B/C 1:1 TAR@FAR (eval.ijb_fars): a folder with meta/<t>_*.txt and loose_crop/")
    p.add_argument("--ijb-target", default="IJBC", choices=["IJBB", "IJBC"], dest="ijb_target")
    _overrides(p)


def _eval(a: argparse.Namespace) -> int:
    import json
    import sys

    from pretrainlab.face import api

    metrics = api.evaluate(a.ckpt, a.data, list(a.overrides or []))
    if a.ijb is not None:
        metrics.update(api.evaluate_ijb(a.ckpt, a.ijb, a.ijb_target, list(a.overrides or [])))
    src = Path(a.ckpt)
    if a.out is None:
        from pretrainlab.core.checkpoint import find_checkpoint

        dest = src.parent / "metrics.json" if src.is_file() else find_checkpoint(src) / "metrics.json"
    else:
        dest = a.out
    write_metrics(dest, metrics)
    print(json.dumps(metrics, indent=2))
    print(f"{dest}: HR verification {metrics['hr_verif_acc']:.2f}%, LR rank-1 {metrics['lr_rank-1']:.2f}%", file=sys.stderr)
    return 0


def _embed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True, help="a face run / checkpoint folder, or a PETALface model.pt")
    p.add_argument("--input", type=Path, required=True, help="an image folder (searched recursively) or one image")
    p.add_argument("--quality-scores", type=Path, default=None, dest="quality_scores",
                   help="CSV 'file,score' of precomputed IQA scores (a = 0.5 + score - quality.threshold); "
                        "default: the configured quality.scorer")
    p.add_argument("--out", type=Path, required=True,
                   help="FILE.safetensors (embeddings, quality_a) or FILE.npy (+ FILE.quality_a.npy); FILE.json lists the files")
    _overrides(p)


def _embed(a: argparse.Namespace) -> int:
    from pretrainlab.face import api

    api.embed(a.ckpt, a.input, a.out, a.quality_scores, list(a.overrides or []))
    return 0


def _verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True, help="a face run / checkpoint folder, or a PETALface model.pt")
    p.add_argument("images", nargs=2, type=Path, metavar="IMG")
    p.add_argument("--threshold", type=float, default=None, help="decision threshold (default: the validation one)")


def _verify(a: argparse.Namespace) -> int:
    from pretrainlab.face import api

    api.verify(a.ckpt, a.images[0], a.images[1], a.threshold)
    return 0


def get_domain() -> Any:
    return SPEC.cli([
        Verb("pretrain", "stage 1: the reference face Swin + CosFace on high-resolution identities",
             lambda p: add_config_args(p, "pretrain"), _train("pretrain", "pretrain"),
             "pretrainlab face pretrain --profile smoke --out runs/face/pre"),
        Verb("finetune", "stage 2: full / lora / petalface fine-tuning on low-resolution identities", _finetune_args,
             _train("finetune", "petalface"),
             "pretrainlab face finetune --init runs/face/pre --config petalface --profile smoke"),
        Verb("eval", "HR verification (10-fold acc, TAR@FAR) + TinyFace LR rank-k -> metrics JSON", _eval_args, _eval,
             "pretrainlab face eval --ckpt runs/face/petal"),
        Verb("embed", "embeddings + quality weight a of every image in a folder", _embed_args, _embed,
             "pretrainlab face embed --ckpt model.pt --input faces/ --quality-scores scores.csv --out emb.safetensors "
             "quality.threshold=40"),
        Verb("verify", "similarity, quality a of each image and the decision", _verify_args, _verify,
             "pretrainlab face verify --ckpt runs/face/petal a.png b.png"),
    ])
