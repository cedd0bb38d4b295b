"""Pre-training, fine-tuning, checkpoint / weights loading, evaluation and export: the Python API
behind the CLI verbs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pretrainlab.clip.config import ClipConfig
from pretrainlab.core.data import DataError

NAME = "clip"
RECIPES = Path(__file__).parent / "recipes"
ROWS = ("clip", "slip", "barlip", "byolip", "swalip", "rocket")  # one recipe per paper-table row
PROVENANCE = "provenance.json"  # what a run was trained on (read by the demo / eval)


def load(config: str | None = None, profile: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> ClipConfig:
    from pretrainlab.core.config import load_config

    return load_config(ClipConfig, config or "rocket", recipes_dir=RECIPES, profile=profile, overrides=list(overrides))


def synthetic_data(profile: str = "tiny", seed: int = 0) -> Path:
    """The generated dataset for ``profile`` (cached)."""
    from pretrainlab.clip import synthetic
    from pretrainlab.core.data import cached_synthetic

    return cached_synthetic(NAME, synthetic.generate, profile, seed)


# ------------------------------------------------------------------ training data
def build_dataset(cfg: ClipConfig, source: str | Path, task: Any, progress: bool = True) -> Any:
    """The training dataset of ``source``: webdataset shards stream (:class:`ShardStream`); a CSV /
    captions JSONL is a map-style :class:`PairDataset` (lazy decode, or preloaded)."""
    from pretrainlab.clip import formats
    from pretrainlab.clip.dataset import PairDataset, ShardStream, TextMaker
    from pretrainlab.clip.transforms import ViewMaker

    d = cfg.data
    views = ViewMaker(task.image_size, cfg.image_aug, task.num_aug_views)
    text = TextMaker(task.tokenizer, task.num_texts, cfg.text_aug)
    fmt, src = formats.resolve_source(source, d.format)
    if fmt == "wds":
        return ShardStream(formats.shard_list(src), views, text, seed=cfg.train.seed, resampled=d.resampled,
                           shard_shuffle=d.shard_shuffle, sample_shuffle=d.sample_shuffle,
                           max_bad_fraction=d.max_bad_fraction, what=str(source))
    reader = (formats.CsvSource(src, d.csv_img_key, d.csv_caption_key, d.csv_separator) if fmt == "csv"
              else formats.read_folder(src))
    return PairDataset(reader, views, text, preload=d.preload, max_bad_fraction=d.max_bad_fraction, progress=progress)


def export_open_clip(task: Any, path: Path) -> Path:
    """Write the plain open_clip ``state_dict`` (loads with ``open_clip.create_model(name)``); the metadata
    names the model and the evaluation preprocessing of the recipe."""
    from pretrainlab.core.checkpoint import save_weights

    c = task.cfg
    pre = {"size": task.image_size, "mean": list(c.image_aug.mean), "std": list(c.image_aug.std),
           "interpolation": c.eval.interpolation, "resize_mode": c.eval.resize_mode}
    save_weights(task.clip, path, metadata={"open_clip_model": c.model.name, "preprocess": json.dumps(pre)})
    return path


def _train(cfg: ClipConfig, data: Path | None, run_dir: Path, resume: bool, init: Path | None = None) -> tuple[Any, Any]:
    from torch import nn

    from pretrainlab.clip.dataset import worker_errors
    from pretrainlab.clip.task import CLIPRocketTask
    from pretrainlab.core import distributed as D
    from pretrainlab.core.checkpoint import load_weights
    from pretrainlab.core.io import atomic_write_json
    from pretrainlab.core.train import Trainer, seed_everything

    trainer = Trainer(cfg.train, run_dir, full_config=cfg)  # initialises torch.distributed under torchrun
    seed_everything(cfg.train.seed)
    task = CLIPRocketTask(cfg)  # a bad model name / weights file fails before any data is generated
    root = Path(data) if data is not None else synthetic_data(cfg.data.profile)
    if init is not None:
        load_weights(task.clip, init, prefix="clip.")
    if cfg.model.sync_bn and D.is_distributed() and trainer.device.type == "cuda":
        task = nn.SyncBatchNorm.convert_sync_batchnorm(task)  # ref utils.infer_batchnorm_class
    ds = build_dataset(cfg, root, task, progress=cfg.train.progress)
    with worker_errors():
        result = trainer.fit(task, ds, resume=resume)
    if result.checkpoint is not None and trainer.is_main:
        export_open_clip(task, Path(run_dir) / "open_clip_model.safetensors")
        atomic_write_json(Path(run_dir) / PROVENANCE, {
            "data": str(root), "synthetic": data is None, "profile": cfg.data.profile, "steps": result.step,
            "objective": cfg.method.objective, "model": cfg.model.name, "init": str(init) if init else None,
            "pretrained": cfg.model.pretrained or None})
    return task, result


def pretrain(cfg: ClipConfig, data: Path | None, run_dir: Path, resume: bool = False) -> tuple[Any, Any]:
    """Train ``cfg`` on ``data`` (default: the synthetic set of ``cfg.data.profile``) into ``run_dir``."""
    return _train(cfg, data, run_dir, resume)


def finetune(cfg: ClipConfig, data: Path | None, run_dir: Path, init: Path, resume: bool = False) -> tuple[Any, Any]:
    """Continue pre-training (or adapt to new data) from a checkpoint's open_clip weights (``clip.*``)."""
    from pretrainlab.core.checkpoint import find_checkpoint

    return _train(cfg, data, run_dir, resume, init=find_checkpoint(Path(init)) / "model.safetensors")


