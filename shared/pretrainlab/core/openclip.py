"""open_clip helpers shared by the domains that use CLIP towers (``clip``, ``geo``).

- Tiny registered model configs (timm-style ``test-*`` variants) for tests and the tiny profile;
  standard configs (RN50, ViT-S-32, ViT-B-32, ...) come from open_clip itself.
- ``create_clip(name)``: ``open_clip.create_model(name, pretrained=None)`` plus its tokenizer;
  never downloads weights. A user's local weights file is loaded with ``load_clip_weights``.
- Weights are saved as plain open_clip ``state_dict`` keys, so they load back into plain
  ``open_clip.create_model(name)`` with ``model.load_state_dict(safetensors.torch.load_file(f))``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

# Tiny configs in open_clip's JSON schema. ``embed_dim`` is the joint space.
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "test-vit-tiny": {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8, "mlp_ratio": 2.0},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    },
    "test-vit-small": {
        "embed_dim": 128,
        "vision_cfg": {"image_size": 64, "layers": 4, "width": 128, "head_width": 32, "patch_size": 8, "mlp_ratio": 2.0},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3},
    },
    "test-rn-tiny": {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 16, "head_width": 16},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    },
}


def register_tiny_configs() -> None:
    """Add the ``test-*`` configs to open_clip's registry (idempotent)."""
    from open_clip import factory

    for name, cfg in TINY_CONFIGS.items():
        factory._MODEL_CONFIGS.setdefault(name, copy.deepcopy(cfg))


def model_names() -> list[str]:
    import open_clip

    register_tiny_configs()
    return list(open_clip.list_models())


def create_clip(name: str, **kwargs: Any) -> tuple[nn.Module, Any]:
    """``(model, tokenizer)`` for an open_clip config name, randomly initialised (no download)."""
    import open_clip

    register_tiny_configs()
    if name not in open_clip.list_models():
        import difflib

        near = difflib.get_close_matches(name, open_clip.list_models(), n=3)
        raise ValueError(f"unknown open_clip model '{name}'" + (f"; did you mean {near}?" if near else ""))
    with _quiet_random_init():
        model = open_clip.create_model(name, pretrained=None, **kwargs)
    tokenizer = open_clip.get_tokenizer(name)
    return model, tokenizer


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No pretrained weights loaded")


@contextlib.contextmanager
def _quiet_random_init() -> Iterator[None]:
    """open_clip warns that no weights were loaded: here random initialisation is the intent."""
    root = logging.getLogger()
    f = _DropRandomInitWarning()
    root.addFilter(f)
    try:
        yield
    finally:
        root.removeFilter(f)


def image_size(model: nn.Module) -> int:
    size = getattr(model.visual, "image_size", 224)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def load_clip_weights(model: nn.Module, path: str | Path, strict: bool = True) -> None:
    """Local open_clip weights: a ``.safetensors`` file (never a pickle from an unknown source)."""
    from pretrainlab.core.checkpoint import load_weights

    load_weights(model, Path(path), strict=strict)


def freeze_all_but_last(visual: nn.Module, n_trainable_blocks: int) -> None:
    """Freeze a vision tower except its last ``n_trainable_blocks`` transformer blocks + final norm / proj."""
    for p in visual.parameters():
        p.requires_grad_(False)
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if blocks is not None and n_trainable_blocks > 0:
        for b in list(blocks)[-n_trainable_blocks:]:
            for p in b.parameters():
                p.requires_grad_(True)
    for name in ("ln_post", "proj", "attnpool", "head"):
        m = getattr(visual, name, None)
        if isinstance(m, nn.Module):
            for p in m.parameters():
                p.requires_grad_(True)
        elif isinstance(m, nn.Parameter):
            m.requires_grad_(True)


def encode_image_tokens(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Pooled image embedding ``(B, embed_dim)`` (unnormalised)."""
    return model.encode_image(images)
