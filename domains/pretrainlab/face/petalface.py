"""PETALface (Narayan et al., WACV 2025, Sec. 3.2) and the paper's baselines on one backbone.

Methods (``cfg.method``):
- ``pretrain``: the high-resolution "WebFace" stage: the whole backbone + margin head train.
- ``full``: full fine-tuning of every backbone parameter on the low-resolution set (baseline).
- ``lora``: plain LoRA through the ``peft`` library (``LoraConfig(target_modules=[qkv, head.fc])``,
  same rank / scale / dropout / init as PETALface) (baseline).
- ``petalface``: twin LoRA on every attention ``qkv`` (``core.peft.inject_lora(n_adapters=2)``)::

      y = W x + s * up1(down1((1 - a) x)) + s * up2(down2(a x))

  with ``a`` the per-image quality weight (``quality.py``), plus ONE LoRA on the final feature
  projection ``head.fc``. Down ~ N(0, 1/r), up = 0, dropout 0.1, rank 8, scale 1. Only the LoRA
  weights, the embedding head's BatchNorm affine parameters and the new margin classifier train.

The trainable fraction is reported over the backbone (the classifier of the fine-tuning
identities is a separate, dataset-specific matrix, as in the paper's 0.48 % figure).
Each adapter draws its own dropout mask, as in the reference code (``pretrainlab.core.peft``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from pretrainlab.core.peft import inject_lora, mark_only_lora_trainable, mixing_weights
from pretrainlab.core.train import Task
from pretrainlab.face.config import FaceConfig
from pretrainlab.face.margin_loss import MarginHead
from pretrainlab.face.quality import QualityScorer, mixing_from_quality
from pretrainlab.face.swin_face import SwinFace


def normalize(x: Tensor) -> Tensor:
    """``[0, 1]`` images -> ``[-1, 1]`` (insightface / reference-code input normalisation)."""
    return (x - 0.5) / 0.5


def adapt_backbone(backbone: SwinFace, cfg: FaceConfig) -> nn.Module:
    """Attach the method's adapters to a (pre-trained) backbone and set what trains. Returns it."""
    lc = cfg.lora
    alpha = lc.scale * lc.rank
    head_norms = ["head.bn1", "head.bn2"] if lc.train_head_norms else []
    if cfg.method == "petalface":
        inject_lora(backbone, [lc.qkv_target], r=lc.rank, alpha=alpha, dropout=lc.dropout, n_adapters=2, init=lc.init)
        inject_lora(backbone, [lc.feature_target], r=lc.rank, alpha=alpha, dropout=lc.dropout, n_adapters=1, init=lc.init)
        mark_only_lora_trainable(backbone, extra=head_norms)
    elif cfg.method == "lora":
        from peft import LoraConfig, inject_adapter_in_model

        pc = LoraConfig(r=lc.rank, lora_alpha=alpha, lora_dropout=lc.dropout,
                        target_modules=[lc.qkv_target, lc.feature_target],
                        init_lora_weights="gaussian" if lc.init == "gaussian" else True)
        backbone = inject_adapter_in_model(pc, backbone)  # type: ignore[assignment]
        for name, p in backbone.named_parameters():
            p.requires_grad_("lora_" in name or any(name.startswith(h + ".") for h in head_norms))
    elif cfg.method in ("full", "pretrain"):
        for p in backbone.parameters():
            p.requires_grad_(True)
    else:
        raise ValueError(f"unknown method {cfg.method!r}")
    return backbone


class FaceTask(Task):
    """batch ``{"image": (B,3,S,S) in [0,1], "label": (B,)}`` -> ``{"loss", "acc", "quality_a"}``.

    ``embed(x)`` gives ``(B, E)`` embeddings (with PETALface's per-sample mixing applied).
    """

    def __init__(self, cfg: FaceConfig, num_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone: nn.Module = adapt_backbone(SwinFace(cfg.model), cfg)
        lc = cfg.loss
        self.margin = MarginHead(cfg.model.embedding_dim, num_classes, lc.s, lc.m1, lc.m2, lc.m3)
        self.scorer = QualityScorer(cfg.quality) if cfg.method == "petalface" else None

    def quality(self, xn: Tensor) -> Tensor | None:
        """Quality weight ``a`` ``(B,)`` of normalised images (PETALface only; no gradient)."""
        if self.scorer is None:
            return None
        with torch.no_grad():
            return self.scorer(xn)

    def embed(self, x: Tensor, a: Tensor | None = None) -> Tensor:
        """``(B,3,S,S)`` in [0,1] -> ``(B,E)``; PETALface mixes its adapters with ``(1 - a, a)``."""
        xn = normalize(x)
        if self.scorer is None:
            return self.backbone(xn)
        if a is None:
            a = self.quality(xn)
        assert a is not None
        with mixing_weights(self.backbone, mixing_from_quality(a).to(xn.dtype)):
            return self.backbone(xn)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x, y = batch["image"], batch["label"]
        if self.cfg.data.hflip and self.training:  # the only augmentation (reference code)
            flip = torch.rand(x.shape[0], device=x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        a = self.quality(normalize(x))
        emb = self.embed(x, a)
        loss, acc = self.margin(emb, y)
        out = {"loss": loss, "acc": acc}
        if a is not None:
            out["quality_a"] = a.mean()
        return out


def backbone_trainable(task: FaceTask) -> dict[str, Any]:
    """Trainable / total parameters of the backbone (percent as the paper reports it)."""
    total = sum(p.numel() for p in task.backbone.parameters())
    train = sum(p.numel() for p in task.backbone.parameters() if p.requires_grad)
    return {"total": total, "trainable": train, "percent": 100.0 * train / max(1, total)}


def load_pretrained_backbone(task: FaceTask, ckpt: str) -> None:
    """Load a pre-training checkpoint's backbone into ``task.backbone`` (before adapters are used).

    Works for the plain backbone and for adapted ones (LoRA keys are left at their init; peft's
    wrapped names ``<m>.base_layer.*`` and core's ``<m>.base.*`` are mapped from ``<m>.*``).
    """
    from pretrainlab.core.checkpoint import CheckpointError, find_checkpoint, load_tensors

    folder = find_checkpoint(ckpt)
    tensors, _ = load_tensors(folder / "model.safetensors")
    src = {k[len("backbone."):]: v for k, v in tensors.items() if k.startswith("backbone.")}
    if not src:
        raise CheckpointError(f"{folder}: no backbone weights (is it a face checkpoint?)")
    if any("lora_" in k for k in src):
        raise CheckpointError(f"{folder}: holds an adapted model; --init needs the pre-trained (method=pretrain) backbone")
    own = task.backbone.state_dict()
    new: dict[str, Tensor] = {}
    for k in own:
        if "lora_" in k:
            continue
        plain = k.replace(".base_layer.", ".").replace(".base.", ".")
        if plain not in src:
            raise CheckpointError(f"{folder}: backbone weight '{plain}' missing (different model config?)")
        if src[plain].shape != own[k].shape:
            raise CheckpointError(f"{folder}: '{plain}' has shape {tuple(src[plain].shape)}, the model needs {tuple(own[k].shape)}")
        new[k] = src[plain]
    task.backbone.load_state_dict(new, strict=False)
