"""Readers of the geolocation dataset layouts (and of what ``pretrainlab geo data`` writes).

Readers return :class:`GeoRecords`: an index of the split held in numpy arrays (ids, coordinates,
where each image lives, compact metadata columns). No image is decoded here: images are decoded
lazily by :func:`decode_image`, one per ``__getitem__`` in DataLoader workers, so a split of any
size costs its index only (about 60 bytes per row plus the kept metadata: ~0.5 GB for OSV-5M's
4.9M training rows).

Layouts (``layout="auto"`` recognises them from the header; a layout name forces one):

- ``osv5m``: OpenStreetView-5M ``train.csv`` / ``test.csv`` (``id,latitude,longitude,
  thumb_original_url,country,sequence,captured_at,lon_bin,lat_bin,cell,land_cover,road_index,
  drive_side,climate,soil,dist_sea,region,sub-region,city,...``); images ``images/<split>/<id>.jpg``
  or ``images/<split>/<shard>/<id>.jpg`` (the extracted ``NN.zip`` shards). ``climate`` holds the
  Beck et al. (2018) Koppen-Geiger code 1..30 (0 = none), ``region`` and ``sub-region`` are kept
  apart, the month comes from ``captured_at`` (epoch milliseconds). OSV-5M's numeric
  ``drive_side`` is not interpreted (its coding is not documented): the side comes from the
  country (``tables/cues.json``).
- ``geoestimation``: MP-16 ``mp16_places365.csv`` and Im2GPS ``im2gps_places365.csv`` of
  TIBHannover/GeoEstimation (``IMG_ID,AUTHOR,LAT,LON,S3_Label,S16_Label,S365_Label,
  Prob_indoor,Prob_natural,Prob_urban``; MP-16 ids are relative paths such as ``34/8d/905.jpg``).
- ``im2gps3k``: GeoEstimation's ``im2gps3k_places365.csv``, whose header says
  ``IMG_ID,AUTHOR,LON,LAT,...`` but whose rows hold the LATITUDE first (London is
  ``51.50,-0.14``): read as latitude, longitude, with a note.
- ``yfcc100m``: YFCC4k / YFCC26k ``info.txt`` (tab-separated YFCC100M metadata rows: field 1 the
  photo id, 12 longitude, 13 latitude; images ``<id>.jpg``).
- ``generic``: any CSV with image = ``image|path|img_path|filename|img_id|id`` (an id without
  extension gets ``.jpg``), latitude = ``lat|latitude``, longitude = ``lon|lng|longitude``
  (case-insensitive) and optional metadata ``country`` (ISO-2), ``region``, ``town``/``city``,
  ``climate`` (Koppen code or Beck number), ``drive_side``, ``heading``, ``month``, ``elevation``,
  ``population``, ``temp_mean``, ``temp_range``, ``precip_mean``, ``precip_range``. With
  ``views=4`` the first four columns whose name contains ``image`` are a location's panorama.
- Webdataset shards ``shards/<split>-*.tar`` of ``<key>.jpg|png|webp`` + ``<key>.json``
  (``lat`` / ``lon`` + metadata): the tar headers are indexed (offsets), samples are read with one
  seek each.

Bad input raises :class:`pretrainlab.core.data.DataError` naming the file (and the line): missing
columns, non-numeric / out-of-range coordinates, duplicate ids, rows longer than the header,
missing images, non-UTF-8 text, truncated shards, images whose header declares more pixels than
``max_pixels`` (checked before decoding).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pretrainlab.core.data import DataError

IMAGE_COLS = ("image", "path", "img_path", "filename", "img_id", "id")
LAT_COLS = ("lat", "latitude")
LON_COLS = ("lon", "lng", "longitude")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")
LAYOUTS = ("auto", "generic", "osv5m", "geoestimation", "im2gps3k", "yfcc100m")
# metadata kept per row (the rest of a CSV's columns is dropped to keep the index small)
META_ALIASES = {"city": "town", "sub-region": "subregion", "geo_area": "region", "climate_zone": "climate",
                "driving_right": "drive_side"}
TEXT_META = ("country", "country_name", "region", "subregion", "town", "climate", "drive_side")
NUMERIC_META = ("heading", "month", "elevation", "population", "temp_mean", "temp_range", "precip_mean",
                "precip_range", "captured_at")
KOPPEN = ("Af", "Am", "Aw", "BWh", "BWk", "BSh", "BSk", "Csa", "Csb", "Csc", "Cwa", "Cwb", "Cwc", "Cfa",
          "Cfb", "Cfc", "Dsa", "Dsb", "Dsc", "Dsd", "Dwa", "Dwb", "Dwc", "Dwd", "Dfa", "Dfb", "Dfc", "Dfd",
          "ET", "EF")  # the 30 Koppen-Geiger classes in Beck et al. (2018)'s numbering 1..30 (OSV-5M, PIGEON's raster)
REGRESSIONS = ("elevation", "population", "temp_mean", "temp_range", "precip_mean", "precip_range")  # ref NUM_MULTI_TASK_VARIABLES
OSV5M_MARKERS = ("thumb_original_url", "sub-region", "unique_city", "quadtree_10_1000", "land_cover")
MAX_IMAGE_PIXELS = 89_478_485  # PIL's own decompression-bomb threshold; every real dataset image is far below
YFCC_ID, YFCC_LON, YFCC_LAT = 1, 12, 13  # YFCC100M metadata fields (tab-separated)


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


# ----------------------------------------------------------------------------- compact columns

class MetaTable:
    """Metadata columns: text as int32 codes into a vocabulary, numbers as float32 (NaN = missing)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.text: dict[str, tuple[np.ndarray, list[str]]] = {}
        self.num: dict[str, np.ndarray] = {}

    def add_text(self, name: str, values: list[str]) -> None:
        vocab: dict[str, int] = {"": 0}
        codes = np.fromiter((vocab.setdefault(v, len(vocab)) for v in values), dtype=np.int32, count=len(values))
        self.text[name] = (codes, list(vocab))

    def add_num(self, name: str, values: np.ndarray) -> None:
        self.num[name] = np.asarray(values, dtype=np.float32)

    def get(self, name: str, i: int) -> str:
        if name in self.text:
            codes, vocab = self.text[name]
            return vocab[int(codes[i])]
        if name in self.num:
            v = float(self.num[name][i])
            return "" if not math.isfinite(v) else (str(int(v)) if v.is_integer() else str(v))
        return ""

    def column(self, name: str) -> list[str]:
        return [self.get(name, i) for i in range(self.n)]

    def numeric(self, name: str) -> np.ndarray:
        if name in self.num:
            return self.num[name]
        if name in self.text:
            codes, vocab = self.text[name]
            table = np.array([_float(v) for v in vocab], dtype=np.float32)
            return table[codes]
        return np.full(self.n, np.nan, dtype=np.float32)

    def row(self, i: int) -> dict[str, str]:
        return {k: self.get(k, i) for k in list(self.text) + list(self.num) if self.get(k, i) != ""}

    def names(self) -> list[str]:
        return list(self.text) + list(self.num)


