"""The PIGEON model (Sec. 3.4-3.5): a CLIP vision tower, its embedding = mean of the last layer's
tokens, a linear geocell head and auxiliary heads.

- Backbone: an open_clip model built with ``pretrainlab.core.openclip.create_clip`` (paper:
  ViT-L/14 at 336 px, StreetCLIP weights; here a tiny registered ``test-vit-*`` config at toy scale,
  any open_clip name on a GPU, local weights with ``model.clip_weights``). No pre-trained weights
  ship offline: without a local file, the tower is what this project's contrastive pre-training
  stage (``contrastive_pretraining.py``) produced, or random.
- Embedding: mean of the final (post-LayerNorm) patch tokens of the vision transformer
  (``(B, width)``); CNN towers fall back to the pooled CLIP embedding.
- Heads: geocells (linear), Koppen climate classes, month, six standardised regressions
  (elevation, population, temperature mean / range, precipitation mean / range).
- Freezing: during geocell training everything but the last ``trainable_blocks`` vision blocks
  (+ final LayerNorm / projection) is frozen (the paper fine-tunes only the last layer, lr 2e-5).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from pretrainlab.geo.world import KOPPEN, REGRESSIONS

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP normalisation
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclasses.dataclass
class ModelConfig:
    clip_model: str = "test-vit-tiny"  # paper: ViT-L-14-336 (StreetCLIP); any open_clip config name
    image_size: int = 32  # paper: 336
    clip_weights: str = ""  # optional local open_clip .safetensors (no download)
    trainable_blocks: int = 1  # PIGEON: all but the last vision layer frozen during fine-tuning
    freeze_backbone: bool = True  # apply the freezing scheme in the geocell stage


def build_clip(cfg: ModelConfig) -> tuple[nn.Module, object]:
    """``(open_clip model, tokenizer)``, randomly initialised or from ``cfg.clip_weights``."""
    import logging

    from pretrainlab.core.openclip import create_clip, load_clip_weights

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # open_clip warns "No pretrained weights loaded": intended here
    try:
        model, tok = create_clip(cfg.clip_model, force_image_size=cfg.image_size)
    finally:
        root.setLevel(level)
    if cfg.clip_weights:
        load_clip_weights(model, cfg.clip_weights)
    return model, tok


def normalize_images(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` uint8 or [0, 1] float -> CLIP-normalised float."""
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    mean = torch.tensor(CLIP_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def embed_dim(clip: nn.Module) -> int:
    v = clip.visual
    if hasattr(v, "transformer"):
        return int(v.transformer.width)
    return int(v.output_dim)


def image_embedding(clip: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """PIGEON's image embedding: mean of the vision transformer's last-layer tokens -> ``(B, width)``."""
    v = clip.visual
    x = normalize_images(images)
    if hasattr(v, "transformer") and hasattr(v, "output_tokens"):
        v.output_tokens = True
        try:
            _, tokens = v(x)
        finally:
            v.output_tokens = False
        return tokens.mean(dim=1)
    return clip.encode_image(x)


class GeoHeads(nn.Module):
    """Linear heads on the embedding ``(B, D)``: geocells ``(B, K)``, climate ``(B, 30)``,
    month ``(B, 12)``, regressions ``(B, 6)``."""

    def __init__(self, dim: int, n_cells: int) -> None:
        super().__init__()
        self.geocell = nn.Linear(dim, n_cells)
        self.climate = nn.Linear(dim, len(KOPPEN))
        self.month = nn.Linear(dim, 12)
        self.regression = nn.Linear(dim, len(REGRESSIONS))

    def forward(self, emb: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"geocell": self.geocell(emb), "climate": self.climate(emb), "month": self.month(emb),
                "regression": self.regression(emb)}


def apply_freezing(clip: nn.Module, cfg: ModelConfig) -> None:
    """The paper's scheme: freeze the text tower and all vision blocks but the last ``trainable_blocks``."""
    from pretrainlab.core.openclip import freeze_all_but_last

    for p in clip.parameters():
        p.requires_grad_(False)
    if cfg.freeze_backbone:
        freeze_all_but_last(clip.visual, cfg.trainable_blocks)
    else:
        for p in clip.visual.parameters():
            p.requires_grad_(True)
