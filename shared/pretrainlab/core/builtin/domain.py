"""CLI registration of the built-in SimCLR recipe (the pattern every domain's ``domain.py`` follows).

Heavy imports stay inside the verb functions so ``pretrainlab --help`` is fast.
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

NAME = "simclr"
RECIPES = Path(__file__).parent / "recipes"


def load(config: str | None, profile: str | None, overrides: list[str]):  # -> SimCLRConfig
    from pretrainlab.core.builtin.simclr import SimCLRConfig
    from pretrainlab.core.config import load_config

    return load_config(SimCLRConfig, config or "simclr", recipes_dir=RECIPES, profile=profile, overrides=overrides)


def synthetic_data(profile: str, seed: int = 0) -> Path:
    from pretrainlab.core.builtin import shapes
    from pretrainlab.core.data import cached_synthetic

    return cached_synthetic(NAME, shapes.generate, profile, seed)


def _data(a: argparse.Namespace) -> int:
    from pretrainlab.core.builtin import shapes

    return run_generate(shapes.generate, a)


def _data_args(p: argparse.ArgumentParser) -> None:
    add_data_args(p, "ImageFolder PNGs")


def _pretrain(a: argparse.Namespace) -> int:
    from pretrainlab.core.builtin.simclr import pretrain

    cfg = load(a.config, a.profile, a.overrides)
    data = a.data or synthetic_data(cfg.data_profile)
    run = a.out or default_run_dir(NAME, "simclr")
    pretrain(cfg, data, run, resume=a.resume)
    print(run)
    return 0


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None, help="metrics.json path (default: next to the checkpoint)")


def load_encoder(ckpt: Path):  # -> SmallConvNet
    from pretrainlab.core.builtin.simclr import SimCLRConfig, SimCLRTask
    from pretrainlab.core.checkpoint import find_checkpoint, load_weights, read_meta
    from pretrainlab.core.config import from_dict

    folder = find_checkpoint(ckpt)
    cfg = from_dict(SimCLRConfig, read_meta(folder)["config"])
    task = SimCLRTask(cfg)
    load_weights(task, folder / "model.safetensors")
    return task.encoder.eval()


def _eval(a: argparse.Namespace) -> int:
    from pretrainlab.core.builtin.simclr import probe
    from pretrainlab.core.checkpoint import read_meta
    from pretrainlab.core.io import atomic_write_json

    profile = read_meta(a.ckpt)["config"].get("data_profile", "tiny")
    metrics = probe(load_encoder(a.ckpt), a.data or synthetic_data(profile))
    from pretrainlab.core.checkpoint import find_checkpoint

    out = a.out or find_checkpoint(a.ckpt) / "metrics.json"
    atomic_write_json(out, metrics)
    print(metrics)
    return 0


def _bench(a: argparse.Namespace) -> int:
    import torch

    from pretrainlab.core.bench import bench_task, report
    from pretrainlab.core.builtin.simclr import SimCLRTask

    cfg = load(None, "tiny", [])
    bs = a.batch_size or 256
    task = SimCLRTask(cfg)
    res = bench_task(task, lambda: {"image": torch.rand(bs, 3, 32, 32)}, steps=a.steps, warmup=a.warmup,
                     device=a.device, precision=a.precision, compile=a.compile, name="simclr-smallcnn")
    report(res, a.out)
    return 0


def get_domain() -> Domain:
    return Domain(
        name=NAME, title="SimCLR on generated shapes (built-in recipe)",
        paper="Chen et al. 2020, A Simple Framework for Contrastive Learning of Visual Representations",
        extra="", builtin=True,
        verbs=[
            Verb("data", "write the synthetic shapes dataset (ImageFolder PNGs)", _data_args, _data,
                 "pretrainlab simclr data --out data/shapes --profile tiny"),
            Verb("pretrain", "SimCLR pre-training", lambda p: add_config_args(p, "simclr"), _pretrain,
                 "pretrainlab simclr pretrain --profile smoke train.lr=1e-3"),
            Verb("eval", "linear probe + k-NN of a checkpoint", _eval_args, _eval,
                 "pretrainlab simclr eval --ckpt runs/simclr/<run>"),
            reproduce_verb(NAME, "random init vs SimCLR, linear probe, 3 seeds",
                           "pretrainlab.core.builtin.simclr:reproduce"),
            Verb("bench", "training-step throughput and memory", add_bench_args, _bench,
                 "pretrainlab simclr bench --device cuda --precision bf16"),
            demo_verb(NAME),
        ],
    )


