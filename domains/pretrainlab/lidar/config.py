"""Typed configuration of the LiDAR domain (one dataclass tree; every paper default cites its source).

Paper: Hegde, Lohit, Peng, Jones, Patel, "Equivariant Spatio-Temporal Self-Supervision for LiDAR
Object Detection", ECCV 2024 (no official code). Numbers marked "to confirm" come from secondary
notes of the paper (/work/shared/research/lidar.md) and are kept as named fields.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from pretrainlab.core.config import TrainConfig
from pretrainlab.lidar.pillar_backbone import BackboneConfig

PRETRAIN_METHODS = ("essl3d", "spatial", "temporal", "invariant")


def _range_problem(r: list[float]) -> str | None:
    if len(r) != 6:
        return "expected [x0, y0, z0, x1, y1, z1]"
    if not all(math.isfinite(v) for v in r) or not (r[0] < r[3] and r[1] < r[4] and r[2] < r[5]):
        return "expected finite x0 < x1, y0 < y1, z0 < z1"
    return None


@dataclasses.dataclass
class DataConfig:
    # symmetric BEV range for pre-training (360-degree scans, KITTI-360 style); points are cropped
    # to a disk of radius crop_radius_ratio * half-side so every rigid view stays inside the grid
    pretrain_range: list[float] = dataclasses.field(default_factory=lambda: [-25.6, -25.6, -3.0, 25.6, 25.6, 1.0])
    crop_radius_ratio: float = 0.9
    # KITTI front-view detection range (OpenPCDet kitti_dataset.yaml: [0, -40, -3, 70.4, 40, 1])
    detect_range: list[float] = dataclasses.field(default_factory=lambda: [0.0, -40.0, -3.0, 70.4, 40.0, 1.0])
    max_points: int = 16384  # points per scan after random subsampling / repeat-padding
    flow_source: str = "file"  # file (flow/<stem>.npy beside the scans) | icp (ego motion by open3d ICP; static world)
    flow_root: str = ""  # precomputed flow files under this folder (mirroring the data folder) instead of beside the scans
    max_objects: int = 64  # padded boxes per scan
    fov_only: bool = True  # keep only points in the camera field of view (OpenPCDet kitti_dataset.yaml FOV_POINTS_ONLY: True)
    image_shape: tuple[int, int] | None = None  # (H, W) for every frame; None = each frame's image_2/NNNNNN.png
    profile: str = "tiny"  # the simulator's data set used when no --data is given (smoke | tiny | full)
    # detection frames kept decoded (points in range and FOV, labels) per process, least recently used out
    # first: a 5 % label subset (186 KITTI scans, ~0.1 GB in the FOV) is decoded once, not once per epoch; a full
    # split still streams. Kept by the process that reads the items (num_workers=0, lidar's default); a
    # DataLoader worker keeps nothing (the trainer re-makes its workers every epoch). 0 = off
    cache_mb: int = 512

    CHECKS: ClassVar[dict[str, Any]] = {
        "crop_radius_ratio": ">0 <=1", "max_points": ">=1", "cache_mb": ">=0", "flow_source": ("file", "icp"), "max_objects": ">=1",
        "profile": ("smoke", "tiny", "full"),
        "image_shape": lambda v: None if v is None or v >= 1 else "expected null or [H, W] with sizes >= 1",
        "pretrain_range": lambda v: None if math.isfinite(v) else "expected finite numbers",
        "detect_range": lambda v: None if math.isfinite(v) else "expected finite numbers",
    }

    def check(self) -> None:
        from pretrainlab.core.config import ConfigError

        for name in ("pretrain_range", "detect_range"):
            problem = _range_problem(getattr(self, name))
            if problem:
                raise ConfigError(f"{name}: {getattr(self, name)} is not allowed; {problem}")


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

    CHECKS: ClassVar[dict[str, Any]] = {
        "rotation_range": ">=-3.1416 <=3.1416", "translation_max": ">=0", "scale_range": ">0", "flip_p": ">=0 <=1",
        "rotation_bins": ">=2", "n_points": ">=1", "temperature": ">0", "pool_grid": ">=1",
    }

    def check(self) -> None:
        from pretrainlab.core.config import ConfigError

        if not self.rotation_range[0] < self.rotation_range[1]:
            raise ConfigError(f"rotation_range: {list(self.rotation_range)} is not allowed; expected low < high")
        if not self.scale_range[0] <= self.scale_range[1]:
            raise ConfigError(f"scale_range: {list(self.scale_range)} is not allowed; expected low <= high")


@dataclasses.dataclass
class TemporalConfig:
    """Temporal branch (paper Sec. 3.3): BYOL with an EMA target and scene-flow warping."""

    ema_decay: float = 0.999  # paper: target = EMA of online, decay 0.999 (to confirm)
    n_points: int = 2048  # points of frame t-1 whose warped features are regressed
    predictor_hidden: int = 256  # BYOL predictor q hidden width

    CHECKS: ClassVar[dict[str, Any]] = {"ema_decay": ">=0 <=1", "n_points": ">=1", "predictor_hidden": ">=1"}


@dataclasses.dataclass
class LossWeights:
    pnce: float = 0.01  # paper: 0.01 * L_pnce (to confirm)
    ce: float = 1.0  # paper: 1 * L_ce (to confirm)
    flow: float = 300.0  # paper: 300 * L_flow (to confirm); L_flow is an element-wise mean MSE

    CHECKS: ClassVar[dict[str, Any]] = {"pnce": ">=0", "ce": ">=0", "flow": ">=0"}


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

    CHECKS: ClassVar[dict[str, Any]] = {"method": PRETRAIN_METHODS, "proj_dim": ">=1", "invariant_temperature": ">0"}


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

    CHECKS: ClassVar[dict[str, Any]] = {
        "classes": lambda c: None if c in ("Car", "Pedestrian", "Cyclist") else "expected Car, Pedestrian or Cyclist",
        "head_channels": ">=1", "min_radius": ">=0", "min_overlap": ">0 <1", "hm_weight": ">=0", "reg_weight": ">=0",
        "top_k": ">=1", "score_threshold": ">=0 <=1", "nms_iou": ">=0 <=1", "max_per_scan": ">=1",
    }

    def check(self) -> None:
        from pretrainlab.core.config import ConfigError

        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ConfigError(f"classes: {list(self.classes)} is not allowed; expected distinct names among Car, "
                              "Pedestrian, Cyclist")


@dataclasses.dataclass
class AugmentConfig:
    """Fine-tuning augmentation (OpenPCDet SECOND KITTI config: flip x, rotation +-pi/4, scale 0.95-1.05)."""

    flip_p: float = 0.5
    rotation: float = math.pi / 4
    scale_range: tuple[float, float] = (0.95, 1.05)

    CHECKS: ClassVar[dict[str, Any]] = {"flip_p": ">=0 <=1", "rotation": ">=0 <=3.1416", "scale_range": ">0"}

    def check(self) -> None:
        from pretrainlab.core.config import ConfigError

        if not self.scale_range[0] <= self.scale_range[1]:
            raise ConfigError(f"scale_range: {list(self.scale_range)} is not allowed; expected low <= high")


@dataclasses.dataclass
class EvalConfig:
    """The official KITTI evaluation (``kitti_eval``): R40 AP at overlaps 0.7 / 0.5 / 0.5 (Car / Ped / Cyc)."""

    difficulty: str = "moderate"  # the level of the summary mAP (easy | moderate | hard)

    CHECKS: ClassVar[dict[str, Any]] = {"difficulty": ("easy", "moderate", "hard")}


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

    CHECKS: ClassVar[dict[str, Any]] = {"label_fraction": ">0 <=1"}
