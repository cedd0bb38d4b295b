"""The public API of the CT domain (Wolf et al. 2024, "Less is More"): what the CLI verbs, the table,
the benchmark and the demo call. ``reproduce.py``, ``bench.py`` and ``apps/ct/app.py`` import only this
module (and the core). Heavy imports stay inside the functions (``--help`` imports this file).

Standard contract: ``SPEC``, ``load``, ``synthetic_data``, ``pretrain``, ``finetune``, ``load_task``,
``evaluate``. The domain's own verbs: ``reduce`` (a folder / archive -> the reference's flat folder
of kept PNGs + ``reduction.json``) and ``export_png`` (the reference's DICOM -> PNG export).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pretrainlab.core.domain import DomainSpec

SPEC = DomainSpec(
    name="ct", title="CT: selective data reduction before contrastive pre-training",
    paper="Wolf et al. 2024, Less is More: Selective Reduction of CT Data for Self-Supervised Pre-Training",
    package="pretrainlab.ct", config="pretrainlab.ct.config:CTConfig", default_recipe="hash6",
    configs={"finetune": "pretrainlab.ct.config:DownstreamConfig"},
    generator="pretrainlab.ct.synthetic:generate", recipes=Path(__file__).parent / "recipes", data_version="2",
    data_help="CT phantoms (NIfTI + DICOM series) and the downstream sets (COVID-CT layout, OrganSMNIST .npz)",
    readers={
        "NIfTI .nii / .nii.gz": "pretrainlab.ct.formats:read_nifti",
        "DICOM series folder": "pretrainlab.ct.formats:read_dicom_series",
        "flat PNG folder <volume>_<index>.png (the reference's export)": "pretrainlab.ct.formats:flat_groups",
        "LIDC-IDRI tree, read as the reference exports it": "pretrainlab.ct.lidc:reference_sources",
        "COVID-CT (CT_COVID/, CT_NonCOVID/, Data-split/*.txt)": "pretrainlab.ct.formats:read_covid_ct",
        "OrganSMNIST .npz (MedMNIST)": "pretrainlab.ct.formats:read_organ",
        "brain hemorrhage (train|test/<class>/*)": "pretrainlab.ct.formats:read_brain",
    },
    reproduce_help="no pre-training / ALL / EveryN / SSIM / MI / DeepNet / Hash-6: downstream AUC and pre-training cost",
    examples={"pretrain": "pretrainlab ct pretrain --config hash6 --profile tiny",
              "finetune": "pretrainlab ct finetune --init runs/ct/<pretrain-run> --task covid --profile tiny",
              "eval": "pretrainlab ct eval --ckpt runs/ct/<finetune-run> --data data/ct"},
)
load = SPEC.load
synthetic_data = SPEC.synthetic_data


# ------------------------------------------------------------------------------------------ data
def pretrain_folder(root: Path) -> Path:
    """``root/pretrain`` when present (the generated layout), else ``root`` itself."""
    root = Path(root)
    return root / "pretrain" if (root / "pretrain").is_dir() else root


def _ct_config(cfg: Any, verb: str) -> Any:
    from pretrainlab.core.config import ConfigError
    from pretrainlab.ct.config import CTConfig

    if not isinstance(cfg, CTConfig):
        raise ConfigError(f"--config: `ct {verb}` takes a pre-training recipe (hash6, all, every_n, ssim, mi, deepnet, "
                          f"simclr, moco), got a {type(cfg).__name__}")
    return cfg


def _downstream_config(cfg: Any) -> Any:
    from pretrainlab.core.config import ConfigError
    from pretrainlab.ct.config import DownstreamConfig

    if not isinstance(cfg, DownstreamConfig):
        raise ConfigError(f"--config: `ct finetune` takes the fine-tuning recipe (finetune), got a {type(cfg).__name__} "
                          "(a pre-training recipe); pass the pre-training run with --init")
    return cfg


# ------------------------------------------------------------------------------------------ reduction
def embedder(cfg: Any, ckpt: Path | None = None) -> Any:
    """The DeepNet embedder: the backbone of ``ckpt`` / ``reduction.deepnet_weights`` / the newest
    pre-training run (CheckpointError when there is none)."""
    import sys

    from pretrainlab.core.checkpoint import CheckpointError
    from pretrainlab.ct.selective_reduction import make_embedder

    src = ckpt or (Path(cfg.reduction.deepnet_weights) if cfg.reduction.deepnet_weights else None) or \
        newest_pretrain_checkpoint()
    if src is None:
        raise CheckpointError("deepnet needs a pre-trained backbone: give --ckpt (a pretrain run) or "
                              "reduction.deepnet_weights, or run `pretrainlab ct pretrain --config all` first")
    src = Path(src)
    if src.is_file():  # backbone weights alone (reduction.deepnet_weights): the recipe's model config
        net, pcfg = backbone_from_file(src, cfg), cfg
    else:
        net, pcfg = load_backbone(src)
    print(f"deepnet: embedding with the backbone of {src}", file=sys.stderr)
    return make_embedder(net, pcfg.model.image_size, pcfg.ssl.norm_mean, pcfg.ssl.norm_std)


def newest_pretrain_checkpoint() -> Path | None:
    """The newest pre-training checkpoint (SwAV / SimCLR / MoCo) under ``runs/ct`` (fine-tuning runs skipped)."""
    import json

    from pretrainlab.core.data import runs_root

    root = runs_root() / SPEC.name
    if not root.exists():
        return None
    for p in sorted(root.rglob("step_*/meta.json"), key=lambda q: q.stat().st_mtime, reverse=True):
        try:
            if "ssl" in (json.loads(p.read_text()).get("config") or {}):
                return p.parent
        except (OSError, json.JSONDecodeError):
            continue
    return None


def backbone_from_file(path: Path, cfg: Any) -> Any:
    """A ``.safetensors`` file of backbone weights (keys with or without a ``backbone.`` prefix) in the
    architecture of ``cfg.model``; CheckpointError naming the file when it is not one."""
    from pretrainlab.core.checkpoint import CheckpointError, load_tensors
    from pretrainlab.ct.resnet import build_backbone

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: not a checkpoint; pass a pre-training run folder or a .safetensors file of "
                              "backbone weights")
    try:
        w, _ = load_tensors(path)
    except Exception as e:  # safetensors raises its own error types for foreign / truncated files
        raise CheckpointError(f"{path}: not a readable .safetensors file ({type(e).__name__}: {e})") from e
    for prefix in ("backbone.", "encoder.backbone.", "model.backbone.", ""):
        sub = {k[len(prefix):]: v for k, v in w.items() if k.startswith(prefix)}
        if sub:
            net, _ = build_backbone(cfg.model)
            try:
                net.load_state_dict(sub)
            except RuntimeError as e:
                if prefix:
                    continue
                raise CheckpointError(f"{path}: the weights do not fit model.arch={cfg.model.arch} "
                                      f"(width {cfg.model.width}): {str(e).splitlines()[0]}") from e
            return net.eval()
    raise CheckpointError(f"{path}: holds no backbone weights")


def reduce(cfg: Any, src: Path, out: Path, ckpt: Path | None = None, overwrite: bool = False,
           progress: bool = True) -> dict[str, Any]:
    """Reduce every volume under ``src`` into the flat folder ``out`` (see ``selective_reduction``)."""
    from pretrainlab.ct.selective_reduction import reduce_to_folder

    cfg = _ct_config(cfg, "reduce")
    embed = embedder(cfg, ckpt) if cfg.reduction.strategy == "deepnet" else None
    return reduce_to_folder(src, out, cfg.preprocess, cfg.reduction, embed, overwrite=overwrite, progress=progress)


def export_png(src: Path, out: Path, min_files: int = 10, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """The reference's LIDC DICOM -> flat PNG export (``pretrainlab.ct.lidc.export_png``)."""
    from pretrainlab.ct.lidc import export_png as _export

    return _export(src, out, min_files, overwrite, progress)


