"""Multi-task contrastive pre-training with synthetic captions (PIGEON Sec. 3.2).

The CLIP image and text towers are trained with CLIP's symmetric contrastive loss
(``pretrainlab.core.losses.clip_loss``) on (image, synthetic caption) pairs; the captions mix the
location tasks (town, region, country, climate, driving side, heading, month: see
``synthetic_captions.py``), which makes the objective multi-task. Batch:
``{"image": (B,3,S,S) uint8, "tokens": (B, context) long}``.

The reference (``training/train_modes.py pretrain``) continues a Hugging Face ``CLIPModel`` from
OpenAI's weights with the Trainer settings of ``config.py PRETAIN_ARGS`` (see ``config.py``).
Give the weights with ``model.pretrained`` (a converted ``.safetensors``); without them the towers
start from random initialisation (the smoke / tiny profiles), which is a deviation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pretrainlab.core.losses import clip_loss
from pretrainlab.core.train import Task
from pretrainlab.geo.config import GeoConfig
from pretrainlab.geo.model import build_clip, normalize_images


class ContrastivePretrainTask(Task):
    """``forward(batch) -> {"loss", "logit_scale"}``; ``self.clip`` is the open_clip model."""

    def __init__(self, cfg: GeoConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.clip, self.tokenizer = build_clip(cfg.model)
        if not cfg.model.pretrained:  # a random tower starts at CLIP's 1 / 0.07; pre-trained weights keep their own
            with torch.no_grad():
                self.clip.logit_scale.fill_(math.log(cfg.contrastive.logit_scale_init))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        img = self.clip.encode_image(normalize_images(batch["image"]))
        txt = self.clip.encode_text(batch["tokens"])
        scale = self.clip.logit_scale.exp().clamp(max=self.cfg.contrastive.logit_scale_max)
        loss = clip_loss(img, txt, scale)
        return {"loss": loss, "logit_scale": scale.detach()}


def clip_state(task: nn.Module) -> dict[str, torch.Tensor]:
    """The open_clip weights of a pre-training task (keys as plain open_clip)."""
    return {k[len("clip."):]: v for k, v in task.state_dict().items() if k.startswith("clip.")}
