"""Configuration of the geo domain: one dataclass tree, one YAML per row of the paper's ablation.

Defaults are the reference's (LukasHaas/PIGEON ``config.py``, ``models/super_guessr.py``,
``models/proto_refiner.py``, ``dataset_creation/prototype/prototype.py``) with the file named in
each comment. Each dataclass declares its value checks (``CHECKS`` / ``check()``, validated by the
core when a recipe loads): a bad value is a ``ConfigError`` naming the key before anything is written.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from pretrainlab.core.config import ConfigError, TrainConfig
from pretrainlab.geo.formats import LAYOUTS
from pretrainlab.geo.model import ModelConfig
from pretrainlab.geo.retrieval_refinement import RefineConfig
from pretrainlab.geo.semantic_geocells import GeocellConfig


@dataclasses.dataclass
class GeoDataConfig:
    profile: str = "tiny"  # which synthetic world to generate when --data is not given
    format: str = "auto"  # auto | csv | wds (webdataset shards)
    layout: str = "auto"  # auto | generic | osv5m | geoestimation | im2gps3k | yfcc100m (formats.py)

    CHECKS: ClassVar[dict[str, Any]] = {"profile": ("smoke", "tiny", "full"), "format": ("auto", "csv", "wds"),
                                        "layout": LAYOUTS}


@dataclasses.dataclass
class LossConfig:
    haversine_smoothing: bool = True  # PIGEON Sec. 3.3 (off = one-hot cross-entropy on geocells)
    tau_km: float = 75.0  # ref config.py LABEL_SMOOTHING_CONSTANT: 75 (PIGEON), 65 (PIGEOTTO)
    # ref preprocessing/utils.py smooth_labels: subtract the nearest centroid's distance (labels in (0, 1]);
    # "true" = the true cell's distance (the paper's Eq. 2 as printed; explodes when a point lies
    # nearer another cell's centroid than its own, which semantic cells allow)
    reference: str = "min"
    normalize: bool = False  # the reference uses the un-normalised exp() labels

    CHECKS: ClassVar[dict[str, Any]] = {"tau_km": ">0", "reference": ("min", "true")}


@dataclasses.dataclass
class AuxConfig:
    enabled: bool = True  # PIGEON Sec. 3.5 auxiliary heads (where the data has the metadata)
    climate_weight: float = 2.0  # ref super_guessr.py CLIMATE_LOSS_SCALING
    month_weight: float = 1.0  # ref super_guessr.py MONTHS_LOSS_SCALING (PIGEOTTO / yfcc: no month head)
    regression_weight: float = 8.0  # ref super_guessr.py REGRESSION_LOSS_SCALING (MSE of standardised targets)

    CHECKS: ClassVar[dict[str, Any]] = {"climate_weight": ">=0", "month_weight": ">=0", "regression_weight": ">=0"}


@dataclasses.dataclass
class ContrastiveConfig:
    enabled: bool = True  # PIGEON Sec. 3.2 multi-task contrastive pre-training with synthetic captions
    # caption generator: streetview (ref pretrain_dataset.py, PIGEON) | yfcc (ref pretrain_dataset_yfcc.py, PIGEOTTO)
    caption_style: str = "streetview"
    logit_scale_init: float = 14.285714  # CLIP: exp(t) with t = log(1 / 0.07) (a random tower; pre-trained keeps its own)
    logit_scale_max: float = 100.0  # CLIP clips the logit scale at 100
    # ref config.py PRETAIN_ARGS (PIGEON): lr 1e-6 (PIGEOTTO 5e-7), weight decay 0.001, Adam betas
    # (0.9, 0.98), eps 1e-6, max grad norm 1.0, linear schedule, warmup ratio 0.2 (PIGEOTTO 0.02),
    # 32 per GPU x 8 accumulation x 4 GPUs = 1024 per step
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        max_steps=300, batch_size=32, grad_accum=8, lr=1e-6, weight_decay=0.001, betas=(0.9, 0.98), eps=1e-6,
        clip_grad=1.0, schedule="linear", warmup_steps=60))

    CHECKS: ClassVar[dict[str, Any]] = {"caption_style": ("streetview", "yfcc"), "logit_scale_init": ">0",
                                        "logit_scale_max": ">0"}

    def check(self) -> None:
        if self.logit_scale_max < self.logit_scale_init:
            raise ConfigError(f"logit_scale_max: {self.logit_scale_max} must be >= logit_scale_init ({self.logit_scale_init})")


@dataclasses.dataclass
class GeoConfig:
    description: str = ""
    data: GeoDataConfig = dataclasses.field(default_factory=GeoDataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    geocells: GeocellConfig = dataclasses.field(default_factory=GeocellConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    aux: AuxConfig = dataclasses.field(default_factory=AuxConfig)
    contrastive: ContrastiveConfig = dataclasses.field(default_factory=ContrastiveConfig)
    refine: RefineConfig = dataclasses.field(default_factory=RefineConfig)
    # ref config.py TRAIN_ARGS: lr 2e-5, 256 per GPU x 4 GPUs = 1024, linear schedule, Hugging Face
    # Trainer defaults otherwise (AdamW betas (0.9, 0.999), weight decay 0, max grad norm 1.0)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        max_steps=500, batch_size=256, grad_accum=4, lr=2e-5, weight_decay=0.0, clip_grad=1.0, schedule="linear"))
    n_cells: int = 0  # set from the data when training starts (recorded in the checkpoint)
    eval_batch_size: int = 256

    CHECKS: ClassVar[dict[str, Any]] = {"n_cells": ">=0", "eval_batch_size": ">=1"}


def validate(cfg: GeoConfig) -> GeoConfig:
    """Check every setting (each dataclass's ``CHECKS`` / ``check()``, the core's mechanism);
    ``ConfigError("<key>: <problem>; allowed: ...")``. ``load_config`` already does this; code that
    builds a config by hand calls it."""
    from pretrainlab.core.config import validate as core_validate

    return core_validate(cfg)
