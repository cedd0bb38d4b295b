"""Configuration of the geo domain: one dataclass tree, one YAML per row of the paper's ablation."""

from __future__ import annotations

import dataclasses

from pretrainlab.core.config import TrainConfig
from pretrainlab.geo.model import ModelConfig
from pretrainlab.geo.semantic_geocells import GeocellConfig


@dataclasses.dataclass
class LossConfig:
    haversine_smoothing: bool = True  # PIGEON Sec. 3.3 (off = one-hot cross-entropy on geocells)
    tau_km: float = 75.0  # PIGEON 75 km; PIGEOTTO 65 km (Sec. 3.3)
    # subtract the nearest centroid's distance (reference code / research notes: labels in (0, 1]);
    # "true" = the true cell's distance (the paper's Eq. 2 as printed; explodes when a point lies
    # nearer another cell's centroid than its own, which semantic cells allow)
    reference: str = "min"
    normalize: bool = False  # the paper uses the un-normalised exp() labels


@dataclasses.dataclass
class AuxConfig:
    enabled: bool = True  # PIGEON Sec. 3.5 auxiliary heads (where the data has the metadata)
    climate_weight: float = 2.0  # Koppen classification loss weight (research notes: x2; to confirm)
    month_weight: float = 1.0  # month classification weight (x1; to confirm)
    regression_weight: float = 8.0  # MSE of the standardised regressions (x8; to confirm)


@dataclasses.dataclass
class ContrastiveConfig:
    enabled: bool = True  # PIGEON Sec. 3.2 multi-task contrastive pre-training with synthetic captions
    p_optional: float = 0.5  # probability of each optional caption part (paper: random; rate not given)
    logit_scale_init: float = 14.285714  # CLIP: exp(t) with t = log(1 / 0.07)
    logit_scale_max: float = 100.0  # CLIP clips the logit scale at 100
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        max_steps=300, batch_size=64, lr=5e-4, weight_decay=0.1, warmup_steps=20, betas=(0.9, 0.98)))


@dataclasses.dataclass
class RefineConfig:
    enabled: bool = True  # PIGEON Sec. 3.6 hierarchical retrieval refinement
    top_k_cells: int = 5  # candidate geocells (Sec. 3.6)
    temperature: float = 1.6  # softmax temperature over candidate clusters (reference code; to confirm)
    cancel_km: float = 1000.0  # keep the geocell guess if refinement moves it farther (Sec. 3.6)
    optics_min_samples: int = 3  # OPTICS inside each cell, haversine metric (to confirm)
    optics_xi: float = 0.05  # (to confirm)
    final: str = "nearest"  # location inside the chosen cluster: nearest training image (not the
    # reference code's apparent farthest: argmax of cdist); "mean" = the cluster's mean location


@dataclasses.dataclass
class GeoConfig:
    description: str = ""
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    geocells: GeocellConfig = dataclasses.field(default_factory=GeocellConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    aux: AuxConfig = dataclasses.field(default_factory=AuxConfig)
    contrastive: ContrastiveConfig = dataclasses.field(default_factory=ContrastiveConfig)
    refine: RefineConfig = dataclasses.field(default_factory=RefineConfig)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        max_steps=500, batch_size=64, lr=2e-5, weight_decay=0.01, warmup_steps=20))  # PIGEON lr 2e-5
    n_cells: int = 0  # set from the data when training starts (recorded in the checkpoint)
    data_profile: str = "tiny"  # which synthetic world to generate when --data is not given
    data_format: str = "auto"  # auto | csv | wds
    eval_batch_size: int = 256
