"""open_clip helpers shared by the domains that use CLIP towers (``clip``, ``geo``).

- Tiny registered model configs (timm-style ``test-*`` variants) for tests and the tiny profile;
  standard configs (RN50, ViT-S-32, ViT-B-32, ...) come from open_clip itself.
- ``create_clip(name, pretrained)``: an open_clip model plus its tokenizer, randomly initialised, from
  a local weights file (``load_clip_weights``), or from an open_clip tag / ``hf-hub:`` repo when the
  machine is online (offline: a clear error naming the setting).
- Weights are saved as plain open_clip ``state_dict`` keys, so they load back into plain
  ``open_clip.create_model(name)`` with ``model.load_state_dict(safetensors.torch.load_file(f))``.
"""

from __future__ import annotations

import contextlib
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


def register_configs(configs: dict[str, dict[str, Any]]) -> None:
    """Add model configs (open_clip's JSON schema) to open_clip's registry through its public
    ``open_clip.add_model_config``: each is written once as ``<name>.json`` into a folder of the data
    cache (content-addressed, so concurrent processes agree) and that folder is registered (idempotent)."""
    import hashlib
    import json

    import open_clip

    from pretrainlab.core.data import cache_root
    from pretrainlab.core.io import atomic_write_text

    missing = {k: v for k, v in configs.items() if k not in open_clip.list_models()}
    if not missing:
        return
    blob = json.dumps(missing, sort_keys=True)
    folder = cache_root() / "openclip-configs" / hashlib.sha256(blob.encode()).hexdigest()[:16]
    for name, cfg in missing.items():
        f = folder / f"{name}.json"
        if not f.exists():
            atomic_write_text(f, json.dumps(cfg, indent=2))
    open_clip.add_model_config(folder)


def register_tiny_configs() -> None:
    """Add the ``test-*`` configs to open_clip's registry (idempotent)."""
    register_configs(TINY_CONFIGS)


def create_clip(name: str, pretrained: str | Path | None = None, setting: str = "model.pretrained",
                **kwargs: Any) -> tuple[nn.Module, Any]:
    """``(model, tokenizer)`` for an open_clip config name.

    ``pretrained``: None / "" = random initialisation (no download); a local weights file (an
    open_clip ``state_dict`` as ``.safetensors``, e.g. the hub's ``open_clip_model.safetensors``, or a
    ``.pt`` / ``.bin`` read without unpickling code) loaded strictly; otherwise an open_clip pretrained
    tag (``openai``, ``laion2b_s34b_b79k``) or ``hf-hub:<repo>``, downloaded through open_clip when the
    machine is online. A download that cannot happen is a :class:`~pretrainlab.core.config.ConfigError`
    naming ``setting``.
    """
    import open_clip

    from pretrainlab.core.config import ConfigError

    register_tiny_configs()
    spec = str(pretrained) if pretrained not in (None, "") else ""
    if not spec.startswith("hf-hub:") and name not in open_clip.list_models():
        import difflib

        near = difflib.get_close_matches(name, open_clip.list_models(), n=3)
        raise ConfigError(f"model.name: unknown open_clip model '{name}'" + (f"; did you mean {near}?" if near else ""))
    local = Path(spec).expanduser() if spec else None
    if local is not None and (local.exists() or local.suffix in (".safetensors", ".pt", ".pth", ".bin")):
        with _quiet_random_init():
            model = open_clip.create_model(name, pretrained=None, **kwargs)
        load_clip_weights(model, local)
    elif spec:
        try:
            if spec.startswith("hf-hub:"):
                model = open_clip.create_model(spec, **kwargs)
                name = spec
            else:
                model = open_clip.create_model(name, pretrained=spec, **kwargs)
        except Exception as e:  # noqa: BLE001 - network / hub / unknown-tag errors come from several libraries
            tags = [t for m, t in open_clip.list_pretrained() if m == name]
            first = str(e).splitlines()[0][:160] if str(e) else ""
            raise ConfigError(
                f"{setting}={spec!r}: could not load open_clip weights for '{name}' ({type(e).__name__}: {first}). "
                "Downloads need a network connection; offline, pass a local .safetensors file instead"
                + (f"; known tags for {name}: {', '.join(tags)}" if tags and spec not in tags else "")) from None
    else:
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
    """Local open_clip weights into ``model``: a ``.safetensors`` state dict, or a torch file read with
    :func:`~pretrainlab.core.checkpoint.load_torch_file` (no pickled code runs; a ``{"state_dict": ...}``
    wrapper and DDP's ``module.`` prefix are accepted, as open_clip's own ``load_checkpoint`` does)."""
    from pretrainlab.core.checkpoint import CheckpointError, load_torch_file, load_weights

    path = Path(path)
    if path.suffix == ".safetensors" or not path.exists():
        load_weights(model, path, strict=strict)
        return
    sd = load_torch_file(path, what="open_clip weights file")
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: not an open_clip state_dict (expected a mapping of names to tensors)")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    try:
        model.load_state_dict(sd, strict=strict)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit {type(model).__name__}: {e}") from None


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