def _float(v: Any) -> float:
    try:
        return float(v) if v not in (None, "") else float("nan")
    except (TypeError, ValueError):
        return float("nan")


@dataclass
class ImageRefs:
    """Where each row's image lives: files (``dirs[dir_idx[i]] / names[i]``) or tar members."""

    kind: str  # files | tar
    names: np.ndarray  # (N,) bytes: file name relative to its dir, or the sample key in a shard
    dirs: list[Path] = field(default_factory=list)
    dir_idx: np.ndarray | None = None  # (N,) int16
    shards: list[Path] = field(default_factory=list)
    shard_idx: np.ndarray | None = None  # (N,) int32
    offset: np.ndarray | None = None  # (N,) int64: data offset of the image member
    size: np.ndarray | None = None  # (N,) int64

    def source(self, i: int) -> Path | tuple[Path, int, int]:
        if self.kind == "files":
            return self.dirs[int(self.dir_idx[i])] / self.names[i].decode()  # type: ignore[index]
        return self.shards[int(self.shard_idx[i])], int(self.offset[i]), int(self.size[i])  # type: ignore[index]

@dataclass
class GeoRecords:
    """One split's index: ``ids (N,)``, ``latlon (N, 2)``, image references per view, metadata."""

    source: Path
    ids: np.ndarray  # (N,) bytes
    latlon: np.ndarray  # (N, 2) float64
    views: list[ImageRefs]  # one entry per panorama view (1 = single images)
    meta: MetaTable
    layout: str = "generic"
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def images(self) -> ImageRefs:
        return self.views[0]

    def image(self, i: int, view: int = 0) -> Path | tuple[Path, int, int]:
        return self.views[view].source(i)

