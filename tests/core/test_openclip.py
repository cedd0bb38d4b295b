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


def test_pretrained_local_file_and_offline_tag(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import safetensors.torch

    from pretrainlab.core.config import ConfigError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, _ = create_clip("test-vit-tiny")
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "w.safetensors")
    torch.save(model.state_dict(), tmp_path / "w.pt")
    for f in ("w.safetensors", "w.pt"):
        again, _ = create_clip("test-vit-tiny", pretrained=tmp_path / f)
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    with pytest.raises(ConfigError, match=r"geo\.clip\.pretrained='laion2b_s34b_b79k': could not load .*offline"):
        create_clip("test-vit-tiny", pretrained="laion2b_s34b_b79k", setting="geo.clip.pretrained")
