"""The command line of the CT domain: ``pretrainlab ct <verb>`` (the CLI only; nothing imports it).

Standard verbs from ``api.SPEC`` (data, pretrain, reproduce, report, demo, bench), ``finetune`` and
``eval`` with the downstream task's arguments, and the domain's own ``reduce`` and ``export-png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pretrainlab.core.domain import Verb, add_config_args, default_run_dir, run_folder, write_metrics
from pretrainlab.ct.api import SPEC

THRESHOLD_FIELD = {"hash": "hash_k", "every_n": "every_n", "ssim": "ssim_threshold", "mi": "mi_threshold",
                   "deepnet": "deepnet_threshold"}
STRATEGIES = ("all", "every_n", "ssim", "mi", "deepnet", "hash")
TASKS = ("covid", "organ", "organ64", "brain")


def _reduce_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", type=Path, default=None,
                   help="a flat folder of <volume>_<index>.png (the reference's export), a NIfTI file, a DICOM series "
                        "folder, or a folder of those (default: the generated tiny phantoms)")
    p.add_argument("--out", type=Path, required=True, help="flat folder for the kept PNGs + reduction.json")
    p.add_argument("--method", "--strategy", dest="method", default="hash", choices=STRATEGIES,
                   help="hash (the reference), all, or this project's extensions every_n / ssim / mi / deepnet")
    p.add_argument("--k", "--threshold", dest="k", type=float, default=None,
                   help="hash: k, the largest Hamming distance of a duplicate (default 6); every_n: N; "
                        "ssim / mi / deepnet: the similarity threshold")
    p.add_argument("--reference-png", action="store_true",
                   help="read a LIDC-IDRI DICOM tree exactly as the reference exports it (volumes = patients, slices "
                        "in the order of their <patient>_<i>.png names)")
    p.add_argument("--ckpt", type=Path, default=None, help="deepnet: a pre-training run whose backbone embeds")
    p.add_argument("--config", default=SPEC.default_recipe, help="recipe for the pre-processing / reduction defaults")
    p.add_argument("--profile", default="tiny", choices=["smoke", "tiny", "full"])
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. preprocess.skip_bad_volumes=true")


def _reduce(a: argparse.Namespace) -> int:
    from pretrainlab.core.config import ConfigError, parse_overrides
    from pretrainlab.core.data import DataError
    from pretrainlab.ct import api

    if a.out.exists() and not a.overwrite:
        raise DataError(a.out, "already exists; pass --overwrite to replace it")
    over: dict[str, Any] = {"reduction.strategy": a.method}
    if a.reference_png:
        over["preprocess.reference_png"] = True
    if a.k is not None and a.method in THRESHOLD_FIELD:
        field = THRESHOLD_FIELD[a.method]
        if field in ("hash_k", "every_n"):
            if a.k != int(a.k):
                raise ConfigError(f"--k {a.k:g}: {a.method} needs a whole number (reduction.{field})")
            over[f"reduction.{field}"] = int(a.k)
        else:
            over[f"reduction.{field}"] = float(a.k)
    over.update(parse_overrides(a.overrides))
    cfg = api.load(a.config, a.profile, over)
    src = a.input or api.pretrain_folder(api.synthetic_data(cfg.data.profile))
    api.reduce(cfg, src, a.out, ckpt=a.ckpt, overwrite=a.overwrite)
    print(a.out / "reduction.json")
    return 0


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", type=Path, required=True, help="the LIDC-IDRI folder: <patient>/<study>/<series>/*.dcm")
    p.add_argument("--out", type=Path, required=True, help="the flat folder of <patient>_<i>.png to create")
    p.add_argument("--min-files", type=int, default=10, help="export series folders with MORE than this many files "
                                                              "(the reference's 10: CT, not X-ray)")
    p.add_argument("--overwrite", action="store_true")


def _export(a: argparse.Namespace) -> int:
    from pretrainlab.core.config import ConfigError
    from pretrainlab.ct import api

    if a.min_files < 0:
        raise ConfigError(f"--min-files {a.min_files}: expected a number >= 0")
    api.export_png(a.input, a.out, a.min_files, overwrite=a.overwrite)
    print(a.out)
    return 0


def _finetune_args(p: argparse.ArgumentParser) -> None:
    add_config_args(p, "finetune")
    p.add_argument("--init", type=Path, default=None, help="pre-training run / checkpoint (default: random init)")
    p.add_argument("--task", default=None, choices=TASKS, help="downstream task (default: the recipe's, covid)")


def _finetune(a: argparse.Namespace) -> int:
    from pretrainlab.ct import api

    over = list(a.overrides or []) + ([f"task={a.task}"] if a.task else [])
    cfg = api.load(a.config, a.profile, over)
    data = a.data or api.synthetic_data(cfg.data.profile)
    run = a.out or default_run_dir(SPEC.name, f"finetune-{cfg.task}")
    with run_folder(run, a.resume, a.overwrite) as r:
        _, m = api.finetune(cfg, data, r, init=a.init, resume=a.resume)
    print(run / "metrics.json")
    print(", ".join(f"{k}={v:.4g}" for k, v in m.items() if isinstance(v, float)))
    return 0


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True, help="a finetune run (its best/ weights) or checkpoint")
    p.add_argument("--data", type=Path, default=None, help="dataset root (default: the generated set)")
    p.add_argument("--task", default=None, choices=TASKS, help="must be the classifier's task (default: it)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--out", type=Path, default=None,
                   help="metrics JSON (default: eval-<task>-<split>.json beside the classifier's weights)")


def _eval(a: argparse.Namespace) -> int:
    from pretrainlab.ct import api

    m = api.evaluate(a.ckpt, a.data, task=a.task, split=a.split)
    out = a.out or Path(m["ckpt"]) / f"eval-{m['task']}-{a.split}.json"
    write_metrics(out, m)
    print(out)
    print(", ".join(f"{k}={v:.4g}" for k, v in m.items() if isinstance(v, float)))
    return 0


def _bench_args(p: argparse.ArgumentParser) -> None:
    from pretrainlab.core.domain import add_bench_args

    add_bench_args(p)
    p.add_argument("--volumes", type=int, default=4, help="end-to-end / hash benchmark: number of volumes (patients)")
    p.add_argument("--slices", type=int, default=60, help="slices per volume")
    p.add_argument("--size", type=int, default=512, help="in-plane size of the slices")


def _bench(a: argparse.Namespace) -> int:
    from pretrainlab.core.bench import report
    from pretrainlab.core.config import ConfigError
    from pretrainlab.ct.bench import bench

    for key in ("volumes", "slices", "size", "steps"):
        if getattr(a, key) < 1:
            raise ConfigError(f"--{key} {getattr(a, key)}: expected a number >= 1")
    if a.warmup < 0:
        raise ConfigError(f"--warmup {a.warmup}: expected a number >= 0")
    report(bench(a.device, a.steps, a.warmup, a.batch_size, a.precision, a.compile, a.volumes, a.slices, a.size), a.out)
    return 0


def get_domain() -> Any:
    return SPEC.cli([
        Verb("reduce", "keep the reference's Hash-k (or another strategy's) slices of every volume -> a flat folder",
             _reduce_args, _reduce, "pretrainlab ct reduce --method hash --k 6 --input FLAT_DIR --out OUT_DIR"),
        Verb("export-png", "the reference's LIDC-IDRI DICOM -> flat PNG export (LIDC_3DDICOM_to_2Dpng.py)",
             _export_args, _export, "pretrainlab ct export-png --input /data/LIDC-IDRI --out /data/lidc_png"),
        Verb("finetune", "downstream classifier from a pre-training run (--init) or from scratch; ROC AUC",
             _finetune_args, _finetune, "pretrainlab ct finetune --init runs/ct/<pretrain-run> --task covid --profile tiny"),
        Verb("eval", "ROC AUC / accuracy of a fine-tuned classifier on its task",
             _eval_args, _eval, "pretrainlab ct eval --ckpt runs/ct/<finetune-run> --data data/ct"),
        Verb("bench", "ct reduce end to end vs the reference pipeline; the hash step; SwAV steps (JSON)",
             _bench_args, _bench, "pretrainlab ct bench --device cuda --precision bf16 --steps 200"),
    ])
