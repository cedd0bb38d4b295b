"""CLI registration of the CT domain: ``pretrainlab ct <verb>``.

Verbs: data, reduce, pretrain, finetune, eval, reproduce, demo, bench. Heavy imports stay inside
the verb functions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from torch import nn

    from pretrainlab.ct.config import CTConfig
    from pretrainlab.ct.downstream import Classifier

NAME = "ct"
RECIPES = Path(__file__).parent / "recipes"
DEFAULT_RECIPE = "hash6"
DATA_VERSION = "1"


def load(config: str | None, profile: str | None, overrides: list[str] | dict[str, Any] = ()) -> CTConfig:
    """defaults <- ``base.yaml`` (+ its profile block) <- the recipe (+ its profile block) <- overrides."""
    from pretrainlab.core.config import load_config, merge, parse_overrides, read_yaml, resolve_recipe
    from pretrainlab.ct.config import CTConfig

    cfg = load_config(CTConfig, RECIPES / "base.yaml", profile=profile)
    path = resolve_recipe(config or DEFAULT_RECIPE, RECIPES)
    data = read_yaml(path)
    profiles = data.pop("profiles", {}) or {}
    cfg = merge(cfg, data)
    if profile is not None:
        cfg = merge(cfg, profiles.get(profile, {}) or {})
    ov = overrides if isinstance(overrides, dict) else parse_overrides(list(overrides))
    return merge(cfg, ov)


def synthetic_data(profile: str, seed: int = 0) -> Path:
    from pretrainlab.core.data import cached_synthetic
    from pretrainlab.ct import phantom

    return cached_synthetic(NAME, phantom.generate, profile, seed, version=DATA_VERSION)


def resolve_data(data: Path | None, profile: str) -> Path:
    """``--data`` or the cached synthetic set of ``profile``."""
    return Path(data) if data is not None else synthetic_data(profile)


def pretrain_folder(root: Path) -> Path:
    """``root/pretrain`` when present (the generated layout), else ``root`` itself."""
    return root / "pretrain" if (root / "pretrain").is_dir() else root


def downstream_folder(root: Path) -> Path:
    return root / "downstream" if (root / "downstream").is_dir() else root


# ------------------------------------------------------------------------------------------ data
def _data_args(p: argparse.ArgumentParser) -> None:
    add_data_args(p, "NIfTI + DICOM volumes, downstream tasks")


def _data(a: argparse.Namespace) -> int:
    from pretrainlab.ct.phantom import generate

    return run_generate(generate, a)


# ------------------------------------------------------------------------------------------ reduce
THRESHOLD_FIELD = {"hash": "hash_k", "every_n": "every_n", "ssim": "ssim_threshold", "mi": "mi_threshold",
                   "deepnet": "deepnet_threshold"}


def _reduce_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", type=Path, default=None,
                   help="a NIfTI file, a DICOM series folder, a PNG slice folder or a folder of those "
                        "(default: the generated tiny phantoms)")
    p.add_argument("--strategy", default="hash", choices=["all", "every_n", "ssim", "mi", "deepnet", "hash"])
    p.add_argument("--threshold", type=float, default=None,
                   help="hash: k (max Hamming distance, default 6); every_n: N; ssim / mi / deepnet: similarity threshold")
    p.add_argument("--out", type=Path, required=True, help="folder for the kept PNG slices + reduction.json")
    p.add_argument("--ckpt", type=Path, default=None, help="deepnet: a pre-training run / checkpoint whose backbone embeds")
    p.add_argument("--config", default=DEFAULT_RECIPE, help="recipe for the pre-processing / reduction defaults")
    p.add_argument("--profile", default="tiny", choices=["smoke", "tiny", "full"])
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("overrides", nargs="*", metavar="key=value")


def load_backbone(ckpt: Path) -> tuple[nn.Module, CTConfig]:
    """The backbone of a pre-training run / checkpoint (its config is read from the checkpoint)."""
    from pretrainlab.core.checkpoint import (
        CheckpointError,
        find_checkpoint,
        load_tensors,
        load_weights,
        read_meta,
    )
    from pretrainlab.core.config import from_dict
    from pretrainlab.ct.config import CTConfig
    from pretrainlab.ct.resnet import build_backbone

    folder = find_checkpoint(ckpt)
    cfg = from_dict(CTConfig, read_meta(folder)["config"])
    net, _ = build_backbone(cfg.model)
    keys = load_tensors(folder / "model.safetensors")[0].keys()
    for prefix in ("backbone.", "model.backbone."):  # a pre-training or a fine-tuning checkpoint
        if any(k.startswith(prefix) for k in keys):
            load_weights(net, folder / "model.safetensors", prefix=prefix)
            return net.eval(), cfg
    raise CheckpointError(f"{folder}: holds no CT backbone weights (no 'backbone.' keys)")


def _embedder(cfg: CTConfig, ckpt: Path | None) -> Any:
    from pretrainlab.core.checkpoint import CheckpointError
    from pretrainlab.core.demo import newest_checkpoint
    from pretrainlab.ct.selective_reduction import make_embedder

    src = ckpt or (Path(cfg.reduction.deepnet_weights) if cfg.reduction.deepnet_weights else None) or newest_checkpoint(NAME)
    if src is None:
        raise CheckpointError("deepnet needs a pre-trained backbone: give --ckpt (a pretrain run) or "
                              "reduction.deepnet_weights, or run `pretrainlab ct pretrain --config all` first")
    net, pcfg = load_backbone(Path(src))
    print(f"deepnet: embedding with the backbone of {src}", file=sys.stderr)
    return make_embedder(net, pcfg.model.image_size, pcfg.ssl.norm_mean, pcfg.ssl.norm_std)


def _reduce(a: argparse.Namespace) -> int:
    from pretrainlab.core.data import DataError

    if a.out.exists() and not a.overwrite:
        raise DataError(a.out, "already exists; pass --overwrite to replace it")
    from pretrainlab.ct.selective_reduction import load_volumes, reduce_all, write_reduction

    over: dict[str, Any] = {"reduction.strategy": a.strategy}
    if a.threshold is not None and a.strategy in THRESHOLD_FIELD:
        field = THRESHOLD_FIELD[a.strategy]
        over[f"reduction.{field}"] = int(a.threshold) if field in ("hash_k", "every_n") else float(a.threshold)
    from pretrainlab.core.config import parse_overrides

    over.update(parse_overrides(a.overrides))
    cfg = load(a.config, a.profile, over)
    src = a.input or pretrain_folder(synthetic_data(cfg.data_profile))
    volumes = load_volumes(src, cfg.preprocess, num_workers=cfg.preprocess.reader_workers)
    embed = _embedder(cfg, a.ckpt) if a.strategy == "deepnet" else None
    kept, report = reduce_all(volumes, cfg.reduction, embed)
    report["input"] = str(src)
    write_reduction(a.out, volumes, kept, report, overwrite=a.overwrite)
    print(a.out / "reduction.json")
    return 0


# ------------------------------------------------------------------------------------------ pretrain
def _pretrain(a: argparse.Namespace) -> int:
    from pretrainlab.core.io import atomic_write_json
    from pretrainlab.ct.pretraining import pretrain
    from pretrainlab.ct.selective_reduction import reduce_and_gather

    cfg = load(a.config, a.profile, a.overrides)
    root = resolve_data(a.data, cfg.data_profile)
    run = a.out or default_run_dir(NAME, f"pretrain-{Path(str(a.config)).stem}")
    embed = _embedder(cfg, None) if cfg.reduction.strategy == "deepnet" else None
    slices, report = reduce_and_gather(pretrain_folder(root), cfg.preprocess, cfg.reduction, cfg.model.image_size, embed,
                                       skip_bad=cfg.preprocess.skip_bad_volumes)
    Path(run).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(run) / "reduction.json", report)
    pretrain(cfg, slices, run, resume=a.resume)
    print(run)
    return 0


# ------------------------------------------------------------------------------------------ finetune / eval
def _finetune_args(p: argparse.ArgumentParser) -> None:
    add_config_args(p, DEFAULT_RECIPE)
    p.add_argument("--init", type=Path, default=None, help="pre-training run / checkpoint (default: random init)")
    p.add_argument("--task", default="lesion", choices=["lesion", "organ", "organ64"])


def _finetune(a: argparse.Namespace) -> int:
    import dataclasses

    from pretrainlab.core.io import atomic_write_json
    from pretrainlab.ct.downstream import finetune

    cfg = load(a.config, a.profile, a.overrides)
    state = None
    if a.init is not None:
        net, pcfg = load_backbone(a.init)
        cfg = dataclasses.replace(cfg, model=pcfg.model, ssl=pcfg.ssl)
        state = net.state_dict()
    root = resolve_data(a.data, cfg.data_profile)
    run = a.out or default_run_dir(NAME, f"finetune-{a.task}")
    m = finetune(cfg, downstream_folder(root), a.task, Path(run), state)
    m["task"], m["init"] = a.task, str(a.init) if a.init else "random"
    atomic_write_json(Path(run) / "metrics.json", m)
    print(json.dumps(m, indent=2))
    print(run)
    return 0


def load_classifier(ckpt: Path, n_classes: int | None = None) -> tuple[Classifier, CTConfig]:
    """The fine-tuned classifier of a finetune run / checkpoint."""
    from pretrainlab.core.checkpoint import find_checkpoint, load_tensors, read_meta
    from pretrainlab.core.config import from_dict
    from pretrainlab.ct.config import CTConfig
    from pretrainlab.ct.downstream import Classifier

    folder = find_checkpoint(ckpt)
    cfg = from_dict(CTConfig, read_meta(folder)["config"])
    w, _ = load_tensors(folder / "model.safetensors")
    if "model.head.weight" not in w:
        from pretrainlab.core.checkpoint import CheckpointError

        raise CheckpointError(f"{folder}: not a fine-tuned CT classifier (no model.head.weight)")
    model = Classifier(cfg, n_classes or int(w["model.head.weight"].shape[0]))
    model.load_state_dict({k[len("model."):]: v for k, v in w.items() if k.startswith("model.")})
    return model.eval(), cfg


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True, help="a finetune run / checkpoint")
    p.add_argument("--data", type=Path, default=None, help="dataset root (default: the generated set)")
    p.add_argument("--task", default=None, choices=["lesion", "organ", "organ64"], help="default: from the classifier's classes")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--out", type=Path, default=None, help="metrics.json path (default: next to the checkpoint)")


def _eval(a: argparse.Namespace) -> int:
    from pretrainlab.core.checkpoint import find_checkpoint
    from pretrainlab.core.io import atomic_write_json
    from pretrainlab.ct.downstream import ArrayDataset, metrics, predict
    from pretrainlab.ct.readers import read_task

    model, cfg = load_classifier(a.ckpt)
    n = model.head.out_features
    task = a.task or ("lesion" if n == 2 else "organ")
    root = downstream_folder(resolve_data(a.data, cfg.data_profile))
    x, y, _ = read_task(root, task, a.split)
    ds = ArrayDataset(x, y, cfg.model.image_size)
    m: dict[str, Any] = metrics(predict(model, ds.images), ds.labels)
    m.update({"task": task, "split": a.split, "n": len(ds), "ckpt": str(find_checkpoint(a.ckpt))})
    out = a.out or find_checkpoint(a.ckpt) / "metrics.json"
    atomic_write_json(out, m)
    print(json.dumps(m, indent=2))
    return 0


# ------------------------------------------------------------------------------------------ reproduce / bench
def _bench_args(p: argparse.ArgumentParser) -> None:
    add_bench_args(p)
    p.add_argument("--profile", default="auto", choices=["auto", "smoke", "tiny", "full"],
                   help="model scale of the SwAV benchmark (full: ResNet-50, 2x224 + 6x96 crops; auto: full on CUDA, tiny on CPU)")
    p.add_argument("--volumes", type=int, default=8, help="Hash-k benchmark: number of volumes")
    p.add_argument("--slices", type=int, default=120, help="Hash-k benchmark: slices per volume")
    p.add_argument("--size", type=int, default=512, help="Hash-k benchmark: in-plane size")


def _bench(a: argparse.Namespace) -> int:
    from pretrainlab.core.bench import report
    from pretrainlab.ct.bench import run_bench

    report(run_bench(a), a.out)
    return 0


def get_domain() -> Domain:
    return Domain(
        name=NAME, title="CT: selective data reduction before contrastive pre-training",
        paper="Wolf et al. 2024, Less is More: Selective Reduction of CT Data for Self-Supervised Pre-Training",
        extra="ct",
        verbs=[
            Verb("data", "write synthetic CT phantoms (NIfTI + DICOM series) and the two downstream tasks", _data_args, _data,
                 "pretrainlab ct data --out data/ct --profile tiny"),
            Verb("reduce", "select pre-training slices per volume (hash / ssim / mi / deepnet / every_n / all)", _reduce_args,
                 _reduce, "pretrainlab ct reduce --input data/ct/pretrain --strategy hash --threshold 6 --out runs/ct/hash6"),
            Verb("pretrain", "reduce, then SwAV (or SimCLR / MoCo) pre-training", lambda p: add_config_args(p, DEFAULT_RECIPE),
                 _pretrain, "pretrainlab ct pretrain --config hash6 --profile tiny"),
            Verb("finetune", "downstream classifier (backbone frozen, then unfrozen); ROC AUC", _finetune_args, _finetune,
                 "pretrainlab ct finetune --init runs/ct/<pretrain-run> --task lesion --profile tiny"),
            Verb("eval", "ROC AUC / accuracy of a fine-tuned classifier", _eval_args, _eval,
                 "pretrainlab ct eval --ckpt runs/ct/<finetune-run> --task lesion"),
            reproduce_verb(NAME, "no pre-training / ALL / EveryN / SSIM / MI / DeepNet / Hash-6, >= 3 seeds",
                           "pretrainlab.ct.reproduce:reproduce"),
            Verb("bench", "vectorised Hash-k vs the per-slice imagehash loop; SwAV samples/s and memory", _bench_args, _bench,
                 "pretrainlab ct bench --device cuda --precision bf16 --steps 200"),
            demo_verb(NAME),
        ],
    )
