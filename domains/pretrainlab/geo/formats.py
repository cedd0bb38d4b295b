"""Readers of the geolocation dataset formats (and of what ``pretrainlab geo data`` writes).

1. CSV + image folder (YFCC / IM2GPS / OSV-5M style). Layout::

       root/train.csv  root/test.csv         one row per image
       root/images/...                       image files (paths in the CSV are relative to root,
                                             or to root/images, or root/images/<split>)

   Column names accepted (case-insensitive): image = ``image`` | ``path`` | ``img_path`` |
   ``filename`` | ``img_id`` | ``id`` (an id without extension gets ``.jpg``, OSV-5M style);
   latitude = ``lat`` | ``latitude``; longitude = ``lon`` | ``lng`` | ``longitude``. Optional
   metadata columns: ``country`` (ISO-2), ``region``, ``town`` / ``city``, ``climate`` (Koppen
   code), ``drive_side``, ``heading``, ``month``, ``elevation``, ``population``, ``temp_mean``,
   ``temp_range``, ``precip_mean``, ``precip_range``.
2. Webdataset shards ``root/shards/<split>-*.tar``: ``<key>.jpg`` (or .png / .jpeg / .webp) +
   ``<key>.json`` holding ``lat`` / ``lon`` (+ the same optional metadata keys).

Every malformed input raises :class:`pretrainlab.core.data.DataError` naming the file (and the
line): missing columns, non-numeric or out-of-range coordinates, duplicate ids, missing or
unreadable images, empty files.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from pretrainlab.core.data import DataError

IMAGE_COLS = ("image", "path", "img_path", "filename", "img_id", "id")
LAT_COLS = ("lat", "latitude")
LON_COLS = ("lon", "lng", "longitude")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")
META_ALIASES = {"city": "town", "sub-region": "region"}


@dataclass
class GeoRecords:
    """Parsed rows: ``ids``, ``latlon (N, 2)``, image sources (paths or bytes), metadata per row."""

    source: Path
    ids: list[str]
    latlon: np.ndarray
    images: list[Path | bytes]
    meta: list[dict[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


def _pick(cols: dict[str, str], names: tuple[str, ...]) -> str | None:
    for n in names:
        if n in cols:
            return cols[n]
    return None


def check_latlon(lat: Any, lon: Any, where: str) -> tuple[float, float]:
    """Parse and range-check one coordinate pair; DataError naming ``where``."""
    try:
        la, lo = float(lat), float(lon)
    except (TypeError, ValueError):
        raise DataError(where, f"latitude / longitude not numeric ({lat!r}, {lon!r})") from None
    if not (math.isfinite(la) and math.isfinite(lo)):
        raise DataError(where, f"latitude / longitude not finite ({lat!r}, {lon!r})")
    if not -90.0 <= la <= 90.0:
        raise DataError(where, f"latitude {la} out of range [-90, 90]")
    if not -180.0 <= lo <= 180.0:
        raise DataError(where, f"longitude {lo} out of range [-180, 180]")
    return la, lo


def _resolve_image(value: str, root: Path, split: str | None, line: str) -> Path:
    cands = []
    name = value if Path(value).suffix.lower() in IMAGE_EXTS else None
    names = [name] if name else [value + e for e in IMAGE_EXTS]
    for n in names:
        cands += [root / n, root / "images" / n] + ([root / "images" / split / n] if split else [])
    for c in cands:
        if c.is_file():
            return c
    raise DataError(line, f"image '{value}' not found (looked in {root}, {root / 'images'})")


def read_csv(path: str | Path, root: str | Path | None = None, check_images: bool = True) -> GeoRecords:
    """A metadata CSV (see the module docstring) -> :class:`GeoRecords`."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    split = path.stem
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(path, "CSV file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, f"cannot read CSV ({e})") from None
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise DataError(path, "empty CSV (no header)")
    cols = {c.strip().lower(): c for c in reader.fieldnames if c}
    ci, ca, co = _pick(cols, IMAGE_COLS), _pick(cols, LAT_COLS), _pick(cols, LON_COLS)
    missing = [what for what, c in (("image/path/id", ci), ("lat/latitude", ca), ("lon/lng/longitude", co)) if c is None]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)}; header is {list(reader.fieldnames)}")
    ids, ll, imgs, meta = [], [], [], []
    seen: dict[str, int] = {}
    for i, r in enumerate(reader, start=2):
        where = f"{path}:{i}"
        key = (r.get(ci) or "").strip()
        if not key:
            raise DataError(where, f"empty '{ci}' value")
        if key in seen:
            raise DataError(where, f"duplicate id '{key}' (first on line {seen[key]})")
        seen[key] = i
        ll.append(check_latlon(r.get(ca), r.get(co), where))
        imgs.append(_resolve_image(key, root, split, where) if check_images else root / key)
        ids.append(key)
        m = {}
        for k, v in r.items():
            if k is None or k in (ci, ca, co):
                continue
            kk = k.strip().lower()
            m[META_ALIASES.get(kk, kk)] = (v or "").strip()
        meta.append(m)
    if not ids:
        raise DataError(path, "CSV has a header but no rows")
    return GeoRecords(path, ids, np.asarray(ll, dtype=np.float64), imgs, meta)


