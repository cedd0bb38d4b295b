"""Typed configuration of the CT domain (Wolf et al. 2024, "Less is More").

Every reference number is a named field with its source: ``ref: <file>`` points into
Wolfda95/Less_is_More (the pre-processing / reduction scripts, the bundled pl_bolts SwAV module
``swav_module_lidc.py`` with the README's command line, and the downstream notebooks), "PL 1.6 /
1.7" into the pytorch-lightning versions those pinned. Values the reference does not give (SSIM /
MI / DeepNet thresholds, the EveryN step) are marked as this project's extensions. Profiles
(smoke / tiny / full) live in ``recipes/base.yaml``; each row recipe (``hash6.yaml``, ``all.yaml``
...) only changes the reduction (and, for ``simclr`` / ``moco``, the method). Every numeric field is
validated (``CHECKS``, ``check()``) with an error naming the dotted key before anything is written.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from pretrainlab.core.config import ConfigError, TrainConfig

STRATEGIES = ("all", "every_n", "ssim", "mi", "deepnet", "hash")
TASKS = ("covid", "organ", "organ64", "brain")


def _unit(v: Any) -> str | None:
    return None if isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0 else "expected a number in [0, 1]"


@dataclasses.dataclass
class PreprocessConfig:
    """DICOM / NIfTI -> HU -> 8-bit slice, as the reference pipeline."""

    padding_value: int = -2000  # ref: LIDC_3DDICOM_to_2Dpng.py get_pixels_hu, image[image == -2000] = 0
    window: str = "minmax"  # paper / ref: per-slice min-max to 0-255, no windowing | "ct" (window_center / width, an option)
    window_center: float = 40.0  # option only (soft-tissue window), not the paper's pipeline
    window_width: float = 400.0
    allow_non_ct: bool = False  # DICOM Modality != CT: error for a series given directly (True: read it with a warning)
    allow_missing_rescale: bool = False  # DICOM without RescaleSlope / Intercept: error, or assume the ref's 1 / -1024 with a warning
    series_uid: str = ""  # pick one series when a DICOM folder mixes several ("" = error on mixed series)
    min_slices: int = 2  # fewer slices = a 2-D file where a volume is expected
    skip_bad_volumes: bool = False  # skip (and list in reduction.json) volumes that fail to read, instead of stopping
    reader_workers: int = 0  # > 0: read volumes through monai.data.CacheDataset with this many threads (pretrain on many volumes)
    reference_png: bool = False  # True: a DICOM tree is read exactly as LIDC_3DDICOM_to_2Dpng.py exports it + Hash_LIDC_Volume.py groups it (see pretrainlab.ct.lidc)
    reference_min_files: int = 10  # ref: LIDC_3DDICOM_to_2Dpng.py, only series folders with > 10 files are CT (X-rays have few)

    CHECKS: ClassVar[dict[str, Any]] = {
        "window": ("minmax", "ct"), "window_width": ">0", "min_slices": ">=1", "reader_workers": ">=0",
        "reference_min_files": ">=0",
    }


@dataclasses.dataclass
class ReductionConfig:
    """Which pre-training slices to keep, per volume (the paper's strategies)."""

    strategy: str = "hash"  # all | every_n | ssim | mi | deepnet | hash
    hash_k: int = 6  # ref: Hash_LIDC_Volume.py --boarder 6 ("Hash-6", the repository's best): Hamming distance <= k is a duplicate
    hash_size: int = 8  # ref: calculate_hash(image, hash_size=8) (imagehash default; 64 bits)
    every_n: int = 10  # EveryN step: not in the reference code (this project's choice, recipes/every_n.yaml)
    ssim_threshold: float = 0.6539  # this project's extension: no SSIM code / threshold in the reference (recipes/ssim.yaml)
    mi_threshold: float = 0.5032  # this project's extension: no MI code / threshold in the reference (recipes/mi.yaml)
    mi_bins: int = 32  # this project's extension
    deepnet_threshold: float = 0.9652  # this project's extension: no DeepNet code / threshold in the reference (recipes/deepnet.yaml)
    deepnet_weights: str = ""  # safetensors of a backbone to embed with ("" = a SwAV backbone pre-trained here on ALL)
    device: str = "auto"  # where the vectorised hash runs (auto | cpu | cuda | cuda:N)

    CHECKS: ClassVar[dict[str, Any]] = {
        "strategy": STRATEGIES, "hash_k": ">=0", "hash_size": ">=2", "every_n": ">=1",
        "ssim_threshold": ">=-1 <=1.01", "mi_threshold": ">=0 <=1.01", "mi_bins": ">=2", "deepnet_threshold": ">=-1 <=1.01",
        "device": lambda v: None if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit())
        else "expected auto, cpu, cuda or cuda:N",
    }