# ----------------------------------------------------------------------------- image files

def _candidate_dirs(root: Path, split: str | None) -> list[Path]:
    c = [root, root / "images"] + ([root / "images" / split, root / split, root / split / split] if split else [])
    return [d for d in dict.fromkeys(c) if d.is_dir()]


def resolve_images(names: list[str], root: Path, split: str | None, source: Path, lines: np.ndarray) -> ImageRefs:
    """Find every row's image file: flat candidate folders first (one stat per row), then the
    sub-folders of ``images/<split>`` (OSV-5M's extracted shards) by a sorted-name match."""
    n = len(names)
    fnames = [v if Path(v).suffix.lower() in IMAGE_EXTS else v + ".jpg" for v in names]
    dirs = _candidate_dirs(root, split)
    dir_idx = np.full(n, -1, dtype=np.int16)
    last = 0
    for i, f in enumerate(fnames):
        order = [last] + [j for j in range(len(dirs)) if j != last] if dirs else []
        for j in order:
            if os.path.isfile(os.path.join(dirs[j], f)):
                dir_idx[i] = last = j
                break
    missing = np.flatnonzero(dir_idx < 0)
    if len(missing):  # images/<split>/<sub>/<name>: scan sub-folders once, match names in bulk
        subs: list[Path] = []
        for base in [d for d in (root / "images" / split if split else None, root / "images", root) if d is not None]:
            if base.is_dir():
                subs += sorted(p for p in base.iterdir() if p.is_dir())
        want = np.array([fnames[i] for i in missing], dtype=object)
        order = np.argsort(want)
        sorted_want = want[order]
        for sub in dict.fromkeys(subs):
            if sub in dirs:
                continue
            try:
                listing = np.array(sorted(os.listdir(sub)), dtype=object)
            except OSError:
                continue
            pos = np.searchsorted(sorted_want, listing)
            ok = pos < len(sorted_want)
            hit = np.zeros(len(listing), dtype=bool)
            hit[ok] = sorted_want[pos[ok]] == listing[ok]
            if not hit.any():
                continue
            dirs.append(sub)
            rows = missing[order[pos[hit]]]
            dir_idx[rows] = len(dirs) - 1
        missing = np.flatnonzero(dir_idx < 0)
    if len(missing):
        i = int(missing[0])
        looked = ", ".join(str(d) for d in _candidate_dirs(root, split)) or str(root)
        more = f" (and {len(missing) - 1} more rows)" if len(missing) > 1 else ""
        raise DataError(f"{source}:{int(lines[i])}", f"image '{names[i]}' not found (looked in {looked} and their "
                                                      f"sub-folders){more}")
    if len(dirs) > np.iinfo(np.int16).max:
        raise DataError(source, f"images spread over {len(dirs)} folders; at most {np.iinfo(np.int16).max} are supported")
    return ImageRefs("files", np.array([f.encode() for f in fnames], dtype=bytes), dirs, dir_idx)