def read_webdataset(shards: list[Path]) -> GeoRecords:
    """Webdataset tar shards (``key.jpg`` + ``key.json`` with lat / lon) -> :class:`GeoRecords`."""
    if not shards:
        raise DataError("(shards)", "no .tar shards given")
    ids, ll, imgs, meta = [], [], [], []
    seen: set[str] = set()
    for shard in shards:
        groups: dict[str, dict[str, bytes]] = {}
        try:
            with tarfile.open(shard, "r") as tar:
                for m in tar.getmembers():
                    if not m.isfile():
                        continue
                    base = m.name.rsplit("/", 1)[-1]
                    key, _, ext = base.partition(".")
                    f = tar.extractfile(m)
                    if f is not None:
                        groups.setdefault(key, {})[ext.lower()] = f.read()
        except (tarfile.TarError, OSError) as e:
            raise DataError(shard, f"not a readable tar shard ({e})") from None
        for key, parts in groups.items():
            where = f"{shard}:{key}"
            if "json" not in parts:
                raise DataError(where, "sample has no .json metadata")
            img = next((parts[e] for e in ("jpg", "jpeg", "png", "webp") if e in parts), None)
            if img is None:
                raise DataError(where, "sample has no image (.jpg/.png/.webp)")
            try:
                js = json.loads(parts["json"])
            except json.JSONDecodeError as e:
                raise DataError(where, f"metadata is not valid JSON ({e})") from None
            la = js.get("lat", js.get("latitude"))
            lo = js.get("lon", js.get("lng", js.get("longitude")))
            if la is None or lo is None:
                raise DataError(where, "metadata lacks lat / lon")
            if key in seen:
                raise DataError(where, f"duplicate id '{key}'")
            seen.add(key)
            ll.append(check_latlon(la, lo, where))
            ids.append(key)
            imgs.append(img)
            meta.append({META_ALIASES.get(k.lower(), k.lower()): str(v) for k, v in js.items()
                         if k.lower() not in ("lat", "lon", "lng", "latitude", "longitude")})
    if not ids:
        raise DataError(shards[0], "shards hold no samples")
    return GeoRecords(shards[0], ids, np.asarray(ll, dtype=np.float64), imgs, meta)


def read_split(root: str | Path, split: str, fmt: str = "auto") -> GeoRecords:
    """``root/<split>.csv`` (fmt ``csv``) or ``root/shards/<split>-*.tar`` (fmt ``wds``); ``auto`` prefers CSV."""
    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".csv":
        return read_csv(root)
    if not root.exists():
        raise DataError(root, "dataset folder not found")
    csv_path = root / f"{split}.csv"
    shards = sorted((root / "shards").glob(f"{split}-*.tar")) + sorted(root.glob(f"{split}-*.tar"))
    if fmt == "csv" or (fmt == "auto" and csv_path.exists()):
        return read_csv(csv_path, root)
    if fmt in ("wds", "auto") and shards:
        return read_webdataset(shards)
    raise DataError(root, f"no {split}.csv and no shards/{split}-*.tar (expected the CSV or webdataset layout)")


def load_image(src: Path | bytes, size: int, name: str = "(image)") -> torch.Tensor:
    """An image file or encoded bytes -> ``(3, size, size)`` uint8 (resized); DataError if unreadable."""
    where = str(src) if isinstance(src, Path) else name
    try:
        with Image.open(src if isinstance(src, Path) else io.BytesIO(src)) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8).copy()
    except FileNotFoundError:
        raise DataError(where, "image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(where, f"not a readable image ({e})") from None
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def load_images(rec: GeoRecords, size: int, desc: str = "decode") -> torch.Tensor:
    """All images of ``rec`` as ``(N, 3, size, size)`` uint8."""
    from tqdm.auto import tqdm

    out = torch.empty((len(rec), 3, size, size), dtype=torch.uint8)
    for i, (src, key) in enumerate(tqdm(list(zip(rec.images, rec.ids)), desc=desc, unit="img", leave=False)):
        out[i] = load_image(src, size, f"{rec.source}:{key}")
    return out