@dataclasses.dataclass
class ModelConfig:
    """Backbone: ResNet-50 in the paper; a small ResNet at tiny scale."""

    arch: str = "resnet50"  # ref: swav_module_lidc.py --arch resnet50; notebooks: torchvision resnet50 | "small" (tiny / smoke)
    width: int = 16  # small ResNet: channels of the first stage (x2 per stage)
    blocks: tuple[int, ...] = (1, 1, 1)  # small ResNet: BasicBlocks per stage
    hidden_mlp: int = 2048  # ref: swav_module_lidc.py --hidden_mlp 2048
    feat_dim: int = 128  # ref: swav_module_lidc.py --feat_dim 128
    image_size: int = 224  # ref: notebooks Resize(spatial_size=(224, 224)); SwAV global crops 224

    CHECKS: ClassVar[dict[str, Any]] = {
        "arch": ("resnet50", "small"), "width": ">=1", "blocks": ">=1", "hidden_mlp": ">=1", "feat_dim": ">=1",
        "image_size": ">=8",
    }

    def check(self) -> None:
        if not self.blocks:
            raise ConfigError("blocks: empty; expected one entry (>= 1) per stage, e.g. [1, 1, 1]")


@dataclasses.dataclass
class SwAVConfig:
    """SwAV as the reference runs it (ref: swav_module_lidc.py + multicropdataset.py, README command)."""

    method: str = "swav"  # swav (paper) | simclr | moco (selectable alternatives)
    nmb_prototypes: int = 500  # ref: --nmb_prototypes 500
    temperature: float = 0.1  # ref: --temperature 0.1
    epsilon: float = 0.05  # ref: --epsilon 0.05
    sinkhorn_iterations: int = 3  # ref: --sinkhorn_iterations 3
    assign_crops: tuple[int, ...] = (0, 1)  # ref: --crops_for_assign 0 1
    nmb_crops: tuple[int, int] = (2, 6)  # ref: --nmb_crops 2 6
    size_crops: tuple[int, int] = (224, 96)  # ref: --size_crops 224 96
    min_scale_crops: tuple[float, float] = (0.9, 0.1)  # ref: --min_scale_crops 0.90 0.10
    max_scale_crops: tuple[float, float] = (1.0, 0.33)  # ref: --max_scale_crops 1. 0.33
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.2)  # ref: get_color_distortion, ColorJitter(0.4, 0.4, 0.2, 0.2)
    jitter_p: float = 0.8  # ref: RandomApply([color_jitter], p=0.8)
    grayscale_p: float = 0.2  # ref: RandomGrayscale(p=0.2) (a no-op on gray slices stacked to RGB)
    blur_p: float = 0.5  # ref: PILRandomGaussianBlur(p=0.5, radius 0.1-2)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    norm_mean: float = 0.1806  # ref: multicropdataset.py "All Data: Similar" mean [0.1806] * 3
    norm_std: float = 0.1907  # ref: std [0.1907] * 3
    freeze_prototypes_epochs: int = 313  # ref: README --freeze_prototypes_epochs 313, counted in EPOCHS (on_after_backward: current_epoch < it)
    warmup_epochs: int = 10  # ref: --warmup_epochs 10 (linear warm-up from lr 0: pl_bolts linear_warmup_decay)
    scheduler_iters_per_epoch: int = 1  # ref quirk: train_iters_per_epoch = 1 when configure_optimizers runs (PL 1.6 calls it before train_dataloader()); 0 = the real iterations per epoch
    moco_queue: int = 4096  # MoCo alternative: queue length
    moco_momentum: float = 0.99  # MoCo alternative: key-encoder momentum
    simclr_temperature: float = 0.1  # SimCLR / MoCo alternative temperature

    CHECKS: ClassVar[dict[str, Any]] = {
        "method": ("swav", "simclr", "moco"), "nmb_prototypes": ">=1", "temperature": ">0", "epsilon": ">0",
        "sinkhorn_iterations": ">=1", "assign_crops": ">=0", "nmb_crops": ">=0", "size_crops": ">=4",
        "min_scale_crops": ">0 <=1", "max_scale_crops": ">0 <=1", "jitter": ">=0", "jitter_p": _unit,
        "grayscale_p": _unit, "blur_p": _unit, "blur_sigma": ">0", "norm_std": ">0", "freeze_prototypes_epochs": ">=0",
        "warmup_epochs": ">=0", "scheduler_iters_per_epoch": ">=0", "moco_queue": ">=1", "moco_momentum": ">=0 <=1",
        "simclr_temperature": ">0",
    }

    def check(self) -> None:
        if self.nmb_crops[0] < 2:
            raise ConfigError(f"nmb_crops: {list(self.nmb_crops)}; SwAV needs >= 2 global crops")
        if not self.assign_crops or any(c >= sum(self.nmb_crops) for c in self.assign_crops):
            raise ConfigError(f"assign_crops: {list(self.assign_crops)}; each must index one of the {sum(self.nmb_crops)} crops")
        for i in range(2):
            if self.min_scale_crops[i] > self.max_scale_crops[i]:
                raise ConfigError(f"min_scale_crops[{i}]: {self.min_scale_crops[i]} is above max_scale_crops[{i}] "
                                  f"{self.max_scale_crops[i]}")
        if self.blur_sigma[0] > self.blur_sigma[1]:
            raise ConfigError(f"blur_sigma: {list(self.blur_sigma)}; expected [min, max]")