# ----------------------------------------------------------------------------- CSV layouts

@dataclass
class _Layout:
    name: str
    image: list[str]  # header names of the image column(s) (views)
    lat: str
    lon: str
    note: str = ""


def detect_layout(header: list[str], path: Path, forced: str = "auto", views: int = 1) -> _Layout:
    """Which layout a CSV header belongs to (see the module docstring)."""
    if forced not in LAYOUTS:
        raise DataError(path, f"unknown layout '{forced}'; allowed: {', '.join(LAYOUTS)}")
    low = {h.strip().lower(): h for h in header if h is not None}
    stripped = [h.strip() for h in header]
    name = forced
    if name == "auto":
        if stripped[:5] == ["IMG_ID", "AUTHOR", "LON", "LAT", "S3_Label"]:
            name = "im2gps3k"
        elif stripped[:4] == ["IMG_ID", "AUTHOR", "LAT", "LON"]:
            name = "geoestimation"
        elif {"id", "latitude", "longitude"} <= set(low) and any(m in low for m in OSV5M_MARKERS):
            name = "osv5m"
        else:
            name = "generic"
    if name == "im2gps3k":
        if "lon" not in low or "lat" not in low or "img_id" not in low:
            raise DataError(path, f"layout im2gps3k needs IMG_ID, LON, LAT columns; header is {header}")
        return _Layout(name, [low["img_id"]], lat=low["lon"], lon=low["lat"],
                       note=f"{path}: GeoEstimation's IM2GPS3k file names its columns LON,LAT but stores the "
                            f"latitude first; read as latitude, longitude (layout=generic reads the header as written)")
    if name == "geoestimation":
        if not {"img_id", "lat", "lon"} <= set(low):
            raise DataError(path, f"layout geoestimation needs IMG_ID, LAT, LON columns; header is {header}")
        return _Layout(name, [low["img_id"]], low["lat"], low["lon"])
    if name == "osv5m":
        if not {"id", "latitude", "longitude"} <= set(low):
            raise DataError(path, f"layout osv5m needs id, latitude, longitude columns; header is {header}")
        return _Layout(name, [low["id"]], low["latitude"], low["longitude"])
    img = next((low[c] for c in IMAGE_COLS if c in low), None)
    la = next((low[c] for c in LAT_COLS if c in low), None)
    lo = next((low[c] for c in LON_COLS if c in low), None)
    missing = [w for w, c in (("image/path/id", img), ("lat/latitude", la), ("lon/lng/longitude", lo)) if c is None]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)}; header is {header}")
    cols = [img]  # type: ignore[list-item]
    if views > 1:
        cols = [h for h in header if h and "image" in h.lower()][:views]
        if len(cols) < views:
            raise DataError(path, f"{views} panorama views need {views} columns whose name contains 'image'; "
                                  f"header is {header}")
    return _Layout(name, cols, la, lo)  # type: ignore[arg-type]


def _open_text(path: Path, what: str) -> io.TextIOWrapper:
    if path.is_dir():
        raise DataError(path, f"is a folder, expected a {what}")
    try:
        f = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        raise DataError(path, f"{what} not found") from None
    except OSError as e:
        raise DataError(path, f"cannot read {what} ({e.strerror or e})") from None
    return f