def load_volumes(path: Path, pre: Any = None, progress: bool = True, num_workers: int = 0) -> list[tuple[str, Any]]:
    from pretrainlab.ct.selective_reduction import load_volumes as _load

    return _load(path, pre, progress, num_workers)


# ------------------------------------------------------------------------------------------ training
def pretrain(cfg: Any, data: Path, run: Path, resume: bool = False) -> Any:
    """Reduce the pre-training volumes under ``data`` into ``run/reduced/`` (the reference's flat PNG
    folder, streamed), then pre-train on those PNGs; returns ``(task, TrainResult)``."""
    import json

    from pretrainlab.core.io import atomic_write_json
    from pretrainlab.ct.pretraining import pretrain as _pretrain
    from pretrainlab.ct.pretraining import pretrain_dataset

    cfg = _ct_config(cfg, "pretrain")
    run = Path(run)
    reduced = run / "reduced"
    if resume and (reduced / "reduction.json").exists():
        report = json.loads((reduced / "reduction.json").read_text())
    else:
        report = reduce(cfg, pretrain_folder(Path(data)), reduced, overwrite=resume, progress=cfg.train.progress)
    atomic_write_json(run / "reduction.json", {k: v for k, v in report.items() if k != "volumes"})
    files = sorted(p for p in reduced.iterdir() if p.suffix == ".png")
    return _pretrain(cfg, pretrain_dataset(cfg, files=files), run, resume=resume)