@dataclasses.dataclass
class DataConfig:
    profile: str = "tiny"  # the synthetic set generated and used when --data is not given

    CHECKS: ClassVar[dict[str, Any]] = {"profile": ("smoke", "tiny", "full")}


@dataclasses.dataclass
class PretrainConfig:
    epochs: float = 800.0  # ref: swav_module_lidc.py --max_epochs default 800 (the README command does not set it; the paper's count was not retrieved)
    max_slices: int = 0  # 0 = no cap
    ram_cache_mb: int = 4096  # kept slices (resized) held in RAM up to this size; above it pre-training reads the reduced PNGs lazily

    CHECKS: ClassVar[dict[str, Any]] = {"epochs": ">0", "max_slices": ">=0", "ram_cache_mb": ">=0"}


@dataclasses.dataclass
class CTConfig:
    """A pre-training recipe (one row of the paper's table: a reduction strategy, then SwAV)."""

    description: str = ""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    preprocess: PreprocessConfig = dataclasses.field(default_factory=PreprocessConfig)
    reduction: ReductionConfig = dataclasses.field(default_factory=ReductionConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    ssl: SwAVConfig = dataclasses.field(default_factory=SwAVConfig)
    pretrain: PretrainConfig = dataclasses.field(default_factory=PretrainConfig)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        batch_size=128, lr=0.15, optimizer="lars", weight_decay=1e-6, momentum=0.9,  # ref: --batch_size 128 --learning_rate 0.15 --optimizer lars, wd 1e-6, LARS momentum 0.9
        lars_eta=0.001, lars_exclude_1d=False, lars_trust="sum_of_norms",  # ref: pl_bolts LARS(trust_coefficient=0.001), exclude_bn_bias=False
        schedule="constant", warmup_steps=0, max_steps=1, channels_last=True, log_every=10))  # the lr schedule: pretraining.swav_lr