def read_csv(path: str | Path, root: str | Path | None = None, check_images: bool = True, layout: str = "auto",
             views: int = 1, split: str | None = None) -> GeoRecords:
    """A metadata CSV (see the module docstring) -> :class:`GeoRecords` (images located, not decoded)."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    split = split or path.stem
    f = _open_text(path, "CSV file")
    try:
        return _read_rows(csv.reader(f), path, root, split, check_images, layout, views)
    except UnicodeDecodeError as e:
        raise DataError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise DataError(path, f"malformed CSV ({e})") from None
    finally:
        f.close()


def read_yfcc_tsv(path: str | Path, root: str | Path | None = None, check_images: bool = True) -> GeoRecords:
    """YFCC4k / YFCC26k ``info.txt``: tab-separated YFCC100M rows (id field 1, lon 12, lat 13)."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    f = _open_text(path, "YFCC metadata file")
    header = ["line", "IMG_ID"] + [f"f{i}" for i in range(2, YFCC_LON)] + ["LON", "LAT"]

    def rows():  # the YFCC100M columns, as a header + rows for the CSV row reader
        yield header
        for n, line in enumerate(f, start=1):
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) <= YFCC_LAT:
                raise DataError(f"{path}:{n}", f"expected >= {YFCC_LAT + 1} tab-separated fields (YFCC100M "
                                               f"metadata), got {len(parts)}")
            yield parts[:YFCC_LAT + 1]

    try:
        return _read_rows(rows(), path, root, None, check_images, "yfcc100m", 1, first_line=1)
    except UnicodeDecodeError as e:
        raise DataError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    finally:
        f.close()


def _read_rows(reader: Any, path: Path, root: Path, split: str | None, check_images: bool, layout: str,
               views: int, first_line: int = 2) -> GeoRecords:
    header = next(iter(reader), None) if not hasattr(reader, "__next__") else next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise DataError(path, "empty CSV (no header)")
    if layout == "yfcc100m":
        lay = _Layout("yfcc100m", ["IMG_ID"], "LAT", "LON")
    else:
        lay = detect_layout(header, path, layout, views)
    col = {h: i for i, h in enumerate(header)}
    ci = [col[c] for c in lay.image]
    ca, co = col[lay.lat], col[lay.lon]
    keep = {}
    for h, i in col.items():
        k = h.strip().lower() if h else ""
        k = META_ALIASES.get(k, k)
        if k in TEXT_META + NUMERIC_META and i not in ci + [ca, co] and k not in keep:
            keep[k] = i
    ids: list[str] = []
    names: list[list[str]] = [[] for _ in ci]
    lat = np.empty(1024)
    lon = np.empty(1024)
    cols: dict[str, list[str]] = {k: [] for k in keep}
    lines: list[int] = []
    seen: dict[str, int] = {}
    width = len(header)
    n = 0
    for line, r in enumerate(reader, start=first_line):
        if not r or (len(r) == 1 and not r[0].strip()):
            continue
        where = f"{path}:{line}"
        if len(r) > width:
            raise DataError(where, f"row has {len(r)} fields but the header has {width}")
        if len(r) < width:
            r = r + [""] * (width - len(r))
        key = r[ci[0]].strip()
        if not key:
            raise DataError(where, f"empty '{header[ci[0]]}' value")
        if key in seen:
            raise DataError(where, f"duplicate id '{key}' (first on line {seen[key]})")
        seen[key] = line
        la, lo = check_latlon(r[ca], r[co], where)
        if n == len(lat):
            lat, lon = np.resize(lat, 2 * n), np.resize(lon, 2 * n)
        lat[n], lon[n] = la, lo
        n += 1
        ids.append(key)
        for v, c in zip(names, ci):
            v.append(r[c].strip())
        for k, i in keep.items():
            cols[k].append(r[i].strip())
        lines.append(line)
    if n == 0:
        raise DataError(path, "CSV has a header but no rows")
    del seen
    notes = [lay.note] if lay.note else []
    meta = _meta_table(cols, n, lay.name, path, notes)
    line_arr = np.asarray(lines, dtype=np.int64)
    if check_images:
        refs = [resolve_images(v, root, split, path, line_arr) for v in names]
    else:
        refs = [ImageRefs("files", np.array([s.encode() for s in v], dtype=bytes), [root], np.zeros(n, dtype=np.int16))
                for v in names]
    return GeoRecords(path, np.array([s.encode() for s in ids], dtype=bytes), np.stack([lat[:n], lon[:n]], axis=1),
                      refs, meta, lay.name, notes)