# ------------------------------------------------------------------ loading models
def load_weights_task(weights: str | Path, model_name: str, device: str = "cpu",
                      preprocess: dict[str, Any] | None = None) -> Any:
    """A plain open_clip model (``open_clip.create_model(model_name)``) with weights from a local
    state_dict file (the hub's ``open_clip_model.safetensors`` layout), an open_clip tag or ``hf-hub:``;
    evaluated with open_clip's own preprocessing for that model (or ``preprocess`` when given)."""
    from pretrainlab.clip.task import CLIPRocketTask
    from pretrainlab.clip.transforms import eval_transform
    from pretrainlab.core.checkpoint import CheckpointError

    w = str(weights)
    if Path(w).suffix in (".safetensors", ".pt", ".pth", ".bin") and not Path(w).is_file():
        raise DataError(w, "weights file not found" if not Path(w).is_dir() else "is a folder, expected a weights file")
    cfg = load("clip", None, [f"model.name={model_name}", f"model.pretrained={w}"])
    try:
        task = CLIPRocketTask(cfg, preprocess="open_clip")
    except CheckpointError as e:  # torch's load_state_dict message spans many lines: one line, and a hint
        text = " ".join(str(e).split())
        raise CheckpointError(f"{text[:400]}{'...' if len(text) > 400 else ''} (is --model {model_name} the "
                              "architecture of these weights?)") from None
    if preprocess:
        task.preprocess = eval_transform(int(preprocess["size"]), tuple(preprocess["mean"]), tuple(preprocess["std"]),
                                         preprocess.get("interpolation", "bicubic"), preprocess.get("resize_mode", "shortest"))
    task.source = f"imported open_clip weights {w} (model {model_name})"
    return task.to(device).eval()


def load_task(ckpt: str | Path, device: str = "cpu") -> Any:
    """Rebuild the Task from a run folder / ``checkpoints`` / ``step_*`` folder, or load an open_clip
    export file (``open_clip_model.safetensors`` written by every run) as a plain open_clip model."""
    from pretrainlab.clip.task import CLIPRocketTask
    from pretrainlab.core.checkpoint import (
        CheckpointError,
        find_checkpoint,
        load_tensors,
        load_weights,
        read_meta,
    )
    from pretrainlab.core.config import from_dict

    p = Path(ckpt)
    if p.is_file() and p.name != "model.safetensors":
        if p.suffix != ".safetensors":
            raise CheckpointError(f"{p}: not a checkpoint; pass a run folder, or open_clip weights with "
                                  "--weights FILE --model NAME")
        _, meta = load_tensors(p)
        name = meta.get("open_clip_model")
        if not name:
            raise CheckpointError(f"{p}: an open_clip weights file without a model name; pass --weights {p} "
                                  "--model NAME (e.g. ViT-B-32), or the run folder")
        pre = json.loads(meta["preprocess"]) if "preprocess" in meta else None
        return load_weights_task(p, name, device, pre)
    folder = find_checkpoint(p)
    cfg = from_dict(ClipConfig, read_meta(folder)["config"])
    cfg.model.pretrained = ""  # the checkpoint holds every weight
    task = CLIPRocketTask(cfg)
    load_weights(task, folder / "model.safetensors")
    task.source = f"checkpoint {folder}"
    task.provenance = provenance(folder)
    return task.to(device).eval()


