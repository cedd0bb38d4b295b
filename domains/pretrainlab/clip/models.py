"""open_clip model configs of the CLIP domain.

* ``RN50-rocket`` / ``RN50-rocket-t6``: the network the reference trains in ``repro_exps.txt``
  (``CL2L_R50``, ref ``models.CL2L_R50``): timm ``resnet50`` with global average pooling (2048-d
  features; SyncBatchNorm under DDP), a bias-free linear image projector, a 256-d joint space
  (ref ``--embed-dim 256``), a text transformer of width 512, 8 heads, context 77, QuickGELU
  (ref ``models.ResidualAttentionBlock``), 12 layers (CC12M / YFCC15M) or 6 (``--transformer-layers 6``
  on CC3M). open_clip builds the vision tower through its timm adapter (``TimmModel``: ``trunk`` +
  ``head``), so the features before the linear projector are ``visual.trunk(x)`` as in the reference.
* ``clip-rn-nano``: the tiny profile's model, a ResNet like the reference's (open_clip's
  ``ModifiedResNet``: one bottleneck block per stage, width 16, attention pooling, on 32 px images)
  with ``clip-nano``'s text tower and 32-d joint space. Chosen because a tower has to learn the
  generated task for the table to mean anything: on a pilot (CLIP objective, seed 100, not a table seed,
  500 tiny steps) ``clip-nano`` scored zero-shot top-1 0.050 (chance 0.056) and ``clip-rn-nano`` 0.171;
  it costs ~1.3x the CPU time. Its differences from the reference's ``CL2L_R50`` (timm ResNet-50, average
  pooling, a linear projector) are listed in the clip README's deviations.
* ``clip-nano``: an even smaller sibling of the core's ``test-vit-tiny`` (smoke profile, tests,
  benchmarks): ViT 2 x 32 wide on 32 px images (patch 4), text transformer 2 x 32 wide with a 16-token
  context, a 32-d joint space.

All are registered with open_clip (``open_clip.add_model_config``, through
:func:`pretrainlab.core.openclip.register_configs`), so exported weights load into plain
``open_clip.create_model(name)`` after :func:`register_domain_configs`. Standard configs (RN50,
ViT-B-16, ViT-B-32, ...) come from open_clip itself.
"""

from __future__ import annotations

from typing import Any


def _rocket_r50(text_layers: int) -> dict[str, Any]:
    return {
        "embed_dim": 256,  # ref main.py --embed-dim 256 (CL2L_R50)
        "quick_gelu": True,  # ref models.QuickGELU in the text transformer
        "vision_cfg": {"image_size": 224, "timm_model_name": "resnet50", "timm_model_pretrained": False,
                       "timm_pool": "avg", "timm_proj": "linear"},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": text_layers},
    }


DOMAIN_CONFIGS: dict[str, dict[str, Any]] = {
    "RN50-rocket": _rocket_r50(12),  # CC12M / YFCC15M runs of repro_exps.txt
    "RN50-rocket-t6": _rocket_r50(6),  # CC3M runs: --transformer-layers 6
    "clip-rn-nano": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    },
    "clip-nano": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 4, "mlp_ratio": 2.0},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    },
}


def register_domain_configs() -> None:
    """Add the domain's configs (and the core's ``test-*`` ones) to open_clip's registry (idempotent)."""
    from pretrainlab.core.openclip import register_configs, register_tiny_configs

    register_tiny_configs()
    register_configs(DOMAIN_CONFIGS)
