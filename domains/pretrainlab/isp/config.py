"""Typed configuration of the ISP domain (every paper default is a named field citing its source).

Sources: Arhire & Timofte, "Learned Lightweight Smartphone ISP with Unpaired Data", CVPRW 2025
(Sec. 3: method and losses, Sec. 4: training setup) and its reference code (noted "ref: <file>").
Every numeric field is validated where it is declared (``CHECKS``), before anything is written.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from pretrainlab.core.config import ConfigError, TrainConfig
from pretrainlab.isp.bayer import NORM_PRESETS, PATTERNS

GENERATOR_NAMES = ("efficientisp", "robustisp", "rmfanet_tiny")
MODES = ("unpaired", "paired", "paired_noadv", "warmstart")


def _multiple_of_4(v: int) -> str | None:
    return None if v >= 0 and v % 4 == 0 else "expected 0 (whole images) or a positive multiple of 4"


@dataclasses.dataclass
class DataConfig:
    profile: str = "tiny"  # synthetic set generated when --data is not given
    norm: str = "auto"  # auto (isp_dataset.json, else the RAW folder: see formats.RAW_FOLDERS) | a bayer.NORM_PRESETS name
    bayer_pattern: str = "auto"  # auto (isp_dataset.json, else RGGB) | RGGB | BGGR | GRBG | GBRG
    unpaired_source: str = "auto"  # auto | shuffle (paper: the split's targets, names ignored) | disjoint (<rgb>_unpaired/)
    unpaired_rgb_dir: str = ""  # any folder of target-camera RGB images for unpaired training (overrides unpaired_source)
    patch: int = 0  # RGB output patch side cropped for training (ref: 256 = UltraISP patches); 0 = whole images
    max_train: int = 0  # 0 = all training RAWs
    max_test: int = 0  # 0 = all test pairs
    cache_mb: float = 512.0  # decoded training items kept in memory (per DataLoader worker)

    CHECKS: ClassVar[dict[str, Any]] = {
        "profile": ("smoke", "tiny", "full"), "norm": ("auto", *NORM_PRESETS), "bayer_pattern": ("auto", *PATTERNS),
        "unpaired_source": ("auto", "shuffle", "disjoint"), "patch": _multiple_of_4, "max_train": ">=0",
        "max_test": ">=0", "cache_mb": ">=0",
    }


@dataclasses.dataclass
class ModelConfig:
    generator: str = "efficientisp"  # efficientisp (3,060 params) | robustisp (1,616) | rmfanet_tiny (29,223)
    # warm start of the generator: a reference .pth state dict (ref: config.pretrained_path =
    # "checkpoint/pretrained_20000.pth", an EfficientISP) or a project run / checkpoint; "" = random init
    init: str = ""

    CHECKS: ClassVar[dict[str, Any]] = {"generator": GENERATOR_NAMES}


@dataclasses.dataclass
class ConventionalISPConfig:
    demosaic: str = "menon2007"  # ref: load_dataset.py, colour_demosaicing Menon2007 (bilinear also available)
    menon_refining: bool = True  # ref: colour_demosaicing's default refining_step=True
    wb_gains: tuple[float, float, float] = (1.6, 1.2, 1.4)  # ref: load_dataset.py wb_factors
    gamma: float = 2.2  # ref: x ** (1 / 2.2) after the min-max stretch

    CHECKS: ClassVar[dict[str, Any]] = {"demosaic": ("menon2007", "bilinear"), "wb_gains": ">0", "gamma": ">0"}


@dataclasses.dataclass
class FeatureNetConfig:
    """Pre-trained networks of the losses. Paper: ImageNet VGG-19 (MatConvNet), LPIPS AlexNet, ViT-B/16.

    No download is possible here: give local files in the ``*_weights`` fields, else the nets are
    the project's own, pre-trained with SimCLR (NT-Xent from pretrainlab.core.losses) on the
    unlabelled RGB target images and cached.
    """

    pretrain: bool = True  # project nets: SimCLR pre-training; false = random init (the tiny table's control row)
    vgg_weights: str = ""  # imagenet-vgg-verydeep-19.mat (ref config.vgg_path) or a torchvision vgg19 state dict
    alexnet_weights: str = ""  # torchvision alexnet state dict (the LPIPS trunk)
    vit_weights: str = ""  # Hugging Face google/vit-base-patch16-224 (ref) or torchvision vit_b_16 state dict
    width_div: int = 8  # channel divisor of the project VGG-19 / AlexNet (1 = the torchvision sizes)
    vit_image_size: int = 64  # project ViT input (paper ViT-B/16: 224 -> 196 patch tokens)
    vit_patch: int = 8  # project ViT patch size (paper 16)
    vit_dim: int = 64  # project ViT width (paper 768)
    vit_depth: int = 4  # project ViT depth (paper 12)
    vit_heads: int = 4  # project ViT heads (paper 12)
    ssl_steps: int = 200  # SimCLR steps of the project feature nets
    ssl_batch: int = 32
    ssl_lr: float = 2e-3
    ssl_crop: int = 48  # SimCLR view size
    ssl_temperature: float = 0.5  # SimCLR Appendix B.9

    CHECKS: ClassVar[dict[str, Any]] = {
        "width_div": ">=1", "vit_image_size": ">=1", "vit_patch": ">=1", "vit_dim": ">=1", "vit_depth": ">=1",
        "vit_heads": ">=1", "ssl_steps": ">=1", "ssl_batch": ">=2", "ssl_lr": ">0", "ssl_crop": ">=8",
        "ssl_temperature": ">0",
    }

    def check(self) -> None:
        if self.vit_image_size % self.vit_patch:
            raise ConfigError(f"vit_image_size: {self.vit_image_size} is not a multiple of vit_patch {self.vit_patch}")
        if self.vit_dim % self.vit_heads:
            raise ConfigError(f"vit_dim: {self.vit_dim} is not divisible by vit_heads {self.vit_heads}")


@dataclasses.dataclass
class LossConfig:
    """Paper Sec. 3.2 / ref: helper.py, losses/*.py. Each G term is scaled by 1/||grad_G term|| then its weight."""

    # unpaired | paired | paired_noadv (the paper's three training modes) | warmstart (MSE to the conventional
    # render: how this project makes the reference's pretrained_20000.pth-style initial generator, whose recipe
    # the reference does not ship)
    mode: str = "unpaired"
    w_content: float = 1.0  # ref: config.py, all weights 1.0
    w_tv: float = 1.0
    w_texture: float = 1.0  # each of the two texture discriminators (ref: w_texture_factor)
    w_colour: float = 1.0  # ref: w_color_factor
    balance: str = "grad_norm"  # grad_norm (ref: helper.normalize_loss, 1 / (||grad_theta L_i|| + 1e-8)) | none
    balance_eps: float = 1e-8  # ref: helper.normalize_loss
    balance_every: int = 1  # ref: norms recomputed every step; >1 reuses them (CPU profiles, a deviation)
    r1_gamma: float = 10.0  # ref: gan_loss.compute_discriminator_loss(gamma=10), loss + gamma / 2 * (R1 + R2)
    r2_gamma: float = 10.0
    r_scale: float = 100.0  # ref: gan_loss.py multiplies each squared-gradient penalty by 100 (effective 500)
    blur_kernel: int = 21  # colour branch: ref utils.gauss_kernel(kernlen=21, nsig=3)
    blur_sigma: float = 3.0  # nsig
    disc_widths: tuple[int, int, int, int, int] = (48, 128, 192, 192, 128)  # ref: models.Discriminator_LPIPS convs
    disc_fc: int = 1024  # ref: fc1 -> 1024 -> fc2 -> 1
    d_train_fc1: bool = False  # ref: fc1 is created lazily after the Adam optimizer is built, so it never trains
    colour_hidden: int = 512  # ref: models.ViTDiscriminator 768 -> 512 -> 512 -> 1 (ReLU)
    d_every: int = 10  # ref: config.gen_per_disc_ratio_{color,texture} = 10
    d_lr: float = 1e-5  # ref: config.discriminators[*].learning_rate (generator: train.lr = 5e-4)
    d_clip_grad: float = 1.0  # ref: config.disc_grad_clip, each discriminator clipped on its own

    CHECKS: ClassVar[dict[str, Any]] = {
        "mode": MODES, "w_content": ">=0", "w_tv": ">=0", "w_texture": ">=0", "w_colour": ">=0",
        "balance": ("grad_norm", "none"), "balance_eps": ">0", "balance_every": ">=1", "r1_gamma": ">=0",
        "r2_gamma": ">=0", "r_scale": ">=0", "blur_kernel": lambda v: None if v >= 1 and v % 2 == 1 else "expected an odd size >= 1",
        "blur_sigma": ">0", "disc_widths": ">=1", "disc_fc": ">=1", "colour_hidden": ">=1", "d_every": ">=1",
        "d_lr": ">0", "d_clip_grad": ">=0",
    }


@dataclasses.dataclass
class EvalConfig:
    # ref: pretrained/get_inference.py scores the saved 8-bit PNGs (x * 255 truncated): predictions are
    # quantised the same way before PSNR / SSIM / MS-SSIM / Delta-E / LPIPS
    quantize: bool = True
    lpips_weights: str = ""  # LPIPS v0.1 AlexNet linear layers (.pth, e.g. pyiqa LPIPS_v0.1_alex); needs features.alexnet_weights


@dataclasses.dataclass
class ISPConfig:
    description: str = ""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    conventional: ConventionalISPConfig = dataclasses.field(default_factory=ConventionalISPConfig)
    features: FeatureNetConfig = dataclasses.field(default_factory=FeatureNetConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    # ref: config.py G Adam lr 5e-4 betas (0.5, 0.9), batch 32, constant lr, no clipping (D: loss.d_clip_grad)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        batch_size=32, lr=5e-4, optimizer="adam", betas=(0.5, 0.9), schedule="constant", clip_grad=0.0,
        weight_decay=0.0, max_steps=1000, log_every=10, channels_last=True))
