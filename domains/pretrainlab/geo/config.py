"""Configuration of the geo domain: one dataclass tree, one YAML per row of the paper's ablation.

Defaults are the reference's (LukasHaas/PIGEON ``config.py``, ``models/super_guessr.py``,
``models/proto_refiner.py``, ``dataset_creation/prototype/prototype.py``) with the file named in
each comment. :func:`validate` checks every numeric / enum value and raises a ``ConfigError``
naming the key before anything is written.
"""

from __future__ import annotations

import dataclasses
import math

from pretrainlab.core.config import ConfigError, TrainConfig
from pretrainlab.geo.model import ModelConfig
from pretrainlab.geo.model import validate_config as _validate_model
from pretrainlab.geo.retrieval_refinement import RefineConfig
from pretrainlab.geo.retrieval_refinement import validate_config as _validate_refine
from pretrainlab.geo.semantic_geocells import GeocellConfig
from pretrainlab.geo.semantic_geocells import validate_config as _validate_cells


@dataclasses.dataclass
class LossConfig:
    haversine_smoothing: bool = True  # PIGEON Sec. 3.3 (off = one-hot cross-entropy on geocells)
    tau_km: float = 75.0  # ref config.py LABEL_SMOOTHING_CONSTANT: 75 (PIGEON), 65 (PIGEOTTO)
    # ref preprocessing/utils.py smooth_labels: subtract the nearest centroid's distance (labels in (0, 1]);
    # "true" = the true cell's distance (the paper's Eq. 2 as printed; explodes when a point lies
    # nearer another cell's centroid than its own, which semantic cells allow)
    reference: str = "min"
    normalize: bool = False  # the reference uses the un-normalised exp() labels


@dataclasses.dataclass
class AuxConfig:
    enabled: bool = True  # PIGEON Sec. 3.5 auxiliary heads (where the data has the metadata)
    climate_weight: float = 2.0  # ref super_guessr.py CLIMATE_LOSS_SCALING
    month_weight: float = 1.0  # ref super_guessr.py MONTHS_LOSS_SCALING (PIGEOTTO / yfcc: no month head)
    regression_weight: float = 8.0  # ref super_guessr.py REGRESSION_LOSS_SCALING (MSE of standardised targets)


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
        max_steps=300, batch_size=32, grad_accum=8, lr=1e-6, weight_decay=0.001, betas=(0.9, 0.98),
        clip_grad=1.0, schedule="linear", warmup_steps=60))


@dataclasses.dataclass
class GeoConfig:
    description: str = ""
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
    data_profile: str = "tiny"  # which synthetic world to generate when --data is not given
    data_format: str = "auto"  # auto | csv | wds
    data_layout: str = "auto"  # auto | generic | osv5m | geoestimation | im2gps3k | yfcc100m (formats.py)
    eval_batch_size: int = 256


def _check(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {problem}")


def _validate_train(t: TrainConfig, prefix: str) -> None:
    _check(t.max_steps >= 1, f"{prefix}.max_steps", f"{t.max_steps} must be >= 1")
    _check(t.batch_size >= 1, f"{prefix}.batch_size", f"{t.batch_size} must be >= 1")
    _check(t.grad_accum >= 1, f"{prefix}.grad_accum", f"{t.grad_accum} must be >= 1")
    _check(math.isfinite(t.lr) and t.lr > 0, f"{prefix}.lr", f"{t.lr} must be a finite number > 0")
    _check(math.isfinite(t.weight_decay) and t.weight_decay >= 0, f"{prefix}.weight_decay", f"{t.weight_decay} must be >= 0")
    _check(t.warmup_steps >= 0, f"{prefix}.warmup_steps", f"{t.warmup_steps} must be >= 0")
    _check(t.num_workers >= 0, f"{prefix}.num_workers", f"{t.num_workers} must be >= 0")
    _check(math.isfinite(t.clip_grad) and t.clip_grad >= 0, f"{prefix}.clip_grad", f"{t.clip_grad} must be >= 0")


def validate(cfg: GeoConfig) -> GeoConfig:
    """Check every setting the geo code reads; ``ConfigError("<key>: <problem>; allowed: ...")``."""
    from pretrainlab.geo.formats import LAYOUTS

    _validate_model(cfg.model)
    _validate_cells(cfg.geocells)
    _validate_refine(cfg.refine)
    lc = cfg.loss
    _check(math.isfinite(lc.tau_km) and lc.tau_km > 0, "loss.tau_km", f"{lc.tau_km} must be a finite number of km > 0")
    _check(lc.reference in ("min", "true"), "loss.reference", f"{lc.reference!r} is not allowed; allowed: min, true")
    a = cfg.aux
    for k in ("climate_weight", "month_weight", "regression_weight"):
        v = getattr(a, k)
        _check(math.isfinite(v) and v >= 0, f"aux.{k}", f"{v} must be a finite number >= 0")
    c = cfg.contrastive
    _check(c.caption_style in ("streetview", "yfcc"), "contrastive.caption_style",
           f"{c.caption_style!r} is not allowed; allowed: streetview, yfcc")
    _check(math.isfinite(c.logit_scale_init) and c.logit_scale_init > 0, "contrastive.logit_scale_init",
           f"{c.logit_scale_init} must be > 0")
    _check(math.isfinite(c.logit_scale_max) and c.logit_scale_max >= c.logit_scale_init, "contrastive.logit_scale_max",
           f"{c.logit_scale_max} must be >= logit_scale_init")
    _validate_train(cfg.train, "train")
    _validate_train(c.train, "contrastive.train")
    _check(cfg.data_format in ("auto", "csv", "wds"), "data_format", f"{cfg.data_format!r} is not allowed; allowed: auto, csv, wds")
    _check(cfg.data_layout in LAYOUTS, "data_layout", f"{cfg.data_layout!r} is not allowed; allowed: {', '.join(LAYOUTS)}")
    _check(cfg.data_profile in ("smoke", "tiny", "full"), "data_profile",
           f"{cfg.data_profile!r} is not allowed; allowed: smoke, tiny, full")
    _check(cfg.eval_batch_size >= 1, "eval_batch_size", f"{cfg.eval_batch_size} must be >= 1")
    _check(cfg.n_cells >= 0, "n_cells", f"{cfg.n_cells} must be >= 0")
    return cfg
