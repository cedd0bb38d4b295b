"""Typed configuration of the ISP domain (every paper default is a named field citing its source).

Sources: Arhire & Timofte, "Learned Lightweight Smartphone ISP with Unpaired Data", CVPRW 2025
(Sec. 3: method and losses, Sec. 4: training setup) and its reference code (noted "ref code").
"""

from __future__ import annotations

import dataclasses

from pretrainlab.core.config import TrainConfig


@dataclasses.dataclass
class DataConfig:
    profile: str = "tiny"  # synthetic set generated when --data is not given
    norm: str = "auto"  # auto | zurich | mai | fujifilm | ntire | synthetic (see bayer.NORM_PRESETS)
    bayer_pattern: str = "auto"  # auto (from the dataset's isp_dataset.json, else RGGB) | RGGB | BGGR | GRBG | GBRG
    unpaired_source: str = "auto"  # auto | shuffle (paper: targets shuffled) | disjoint (a disjoint target folder)
    max_train: int = 0  # 0 = all training pairs
    max_test: int = 0  # 0 = all test pairs


@dataclasses.dataclass
class ModelConfig:
    generator: str = "efficientisp"  # efficientisp (~3.1k params) | robustisp (~1.6k) | rmfanet_tiny (~29k)


@dataclasses.dataclass
class ConventionalISPConfig:
    demosaic: str = "menon2007"  # ref code: colour_demosaicing Menon2007 (bilinear also available)
    wb_gains: tuple[float, float, float] = (1.6, 1.2, 1.4)  # ref code: fixed R, G, B gains
    gamma: float = 2.2  # ref code: x ** (1 / 2.2) after min-max stretch


@dataclasses.dataclass
class FeatureNetConfig:
    """Pre-trained networks of the losses. Paper: ImageNet VGG-19, LPIPS AlexNet, ViT-B/16.

    No download is possible here: give local safetensors files (torchvision state dicts) in the
    ``*_weights`` fields, else the nets are the project's own, pre-trained with SimCLR (NT-Xent
    from pretrainlab.core.losses) on the unlabelled RGB target images and cached.
    """

    vgg_weights: str = ""  # torchvision vgg19 state dict (.safetensors); "" = project-pretrained
    alexnet_weights: str = ""  # torchvision alexnet state dict (.safetensors)
    vit_weights: str = ""  # torchvision vit_b_16 state dict (.safetensors)
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


@dataclasses.dataclass
class LossConfig:
    """Paper Sec. 3.2 / ref code. Each term is scaled by 1/||grad_G term|| then by its weight."""

    mode: str = "unpaired"  # unpaired | paired | paired_noadv (the paper's three training modes)
    w_content: float = 1.0  # ref code: all weights 1.0
    w_tv: float = 1.0
    w_texture: float = 1.0  # each of the two texture discriminators
    w_colour: float = 1.0
    balance: str = "grad_norm"  # grad_norm (paper: 1/||grad_theta L_i||) | none
    balance_eps: float = 1e-8
    balance_every: int = 1  # paper: norms recomputed every step; >1 reuses them (CPU profiles, a deviation)
    r1_gamma: float = 10.0  # ref code: R1 and R2 zero-centred penalties, gamma 10
    r2_gamma: float = 10.0
    blur_kernel: int = 21  # colour branch: 21x21 Gaussian (ref code)
    blur_sigma: float = 3.0  # nsig 3
    disc_fc: int = 1024  # texture discriminators: 5 convs, FC 1024, FC 1 (ref code)
    disc_width: int = 48  # first conv width of the texture discriminators (DPED: 48)
    colour_hidden: int = 512  # colour MLP 768 -> 512 -> 512 -> 1 (ref code)
    d_every: int = 10  # discriminators stepped once every 10 generator steps (ref code)
    d_lr: float = 1e-5  # ref code: discriminator Adam lr 1e-5 (generator: train.lr = 5e-4)
    d_clip_grad: float = 1.0  # ref code: the discriminators' gradient norm clipped at 1 (the generator's: train.clip_grad)


@dataclasses.dataclass
class ISPConfig:
    description: str = ""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    conventional: ConventionalISPConfig = dataclasses.field(default_factory=ConventionalISPConfig)
    features: FeatureNetConfig = dataclasses.field(default_factory=FeatureNetConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    # ref code: G Adam lr 5e-4 betas (0.5, 0.9), batch 32, constant lr, no clipping (D: loss.d_clip_grad)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        batch_size=32, lr=5e-4, optimizer="adam", betas=(0.5, 0.9), schedule="constant", clip_grad=0.0,
        weight_decay=0.0, max_steps=1000, log_every=10, channels_last=True))
