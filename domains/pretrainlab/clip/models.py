"""open_clip model configs of the CLIP domain.

``clip-nano`` is an even smaller sibling of the core's ``test-vit-tiny`` (``pretrainlab.core.openclip``)
that lets the tiny profile train 18 models (6 rows x 3 seeds) in minutes on a 2-core CPU: ViT
2 x 32 wide on 32 px images (patch 8), text transformer 2 x 32 wide with a 16-token context, a
32-d joint space. Registered with open_clip (``open_clip.add_model_config``) like the core's ``test-*`` configs, so the
exported weights load into plain ``open_clip.create_model("clip-nano")`` after
:func:`register_domain_configs`. Standard configs (RN50, ViT-S-32, ViT-B-16...) come from open_clip.
"""

from __future__ import annotations

from typing import Any

DOMAIN_CONFIGS: dict[str, dict[str, Any]] = {
    "clip-nano": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8, "mlp_ratio": 2.0},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    },
}


def register_domain_configs() -> None:
    """Add the domain's configs (and the core's ``test-*`` ones) to open_clip's registry (idempotent)."""
    from pretrainlab.core.openclip import register_configs, register_tiny_configs

    register_tiny_configs()
    register_configs(DOMAIN_CONFIGS)
