"""Downstream classification as the reference notebooks do it (Less_is_More ``Downstream_Evaluation``
``COVID-19.ipynb``, ``OrgMNIST.ipynb``, ``Brain.ipynb``; pytorch-lightning 1.7).

Inputs (:func:`downstream_input`), per task:

* COVID-CT / brain (PNG): MONAI ``LoadImage`` (its PIL reader returns the image TRANSPOSED, ``(W,
  H)``), gray stacked to 3 channels, ``ToTensor`` ([0, 1]), ``Normalize`` with the notebook's
  per-channel mean (0.5600, 0.5596, 0.5596) / std (0.2905, 0.2907, 0.2908), MONAI ``Resize`` to
  224 x 224 (mode "area" = ``F.interpolate(mode="area")``); training adds ``RandFlip(spatial_axis=0,
  prob=0.5)`` (``RandRotate`` is commented out in the notebooks: no rotation).
* OrganSMNIST (npz): ``ToTensor``, 3 channels, ``Normalize(0.5, 0.5)``, ``Resize`` 224; no augmentation.

Model: torchvision ResNet-50 without ``fc`` (the pre-trained weights loaded with the fc missing) +
one linear layer; cross-entropy; Adam lr 1e-4, weight decay 5e-4, batch 64, 70 epochs. The
checkpoint with the best validation accuracy (``ModelCheckpoint(monitor="val/accuracy",
mode="max")``; the first epoch reaching it) is tested: ROC AUC (binary: the probability of class
1; OrganSMNIST: macro one-vs-rest) and accuracy.

``BackboneFinetuning(unfreeze_backbone_at_epoch=10)`` with Lightning's defaults, as it ACTUALLY
behaves with the notebooks' optimizer (:func:`backbone_finetuning_lrs`): ``configure_optimizers`` builds ``Adam(self.parameters(), ...)``, so every parameter,
the backbone included, is already in the optimizer's only group. Before epoch 10 the callback has
frozen the backbone (``requires_grad=False`` except BatchNorm, ``train_bn=True``): the head and the
backbone's BatchNorm parameters train at 1e-4 (BN statistics update). At epoch 10 it unfreezes the
backbone and tries to add it as a new group at 0.1 x lr, but ``filter_on_optimizer`` drops every
parameter already in the optimizer (Lightning warns), so nothing is added and the whole model
trains at 1e-4. From epoch 11 on it writes its backbone lr (``previous * lambda``, ``lambda = 2``:
Lightning's default ``multiplicative``, aligned to group 0's lr) into ``param_groups[-1]``, which
is that one group: the WHOLE model trains at 2e-5 from epoch 11 to the end (the callback's
ratio, lambda and alignment are config fields, so the value follows them). ``tests/ct/test_downstream.py``
checks the per-epoch lrs, frozen and trained parameters against Lightning 1.7.7's own callback run on
a module shaped like the notebooks' (fixture ``tests/ct/data/backbone_finetuning_pl177.json``).

The per-epoch validation pass and the choice of the best epoch run inside the task
(:meth:`FinetuneTask.on_step_end` at each epoch's last step); the best weights are written to
``<run>/best/`` (what ``eval`` and the demo load); the trainer's own checkpoints stay the resumable
last state. Deviations: the trainer drops the last incomplete batch of an epoch (the reference's
loader keeps it); biases and BatchNorm get no weight decay (the core's Adam groups; requested).
Inputs are gray (an RGB PNG is converted with ``convert('L')`` and stacked to 3 channels; the
notebooks feed RGB PNGs' channels as they are: identical for gray images).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from pretrainlab.core.train import Task
from pretrainlab.ct.config import DownstreamConfig, FinetuneConfig, ModelConfig
from pretrainlab.ct.resnet import build_backbone


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """How a task's images become network inputs (see the module docstring)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    transpose: bool
    flip_p: float
    size: int


def input_spec(cfg: DownstreamConfig, task: str | None = None) -> InputSpec:
    f = cfg.finetune
    task = task or cfg.task
    if task in ("organ", "organ64"):
        return InputSpec(tuple(f.organ_mean), tuple(f.organ_std), False, 0.0, cfg.model.image_size)  # type: ignore[arg-type]
    mean, std = (f.brain_mean, f.brain_std) if task == "brain" else (f.covid_mean, f.covid_std)
    return InputSpec(tuple(mean), tuple(std), f.png_transpose, f.png_flip_p, cfg.model.image_size)  # type: ignore[arg-type]