def pretrain_on_slices(cfg: Any, slices: Any, run: Path, resume: bool = False) -> Any:
    """Pre-train on in-memory ``(N, S, S)`` uint8 slices (the table: reductions computed once)."""
    from pretrainlab.ct.pretraining import pretrain as _pretrain

    return _pretrain(_ct_config(cfg, "pretrain"), slices, run, resume=resume)


def load_backbone(ckpt: Path) -> tuple[Any, Any]:
    """The backbone of a pre-training run / checkpoint and that run's config (read from the checkpoint)."""
    from pretrainlab.core.checkpoint import (
        CheckpointError,
        find_checkpoint,
        load_tensors,
        load_weights,
        read_meta,
    )
    from pretrainlab.core.config import ConfigError, from_dict
    from pretrainlab.ct.config import CTConfig
    from pretrainlab.ct.resnet import build_backbone

    folder = find_checkpoint(Path(ckpt))
    try:
        cfg = from_dict(CTConfig, read_meta(folder)["config"])
    except (KeyError, ConfigError, TypeError) as e:
        raise CheckpointError(f"{folder}: not a CT pre-training checkpoint ({e})") from e
    net, _ = build_backbone(cfg.model)
    keys = load_tensors(folder / "model.safetensors")[0].keys()
    for prefix in ("backbone.", "encoder.backbone."):
        if any(k.startswith(prefix) for k in keys):
            load_weights(net, folder / "model.safetensors", prefix=prefix)
            return net.eval(), cfg
    raise CheckpointError(f"{folder}: holds no CT backbone weights (no 'backbone.' keys)")


def finetune(cfg: Any, data: Path, run: Path, init: Path | None = None, resume: bool = False) -> Any:
    """Fine-tune the downstream classifier of ``cfg.task`` from ``init``'s backbone (or random);
    writes ``run/metrics.json`` (test metrics of the best-validation epoch) and ``run/best/``."""
    from pretrainlab.core.domain import write_metrics
    from pretrainlab.ct.downstream import finetune as _finetune

    cfg = _downstream_config(cfg)
    init_path = Path(init) if init else (Path(cfg.init) if cfg.init else None)
    state = None
    if init_path is not None:
        net, pcfg = load_backbone(init_path)
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(pcfg.model, image_size=cfg.model.image_size),
                                  init=str(init_path))
        state = net.state_dict()
    task, metrics = _finetune(cfg, Path(data), Path(run), state, resume=resume, progress=cfg.train.progress)
    metrics["init"] = str(init_path) if init_path else "random"
    write_metrics(Path(run) / "metrics.json", metrics)
    return task, metrics


def probe(init: Path | None, data: Path, task: str, profile: str = "tiny", seed: int = 0) -> dict[str, Any]:
    """Linear probe (frozen backbone, logistic regression) of ``init``'s backbone, or of a random one
    (``seed``), on ``task``: test ROC AUC / accuracy (``downstream.probe``)."""
    import torch

    from pretrainlab.ct.downstream import probe as _probe
    from pretrainlab.ct.resnet import build_backbone

    cfg = load("finetune", profile, [f"task={task}"])
    if init is not None:
        net, pcfg = load_backbone(Path(init))
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(pcfg.model, image_size=cfg.model.image_size))
    else:
        torch.manual_seed(seed)
        net, _ = build_backbone(cfg.model)
    return _probe(net, cfg, Path(data))


