"""Readers on generated data, the generator's formats, the unpaired layouts, and one test per class of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pretrainlab.core.data import DataError
from pretrainlab.isp.formats import (
    PairedISP,
    UnpairedISP,
    load_raw,
    read_bayer_png,
    read_camera_raw,
    read_raw,
)


def _png16(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint16)).save(path)
    return path


def _jpg(path: Path, h: int, w: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def test_generated_layout_and_pairs(smoke_data: Path) -> None:
    info = json.loads((smoke_data / "isp_dataset.json").read_text())
    assert info["bayer_pattern"] == "RGGB" and info["norm"] == "synthetic"
    te = PairedISP(smoke_data, "test")
    assert len(te) == 8 and te.norm == "synthetic"
    it = te[0]
    assert it["raw"].shape == (4, 16, 16) and it["target"].shape == (3, 32, 32)
    assert 0 <= float(it["raw"].min()) and float(it["raw"].max()) <= 1.0
    u = UnpairedISP(smoke_data, "train")
    assert u.source == "disjoint" and u.rgb_dir.name == "canon_unpaired"
    item = u[0]
    assert item["raw"].shape == (4, 16, 16) and item["ref"].shape == item["real"].shape == (3, 32, 32)
    assert "target" not in item  # unpaired training never sees a paired target
    assert UnpairedISP(smoke_data, "train", source="shuffle").rgb_dir.name == "canon"


def test_dng_png_npy_agree(smoke_data: Path) -> None:
    """The same RAW frame written as DNG (rawpy), 16-bit PNG and NTIRE-ordered NPY reads identically."""
    d, p, n = (read_raw(smoke_data / f"samples/0.{s}") for s in ("dng", "png", "npy"))
    assert d.pattern == p.pattern == n.pattern == "RGGB"
    assert d.counts.shape == p.counts.shape == n.counts.shape == (4, 48, 64)
    assert torch.equal(d.counts, p.counts) and torch.equal(p.counts, n.counts)
    assert d.black == (60.0, 60.0, 60.0, 60.0) and d.white == 1023.0
    x, _ = load_raw(smoke_data / "samples/0.dng")  # camera RAW: the file's own levels
    y, _ = load_raw(smoke_data / "samples/0.png", "synthetic")
    assert torch.allclose(x, y.clamp_min(0), atol=1e-6)
    raw = np.load(smoke_data / "samples/0.npy")
    mos = np.asarray(Image.open(smoke_data / "samples/0.png"))
    assert raw.shape == (48, 64, 4) and np.array_equal(raw[..., 0], mos[0::2, 0::2])  # R first (NTIRE)
    assert np.array_equal(raw[..., 3], mos[1::2, 1::2])


def test_ntire_unpaired_layout_reads_without_matching_names(tmp_path: Path) -> None:
    """NTIRE 2026: train/raws/*.npy + train/jpegs/*.jpg, different names and counts, never paired."""
    root = tmp_path / "ntire"
    rng = np.random.default_rng(0)
    (root / "train/raws").mkdir(parents=True)
    for i in range(3):
        np.save(root / "train/raws" / f"scene_{i}.npy", rng.integers(0, 1024, (8, 12, 4)).astype(np.uint16))
    for j in range(5):
        _jpg(root / "train/jpegs" / f"dslr_{j:03d}.jpg", 20, 28, j)
    u = UnpairedISP(root, "train")
    assert u.norm == "ntire" and u.source == "shuffle" and len(u) == 3 and len(u.rgb_files) == 5
    item = u[1]
    assert item["raw"].shape == (4, 8, 12) and item["real"].shape == (3, 16, 24) and item["ref"].shape == (3, 16, 24)
    counts = np.load(root / "train/raws/scene_1.npy").astype(np.float32)
    assert torch.allclose(item["raw"][2], torch.from_numpy(counts[..., 0]) / 1023)  # R -> packed index 2
    with pytest.raises(DataError, match="no RGB folder to pair with|no RGB target"):
        PairedISP(root, "train")


def test_unpaired_patches_and_extra_rgb_folder(smoke_data: Path, tmp_path: Path) -> None:
    for j in range(2):
        _jpg(tmp_path / "dslr" / f"{j}.png", 40, 40, j)
    u = UnpairedISP(smoke_data, "train", rgb_dir=tmp_path / "dslr", patch=8)
    it = u[0]
    assert u.source == "folder" and it["raw"].shape == (4, 8, 8) and it["real"].shape == it["ref"].shape == (3, 16, 16)
    small = tmp_path / "small"
    _jpg(small / "0.jpg", 10, 10)
    with pytest.raises(DataError, match="0.jpg: RGB image of 10x10 is smaller than the generator output 32x32"):
        UnpairedISP(smoke_data, "train", rgb_dir=small)[0]


def test_bad_odd_dimensions(tmp_path: Path) -> None:
    p = _png16(tmp_path / "odd.png", np.full((31, 32), 100))
    with pytest.raises(DataError, match="odd.png: .*odd dimensions"):
        read_bayer_png(p)


def test_bad_bit_depth_and_channels(tmp_path: Path) -> None:
    p = tmp_path / "eight.png"
    Image.fromarray(np.full((32, 32), 100, np.uint8)).save(p)
    with pytest.raises(DataError, match="eight.png: RAW mosaic is 8-bit"):
        read_bayer_png(p)
    q = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(q)
    with pytest.raises(DataError, match="rgb.png: RAW mosaic has mode 'RGB'"):
        read_bayer_png(q)


def test_bad_npy_shape_pickle_and_normalised_floats(tmp_path: Path) -> None:
    p = tmp_path / "bad.npy"
    np.save(p, np.zeros((8, 8, 3), np.uint16))
    with pytest.raises(DataError, match="bad.npy: expected a packed"):
        load_raw(p)
    q = tmp_path / "obj.npy"
    np.save(q, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="obj.npy: holds Python objects"):
        load_raw(q)
    f = tmp_path / "float01.npy"
    np.save(f, np.random.default_rng(0).random((8, 8, 4)).astype(np.float32))
    with pytest.raises(DataError, match="float01.npy: float32 values in .* look already normalised"):
        load_raw(f)


def test_bad_declared_sizes_are_refused_before_allocation(tmp_path: Path) -> None:
    """#23 memory bombs: a PNG header of 60000x60000 and a .npy header of (1e5, 1e5, 4)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 16, 0, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(png)
    with pytest.raises(DataError, match="bomb.png: .*(over the limit|too large)"):
        read_bayer_png(tmp_path / "bomb.png")
    header = "{'descr': '<u2', 'fortran_order': False, 'shape': (100000, 100000, 4), }"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + header.ljust(117).encode() + b"\n" + b"\0" * 64
    (tmp_path / "bomb.npy").write_bytes(npy)
    with pytest.raises(DataError, match="bomb.npy: header declares"):
        load_raw(tmp_path / "bomb.npy")


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


def test_bad_missing_target_size_mismatch_and_duplicates(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _png16(root / "train/huawei_raw/0.png", np.full((16, 16), 200))
    (root / "train/canon").mkdir(parents=True)
    with pytest.raises(DataError, match="0.png: no RGB target"):
        PairedISP(root, "train")
    _jpg(root / "train/canon/0.jpg", 20, 20)
    with pytest.raises(DataError, match="0.jpg: RGB target is 20x20"):
        PairedISP(root, "train")[0]
    with pytest.raises(DataError, match="test: split folder not found"):
        PairedISP(root, "test")
    np.save(root / "train/huawei_raw/0.npy", np.zeros((8, 8, 4), np.uint16))
    with pytest.raises(DataError, match="two RAW files share the stem '0'"):
        PairedISP(root, "train")


def test_generator_writes_nothing_half_done(tmp_path: Path) -> None:
    from pretrainlab.core.data import generate_dataset
    from pretrainlab.isp import synthetic

    def boom(out: Path, profile: str, seed: int) -> None:
        synthetic.generate(out, profile, seed)
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        generate_dataset(boom, tmp_path / "ds", "smoke", 0)
    assert not (tmp_path / "ds").exists()
    assert not any(p.name.startswith(".ds") for p in tmp_path.iterdir())
