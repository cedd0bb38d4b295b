"""Typed configuration of the face domain (one dataclass tree; every reference default cites its source).

Paper: Narayan et al., "PETALface: Parameter Efficient Transfer Learning for Low-resolution Face
Recognition", WACV 2025 (arXiv 2412.07771). Reference code: Kartik-3004/PETALface ("ref:" comments
name its files: ``backbones/__init__.py`` (get_model), ``backbones/swin_models_iqa.py``,
``backbones/lora_layers.py``, ``train_iqa.py``, ``config.py``, ``scripts/*.sh``, ``lr_scheduler.py``,
``validation_lq/validate_tinyface_iqa.py``).

Every numeric / enum field is validated when the config is built (:meth:`FaceConfig.check`), with a
``ConfigError("<dotted key>: <problem>; allowed: ...")`` before any run folder is written.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from pretrainlab.core.config import ConfigError, TrainConfig

METHODS = ("pretrain", "full", "lora", "petalface")
SCORERS = ("brisque", "cnniqa", "sharpness")
LORA_INITS = ("reference", "zero_up")


@dataclasses.dataclass
class SwinConfig:
    """The reference face Swin (ref: backbones/__init__.py ``swin_256new[_iqa]``)."""

    image_size: int = 120  # ref: img_size=120 (scripts --image_size 120)
    patch_size: int = 6  # ref: patch_size=6 -> 20 x 20 tokens
    embed_dim: int = 384  # ref: embed_dim=384
    depths: list[int] = dataclasses.field(default_factory=lambda: [2, 18, 2])  # ref: depths=[2,18,2]
    num_heads: list[int] = dataclasses.field(default_factory=lambda: [8, 16, 16])  # ref: num_heads=[8,16,16]
    window_size: int = 5  # ref: window_size=5 (20 -> 10 -> 5 tokens per side)
    mlp_ratio: float = 4.0  # ref: SwinTransformer mlp_ratio=4.
    drop_path: float = 0.05  # ref: swin_models_iqa.py SwinTransformer drop_path_rate=0.05
    ape: bool = True  # ref: ape=True (absolute position embedding)
    apply_shift_mask: bool = False  # ref quirk: the SW-MSA mask is computed but never applied (attn1 unused)
    head_dropout: float = 0.25  # ref: feature_layer nn.Dropout(0.25)
    embedding_dim: int = 512  # ref: feature_layer Linear(embed_dim*100, 512)


@dataclasses.dataclass
class MarginLossConfig:
    """CombinedMarginLoss ``cos(m1*theta + m2) - m3`` scaled by ``s`` (ref: losses.py; train_iqa.py s=64)."""

    s: float = 64.0  # ref: train_iqa.py CombinedMarginLoss(64, ...)
    m1: float = 1.0  # ref: --margin_list 1.0,0.0,0.4 (CosFace)
    m2: float = 0.0  # ArcFace: --margin_list 1.0,0.5,0.0
    m3: float = 0.4  # ref: scripts/train_iqa.sh CosFace m3 = 0.4


@dataclasses.dataclass
class LoRAConfig:
    """Adapters of PETALface (twin on qkv, single on the feature projection) and of the LoRA baseline."""

    rank: int = 8  # ref: scripts/train_iqa.sh --lora_rank 8 (config.py default 4)
    scale: float = 1.0  # ref: --lora_scale 1: y = Wx + scale * up(down(x))
    dropout: float = 0.1  # ref: lora_layers.py nn.Dropout(0.1) on each adapter's output
    init: str = "reference"  # reference: _init_weights leaves down AND up at trunc_normal(0.02); zero_up: N(0,1/r) / 0


@dataclasses.dataclass
class QualityConfig:
    """Image-quality weight ``a = 0.5 + (score - threshold)`` (ref: train_iqa.py generate_alpha).

    ``score`` is the IQA model's raw output on the NORMALISED input tensor, as the reference computes it.
    """

    scorer: str = "brisque"  # ref: scripts/train_iqa.sh --iqa brisque (cnniqa the other option); sharpness: weight-free
    weights: str = ""  # local weight file of brisque (pyiqa brisque_svm_weights.pth) / cnniqa (CNNIQA_koniq10k-*.pth)
    threshold: float = 0.5  # ref: config.py --threshold default 0.5 ("set the threshold accordingly")
    clamp: bool = False  # the reference does not clamp a; true clamps to [0, 1] (a deviation, off by default)
    sharpness_scale: float = 0.2  # sharpness scorer: r / (r + c); r giving score 0.5 (this project's calibration)
    analysis_size: int = 32  # sharpness scorer: analysis size (resolution-independent)


@dataclasses.dataclass
class DataConfig:
    train_dir: str = "train_hr"  # identity folders OR an insightface train.rec/train.idx folder (pre-training)
    finetune_dir: str = "train_lr"  # identity folders or train.rec/.idx (TinyFace training set / BRIAR)
    verify_dir: str = "verify"  # LFW layout (pairs.txt) or an insightface <name>.bin file
    tinyface_dir: str = "tinyface"  # TinyFace layout: Probe/, Gallery_Match/, Gallery_Distractor/
    hflip: bool = True  # ref: dataset.py RandomHorizontalFlip (the only training augmentation)
    max_images: int = 0  # 0 = all; cap per split (quick runs)
    profile: str = "tiny"  # which synthetic set to generate when --data is not given
    num_workers: int = 0  # evaluation DataLoader workers (decoding is lazy, in the workers)


@dataclasses.dataclass
class EvalConfig:
    fars: list[float] = dataclasses.field(default_factory=lambda: [1e-2, 1e-1])  # IJB uses 1e-4 (eval.ijb_fars)
    ijb_fars: list[float] = dataclasses.field(default_factory=lambda: [1e-4])  # IJB-B/C TAR@FAR=1e-4 (paper Table 1)
    ranks: list[int] = dataclasses.field(default_factory=lambda: [1, 5, 10])  # TinyFace rank-1/5/10 (paper Table 1)
    flip_tta: bool = True  # ref: validate_tinyface_iqa.py use_flip_test=True, pre_norm_vector_add fusion
    batch_size: int = 128


@dataclasses.dataclass
class FaceConfig:
    description: str = ""
    method: str = "petalface"  # pretrain | full | lora | petalface
    model: SwinConfig = dataclasses.field(default_factory=SwinConfig)
    loss: MarginLossConfig = dataclasses.field(default_factory=MarginLossConfig)
    lora: LoRAConfig = dataclasses.field(default_factory=LoRAConfig)
    quality: QualityConfig = dataclasses.field(default_factory=QualityConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    # ref: scripts/train_iqa.sh: AdamW lr 5e-4, wd 0.1, batch 8 x 8 GPUs = 64; lr_scheduler.py PolynomialLRWarmup
    # (power 1.0 default: linear decay after the warm-up); train_iqa.py clip_grad_norm_(backbone, 5) only
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        batch_size=64, lr=5e-4, weight_decay=0.1, optimizer="adamw", schedule="poly", poly_power=1.0, warmup_steps=0,
        clip_grad=5.0, max_steps=10000))
    epochs: float = 0.0  # > 0: train.max_steps = len(data) // batch * epochs (ref: --num_epoch; 40-50 on TinyFace)
    warmup_epochs: float = 0.0  # > 0: train.warmup_steps = len(data) // batch * warmup_epochs (ref: --warmup_epoch 2)
    init: str = ""  # the pre-trained backbone: a `face pretrain` run / checkpoint, or the reference's model.pt

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Validate every face field; ``ConfigError`` names the dotted key and what is allowed."""

        def need(ok: bool, key: str, value: Any, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"{key}: {value!r} is not allowed; allowed: {allowed}")

        def num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        need(self.method in METHODS, "method", self.method, ", ".join(METHODS))
        m, lo, lr, q, d, e = self.model, self.loss, self.lora, self.quality, self.data, self.eval
        for k in ("image_size", "patch_size", "embed_dim", "window_size", "embedding_dim"):
            need(isinstance(getattr(m, k), int) and getattr(m, k) >= 1, f"model.{k}", getattr(m, k), "an integer >= 1")
        need(num(m.mlp_ratio) and m.mlp_ratio > 0, "model.mlp_ratio", m.mlp_ratio, "a number > 0")
        need(num(m.drop_path) and 0 <= m.drop_path < 1, "model.drop_path", m.drop_path, "a number in [0, 1)")
        need(num(m.head_dropout) and 0 <= m.head_dropout < 1, "model.head_dropout", m.head_dropout, "a number in [0, 1)")
        from pretrainlab.face.swin_face import (
            check_swin,  # shape consistency (patch / window / heads / stages)
        )

        check_swin(m)
        need(num(lo.s) and lo.s > 0, "loss.s", lo.s, "a number > 0")
        need(num(lo.m1) and lo.m1 > 0, "loss.m1", lo.m1, "a number > 0")
        need(num(lo.m2) and 0 <= lo.m2 < math.pi / 2, "loss.m2", lo.m2, "a number in [0, pi/2)")
        need(num(lo.m3) and 0 <= lo.m3 < 1, "loss.m3", lo.m3, "a number in [0, 1)")
        need(lo.m1 == 1.0 and (lo.m3 == 0.0 or lo.m2 == 0.0), "loss.m1/m2/m3", (lo.m1, lo.m2, lo.m3),
             "ArcFace (m1=1, m2>=0, m3=0) or CosFace (m1=1, m2=0, m3>0), the two paths of the reference's "
             "CombinedMarginLoss")
        need(isinstance(lr.rank, int) and lr.rank >= 1, "lora.rank", lr.rank, "an integer >= 1")
        need(num(lr.scale) and lr.scale > 0, "lora.scale", lr.scale, "a number > 0")
        need(num(lr.dropout) and 0 <= lr.dropout < 1, "lora.dropout", lr.dropout, "a number in [0, 1)")
        need(lr.init in LORA_INITS, "lora.init", lr.init, ", ".join(LORA_INITS))
        need(q.scorer in SCORERS, "quality.scorer", q.scorer, ", ".join(SCORERS))
        need(num(q.threshold), "quality.threshold", q.threshold, "a finite number")
        need(num(q.sharpness_scale) and q.sharpness_scale > 0, "quality.sharpness_scale", q.sharpness_scale, "a number > 0")
        need(isinstance(q.analysis_size, int) and q.analysis_size >= 8, "quality.analysis_size", q.analysis_size,
             "an integer >= 8")
        need(isinstance(d.max_images, int) and d.max_images >= 0, "data.max_images", d.max_images, "an integer >= 0 (0 = all)")
        need(isinstance(d.num_workers, int) and d.num_workers >= 0, "data.num_workers", d.num_workers, "an integer >= 0")
        need(d.profile in ("smoke", "tiny", "full"), "data.profile", d.profile, "smoke, tiny, full")
        for k in ("train_dir", "finetune_dir", "verify_dir", "tinyface_dir"):
            need(bool(getattr(d, k)) and ".." not in getattr(d, k).replace("\\", "/").split("/"), f"data.{k}",
                 getattr(d, k), "a non-empty folder name inside --data")
        need(bool(e.fars) and all(num(f) and 0 < f < 1 for f in e.fars), "eval.fars", e.fars, "numbers in (0, 1)")
        need(bool(e.ijb_fars) and all(num(f) and 0 < f < 1 for f in e.ijb_fars), "eval.ijb_fars", e.ijb_fars,
             "numbers in (0, 1)")
        need(bool(e.ranks) and all(isinstance(r, int) and r >= 1 for r in e.ranks), "eval.ranks", e.ranks,
             "integers >= 1")
        need(isinstance(e.batch_size, int) and e.batch_size >= 1, "eval.batch_size", e.batch_size, "an integer >= 1")
        need(num(self.epochs) and self.epochs >= 0, "epochs", self.epochs, "a number >= 0 (0 = use train.max_steps)")
        need(num(self.warmup_epochs) and self.warmup_epochs >= 0, "warmup_epochs", self.warmup_epochs, "a number >= 0")
        t = self.train
        need(isinstance(t.batch_size, int) and t.batch_size >= 1, "train.batch_size", t.batch_size, "an integer >= 1")
        need(isinstance(t.max_steps, int) and t.max_steps >= 1, "train.max_steps", t.max_steps, "an integer >= 1")
        need(num(t.lr) and t.lr > 0, "train.lr", t.lr, "a finite number > 0")
        need(num(t.weight_decay) and t.weight_decay >= 0, "train.weight_decay", t.weight_decay, "a number >= 0")
        need(num(t.clip_grad) and t.clip_grad >= 0, "train.clip_grad", t.clip_grad, "a number >= 0 (0 = off)")
        need(isinstance(t.warmup_steps, int) and t.warmup_steps >= 0, "train.warmup_steps", t.warmup_steps,
             "an integer >= 0")
        need(num(t.poly_power) and t.poly_power > 0, "train.poly_power", t.poly_power, "a number > 0")

    @property
    def adapter(self) -> str:
        """The backbone variant of the method: ``none`` (pretrain / full), ``lora`` or ``twin`` (PETALface)."""
        return {"pretrain": "none", "full": "none", "lora": "lora", "petalface": "twin"}[self.method]