def downstream_input(image: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """``(H, W)`` uint8 -> ``(3, S, S)`` float32: [transpose], /255, per-channel normalise, area resize."""
    a = np.asarray(image)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D gray image, got shape {a.shape}")
    if spec.transpose:
        a = a.T
    x = torch.from_numpy(np.ascontiguousarray(a)).float().div_(255.0)
    mean = torch.tensor(spec.mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(spec.std, dtype=torch.float32)[:, None, None]
    x = (x[None].expand(3, -1, -1) - mean) / std
    if tuple(x.shape[-2:]) != (spec.size, spec.size):
        x = F.interpolate(x[None], size=(spec.size, spec.size), mode="area")[0]
    return x.contiguous()


class DownstreamDataset(Dataset):
    """``{"image": (3, S, S) float32, "label": int64}`` of a :class:`~pretrainlab.ct.formats.Split`,
    decoded lazily per item (``cache=True`` keeps the decoded inputs of small sets in RAM)."""

    def __init__(self, split: Any, spec: InputSpec, cache: bool = False) -> None:
        self.split = split
        self.spec = spec
        self.labels = torch.as_tensor(np.asarray(split.labels, dtype=np.int64))
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.split)

    def input(self, i: int) -> torch.Tensor:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        x = downstream_input(self.split.image(i), self.spec)
        if self._cache is not None:
            self._cache[i] = x
        return x

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.input(i), "label": self.labels[i]}

    def all_inputs(self) -> torch.Tensor:
        return torch.stack([self.input(i) for i in range(len(self))]) if len(self) else torch.zeros(0, 3, 1, 1)


class Classifier(nn.Module):
    """backbone (fc removed) + one linear layer: ``(B, 3, S, S)`` normalised -> ``(B, n_classes)`` logits."""

    def __init__(self, model: ModelConfig, n_classes: int) -> None:
        super().__init__()
        self.backbone, dim = build_backbone(model)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x.contiguous(memory_format=torch.channels_last)))


def _is_bn(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.batchnorm._BatchNorm)


def backbone_finetuning_lrs(f: FinetuneConfig, lr: float, epochs: int | None = None) -> list[dict[str, Any]]:
    """Per epoch: ``{"lr": lr of the optimizer's one group, "frozen": backbone frozen}`` as Lightning's
    ``BackboneFinetuning`` sets them with the notebooks' optimizer (see the module docstring)."""
    out = []
    group_lr = lr  # optimizer.param_groups[0]["lr"]: the one group, holding every parameter
    prev: float | None = None
    for epoch in range(f.epochs if epochs is None else epochs):
        if epoch == f.unfreeze_epoch:  # finetune_function at on_train_epoch_start
            prev = group_lr * f.backbone_initial_ratio_lr  # the new group it would add is filtered out
        elif epoch > f.unfreeze_epoch and prev is not None:
            nxt = f.lr_lambda * prev
            if f.should_align and nxt > group_lr:
                nxt = group_lr
            group_lr = nxt  # optimizer.param_groups[-1] is param_groups[0]
            prev = nxt
        out.append({"lr": group_lr, "frozen": epoch < f.unfreeze_epoch})
    return out


