"""Readers on generated data and one test per class of bad input."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pretrainlab.clip import formats
from pretrainlab.clip.dataset import ImageTextDataset, load_retrieval, load_zeroshot
from pretrainlab.core.data import DataError


def _jpeg(color: tuple[int, int, int] = (200, 10, 10), size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="JPEG")
    return buf.getvalue()


def _tokenizer():
    import open_clip

    from pretrainlab.clip.models import register_domain_configs

    register_domain_configs()
    return open_clip.get_tokenizer("clip-nano")


def test_csv_and_shards_hold_the_same_pairs(smoke_data: Path) -> None:
    csv = formats.read_any(smoke_data, "csv")
    wds = formats.read_any(smoke_data, "wds")
    assert len(csv.records) == len(wds.records) == 96 and not csv.bad and not wds.bad
    assert [r.caption for r in csv.records] == [r.caption for r in wds.records]
    a = formats.decode_image(csv.records[3].read_bytes(), "csv")
    b = formats.decode_image(wds.records[3].read_bytes(), "wds")
    assert a.shape == b.shape and a.dtype == np.uint8 and np.array_equal(a, b)


def test_folder_jsonl_and_benchmarks(smoke_data: Path) -> None:
    ret = load_retrieval(smoke_data / "retrieval", 32)
    assert ret["images"].shape == (32, 32, 32, 3) and len(ret["captions"]) == 32
    zs = load_zeroshot(smoke_data / "zeroshot", 32)
    assert len(zs["classnames"]) == 49 and len(zs["unseen"]) == 7 and zs["labels"].max() < 49


def test_dataset_items_have_global_and_augmented_captions(smoke_data: Path) -> None:
    ds = ImageTextDataset(smoke_data, _tokenizer(), 32, num_texts=3, progress=False)
    item = ds[0]
    assert item["image"].shape == (3, 32, 32) and item["text"].shape == (3, 16)
    assert len(ds) == 96 and ds.n_skipped == 0


def test_missing_column_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "pairs.csv"
    p.write_text("filepath\tcaption\nimg.jpg\ta cat\n")
    with pytest.raises(DataError, match=r"pairs\.csv: missing column\(s\) \['title'\]"):
        formats.read_csv(p)


def test_corrupt_images_in_shard_are_skipped_and_counted(tmp_path: Path) -> None:
    shard = tmp_path / "s-000000.tar"
    with tarfile.open(shard, "w") as tf:
        for i in range(20):
            img = b"not a jpeg" if i == 5 else _jpeg()
            for name, data in ((f"{i:03d}.jpg", img), (f"{i:03d}.txt", f"a red square {i}".encode())):
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    ds = ImageTextDataset(shard, _tokenizer(), 32, fmt="wds", max_bad_fraction=0.1, progress=False)
    assert len(ds) == 19 and ds.n_skipped == 1
    with pytest.raises(DataError, match=r"s-000000\.tar: 1 of 20 samples are unreadable"):
        ImageTextDataset(shard, _tokenizer(), 32, fmt="wds", max_bad_fraction=0.01, progress=False)


def test_unreadable_tar_names_the_shard(tmp_path: Path) -> None:
    bad = tmp_path / "broken.tar"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(DataError, match="broken.tar"):
        formats.read_wds(bad)


def test_empty_and_non_utf8_captions_are_counted(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(_jpeg())
    p = tmp_path / "pairs.tsv"
    p.write_bytes(b"filepath\ttitle\na.jpg\ta red square\na.jpg\t   \na.jpg\t\xff\xfe caption\nmissing.jpg\tgone\n")
    rep = formats.read_csv(p)
    assert len(rep.records) == 2 and len(rep.bad) == 2
    assert any("not UTF-8" in b for b in rep.bad) and any("empty" in b for b in rep.bad)
    with pytest.raises(DataError, match=r"pairs\.tsv: 3 of 4 samples are unreadable"):
        ImageTextDataset(p, _tokenizer(), 32, max_bad_fraction=0.5, progress=False)


@pytest.mark.parametrize("mode", ["CMYK", "I;16", "RGBA", "LA", "P", "L"])
def test_odd_image_modes_become_rgb(mode: str) -> None:
    if mode == "I;16":
        img = Image.fromarray(np.full((8, 8), 65535, np.uint16))
        assert img.mode.startswith("I;16")
    elif mode == "RGBA":
        img = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red -> white
    elif mode == "LA":
        img = Image.new("LA", (8, 8), (0, 255))
    elif mode == "P":
        img = Image.new("RGB", (8, 8), (0, 0, 255)).convert("P")
    else:
        img = Image.new(mode, (8, 8))
    buf = io.BytesIO()
    img.save(buf, format="TIFF" if mode in ("CMYK", "I;16") else "PNG")
    arr = formats.decode_image(buf.getvalue(), "x", 4)
    assert arr.shape == (4, 4, 3) and arr.dtype == np.uint8
    if mode == "I;16":
        assert arr.min() == 255
    if mode == "RGBA":
        assert (arr == 255).all()
    if mode == "P":
        assert arr[..., 2].min() > 200


def test_bad_jsonl_and_unknown_format(tmp_path: Path) -> None:
    (tmp_path / "captions.jsonl").write_text(json.dumps({"file": "a.jpg", "caption": "x"}) + "\n{not json\n")
    with pytest.raises(DataError, match=r"captions\.jsonl: line 2 is not valid JSON"):
        formats.read_folder(tmp_path)
    other = tmp_path / "empty"
    other.mkdir()
    with pytest.raises(DataError, match="cannot tell the format"):
        formats.read_any(other)


def test_generated_data_is_atomic(tmp_path: Path) -> None:
    from pretrainlab.clip import synthetic
    from pretrainlab.core.data import generate_dataset

    def broken(out: Path, profile: str, seed: int) -> None:
        synthetic.generate(out, profile, seed)
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        generate_dataset(broken, tmp_path / "d", "smoke", 0)
    assert not (tmp_path / "d").exists()
