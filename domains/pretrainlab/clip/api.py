"""The public Python API of the CLIP domain (the contract of ``pretrainlab.core.domain``).

``SPEC`` declares the domain; ``load`` / ``synthetic_data`` come from it; ``pretrain``, ``finetune``,
``load_task`` and ``evaluate`` are what the standard verbs call; ``load_weights_task``,
``evaluate_task``, ``embed``, ``zero_shot`` and the readers serve the domain's own verbs
(``zeroshot``, ``embed``, ``eval --weights``) and the demo. ``reproduce.py``, ``bench.py`` and
``apps/clip/app.py`` import only this module (and the core). Heavy imports stay inside functions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pretrainlab.core.domain import DomainSpec

if TYPE_CHECKING:
    from pretrainlab.clip.config import ClipConfig

SPEC = DomainSpec(
    name="clip", title="CLIP-rocket: CLIP + SSL baselines and the improved recipe on open_clip",
    paper="Fini et al. 2023, Improved baselines for vision-language pre-training (CLIP-rocket), TMLR",
    package="pretrainlab.clip", config="pretrainlab.clip.config:ClipConfig", default_recipe="rocket",
    generator="pretrainlab.clip.synthetic:generate", recipes=Path(__file__).parent / "recipes", data_version="2",
    data_help="the synthetic image-text set (open_clip CSV + webdataset shards + zero-shot / retrieval benchmarks)",
    readers={"open_clip CSV (filepath<TAB>title)": "pretrainlab.clip.formats:CsvSource",
             "webdataset shards (<key>.jpg + <key>.txt, brace patterns)": "pretrainlab.clip.formats:shard_list",
             "image folder + captions.jsonl": "pretrainlab.clip.formats:read_folder",
             "ImageNet-style class folders (val/<wnid>/*.JPEG)": "pretrainlab.clip.formats:read_class_folder",
             "zero-shot benchmark (classes.json + labels.csv)": "pretrainlab.clip.formats:read_zeroshot"},
    reproduce_help="CLIP vs CLIP-rocket (linear, MLP and mixed heads): zero-shot top-1 paired over seeds",
    examples={"pretrain": "pretrainlab clip pretrain --config rocket --profile tiny --data 'shards/{000000..000003}.tar'",
              "finetune": "pretrainlab clip finetune --init runs/clip/<run> --config rocket --data new.csv",
              "demo": "pretrainlab clip demo --ckpt runs/clip/<run>"},
)
load = SPEC.load
synthetic_data = SPEC.synthetic_data
ROWS = ("clip", "slip", "barlip", "byolip", "swalip", "rocket")  # one recipe per row of the paper's table
PROVENANCE = "provenance.json"  # what a run was trained on (read by the demo / eval)


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


def pretrain(cfg: ClipConfig, data: Path | None, run: Path, resume: bool = False) -> tuple[Any, Any]:
    """Train ``cfg`` on ``data`` (default: the synthetic set of ``cfg.data.profile``) into ``run``;
    returns (task, TrainResult)."""
    return _train(cfg, data, run, resume)


def finetune(cfg: ClipConfig, data: Path | None, run: Path, init: Path | None = None, resume: bool = False) -> tuple[Any, Any]:
    """Continue pre-training (or adapt to new data) from a checkpoint's open_clip weights (``clip.*``);
    without ``init``, from ``model.pretrained`` or random initialisation."""
    from pretrainlab.core.checkpoint import find_checkpoint

    return _train(cfg, data, run, resume, init=find_checkpoint(Path(init)) / "model.safetensors" if init else None)


# ------------------------------------------------------------------ loading models
def load_weights_task(weights: str | Path, model_name: str, device: str = "cpu",
                      preprocess: dict[str, Any] | None = None) -> Any:
    """A plain open_clip model (``open_clip.create_model(model_name)``) with weights from a local
    state_dict file (the hub's ``open_clip_model.safetensors`` layout), an open_clip tag or ``hf-hub:``;
    evaluated with open_clip's own preprocessing for that model (or ``preprocess`` when given)."""
    from pretrainlab.clip.task import CLIPRocketTask
    from pretrainlab.clip.transforms import eval_transform
    from pretrainlab.core.checkpoint import CheckpointError
    from pretrainlab.core.data import DataError

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


def load_task(ckpt: str | Path, device: str = "cpu") -> tuple[Any, Any]:
    """A run folder / ``checkpoints`` / ``step_*`` folder, or a run's open_clip export file
    (``open_clip_model.safetensors``, loaded as a plain open_clip model) -> (task in eval mode, its config)."""
    task = open_task(ckpt, device)
    return task, task.cfg


def open_task(ckpt: str | Path, device: str = "cpu") -> Any:
    """:func:`load_task` without the config (the task keeps it as ``task.cfg``)."""
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
    cfg = from_dict(SPEC.config_class(), read_meta(folder)["config"])
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
def evaluate_task(task: Any, data: str | Path, cfg: Any = None, probe: bool = True, seed: int = 0,
                  progress: bool = True) -> dict[str, Any]:
    """Metrics on ``data``: a dataset root with ``zeroshot/`` and ``retrieval/`` (zero-shot with every
    head, retrieval R@k, linear probe), or an ImageNet-style class folder (``val/<wnid>/*.JPEG``:
    zero-shot with open_clip's ImageNet class names and templates). Streamed."""
    from pretrainlab.clip import formats
    from pretrainlab.clip.zeroshot import probe_eval, retrieval_eval, zero_shot_eval
    from pretrainlab.core.data import DataError

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


def evaluate(ckpt: str | Path, data: str | Path | None = None) -> dict[str, Any]:
    """The standard ``eval``: a checkpoint on ``data`` (default: its config's synthetic set)."""
    task = open_task(ckpt)
    return evaluate_task(task, data or synthetic_data(task.cfg.data.profile))


# ------------------------------------------------------------------ the domain's own verbs and the demo
def embed(task: Any, source: str | Path, out: str | Path, batch_size: int = 256, num_workers: int = 0,
          overwrite: bool = False) -> dict[str, Any]:
    """Image / text embeddings of ``source`` into ``out`` (see :mod:`pretrainlab.clip.embed`)."""
    from pretrainlab.clip.embed import check_out, embed_source

    check_out(Path(out), Path(source), overwrite)
    return embed_source(task, Path(source), Path(out), batch_size, num_workers, task.cfg.data.max_bad_fraction,
                        overwrite)


def check_embed_out(out: str | Path, source: str | Path, overwrite: bool = False) -> Path:
    from pretrainlab.clip.embed import check_out

    return check_out(Path(out), Path(source), overwrite)


def read_image(path: str | Path, name: str | None = None) -> Any:
    """An image file -> RGB PIL image (size checked before decoding; DataError naming ``name`` or the file)."""

    from pretrainlab.clip import formats

    p = Path(path)
    if name is None:
        return formats.read_image_file(p)
    return formats.decode_pil(p.read_bytes(), name)


def decode_image(data: bytes, name: str) -> Any:
    from pretrainlab.clip import formats

    return formats.decode_pil(data, name)


def image_extensions() -> tuple[str, ...]:
    from pretrainlab.clip import formats

    return formats.IMAGE_EXTS


def zero_shot(task: Any, images: list[Any], labels: list[str], templates: tuple[str, ...] = ("a photo of a {}.",),
              w: float = 1.0) -> Any:
    """Softmax probabilities ``(N, C)`` of PIL ``images`` over free-text ``labels`` after the task's
    evaluation preprocessing, with the model's learnt temperature(s)."""
    import torch

    from pretrainlab.clip.zeroshot import zero_shot_predict

    return zero_shot_predict(task, torch.stack([task.preprocess(im) for im in images]), labels, templates, w)


def image_embeddings(task: Any, images: list[Any], batch: int = 128) -> Any:
    """L2-normalised linear-head embeddings ``(N, D)`` of PIL images."""
    import torch
    import torch.nn.functional as F

    from pretrainlab.clip.zeroshot import embed_image_tensors

    z = [embed_image_tensors(task, torch.stack([task.preprocess(im) for im in images[i:i + batch]]))["z"]
         for i in range(0, len(images), batch)]
    return F.normalize(torch.cat(z), dim=-1)


def text_embeddings(task: Any, texts: list[str]) -> Any:
    import torch.nn.functional as F

    from pretrainlab.clip.zeroshot import embed_texts

    return F.normalize(embed_texts(task, texts)["z"], dim=-1)


def retrieval_gallery(profile: str) -> tuple[list[Any], list[str]]:
    """The generated retrieval benchmark of ``profile``: images and captions."""
    from pretrainlab.clip import formats

    src = formats.read_folder(synthetic_data(profile) / "retrieval")
    return [formats.decode_pil(src[i].read_bytes(), src[i].name) for i in range(len(src))], \
        [src[i].caption for i in range(len(src))]


# ------------------------------------------------------------------ the CLI verbs' bodies
def model_from_args(ckpt: str | Path | None, weights: str | None, model: str | None, device: str = "cpu") -> Any:
    """``--ckpt`` (a checkpoint or a run's export file) or ``--weights`` + ``--model`` -> task."""
    from pretrainlab.core.config import ConfigError

    if weights is not None:
        if not model:
            raise ConfigError("--model: give the open_clip model name of --weights (e.g. --model ViT-B-32)")
        return load_weights_task(weights, model, device)
    if model:
        raise ConfigError("--model: only used with --weights (a checkpoint knows its model)")
    return open_task(ckpt, device)


def eval_verb(ckpt: Path | None, weights: str | None, model: str | None, device: str, data: Path | None,
              out: Path | None) -> tuple[Path, dict[str, Any]]:
    """``pretrainlab clip eval``: metrics written to ``out`` (default: beside the checkpoint, or a new
    ``runs/clip/eval-<model>-<time>/`` for ``--weights``); returns (path, metrics)."""
    from pretrainlab.core.checkpoint import find_checkpoint
    from pretrainlab.core.data import DataError
    from pretrainlab.core.domain import default_run_dir, write_metrics

    if out is not None and (out.is_dir() or out.suffix != ".json"):
        raise DataError(out, "--out must name a .json file")
    task = model_from_args(ckpt, weights, model, device)
    metrics = evaluate_task(task, data or synthetic_data(task.cfg.data.profile))
    if out is None:
        out = (find_checkpoint(ckpt) / "metrics.json" if ckpt is not None and Path(ckpt).is_dir()
               else default_run_dir("clip", f"eval-{task.cfg.model.name}") / "metrics.json")
    return write_metrics(out, metrics), metrics


def zeroshot_verb(ckpt: Path | None, weights: str | None, model: str | None, device: str, image: Path, labels: str,
                  template: str, mix: float) -> list[tuple[str, float]]:
    """``pretrainlab clip zeroshot``: (label, probability) pairs, most probable first."""
    from pretrainlab.core.config import ConfigError

    names = [x.strip() for x in labels.split(",") if x.strip()]
    if len(names) < 2:
        raise ConfigError("--labels: give at least two comma-separated labels")
    if len(set(names)) != len(names):
        raise ConfigError("--labels: a label is given twice")
    if template.count("{}") != 1:
        raise ConfigError(f"--template: {template!r} needs exactly one '{{}}' for the label")
    if not 0.0 <= mix <= 1.0:
        raise ConfigError(f"--mix: {mix!r} is not allowed; expected a number in [0, 1]")
    img = read_image(image)
    task = model_from_args(ckpt, weights, model, device)
    probs = zero_shot(task, [img], names, (template,), mix)[0]
    return sorted(zip(names, probs.tolist()), key=lambda t: -t[1])


def embed_verb(ckpt: Path | None, weights: str | None, model: str | None, device: str, source: Path, out: Path,
               batch_size: int = 256, workers: int = 0, overwrite: bool = False) -> dict[str, Any]:
    """``pretrainlab clip embed``: the arguments are checked before any model is loaded."""
    from pretrainlab.core.config import ConfigError

    if batch_size < 1:
        raise ConfigError(f"--batch-size: {batch_size} is not allowed; expected >= 1")
    if workers < 0:
        raise ConfigError(f"--workers: {workers} is not allowed; expected >= 0")
    check_embed_out(out, source, overwrite)
    task = model_from_args(ckpt, weights, model, device)
    return embed(task, source, out, batch_size, workers, overwrite)


def build_task(cfg: ClipConfig, preprocess: str = "recipe") -> Any:
    """A fresh :class:`~pretrainlab.clip.task.CLIPRocketTask` of ``cfg`` (benchmarks)."""
    from pretrainlab.clip.task import CLIPRocketTask

    return CLIPRocketTask(cfg, preprocess)


def shard_writer(folder: str | Path, prefix: str = "train", per_shard: int = 1000) -> Any:
    """A webdataset shard writer (``<prefix>-NNNNNN.tar``; :class:`pretrainlab.clip.formats.ShardWriter`)."""
    from pretrainlab.clip.formats import ShardWriter

    return ShardWriter(folder, prefix, per_shard)


def register_models() -> None:
    """Register the domain's open_clip configs (``RN50-rocket``, ``clip-nano``...) with open_clip."""
    from pretrainlab.clip.models import register_domain_configs

    register_domain_configs()
