"""The public API of the built-in SimCLR recipe, the template every domain's ``api.py`` follows.

``SPEC`` declares the domain; ``load`` / ``synthetic_data`` come from it; ``pretrain``, ``finetune``,
``load_task`` and ``evaluate`` are what the standard verbs call. ``reproduce.py``, ``bench.py`` and
``apps/simclr/app.py`` import only this module (and the core). Heavy imports stay inside functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pretrainlab.core.domain import DomainSpec

SPEC = DomainSpec(
    name="simclr", title="SimCLR on generated shapes (built-in recipe, the template domain)",
    paper="Chen et al. 2020, A Simple Framework for Contrastive Learning of Visual Representations",
    package="pretrainlab.core.builtin", config="pretrainlab.core.builtin.config:SimCLRConfig",
    default_recipe="simclr", generator="pretrainlab.core.builtin.synthetic:generate",
    recipes=Path(__file__).parent / "recipes", data_help="the synthetic shapes (ImageFolder PNGs)",
    readers={"ImageFolder (root/<class>/*.png|jpg)": "pretrainlab.core.builtin.formats:ImageFolder"},
    reproduce_help="random init vs SimCLR: linear probe and k-NN, paired over seeds", builtin=True,
)
load = SPEC.load
synthetic_data = SPEC.synthetic_data


def build_task(cfg: Any) -> Any:
    """A fresh SimCLR pre-training task for ``cfg`` (the bench times its training step)."""
    from pretrainlab.core.builtin.simclr import SimCLRTask

    return SimCLRTask(cfg)


def random_encoder(cfg: Any, seed: int) -> Any:
    """The encoder at its random initialisation for ``seed`` (the table's "random init" row)."""
    from pretrainlab.core.builtin.simclr import SmallConvNet
    from pretrainlab.core.train import seed_everything

    seed_everything(seed)
    return SmallConvNet(cfg.model.width, cfg.model.feat_dim)


def pretrain(cfg: Any, data: Path, run: Path, resume: bool = False) -> Any:
    """SimCLR pre-training on ``data/train``; returns (task, TrainResult)."""
    from pretrainlab.core.builtin.formats import ImageFolder
    from pretrainlab.core.builtin.simclr import SimCLRTask
    from pretrainlab.core.train import Trainer, seed_everything

    seed_everything(cfg.train.seed)
    task = SimCLRTask(cfg)
    ds = ImageFolder(Path(data) / "train", size=cfg.data.image_size)
    result = Trainer(cfg.train, run, full_config=cfg).fit(task, ds, resume=resume)
    return task, result


def finetune(cfg: Any, data: Path, run: Path, init: Path | None = None, resume: bool = False) -> Any:
    """Supervised fine-tuning (encoder + linear classifier) on ``data/train``, from ``init``'s encoder."""
    import dataclasses

    from pretrainlab.core.builtin.formats import ImageFolder
    from pretrainlab.core.builtin.simclr import ClassifierTask
    from pretrainlab.core.checkpoint import find_checkpoint, load_weights
    from pretrainlab.core.train import Trainer, seed_everything

    init_path = init or (Path(cfg.init) if cfg.init else None)
    cfg = dataclasses.replace(cfg, init=str(init_path or ""))
    seed_everything(cfg.train.seed)
    ds = ImageFolder(Path(data) / "train", size=cfg.data.image_size)
    task = ClassifierTask(cfg, len(ds.classes))
    if init_path is not None:
        load_weights(task.encoder, find_checkpoint(init_path) / "model.safetensors", prefix="encoder.")
    result = Trainer(cfg.train, run, full_config=cfg).fit(task, ds, resume=resume)
    return task, result


def load_task(ckpt: Path) -> tuple[Any, Any]:
    """A checkpoint (pre-training or fine-tuning) -> (task in eval mode, its config)."""
    from pretrainlab.core.builtin.config import SimCLRConfig
    from pretrainlab.core.builtin.simclr import ClassifierTask, SimCLRTask
    from pretrainlab.core.checkpoint import find_checkpoint, load_weights, read_meta
    from pretrainlab.core.config import from_dict

    folder = find_checkpoint(ckpt)
    meta = read_meta(folder)
    cfg = from_dict(SimCLRConfig, meta["config"])
    if meta.get("task") == "ClassifierTask":
        from pretrainlab.core.checkpoint import load_tensors

        n = int(load_tensors(folder / "model.safetensors")[0]["head.weight"].shape[0])
        task: Any = ClassifierTask(cfg, n)
    else:
        task = SimCLRTask(cfg)
    load_weights(task, folder / "model.safetensors")
    return task.eval(), cfg


def embed(encoder: Any, dataset: Any, batch: int = 256) -> tuple[Any, Any]:
    """Features ``(N, D)`` and labels ``(N,)`` of a dataset, streamed in batches."""
    import torch

    encoder.eval()
    feats, labels = [], []
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch)
    with torch.inference_mode():
        for b in loader:
            feats.append(encoder(b["image"]))
            labels.append(b["label"])
    return torch.cat(feats), torch.cat(labels)


def probe(encoder: Any, data: Path, size: int = 32) -> dict[str, float]:
    """Linear-probe and k-NN accuracy of a frozen encoder on the train / test split."""
    from pretrainlab.core.builtin.formats import ImageFolder
    from pretrainlab.core.evaluate import knn_accuracy, linear_probe

    tr, te = ImageFolder(Path(data) / "train", size=size), ImageFolder(Path(data) / "test", classes=None, size=size)
    ftr, ytr = embed(encoder, tr)
    fte, yte = embed(encoder, te)
    lp = linear_probe(ftr.numpy(), ytr.numpy(), fte.numpy(), yte.numpy())
    knn = knn_accuracy(ftr, ytr, fte, yte, k=10, temperature=0.1)
    return {"linear_probe_acc": float(lp["accuracy"]), "knn_acc": float(knn)}


def evaluate(ckpt: Path, data: Path | None = None) -> dict[str, float]:
    """Linear probe + k-NN of the checkpoint's encoder; a fine-tuned checkpoint also gets its test accuracy."""
    import torch

    from pretrainlab.core.builtin.formats import ImageFolder

    task, cfg = load_task(ckpt)
    data = Path(data) if data else synthetic_data(cfg.data.profile)
    metrics = probe(task.encoder, data, cfg.data.image_size)
    if hasattr(task, "head"):
        te = ImageFolder(Path(data) / "test", size=cfg.data.image_size)
        feats, labels = embed(task.encoder, te)
        with torch.inference_mode():
            metrics["finetune_acc"] = float((task.head(feats).argmax(-1) == labels).float().mean())
    return metrics


def image_folder(root: Path, size: int = 32) -> Any:
    """The ImageFolder reader (``root/<class>/*.png``), decoded lazily (see ``formats.ImageFolder``)."""
    from pretrainlab.core.builtin.formats import ImageFolder

    return ImageFolder(Path(root), size=size)


def read_image(path: Path, size: int = 32) -> Any:
    """One image file as ``(3, size, size)`` float in [0, 1]; DataError naming the file when unreadable."""
    from pretrainlab.core.builtin.formats import load_image

    return load_image(Path(path), size)
