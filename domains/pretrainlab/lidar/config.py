"""Typed configuration of the LiDAR domain (one dataclass tree; every paper default cites its source).

Paper: Hegde, Lohit, Peng, Jones, Patel, "Equivariant Spatio-Temporal Self-Supervision for LiDAR
Object Detection", ECCV 2024 (no official code). Numbers marked "to confirm" come from secondary
notes of the paper (/work/shared/research/lidar.md) and are kept as named fields.
"""

from __future__ import annotations

import dataclasses
import math

from pretrainlab.core.config import TrainConfig
from pretrainlab.lidar.pillar_backbone import BackboneConfig

PRETRAIN_METHODS = ("essl3d", "spatial", "temporal", "invariant")


@dataclasses.dataclass
class DataConfig:
    # symmetric BEV range for pre-training (360-degree scans, KITTI-360 style); points are cropped
    # to a disk of radius crop_radius_ratio * half-side so every rigid view stays inside the grid
    pretrain_range: list[float] = dataclasses.field(default_factory=lambda: [-25.6, -25.6, -3.0, 25.6, 25.6, 1.0])
    crop_radius_ratio: float = 0.9
    # KITTI front-view detection range (OpenPCDet kitti_dataset.yaml: [0, -40, -3, 70.4, 40, 1])
    detect_range: list[float] = dataclasses.field(default_factory=lambda: [0.0, -40.0, -3.0, 70.4, 40.0, 1.0])
    max_points: int = 16384  # points per scan after random subsampling / repeat-padding
    flow_source: str = "file"  # file (sequences/SS/flow/*.npy) | icp (ego motion by open3d ICP; an approximation)
    max_objects: int = 64  # padded boxes per scan


@dataclasses.dataclass
class SpatialConfig:
    """Spatial branch (paper Sec. 3.2): ranges of the rigid transforms and the two objectives."""

    rotation_range: tuple[float, float] = (-math.pi / 2, math.pi / 2)  # paper: (-pi/2, pi/2) (to confirm)
    translation_max: float = 0.2  # m, paper: 0-0.2 m (to confirm)
    scale_range: tuple[float, float] = (0.95, 1.05)  # paper (to confirm)
    flip_p: float = 0.5  # paper: flip with p = 0.5 (to confirm)
    rotation_bins: int = 10  # paper: rotation classified into 10 bins (to confirm)
    n_points: int = 2048  # paper: ~2048 matched points for PointInfoNCE (to confirm)
    temperature: float = 0.07  # PointInfoNCE tau (PointContrast reference code; to confirm)
    pool_grid: int = 4  # the transform classifier s reads a pool_grid x pool_grid pooled BEV map of each view


@dataclasses.dataclass
class TemporalConfig:
    """Temporal branch (paper Sec. 3.3): BYOL with an EMA target and scene-flow warping."""

    ema_decay: float = 0.999  # paper: target = EMA of online, decay 0.999 (to confirm)
    n_points: int = 2048  # points of frame t-1 whose warped features are regressed
    predictor_hidden: int = 256  # BYOL predictor q hidden width


@dataclasses.dataclass
class LossWeights:
    pnce: float = 0.01  # paper: 0.01 * L_pnce (to confirm)
    ce: float = 1.0  # paper: 1 * L_ce (to confirm)
    flow: float = 300.0  # paper: 300 * L_flow (to confirm); L_flow is an element-wise mean MSE


@dataclasses.dataclass
class PretrainConfig:
    description: str = ""
    method: str = "essl3d"  # essl3d | spatial | temporal | invariant (the baselines share the code)
    backbone: BackboneConfig = dataclasses.field(default_factory=BackboneConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    spatial: SpatialConfig = dataclasses.field(default_factory=SpatialConfig)
    temporal: TemporalConfig = dataclasses.field(default_factory=TemporalConfig)
    weights: LossWeights = dataclasses.field(default_factory=LossWeights)
    proj_dim: int = 128  # projector m output
    invariant_temperature: float = 0.1  # NT-Xent tau of the invariant (global) contrastive baseline
    # paper: AdamW, cyclic lr 1e-4, 80 epochs on KITTI-360 + SemanticKITTI (to confirm)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        batch_size=8, lr=1e-4, weight_decay=0.01, optimizer="adamw", schedule="cosine", max_steps=100000, warmup_steps=1000))
    data_profile: str = "tiny"


@dataclasses.dataclass
class HeadConfig:
    """CenterPoint-style BEV head (Yin et al. 2021) for Car, Pedestrian, Cyclist."""

    classes: tuple[str, ...] = ("Car", "Pedestrian", "Cyclist")
    head_channels: int = 64
    min_radius: int = 2  # CenterPoint min Gaussian radius (cells)
    min_overlap: float = 0.1  # CenterPoint gaussian_overlap
    hm_weight: float = 1.0
    reg_weight: float = 2.0  # CenterPoint code_weight sum ~ 0.25 * 8
    top_k: int = 100  # peaks decoded per scan
    score_threshold: float = 0.1
    nms_iou: float = 0.1  # rotated BEV NMS threshold (CenterPoint nms_thresh 0.1 ... 0.2)
    max_per_scan: int = 50


@dataclasses.dataclass
class AugmentConfig:
    """Fine-tuning augmentation (OpenPCDet SECOND KITTI config: flip x, rotation +-pi/4, scale 0.95-1.05)."""

    flip_p: float = 0.5
    rotation: float = math.pi / 4
    scale_range: tuple[float, float] = (0.95, 1.05)


@dataclasses.dataclass
class EvalConfig:
    iou_thresholds: tuple[float, float, float] = (0.7, 0.5, 0.5)  # KITTI: car 0.7, pedestrian / cyclist 0.5
    recall_points: int = 40  # KITTI R40
    difficulty: int = 1  # 0 easy, 1 moderate, 2 hard (reported column)


@dataclasses.dataclass
class DetectConfig:
    description: str = ""
    init: str = ""  # pre-trained checkpoint (run folder / step folder); "" = from scratch
    label_fraction: float = 1.0  # paper: 5 %, 20 %, 100 % of the KITTI labels
    backbone: BackboneConfig = dataclasses.field(default_factory=BackboneConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    head: HeadConfig = dataclasses.field(default_factory=HeadConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    # OpenPCDet SECOND KITTI: adam_onecycle lr 0.003, wd 0.01, 80 epochs, batch 4 per GPU
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        batch_size=4, lr=3e-3, weight_decay=0.01, optimizer="adamw", schedule="cosine", max_steps=74240, warmup_steps=500,
        clip_grad=10.0))
    data_profile: str = "tiny"
