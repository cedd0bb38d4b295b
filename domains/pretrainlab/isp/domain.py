"""CLI registration of the ISP domain: ``pretrainlab isp <verb>`` (heavy imports inside the verbs)."""

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

NAME = "isp"
RECIPES = Path(__file__).parent / "recipes"
DEFAULT_RECIPE = "efficientisp_unpaired"
DATA_VERSION = "2"


def load(config: str | None, profile: str | None, overrides: list[str]):  # -> ISPConfig
    from pretrainlab.core.config import load_config
    from pretrainlab.isp.config import ISPConfig

    return load_config(ISPConfig, config or DEFAULT_RECIPE, recipes_dir=RECIPES, profile=profile, overrides=overrides)


def synthetic_data(profile: str, seed: int = 0) -> Path:
    from pretrainlab.core.data import cached_synthetic
    from pretrainlab.isp import unprocess

    return cached_synthetic(NAME, unprocess.generate, profile, seed, version=DATA_VERSION)


def _data_args(p: argparse.ArgumentParser) -> None:
    add_data_args(p, "RAW + RGB sets")
    p.add_argument("--photos", type=Path, default=None, help="extra folder of JPEG / PNG photographs to unprocess")


def _data(a: argparse.Namespace) -> int:
    from pretrainlab.isp.unprocess import generate

    return run_generate(generate, a, extra_photos=a.photos)


def _pretrain(a: argparse.Namespace) -> int:
    from pretrainlab.isp.unpaired_training import pretrain

    cfg = load(a.config, a.profile, a.overrides)
    data = a.data or synthetic_data(cfg.data.profile)
    run = a.out or default_run_dir(NAME, Path(a.config or DEFAULT_RECIPE).stem)
    pretrain(cfg, data, run, resume=a.resume)
    print(run)
    return 0


def _finetune_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--init", type=Path, required=True, help="checkpoint whose generator initialises the run")
    add_config_args(p, "efficientisp_paired")


def _finetune(a: argparse.Namespace) -> int:
    """Continue training a generator (e.g. unpaired -> paired on a new camera) from ``--init``."""
    from pretrainlab.core.checkpoint import find_checkpoint, load_weights
    from pretrainlab.core.train import Trainer
    from pretrainlab.isp.feature_networks import load_feature_nets
    from pretrainlab.isp.unpaired_training import ISPTask, build_datasets

    cfg = load(a.config, a.profile, a.overrides)
    data = a.data or synthetic_data(cfg.data.profile)
    run = a.out or default_run_dir(NAME, f"finetune-{Path(a.config).stem}")
    nets = load_feature_nets(cfg.features, data, seed=0, device=cfg.train.device, progress=cfg.train.progress)
    train, pairs = build_datasets(cfg, data, progress=cfg.train.progress)
    task = ISPTask(cfg, nets, pairs.pattern)
    load_weights(task.generator, find_checkpoint(a.init) / "model.safetensors", prefix="generator.")
    Trainer(cfg.train, run, full_config=cfg).fit(task, train, resume=a.resume)
    print(run)
    return 0


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--data", type=Path, default=None, help="dataset root with test/ (default: the tiny synthetic set)")
    p.add_argument("--split", default="test")
    p.add_argument("--conventional", action="store_true", help="evaluate the conventional ISP instead")
    p.add_argument("--out", type=Path, default=None, help="metrics.json path (default: next to the checkpoint)")


