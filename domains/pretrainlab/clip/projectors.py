"""Projectors and backbone features of the CLIP-rocket family.

* :func:`mlp_projector`: the 3-layer MLP of CLIP-rocket / SLIP (``Linear-BN-ReLU`` x2 + ``Linear``,
  hidden 4096; reference code ``models.CLIP._build_mlp``); BarLIP's variant ends with a BN.
* :func:`image_features` / :func:`text_features`: the pooled backbone features *before* open_clip's
  linear projection (``visual.proj`` / ``text_projection``), which the paper feeds both to CLIP's
  linear projector (global pair) and to the MLP projector (augmented pairs).

Deviation: for open_clip ResNet towers the attention pool contains the projection, so the
"features" are the projected embedding (the MLP then sits on top of it).
"""

from __future__ import annotations

import torch
from torch import nn


def mlp_projector(in_dim: int, hidden: int, out_dim: int, layers: int = 3, last_bn: bool = False) -> nn.Sequential:
    """``(N, in_dim) -> (N, out_dim)``: ``layers - 1`` blocks of Linear-BN-ReLU, then Linear (+ BN)."""
    mods: list[nn.Module] = []
    d = in_dim
    for _ in range(layers - 1):
        mods += [nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        d = hidden
    mods.append(nn.Linear(d, out_dim))
    if last_bn:
        mods.append(nn.BatchNorm1d(out_dim))
    return nn.Sequential(*mods)


def image_width(model: nn.Module) -> int:
    """Width of :func:`image_features`."""
    v = model.visual
    proj = getattr(v, "proj", None)
    if isinstance(proj, torch.Tensor):
        return int(proj.shape[0])
    return int(model.text_projection.shape[1] if isinstance(model.text_projection, torch.Tensor)
               else model.text_projection.out_features)


def text_width(model: nn.Module) -> int:
    tp = model.text_projection
    return int(tp.shape[0] if isinstance(tp, torch.Tensor) else tp.in_features)


def image_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W) -> (B, width)`` pooled vision features before ``visual.proj`` (ViT)."""
    v = model.visual
    proj = getattr(v, "proj", None)
    if not isinstance(proj, torch.Tensor):
        return model.encode_image(images)
    v.proj = None
    try:
        return v(images)
    finally:
        v.proj = proj


def text_features(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``(B, L) long -> (B, width)`` pooled text features before ``text_projection``."""
    tp = model.text_projection
    model.text_projection = None
    try:
        return model.encode_text(tokens)
    finally:
        model.text_projection = tp


def project_image(model: nn.Module, feats: torch.Tensor) -> torch.Tensor:
    """CLIP's linear image projector applied to :func:`image_features`."""
    proj = getattr(model.visual, "proj", None)
    return feats @ proj if isinstance(proj, torch.Tensor) else feats


def project_text(model: nn.Module, feats: torch.Tensor) -> torch.Tensor:
    tp = model.text_projection
    return tp(feats) if isinstance(tp, nn.Linear) else feats @ tp
