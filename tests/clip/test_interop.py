"""Bring your own open_clip weights: ``embed`` / ``zeroshot`` / ``eval`` with ``--weights --model`` equal
open_clip's own ``encode_image(preprocess(img), normalize=True)`` / ``encode_text`` on real photos of
several aspect ratios; ``model.pretrained`` tags fail clearly offline; the run's export file is a
checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pretrainlab.core.cli import main


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], list[str]]:
    """Real photographs (scikit-image's bundled samples) of several aspect ratios, one grayscale,
    as JPEG files listed in an open_clip CSV."""
    import skimage.data as sd

    root = tmp_path_factory.mktemp("photos")
    arrays = {"chelsea": sd.chelsea(), "coffee": sd.coffee(), "rocket": sd.rocket(),
              "coffee_portrait": np.ascontiguousarray(np.rot90(sd.coffee())), "camera": sd.camera()}
    caps = {"chelsea": "a cat lying down", "coffee": "a cup of coffee on a saucer", "rocket": "a rocket on its launch pad",
            "coffee_portrait": "coffee seen sideways", "camera": "a photographer with a camera, black and white"}
    paths = []
    for name, arr in arrays.items():
        p = root / f"{name}.jpg"
        Image.fromarray(arr).save(p, quality=90)
        paths.append(p)
    csv = root / "photos.csv"
    csv.write_text("filepath\ttitle\n" + "".join(f"{p.name}\t{caps[p.stem]}\n" for p in paths))
    return csv, paths, [caps[p.stem] for p in paths]


@pytest.fixture(scope="module")
def vitb32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised open_clip ViT-B-32 saved in the hub's safetensors layout (a state_dict)."""
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32")
    path = tmp_path_factory.mktemp("weights") / "open_clip_model.safetensors"
    save_file(model.state_dict(), str(path))
    return path


def test_embed_with_open_clip_weights_equals_open_clip_on_real_photos(photos, vitb32: Path, tmp_path: Path) -> None:
    import open_clip
    from safetensors.torch import load_file

    csv, paths, caps = photos
    out = tmp_path / "emb.safetensors"
    assert main(["clip", "embed", "--weights", str(vitb32), "--model", "ViT-B-32", "--input", str(csv),
                 "--out", str(out), "--batch-size", "2"]) == 0
    got = load_file(str(out))
    assert set(got) == {"image", "text"}  # no MLP head for plain open_clip weights
    # open_clip itself: its model, its validation transform, its tokenizer
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32")
    model.load_state_dict(load_file(str(vitb32)))
    model.eval()
    with torch.no_grad():
        ref_img = model.encode_image(torch.stack([preprocess(Image.open(p)) for p in paths]), normalize=True)
        ref_txt = model.encode_text(open_clip.get_tokenizer("ViT-B-32")(caps), normalize=True)
    assert got["image"].shape == ref_img.shape == (5, 512)
    assert (got["image"] - ref_img).abs().max() < 1e-4
    assert (got["text"] - ref_txt).abs().max() < 1e-4


def test_zeroshot_and_eval_with_weights_on_an_imagenet_style_folder(smoke_run: Path, tmp_path: Path, capsys) -> None:
    """``--weights`` with a run's export (clip-nano) on ``val/<class>/*.JPEG``; also ``--ckpt`` of the
    export file, which reads the model name from the file."""
    weights = smoke_run / "open_clip_model.safetensors"
    colours = {"red_thing": (220, 20, 20), "blue_thing": (20, 20, 220)}
    for c, col in colours.items():
        d = tmp_path / "imagenet" / "val" / c
        d.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40 + 10 * i, 30), col).save(d / f"{i}.JPEG")
    out = tmp_path / "m.json"
    assert main(["clip", "eval", "--weights", str(weights), "--model", "clip-nano", "--data", str(tmp_path / "imagenet"),
                 "--out", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["zs_images"] == 6 and m["zs_classes"] == 2 and 0 <= m["zs_top1_linear"] <= 1 and "zs_top1_mlp" not in m
    img = tmp_path / "imagenet" / "val" / "red_thing" / "0.JPEG"
    capsys.readouterr()
    assert main(["clip", "zeroshot", "--ckpt", str(weights), "--image", str(img), "--labels", "red thing,blue thing"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(lines) == 2 and abs(sum(float(ln.split()[0]) for ln in lines) - 1) < 1e-3


def test_pretrained_tag_offline_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from pretrainlab.clip.api import load
    from pretrainlab.clip.task import CLIPRocketTask
    from pretrainlab.core.config import ConfigError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"model\.pretrained='openai'.*offline, pass a local \.safetensors"):
        CLIPRocketTask(load("clip", "smoke", ["model.name=RN50", "model.pretrained=openai"]))


def test_weights_file_without_a_model_name_says_what_to_pass(vitb32: Path, photos, tmp_path: Path, capsys) -> None:
    csv, paths, _ = photos
    assert main(["clip", "zeroshot", "--ckpt", str(vitb32), "--image", str(paths[0]), "--labels", "a,b"]) == 2
    err = capsys.readouterr().err
    assert "--weights" in err and "--model" in err and "model.safetensors: file not found" not in err
    assert main(["clip", "embed", "--weights", str(vitb32), "--input", str(csv), "--out", str(tmp_path / "e.safetensors")]) == 2
    assert "--model" in capsys.readouterr().err and not (tmp_path / "e.safetensors").exists()