def _eval(a: argparse.Namespace) -> int:
    import json

    from pretrainlab.core.checkpoint import find_checkpoint
    from pretrainlab.core.io import atomic_write_json
    from pretrainlab.isp.conventional_isp import conventional_isp
    from pretrainlab.isp.formats import ISPPairs
    from pretrainlab.isp.generators import count_macs, count_params
    from pretrainlab.isp.metrics import evaluate_generator
    from pretrainlab.isp.unpaired_training import load_generator

    gen, cfg, _ = load_generator(a.ckpt)
    data = a.data or synthetic_data(cfg.data.profile if cfg.data.profile != "full" else "tiny")
    pairs = ISPPairs(data, a.split, cfg.data.norm, cfg.data.bayer_pattern, cfg.data.max_test)
    if a.conventional:
        c = cfg.conventional
        metrics = evaluate_generator(lambda r: conventional_isp(r, pairs.pattern, c.demosaic, tuple(c.wb_gains), c.gamma), pairs)
    else:
        metrics = evaluate_generator(gen, pairs)
        metrics.update(params=count_params(gen), GMACs_FullHD=count_macs(gen, (540, 960)) / 1e9)
    out = a.out or find_checkpoint(a.ckpt) / "metrics.json"
    atomic_write_json(out, metrics)
    print(json.dumps(metrics, indent=2))
    return 0


def _render_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, default=None, help="checkpoint (not needed with --conventional)")
    p.add_argument("--input", type=Path, required=True, help="RAW file (.png mosaic, .npy, .dng...) or a folder")
    p.add_argument("--out", type=Path, required=True, help="output folder of PNGs")
    p.add_argument("--conventional", action="store_true", help="render with the conventional ISP")
    p.add_argument("--norm", default="auto")
    p.add_argument("--pattern", default="auto")


def _render(a: argparse.Namespace) -> int:
    from pretrainlab.isp.render import render_path

    n = render_path(a.input, a.out, a.ckpt, a.conventional, a.norm, a.pattern)
    print(f"rendered {n} file(s) to {a.out}")
    return 0


def _bench_args(p: argparse.ArgumentParser) -> None:
    add_bench_args(p)
    p.add_argument("--generator", default="all", help="efficientisp | robustisp | rmfanet_tiny | all")
    p.add_argument("--size", type=int, default=None, help="packed RAW patch side (default: 128 on CUDA, 32 on CPU)")


def _bench(a: argparse.Namespace) -> int:
    from pretrainlab.isp.bench import run_bench

    run_bench(a)
    return 0


def get_domain() -> Domain:
    return Domain(
        name=NAME, title="Learned lightweight smartphone ISP (RAW -> RGB) with unpaired data",
        paper="Arhire & Timofte, Learned Lightweight Smartphone ISP with Unpaired Data, CVPRW 2025",
        extra="isp",
        verbs=[
            Verb("data", "write the synthetic unprocessed-RAW dataset (Zurich layout + DNG / NPY samples)", _data_args,
                 _data, "pretrainlab isp data --out data/isp --profile tiny"),
            Verb("pretrain", "train a generator (paired / paired_noadv / unpaired recipes)",
                 lambda p: add_config_args(p, DEFAULT_RECIPE), _pretrain,
                 "pretrainlab isp pretrain --config rmfanet_tiny_unpaired --profile tiny"),
            Verb("finetune", "continue training a generator from --init (e.g. paired on a new camera)", _finetune_args,
                 _finetune, "pretrainlab isp finetune --init runs/isp/<run> --config efficientisp_paired"),
            Verb("eval", "PSNR / SSIM / MS-SSIM / Delta-E 2000 of a checkpoint on a test split", _eval_args, _eval,
                 "pretrainlab isp eval --ckpt runs/isp/<run> --data data/isp"),
            Verb("render", "RAW -> PNG with a trained generator or the conventional ISP", _render_args, _render,
                 "pretrainlab isp render --ckpt runs/isp/<run> --input photo.dng --out renders/"),
            reproduce_verb(NAME, "conventional ISP vs paired / paired w/o adv. / unpaired for 3 generators, 3 seeds",
                           "pretrainlab.isp.reproduce:reproduce"),
            Verb("bench", "Full-HD latency per generator + training steps/s and peak memory", _bench_args, _bench,
                 "pretrainlab isp bench --device cuda --precision bf16 --steps 200"),
            demo_verb(NAME),
        ],
    )
