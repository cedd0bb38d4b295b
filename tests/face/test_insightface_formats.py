"""insightface formats written by this project's writers and read back: MXNet RecordIO train.rec/.idx (no
mxnet), verification .bin (restricted unpickler), IJB-B/C meta layout; plus what each reader refuses."""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pretrainlab.core.data import DataError
from pretrainlab.face.formats import (
    RECORDIO_MAGIC,
    FaceTrainSet,
    RecordIO,
    norm_crop,
    read_bin,
    read_ijb,
    write_bin,
    write_ijb,
    write_recordio,
)


def _png(seed: int, size: int = 16) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_recordio_round_trip_as_insightface_packs_it(tmp_path: Path) -> None:
    imgs = [_png(i) for i in range(7)]
    labels = [2, 0, 1, 2, 0, 5, 1]
    write_recordio(tmp_path, imgs, labels)
    rec = RecordIO(tmp_path)
    assert rec.keys == list(range(1, 8)) and rec.identity_range == (8, 12)  # record 0: (n + 1, n + 1 + ids)
    got = sorted((rec.label(k), rec.read(k)[1]) for k in rec.keys)
    assert got == sorted(zip(labels, imgs))
    (flag, lab), _ = rec.read(8)  # identity record: the image range of class 0
    assert flag == 2 and lab == [1.0, 3.0]
    ds = FaceTrainSet.open(tmp_path)
    assert ds.num_classes == 4 and sorted(ds.labels) == [0, 0, 1, 1, 2, 2, 3]  # labels 0,1,2,5 -> dense
    assert ds.sources[0].decode().shape == (16, 16, 3)


def test_recordio_record_containing_the_magic_word_is_split_and_rejoined(tmp_path: Path) -> None:
    magic = struct.pack("<I", RECORDIO_MAGIC)
    payload = _png(1) + b"\0" * (-len(_png(1)) % 4) + magic + b"abcd" + magic + b"xy"  # 4-aligned magics
    write_recordio(tmp_path, [payload], [0])
    raw = (tmp_path / "train.rec").read_bytes()
    assert raw.count(magic) >= 4  # record 0 + three parts of record 1 (+ the identity record)
    assert RecordIO(tmp_path).read(1)[1] == payload


@pytest.mark.parametrize("damage,msg", [
    ("truncate", "past the end of the file"),
    ("bad_offset", "offset .* is past the end"),
    ("bad_magic", "bad magic"),
    ("huge_length", "declares over"),
    ("idx_text", "expected '<key>"),
    ("no_idx", "train.idx: missing"),
])
def test_recordio_refuses_damaged_files(tmp_path: Path, damage: str, msg: str) -> None:
    write_recordio(tmp_path, [_png(i, 64) for i in range(3)], [0, 1, 1])
    rec, idx = tmp_path / "train.rec", tmp_path / "train.idx"
    if damage == "truncate":
        cut = int(idx.read_text().splitlines()[3].split()[1]) + 40  # inside the last image record
        rec.write_bytes(rec.read_bytes()[:cut])
        lines = idx.read_text().splitlines()
        idx.write_text("\n".join(line for line in lines if int(line.split()[1]) < cut) + "\n")
    elif damage == "bad_offset":
        idx.write_text(idx.read_text() + "9\t99999999\n")
    elif damage == "bad_magic":
        b = bytearray(rec.read_bytes())
        b[0:4] = b"JUNK"
        rec.write_bytes(bytes(b))
    elif damage == "huge_length":
        b = bytearray(rec.read_bytes())
        off = int(idx.read_text().splitlines()[1].split()[1])
        b[off + 4:off + 8] = struct.pack("<I", (1 << 29) - 1)  # 512 MB declared in a few-kB file
        rec.write_bytes(bytes(b))
    elif damage == "idx_text":
        idx.write_text("hello world\n")
    else:
        idx.unlink()
    with pytest.raises(DataError, match=msg):
        r = RecordIO(tmp_path)
        for k in r.keys:
            r.decode(k)


def test_bin_round_trip_lists_and_numpy_flags(tmp_path: Path) -> None:
    imgs = [_png(i) for i in range(8)]
    for numpy_flags, protocol in ((False, 5), (True, 5), (False, 2), (True, 2)):  # 2: the released py2 files
        p = tmp_path / f"lfw{numpy_flags}{protocol}.bin"
        write_bin(p, imgs, [True, False, True, False], numpy_flags=numpy_flags, protocol=protocol)
        pairs = read_bin(p)
        assert pairs.same == [True, False, True, False]
        assert [s.data for s in pairs.left] == imgs[0::2] and [s.data for s in pairs.right] == imgs[1::2]


class _Evil:
    def __reduce__(self) -> tuple:
        import os

        return (os.system, ("echo pwned > /tmp/face_bin_pwned",))


