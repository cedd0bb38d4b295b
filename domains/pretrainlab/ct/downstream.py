"""Downstream classification (Wolf et al. 2024, Sec. Downstream): the pre-trained backbone (fc
removed) + a linear head, backbone frozen for the first ``unfreeze_epoch`` epochs then trained
(Lightning ``BackboneFinetuning`` in the reference), Adam lr 1e-4, weight decay 5e-4, batch 64,
70 epochs, gray slices stacked to 3 channels and resized, random rotation (pi/12) and flips;
ROC AUC (binary, or macro one-vs-rest) and accuracy, the checkpoint chosen on validation accuracy.

Through the core trainer: the head and the backbone are two optimizer groups (the backbone's lr is
``backbone_lr_ratio`` x the head's, BackboneFinetuning's initial ratio; its later x1.5 per-epoch
ramp is not reproduced); while frozen the backbone runs under ``no_grad`` so Adam leaves it (and
its weight decay) untouched; BatchNorm statistics keep updating (``train_bn=True``). A checkpoint
is written every epoch; the best on validation accuracy is evaluated on the test split.
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

from pretrainlab.core.train import OptimGroup, Task
from pretrainlab.ct.config import CTConfig
from pretrainlab.ct.resnet import build_backbone, to_input


class ArrayDataset(Dataset):
    """``{"image": (1, S, S) uint8, "label": int64}`` from in-memory arrays (resized once)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, size: int) -> None:
        t = torch.from_numpy(np.ascontiguousarray(x))[:, None].float()
        if t.shape[-1] != size or t.shape[-2] != size:
            t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        self.images = t.round().clamp(0, 255).to(torch.uint8)
        self.labels = torch.from_numpy(np.asarray(y, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "label": self.labels[i]}


def rotate_flip(x: torch.Tensor, max_deg: float, flip_p: float) -> torch.Tensor:
    """Batched random rotation in ``[-max_deg, max_deg]`` and horizontal / vertical flips. ``(B, C, H, W)``."""
    b = x.shape[0]
    ang = (torch.rand(b, device=x.device) * 2 - 1) * math.radians(max_deg)
    fx = torch.where(torch.rand(b, device=x.device) < flip_p, -1.0, 1.0)
    fy = torch.where(torch.rand(b, device=x.device) < flip_p, -1.0, 1.0)
    c, s = torch.cos(ang), torch.sin(ang)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 1] = c * fx, -s * fy
    theta[:, 1, 0], theta[:, 1, 1] = s * fx, c * fy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class Classifier(nn.Module):
    """backbone + linear head: ``(B, 1, S, S)`` uint8 / float -> ``(B, n_classes)`` logits."""

    def __init__(self, cfg: CTConfig, n_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone, dim = build_backbone(cfg.model)
        self.head = nn.Linear(dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        s = self.cfg.ssl
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return self.backbone(to_input(x, s.norm_mean, s.norm_std).contiguous(memory_format=torch.channels_last))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class FinetuneTask(Task):
    """batch ``{"image", "label"}`` -> ``{"loss", "ce"}``; backbone frozen for ``freeze_steps`` steps."""

    def __init__(self, cfg: CTConfig, n_classes: int, freeze_steps: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = Classifier(cfg, n_classes)
        self.freeze_steps = freeze_steps
        self._it = 0

    def optim_groups(self) -> list[OptimGroup]:
        lr = self.cfg.finetune.train.lr
        return [OptimGroup("head", "loss", list(self.model.head.parameters())),
                OptimGroup("backbone", "loss", list(self.model.backbone.parameters()), lr=lr * self.cfg.finetune.backbone_lr_ratio)]

    def on_step_end(self, step: int, max_steps: int) -> None:
        self._it = step

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        f = self.cfg.finetune
        x = batch["image"].float() / 255.0
        with torch.no_grad():
            x = rotate_flip(x, f.rotation_deg, f.flip_p)
        if self._it < self.freeze_steps:
            with torch.no_grad():
                h = self.model.features(x)
        else:
            h = self.model.features(x)
        logits = self.model.head(h)
        loss = F.cross_entropy(logits.float(), batch["label"])
        return {"loss": loss, "ce": loss.detach()}


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device | str = "cpu", batch: int = 256) -> torch.Tensor:
    """Softmax probabilities ``(N, C)`` of ``x (N, 1, S, S)`` uint8 (model in eval mode)."""
    model.eval()
    outs = [model(x[i:i + batch].to(device)).float().softmax(-1).cpu() for i in range(0, len(x), batch)]
    return torch.cat(outs)


def metrics(probs: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    from pretrainlab.core.evaluate import accuracy, roc_auc

    p = probs.numpy()
    out = {"accuracy": accuracy(y.numpy(), p.argmax(1))}
    try:
        out["auc"] = roc_auc(y.numpy(), p[:, 1] if p.shape[1] == 2 else p)
    except ValueError:
        out["auc"] = float("nan")
    return out


def finetune(cfg: CTConfig, data_root: Path, task: str, run_dir: Path, backbone_state: dict[str, torch.Tensor] | None,
             progress: bool = True) -> dict[str, Any]:
    """Fine-tune on ``task``'s train split, pick the epoch with the best validation accuracy,
    return its test metrics ``{"auc", "accuracy", "val_accuracy", "best_epoch", ...}``."""
    from pretrainlab.core.checkpoint import load_tensors
    from pretrainlab.core.train import Trainer, seed_everything
    from pretrainlab.ct.readers import read_task

    f = cfg.finetune
    size = cfg.model.image_size
    xtr, ytr, n_classes = read_task(data_root, task, "train")
    xva, yva, _ = read_task(data_root, task, "val")
    xte, yte, _ = read_task(data_root, task, "test")
    tr = ArrayDataset(xtr, ytr, size)
    bs = min(f.train.batch_size, len(tr))
    per_epoch = len(tr) // bs
    tc = dataclasses.replace(f.train, batch_size=bs, max_steps=f.epochs * per_epoch, ckpt_every=per_epoch,
                             keep_checkpoints=0, progress=progress and f.train.progress)
    seed_everything(tc.seed)
    ft = FinetuneTask(cfg, n_classes, freeze_steps=f.unfreeze_epoch * per_epoch)
    if backbone_state is not None:
        ft.model.backbone.load_state_dict(backbone_state)
    fcfg = dataclasses.replace(cfg, finetune=dataclasses.replace(f, train=tc))
    result = Trainer(tc, run_dir, full_config=fcfg).fit(ft, tr)
    va = ArrayDataset(xva, yva, size)
    te = ArrayDataset(xte, yte, size)
    dev = next(ft.parameters()).device
    best: tuple[float, int, Path] | None = None
    for ck in sorted((Path(run_dir) / "checkpoints").glob("step_*")):
        w, _ = load_tensors(ck / "model.safetensors", dev)
        ft.load_state_dict(w)
        acc = metrics(predict(ft.model, va.images, dev), va.labels)["accuracy"]
        step = int(ck.name.split("_")[1])
        if best is None or acc > best[0]:
            best = (acc, step, ck)
    assert best is not None
    w, _ = load_tensors(best[2] / "model.safetensors", dev)
    ft.load_state_dict(w)
    m = metrics(predict(ft.model, te.images, dev), te.labels)
    m.update({"val_accuracy": best[0], "best_epoch": best[1] // per_epoch, "checkpoint": str(best[2]),
              "train_wall_s": result.wall_time_s, "n_classes": n_classes})
    return m
