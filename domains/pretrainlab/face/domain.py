"""CLI registration of the face domain: ``pretrainlab face <verb>``.

Verbs: data, pretrain, finetune, eval, embed, verify, reproduce, demo, bench. Heavy imports stay
inside the verb functions.
"""

from __future__ import annotations

import argparse
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

NAME = "face"


def _data_args(p: argparse.ArgumentParser) -> None:
    add_data_args(p, "identity folders, LFW pairs.txt, TinyFace lists")


def _data(a: argparse.Namespace) -> int:
    from pretrainlab.face.synthetic_faces import generate

    return run_generate(generate, a)


def _run(a: argparse.Namespace, default_recipe: str, extra: list[str]) -> int:
    from pretrainlab.face.pipeline import load, synthetic_data, train

    cfg = load(a.config or default_recipe, a.profile, [*extra, *a.overrides])
    data = a.data or synthetic_data(cfg.data_profile)
    run = a.out or default_run_dir(NAME, f"{cfg.method}")
    train(cfg, data, run, resume=a.resume)
    print(run)
    return 0


def _pretrain(a: argparse.Namespace) -> int:
    return _run(a, "pretrain", [])


def _finetune_args(p: argparse.ArgumentParser) -> None:
    add_config_args(p, "petalface")
    p.add_argument("--init", type=Path, required=True, help="pre-trained backbone (a `face pretrain` run / checkpoint)")


def _finetune(a: argparse.Namespace) -> int:
    return _run(a, "petalface", [f"init={a.init}"])


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--data", type=Path, default=None, help="folder with verify/pairs.txt and tinyface/ (default: synthetic tiny)")
    p.add_argument("--out", type=Path, default=None, help="metrics.json path (default: next to the checkpoint)")


def _eval(a: argparse.Namespace) -> int:
    import json

    from pretrainlab.core.io import atomic_write_json
    from pretrainlab.face.evaluation import evaluate_task
    from pretrainlab.face.pipeline import load_task, synthetic_data

    task, cfg, folder = load_task(a.ckpt)
    metrics = evaluate_task(task, cfg, a.data or synthetic_data(cfg.data_profile))
    out = a.out or folder / "metrics.json"
    atomic_write_json(out, metrics)
    print(json.dumps(metrics, indent=2))
    print(f"evaluated {folder}: HR verification {metrics['hr_verif_acc']:.2f}%, LR rank-1 {metrics['lr_rank-1']:.2f}% -> {out}",
          file=sys.stderr)
    return 0


def _embed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--input", type=Path, required=True, help="an image folder (searched recursively) or one image")
    p.add_argument("--out", type=Path, required=True, help="output .safetensors (embeddings, quality a) + .json (paths)")


def _embed(a: argparse.Namespace) -> int:
    import json

    import torch

    from pretrainlab.core.checkpoint import save_tensors
    from pretrainlab.core.data import DataError
    from pretrainlab.core.io import atomic_write_text
    from pretrainlab.face.evaluation import embed_images
    from pretrainlab.face.formats import IMAGE_SUFFIXES, load_images
    from pretrainlab.face.petalface import normalize
    from pretrainlab.face.quality import QualityScorer

    task, cfg, folder = load_task_cli(a.ckpt)
    src = Path(a.input)
    if src.is_dir():
        paths = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        paths = [src]
    if not paths:
        raise DataError(src, f"no images ({', '.join(IMAGE_SUFFIXES)}) found")
    imgs = load_images(paths, cfg.model.image_size, desc="embed")
    emb, qual = embed_images(task, imgs, cfg.eval.batch_size, cfg.eval.flip_tta)
    if qual is None:  # the quality weight is reported for every method (PETALface uses it)
        qual = torch.cat([QualityScorer(cfg.quality)(normalize(imgs[i:i + 256].float() / 255)) for i in range(0, len(imgs), 256)])
    out = Path(a.out).with_suffix(".safetensors")
    save_tensors(out, {"embeddings": emb.contiguous(), "quality_a": qual.float().contiguous()}, {"checkpoint": str(folder)})
    atomic_write_text(out.with_suffix(".json"), json.dumps({"paths": [str(p) for p in paths], "checkpoint": str(folder)}, indent=1))
    print(f"embedded {len(paths)} images ({emb.shape[1]}-d, mean quality a {float(qual.mean()):.3f}) -> {out}")
    return 0


def load_task_cli(ckpt: Path):  # -> (FaceTask, FaceConfig, Path)
    from pretrainlab.face.pipeline import load_task

    return load_task(ckpt)


def _verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("images", nargs=2, type=Path, metavar="IMG")
    p.add_argument("--threshold", type=float, default=None, help="decision threshold (default: the validation one)")


def _verify(a: argparse.Namespace) -> int:
    import json

    from pretrainlab.face.app_logic import compare_faces

    task, cfg, folder = load_task_cli(a.ckpt)
    res = compare_faces(task, cfg, folder, a.images[0], a.images[1], a.threshold)
    print(json.dumps(res, indent=2))
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
                 "pretrainlab face embed --ckpt C --input faces/ --out emb.safetensors"),
            Verb("verify", "similarity, quality a of each image and the decision", _verify_args, _verify,
                 "pretrainlab face verify --ckpt C a.png b.png"),
            reproduce_verb(NAME, "pre-trained vs full FT vs LoRA vs PETALface, >= 3 seeds",
                           "pretrainlab.face.pipeline:reproduce"),
            Verb("bench", "fine-tuning samples/s + peak memory (full / LoRA / PETALface), embedding images/s",
                 add_bench_args, _bench, "pretrainlab face bench --device cuda --precision bf16 --steps 200"),
            demo_verb(NAME),
        ],
    )