def koppen_class(value: str) -> str:
    """A Koppen class name from a class name or a Beck et al. (2018) number 1..30; '' when unknown / 0."""
    v = value.strip()
    if v in KOPPEN:
        return v
    try:
        k = float(v)
    except ValueError:
        return ""
    return KOPPEN[int(k) - 1] if k.is_integer() and 1 <= k <= len(KOPPEN) else ""


def _meta_table(cols: dict[str, list[str]], n: int, layout: str, path: Path, notes: list[str]) -> MetaTable:
    import datetime

    meta = MetaTable(n)
    for k, vals in cols.items():
        if k == "climate":
            mapped = [koppen_class(v) for v in vals]
            bad = sum(1 for v, m in zip(vals, mapped) if v and v != "0" and not m)
            if bad:
                notes.append(f"{path}: {bad} climate values are neither a Koppen class nor a number 1..30 (ignored)")
            meta.add_text(k, mapped)
        elif k == "drive_side":
            low = [v.lower() for v in vals]
            side = ["right" if v in ("right", "true", "r") else "left" if v in ("left", "false", "l") else "" for v in low]
            if layout == "osv5m" or (any(low) and not any(side)):
                notes.append(f"{path}: numeric drive_side not interpreted; the side comes from the country")
                side = [""] * n
            meta.add_text(k, side)
        elif k in NUMERIC_META:
            meta.add_num(k, np.array([_float(v) for v in vals], dtype=np.float32))
        else:
            meta.add_text(k, vals)
    if "month" not in meta.num and "captured_at" in meta.num:  # OSV-5M: epoch milliseconds
        t = meta.num.pop("captured_at")
        month = np.full(n, np.nan, dtype=np.float32)
        for i, v in enumerate(t):
            if math.isfinite(v) and v > 0:
                s = v / 1000.0 if v > 1e11 else v
                try:
                    month[i] = datetime.datetime.fromtimestamp(float(s), datetime.timezone.utc).month
                except (OverflowError, OSError, ValueError):
                    pass
        meta.add_num("month", month)
    meta.num.pop("captured_at", None)
    return meta


# ----------------------------------------------------------------------------- webdataset shards

