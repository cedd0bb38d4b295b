"""Readers of the image-text formats vision-language pre-training uses.

* **open_clip CSV** (``--dataset-type csv``): a tab-separated file with a header naming the image
  column (``filepath``) and the caption column (``title``); relative paths are resolved against
  the CSV's folder, then the current directory.
* **webdataset shards** (``--dataset-type webdataset``): ``.tar`` files where each sample is
  ``<key>.jpg|png|jpeg|webp`` + ``<key>.txt`` (the key is the member name up to its first dot).
  Shards are indexed once (tar headers only) and read by offset (random access, so the trainer's
  resumable sampler works; deviation from open_clip's streaming ``IterableDataset``).
* **image folder + captions JSONL**: ``captions.jsonl`` lines ``{"file": "img.jpg", "caption": "..."}``
  with paths relative to the folder.

Bad input: a missing column, an unreadable CSV / tar / JSONL is a ``DataError`` naming the file.
A bad *sample* (an image that does not decode, a missing image, an empty or non-UTF-8 caption) is
skipped and counted; when more than ``max_bad_fraction`` of the samples are bad the reader raises
a ``DataError`` naming the source and the first problems. Odd image modes are converted: CMYK,
16-bit (``I;16`` / ``I``) rescaled to 8 bit, alpha (RGBA / LA / P with transparency) composited
on white, grayscale replicated.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from pretrainlab.core.data import DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


@dataclasses.dataclass
class Record:
    """One image-text sample before decoding: where the image bytes are and its caption."""

    source: str  # file the sample came from (CSV / shard / JSONL), for error messages
    key: str
    caption: str
    image_path: str  # image file, or the tar shard
    offset: int = -1  # byte offset of the image inside a tar shard (-1: a plain file)
    size: int = -1

    def read_bytes(self) -> bytes:
        if self.offset < 0:
            return Path(self.image_path).read_bytes()
        with open(self.image_path, "rb") as f:
            f.seek(self.offset)
            return f.read(self.size)


@dataclasses.dataclass
class ReadReport:
    """Records that passed the text-level checks, and what was skipped and why."""

    records: list[Record]
    bad: list[str]  # "source:key: problem" per skipped sample
    sources: list[str]

    @property
    def total(self) -> int:
        return len(self.records) + len(self.bad)


# ------------------------------------------------------------------ image decoding
def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB (CMYK, 16-bit, alpha on white, palette, grayscale)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(1.0, float(arr.max()))
        if img.mode == "F":
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) / max(1e-12, hi - lo) * 255.0
        else:
            arr = arr / hi * 255.0
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def decode_image(data: bytes, name: str, size: int | None = None) -> np.ndarray:
    """Image bytes -> ``(H, W, 3)`` uint8 (resized to ``size x size`` when given). Raises DataError."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            rgb = to_rgb(im)
    except Exception as e:  # PIL raises many types for corrupt files
        raise DataError(name, f"image does not decode ({type(e).__name__}: {e})") from e
    if size is not None and rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8)


def decode_caption(raw: bytes, name: str) -> str:
    """UTF-8 caption bytes -> stripped text; DataError when not UTF-8 or empty."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(name, f"caption is not UTF-8 (byte {e.start})") from e
    text = " ".join(text.split())
    if not text:
        raise DataError(name, "caption is empty")
    return text


# ------------------------------------------------------------------ CSV / TSV (open_clip)
def read_csv(path: str | Path, img_key: str = "filepath", caption_key: str = "title", sep: str = "\t") -> ReadReport:
    """open_clip's CSV: header with ``img_key`` and ``caption_key`` columns, separated by ``sep``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(path, f"cannot read ({e.strerror or e})") from e
    lines = raw.splitlines()
    if not lines:
        raise DataError(path, "file is empty (expected a header line)")
    try:
        header = lines[0].decode("utf-8-sig").rstrip("\r").split(sep)
    except UnicodeDecodeError as e:
        raise DataError(path, "header line is not UTF-8") from e
    missing = [c for c in (img_key, caption_key) if c not in header]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; found {header} (separator {sep!r})")
    ii, ci = header.index(img_key), header.index(caption_key)
    records, bad = [], []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        cells = line.split(sep.encode())
        if len(cells) <= max(ii, ci):
            bad.append(f"{where}: {len(cells)} column(s), expected {len(header)}")
            continue
        try:
            caption = decode_caption(cells[ci], where)
            rel = cells[ii].decode("utf-8").strip()
        except (DataError, UnicodeDecodeError) as e:
            bad.append(str(e) if isinstance(e, DataError) else f"{where}: image path is not UTF-8")
            continue
        img = Path(rel)
        if not img.is_absolute():
            img = path.parent / rel if (path.parent / rel).exists() or not Path(rel).exists() else Path(rel)
        records.append(Record(str(path), f"{n}", caption, str(img)))
    return ReadReport(records, bad, [str(path)])


# ------------------------------------------------------------------ webdataset shards
def shard_list(path: str | Path) -> list[Path]:
    """A shard, a folder of shards, or a brace-free glob -> sorted ``.tar`` files."""
    p = Path(path)
    if p.is_dir():
        shards = sorted(p.glob("*.tar"))
    elif any(ch in str(p) for ch in "*?["):
        shards = sorted(Path(p.anchor or ".").glob(str(p.relative_to(p.anchor)) if p.anchor else str(p)))
    else:
        shards = [p]
    if not shards:
        raise DataError(p, "no .tar shards found")
    return shards


