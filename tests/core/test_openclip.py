"""pretrainlab.core.openclip: tiny configs, no download, no noise, freezing."""

from __future__ import annotations

import logging

import pytest
import torch

from pretrainlab.core.openclip import create_clip, freeze_all_but_last, image_size


def test_create_tiny_clip_quietly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        model, tok = create_clip("test-vit-tiny")
    assert not [r for r in caplog.records if "pretrained" in r.getMessage()]
    assert image_size(model) == 32
    with torch.no_grad():
        img = model.encode_image(torch.randn(2, 3, 32, 32))
        txt = model.encode_text(tok(["a photo", "a map"]))
    assert img.shape == txt.shape == (2, 64)


def test_unknown_model_suggests_near_names() -> None:
    with pytest.raises(ValueError, match="did you mean"):
        create_clip("test-vit-tinyy")


def test_freeze_all_but_last_block() -> None:
    model, _ = create_clip("test-vit-tiny")
    freeze_all_but_last(model.visual, 1)
    blocks = list(model.visual.transformer.resblocks)
    assert all(not p.requires_grad for p in blocks[0].parameters())
    assert all(p.requires_grad for p in blocks[-1].parameters())
    assert model.visual.proj.requires_grad and all(p.requires_grad for p in model.visual.ln_post.parameters())