def read_webdataset(shards: list[Path]) -> GeoRecords:
    """Index webdataset tar shards (``key.jpg`` + ``key.json`` with lat / lon): member offsets only,
    no image bytes are read."""
    if not shards:
        raise DataError("(shards)", "no .tar shards given")
    ids: list[str] = []
    ll: list[tuple[float, float]] = []
    shard_idx: list[int] = []
    offs: list[int] = []
    sizes: list[int] = []
    names: list[str] = []
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for si, shard in enumerate(shards):
        groups: dict[str, dict[str, tarfile.TarInfo]] = {}
        try:
            with tarfile.open(shard, "r:") as tar:
                for m in tar:
                    if not m.isfile():
                        continue
                    base = m.name.rsplit("/", 1)[-1]
                    key, _, ext = base.partition(".")
                    groups.setdefault(key, {})[ext.lower()] = m
                for key, parts in groups.items():
                    where = f"{shard}:{key}"
                    if "json" not in parts:
                        raise DataError(where, "sample has no .json metadata")
                    img = next((parts[e] for e in ("jpg", "jpeg", "png", "webp") if e in parts), None)
                    if img is None:
                        raise DataError(where, "sample has no image (.jpg/.png/.webp)")
                    if parts["json"].size > 1 << 20:
                        raise DataError(where, f"metadata JSON of {parts['json'].size} bytes (over 1 MiB)")
                    fj = tar.extractfile(parts["json"])
                    raw = fj.read() if fj is not None else b""
                    if len(raw) != parts["json"].size:
                        raise DataError(where, "metadata JSON is truncated")
                    try:
                        js = json.loads(raw.decode("utf-8"))
                    except (json.JSONDecodeError, UnicodeDecodeError) as e:
                        raise DataError(where, f"metadata is not valid UTF-8 JSON ({e})") from None
                    if not isinstance(js, dict):
                        raise DataError(where, "metadata JSON is not an object")
                    la = js.get("lat", js.get("latitude"))
                    lo = js.get("lon", js.get("lng", js.get("longitude")))
                    if la is None or lo is None:
                        raise DataError(where, "metadata lacks lat / lon")
                    if key in seen:
                        raise DataError(where, f"duplicate id '{key}'")
                    seen.add(key)
                    ll.append(check_latlon(la, lo, where))
                    ids.append(key)
                    shard_idx.append(si)
                    offs.append(int(img.offset_data))
                    sizes.append(int(img.size))
                    names.append(key)
                    rows.append({META_ALIASES.get(k.lower(), k.lower()): v for k, v in js.items()})
            end = shard.stat().st_size
            if offs and shard_idx[-1] == si and offs[-1] + sizes[-1] > end:
                raise DataError(shard, "tar shard is truncated (an image extends past the end of the file)")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(shard, f"not a readable tar shard ({type(e).__name__}: {e})") from None
    if not ids:
        raise DataError(shards[0], "shards hold no samples")
    n = len(ids)
    cols = {k: [("" if r.get(k) is None else str(r.get(k))) for r in rows]
            for k in TEXT_META + NUMERIC_META if any(k in r for r in rows)}
    notes: list[str] = []
    meta = _meta_table(cols, n, "wds", shards[0], notes)
    ref = ImageRefs("tar", np.array([s.encode() for s in names], dtype=bytes), shards=list(shards),
                    shard_idx=np.asarray(shard_idx, dtype=np.int32), offset=np.asarray(offs, dtype=np.int64),
                    size=np.asarray(sizes, dtype=np.int64))
    return GeoRecords(shards[0], np.array([s.encode() for s in ids], dtype=bytes), np.asarray(ll, dtype=np.float64),
                      [ref], meta, "wds", notes)


def read_split(root: str | Path, split: str, fmt: str = "auto", layout: str = "auto", views: int = 1,
               check_images: bool = True) -> GeoRecords:
    """``root/<split>.csv`` (OSV-5M also ``root/<split>/<split>.csv``), ``root/shards/<split>-*.tar``,
    or a YFCC ``info.txt``; ``fmt``: auto | csv | wds."""
    root = Path(root)
    if fmt not in ("auto", "csv", "wds"):
        raise DataError(root, f"unknown data format '{fmt}'; allowed: auto, csv, wds")
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return read_csv(root, check_images=check_images, layout=layout, views=views, split=split)
        if root.suffix.lower() == ".txt":
            return read_yfcc_tsv(root, check_images=check_images)
        raise DataError(root, "expected a dataset folder, a .csv file or a YFCC info.txt")
    if not root.exists():
        raise DataError(root, "dataset folder not found")
    csvs = [p for p in (root / f"{split}.csv", root / split / f"{split}.csv") if p.is_file()]
    shards = sorted((root / "shards").glob(f"{split}-*.tar")) + sorted(root.glob(f"{split}-*.tar"))
    if fmt == "csv" or (fmt == "auto" and csvs):
        return read_csv(csvs[0] if csvs else root / f"{split}.csv", root, check_images, layout, views, split)
    if fmt in ("wds", "auto") and shards:
        return read_webdataset(shards)
    if fmt == "auto" and (root / "info.txt").is_file() and split == "test":
        return read_yfcc_tsv(root / "info.txt", root, check_images)
    raise DataError(root, f"no {split}.csv and no shards/{split}-*.tar (expected the CSV or webdataset layout)")


# ----------------------------------------------------------------------------- decoding

