"""Typed configuration of the CLIP domain: one dataclass tree, one YAML recipe per paper-table row.

Every paper number is a named field; the comment cites Fini et al. 2023 ("Improved baselines for
vision-language pre-training", TMLR; reference code facebookresearch/clip-rocket) or the paper
the baseline comes from.
"""

from __future__ import annotations

import dataclasses

from pretrainlab.core.config import ConfigError, TrainConfig

OBJECTIVES = ("clip", "slip", "barlip", "byolip", "swalip", "rocket")


@dataclasses.dataclass
class ModelConfig:
    name: str = "ViT-B-32"  # open_clip config (paper: ViT-B/16 on CC3M/CC12M; tiny: test-vit-tiny)
    init: str = ""  # optional local open_clip weights (.safetensors) to start from
    logit_scale_max: float = 100.0  # CLIP (Radford et al. 2021, Sec. 2.5): clip exp(t) at 100
    mlp_hidden: int = 4096  # CLIP-rocket: 3-layer MLP projector, hidden 4096 (BN + ReLU)
    mlp_logit_scale_init: float = 10.0  # CLIP-rocket: the MLP branch's temperature init 1/0.1


@dataclasses.dataclass
class ImageAugConfig:
    """Image views (CLIP-rocket Sec. 4; SimCLR/BYOL augmentations for the augmented pairs)."""

    global_scale: tuple[float, float] = (0.5, 1.0)  # global view: RandomResizedCrop(scale 0.5-1) only
    aug_scale: tuple[float, float] = (0.08, 1.0)  # augmented views: RandomResizedCrop(scale 0.08-1)
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)  # ColorJitter(b, c, s, h)
    jitter_p: float = 0.8  # ColorJitter probability
    grayscale_p: float = 0.2  # RandomGrayscale
    blur_p: float = 0.5  # GaussianBlur probability
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # GaussianBlur sigma range
    hflip_p: float = 0.5  # RandomHorizontalFlip
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet mean (reference code)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)  # ImageNet std


@dataclasses.dataclass
class TextAugConfig:
    enabled: bool = True  # CLIP / SLIP baselines: false (raw captions)
    global_stopword_p: float = 0.8  # CLIP-rocket: stop-word removal on the global caption (0.9 on YFCC)
    eda_weights: tuple[float, float, float] = (0.4, 0.4, 0.2)  # synonym repl. / random swap / random deletion
    eda_alpha: float = 0.1  # EDA (Wei & Zou 2019) default fraction of words changed


@dataclasses.dataclass
class MethodConfig:
    objective: str = "rocket"  # clip | slip | barlip | byolip | swalip | rocket
    num_augs: int = 2  # CLIP-rocket: two augmented pairs per sample
    label_smoothing: float = 0.1  # CLIP-rocket: on the augmented-pair terms (0 for SwALIP, reference code)
    # SLIP (Mu et al. 2022): SimCLR on two image views, MLP 3 layers (hidden 4096, out 256), T = 0.1, scale 1
    slip_temperature: float = 0.1
    slip_scale: float = 1.0
    slip_out_dim: int = 256
    # BarLIP (CLIP-rocket Sec. 3): Barlow Twins image<->text, lambda 5e-3, loss scale 0.025, projector 8192
    barlip_lambda: float = 5e-3
    barlip_scale: float = 0.025
    barlip_dim: int = 8192
    # BYOLIP / SiamLIP: BYOL regression image<->text with momentum targets, projector 128, momentum 0.99
    byolip_dim: int = 128
    byolip_hidden: int = 4096
    byolip_momentum: float = 0.99  # base EMA decay, cosine-increased to 1 (BYOL Sec. 3.2)
    # SwALIP: swapped Sinkhorn assignments across modalities, eps 0.05, 3 iterations, weight 0.2
    swalip_weight: float = 0.2
    swalip_epsilon: float = 0.05
    swalip_iterations: int = 3


@dataclasses.dataclass
class DataConfig:
    format: str = "auto"  # auto | csv | wds | folder
    csv_img_key: str = "filepath"  # open_clip --csv-img-key
    csv_caption_key: str = "title"  # open_clip --csv-caption-key
    csv_separator: str = "\t"  # open_clip --csv-separator
    preload: bool = True  # decode every image once into memory (small sets); false streams from disk
    max_bad_fraction: float = 0.05  # unreadable samples are skipped and counted; above this: DataError
    profile: str = "tiny"  # synthetic set generated when --data is not given


@dataclasses.dataclass
class EvalConfig:
    mix_weight: float = 0.5  # zero-shot mixture w * sim(linear) + (1 - w) * sim(MLP) reported in the table
    mix_sweep: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # CLIP-rocket Sec. 5
    batch_size: int = 256


@dataclasses.dataclass
class ClipConfig:
    description: str = ""
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    method: MethodConfig = dataclasses.field(default_factory=MethodConfig)
    image_aug: ImageAugConfig = dataclasses.field(default_factory=ImageAugConfig)
    text_aug: TextAugConfig = dataclasses.field(default_factory=TextAugConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    # CLIP-rocket: AdamW lr 3e-3, betas (0.9, 0.98), eps 1e-8, wd 0.1 (0.5 on CC3M), cosine, 1 warm-up epoch
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        batch_size=256, lr=3e-3, betas=(0.9, 0.98), weight_decay=0.1, schedule="cosine", warmup_steps=1000,
        max_steps=20000, clip_grad=0.0))

    def __post_init__(self) -> None:
        if self.method.objective not in OBJECTIVES:
            raise ConfigError(f"method.objective must be one of {OBJECTIVES}, got '{self.method.objective}'")
