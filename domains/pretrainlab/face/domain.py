"""CLI registration of the face domain: ``pretrainlab face <verb>``.

Verbs: data, pretrain, finetune, eval, embed, verify, reproduce, demo, bench. Heavy imports stay
inside the verb functions.
"""

from __future__ import annotations

import argparse
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

NAME = "face"


def _data_args(p: argparse.ArgumentParser) -> None:
    add_data_args(p, "identity folders, LFW pairs.txt, TinyFace lists")


def _data(a: argparse.Namespace) -> int:
    from pretrainlab.face.synthetic_faces import generate

    return run_generate(generate, a)


def _run(a: argparse.Namespace, default_recipe: str, extra: list[str]) -> int:
    from pretrainlab.face.pipeline import load, synthetic_data, train

    cfg = load(a.config or default_recipe, a.profile, [*extra, *a.overrides])
    data = a.data or synthetic_data(cfg.data.profile)
    run = a.out or default_run_dir(NAME, f"{cfg.method}")
    train(cfg, data, run, resume=a.resume)
    print(run)
    return 0


def _pretrain(a: argparse.Namespace) -> int:
    return _run(a, "pretrain", [])


def _finetune_args(p: argparse.ArgumentParser) -> None:
    add_config_args(p, "petalface")
    p.add_argument("--init", type=Path, required=True,
                   help="pre-trained backbone: a `face pretrain` run / checkpoint, or the reference's model.pt (swin_256new)")


def _finetune(a: argparse.Namespace) -> int:
    return _run(a, "petalface", [f"init={a.init}"])


def _overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="settings on top of the checkpoint's config, e.g. quality.threshold=40 eval.flip_tta=false")


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True, help="a face run / checkpoint folder, or a PETALface model.pt")
    p.add_argument("--data", type=Path, default=None,
                   help="folder with the verification set (verify/pairs.txt or a .bin) and tinyface/ (default: synthetic)")
    p.add_argument("--out", type=Path, default=None, help="metrics.json path (default: next to the checkpoint)")
    _overrides(p)


def _eval(a: argparse.Namespace) -> int:
    from pretrainlab.face.api import evaluate

    evaluate(a.ckpt, a.data, a.out, a.overrides)
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
    from pretrainlab.face.api import embed

    embed(a.ckpt, a.input, a.out, a.quality_scores, a.overrides)
    return 0


def _verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("images", nargs=2, type=Path, metavar="IMG")
    p.add_argument("--threshold", type=float, default=None, help="decision threshold (default: the validation one)")


def _verify(a: argparse.Namespace) -> int:
    from pretrainlab.face.api import verify

    verify(a.ckpt, a.images[0], a.images[1], a.threshold)
    return 0


def _bench(a: argparse.Namespace) -> int:
    from pretrainlab.core.bench import report
    from pretrainlab.face.bench import run_bench

    report(run_bench(a.device, a.steps, a.warmup, a.batch_size, a.precision, a.compile), a.out)
    return 0


def get_domain() -> Domain:
    return Domain(
        name=NAME, title="PETALface: quality-weighted twin LoRA for low-resolution face recognition",
        paper="Narayan et al., WACV 2025, PETALface: Parameter Efficient Transfer Learning for Low-resolution Face Recognition",
        extra="face",
        verbs=[
            Verb("data", "write the synthetic faces (identity folders, LFW pairs.txt, TinyFace lists)", _data_args, _data,
                 "pretrainlab face data --out data/faces --profile tiny"),
            Verb("pretrain", "stage 1: Swin face backbone + CosFace on high-resolution identities",
                 lambda p: add_config_args(p, "pretrain"), _pretrain, "pretrainlab face pretrain --profile smoke"),
            Verb("finetune", "stage 2: full / lora / petalface fine-tuning on low-resolution identities", _finetune_args,
                 _finetune, "pretrainlab face finetune --init runs/face/pretrain-<time> --config petalface --profile smoke"),
            Verb("eval", "HR verification (10-fold acc, TAR@FAR) + TinyFace LR rank-1/5/10", _eval_args, _eval,
                 "pretrainlab face eval --ckpt runs/face/petalface-<time>"),
            Verb("embed", "embeddings + quality weight a of every image in a folder", _embed_args, _embed,
                 "pretrainlab face embed --ckpt model.pt --input faces/ --quality-scores scores.csv --out emb.safetensors "
                 "quality.threshold=40"),
            Verb("verify", "similarity, quality a of each image and the decision", _verify_args, _verify,
                 "pretrainlab face verify --ckpt C a.png b.png"),
            reproduce_verb(NAME, "pre-trained vs full FT vs LoRA vs PETALface, >= 3 seeds",
                           "pretrainlab.face.pipeline:reproduce"),
            Verb("bench", "fine-tuning samples/s + peak memory (full / LoRA / PETALface), embedding images/s",
                 add_bench_args, _bench, "pretrainlab face bench --device cuda --precision bf16 --steps 200"),
            demo_verb(NAME),
        ],
    )