def classifier_folder(ckpt: Path) -> Path:
    """A fine-tuning run's ``best/`` weights (the tested ones), else the checkpoint itself."""
    from pretrainlab.core.checkpoint import find_checkpoint

    ckpt = Path(ckpt)
    for cand in (ckpt / "best", ckpt.parent / "best" if ckpt.name == "metrics.json" else None):
        if cand is not None and (cand / "model.safetensors").exists():
            return cand
    return find_checkpoint(ckpt)


def load_classifier(ckpt: Path) -> tuple[Any, Any]:
    """The fine-tuned classifier of a run / checkpoint and its config (with ``classes``)."""
    import json

    from pretrainlab.core.checkpoint import CheckpointError, load_tensors
    from pretrainlab.core.config import ConfigError, from_dict
    from pretrainlab.ct.config import DownstreamConfig
    from pretrainlab.ct.downstream import Classifier

    folder = classifier_folder(ckpt)
    try:
        meta = json.loads((folder / "meta.json").read_text())
        cfg = from_dict(DownstreamConfig, meta["config"])
    except (OSError, json.JSONDecodeError, KeyError, ConfigError, TypeError) as e:
        raise CheckpointError(f"{folder}: not a fine-tuned CT classifier ({type(e).__name__}: {e}); pass a "
                              "`pretrainlab ct finetune` run") from e
    w, _ = load_tensors(folder / "model.safetensors")
    if "model.head.weight" not in w:
        raise CheckpointError(f"{folder}: not a fine-tuned CT classifier (no model.head.weight)")
    n = int(w["model.head.weight"].shape[0])
    if cfg.classes and len(cfg.classes) != n:
        raise CheckpointError(f"{folder}: {n} outputs but {len(cfg.classes)} class names {list(cfg.classes)}")
    model = Classifier(cfg.model, n)
    model.load_state_dict({k[len("model."):]: v for k, v in w.items() if k.startswith("model.")})
    return model.eval(), cfg


def load_task(ckpt: Path) -> tuple[Any, Any]:
    """A checkpoint -> (task or classifier in eval mode, its config): a fine-tuning run gives its
    classifier (best epoch), a pre-training run its SwAV / SimCLR / MoCo task."""
    from pretrainlab.core.checkpoint import CheckpointError, find_checkpoint, load_weights, read_meta
    from pretrainlab.core.config import from_dict
    from pretrainlab.ct.config import CTConfig
    from pretrainlab.ct.contrastive import build_pretrain_task

    try:
        return load_classifier(ckpt)
    except CheckpointError:
        pass
    folder = find_checkpoint(Path(ckpt))
    cfg = from_dict(CTConfig, read_meta(folder)["config"])
    task = build_pretrain_task(cfg)
    load_weights(task, folder / "model.safetensors")
    if not hasattr(task, "backbone"):
        raise CheckpointError(f"{folder}: not a CT checkpoint")
    return task.eval(), cfg


def evaluate(ckpt: Path, data: Path | None = None, task: str | None = None, split: str = "test") -> dict[str, Any]:
    """Test metrics (ROC AUC, accuracy) of a fine-tuned classifier on ``split`` of its task. A
    ``task`` that is not the classifier's, or data whose class names differ from the ones it was
    trained on, is refused (ConfigError / DataError) before anything is computed."""
    from pretrainlab.core.config import ConfigError
    from pretrainlab.core.data import DataError
    from pretrainlab.ct.downstream import DownstreamDataset, input_spec, metrics, predict
    from pretrainlab.ct.formats import read_task

    model, cfg = load_classifier(Path(ckpt))
    if task is not None and task != cfg.task:
        raise ConfigError(f"--task {task}: the checkpoint is a {cfg.task} classifier (classes "
                          f"{', '.join(cfg.classes) or '?'}); evaluate it on {cfg.task} or fine-tune a {task} classifier")
    root = Path(data) if data else synthetic_data(cfg.data.profile)
    sp = read_task(root, cfg.task, split, cfg.finetune)
    if cfg.classes and tuple(sp.classes) != tuple(cfg.classes):
        raise DataError(sp.source, f"classes {list(sp.classes)} differ from the classifier's {list(cfg.classes)}")
    ds = DownstreamDataset(sp, dataclasses.replace(input_spec(cfg), flip_p=0.0))
    m = metrics(predict(model, ds.all_inputs()), ds.labels)
    m.update({"task": cfg.task, "split": split, "n": len(ds), "classes": list(cfg.classes),
              "ckpt": str(classifier_folder(Path(ckpt)))})
    return m