class FinetuneTask(Task):
    """batch ``{"image", "label"}`` -> ``{"loss", "ce"}``; one optimizer group (as the notebooks), its
    lr per epoch from :func:`backbone_finetuning_lrs`; while frozen the backbone's parameters get
    ``requires_grad=False`` except BatchNorm's (``train_bn``). Under DDP set
    ``train.find_unused_parameters=true`` (the frozen parameters get no gradient).

    ``val`` (a DownstreamDataset): evaluated after each epoch's last step; the first epoch with the
    best accuracy is kept (``best_state``).
    """

    def __init__(self, cfg: DownstreamConfig, n_classes: int, steps_per_epoch: int, val: Any = None,
                 flip_p: float = 0.0) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = Classifier(cfg.model, n_classes)
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.schedule = backbone_finetuning_lrs(cfg.finetune, cfg.train.lr)
        self.flip_p = flip_p
        self.val = val
        self.best: tuple[float, int] | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, float]] = []
        self._frozen: bool | None = None

    def epoch_of(self, step: int) -> int:
        return min(step // self.steps_per_epoch, len(self.schedule) - 1)

    def lr_scale(self, group: str, step: int) -> float:
        return self.schedule[self.epoch_of(step)]["lr"] / self.cfg.train.lr

    def _set_frozen(self, frozen: bool) -> None:
        """Lightning's ``BaseFinetuning.freeze(backbone, train_bn)`` / ``make_trainable``."""
        if frozen == self._frozen:
            return
        for m in self.model.backbone.modules():
            keep = _is_bn(m) and self.cfg.finetune.train_bn
            for p in m.parameters(recurse=False):
                p.requires_grad_(not frozen or keep)
        self._frozen = frozen

    def begin_step(self, step: int, due: frozenset[str]) -> None:
        super().begin_step(step, due)
        self._set_frozen(self.schedule[self.epoch_of(step)]["frozen"])

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["image"].float()
        if self.training and self.flip_p > 0:  # RandFlip(spatial_axis=0): the first spatial axis of (C, H, W)
            flip = torch.rand(x.shape[0], device=x.device) < self.flip_p
            x = torch.where(flip[:, None, None, None], x.flip(-2), x)
        if self.training and self.cfg.finetune.rotation_deg > 0:
            x = _rotate(x, self.cfg.finetune.rotation_deg)
        logits = self.model(x)
        loss = F.cross_entropy(logits.float(), batch["label"])
        return {"loss": loss, "ce": loss.detach()}

    def on_step_end(self, step: int, max_steps: int) -> None:
        if self.val is None or (step % self.steps_per_epoch != 0 and step != max_steps):
            return
        epoch = (step - 1) // self.steps_per_epoch
        dev = next(self.parameters()).device
        acc = metrics(predict(self.model, self.val_inputs, dev), self.val.labels)["accuracy"]
        self.model.train()
        self.history.append({"epoch": float(epoch), "val_accuracy": acc})
        if self.best is None or acc > self.best[0]:  # ModelCheckpoint(mode="max"): the first epoch reaching the max
            self.best = (acc, epoch)
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    @property
    def val_inputs(self) -> torch.Tensor:
        if not hasattr(self, "_val_inputs"):
            self._val_inputs = self.val.all_inputs()
        return self._val_inputs


def _rotate(x: torch.Tensor, max_deg: float) -> torch.Tensor:
    b = x.shape[0]
    ang = (torch.rand(b, device=x.device) * 2 - 1) * math.radians(max_deg)
    c, s = torch.cos(ang), torch.sin(ang)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = c, -s, s, c
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device | str = "cpu", batch: int = 256) -> torch.Tensor:
    """Softmax probabilities ``(N, C)`` of inputs ``(N, 3, S, S)`` (model in eval mode)."""
    model.eval()
    if len(x) == 0:
        return torch.zeros(0, 0)
    outs = [model(x[i:i + batch].to(device)).float().softmax(-1).cpu() for i in range(0, len(x), batch)]
    return torch.cat(outs)


