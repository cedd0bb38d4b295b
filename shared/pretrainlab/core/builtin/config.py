"""Config of the built-in SimCLR recipe (the template domain): one typed dataclass tree."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from pretrainlab.core.config import TrainConfig


@dataclasses.dataclass
class DataConfig:
    profile: str = "tiny"  # which synthetic set to generate when --data is not given
    image_size: int = 32  # images are resized to this square size

    CHECKS: ClassVar[dict[str, Any]] = {"profile": ("smoke", "tiny", "full"), "image_size": ">=8"}


@dataclasses.dataclass
class ModelConfig:
    width: int = 32  # channels of the first conv block (doubles per block)
    feat_dim: int = 128  # encoder output (the representation)
    proj_dim: int = 64  # projector output, where the loss is applied

    CHECKS: ClassVar[dict[str, Any]] = {"width": ">=1", "feat_dim": ">=1", "proj_dim": ">=1"}


@dataclasses.dataclass
class SimCLRLossConfig:
    temperature: float = 0.5  # SimCLR Appendix B.9 (CIFAR-10)
    crop_scale_min: float = 0.2  # RandomResizedCrop lower area bound for small images
    jitter: float = 0.4  # colour-jitter strength s=0.5 -> 0.4 (Appendix A)
    blur_p: float = 0.0  # SimCLR drops blur on CIFAR-10

    CHECKS: ClassVar[dict[str, Any]] = {"temperature": ">0", "crop_scale_min": ">0 <=1", "jitter": ">=0",
                                        "blur_p": ">=0 <=1"}


@dataclasses.dataclass
class SimCLRConfig:
    description: str = ""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: SimCLRLossConfig = dataclasses.field(default_factory=SimCLRLossConfig)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        batch_size=64, lr=2e-3, weight_decay=1e-4, max_steps=200, warmup_steps=10))
    init: str = ""  # finetune: checkpoint whose encoder starts the run ("" = random)