# ------------------------------------------------------------------------------------------ demo helpers
def classify_slice(model: Any, cfg: Any, slice_u8: Any) -> dict[str, float]:
    """A classifier's probabilities on one 8-bit slice ``(H, W)``, keyed by ITS class names."""
    import torch

    from pretrainlab.ct.downstream import downstream_input, input_spec

    spec = dataclasses.replace(input_spec(cfg), flip_p=0.0)
    with torch.no_grad():
        p = model.eval()(downstream_input(slice_u8, spec)[None]).float().softmax(-1)[0]
    names = list(cfg.classes) or [f"class {i}" for i in range(len(p))]
    return {c: float(v) for c, v in zip(names, p.tolist())}


def reduce_slices(slices: Any, strategy: str, threshold: float | None, embed_fn: Any = None) -> Any:
    """Kept indices of one volume under ``strategy`` with ``threshold`` (hash: k; every_n: N;
    ssim / mi / deepnet: similarity), validated as the config fields are."""
    from pretrainlab.core.config import validate
    from pretrainlab.ct.config import ReductionConfig
    from pretrainlab.ct.selective_reduction import reduce_volume

    field = {"hash": "hash_k", "every_n": "every_n", "ssim": "ssim_threshold", "mi": "mi_threshold",
             "deepnet": "deepnet_threshold"}.get(strategy)
    over: dict[str, Any] = {"strategy": strategy, "device": "cpu"}
    if field and threshold is not None:
        t = float(threshold)
        if field in ("hash_k", "every_n"):
            from pretrainlab.core.config import ConfigError

            if t != int(t):
                raise ConfigError(f"reduction.{field}: {threshold!r} is not allowed; expected a whole number")
            t = int(t)
        over[field] = t
    cfg = validate(dataclasses.replace(ReductionConfig(), **over), "reduction.")
    return reduce_volume(slices, cfg, embed_fn)


def phantom_case(seed: int = 0, n_slices: int = 64, size: int = 64) -> tuple[str, Any]:
    """A generated torso phantom with lesions -> ``(name, slices uint8)``."""
    import numpy as np

    from pretrainlab.ct.preprocessing import minmax_uint8
    from pretrainlab.ct.synthetic import phantom_volume

    hu, _ = phantom_volume(np.random.default_rng(seed), n_slices, size, n_lesions=5)
    return f"phantom #{seed}", minmax_uint8(hu)


def read_upload(path: Path) -> tuple[str, Any]:
    """An uploaded NIfTI file or DICOM series folder -> ``(name, slices (Z, H, W) uint8)``."""
    from pretrainlab.ct.formats import read_dicom_series, read_nifti, volume_slices

    path = Path(path)
    vol = read_dicom_series(path) if path.is_dir() else read_nifti(path)
    return path.name, volume_slices(vol)


def make_embedder(backbone: Any, image_size: int, mean: float, std: float) -> Any:
    from pretrainlab.ct.selective_reduction import make_embedder as _make

    return _make(backbone, image_size, mean, std)


# ------------------------------------------------------------------------------------------ table / benchmark helpers
def reduce_volumes(volumes: Any, reduction: Any, embed_fn: Any = None) -> tuple[list[Any], dict[str, Any]]:
    """Reduce in-memory volumes (``selective_reduction.reduce_all``, no progress bar)."""
    from pretrainlab.ct.selective_reduction import reduce_all

    return reduce_all(volumes, reduction, embed_fn, progress=False)


def gather_slices(volumes: Any, kept: Any, size: int) -> Any:
    from pretrainlab.ct.pretraining import gather_slices as _gather

    return _gather(volumes, kept, size)


