"""Typed configuration of the face domain (one dataclass tree; every reference default cites its source).

Paper: Narayan et al., "PETALface: Parameter Efficient Transfer Learning for Low-resolution Face
Recognition", WACV 2025 (arXiv 2412.07771). Reference code: Kartik-3004/PETALface ("ref:" comments
name its files: ``backbones/__init__.py`` (get_model), ``backbones/swin_models_iqa.py``,
``backbones/lora_layers.py``, ``train_iqa.py``, ``config.py``, ``scripts/*.sh``, ``lr_scheduler.py``,
``validation_lq/validate_tinyface_iqa.py``).

Every numeric / enum field is validated when the config is built (``CHECKS`` and ``check()`` of each
dataclass, ``pretrainlab.core.config.validate``), with a ``ConfigError`` naming the dotted key and what
is allowed, before any run folder is written.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from pretrainlab.core.config import ConfigError, TrainConfig

METHODS = ("pretrain", "full", "lora", "petalface")
SCORERS = ("brisque", "cnniqa", "sharpness")
LORA_INITS = ("reference", "zero_up")


def _folder_name(v: str) -> str | None:
    return None if v and ".." not in v.replace("\\", "/").split("/") else "expected a non-empty name inside --data"


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

    CHECKS: ClassVar[dict[str, Any]] = {
        "image_size": ">=1", "patch_size": ">=1", "embed_dim": ">=1", "depths": ">=1", "num_heads": ">=1",
        "window_size": ">=1", "mlp_ratio": ">0", "drop_path": ">=0 <1", "head_dropout": ">=0 <1", "embedding_dim": ">=1"}

    def check(self) -> None:
        check_swin(self, prefix="")


@dataclasses.dataclass
class MarginLossConfig:
    """CombinedMarginLoss ``cos(m1*theta + m2) - m3`` scaled by ``s`` (ref: losses.py; train_iqa.py s=64)."""

    s: float = 64.0  # ref: train_iqa.py CombinedMarginLoss(64, ...)
    m1: float = 1.0  # ref: --margin_list 1.0,0.0,0.4 (CosFace)
    m2: float = 0.0  # ArcFace: --margin_list 1.0,0.5,0.0
    m3: float = 0.4  # ref: scripts/train_iqa.sh CosFace m3 = 0.4

    CHECKS: ClassVar[dict[str, Any]] = {"s": ">0", "m1": ">0", "m2": ">=0 <1.5707963", "m3": ">=0 <1"}

    def check(self) -> None:
        if not (self.m1 == 1.0 and (self.m3 == 0.0 or self.m2 == 0.0)):
            raise ConfigError(f"m1/m2/m3: {(self.m1, self.m2, self.m3)} is not allowed; allowed: ArcFace (m1=1, m2>=0, "
                              "m3=0) or CosFace (m1=1, m2=0, m3>0), the two paths of the reference's CombinedMarginLoss")


@dataclasses.dataclass
class LoRAConfig:
    """Adapters of PETALface (twin on qkv, single on the feature projection) and of the LoRA baseline."""

    rank: int = 8  # ref: scripts/train_iqa.sh --lora_rank 8 (config.py default 4)
    scale: float = 1.0  # ref: --lora_scale 1: y = Wx + scale * up(down(x))
    dropout: float = 0.1  # ref: lora_layers.py nn.Dropout(0.1) on each adapter's output
    init: str = "reference"  # reference: _init_weights leaves down AND up at trunc_normal(0.02); zero_up: N(0,1/r) / 0

    CHECKS: ClassVar[dict[str, Any]] = {"rank": ">=1", "scale": ">0", "dropout": ">=0 <1", "init": LORA_INITS}


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

    CHECKS: ClassVar[dict[str, Any]] = {"scorer": SCORERS, "threshold": lambda v: None if math.isfinite(v) else "not finite",
                                        "sharpness_scale": ">0", "analysis_size": ">=8"}


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

    CHECKS: ClassVar[dict[str, Any]] = {
        "max_images": ">=0", "profile": ("smoke", "tiny", "full"), "num_workers": ">=0",
        **{k: _folder_name for k in ("train_dir", "finetune_dir", "verify_dir", "tinyface_dir")}}


@dataclasses.dataclass
class EvalConfig:
    fars: list[float] = dataclasses.field(default_factory=lambda: [1e-2, 1e-1])  # IJB uses 1e-4 (eval.ijb_fars)
    ijb_fars: list[float] = dataclasses.field(default_factory=lambda: [1e-4])  # IJB-B/C TAR@FAR=1e-4 (paper Table 1)
    ranks: list[int] = dataclasses.field(default_factory=lambda: [1, 5, 10])  # TinyFace rank-1/5/10 (paper Table 1)
    flip_tta: bool = True  # ref: validate_tinyface_iqa.py use_flip_test=True, pre_norm_vector_add fusion
    batch_size: int = 128

    CHECKS: ClassVar[dict[str, Any]] = {"fars": ">0 <1", "ijb_fars": ">0 <1", "ranks": ">=1", "batch_size": ">=1"}

    def check(self) -> None:
        for k in ("fars", "ijb_fars", "ranks"):
            if not getattr(self, k):
                raise ConfigError(f"{k}: must not be empty")


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

    CHECKS: ClassVar[dict[str, Any]] = {"method": METHODS, "epochs": ">=0", "warmup_epochs": ">=0"}

    def __post_init__(self) -> None:
        from pretrainlab.core.config import validate

        validate(self)  # every field's CHECKS and check(), also for configs built in code

    @property
    def adapter(self) -> str:
        """The backbone variant of the method: ``none`` (pretrain / full), ``lora`` or ``twin`` (PETALface)."""
        return {"pretrain": "none", "full": "none", "lora": "lora", "petalface": "twin"}[self.method]


def check_swin(cfg: SwinConfig, prefix: str = "model.") -> None:
    """Raise ``ConfigError`` naming the ``model.*`` key when the shape does not make a Swin."""
    for key in ("image_size", "patch_size", "embed_dim", "window_size", "embedding_dim"):
        if int(getattr(cfg, key)) < 1:
            raise ConfigError(f"{prefix}{key}: must be >= 1, got {getattr(cfg, key)}")
    if not 0 <= cfg.drop_path < 1:
        raise ConfigError(f"{prefix}drop_path: must be in [0, 1), got {cfg.drop_path}")
    if not 0 <= cfg.head_dropout < 1:
        raise ConfigError(f"{prefix}head_dropout: must be in [0, 1), got {cfg.head_dropout}")
    if cfg.mlp_ratio <= 0:
        raise ConfigError(f"{prefix}mlp_ratio: must be > 0, got {cfg.mlp_ratio}")
    if cfg.image_size % cfg.patch_size:
        raise ConfigError(f"{prefix}image_size: {cfg.image_size} is not a multiple of {prefix}patch_size {cfg.patch_size}")
    if not cfg.depths or len(cfg.depths) != len(cfg.num_heads):
        raise ConfigError(f"{prefix}depths / {prefix}num_heads: need the same non-zero length, got {cfg.depths} / {cfg.num_heads}")
    if any(d < 1 for d in cfg.depths) or any(h < 1 for h in cfg.num_heads):
        raise ConfigError(f"{prefix}depths / {prefix}num_heads: every entry must be >= 1, got {cfg.depths} / {cfg.num_heads}")
    res, dim = cfg.image_size // cfg.patch_size, cfg.embed_dim
    for i, heads in enumerate(cfg.num_heads):
        if dim % heads:
            raise ConfigError(f"{prefix}num_heads: stage {i} has {dim} channels, not divisible by {heads} heads")
        ws = min(res, cfg.window_size)
        if res % ws:
            raise ConfigError(f"{prefix}window_size: stage {i} has a {res}x{res} token grid, not divisible into "
                              f"{ws}x{ws} windows")
        if i < len(cfg.num_heads) - 1:
            if res % 2:
                raise ConfigError(f"{prefix}image_size: stage {i} has an odd token grid ({res}); choose "
                                  "image_size / patch_size divisible by 2^(stages-1)")
            res, dim = res // 2, dim * 2
