"""The Hugging Face CLIPModel -> open_clip converter, on a randomly initialised transformers
CLIPModel saved with save_pretrained: same image / text features, and the same PIGEON embedding
(HF ``vision_model(...).last_hidden_state.mean(1)``, as the reference's SuperGuessr computes it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = transformers.CLIPConfig(
        text_config={"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "max_position_embeddings": 16, "vocab_size": 49408},
        vision_config={"hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "image_size": 32, "patch_size": 8},
        projection_dim=24)
    torch.manual_seed(0)
    model = transformers.CLIPModel(cfg).eval()
    with torch.no_grad():  # non-trivial norms / biases so a swapped tensor shows
        for n, p in model.named_parameters():
            if "norm" in n or n.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    out = tmp_path_factory.mktemp("hf") / "clip"
    model.save_pretrained(out, safe_serialization=True)
    return out


def test_converted_model_matches_hf(hf_folder: Path, tmp_path: Path) -> None:
    from pretrainlab.geo.hf_clip import convert_hf_clip
    from pretrainlab.geo.model import ModelConfig, build_clip, image_embedding, normalize_images

    weights, conf = convert_hf_clip(hf_folder, tmp_path / "street.safetensors")
    spec = json.loads(conf.read_text())
    assert spec["quick_gelu"] and spec["vision_cfg"]["mlp_ratio"] == 2.5 and spec["embed_dim"] == 24
    hf = transformers.CLIPModel.from_pretrained(hf_folder).eval()
    oc, _ = build_clip(ModelConfig(clip_model=str(conf), image_size=32, pretrained=str(weights)))
    oc.eval()
    g = torch.Generator().manual_seed(1)
    img = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=g)
    px = normalize_images(img)
    ids = torch.randint(1, 49000, (2, 16), generator=g)
    ids[:, -1] = 49407  # end-of-text token: both pool there
    with torch.no_grad():
        i_hf = hf.get_image_features(pixel_values=px)
        i_hf = getattr(i_hf, "pooler_output", i_hf)  # transformers 5 returns an output object
        assert torch.allclose(oc.encode_image(px), i_hf, atol=1e-4)
        t_hf = hf.get_text_features(input_ids=ids)
        t_hf = getattr(t_hf, "pooler_output", t_hf)
        assert torch.allclose(oc.encode_text(ids), t_hf, atol=1e-4)
        ref = hf.vision_model(pixel_values=px).last_hidden_state.mean(dim=1)  # super_guessr.py
        assert torch.allclose(image_embedding(oc, img), ref, atol=1e-4)
        assert torch.allclose(oc.logit_scale, hf.logit_scale)


def test_converter_refuses_bad_folders(hf_folder: Path, tmp_path: Path) -> None:
    import shutil

    from pretrainlab.core.checkpoint import CheckpointError
    from pretrainlab.core.data import DataError
    from pretrainlab.geo.hf_clip import convert_hf_clip

    with pytest.raises(DataError, match="not a folder"):
        convert_hf_clip(tmp_path / "nope", tmp_path / "o.safetensors")
    bad = tmp_path / "bad"
    shutil.copytree(hf_folder, bad)
    with pytest.raises(DataError, match=r"must end in \.safetensors"):
        convert_hf_clip(bad, tmp_path / "o.bin")
    (bad / "config.json").write_text("{nope")
    with pytest.raises(DataError, match="config.json: not valid JSON"):
        convert_hf_clip(bad, tmp_path / "o.safetensors")
    (bad / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(DataError, match="not a CLIPModel config"):
        convert_hf_clip(bad, tmp_path / "o.safetensors")
    shutil.copy(hf_folder / "config.json", bad / "config.json")
    (bad / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        convert_hf_clip(bad, tmp_path / "o.safetensors")
    (bad / "model.safetensors").unlink()
    with pytest.raises(DataError, match="no model.safetensors"):
        convert_hf_clip(bad, tmp_path / "o.safetensors")
    assert not list(tmp_path.glob("o.*"))
