"""Readers on generated data, webdataset streaming (brace patterns, per-worker and per-rank split,
resampling), the training views, and bad samples."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pretrainlab.clip import formats
from pretrainlab.clip.config import ImageAugConfig, TextAugConfig
from pretrainlab.clip.dataset import PairDataset, ShardStream, TextMaker
from pretrainlab.clip.transforms import ViewMaker, rrc_params
from pretrainlab.core.data import DataError


def _jpeg(color: tuple[int, int, int] = (200, 10, 10), size: tuple[int, int] = (24, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return buf.getvalue()


def _tokenizer():
    import open_clip

    from pretrainlab.clip.models import register_domain_configs

    register_domain_configs()
    return open_clip.get_tokenizer("clip-nano")


def _text(n: int = 1) -> TextMaker:
    return TextMaker(_tokenizer(), n, TextAugConfig(enabled=n > 1))


def _shards(root: Path, n_shards: int, per: int, bad: dict[int, bytes] | None = None) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    out, k = [], 0
    for s in range(n_shards):
        p = root / f"{s:05d}.tar"
        with tarfile.open(p, "w") as tf:
            for _ in range(per):
                img = (bad or {}).get(k, _jpeg((k % 250, 20, 30)))
                for name, data in ((f"{k:06d}.jpg", img), (f"{k:06d}.txt", f"sample {k}".encode())):
                    ti = tarfile.TarInfo(name)
                    ti.size = len(data)
                    tf.addfile(ti, io.BytesIO(data))
                k += 1
        out.append(p)
    return out


def _captions(stream, n: int = 400) -> list[str]:
    """The caption of each streamed item ("sample k"), recovered from its tokens."""
    tok = _tokenizer()
    names = [f"sample {k}" for k in range(n)]
    lookup = {tuple(row.tolist()): name for row, name in zip(tok(names), names)}
    return [lookup[tuple(item["text"][0].tolist())] for item in stream]


# ------------------------------------------------------------------ readers
def test_csv_and_shards_hold_the_same_pairs(smoke_data: Path) -> None:
    csv = formats.read_source(smoke_data, "csv")
    wds = formats.read_source(smoke_data, "wds")
    assert len(csv) == len(wds) == 96 and csv.problems.count == wds.problems.count == 0
    assert [csv[i].caption for i in range(96)] == [wds[i].caption for i in range(96)]
    a = np.asarray(formats.decode_pil(csv[3].read_bytes(), "csv"))
    b = np.asarray(formats.decode_pil(wds[3].read_bytes(), "wds"))
    assert a.shape == (32, 32, 3) and np.array_equal(a, b)


def test_csv_is_indexed_by_offsets_and_counts_bad_rows(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(_jpeg())
    p = tmp_path / "pairs.tsv"
    p.write_bytes(b"filepath\ttitle\textra\na.jpg\ta red square\tx\na.jpg\t   \tx\na.jpg\t\xff\xfe caption\tx\n"
                  b"only-one-column\n\na.jpg\tthe last row\tx")  # no trailing newline
    src = formats.CsvSource(p)
    assert len(src) == 2 and src.problems.count == 3 and src.total == 5
    assert src[0].caption == "a red square" and src[1].caption == "the last row" and src[1].key == "7"
    assert Path(src[0].image_path) == tmp_path / "a.jpg"
    text = " | ".join(src.problems.examples)
    assert "caption is empty" in text and "not UTF-8" in text and "1 column(s), expected 3" in text
    assert src.offsets.dtype == np.int64 and src.offsets.shape == (2, 2)


def test_csv_missing_column_names_the_file_and_the_setting(tmp_path: Path) -> None:
    p = tmp_path / "pairs.csv"
    p.write_text("filepath\tcaption\nimg.jpg\ta cat\n")
    with pytest.raises(DataError, match=r"pairs\.csv: missing column\(s\) \['title'\].*data\.csv_caption_key"):
        formats.CsvSource(p)


def test_folder_jsonl_class_folder_and_zeroshot(smoke_data: Path, tmp_path: Path) -> None:
    ret = formats.read_folder(smoke_data / "retrieval")
    assert len(ret) == 32 and ret[0].caption
    zs = formats.read_zeroshot(smoke_data / "zeroshot")
    assert len(zs.classnames) == 18 and len(zs.unseen) == 6 and zs.labels.max() < 18 and len(zs.records) == 18
    # an ImageNet-style folder: classes in sorted order, open_clip templates
    for c, col in (("n02", (0, 0, 200)), ("n01", (200, 0, 0))):
        (tmp_path / "val" / c).mkdir(parents=True)
        (tmp_path / "val" / c / "x.JPEG").write_bytes(_jpeg(col))
    assert formats.is_class_folder(tmp_path)
    cs = formats.read_class_folder(tmp_path)
    assert cs.classnames == ["n01", "n02"] and cs.labels.tolist() == [0, 1] and len(cs.templates) == 80


def test_thousand_class_folder_uses_open_clip_imagenet_names(tmp_path: Path) -> None:
    import open_clip

    jpeg = _jpeg()
    for i in range(1000):
        d = tmp_path / "val" / f"n{i:08d}"
        d.mkdir(parents=True)
        if i in (0, 999):
            (d / "a.JPEG").write_bytes(jpeg)
    cs = formats.read_class_folder(tmp_path)
    assert cs.classnames == list(open_clip.IMAGENET_CLASSNAMES) and cs.labels.tolist() == [0, 999]
    assert cs.templates[0] == open_clip.OPENAI_IMAGENET_TEMPLATES[0]("{}")


@pytest.mark.parametrize("mode", ["CMYK", "I;16", "RGBA", "LA", "P", "L"])
def test_odd_image_modes_become_rgb(mode: str) -> None:
    if mode == "I;16":
        img = Image.fromarray(np.full((8, 8), 65535, np.uint16))
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
    arr = np.asarray(formats.decode_pil(buf.getvalue(), "x"))
    assert arr.shape == (8, 8, 3) and arr.dtype == np.uint8
    if mode == "I;16":
        assert arr.min() == 255
    if mode == "RGBA":
        assert (arr == 255).all()
    if mode == "P":
        assert arr[..., 2].min() > 200


def test_png_header_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    with pytest.raises(DataError, match=r"bomb\.png: .*(60000 x 60000|too large)"):
        formats.decode_pil(png, "bomb.png")


# ------------------------------------------------------------------ training views
def test_views_are_bicubic_random_resized_crops_of_the_full_image() -> None:
    import random

    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (120, 200, 3), dtype=np.uint8))
    a = ImageAugConfig(hflip_p=0.0)
    vm = ViewMaker(32, a, n_aug=2)
    torch.manual_seed(5)
    views = vm(img)
    assert views.shape == (3, 3, 32, 32) and views.dtype == torch.uint8
    torch.manual_seed(5)  # replay the crop parameters and crop with torchvision's resized_crop
    r = random.Random(int(torch.randint(0, 2**62, ()).item()))
    for k, scale in enumerate([a.global_scale, a.aug_scale, a.aug_scale]):
        top, left, h, w = rrc_params(200, 120, scale, a.ratio, r)
        ref = TF.resized_crop(img, top, left, h, w, [32, 32], InterpolationMode.BICUBIC)
        assert np.array_equal(views[k].permute(1, 2, 0).numpy(), np.asarray(ref))
        if k:
            assert r.random() >= a.hflip_p  # the flip draw of an augmented view (p = 0: never flipped)


def test_rrc_params_follow_torchvision() -> None:
    import random

    from torchvision.transforms import RandomResizedCrop

    r = random.Random(0)
    for _ in range(300):
        top, left, h, w = rrc_params(640, 427, (0.08, 1.0), (3 / 4, 4 / 3), r)
        assert 0 <= top <= 427 - h and 0 <= left <= 640 - w
        assert 0.08 * 640 * 427 * 0.9 <= h * w <= 640 * 427 and 3 / 4 * 0.9 <= w / h <= 4 / 3 * 1.1
    # an extreme aspect ratio falls back to torchvision's central crop
    img = Image.new("RGB", (1000, 10))
    assert rrc_params(1000, 10, (0.9, 1.0), (3 / 4, 4 / 3), r) == RandomResizedCrop.get_params(img, [0.9, 1.0], [3 / 4, 4 / 3])


def test_token_cache_starts_over_without_losing_rows() -> None:
    """Regression: clearing the full cache used to drop rows of the very call that triggered it (KeyError
    after 50k distinct captions on the 100k-pair memory benchmark)."""
    tm = _text()
    tm.max_cache = 3
    first = tm.tokenize(["a", "b", "c"])
    tm.tokenize(["e"])
    again = tm.tokenize(["a", "d", "a"])  # over the limit: the cache starts over, "a" is tokenised again
    assert torch.equal(again[0], first[0]) and torch.equal(again[2], first[0]) and len(tm._cache) == 2


def test_word_level_tokenization_equals_open_clips_tokenizer(smoke_data: Path) -> None:
    import random

    tok = _tokenizer()
    tm = TextMaker(tok, 3, TextAugConfig())
    src = formats.read_source(smoke_data)
    rng = random.Random(0)
    texts = [t for i in range(40) for t in tm.texts(src[i].caption, rng)]
    texts += ["A Photo, of the RED circle!!", "it's a don't-care &amp; x", "  spaced   out\twords ", "x" * 3,
              " ".join(["word"] * 40), "caf\u00e9 na\u00efve", "tab\tand\nnewline", "&lt;b&gt;bold"]
    assert torch.equal(tm._tokenize(texts), tok(texts))


def test_dataset_items_have_views_and_captions(smoke_data: Path) -> None:
    src = formats.read_source(smoke_data)
    ds = PairDataset(src, ViewMaker(32, ImageAugConfig(), 2), _text(3), preload=True, progress=False)
    item = ds[0]
    assert item["image"].shape == (3, 3, 32, 32) and item["text"].shape == (3, 16)
    assert len(ds) == 96 and ds.n_skipped == 0


def test_corrupt_images_are_skipped_counted_and_capped(tmp_path: Path) -> None:
    for i in range(20):
        (tmp_path / f"{i}.jpg").write_bytes(b"not a jpeg" if i == 5 else _jpeg())
    p = tmp_path / "pairs.csv"
    p.write_text("filepath\ttitle\n" + "".join(f"{i}.jpg\tred square {i}\n" for i in range(20)))
    ds = PairDataset(formats.CsvSource(p), ViewMaker(16, ImageAugConfig(), 0), _text(), preload=True,
                     max_bad_fraction=0.1, progress=False)
    assert len(ds) == 19 and ds.n_skipped == 1
    with pytest.raises(DataError, match=r"pairs\.csv: 1 of 20 samples are unreadable.*pairs\.csv:7 \(.*5\.jpg\): image does not decode \(not a recognised image"):
        PairDataset(formats.CsvSource(p), ViewMaker(16, ImageAugConfig(), 0), _text(), preload=True,
                    max_bad_fraction=0.01, progress=False)
    lazy = PairDataset(formats.CsvSource(p), ViewMaker(16, ImageAugConfig(), 0), _text(), preload=False,
                       max_bad_fraction=0.1, progress=False)
    assert lazy[5]["image"].shape == (1, 3, 16, 16) and lazy.bad.problems.count == 1  # replaced by the next one


# ------------------------------------------------------------------ webdataset streaming
def test_brace_pattern_streams_every_sample_once_with_two_workers(tmp_path: Path) -> None:
    _shards(tmp_path / "shards", 4, 5)
    spec = str(tmp_path / "shards" / "{00000..00003}.tar")
    shards = formats.shard_list(spec)
    assert len(shards) == 4 and shards[0].endswith("00000.tar")
    assert formats.detect_format(spec) == "wds"
    ds = ShardStream(shards, ViewMaker(16, ImageAugConfig(), 0), _text(), sample_shuffle=8)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    got = _captions(loader)
    assert sorted(got) == sorted(f"sample {k}" for k in range(20))
    # shuffled: not in shard order
    assert got != [f"sample {k}" for k in range(20)]


def test_ranks_stream_disjoint_shares(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shards = [str(p) for p in _shards(tmp_path, 4, 3)]
    seen = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        seen.append(set(_captions(ShardStream(shards, ViewMaker(16, ImageAugConfig(), 0), _text()))))
    assert not seen[0] & seen[1] and len(seen[0]) == len(seen[1]) == 6
    assert seen[0] | seen[1] == {f"sample {k}" for k in range(12)}


def test_resampled_stream_is_endless_and_draws_with_replacement(tmp_path: Path) -> None:
    shards = [str(p) for p in _shards(tmp_path, 2, 3)]
    ds = ShardStream(shards, ViewMaker(16, ImageAugConfig(), 0), _text(), resampled=True, sample_shuffle=4)
    it = iter(ds)
    got = _captions(next(it) for _ in range(30))
    assert len(got) == 30 and set(got) <= {f"sample {k}" for k in range(6)}


def test_stream_skips_and_counts_bad_members(tmp_path: Path) -> None:
    shards = [str(p) for p in _shards(tmp_path, 1, 10, bad={3: b"broken"})]
    ds = ShardStream(shards, ViewMaker(16, ImageAugConfig(), 0), _text(), max_bad_fraction=0.2)
    assert len(_captions(ds)) == 9
    with pytest.raises(DataError, match=r"\d+ of \d+ samples are unreadable"):
        bad = ShardStream([str(p) for p in _shards(tmp_path / "b", 1, 300, bad={k: b"x" for k in range(0, 300, 40)})],
                          ViewMaker(16, ImageAugConfig(), 0), _text(), max_bad_fraction=0.001)
        list(bad)


def test_missing_shard_in_a_pattern_is_named(tmp_path: Path) -> None:
    _shards(tmp_path, 2, 1)
    with pytest.raises(DataError, match=r"00002\.tar: shard not found \(1 of 3"):
        formats.shard_list(str(tmp_path / "{00000..00002}.tar"))


def test_unreadable_tar_names_the_shard(tmp_path: Path) -> None:
    bad = tmp_path / "broken.tar"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(DataError, match="broken.tar"):
        formats.read_wds_index(bad)


def test_bad_jsonl_and_unknown_format(tmp_path: Path) -> None:
    (tmp_path / "captions.jsonl").write_text(json.dumps({"file": "a.jpg", "caption": "x"}) + "\n{not json\n")
    with pytest.raises(DataError, match=r"captions\.jsonl: line 2 is not valid JSON"):
        formats.read_folder(tmp_path)
    other = tmp_path / "empty"
    other.mkdir()
    with pytest.raises(DataError, match="cannot tell the format"):
        formats.read_source(other)


def test_generated_data_is_atomic(tmp_path: Path) -> None:
    from pretrainlab.clip import synthetic
    from pretrainlab.core.data import generate_dataset

    def broken(out: Path, profile: str, seed: int) -> None:
        synthetic.generate(out, profile, seed)
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        generate_dataset(broken, tmp_path / "d", "smoke", 0)
    assert not (tmp_path / "d").exists()
