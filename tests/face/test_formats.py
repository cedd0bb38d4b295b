"""Readers on generated data, and one test per class of bad input."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pretrainlab.core.data import DataError
from pretrainlab.face.formats import IdentityFolder, load_image, read_pairs, read_tinyface, read_verification


def test_readers_on_generated_data(smoke_data: Path) -> None:
    f = IdentityFolder.read(smoke_data / "train_hr")
    assert len(f.classes) == 12 and len(f.paths) == 48 and max(f.labels) == 11
    pairs = read_pairs(smoke_data / "verify" / "pairs.txt")
    assert pairs.folds == 2 and len(pairs.same) == 24 and sum(pairs.same) == 12
    proto = read_tinyface(smoke_data / "tinyface")
    assert len(proto.probe) == 12 and len(proto.gallery) == 6 + 6
    assert proto.gallery_labels.count(-100) == 6  # ref: tinyface_helper.py distractor label
    img, notes = load_image(f.paths[0], 40)
    assert img.shape == (3, 40, 40) and img.dtype == torch.float32 and notes == []
    binp = read_verification(smoke_data / "verify.bin")  # the same pairs as an insightface .bin
    assert binp.same == pairs.same and binp.folds == 10
    assert np.array_equal(binp.left[3].decode(), np.asarray(Image.open(pairs.left[3]).convert("RGB")))


def test_tinyface_without_lists_uses_file_names(smoke_data: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(smoke_data / "tinyface", tmp_path / "tf")
    for f in ("probe.txt", "gallery_match.txt", "gallery_distractor.txt"):
        (tmp_path / "tf" / f).unlink()
    proto = read_tinyface(tmp_path / "tf")
    assert sorted(set(proto.probe_labels)) == list(range(1, 7))


def test_non_image_file_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "face.png"
    bad.write_text("this is not an image")
    with pytest.raises(DataError, match="face.png: not a readable image"):
        load_image(bad, 32)


@pytest.mark.parametrize("mode,arr,note", [
    ("L", np.full((40, 40), 128, np.uint8), "grayscale"),
    ("RGBA", np.full((40, 40, 4), 200, np.uint8), "alpha"),
    ("I;16", np.full((40, 40), 40000, np.uint16), "8 bits"),
])
def test_grayscale_alpha_16bit_are_converted(tmp_path: Path, mode: str, arr: np.ndarray, note: str) -> None:
    p = tmp_path / "x.png"
    Image.fromarray(arr, mode=mode).save(p)
    img, notes = load_image(p, 32)
    assert img.shape == (3, 32, 32)
    assert any(note in n for n in notes)
    if mode == "I;16":
        assert abs(float(img[0, 0, 0]) - (round(40000 / 65535 * 255) / 255 - 0.5) / 0.5) <= 2 / 255


def test_tiny_and_huge_images(tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (4, 4)).save(tiny)
    with pytest.raises(DataError, match="tiny.png: image is 4x4"):
        load_image(tiny, 32)
    small = tmp_path / "small.png"
    Image.new("RGB", (12, 12)).save(small)
    assert any("up-sampled" in n for n in load_image(small, 112)[1])
    big = tmp_path / "big.png"
    Image.new("RGB", (600, 600)).save(big)
    img, notes = load_image(big, 32)
    assert img.shape == (3, 32, 32) and any("huge" in n for n in notes)


def test_identity_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        IdentityFolder.read(tmp_path / "missing")
    Image.new("RGB", (20, 20)).save(tmp_path / "loose.png")
    with pytest.raises(DataError, match="no identity folders.*loose"):
        IdentityFolder.read(tmp_path)


def test_pairs_pointing_at_missing_images(smoke_data: Path, tmp_path: Path) -> None:
    pf = tmp_path / "pairs.txt"
    pf.write_text("2\t1\nNobody\t1\t2\n")
    with pytest.raises(DataError, match=r"pairs.txt: line 2: image .*Nobody_0001"):
        read_pairs(pf, smoke_data / "verify")
    pf.write_text("Person_0000\t1\n")
    with pytest.raises(DataError, match="line 1: expected"):
        read_pairs(pf, smoke_data / "verify")


def test_gallery_zip_without_identity_folders(smoke_data: Path, tmp_path: Path) -> None:
    from pretrainlab.face.app_logic import gallery_root

    z = tmp_path / "flat.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(smoke_data / "verify" / "Person_0000" / "Person_0000_0001.png", "a.png")
    with pytest.raises(DataError, match="flat.zip: the zip holds no identity folders"):
        gallery_root(z)
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape/x.png", b"123")
    with pytest.raises(DataError, match="unsafe path"):
        gallery_root(evil)
    notzip = tmp_path / "g.zip"
    notzip.write_text("nope")
    with pytest.raises(DataError, match="not a zip"):
        gallery_root(notzip)


def test_generator_is_atomic_and_deterministic(tmp_path: Path) -> None:
    from pretrainlab.core.data import generate_dataset
    from pretrainlab.face.synthetic import generate, identity_code, nuisance, render_face

    def boom(out: Path, profile: str, seed: int) -> None:
        generate(out, "smoke", seed)
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        generate_dataset(boom, tmp_path / "d", "smoke", 0)
    assert not (tmp_path / "d").exists() and not list(tmp_path.glob(".d*"))
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    a = np.asarray(render_face(identity_code(r1), nuisance(r1), r1))
    b = np.asarray(render_face(identity_code(r2), nuisance(r2), r2))
    assert a.shape == (112, 112, 3) and (a == b).all()
