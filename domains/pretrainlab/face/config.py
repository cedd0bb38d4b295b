"""Typed configuration of the face domain (one dataclass tree; every paper default cites its source).

Paper: Narayan et al., "PETALface: Parameter Efficient Transfer Learning for Low-resolution Face
Recognition", WACV 2025 (reference code: Kartik-3004/PETALface). Section numbers refer to the
arXiv version 2412.07771.
"""

from __future__ import annotations

import dataclasses

from pretrainlab.core.config import TrainConfig

METHODS = ("pretrain", "full", "lora", "petalface")


@dataclasses.dataclass
class SwinConfig:
    """Swin face backbone (Sec. 4.1: "Swin-T" face variant of the reference code, input 120x120)."""

    image_size: int = 120  # reference code --image_size 120
    patch_size: int = 6  # 120 / 6 = 20x20 tokens (reference swin_256new)
    embed_dim: int = 384  # reference code
    depths: list[int] = dataclasses.field(default_factory=lambda: [2, 18, 2])  # reference code
    num_heads: list[int] = dataclasses.field(default_factory=lambda: [8, 16, 16])  # reference code
    window_size: int = 5  # reference code (20 -> 10 -> 5 tokens per side)
    mlp_ratio: float = 4.0  # Swin default
    drop_path: float = 0.1  # Swin default stochastic depth (to confirm for the face variant)
    head_dropout: float = 0.25  # head BN -> Dropout(0.25) -> Linear -> BN (reference code)
    embedding_dim: int = 512  # face embedding size (reference code)


@dataclasses.dataclass
class MarginLossConfig:
    """CombinedMarginLoss ``cos(m1*theta + m2) - m3`` scaled by ``s`` (insightface; Sec. 4.1)."""

    s: float = 64.0  # scale (paper / insightface)
    m1: float = 1.0  # SphereFace multiplicative margin (1 = off)
    m2: float = 0.0  # ArcFace additive angular margin (0.5 for ArcFace)
    m3: float = 0.4  # CosFace additive cosine margin (paper's CosFace backbone: 0.4)


@dataclasses.dataclass
class LoRAConfig:
    """Twin LoRA of PETALface (Sec. 3.2) and the plain-LoRA baseline."""

    rank: int = 8  # paper (reference CLI default 4)
    scale: float = 1.0  # s in y = Wx + s*up(down(x)); alpha = scale * rank
    dropout: float = 0.1  # reference code
    init: str = "gaussian"  # down ~ N(0, 1/r), up = 0 (reference code)
    qkv_target: str = "qkv"  # twin LoRA only on the attention qkv projection (Sec. 3.2)
    feature_target: str = "head.fc"  # one plain LoRA on the final feature projection (reference code)
    train_head_norms: bool = True  # the embedding head's BatchNorm affine params train ("the head")


@dataclasses.dataclass
class QualityConfig:
    """Image-quality weight ``a = 0.5 + (score - threshold)`` (Sec. 3.2, reference code)."""

    scorer: str = "sharpness"  # sharpness (weight-free, offline) | pyiqa:cnniqa | pyiqa:brisque
    pyiqa_weights: str = ""  # local weight file for pyiqa scorers (no download at run time)
    threshold: float = 0.5  # reference code: a CLI argument (--threshold); value to confirm
    clamp: bool = False  # clamp a to [0, 1]; off to match the reference code
    sharpness_scale: float = 0.2  # r / (r + c): the relative Laplacian energy r giving score 0.5 (calibrated: sharp 112 px faces ~0.7, 16-24 px probes ~0.2)
    analysis_size: int = 32  # the weight-free scorer resizes to this size first (resolution-independent)


@dataclasses.dataclass
class DataConfig:
    train_dir: str = "train_hr"  # identity folders used by the pre-training ("WebFace") stage
    finetune_dir: str = "train_lr"  # identity folders used by fine-tuning (TinyFace training set)
    verify_dir: str = "verify"  # LFW layout: <name>/<name>_0001.png + pairs.txt
    tinyface_dir: str = "tinyface"  # TinyFace layout: Probe/, Gallery_Match/, Gallery_Distractor/
    hflip: bool = True  # the only training augmentation (reference code)
    max_images: int = 0  # 0 = all; cap per split (quick runs)


@dataclasses.dataclass
class EvalConfig:
    fars: list[float] = dataclasses.field(default_factory=lambda: [1e-2, 1e-1])  # IJB uses 1e-4; small pair sets need larger FARs
    ranks: list[int] = dataclasses.field(default_factory=lambda: [1, 5, 10])  # TinyFace rank-1/5/10 (Table 1)
    flip_tta: bool = True  # embedding of image + its mirror (standard face evaluation)
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
    # AdamW, wd 0.1, lr 5e-4, warm-up, polynomial decay (power 2, insightface's PolyScheduler: power to
    # confirm), grad clip 5 (reference code)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        batch_size=128, lr=5e-4, weight_decay=0.1, optimizer="adamw", schedule="poly", poly_power=2.0, warmup_steps=100,
        clip_grad=5.0, max_steps=10000))
    init: str = ""  # checkpoint of the pre-trained backbone (fine-tuning methods)
    data_profile: str = "tiny"  # which synthetic set to generate when --data is not given

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            from pretrainlab.core.config import ConfigError

            raise ConfigError(f"method '{self.method}' is not one of {METHODS}")
