"""Readers on generated data, the generator's formats, and one test per class of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pretrainlab.core.data import DataError
from pretrainlab.isp.formats import ISPPairs, UnpairedISP, load_raw, read_bayer_png, read_camera_raw


def test_generated_layout_and_pairs(smoke_data: Path) -> None:
    info = json.loads((smoke_data / "isp_dataset.json").read_text())
    assert info["bayer_pattern"] == "RGGB" and info["norm"] == "synthetic"
    tr = ISPPairs(smoke_data, "train", with_ref=True, progress=False)
    te = ISPPairs(smoke_data, "test", progress=False)
    assert len(tr) == 24 and len(te) == 8
    it = tr[0]
    assert it["raw"].shape == (4, 16, 16) and it["target"].shape == (3, 32, 32) and it["ref"].shape == (3, 32, 32)
    assert 0 <= float(it["raw"].min()) and float(it["raw"].max()) <= 1.0
    u = UnpairedISP(tr, "auto")
    assert u.source == "disjoint" and u[0]["real"].shape == (3, 32, 32)
    assert UnpairedISP(tr, "shuffle")[0]["real"].shape == (3, 32, 32)


def test_dng_png_npy_agree(smoke_data: Path) -> None:
    """The same RAW frame written as DNG (rawpy), 16-bit PNG and packed NPY reads identically."""
    d, pd = load_raw(smoke_data / "samples/0.dng")
    p, pp = load_raw(smoke_data / "samples/0.png")
    n, pn = load_raw(smoke_data / "samples/0.npy")
    assert pd == pp == pn == "RGGB"
    assert d.shape == p.shape == n.shape == (4, 48, 64)
    assert torch.allclose(d, p, atol=1e-5) and torch.allclose(p, n, atol=1e-5)


def _png16(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr.astype(np.uint16)).save(path)
    return path


def test_bad_odd_dimensions(tmp_path: Path) -> None:
    p = _png16(tmp_path / "odd.png", np.full((31, 32), 100))
    with pytest.raises(DataError, match="odd.png: .*odd dimensions"):
        read_bayer_png(p)


def test_bad_bit_depth(tmp_path: Path) -> None:
    p = tmp_path / "eight.png"
    Image.fromarray(np.full((32, 32), 100, np.uint8)).save(p)
    with pytest.raises(DataError, match="eight.png: .*16-bit"):
        read_bayer_png(p)


def test_bad_channel_count(tmp_path: Path) -> None:
    p = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(p)
    with pytest.raises(DataError, match="rgb.png: .*1 channel"):
        read_bayer_png(p)


def test_bad_npy_shape_and_pickle(tmp_path: Path) -> None:
    p = tmp_path / "bad.npy"
    np.save(p, np.zeros((8, 8, 3), np.uint16))
    with pytest.raises(DataError, match="bad.npy: .*packed"):
        load_raw(p)
    q = tmp_path / "obj.npy"
    np.save(q, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="obj.npy"):
        load_raw(q)


def test_bad_unknown_bayer_pattern(smoke_data: Path) -> None:
    with pytest.raises(DataError, match="unknown Bayer pattern 'XYZW'"):
        load_raw(smoke_data / "samples/0.png", pattern="XYZW")


def test_bad_truncated_and_non_raw(tmp_path: Path, smoke_data: Path) -> None:
    good = (smoke_data / "samples/0.png").read_bytes()
    t = tmp_path / "trunc.png"
    t.write_bytes(good[: len(good) // 3])
    with pytest.raises(DataError, match="trunc.png"):
        load_raw(t)
    fake = tmp_path / "notraw.dng"
    fake.write_text("this is not a raw file")
    with pytest.raises(DataError, match="notraw.dng: rawpy cannot read"):
        read_camera_raw(fake)
    dng = (smoke_data / "samples/0.dng").read_bytes()
    cut = tmp_path / "cut.dng"
    cut.write_bytes(dng[:200])
    with pytest.raises(DataError, match="cut.dng"):
        load_raw(cut)


def test_bad_missing_target_and_size_mismatch(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "train/huawei_raw").mkdir(parents=True)
    (root / "train/canon").mkdir(parents=True)
    _png16(root / "train/huawei_raw/0.png", np.full((16, 16), 200))
    with pytest.raises(DataError, match="0.png: no RGB target"):
        ISPPairs(root, "train", progress=False)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "train/canon/0.jpg")
    with pytest.raises(DataError, match="0.jpg: RGB target is 20x20"):
        ISPPairs(root, "train", progress=False)
    with pytest.raises(DataError, match="test: split folder not found"):
        ISPPairs(root, "test", progress=False)


def test_bad_upload_over_limit(tmp_path: Path) -> None:
    from pretrainlab.core.demo import validate_upload

    big = tmp_path / "big.dng"
    big.write_bytes(b"\0" * (2 * 2**20 + 10))
    with pytest.raises(DataError, match="big.dng: file is .* over the 2 MB limit"):
        validate_upload(big, (".dng",), max_mb=2)
    with pytest.raises(DataError, match="x.txt: unsupported file type"):
        (tmp_path / "x.txt").write_text("x")
        validate_upload(tmp_path / "x.txt", (".dng",))


def test_generator_writes_nothing_half_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pretrainlab.core.data import generate_dataset
    from pretrainlab.isp import unprocess

    def boom(out: Path, profile: str, seed: int) -> None:
        unprocess.generate(out, profile, seed)
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        generate_dataset(boom, tmp_path / "ds", "smoke", 0)
    assert not (tmp_path / "ds").exists()
    assert not any(p.name.startswith(".ds") for p in tmp_path.iterdir())
