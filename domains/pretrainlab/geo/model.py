"""The PIGEON model (Sec. 3.4-3.5; ref ``models/super_guessr.py``): a CLIP vision tower, its
embedding, a linear geocell head and auxiliary heads.

- Backbone: an open_clip model built with ``pretrainlab.core.openclip.create_clip`` (paper:
  ViT-L/14 at 336 px with StreetCLIP weights). ``model.pretrained`` takes a local open_clip
  ``.safetensors`` / ``.pt`` file, an open_clip tag or ``hf-hub:`` repo (downloaded when online);
  a Hugging Face ``CLIPModel`` folder (StreetCLIP, OpenAI) is converted once with
  ``pretrainlab geo convert-clip`` (``hf_clip.py``), which writes the weights and an open_clip
  config JSON: set ``model.clip_model=<that .json>``. Without weights the tower is random (the
  tiny / smoke profiles) or what this project's contrastive stage produced.
- Embedding: ``SuperGuessr.forward`` takes the Hugging Face ``last_hidden_state`` (the encoder
  output BEFORE the post-LayerNorm, class token included) and averages it over the tokens: here
  the open_clip transformer's output averaged over all tokens -> ``(B, width)``. CNN towers fall
  back to the pooled CLIP embedding. With ``views = 4`` (PIGEON's four-image panorama, ref
  ``panorama=True, hierarchical=False``) the embeddings of the four views are averaged.
- Heads (``SuperGuessr.__init__``): geocells, Koppen climate, month, six regressions, each linear
  on the embedding.
- Freezing (``SuperGuessr._freeze_params``): all transformer blocks but the last
  ``trainable_blocks`` are frozen; the patch / class / position embeddings and the pre-LayerNorm
  stay trainable (the reference freezes ``encoder.layers[:-1]`` only); the text tower, the
  post-LayerNorm and the projection are frozen because the embedding never reaches them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from pretrainlab.core.config import ConfigError
from pretrainlab.geo.formats import KOPPEN, REGRESSIONS

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP normalisation (CLIPProcessor)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
N_MONTHS = 12


@dataclasses.dataclass
class ModelConfig:
    clip_model: str = "test-vit-tiny"  # paper: ViT-L-14-336 (StreetCLIP); an open_clip name or a config .json
    image_size: int = 32  # paper: 336 (CLIP ViT-L/14-336)
    pretrained: str = ""  # local weights file | open_clip tag | hf-hub:<repo>; "" = random initialisation
    trainable_blocks: int = 1  # ref SuperGuessr._freeze_params: encoder.layers[:-1] frozen
    freeze_backbone: bool = True  # apply the freezing scheme in the geocell stage
    views: int = 1  # images per location: 1, or 4 for PIGEON's panorama (embeddings averaged)

    CHECKS: ClassVar[dict[str, Any]] = {"image_size": ">=8 <=1024", "trainable_blocks": ">=0", "views": (1, 4)}

    def check(self) -> None:
        """An unknown model name fails when the recipe loads, not after the geocells are built."""
        if self.clip_model.endswith(".json") or self.clip_model.startswith("hf-hub:"):
            return
        import difflib

        import open_clip

        from pretrainlab.core.openclip import register_tiny_configs

        register_tiny_configs()
        names = open_clip.list_models()
        if self.clip_model not in names:
            near = difflib.get_close_matches(self.clip_model, names, n=3)
            raise ConfigError(f"clip_model: unknown open_clip model '{self.clip_model}'"
                              + (f"; did you mean {near}?" if near else "; or give an open_clip config .json"))


def _model_name(cfg: ModelConfig) -> str:
    """The open_clip name; a ``.json`` config (from ``geo convert-clip``) is registered under its stem."""
    spec = cfg.clip_model
    if not spec.endswith(".json"):
        return spec
    from pretrainlab.core.data import DataError
    from pretrainlab.core.openclip import register_configs

    p = Path(spec).expanduser()
    try:
        conf = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"model.clip_model: config file {p} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(p, f"not an open_clip config JSON ({type(e).__name__}: {e})") from None
    if not isinstance(conf, dict) or "vision_cfg" not in conf or "text_cfg" not in conf:
        raise DataError(p, "not an open_clip config JSON (needs embed_dim, vision_cfg, text_cfg)")
    name = f"file-{p.stem}"
    register_configs({name: conf})
    return name


def build_clip(cfg: ModelConfig) -> tuple[nn.Module, object]:
    """``(open_clip model, tokenizer)``, randomly initialised or from ``cfg.pretrained``."""
    from pretrainlab.core.openclip import create_clip

    try:
        return create_clip(_model_name(cfg), pretrained=cfg.pretrained or None, setting="model.pretrained",
                           force_image_size=cfg.image_size)
    except ConfigError as e:  # the core names its own setting; here it is model.clip_model
        msg = str(e)
        if msg.startswith("model.name:"):
            raise ConfigError("model.clip_model:" + msg[len("model.name:"):]) from None
        raise


def normalize_images(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` uint8 or [0, 1] float -> CLIP-normalised float."""
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    mean = torch.tensor(CLIP_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def is_vit(clip: nn.Module) -> bool:
    v = clip.visual
    return hasattr(v, "transformer") and hasattr(v, "_embeds") and hasattr(v, "ln_post")


def embed_dim(clip: nn.Module) -> int:
    v = clip.visual
    return int(v.transformer.width) if is_vit(clip) else int(v.output_dim)


def image_embedding(clip: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """PIGEON's embedding ``(B, width)``: the vision transformer's last-layer tokens (before the
    post-LayerNorm, class token included) averaged. ``images`` ``(B, 3, S, S)`` or panoramas
    ``(B, V, 3, S, S)`` (the V views' embeddings are averaged)."""
    if images.dim() == 5:
        b, nv = images.shape[:2]
        return image_embedding(clip, images.flatten(0, 1)).view(b, nv, -1).mean(dim=1)
    x = normalize_images(images)
    if is_vit(clip):
        v = clip.visual
        tokens = v.transformer(v._embeds(x))  # (B, L, width): HF CLIPVisionModel's last_hidden_state
        return tokens.mean(dim=1)
    return clip.encode_image(x)


class GeoHeads(nn.Module):
    """Linear heads on the embedding ``(B, D)``: geocells ``(B, K)``, climate ``(B, 30)``,
    month ``(B, 12)``, regressions ``(B, 6)``."""

    def __init__(self, dim: int, n_cells: int) -> None:
        super().__init__()
        self.geocell = nn.Linear(dim, n_cells)
        self.climate = nn.Linear(dim, len(KOPPEN))
        self.month = nn.Linear(dim, N_MONTHS)
        self.regression = nn.Linear(dim, len(REGRESSIONS))

    def forward(self, emb: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"geocell": self.geocell(emb), "climate": self.climate(emb), "month": self.month(emb),
                "regression": self.regression(emb)}


def apply_freezing(clip: nn.Module, cfg: ModelConfig) -> None:
    """The reference's scheme (module docstring): text tower frozen; vision blocks but the last
    ``trainable_blocks`` frozen; post-LayerNorm / projection frozen (unused by the embedding)."""
    for p in clip.parameters():
        p.requires_grad_(False)
    v = clip.visual
    if not cfg.freeze_backbone:
        for p in v.parameters():
            p.requires_grad_(True)
    elif is_vit(clip):
        for p in v.parameters():
            p.requires_grad_(True)
        blocks = list(v.transformer.resblocks)
        for b in blocks[:max(0, len(blocks) - cfg.trainable_blocks)]:
            for p in b.parameters():
                p.requires_grad_(False)
    else:  # CNN towers: the last stage + attention pool
        from pretrainlab.core.openclip import freeze_all_but_last

        freeze_all_but_last(v, cfg.trainable_blocks)
    if is_vit(clip):
        for name in ("ln_post", "proj"):
            m = getattr(v, name, None)
            if isinstance(m, (nn.Module, nn.Parameter)):
                m.requires_grad_(False)