def read_wds(path: str | Path | Sequence[Path]) -> ReadReport:
    """Index webdataset shards: one record per key with an image member and a ``.txt`` member."""
    shards = list(path) if isinstance(path, (list, tuple)) else shard_list(path)
    records, bad = [], []
    for shard in shards:
        try:
            tf = tarfile.open(shard, "r:")  # noqa: SIM115 (closed by the `with tf` below)
            members = tf.getmembers()
        except (OSError, tarfile.TarError) as e:
            raise DataError(shard, f"not a readable tar shard ({e})") from e
        groups: dict[str, dict[str, tarfile.TarInfo]] = {}
        for m in members:
            if not m.isfile():
                continue
            base = m.name.rsplit("/", 1)[-1]
            if "." not in base:
                continue
            prefix = m.name[: len(m.name) - len(base)]
            key, ext = base.split(".", 1)
            groups.setdefault(prefix + key, {})["." + ext.lower()] = m
        with tf:
            for key, g in groups.items():
                where = f"{shard}:{key}"
                img = next((g[e] for e in IMAGE_EXTS if e in g), None)
                if img is None:
                    bad.append(f"{where}: no image member")
                    continue
                if ".txt" not in g:
                    bad.append(f"{where}: no .txt caption member")
                    continue
                f = tf.extractfile(g[".txt"])
                try:
                    caption = decode_caption(f.read() if f else b"", where)
                except DataError as e:
                    bad.append(str(e))
                    continue
                records.append(Record(str(shard), key, caption, str(shard), img.offset_data, img.size))
    return ReadReport(records, bad, [str(s) for s in shards])


# ------------------------------------------------------------------ image folder + captions.jsonl
def read_folder(root: str | Path, captions: str = "captions.jsonl") -> ReadReport:
    """``root/captions.jsonl`` lines ``{"file": ..., "caption": ...}``; files relative to ``root``."""
    root = Path(root)
    path = root / captions if root.is_dir() else root
    root = path.parent
    try:
        lines = path.read_bytes().splitlines()
    except OSError as e:
        raise DataError(path, f"cannot read ({e.strerror or e})") from e
    records, bad = [], []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            bad.append(f"{where}: line is not UTF-8")
            continue
        except json.JSONDecodeError as e:
            raise DataError(path, f"line {n} is not valid JSON ({e.msg})") from e
        if not isinstance(obj, dict) or "file" not in obj or "caption" not in obj:
            raise DataError(path, f"line {n} lacks the 'file' / 'caption' keys")
        cap = " ".join(str(obj["caption"]).split())
        if not cap:
            bad.append(f"{where}: caption is empty")
            continue
        records.append(Record(str(path), str(obj["file"]), cap, str(root / str(obj["file"]))))
    return ReadReport(records, bad, [str(path)])


# ------------------------------------------------------------------ dispatch
def detect_format(path: Path) -> str:
    p = Path(path)
    if p.suffix in (".csv", ".tsv"):
        return "csv"
    if p.suffix == ".tar" or (p.is_dir() and any(p.glob("*.tar"))):
        return "wds"
    if p.suffix == ".jsonl" or (p.is_dir() and (p / "captions.jsonl").exists()):
        return "folder"
    if p.is_dir() and (p / "train.csv").exists():
        return "csv"
    raise DataError(p, "cannot tell the format: expected a .csv/.tsv file, .tar shards, or a folder with "
                       "captions.jsonl or train.csv")


def read_any(path: str | Path, fmt: str = "auto", img_key: str = "filepath", caption_key: str = "title",
             sep: str = "\t") -> ReadReport:
    """Read an image-text source in ``fmt`` (``auto`` detects it). A synthetic dataset root is a
    folder holding ``train.csv`` (and ``shards/``)."""
    p = Path(path)
    if not p.exists() and not any(ch in str(p) for ch in "*?["):
        raise DataError(p, "not found")
    fmt = detect_format(p) if fmt == "auto" else fmt
    if fmt == "csv":
        return read_csv(p / "train.csv" if p.is_dir() else p, img_key, caption_key, sep)
    if fmt == "wds":
        return read_wds(p / "shards" if p.is_dir() and (p / "shards").is_dir() else p)
    if fmt == "folder":
        return read_folder(p)
    raise DataError(p, f"unknown data format '{fmt}' (use auto, csv, wds or folder)")


def check_bad_fraction(report: ReadReport, n_bad_images: int, max_bad_fraction: float, what: str) -> None:
    """Raise DataError when more than ``max_bad_fraction`` of the samples were skipped."""
    bad = len(report.bad) + n_bad_images
    total = max(1, report.total)
    if bad and bad / total > max_bad_fraction:
        first = "; ".join(report.bad[:3])
        raise DataError(what, f"{bad} of {total} samples are unreadable ({bad / total:.0%} > "
                              f"data.max_bad_fraction={max_bad_fraction:g}); first: {first}")
    if bad:
        print(f"warning: {what}: skipped {bad} of {total} unreadable samples", file=sys.stderr)


def load_images(records: list[Record], size: int | None, progress: bool = True,
                on_bad: Callable[[str], None] | None = None) -> tuple[np.ndarray, list[int]]:
    """Decode every record's image -> ``(N_ok, S, S, 3)`` uint8 and the indices of the good records."""
    from tqdm import tqdm

    arrs, ok = [], []
    for i, r in enumerate(tqdm(records, desc="decoding images", unit="img", disable=not progress, leave=False)):
        try:
            arrs.append(decode_image(r.read_bytes(), f"{r.source}:{r.key}", size))
            ok.append(i)
        except (DataError, OSError) as e:
            if on_bad is not None:
                on_bad(str(e) if isinstance(e, DataError) else f"{r.source}:{r.key}: {e}")
    if not arrs:
        return np.zeros((0, size or 1, size or 1, 3), np.uint8), ok
    return np.stack(arrs), ok
