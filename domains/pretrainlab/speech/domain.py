"""The command line of the speech domain: ``pretrainlab speech <verb>`` (nothing imports this file).

Standard verbs from ``api.SPEC`` (data, pretrain, finetune = the probe protocol, reproduce, report,
demo, bench); ``eval`` is replaced (``--ckpt`` is optional: without it the log-mel baseline is probed)
and the domain adds ``embed`` and ``export`` (s3prl interop).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pretrainlab.core.domain import Verb, write_metrics
from pretrainlab.speech import api
from pretrainlab.speech.config import PROBE_TASKS


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, default=None,
                   help="a probe run (from finetune), a TERA run / checkpoint folder, or an s3prl states-*.ckpt "
                        "(omit: the log-mel baseline)")
    p.add_argument("--data", type=Path, default=None, help="LibriSpeech + Speech Commands root (default: synthetic)")
    p.add_argument("--profile", default=None, choices=["smoke", "tiny", "full"],
                   help="probe settings for an upstream (default: full with --data, else the checkpoint's "
                        "synthetic profile, else smoke)")
    p.add_argument("--tasks", nargs="+", default=None, choices=PROBE_TASKS, help="default: every probe")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None,
                   help="metrics JSON (default: metrics.json beside the checkpoint, or in the current folder)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="probe.* overrides, e.g. probe.max_steps=2000")


def _eval(a: argparse.Namespace) -> int:
    from pretrainlab.core.checkpoint import find_checkpoint

    metrics = api.evaluate(a.ckpt, data=a.data, profile=a.profile, tasks=a.tasks, seed=a.seed,
                           overrides=a.overrides)
    if a.out is not None:
        out = a.out
    elif a.ckpt is not None and not api.is_s3prl_file(a.ckpt):
        out = find_checkpoint(a.ckpt) / "metrics.json"
    else:
        out = Path("metrics.json")
    print(write_metrics(out, metrics))
    print(", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))
    return 0


def _embed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True, help="TERA run / checkpoint folder or an s3prl states-*.ckpt")
    p.add_argument("--input", type=Path, required=True, help="an audio file or a folder of them")
    p.add_argument("--out", type=Path, required=True, help="folder for <relative path>.npy")
    p.add_argument("--layer", type=int, default=-1,
                   help="hidden state to write: -1 the last layer (default), 0 the input representation, 1..L")
    p.add_argument("--all-layers", action="store_true", help="write (K, T, H): input representation + every layer")
    p.add_argument("--device", default="cpu")


def _embed(a: argparse.Namespace) -> int:
    api.embed(a.ckpt, a.input, a.out, a.layer, a.all_layers, a.device)
    return 0


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True, help="TERA run / checkpoint folder")
    p.add_argument("--format", default="s3prl", choices=["s3prl"], help="s3prl: the released states-*.ckpt layout")
    p.add_argument("--out", type=Path, required=True, help="file to write, e.g. states-200000.ckpt")


def _export(a: argparse.Namespace) -> int:
    api.export(a.ckpt, a.out)
    return 0


def get_domain() -> Any:
    return api.SPEC.cli([
        Verb("eval", "probe test accuracies: a finetune run's probes, or the whole protocol for an upstream / "
             "the log-mel baseline (no --ckpt)", _eval_args, _eval,
             "pretrainlab speech eval --ckpt runs/speech/<probe run> --out metrics.json"),
        Verb("embed", "per-utterance hidden states (.npy, (T, H) at the 10 ms hop) of a pretrainlab or s3prl "
             "checkpoint", _embed_args, _embed,
             "pretrainlab speech embed --ckpt states-1000000.ckpt --input audio/ --out feats/ --layer -1"),
        Verb("export", "write a TERA checkpoint in s3prl's states-*.ckpt layout (for s3prl / SUPERB)",
             _export_args, _export,
             "pretrainlab speech export --ckpt runs/speech/<run> --format s3prl --out states.ckpt"),
    ])
