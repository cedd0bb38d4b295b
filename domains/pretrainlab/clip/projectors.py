"""Projectors and backbone features of the CLIP-rocket family.

* :func:`mlp_projector`: the 3-layer MLP of CLIP-rocket / SLIP (``Linear-BN-ReLU`` x2 + ``Linear``,
  hidden 4096; ref ``models.CLIP._build_mlp``); BarLIP's variant ends with a BN (ref ``models.BARLIP``).
* :func:`siamlip_projector` / :func:`siamlip_predictor`: ref ``models.SIAMLIP``.
* :func:`image_features` / :func:`text_features`: the pooled backbone features *before* the linear
  projector (``feats`` in the reference), which CLIP-rocket feeds both to the linear projector (global
  pair) and to the MLP projector (augmented pairs), together with open_clip's own projected
  embedding. Read through open_clip's public outputs, never by editing the model: a ViT tower's
  ``forward_intermediates`` (last block, final norm applied: the class token / token mean before
  ``proj``), a timm tower's ``trunk`` / ``head``, the text model's ``forward_intermediates`` pooled with
  ``open_clip.transformer.text_global_pool``.

Deviation: for towers whose pooling contains the projection (open_clip's ``ModifiedResNet`` attention
pool, attentional-pool ViTs) or text towers outside ``CLIP`` (``CustomTextCLIP``), the "features" are
the projected embedding and the MLP sits on top of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
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


def siamlip_projector(in_dim: int, hidden: int, out_dim: int, last_bn: bool = True) -> nn.Sequential:
    """ref ``models.SIAMLIP``: Linear(no bias)-BN-ReLU-Linear(no bias) [+ BN(affine=False)]."""
    mods: list[nn.Module] = [nn.Linear(in_dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                             nn.Linear(hidden, out_dim, bias=False)]
    if last_bn:
        mods.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*mods)


def siamlip_predictor(dim: int, hidden: int) -> nn.Sequential:
    """ref ``models.SIAMLIP``: Linear(no bias)-BN-ReLU-Linear."""
    return nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, dim))


# ------------------------------------------------------------------ backbone features
def _vit_pool_readable(v: nn.Module) -> bool:
    from open_clip.transformer import VisionTransformer

    return (isinstance(v, VisionTransformer) and getattr(v, "attn_pool", None) is None
            and getattr(v, "pool_type", "") in ("tok", "avg") and not getattr(v, "final_ln_after_pool", False))


def _is_timm(v: nn.Module) -> bool:
    return hasattr(v, "trunk") and hasattr(v, "head") and isinstance(v.head, nn.Module)


def has_image_features(model: nn.Module) -> bool:
    """True when the image features before the linear projector are readable (else feats = projection)."""
    return _vit_pool_readable(model.visual) or _is_timm(model.visual)


def has_text_features(model: nn.Module) -> bool:
    return hasattr(model, "transformer") and hasattr(model, "forward_intermediates") and hasattr(model, "ln_final")


def image_features(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, 3, H, W)`` -> ``(feats (B, Wi), z (B, D))``: pooled features before the linear projector and
    open_clip's projected image embedding (not normalised)."""
    v = model.visual
    if _vit_pool_readable(v):
        out = v.forward_intermediates(images, indices=1, normalize_intermediates=True, output_fmt="NLC",
                                      output_extra_tokens=True)
        if v.pool_type == "tok":
            feats = out["image_intermediates_prefix"][-1][:, 0]
        else:
            feats = out["image_intermediates"][-1].mean(dim=1)
        return feats, out["image_features"]
    if _is_timm(v):
        feats = v.trunk(images)
        return feats, v.head(feats)
    z = model.encode_image(images)
    return z, z


def text_features(model: nn.Module, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, L)`` -> ``(feats (B, Wt), z (B, D))``: the pooled (EOT) text features before
    ``text_projection`` and open_clip's projected text embedding (not normalised)."""
    if has_text_features(model):
        from open_clip.transformer import text_global_pool

        out = model.forward_intermediates(text=tokens, text_indices=1, normalize_intermediates=True, normalize=False)
        feats = text_global_pool(out["text_intermediates"][-1], tokens, model.text_pool_type,
                                 eos_token_id=getattr(model, "text_eos_id", None))
        return feats, out["text_features"]
    z = model.encode_text(tokens)
    return z, z


def image_width(model: nn.Module, size: int) -> int:
    with torch.no_grad():
        was = model.training
        model.eval()
        f, _ = image_features(model, torch.zeros(1, 3, size, size))
        model.train(was)
    return int(f.shape[-1])


def text_width(model: nn.Module, context: int) -> int:
    with torch.no_grad():
        f, _ = text_features(model, torch.zeros(1, context, dtype=torch.long))
    return int(f.shape[-1])


def embed_dim(model: nn.Module, context: int) -> int:
    with torch.no_grad():
        _, z = text_features(model, torch.zeros(1, context, dtype=torch.long))
    return int(z.shape[-1])


# ------------------------------------------------------------------ text dropout on augmented captions
class TextDropout:
    """ref ``models.ResidualAttentionBlock`` in mode ``'local'``: ``nn.Dropout(p, inplace=True)`` on the
    residual stream entering every text block, only for the augmented captions. Installed as forward
    pre-hooks on the text transformer's blocks; rows ``[:keep]`` of a batch (the global captions) are
    left untouched, so global and augmented captions can share one forward."""

    def __init__(self, model: nn.Module, p: float) -> None:
        self.p = p
        self.keep: int | None = None  # rows not dropped out; None: hooks inactive
        self.batch_first = bool(getattr(model.transformer, "batch_first", True)) if hasattr(model, "transformer") else True
        self.handles = []
        if p > 0 and hasattr(model, "transformer"):
            for blk in model.transformer.resblocks:
                self.handles.append(blk.register_forward_pre_hook(self._hook))

    def _hook(self, module: nn.Module, args: tuple) -> tuple | None:
        if self.keep is None or not module.training or not args:
            return None
        x = args[0]
        if self.batch_first:
            x = torch.cat([x[: self.keep], F.dropout(x[self.keep:], self.p, True)], dim=0)
        else:
            x = torch.cat([x[:, : self.keep], F.dropout(x[:, self.keep:], self.p, True)], dim=1)
        return (x, *args[1:])

    @contextmanager
    def active(self, keep: int) -> Iterator[None]:
        """Drop out every row from ``keep`` on while the block is open."""
        self.keep = keep
        try:
            yield
        finally:
            self.keep = None
