"""Typed configuration of the CLIP domain: one dataclass tree, one YAML recipe per paper-table row.

Every paper number is a named field; the comment cites Fini et al. 2023 ("Improved baselines for
vision-language pre-training", TMLR) or its reference code (facebookresearch/clip-rocket, "ref:"
``file`` / ``--flag``), open_clip (mlfoundations/open_clip) or the paper a baseline comes from.
Each dataclass declares ``CHECKS`` (validated by :func:`pretrainlab.core.config.validate` with an
error naming the dotted key) and ``check()`` for constraints across fields.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from pretrainlab.core.config import ConfigError, TrainConfig

OBJECTIVES = ("clip", "slip", "barlip", "byolip", "swalip", "rocket")
FORMATS = ("auto", "csv", "wds", "folder")
INTERPOLATIONS = ("bicubic", "bilinear", "nearest")
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # ref: datasets.py transforms.Normalize
IMAGENET_STD = (0.229, 0.224, 0.225)


def _unit(v: Any) -> str | None:
    return None if 0.0 <= v <= 1.0 else "expected a probability in [0, 1]"


def _check_range(key: str, v: tuple[float, float], lo: float, hi: float) -> None:
    if not (lo < v[0] <= v[1] <= hi):
        raise ConfigError(f"{key}: {list(v)!r} is not allowed; expected [low, high] with {lo:g} < low <= high <= {hi:g}")


@dataclasses.dataclass
class ModelConfig:
    name: str = "RN50-rocket"  # open_clip config (ref repro_exps.txt: CL2L_R50 on CC3M / CC12M / YFCC15M)
    # weights to start from: "" = random init; a local open_clip state_dict (.safetensors / .pt, read
    # without unpickling); an open_clip tag ("openai", "laion2b_s34b_b79k") or "hf-hub:<repo>" (downloaded
    # through open_clip when the machine is online)
    pretrained: str = ""
    logit_scale_max: float = 100.0  # ref main.py: logit_scale.data.clamp_(0, 4.6052) after every step
    mlp_hidden: int = 4096  # ref models.CL2L: l2l projectors _build_mlp(mlp_dim=4096), 3 layers, BN + ReLU
    mlp_logit_scale_init: float = 10.0  # ref models.CL2L: l2l_logit_scale = log(1 / 0.1)
    # ref models.ResidualAttentionBlock: nn.Dropout(text_dropout_prob) on the residual stream entering
    # every text block, only on the augmented-caption passes (mode 'local'); repro_exps.txt: 0.2 CC3M,
    # 0.05 CC12M (CLIP-rocket) / 0.1 CC12M (non-contrastive baselines), 0.0 YFCC15M
    text_dropout: float = 0.0
    sync_bn: bool = True  # ref utils.infer_batchnorm_class: SyncBatchNorm under DDP (projectors, R50 tower)

    CHECKS: ClassVar[dict[str, Any]] = {
        "logit_scale_max": ">=1", "mlp_hidden": ">=1", "mlp_logit_scale_init": ">0", "text_dropout": ">=0 <1",
    }


@dataclasses.dataclass
class ImageAugConfig:
    """Image views (ref datasets.get_train_dataset): crops from the full-resolution image."""

    global_scale: tuple[float, float] = (0.5, 1.0)  # ref --weak-min-scale 0.5: RandomResizedCrop(224, (0.5, 1))
    aug_scale: tuple[float, float] = (0.08, 1.0)  # ref: RandomResizedCrop(scale=(0.08, --multicrop-max-scale 1))
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # torchvision RandomResizedCrop default aspect range
    interpolation: str = "bicubic"  # ref: InterpolationMode.BICUBIC for both crops
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)  # ref: ColorJitter(0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8  # ref: RandomApply([ColorJitter], p=0.8)
    grayscale_p: float = 0.2  # ref --grayscale-prob 0.2
    blur_p: float = 0.5  # ref --blur-prob 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # ref utils.GaussianBlur([.1, 2.]) (PIL radius, pixels)
    solarize_p: float = 0.0  # ref --solarize-prob 0.0
    hflip_p: float = 0.5  # ref: RandomHorizontalFlip()
    # where the photometric part of the augmented views runs: "device" (batched on the training device:
    # fixed jitter order, YIQ hue rotation, separable Gaussian kernel) or "worker" (the reference's
    # torchvision / PIL ops per sample in the data loader: exact, slower)
    photometric: str = "device"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    CHECKS: ClassVar[dict[str, Any]] = {
        "interpolation": INTERPOLATIONS, "jitter": ">=0", "jitter_p": _unit, "grayscale_p": _unit, "blur_p": _unit,
        "solarize_p": _unit, "hflip_p": _unit, "photometric": ("device", "worker"),
        "std": ">0",
    }

    def check(self) -> None:
        _check_range("global_scale", self.global_scale, 0.0, 1.0)
        _check_range("aug_scale", self.aug_scale, 0.0, 1.0)
        _check_range("ratio", self.ratio, 0.0, 100.0)
        _check_range("blur_sigma", self.blur_sigma, 0.0, 50.0)
        if self.jitter[3] > 0.5:
            raise ConfigError(f"jitter: hue {self.jitter[3]!r} is not allowed; expected <= 0.5 (torchvision ColorJitter)")


@dataclasses.dataclass
class TextAugConfig:
    """Caption augmentation (ref tokenizer.SimpleTokenizer with --text-augment)."""

    enabled: bool = True  # ref --text-augment (CLIP / SLIP rows: false, raw captions)
    stopword_p: float = 0.8  # ref --remove-stopwords-prob 0.8 (0.9 YFCC15M), global AND augmented captions
    # ref: random.choices([identity, synonym_replacement, random_swap, random_deletion],
    #      weights=[--no-text-augment-prob 0, 0.4, 0.4, 0.2]) on each augmented caption
    no_aug_p: float = 0.0
    eda_weights: tuple[float, float, float] = (0.4, 0.4, 0.2)
    eda_n: int = 1  # textaugment EDA.synonym_replacement / random_swap default n = 1
    eda_deletion_p: float = 0.1  # textaugment EDA.random_deletion default p = 0.1
    clean_before_augment: bool = False  # ref --clean-before-augment (YFCC15M and 29M runs)

    CHECKS: ClassVar[dict[str, Any]] = {
        "stopword_p": _unit, "no_aug_p": ">=0", "eda_weights": ">=0", "eda_n": ">=1", "eda_deletion_p": _unit,
    }

    def check(self) -> None:
        if self.no_aug_p + sum(self.eda_weights) <= 0:
            raise ConfigError("eda_weights: the weights (with no_aug_p) must not all be 0")


@dataclasses.dataclass
class MethodConfig:
    objective: str = "rocket"  # clip | slip | barlip | byolip | swalip | rocket
    num_augs: int = 2  # ref --num-augs 2: augmented (image, caption) pairs per sample
    label_smoothing: float = 0.1  # ref --label-smoothing 0.1 on the augmented terms (0.0 for SwALIP)
    # ref --loss-avg-or-sum: "sum" doubles the CL2L loss (CC12M / YFCC15M runs); "avg" on CC3M
    loss_avg_or_sum: str = "avg"
    # ref utils.all_gather_batch: the other ranks' embeddings are gathered WITHOUT gradient (each
    # embedding learns only as a query); true = open_clip's --gather-with-grad
    gather_with_grad: bool = False
    # SLIP (Mu et al. 2022): SimCLR on two image views, MLP 3 layers (hidden 4096, out 256), T = 0.1, scale 1
    slip_temperature: float = 0.1  # SLIP --ssl-temp
    slip_scale: float = 1.0  # SLIP --ssl-scale
    slip_out_dim: int = 256  # SLIP --ssl-emb-dim
    # BarLIP (ref models.BARLIP, losses.BarLIPLoss): 3-layer projector, hidden 3000, out 8192, BN after each
    barlip_lambda: float = 5e-3  # ref --barlip-lamb
    barlip_scale: float = 0.025  # ref --barlip-scale-loss
    barlip_dim: int = 8192  # ref --barlip-proj-dim
    barlip_hidden: int = 3000  # ref --barlip-hidden-dim
    # BYOLIP / SiamLIP (ref models.SIAMLIP, losses.SiamLIPLoss): projector Linear-BN-ReLU-Linear (no bias)
    # + BN(affine=False); predictor Linear-BN-ReLU-Linear; out 128, hidden 2048
    byolip_dim: int = 128  # ref --siamlip-proj-dim
    byolip_hidden: int = 2048  # ref --siamlip-hidden-dim
    byolip_last_bn: bool = True  # ref: not --siamlip-no-last-bn
    byolip_momentum: float = 0.99  # ref --momentum-tau 0.99, constant (p_mom = m p_mom + (1 - m) p every step)
    momentum_target: bool = True  # ref --momentum: BYOLIP; false = SiamLIP (targets: the online net, detached)
    # SwALIP (ref losses.SwALIPLoss): swapped Sinkhorn codes between modalities on the augmented pairs
    swalip_weight: float = 0.2  # ref --swalip-weight
    swalip_epsilon: float = 0.05  # ref --target-epsilon
    swalip_iterations: int = 3  # ref --sk-iters

    CHECKS: ClassVar[dict[str, Any]] = {
        "objective": OBJECTIVES, "num_augs": ">=0 <=8", "label_smoothing": ">=0 <1",
        "loss_avg_or_sum": ("avg", "sum"), "slip_temperature": ">0", "slip_scale": ">=0", "slip_out_dim": ">=1",
        "barlip_lambda": ">=0", "barlip_scale": ">=0", "barlip_dim": ">=1", "barlip_hidden": ">=1",
        "byolip_dim": ">=1", "byolip_hidden": ">=1", "byolip_momentum": ">=0 <=1", "swalip_weight": ">=0",
        "swalip_epsilon": ">0", "swalip_iterations": ">=1 <=100",
    }

    def check(self) -> None:
        if self.objective in ("rocket", "barlip", "byolip", "swalip") and self.num_augs < 1:
            raise ConfigError(f"num_augs: {self.num_augs} is not allowed for objective '{self.objective}'; "
                              "expected >= 1 augmented pair")
        if self.objective == "swalip" and self.num_augs != 2:
            raise ConfigError(f"num_augs: {self.num_augs} is not allowed for objective 'swalip'; "
                              "the swapped prediction needs exactly 2")


@dataclasses.dataclass
class DataConfig:
    format: str = "auto"  # auto | csv | wds | folder
    csv_img_key: str = "filepath"  # open_clip --csv-img-key
    csv_caption_key: str = "title"  # open_clip --csv-caption-key
    csv_separator: str = "\t"  # open_clip --csv-separator
    # decode every image once into memory (small sets: the tiny / smoke profiles); false streams
    # from disk in the DataLoader workers (real data)
    preload: bool = False
    max_bad_fraction: float = 0.05  # unreadable samples are skipped and counted; above this: DataError
    profile: str = "tiny"  # synthetic set generated when --data is not given
    # webdataset shards (open_clip_train.data.get_wds_dataset)
    resampled: bool = False  # open_clip --dataset-resampled: draw shards with replacement, endless stream
    shard_shuffle: int = 2000  # open_clip _SHARD_SHUFFLE_SIZE (initial _SHARD_SHUFFLE_INITIAL 500)
    sample_shuffle: int = 5000  # open_clip _SAMPLE_SHUFFLE_SIZE (initial _SAMPLE_SHUFFLE_INITIAL 1000)

    CHECKS: ClassVar[dict[str, Any]] = {
        "format": FORMATS, "max_bad_fraction": _unit, "profile": ("smoke", "tiny", "full"),
        "csv_separator": lambda v: None if len(v) == 1 else "expected one character",
        "shard_shuffle": ">=1", "sample_shuffle": ">=1",
    }


@dataclasses.dataclass
class EvalConfig:
    mix_weight: float = 0.5  # zero-shot mixture w * sim(linear) + (1 - w) * sim(MLP) reported in the table
    mix_sweep: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # ref validate_zeroshot
    batch_size: int = 256
    num_workers: int = 0  # DataLoader workers of the evaluation / embedding readers
    # ref datasets.get_val_dataset: Resize(224) (torchvision default bilinear) + CenterCrop(224)
    interpolation: str = "bilinear"
    resize_mode: str = "shortest"  # open_clip PreprocessCfg.resize_mode (shortest side, then center crop)

    CHECKS: ClassVar[dict[str, Any]] = {
        "mix_weight": _unit, "mix_sweep": _unit, "batch_size": ">=1", "num_workers": ">=0",
        "interpolation": INTERPOLATIONS, "resize_mode": ("shortest", "longest", "squash"),
    }


@dataclasses.dataclass
class ClipConfig:
    description: str = ""
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    method: MethodConfig = dataclasses.field(default_factory=MethodConfig)
    image_aug: ImageAugConfig = dataclasses.field(default_factory=ImageAugConfig)
    text_aug: TextAugConfig = dataclasses.field(default_factory=TextAugConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    # ref main.py: AdamW lr 3e-3, betas (0.9, 0.98), eps 1e-8, wd 0.1 (0.5 on CC3M), cosine to 1e-5
    # after 1 warm-up epoch
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        batch_size=256, lr=3e-3, betas=(0.9, 0.98), weight_decay=0.1, schedule="cosine", warmup_steps=1000,
        max_steps=20000, clip_grad=0.0, fused_optimizer=True))  # fused AdamW: pretrainlab's own speed-up