def metrics(probs: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """Accuracy and ROC AUC (binary: class 1's probability; else macro one-vs-rest). AUC is ``None``
    (with ``auc_note``) when the split lacks a class: never NaN."""
    from pretrainlab.core.evaluate import accuracy, roc_auc

    p = probs.numpy()
    yy = y.numpy()
    out: dict[str, Any] = {"accuracy": accuracy(yy, p.argmax(1)) if len(yy) else None}
    try:
        auc = roc_auc(yy, p[:, 1] if p.shape[1] == 2 else p)
        out["auc"] = float(auc) if math.isfinite(float(auc)) else None
    except ValueError as e:
        out["auc"] = None
        out["auc_note"] = f"ROC AUC undefined on this split ({e})"
    if out["auc"] is None and "auc_note" not in out:
        out["auc_note"] = "ROC AUC undefined on this split (one class only)"
    return out


@torch.no_grad()
def features(backbone: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Pooled backbone features ``(N, D)`` of inputs ``(N, 3, S, S)`` (eval mode)."""
    backbone.eval()
    if len(x) == 0:
        return torch.zeros(0, 0)
    return torch.cat([backbone(x[i:i + batch].contiguous(memory_format=torch.channels_last)).float()
                      for i in range(0, len(x), batch)])


def probe(backbone: nn.Module, cfg: DownstreamConfig, data_root: Path) -> dict[str, Any]:
    """Linear probe of a frozen backbone on ``cfg.task``: logistic regression (``core.evaluate.linear_probe``,
    standardised features, L-BFGS) on the train + validation splits' features (a probe has no epoch to
    select), ROC AUC / accuracy on the test split.
    Deterministic given the backbone: the tiny table's view of representation quality (see reproduce.py)."""
    from pretrainlab.core.evaluate import linear_probe
    from pretrainlab.ct.formats import read_task

    spec = dataclasses.replace(input_spec(cfg), flip_p=0.0)
    tr = DownstreamDataset(read_task(data_root, cfg.task, "train", cfg.finetune), spec)
    va = DownstreamDataset(read_task(data_root, cfg.task, "val", cfg.finetune), spec)
    te = DownstreamDataset(read_task(data_root, cfg.task, "test", cfg.finetune), spec)
    ftr = torch.cat([features(backbone, tr.all_inputs()), features(backbone, va.all_inputs())])
    ytr = torch.cat([tr.labels, va.labels])
    fte = features(backbone, te.all_inputs())
    res = linear_probe(ftr.numpy(), ytr.numpy(), fte.numpy(), te.labels.numpy(), return_probs=True)
    n = len(tr.split.classes)
    probs = np.zeros((len(te), n))
    probs[:, np.asarray(res["classes"], dtype=np.int64)] = res["probs"]  # classes absent from train get 0
    m = metrics(torch.from_numpy(probs), te.labels)
    m.update({"task": cfg.task, "n_train": len(tr) + len(va), "n_test": len(te)})
    return m


def finetune(cfg: DownstreamConfig, data_root: Path, run_dir: Path, backbone_state: dict[str, torch.Tensor] | None,
             resume: bool = False, progress: bool = True) -> tuple[FinetuneTask, dict[str, Any]]:
    """Fine-tune on ``cfg.task``'s train split, keep the epoch with the best validation accuracy,
    return the task and its test metrics ``{"auc", "accuracy", "val_accuracy", "best_epoch", "classes", ...}``."""
    from pretrainlab.core.checkpoint import save_tensors
    from pretrainlab.core.data import DataError
    from pretrainlab.core.io import atomic_dir, atomic_write_json
    from pretrainlab.core.train import Trainer, seed_everything
    from pretrainlab.ct.formats import read_task

    f = cfg.finetune
    spec = input_spec(cfg)
    splits = {s: read_task(data_root, cfg.task, s, f) for s in ("train", "val", "test")}
    classes = splits["train"].classes
    for s in ("val", "test"):
        if splits[s].classes != classes:
            raise DataError(splits[s].source, f"{s} classes {splits[s].classes} differ from train's {classes}")
    if len(splits["train"]) < 2 or len(splits["val"]) == 0:
        raise DataError(splits["train"].source, f"too few images: {len(splits['train'])} train, {len(splits['val'])} val")
    tr = DownstreamDataset(splits["train"], spec, cache=f.cache_images)
    va = DownstreamDataset(splits["val"], dataclasses.replace(spec, flip_p=0.0), cache=True)
    te = DownstreamDataset(splits["test"], dataclasses.replace(spec, flip_p=0.0), cache=f.cache_images)
    bs = min(cfg.train.batch_size, len(tr))
    per_epoch = len(tr) // bs
    tc = dataclasses.replace(cfg.train, batch_size=bs, max_steps=f.epochs * per_epoch, ckpt_every=per_epoch,
                             progress=progress and cfg.train.progress)
    cfg = dataclasses.replace(cfg, train=tc, classes=tuple(classes))
    seed_everything(tc.seed)
    ft = FinetuneTask(cfg, len(classes), per_epoch, val=va, flip_p=spec.flip_p)
    if backbone_state is not None:
        ft.model.backbone.load_state_dict(backbone_state)
    result = Trainer(tc, run_dir, full_config=cfg).fit(ft, tr, resume=resume)
    if ft.best_state is None:  # resumed after the last epoch: evaluate the final weights
        ft.on_step_end(tc.max_steps, tc.max_steps)
    assert ft.best_state is not None and ft.best is not None
    ft.model.load_state_dict(ft.best_state)
    dev = next(ft.parameters()).device
    m = metrics(predict(ft.model, te.all_inputs(), dev), te.labels)
    m.update({"task": cfg.task, "split": "test", "n": len(te), "classes": list(classes), "val_accuracy": ft.best[0],
              "best_epoch": ft.best[1], "val_history": ft.history, "train_wall_s": result.wall_time_s,
              "n_classes": len(classes)})
    from pretrainlab.core.config import to_dict

    with atomic_dir(Path(run_dir) / "best", overwrite=True) as tmp:
        save_tensors(tmp / "model.safetensors", {f"model.{k}": v for k, v in ft.best_state.items()},
                     {"epoch": str(ft.best[1])})
        atomic_write_json(tmp / "meta.json", {"step": (ft.best[1] + 1) * per_epoch, "epoch": ft.best[1],
                                              "task": "FinetuneTask", "config": to_dict(cfg),
                                              "val_accuracy": ft.best[0], "classes": list(classes)})
    return ft, m