def _read_member(shard: Path, offset: int, size: int) -> bytes:
    with open(shard, "rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise DataError(shard, f"truncated shard: image at byte {offset} ends early")
    return data


def clip_resize_crop(im: Any, size: int) -> Any:
    """CLIP's evaluation preprocessing (OpenAI / open_clip ``image_transform(is_train=False)``, the
    Hugging Face ``CLIPProcessor`` of the reference): resize the shorter side to ``size`` with bicubic
    interpolation, then take the centre ``size x size`` crop."""
    from PIL import Image

    w, h = im.size
    if (w, h) != (size, size):
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = size, int(size * long / short)
        nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
        im = im.resize((nw, nh), Image.BICUBIC)
        left = round((nw - size) / 2.0)  # torchvision CenterCrop: int(round(...))
        top = round((nh - size) / 2.0)
        im = im.crop((left, top, left + size, top + size))
    return im


def decode_image(src: Path | bytes | tuple[Path, int, int], size: int, name: str = "(image)",
                 max_pixels: int = MAX_IMAGE_PIXELS) -> torch.Tensor:
    """An image file, encoded bytes or a tar member -> ``(3, size, size)`` uint8 (CLIP resize + centre
    crop). The declared width x height is checked before the pixels are decoded."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(src, tuple):
        name = f"{src[0]}:{name}" if name != "(image)" else str(src[0])
        src = _read_member(*src)
    where = str(src) if isinstance(src, Path) else name
    if isinstance(src, Path):
        if src.is_dir():
            raise DataError(src, "is a folder, expected an image file")
        if not src.exists():
            raise DataError(src, "image file not found")
    try:
        with Image.open(src if isinstance(src, Path) else io.BytesIO(src)) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise DataError(where, f"image header declares {w} x {h} pixels, over the limit of {max_pixels}")
            if w < 1 or h < 1:
                raise DataError(where, f"image header declares {w} x {h} pixels")
            im.load()
            im = clip_resize_crop(im.convert("RGB"), size)
            arr = np.asarray(im, dtype=np.uint8).copy()
    except DataError:
        raise
    except Image.DecompressionBombError as e:
        raise DataError(where, f"image is too large to decode ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise DataError(where, f"not a readable image ({type(e).__name__}: {e}); truncated or corrupt?") from None
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def read_points(path: str | Path, layout: str = "auto") -> np.ndarray:
    """Coordinates ``(N, 2)`` (lat, lon) of a dataset CSV / YFCC info.txt, without touching images."""
    path = Path(path)
    if path.suffix.lower() == ".txt":
        return read_yfcc_tsv(path, check_images=False).latlon
    if not path.exists() and not path.suffix:
        raise DataError(path, "points file not found")
    if path.is_dir():
        return read_split(path, "train", layout=layout, check_images=False).latlon
    return _read_points_csv(path, layout)


def _read_points_csv(path: Path, layout: str) -> np.ndarray:
    f = _open_text(path, "points CSV")
    try:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise DataError(path, "empty CSV (no header)")
        low = {h.strip().lower(): h for h in header}
        if layout == "auto" and not any(c in low for c in IMAGE_COLS):  # a plain lat / lon list
            la = next((low[c] for c in LAT_COLS if c in low), None)
            lo = next((low[c] for c in LON_COLS if c in low), None)
            if la is None or lo is None:
                raise DataError(path, f"missing lat / lon columns; header is {header}")
            lay = _Layout("points", [], la, lo)
        else:
            lay = detect_layout(header, path, layout)
        col = {h: i for i, h in enumerate(header)}
        out = []
        for line, r in enumerate(reader, start=2):
            if not r or (len(r) == 1 and not r[0].strip()):
                continue
            if len(r) > len(header):
                raise DataError(f"{path}:{line}", f"row has {len(r)} fields but the header has {len(header)}")
            r = r + [""] * (len(header) - len(r))
            out.append(check_latlon(r[col[lay.lat]], r[col[lay.lon]], f"{path}:{line}"))
        if not out:
            raise DataError(path, "CSV has no rows")
        return np.asarray(out, dtype=np.float64)
    except UnicodeDecodeError as e:
        raise DataError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise DataError(path, f"malformed CSV ({e})") from None
    finally:
        f.close()