def provenance(folder: Path) -> dict[str, Any]:
    """What the run of checkpoint ``folder`` was trained on (``provenance.json``), with its step."""
    from pretrainlab.core.checkpoint import read_meta

    info: dict[str, Any] = {}
    for cand in (folder.parent.parent / PROVENANCE, folder.parent / PROVENANCE, folder / PROVENANCE):
        if cand.is_file():
            try:
                info = json.loads(cand.read_text())
            except (OSError, json.JSONDecodeError):
                info = {}
            break
    meta = read_meta(folder)
    cfg = meta.get("config", {})
    info.setdefault("profile", cfg.get("data", {}).get("profile"))
    info.setdefault("objective", cfg.get("method", {}).get("objective"))
    info.setdefault("model", cfg.get("model", {}).get("name"))
    info["step"] = int(folder.name.split("_")[-1]) if folder.name.startswith("step_") else info.get("steps")
    return info


def training_note(task: Any) -> str:
    """One line saying which model this is and how it was trained (for the demo and reports)."""
    src = getattr(task, "source", "model")
    prov = getattr(task, "provenance", None)
    if prov is None:
        return f"{src}: not trained here"
    prof, step = prov.get("profile"), prov.get("step")
    where = "the generated synthetic set" if prov.get("synthetic", True) else f"{prov.get('data')}"
    line = f"{src}: {prov.get('objective')} objective, {prof} profile, {step} steps on {where}"
    if prof == "smoke" or (isinstance(step, int) and step < 50):
        line += " — an UNTRAINED model (smoke run): its outputs are meaningless"
    return line


# ------------------------------------------------------------------ evaluation
def evaluate(task: Any, data: str | Path, cfg: ClipConfig | None = None, probe: bool = True, seed: int = 0,
             progress: bool = True) -> dict[str, Any]:
    """Metrics on ``data``: a dataset root with ``zeroshot/`` and ``retrieval/`` (zero-shot with every
    head, retrieval R@k, linear probe), or an ImageNet-style class folder (``val/<wnid>/*.JPEG``:
    zero-shot with open_clip's ImageNet class names and templates). Streamed."""
    from pretrainlab.clip import formats
    from pretrainlab.clip.zeroshot import probe_eval, retrieval_eval, zero_shot_eval

    cfg = cfg or task.cfg
    e = cfg.eval
    root = Path(data)
    if not root.exists():
        raise DataError(root, "not found")
    zs_root, ret_root = root / "zeroshot", root / "retrieval"
    if zs_root.is_dir():
        bench = formats.read_zeroshot(zs_root)
    elif formats.is_class_folder(root):
        bench = formats.read_class_folder(root)
    else:
        raise DataError(root, "holds no benchmark: expected zeroshot/ (+ retrieval/) made by `pretrainlab clip data`, "
                              "or an ImageNet-style folder of class sub-folders (val/<wnid>/*.JPEG)")
    m = zero_shot_eval(task, bench, (e.mix_weight, *e.mix_sweep), e.batch_size, e.num_workers, keep_feats=probe,
                       progress=progress, max_bad_fraction=cfg.data.max_bad_fraction)
    feats, labels = m.pop("_feats", None), m.pop("_labels", None)
    if ret_root.is_dir():
        m.update(retrieval_eval(task, formats.read_source(ret_root), e.batch_size, e.num_workers,
                                cfg.data.max_bad_fraction))
    if probe and feats is not None:
        m.update(probe_eval(feats, labels, seed))
    msg = f"evaluated: zero-shot top-1 {m['zs_top1_linear']:.3f} (linear head, {m['zs_images']} images)"
    if "R@1" in m:
        msg += f", retrieval R@1 {m['R@1']:.3f}"
    if "linear_probe" in m:
        msg += f", linear probe {m['linear_probe']:.3f}"
    print(msg, file=sys.stderr)
    return m