def pretrain_steps(cfg: Any, n_slices: int) -> tuple[int, int]:
    from pretrainlab.ct.pretraining import pretrain_steps as _steps

    return _steps(cfg, n_slices)


def backbone_embedder(ckpt: Path) -> Any:
    """The DeepNet embedder of a pre-training run's backbone."""
    net, pcfg = load_backbone(Path(ckpt))
    return make_embedder(net, pcfg.model.image_size, pcfg.ssl.norm_mean, pcfg.ssl.norm_std)


def pretrain_task(cfg: Any) -> Any:
    """The configured pre-training task (SwAV / SimCLR / MoCo), untrained."""
    from pretrainlab.ct.contrastive import build_pretrain_task

    return build_pretrain_task(cfg)


def uint8_phantoms(n_volumes: int, n_slices: int, size: int, seed: int = 1) -> list[Any]:
    """Phantom volumes as 8-bit slices (benchmarks)."""
    from pretrainlab.ct.preprocessing import minmax_uint8
    from pretrainlab.ct.synthetic import bench_volumes

    return [minmax_uint8(hu) for hu, _ in bench_volumes(n_volumes, n_slices, size, seed=seed)]


def bench_reduce(n_volumes: int = 4, n_slices: int = 60, size: int = 512, k: int = 6, device: str = "cpu") -> dict[str, Any]:
    """Slices/s of ``ct reduce`` on a DICOM tree vs the reference pipeline, same data, same run."""
    from pretrainlab.ct.lidc import reference_pipeline, write_lidc_tree
    from pretrainlab.ct.synthetic import bench_volumes

    vols = bench_volumes(n_volumes, n_slices, size)
    with tempfile.TemporaryDirectory(prefix="ct-bench-") as tmp:
        root = Path(tmp) / "LIDC-IDRI"
        n = write_lidc_tree(root, vols)
        c = time.process_time()
        ref_kept, t_ref = reference_pipeline(root, Path(tmp) / "ref", k)
        c_ref = time.process_time() - c
        cfg = load("hash6", "full", ["preprocess.reference_png=true", f"reduction.hash_k={k}",
                                     f"reduction.device={device}"])
        t, c = time.perf_counter(), time.process_time()
        rep = reduce(cfg, root, Path(tmp) / "ours", progress=False)
        t_ours, c_ours = time.perf_counter() - t, time.process_time() - c
        ours = [f for v in rep["volumes"] for f in v["kept_files"]]
    return {"name": f"ct reduce end to end (hash-{k}, DICOM -> kept PNGs)", "device": device, "volumes": n_volumes,
            "slices": n, "slice_shape": [size, size], "kept_slices": len(ours),
            "identical_selection": sorted(ours) == sorted(ref_kept),
            "reference_pipeline_slices_per_s": n / t_ref, "ct_reduce_slices_per_s": n / t_ours,
            "speedup": t_ref / t_ours, "reference_s": t_ref, "ct_reduce_s": t_ours,
            "reference_cpu_s": c_ref, "ct_reduce_cpu_s": c_ours, "speedup_cpu": c_ref / max(c_ours, 1e-9)}


def bench_hash(volumes: list[np.ndarray], k: int = 6, device: str = "cpu") -> dict[str, Any]:
    """Slices/s of the hash step alone: the imagehash loop vs the batched dHash + greedy."""
    import torch

    from pretrainlab.core.reduction import hash_k, reference_hash_k

    n = sum(len(v) for v in volumes)
    t = time.perf_counter()
    ref = [reference_hash_k(v, k) for v in volumes]
    t_ref = time.perf_counter() - t
    hash_k(volumes[0][:4], k, device=device)  # warm-up (CUDA context, coefficient cache)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    vec = [hash_k(v, k, device=device) for v in volumes]
    t_vec = time.perf_counter() - t
    return {"name": f"hash-{k} step (uint8 slices in memory)", "device": device, "slices": n,
            "slice_shape": list(volumes[0].shape[1:]), "identical_selection": all(np.array_equal(a, b) for a, b in zip(ref, vec)),
            "imagehash_loop_slices_per_s": n / t_ref, "vectorised_slices_per_s": n / t_vec, "speedup": t_ref / t_vec}


