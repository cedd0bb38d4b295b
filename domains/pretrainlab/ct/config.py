"""Typed configuration of the CT domain (Wolf et al. 2024, "Less is More").

Every paper number is a named field with its source. Values the retrieved material did not give
(per-strategy thresholds, EveryN step) are marked "to confirm": they are fields, not literals.
Profiles (smoke / tiny / full) live in ``recipes/base.yaml``; each row recipe (``hash6.yaml``,
``all.yaml`` ...) only changes the reduction (and, for ``simclr`` / ``moco``, the method).
"""

from __future__ import annotations

import dataclasses

from pretrainlab.core.config import TrainConfig


@dataclasses.dataclass
class PreprocessConfig:
    """DICOM / NIfTI -> HU -> 8-bit slice, as the reference pipeline."""

    padding_value: float = -2000.0  # reference: raw pixels == -2000 (outside the FOV) are set to 0 before rescaling
    window: str = "minmax"  # paper: per-slice min-max to 0-255, no windowing | "ct" (window_center / width)
    window_center: float = 40.0  # option only (soft-tissue window), not the paper's pipeline
    window_width: float = 400.0
    allow_non_ct: bool = False  # DICOM Modality != CT: error (False) or warning (True)
    allow_missing_rescale: bool = False  # DICOM without RescaleSlope/Intercept: error, or assume 1 / 0 with a warning
    series_uid: str = ""  # pick one series when a DICOM folder mixes several ("" = error on mixed series)
    min_slices: int = 2  # fewer slices = a 2-D file where a volume is expected
    skip_bad_volumes: bool = False  # pre-training on a real archive: skip (and list) volumes that fail to read, e.g. X-ray series
    reader_workers: int = 0  # > 0: read volumes through monai.data.CacheDataset with this many threads (large sets)


@dataclasses.dataclass
class ReductionConfig:
    """Which pre-training slices to keep, per volume (the paper's strategies)."""

    strategy: str = "hash"  # all | every_n | ssim | mi | deepnet | hash
    hash_k: int = 6  # Hash-6: the reference repository's best threshold (Hamming distance <= k is a duplicate)
    hash_size: int = 8  # imagehash.dhash default, used by the reference (8x8 = 64 bits)
    every_n: int = 5  # EveryN step (to confirm: the paper's N was not retrieved)
    ssim_threshold: float = 0.85  # keep when SSIM to the last kept slice < threshold (to confirm)
    mi_threshold: float = 0.5  # keep when normalised MI to the last kept slice < threshold (to confirm)
    mi_bins: int = 32
    deepnet_threshold: float = 0.97  # keep when embedding cosine to the last kept slice < threshold (to confirm)
    deepnet_weights: str = ""  # safetensors of a backbone to embed with ("" = a SwAV backbone pre-trained here on ALL)
    device: str = "auto"  # where the vectorised hash runs


@dataclasses.dataclass
class ModelConfig:
    """Backbone: ResNet-50 in the paper; a small ResNet at tiny scale."""

    arch: str = "resnet50"  # paper: ResNet-50 | "small" (tiny / smoke profiles)
    width: int = 16  # small ResNet: channels of the first stage (x2 per stage)
    blocks: tuple[int, ...] = (1, 1, 1)  # small ResNet: BasicBlocks per stage
    hidden_mlp: int = 2048  # SwAV reference (hidden_mlp 2048)
    feat_dim: int = 128  # SwAV projection dimension (feat_dim 128)
    image_size: int = 224  # paper: slices resized to 224 (global crops)


@dataclasses.dataclass
class SwAVConfig:
    """SwAV (Caron et al. 2020) with the CT paper's settings (reference: swav main_swav.py)."""

    method: str = "swav"  # swav (paper) | simclr | moco (selectable alternatives)
    nmb_prototypes: int = 500  # paper: 500 prototypes
    temperature: float = 0.1  # paper / SwAV: 0.1
    epsilon: float = 0.05  # paper / SwAV: Sinkhorn epsilon 0.05
    sinkhorn_iterations: int = 3  # paper / SwAV: 3
    assign_crops: tuple[int, ...] = (0, 1)  # crops_for_assign 0 1
    nmb_crops: tuple[int, int] = (2, 6)  # multi-crop: 2 global + 6 local
    size_crops: tuple[int, int] = (224, 96)  # 224 and 96 px
    min_scale_crops: tuple[float, float] = (0.9, 0.1)  # paper: global crops 0.9-1.0, local 0.1-0.33
    max_scale_crops: tuple[float, float] = (1.0, 0.33)
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.2)  # ColorJitter(0.4, 0.4, 0.2, 0.2)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.5  # Gaussian blur p = 0.5, radius 0.1-2
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    norm_mean: float = 0.1806  # reference mean / std of the CT slices
    norm_std: float = 0.1907
    freeze_prototypes_steps: int = 0  # paper: the first epoch's iterations (0 = one epoch, computed from the data)
    moco_queue: int = 4096  # MoCo alternative: queue length
    moco_momentum: float = 0.99  # MoCo alternative: key-encoder momentum
    simclr_temperature: float = 0.1  # SimCLR / MoCo alternative temperature


@dataclasses.dataclass
class PretrainConfig:
    epochs: float = 100.0  # fixed epochs over the (reduced) set: fewer slices = fewer steps = faster (to confirm)
    max_slices: int = 0  # 0 = no cap
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        batch_size=128, lr=0.15, min_lr_ratio=0.001, optimizer="lars", weight_decay=1e-6,  # paper: LARS, batch 128, lr 0.15 -> 0.00015
        warmup_steps=0, max_steps=1, channels_last=True, log_every=10))


@dataclasses.dataclass
class FinetuneConfig:
    """Downstream classifier (reference: Lightning BackboneFinetuning)."""

    epochs: int = 70  # paper: 70 epochs
    unfreeze_epoch: int = 10  # paper: backbone frozen until epoch 10
    backbone_lr_ratio: float = 0.1  # Lightning BackboneFinetuning backbone_initial_ratio_lr (constant here)
    rotation_deg: float = 15.0  # paper: random rotation pi/12
    flip_p: float = 0.5  # paper: random flips
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        batch_size=64, lr=1e-4, weight_decay=5e-4, optimizer="adam", schedule="constant",  # paper: Adam 1e-4, wd 5e-4, batch 64
        max_steps=1, log_every=10))


@dataclasses.dataclass
class CTConfig:
    description: str = ""
    data_profile: str = "tiny"  # synthetic set generated when --data is not given
    tasks: tuple[str, ...] = ("lesion", "organ")  # downstream tasks to evaluate
    pretrain_enabled: bool = True  # False: the "no pre-training" row (random init)
    preprocess: PreprocessConfig = dataclasses.field(default_factory=PreprocessConfig)
    reduction: ReductionConfig = dataclasses.field(default_factory=ReductionConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    ssl: SwAVConfig = dataclasses.field(default_factory=SwAVConfig)
    pretrain: PretrainConfig = dataclasses.field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)