@pytest.mark.parametrize("payload,msg", [
    (lambda imgs: ([*imgs[:3], _Evil()], [True, False]), "refused: the pickle names the global 'posix.system'"),
    (lambda imgs: (imgs, np.array([1.5, 2.5])), "numpy dtype .* not allowed|only a numpy bool array"),
    (lambda imgs: (imgs, np.array([[True, False]])), "numpy bool array declares shape|only a numpy bool"),
    (lambda imgs: (imgs[:3], [True, False]), "3 images for 2 pairs"),
    (lambda imgs: (imgs, [True, True]), "needs both genuine and impostor"),
    (lambda imgs: ("abc", [True, False]), "bins must be a list"),
    (lambda imgs: {"a": 1}, "expected the pair"),
])
@pytest.mark.parametrize("protocol", [2, 5])
def test_bin_refuses_code_and_malformed_content(tmp_path: Path, payload, msg: str, protocol: int) -> None:
    p = tmp_path / "x.bin"
    with open(p, "wb") as f:
        pickle.dump(payload([_png(i) for i in range(4)]), f, protocol=protocol)
    with pytest.raises(DataError, match=msg):
        read_bin(p)
    assert not Path("/tmp/face_bin_pwned").exists()


def _py2_bin(images: list[bytes], flags: list[bool]) -> bytes:
    """A verification .bin as Python 2's cPickle wrote the released files: protocol 2, images as py2 ``str``
    (SHORT_BINSTRING / BINSTRING), flags as a list of bools, no global at all."""
    out = bytearray(b"\x80\x02]q\x00(")
    for im in images:
        out += (b"U" + bytes([len(im)]) if len(im) < 256 else b"T" + struct.pack("<i", len(im))) + im
    out += b"e]q\x01(" + b"".join(b"\x88" if f else b"\x89" for f in flags) + b"e\x86q\x02."
    return bytes(out)


def test_bin_written_by_python2_has_no_globals(tmp_path: Path) -> None:
    import pickletools

    imgs = [_png(i) for i in range(4)]
    raw = _py2_bin(imgs, [False, True])
    assert not [op for op, _, _ in pickletools.genops(raw) if "GLOBAL" in op.name]
    (tmp_path / "agedb_30.bin").write_bytes(raw)
    pairs = read_bin(tmp_path / "agedb_30.bin")
    assert pairs.same == [False, True] and [s.data for s in pairs.left] == imgs[0::2]


def test_bin_truncated_and_lying_lengths(tmp_path: Path) -> None:
    p = tmp_path / "t.bin"
    write_bin(p, [_png(i) for i in range(4)], [True, False])
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(DataError, match="t.bin: not a verification .bin"):
        read_bin(p)
    q = tmp_path / "big.bin"  # BINBYTES8 declaring 2**40 bytes: never allocated (the file is read whole first)
    q.write_bytes(b"\x80\x05\x8e" + struct.pack("<Q", 2**40) + b"abc")
    with pytest.raises(DataError, match="big.bin: not a verification .bin"):
        read_bin(q)


def test_ijb_layout_round_trip_and_alignment(tmp_path: Path) -> None:
    from pretrainlab.face.formats import ARCFACE_DST

    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (150, 130, 3), dtype=np.uint8) for _ in range(4)]
    lmk = [ARCFACE_DST * 1.1 + 5 for _ in range(4)]
    write_ijb(tmp_path, "IJBB", imgs, lmk, [1, 1, 2, 3], [10, 11, 12, 13], [(1, 2, 1), (1, 3, 0)])
    proto = read_ijb(tmp_path, "IJBB")
    assert list(proto.templates) == [1, 1, 2, 3] and list(proto.pair_label) == [1, 0]
    crop = proto.images[0].decode()
    assert crop.shape == (112, 112, 3)
    # the similarity transform maps the landmarks onto the template: a pixel at a landmark moves there
    img = np.zeros((150, 130, 3), np.uint8)
    x, y = np.rint(lmk[0][2]).astype(int)
    img[y - 1:y + 2, x - 1:x + 2] = 255
    out = norm_crop(img, lmk[0] + (np.rint(lmk[0][2]) - lmk[0][2]))
    yy, xx = np.unravel_index(out[..., 0].argmax(), out.shape[:2])
    assert abs(xx - ARCFACE_DST[2][0]) <= 1.5 and abs(yy - ARCFACE_DST[2][1]) <= 1.5
    from pretrainlab.core.cli import main

    (tmp_path / "m").mkdir()
    assert main(["face", "pretrain", "--profile", "smoke", "--out", str(tmp_path / "pre"), "train.max_steps=1",
                 "train.progress=false"]) == 0
    assert main(["face", "eval", "--ckpt", str(tmp_path / "pre"), "--ijb", str(tmp_path), "--ijb-target", "IJBB",
                 "--out", str(tmp_path / "m" / "m.json")]) == 0
    import json

    m = json.loads((tmp_path / "m" / "m.json").read_text())
    assert 0 <= m["ijbb_TAR@FAR=1e-04"] <= 100 and "lr_rank-1" in m
    (tmp_path / "meta" / "ijbb_template_pair_label.txt").write_text("1 99 1\n")
    with pytest.raises(DataError, match="templates have no image"):
        read_ijb(tmp_path, "IJBB")