@dataclasses.dataclass
class FinetuneConfig:
    """Downstream classifier as the reference notebooks (COVID-19 / OrgMNIST / Brain .ipynb)."""

    epochs: int = 70  # ref: notebooks Epochen = 70
    unfreeze_epoch: int = 10  # ref: BackboneFinetuning(unfreeze_backbone_at_epoch=10)
    backbone_initial_ratio_lr: float = 0.1  # PL BackboneFinetuning default backbone_initial_ratio_lr=10e-2
    lr_lambda: float = 2.0  # PL 1.6 / 1.7 BackboneFinetuning default lambda_func = multiplicative (returns 2.0)
    should_align: bool = True  # PL BackboneFinetuning default
    train_bn: bool = True  # PL BackboneFinetuning default: BatchNorm stays trainable while the backbone is frozen
    covid_mean: tuple[float, float, float] = (0.5600, 0.5596, 0.5596)  # ref: COVID-19.ipynb transforms.Normalize mean
    covid_std: tuple[float, float, float] = (0.2905, 0.2907, 0.2908)  # ref: COVID-19.ipynb transforms.Normalize std
    brain_mean: tuple[float, float, float] = (0.5600, 0.5596, 0.5596)  # ref: Brain.ipynb (the same values)
    brain_std: tuple[float, float, float] = (0.2905, 0.2907, 0.2908)
    organ_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # ref: OrgMNIST.ipynb Normalize(mean=[.5], std=[.5])
    organ_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    png_flip_p: float = 0.5  # ref: COVID-19 / Brain train transforms RandFlip(spatial_axis=0, prob=0.5); OrgMNIST: none
    png_transpose: bool = True  # ref: MONAI LoadImage (PILReader reverse_indexing) gives PNG slices as (W, H): the notebooks train on transposed slices
    rotation_deg: float = 0.0  # ref: RandRotate(range_x=np.pi / 12) is commented out in the notebooks
    brain_val_fraction: float = 0.15  # ref: Brain.ipynb val_frac = 0.15 of train (np.random.seed(42) shuffle)
    split_seed: int = 42  # ref: Brain.ipynb seed = 42
    cache_images: bool = False  # keep decoded downstream images in RAM (tiny / smoke); False = decode per item in DataLoader workers

    CHECKS: ClassVar[dict[str, Any]] = {
        "epochs": ">=1", "unfreeze_epoch": ">=0", "backbone_initial_ratio_lr": ">0", "lr_lambda": ">0",
        "covid_std": ">0", "brain_std": ">0", "organ_std": ">0",
        "png_flip_p": _unit, "rotation_deg": ">=0 <=180", "brain_val_fraction": ">0 <1",
    }

    def check(self) -> None:
        if self.unfreeze_epoch > self.epochs:
            raise ConfigError(f"unfreeze_epoch: {self.unfreeze_epoch} is after the last epoch (epochs={self.epochs}); "
                              "the backbone would never train")


@dataclasses.dataclass
class DownstreamConfig:
    """The fine-tuning recipe (``finetune.yaml``): a classifier on one downstream task. With
    ``--init`` the backbone (``model``) comes from the pre-training checkpoint's config."""

    description: str = ""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    task: str = "covid"  # covid (COVID-CT layout) | organ (OrganSMNIST 28 px) | organ64 | brain (hemorrhage layout)
    init: str = ""  # pre-training run / checkpoint whose backbone starts the run ("" = random init, the no-pre-training row)
    classes: tuple[str, ...] = ()  # set by finetune from the data: the name of each output, saved with the checkpoint
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        batch_size=64, lr=1e-4, weight_decay=5e-4, optimizer="adam", schedule="constant",  # ref: bs 64, Adam lr 1e-4, WeightDecay 0.0005
        max_steps=1, log_every=10))

    CHECKS: ClassVar[dict[str, Any]] = {"task": TASKS}
