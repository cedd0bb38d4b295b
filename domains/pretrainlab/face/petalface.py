"""PETALface (Narayan et al., WACV 2025, Sec. 3.2) and the paper's baselines on the reference backbone.

Methods (``cfg.method``; ref: train.py / train_iqa.py and scripts/):

- ``pretrain``: the WebFace stage (``swin_256new``, everything trains; ref: scripts/pretrain.sh).
- ``full``: full fine-tuning of every backbone parameter on the low-resolution set (baseline).
- ``lora``: plain LoRA (``swin_256new, use_lora=True``): one adapter on every attention ``qkv`` and one
  on the feature projection (ref: scripts/train_lora.sh). The reference's own ``LoRALinear``, not peft.
- ``petalface``: twin LoRA on every ``qkv`` (``swin_256new_iqa``), mixed per image by the quality
  weight ``a`` (:mod:`pretrainlab.face.quality`), plus one LoRA on the feature projection.

For ``lora`` / ``petalface`` only the adapter weights (``'trainable_lora' in name``, ref: train_iqa.py)
and the new margin classifier train; the head's BatchNorms keep their affine parameters frozen but,
as in the reference (``backbone.train()``), update their running statistics. Gradient clipping
(``train.clip_grad`` = 5) acts on the backbone's parameters only, not the classifier
(ref: ``clip_grad_norm_(backbone.parameters(), 5)``): two optimizer groups with the same AdamW
settings and schedule.

Inputs everywhere are NORMALISED images ``(x - 0.5) / 0.5`` (``(B, 3, S, S)``), as the reference feeds
both the backbone and the IQA model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pretrainlab.core.train import OptimGroup, Task
from pretrainlab.face.config import FaceConfig, SwinConfig
from pretrainlab.face.lora_layers import LoRALinear, LoRALinearTwo
from pretrainlab.face.margin_loss import MarginHead
from pretrainlab.face.quality import QualityScorer
from pretrainlab.face.swin_face import SwinFace


def normalize(x: Tensor) -> Tensor:
    """``[0, 1]`` images -> ``(x - 0.5) / 0.5`` (ref: transforms.Normalize([0.5]*3, [0.5]*3))."""
    return (x - 0.5) / 0.5


def build_backbone(cfg: FaceConfig) -> SwinFace:
    """The method's backbone with the method's trainable set (see the module docstring)."""
    lc = cfg.lora
    net = SwinFace(cfg.model, cfg.adapter, r=lc.rank, scale=lc.scale, dropout=lc.dropout)
    if lc.init == "zero_up":  # the LoRA paper / the reference constructor's intention: start at the pre-trained function
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, (LoRALinear, LoRALinearTwo)):
                    for name in ("trainable_lora_down", "trainable_lora_down2"):
                        if hasattr(m, name):
                            nn.init.normal_(getattr(m, name).weight, std=1 / lc.rank)
                    for name in ("trainable_lora_up", "trainable_lora_up2"):
                        if hasattr(m, name):
                            nn.init.zeros_(getattr(m, name).weight)
    adapted = cfg.adapter != "none"
    for name, p in net.named_parameters():
        p.requires_grad_(("trainable_lora" in name) if adapted else True)
    return net


class FaceTask(Task):
    """batch ``{"image": (B,3,S,S) normalised, "label": (B,)}`` -> ``{"loss", "acc"[, "quality_a"]}``.

    ``embed(xn, a=None)`` gives ``(B, E)`` raw embeddings (PETALface scores ``a`` when not given).
    ``num_classes=0``: no classifier (an imported reference backbone used for embedding only).
    """

    def __init__(self, cfg: FaceConfig, num_classes: int, scorer: QualityScorer | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg)
        lc = cfg.loss
        self.margin = MarginHead(cfg.model.embedding_dim, num_classes, lc.s, lc.m1, lc.m2, lc.m3) if num_classes else None
        self._scorer = scorer  # built on first use (embedding with precomputed scores needs none)

    @property
    def scorer(self) -> QualityScorer | None:
        """PETALface's IQA scorer (``quality.*``), built on first use; None for the other methods."""
        if self.cfg.method != "petalface":
            return None
        if self._scorer is None:
            self._scorer = QualityScorer(self.cfg.quality)
        return self._scorer

    def optim_groups(self) -> list[OptimGroup]:
        bb = [p for p in self.backbone.parameters() if p.requires_grad]
        groups = [OptimGroup("backbone", params=bb)]  # clip: train.clip_grad (ref: 5, backbone only)
        if self.margin is not None:
            groups.append(OptimGroup("head", params=list(self.margin.parameters()), clip_grad=0.0))
        return groups

    def quality(self, xn: Tensor) -> Tensor | None:
        """Quality weight ``a`` ``(B,)`` of normalised images (PETALface only; no gradient)."""
        if self.scorer is None:
            return None
        with torch.no_grad():
            return self.scorer(xn).to(xn.device)

    def embed(self, xn: Tensor, a: Tensor | None = None) -> Tensor:
        """``(B,3,S,S)`` normalised -> ``(B,E)``; PETALface mixes its adapters with ``(1 - a, a)``."""
        if self.cfg.adapter != "twin":
            return self.backbone(xn)
        if a is None:
            a = self.quality(xn)
        assert a is not None
        return self.backbone(xn, a.reshape(-1).to(xn.device))

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        if self.margin is None:
            raise RuntimeError("this face model has no classifier (imported for embedding only)")
        x, y = batch["image"], batch["label"]
        if self.cfg.data.hflip and self.training:  # ref: RandomHorizontalFlip before the IQA score
            flip = torch.rand(x.shape[0], device=x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        a = self.quality(x)
        emb = self.embed(x, a)
        loss, acc = self.margin(emb, y)
        out = {"loss": loss, "acc": acc}
        if a is not None:
            out["quality_a"] = a.float().mean()
        return out


def backbone_trainable(task: FaceTask) -> dict[str, Any]:
    """Trainable / total parameters of the backbone (percent as the paper reports it)."""
    total = sum(p.numel() for p in task.backbone.parameters())
    train = sum(p.numel() for p in task.backbone.parameters() if p.requires_grad)
    return {"total": total, "trainable": train, "percent": 100.0 * train / max(1, total)}


# ------------------------------------------------------------------ reference (.pt) state dicts
def is_reference_file(path: str | Path) -> bool:
    """A ``.pt`` / ``.pth`` file (the reference's ``torch.save(state_dict)``), not a project run folder."""
    p = Path(path)
    return p.is_file() and p.suffix.lower() in (".pt", ".pth", ".bin", ".ckpt")


def read_reference_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The reference's ``model.pt`` (a plain state dict) read with ``weights_only`` (no pickled code runs)."""
    from pretrainlab.core.checkpoint import CheckpointError, load_torch_file

    obj = load_torch_file(path, what="PETALface model.pt")
    if isinstance(obj, dict) and "state_dict_backbone" in obj:  # the reference's checkpoint_gpu_<rank>.pt
        obj = obj["state_dict_backbone"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise CheckpointError(f"{path}: not a PETALface state dict (expected {{name: tensor}} as torch.save(backbone.state_dict()))")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def infer_reference_config(sd: dict[str, Tensor], path: str | Path) -> tuple[SwinConfig, str, int]:
    """(SwinConfig, adapter, LoRA rank) of a reference state dict, read from its tensor shapes."""
    from pretrainlab.core.checkpoint import CheckpointError
    from pretrainlab.core.config import ConfigError

    try:
        return _infer(sd, path)
    except CheckpointError:
        raise
    except (ConfigError, KeyError, IndexError, ValueError, TypeError, ZeroDivisionError) as e:
        raise CheckpointError(f"{path}: not a PETALface / swin_256new state dict (its tensor shapes do not describe "
                              f"the reference Swin: {str(e).splitlines()[0][:160]})") from None


def _infer(sd: dict[str, Tensor], path: str | Path) -> tuple[SwinConfig, str, int]:
    from pretrainlab.core.checkpoint import CheckpointError

    def get(k: str) -> Tensor:
        if k not in sd:
            raise CheckpointError(f"{path}: '{k}' missing: not a PETALface / swin_256new state dict")
        return sd[k]

    pw = get("patch_embed.proj.weight")  # (C, 3, p, p)
    embed, patch = int(pw.shape[0]), int(pw.shape[-1])
    ape = "absolute_pos_embed" in sd
    n_layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("layers."))
    depths = [1 + max(int(k.split(".")[3]) for k in sd if k.startswith(f"layers.{i}.blocks.")) for i in range(n_layers)]
    heads, windows = [], []
    for i in range(n_layers):
        t = get(f"layers.{i}.blocks.0.attn.relative_position_bias_table")  # ((2ws-1)^2, h)
        heads.append(int(t.shape[1]))
        windows.append((round(t.shape[0] ** 0.5) + 1) // 2)
    flat = int(get("feature_layer.0.weight").shape[0])
    emb = int(get("feature_layer.3.weight").shape[0])
    last_dim = embed * 2 ** (n_layers - 1)
    res_last = round((flat / last_dim) ** 0.5)
    res0 = res_last * 2 ** (n_layers - 1)
    if ape:
        res0 = round(get("absolute_pos_embed").shape[1] ** 0.5)
    fc1 = get("layers.0.blocks.0.mlp.fc1.weight")
    cfg = SwinConfig(image_size=res0 * patch, patch_size=patch, embed_dim=embed, depths=depths, num_heads=heads,
                     window_size=windows[0], mlp_ratio=fc1.shape[0] / embed, ape=ape, embedding_dim=emb)
    twin = any(k.endswith("trainable_lora_down2.weight") for k in sd)
    single = any(k.endswith("trainable_lora_down.weight") for k in sd)
    adapter = "twin" if twin else "lora" if single else "none"
    rank = int(next((v.shape[0] for k, v in sd.items() if k.endswith("trainable_lora_down.weight")), 8))
    return cfg, adapter, rank


_ADAPTER_METHOD = {"none": "pretrain", "lora": "lora", "twin": "petalface"}


def import_reference(path: str | Path, overrides: list[str] | None = None) -> tuple[FaceTask, FaceConfig]:
    """An embedding-only task from the reference's ``model.pt`` (architecture read from its shapes).

    ``overrides``: ``key=value`` settings (``quality.*``, ``eval.*``); ``model.*`` / ``lora.*`` come from the file.
    """
    from pretrainlab.core.checkpoint import CheckpointError
    from pretrainlab.core.config import ConfigError, from_dict, merge, parse_overrides, to_dict

    sd = read_reference_state_dict(path)
    scfg, adapter, rank = infer_reference_config(sd, path)
    ov = parse_overrides(list(overrides or []))
    fixed = [k for k in ov if k.split(".")[0] in ("model", "lora", "method")]
    if fixed:
        raise ConfigError(f"{fixed[0]}: comes from the checkpoint's tensor shapes and cannot be overridden")
    cfg = merge(from_dict(FaceConfig, {"method": _ADAPTER_METHOD[adapter], "model": to_dict(scfg),
                                       "lora": {"rank": rank}}), ov)
    task = FaceTask(cfg, 0)
    try:
        task.backbone.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: does not fit the reference architecture: "
                              f"{' '.join(str(e).split())[:400]}") from None
    return task.eval(), cfg


def load_pretrained_backbone(task: FaceTask, ckpt: str) -> None:
    """Load a pre-trained (non-adapted) backbone into ``task.backbone`` before fine-tuning.

    ``ckpt``: a ``face pretrain`` run / checkpoint folder, or a reference ``model.pt`` of ``swin_256new``.
    As the reference (``load_state_dict(strict=False)``), adapter weights keep their initialisation;
    unlike it, every NON-adapter weight must be present with the right shape (a silent partial load
    is refused).
    """
    from pretrainlab.core.checkpoint import CheckpointError, find_checkpoint, load_tensors

    if is_reference_file(ckpt):
        src = read_reference_state_dict(ckpt)
        where = str(ckpt)
    else:
        folder = find_checkpoint(ckpt)
        tensors, _ = load_tensors(folder / "model.safetensors")
        src = {k[len("backbone."):]: v for k, v in tensors.items() if k.startswith("backbone.")}
        where = str(folder)
        if not src:
            raise CheckpointError(f"{folder}: no backbone weights (is it a face checkpoint?)")
    if any("trainable_lora" in k for k in src):
        raise CheckpointError(f"{where}: holds an adapted model; --init needs the pre-trained (method=pretrain) backbone")
    own = task.backbone.state_dict()
    new: dict[str, Tensor] = {}
    for k, v in own.items():
        if "trainable_lora" in k:
            continue
        if k not in src:
            raise CheckpointError(f"{where}: backbone weight '{k}' missing (different model config?)")
        if src[k].shape != v.shape:
            raise CheckpointError(f"{where}: '{k}' has shape {tuple(src[k].shape)}, the model needs {tuple(v.shape)}")
        new[k] = src[k]
    extra = sorted(set(src) - set(own))
    if extra:
        raise CheckpointError(f"{where}: {len(extra)} weights the model does not have (e.g. '{extra[0]}'; different model config?)")
    task.backbone.load_state_dict(new, strict=False)
