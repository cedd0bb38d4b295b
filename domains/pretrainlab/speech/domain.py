"""CLI registration of the speech domain: ``pretrainlab speech <verb>``.

Verbs: data, pretrain, finetune (frozen-upstream downstream probes), eval, embed, reproduce,
bench, demo. Heavy imports stay inside the verb functions.
"""

from __future__ import annotations

import argparse
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

NAME = "speech"
RECIPES = Path(__file__).parent / "recipes"
DEFAULT_RECIPE = "tera"
DATA_VERSION = "1"


def load(config: str | None, profile: str | None, overrides: list[str] | dict[str, Any]) -> Any:  # -> TeraConfig
    from pretrainlab.core.config import load_config
    from pretrainlab.speech.config import TeraConfig

    return load_config(TeraConfig, config or DEFAULT_RECIPE, recipes_dir=RECIPES, profile=profile, overrides=overrides)


def synthetic_data(profile: str, seed: int = 0) -> Path:
    """The cached eSpeak NG corpus of ``profile`` (generated on first use)."""
    from pretrainlab.core.data import cached_synthetic
    from pretrainlab.speech import synthetic

    return cached_synthetic(NAME, synthetic.generate, profile, seed, version=DATA_VERSION)


def _data_args(p: argparse.ArgumentParser) -> None:
    add_data_args(p, "LibriSpeech-style FLAC + transcripts + alignments")


def _data(a: argparse.Namespace) -> int:
    from pretrainlab.speech.synthetic import generate

    return run_generate(generate, a)


def _pretrain(a: argparse.Namespace) -> int:
    from pretrainlab.speech.tera import pretrain

    cfg = load(a.config, a.profile, a.overrides)
    data = a.data or synthetic_data(cfg.data_profile)
    run = a.out or default_run_dir(NAME, Path(str(a.config or DEFAULT_RECIPE)).stem)
    pretrain(cfg, data, run, resume=a.resume)
    print(run)
    return 0


def _probe_args(p: argparse.ArgumentParser, ckpt_flag: str) -> None:
    p.add_argument(ckpt_flag, type=Path, default=None, help="TERA run / checkpoint folder (omit for the log-mel baseline)")
    p.add_argument("--data", type=Path, default=None, help="LibriSpeech + Speech Commands root (default: synthetic)")
    p.add_argument("--profile", default="smoke", choices=["smoke", "tiny", "full"], help="probe settings / synthetic set")
    p.add_argument("--tasks", nargs="+", default=["phone_linear", "phone_1hidden", "keyword", "speaker"],
                   choices=["phone_linear", "phone_1hidden", "keyword", "speaker"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="probe.* overrides, e.g. probe.epochs=50")


def _run_probes(a: argparse.Namespace, ckpt: Path | None, out: Path) -> dict[str, float]:
    from pretrainlab.core.io import atomic_write_json
    from pretrainlab.core.train import select_device
    from pretrainlab.speech.downstream import ProbeData, evaluate, write_probes
    from pretrainlab.speech.upstream import load_upstream

    cfg = load(None, a.profile, a.overrides)
    encoder = None
    if ckpt is not None:
        task, tcfg, _ = load_upstream(ckpt)
        import dataclasses

        encoder, cfg = task.encoder, dataclasses.replace(tcfg, probe=cfg.probe, data_profile=cfg.data_profile)
    data = a.data or synthetic_data(cfg.data_profile)
    pdata = ProbeData.build(data, cfg.features, cfg.subset, cfg.probe.max_utterances)
    metrics, probes = evaluate(encoder, pdata, cfg.probe, seed=a.seed, device=select_device("auto"), tasks=tuple(a.tasks))
    write_probes(out, probes, pdata, metrics)
    atomic_write_json(out / "metrics.json", metrics)
    print("  ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    print(out / "metrics.json")
    return metrics


def _finetune(a: argparse.Namespace) -> int:
    out = a.out or default_run_dir(NAME, "downstream")
    _run_probes(a, a.init, out)
    return 0


def _eval(a: argparse.Namespace) -> int:
    from pretrainlab.core.checkpoint import find_checkpoint

    if a.ckpt is None:
        out = a.out or default_run_dir(NAME, "logmel-baseline")
    else:
        out = a.out or find_checkpoint(a.ckpt)
    _run_probes(a, a.ckpt, out)
    return 0


def _embed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--input", type=Path, required=True, help="an audio file or a folder of them")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--all-layers", action="store_true", help="write (K, T, H): input representation + every layer")
    p.add_argument("--device", default="cpu")


def _embed(a: argparse.Namespace) -> int:
    from pretrainlab.speech.upstream import embed_files

    embed_files(a.ckpt, a.input, a.out, a.all_layers, a.device)
    return 0


def _bench(a: argparse.Namespace) -> int:
    from pretrainlab.speech.bench import run_bench

    run_bench(a)
    return 0


def get_domain() -> Domain:
    return Domain(
        name=NAME, title="TERA speech pre-training (time / frequency / magnitude alteration)",
        paper="Liu, Li, Lee 2021, TERA: Self-Supervised Learning of Transformer Encoder Representation for Speech",
        extra="speech",
        verbs=[
            Verb("data", "write the eSpeak NG corpus (LibriSpeech + CPC/HTS alignments + Speech Commands)",
                 _data_args, _data, "pretrainlab speech data --out data/speech --profile tiny"),
            Verb("pretrain", "TERA pre-training (recipes: tera, tera_time_freq, mockingjay)",
                 lambda p: add_config_args(p, DEFAULT_RECIPE), _pretrain,
                 "pretrainlab speech pretrain --config tera --profile smoke train.lr=1e-3"),
            Verb("finetune", "train downstream probes on a frozen upstream (s3prl protocol)",
                 lambda p: _probe_args(p, "--init"), _finetune,
                 "pretrainlab speech finetune --init runs/speech/<run> --tasks phone_linear keyword"),
            Verb("eval", "phone / keyword / speaker probes of a checkpoint (no --ckpt: log-mel baseline)",
                 lambda p: _probe_args(p, "--ckpt"), _eval,
                 "pretrainlab speech eval --ckpt runs/speech/<run> --data data/speech"),
            Verb("embed", "write per-utterance (T, D) features (.npy) at the 10 ms hop", _embed_args, _embed,
                 "pretrainlab speech embed --ckpt runs/speech/<run> --input audio/ --out feats/ --all-layers"),
            reproduce_verb(NAME, "log-mel vs time / time+freq / TERA on phone, keyword, speaker probes, >= 3 seeds",
                           "pretrainlab.speech.reproduce:reproduce"),
            Verb("bench", "pre-training frames/s, peak memory, feature extraction x real time", add_bench_args, _bench,
                 "pretrainlab speech bench --device cuda --precision bf16 --steps 200"),
            demo_verb(NAME),
        ],
    )
