"""RAW and RGB readers of the ISP datasets (paper Sec. 4 "Datasets") and the paired / unpaired sets.

Supported layouts (``<split>`` is ``train`` / ``test``)::

    Zurich RAW-to-RGB      <split>/huawei_raw/*.png (16-bit Bayer)    <split>/canon/*.jpg
    Fujifilm UltraISP      <split>/mediatek_raw/*.png (16-bit Bayer)  <split>/fujifilm/*.png
    NTIRE 2026 (unpaired)  <split>/raws/*.npy (H x W x 4, R G G B)    <split>/jpegs/*.jpg
    packed .npy pairs      <split>/raw/*.npy                          <split>/rgb/*.png
    disjoint RGB targets   <split>/<rgb folder>_unpaired/*  (optional; read by the unpaired set only)
    camera RAW             any *.dng / *.cr2 / *.nef / *.arw / *.raf / *.orf / *.rw2 (rawpy)

:class:`PairedISP` matches RAW and RGB files by stem (paired training, and every test split).
:class:`UnpairedISP` reads a RAW folder and a SEPARATE RGB folder with no stem matching at all:
each RAW meets a random RGB image. Both decode lazily (DataLoader workers decode in parallel) and
keep decoded items in memory only up to ``cache_mb``.

RAW values stay sensor counts until :func:`normalise_counts` (``bayer.NORM_PRESETS``); the
conventional-ISP content reference is rendered from the counts as the reference does
(``conventional_isp.reference_render``). Every reader raises :class:`DataError` naming the file;
declared sizes (PNG / NPY headers) are checked before anything is allocated (``core.guards``).
An optional ``isp_dataset.json`` at the root gives ``norm`` and ``bayer_pattern``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pretrainlab.core.data import DataError
from pretrainlab.isp.bayer import NORM_PRESETS, PATTERNS, normalise, ntire_to_packed, pack, to_rggb

# RAW folder -> the normalisation its files get with data.norm=auto
RAW_FOLDERS = {"huawei_raw": "zurich", "mediatek_raw": "fujifilm", "raws": "ntire", "raw": "ntire"}
RGB_FOLDERS = ("canon", "fujifilm", "jpegs", "rgb")
CAMERA_RAW_SUFFIXES = (".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2", ".pef", ".srw")
RAW_SUFFIXES = (".png", ".npy") + CAMERA_RAW_SUFFIXES
RGB_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_COUNT = 16383  # 14-bit: anything above is not a RAW count
NORMS = ("auto", "camera", *NORM_PRESETS)


# ------------------------------------------------------------------------------------------ files


def read_bayer_png(path: Path) -> np.ndarray:
    """A single-channel 16-bit PNG Bayer mosaic -> ``(H, W)`` uint16 counts (size checked before decoding)."""
    from pretrainlab.core.guards import check_decode_size, image_size, open_image

    path = Path(path)
    w, h, mode = image_size(path)
    if mode not in ("I;16", "I;16B", "I;16L", "I"):
        if mode in ("L", "P", "1", "LA"):
            raise DataError(path, f"RAW mosaic is 8-bit (mode '{mode}'); expected a single-channel 16-bit Bayer PNG")
        raise DataError(path, f"RAW mosaic has mode '{mode}' ({len(mode)} channel(s)?); expected a single-channel "
                              "16-bit Bayer PNG")
    check_decode_size(path, (h, w), 8, "RAW mosaic")
    arr = np.asarray(open_image(path))
    if arr.ndim != 2:
        raise DataError(path, f"RAW mosaic must have 1 channel, decoded shape {arr.shape}")
    return check_mosaic(arr.astype(np.int64), path).astype(np.uint16)


def check_mosaic(arr: np.ndarray, path: Path) -> np.ndarray:
    """Reject mosaics with odd or tiny dimensions, negative or out-of-range counts."""
    if arr.ndim != 2:
        raise DataError(path, f"RAW mosaic must be 2-D (H, W), got shape {arr.shape}")
    h, w = arr.shape
    if h % 2 or w % 2:
        raise DataError(path, f"RAW mosaic has odd dimensions {h}x{w}; a Bayer mosaic needs even height and width")
    if h < 4 or w < 4:
        raise DataError(path, f"RAW mosaic of {h}x{w} is too small (at least 4x4)")
    if arr.min() < 0 or arr.max() > MAX_COUNT:
        raise DataError(path, f"RAW counts outside [0, {MAX_COUNT}] (min {arr.min()}, max {arr.max()})")
    return arr


def _check_counts(arr: np.ndarray, path: Path) -> None:
    """Packed / mosaic ``.npy`` values must be finite sensor counts, not an already-normalised image."""
    if not np.isfinite(arr).all():
        raise DataError(path, "RAW array holds NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0 or hi > MAX_COUNT:
        raise DataError(path, f"RAW counts outside [0, {MAX_COUNT}] (min {lo:g}, max {hi:g})")
    if np.issubdtype(arr.dtype, np.floating) and hi <= 1.0:
        raise DataError(path, f"{arr.dtype} values in [{lo:g}, {hi:g}] look already normalised; expected sensor "
                              "counts (e.g. uint16 0-1023)")


def read_packed_npy(path: Path) -> np.ndarray:
    """A RAW ``.npy`` -> ``(4, h, w)`` float32 counts in the reference packing order.

    ``(H, W, 4)`` arrays are NTIRE 2026 packed RAWs in R, G, G, B order (reordered here); ``(H, W)``
    arrays are mosaics (packed here). The header is checked before loading; never unpickled.
    """
    from pretrainlab.core.guards import load_npy

    path = Path(path)
    arr = load_npy(path)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)) or arr.dtype == np.bool_:
        raise DataError(path, f"array dtype {arr.dtype} is not an integer or float type of sensor counts")
    if arr.ndim == 2:
        _check_counts(arr, path)
        mos = check_mosaic(arr.astype(np.int64) if np.issubdtype(arr.dtype, np.integer) else arr, path)
        return pack(torch.from_numpy(np.asarray(mos, dtype=np.float32))).numpy()
    if arr.ndim != 3 or arr.shape[-1] != 4:
        raise DataError(path, f"expected a packed (H, W, 4) RAW (NTIRE: R, G, G, B) or a (H, W) mosaic, "
                              f"got shape {arr.shape}")
    if min(arr.shape[:2]) < 2:
        raise DataError(path, f"packed RAW of {arr.shape[0]}x{arr.shape[1]} is too small (at least 2x2)")
    _check_counts(arr, path)
    ntire = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32))
    return ntire_to_packed(ntire).contiguous().numpy()


@dataclasses.dataclass
class RawFrame:
    """One RAW frame: ``counts`` ``(4, h, w)`` float32 sensor counts in the reference packing order."""

    counts: torch.Tensor
    pattern: str  # Bayer pattern of the packed mosaic (camera RAWs are re-aligned to RGGB)
    kind: str  # png | npy | camera
    black: tuple[float, float, float, float] | None = None  # camera RAW: per packed channel, from the file
    white: float | None = None


def read_camera_raw(path: Path) -> RawFrame:
    """DNG / camera RAW via rawpy (LibRaw) -> counts re-aligned to RGGB, with the file's black / white."""
    import rawpy

    path = Path(path)
    if path.is_dir():
        raise DataError(path, "is a folder, expected a RAW file")
    try:
        with rawpy.imread(str(path)) as raw:
            sizes = raw.sizes
            from pretrainlab.core.guards import check_decode_size

            check_decode_size(path, (sizes.raw_height, sizes.raw_width), 8, "RAW mosaic")
            mos = raw.raw_image_visible.astype(np.float32).copy()
            cpat = raw.raw_pattern
            desc = raw.color_desc.decode(errors="replace")
            black = np.array(raw.black_level_per_channel, dtype=np.float32)
            white = float(raw.white_level)
            colors = raw.raw_colors_visible.copy()
    except (rawpy.LibRawError, OSError, ValueError, MemoryError) as e:
        raise DataError(path, f"rawpy cannot read this RAW file ({type(e).__name__}: {e})") from e
    if cpat is None or np.asarray(cpat).shape != (2, 2):
        raise DataError(path, "not a 2x2 Bayer sensor (X-Trans / Foveon / linear DNG are not supported)")
    pattern = "".join(desc[int(i)] for i in np.asarray(cpat).reshape(-1)).upper()
    if pattern not in PATTERNS:
        raise DataError(path, f"unknown Bayer pattern '{pattern}'")
    if mos.shape[0] < 4 or mos.shape[1] < 4:
        raise DataError(path, f"RAW image of {mos.shape[0]}x{mos.shape[1]} is too small")
    blk = torch.from_numpy(black[colors].astype(np.float32))
    m = to_rggb(torch.from_numpy(mos), pattern)
    b = pack(to_rggb(blk, pattern))
    per_ch = tuple(float(b[i].mean()) for i in range(4))
    if white <= max(per_ch):
        raise DataError(path, f"white level {white:g} is not above the black level {max(per_ch):g}")
    return RawFrame(pack(m), "RGGB", "camera", per_ch, white)  # type: ignore[arg-type]


def dataset_info(root: Path) -> dict[str, Any]:
    """``isp_dataset.json`` at the dataset root (or one / two levels up), if any."""
    root = Path(root)
    for cand in (root / "isp_dataset.json", root.parent / "isp_dataset.json", root.parent.parent / "isp_dataset.json"):
        if cand.is_file():
            try:
                info = json.loads(cand.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, OSError, UnicodeDecodeError) as e:
                raise DataError(cand, f"not valid JSON ({e})") from e
            if not isinstance(info, dict):
                raise DataError(cand, "expected a JSON object with 'norm' and 'bayer_pattern'")
            return info
    return {}


def _pattern(pattern: str, info: dict[str, Any], where: Path) -> str:
    pat = str(pattern if pattern != "auto" else info.get("bayer_pattern", "RGGB")).upper()
    if pat not in PATTERNS:
        raise DataError(where, f"unknown Bayer pattern '{pat}'; use one of {', '.join(PATTERNS)}")
    return pat


def read_raw(path: Path, pattern: str = "auto") -> RawFrame:
    """Any supported RAW file -> :class:`RawFrame` (counts, not normalised)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    if path.is_dir():
        raise DataError(path, "is a folder, expected a RAW file")
    suf = path.suffix.lower()
    if suf in CAMERA_RAW_SUFFIXES:
        return read_camera_raw(path)
    info = dataset_info(path.parent)
    pat = _pattern(pattern, info, path)
    if suf == ".png":
        counts = pack(torch.from_numpy(read_bayer_png(path).astype(np.float32)))
        return RawFrame(counts, pat, "png")
    if suf == ".npy":
        return RawFrame(torch.from_numpy(read_packed_npy(path)), pat, "npy")
    raise DataError(path, f"unsupported RAW file type '{suf}'; expected one of {', '.join(RAW_SUFFIXES)}")


def auto_norm(path: Path, info: dict[str, Any] | None = None) -> str:
    """The normalisation ``data.norm=auto`` gives a RAW file: ``isp_dataset.json``, else its folder / type."""
    path = Path(path)
    info = dataset_info(path.parent) if info is None else info
    if path.suffix.lower() in CAMERA_RAW_SUFFIXES:
        return "camera"
    if info.get("norm"):
        n = str(info["norm"])
        if n not in NORM_PRESETS:
            raise DataError(path.parent, f"isp_dataset.json names unknown norm '{n}'; use one of {', '.join(NORM_PRESETS)}")
        return n
    if path.parent.name in RAW_FOLDERS:
        return RAW_FOLDERS[path.parent.name]
    return "ntire" if path.suffix.lower() == ".npy" else "fujifilm"


def normalise_frame(frame: RawFrame, norm: str) -> torch.Tensor:
    """Counts -> the generator input ``(4, h, w)``; ``camera`` uses the file's own black / white levels."""
    if norm == "camera" or frame.kind == "camera":
        if frame.black is None or frame.white is None:
            raise ValueError("norm 'camera' needs a camera RAW file (black / white levels from the file)")
        b = torch.tensor(frame.black, dtype=torch.float32).view(4, 1, 1)
        return ((frame.counts - b) / (frame.white - b)).clamp_min(0)
    return normalise(frame.counts, norm)


def load_raw(path: Path, norm: str = "auto", pattern: str = "auto") -> tuple[torch.Tensor, str]:
    """Any supported RAW file -> ``((4, h, w) normalised packed float, Bayer pattern)``."""
    if norm not in NORMS:
        raise DataError(path, f"unknown normalisation '{norm}'; use one of {', '.join(NORMS)}")
    frame = read_raw(path, pattern)
    n = auto_norm(Path(path)) if norm == "auto" else norm
    return normalise_frame(frame, n), frame.pattern


def read_rgb(path: Path) -> torch.Tensor:
    """An sRGB PNG / JPEG -> ``(3, H, W)`` float in [0, 1] (size checked before decoding)."""
    from pretrainlab.core.guards import open_image

    arr = np.asarray(open_image(Path(path), "RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def list_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in suffixes
                  and not p.name.startswith("."))


# ---------------------------------------------------------------------------------------- layouts


@dataclasses.dataclass
class Layout:
    """Where one split's files are: RAW folder, paired RGB folder, optional disjoint RGB folder."""

    raw_dir: Path
    rgb_dir: Path | None
    unpaired_dir: Path | None
    norm: str  # the resolved normalisation (data.norm or auto)
    pattern: str


def find_split(root: Path, split: str, norm: str = "auto", pattern: str = "auto") -> Layout:
    """The layout of ``root/split`` (DataError when it has no RAW folder)."""
    root = Path(root)
    base = root / split
    if not root.is_dir():
        raise DataError(root, "dataset folder not found")
    if not base.is_dir():
        raise DataError(base, f"split folder not found (expected {root.name}/{split}/ with huawei_raw + canon, "
                              "mediatek_raw + fujifilm, raws + jpegs or raw + rgb)")
    for raw_name, folder_norm in RAW_FOLDERS.items():
        if (base / raw_name).is_dir():
            rgb = next((base / n for n in RGB_FOLDERS if (base / n).is_dir()), None)
            unp = None
            for n in RGB_FOLDERS:
                if (base / f"{n}_unpaired").is_dir():
                    unp = base / f"{n}_unpaired"
                    break
            info = dataset_info(root)
            if norm == "auto":
                n = str(info.get("norm") or folder_norm)
            else:
                n = norm
            if n not in NORM_PRESETS:
                raise DataError(root, f"unknown normalisation '{n}'; use one of {', '.join(NORM_PRESETS)}")
            return Layout(base / raw_name, rgb, unp, n, _pattern(pattern, info, root))
    raise DataError(base, f"no RAW folder ({', '.join(f'{n}/' for n in RAW_FOLDERS)})")


# ----------------------------------------------------------------------------------------- datasets


class _Cache:
    """Decoded items kept in memory while their total size stays under ``mb`` megabytes."""

    def __init__(self, mb: float) -> None:
        self.budget = int(mb * 2**20)
        self.used = 0
        self.items: dict[Any, Any] = {}

    def get(self, key: Any) -> Any:
        return self.items.get(key)

    def put(self, key: Any, value: dict[str, torch.Tensor] | torch.Tensor) -> None:
        tensors = value.values() if isinstance(value, dict) else [value]
        size = sum(t.numel() * t.element_size() for t in tensors)
        if self.used + size <= self.budget:
            self.items[key] = value
            self.used += size


def _crop_box(h: int, w: int, patch: int, gen: torch.Generator | None) -> tuple[int, int]:
    """Top-left ``(y, x)`` of a random ``patch`` crop (in packed pixels) of an ``h x w`` packed RAW."""
    y = int(torch.randint(h - patch + 1, (), generator=gen)) if h > patch else 0
    x = int(torch.randint(w - patch + 1, (), generator=gen)) if w > patch else 0
    return y, x


class _RawReader:
    """Shared RAW decoding of the datasets: counts -> normalised input (+ the conventional reference)."""

    def __init__(self, layout: Layout, with_ref: bool, conventional: Any) -> None:
        self.layout = layout
        self.with_ref = with_ref
        self.conventional = conventional
        self.pattern = layout.pattern
        self.norm = layout.norm

    def read(self, path: Path) -> dict[str, torch.Tensor]:
        frame = read_raw(path, self.pattern)
        out = {"raw": normalise_frame(frame, self.norm)}
        if self.with_ref:
            from pretrainlab.isp.conventional_isp import reference_render

            out["ref"] = reference_render(frame.counts[None], self.pattern, self.conventional)[0]
        return out


class PairedISP(Dataset):
    """RAW / RGB pairs matched by stem -> ``{"raw": (4, h, w), "target": (3, 2h, 2w)}`` (+ ``"ref"``).

    ``with_ref`` adds the conventional-ISP render of the same RAW. ``patch`` > 0 crops the same random
    ``patch x patch`` packed window (``2 patch`` RGB pixels) from RAW and target; 0 keeps whole images
    (then every pair must have the same size). Decoded lazily, cached up to ``cache_mb``.
    """

    def __init__(self, root: Path, split: str = "test", norm: str = "auto", pattern: str = "auto", limit: int = 0,
                 with_ref: bool = False, conventional: Any = None, patch: int = 0, cache_mb: float = 512.0) -> None:
        self.layout = find_split(root, split, norm, pattern)
        if self.layout.rgb_dir is None:
            raise DataError(self.layout.raw_dir.parent, f"no RGB folder to pair with ({', '.join(RGB_FOLDERS)}); "
                                                        "paired training and evaluation need same-stem targets")
        raws = list_files(self.layout.raw_dir, (".png", ".npy"))
        if not raws:
            raise DataError(self.layout.raw_dir, "no RAW files (*.png / *.npy)")
        rgbs: dict[str, Path] = {}
        for p in list_files(self.layout.rgb_dir, RGB_SUFFIXES):
            if p.stem in rgbs:
                raise DataError(p, f"two RGB targets share the stem '{p.stem}' ({rgbs[p.stem].name})")
            rgbs[p.stem] = p
        seen: dict[str, Path] = {}
        pairs = []
        for r in raws:
            if r.stem in seen:
                raise DataError(r, f"two RAW files share the stem '{r.stem}' ({seen[r.stem].name})")
            seen[r.stem] = r
            if r.stem not in rgbs:
                raise DataError(r, f"no RGB target with the same name in {self.layout.rgb_dir}")
            pairs.append((r, rgbs[r.stem]))
        self.pairs = pairs[:limit] if limit else pairs
        self.reader = _RawReader(self.layout, with_ref, conventional)
        self.norm, self.pattern = self.layout.norm, self.layout.pattern
        self.patch = patch
        self._cache = _Cache(cache_mb)
        self._size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def _decode(self, i: int) -> dict[str, torch.Tensor]:
        hit = self._cache.get(i)
        if hit is not None:
            return hit
        rp, tp = self.pairs[i]
        item = self.reader.read(rp)
        item["target"] = read_rgb(tp)
        h, w = item["raw"].shape[-2:]
        if tuple(item["target"].shape[-2:]) != (2 * h, 2 * w):
            raise DataError(tp, f"RGB target is {item['target'].shape[-2]}x{item['target'].shape[-1]} but its RAW "
                                f"{rp.name} gives {2 * h}x{2 * w}")
        self._cache.put(i, item)
        return item

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = self._decode(i)
        h, w = item["raw"].shape[-2:]
        if self.patch:
            if min(h, w) < self.patch:
                raise DataError(self.pairs[i][0], f"RAW of {2 * h}x{2 * w} pixels is smaller than data.patch={2 * self.patch}")
            y, x = _crop_box(h, w, self.patch, None)
            p = self.patch
            return {k: (v[:, y:y + p, x:x + p] if k == "raw" else v[:, 2 * y:2 * (y + p), 2 * x:2 * (x + p)])
                    for k, v in item.items()}
        if self._size is None:
            self._size = (h, w)
        elif self._size != (h, w):
            raise DataError(self.pairs[i][0], f"RAW of {h}x{w} packed pixels differs from the others "
                                              f"({self._size[0]}x{self._size[1]}); set data.patch to crop")
        return item


class UnpairedISP(Dataset):
    """Truly unpaired training data: a RAW folder and a separate RGB folder, no stem matching.

    Items ``{"raw": (4, p, p), "ref": (3, 2p, 2p), "real": (3, 2p, 2p)}``: a RAW (cropped to ``patch``
    packed pixels when ``patch`` > 0), its conventional-ISP render (the content reference of
    unpaired training) and a random RGB image of the target camera (cropped to the same size).

    ``source``: ``disjoint`` reads ``<rgb>_unpaired/`` (a disjoint target set), ``shuffle`` (the
    paper) reads the split's RGB folder without matching names, ``auto`` prefers ``disjoint``.
    ``rgb_dir`` (data.unpaired_rgb_dir) names any other folder of target-camera images.
    Deviation: the reference pairs RAW ``i`` with target ``perm[i]`` of one fixed random
    permutation; here every draw picks a random target.
    """

    def __init__(self, root: Path, split: str = "train", norm: str = "auto", pattern: str = "auto",
                 source: str = "auto", rgb_dir: str | Path = "", conventional: Any = None, patch: int = 0,
                 limit: int = 0, cache_mb: float = 512.0, with_real: bool = True) -> None:
        self.layout = find_split(root, split, norm, pattern)
        self.with_real = with_real
        folder: Path | None = None
        if not with_real:  # RAWs only (the warm start fits the conventional render)
            self.source = "none"
        elif rgb_dir:
            folder = Path(rgb_dir)
            if not folder.is_dir():
                raise DataError(folder, "data.unpaired_rgb_dir: folder not found")
            self.source = "folder"
        else:
            if source not in ("auto", "disjoint", "shuffle"):
                raise DataError(root, f"unknown data.unpaired_source '{source}'; allowed: auto, shuffle, disjoint")
            if source == "auto":
                source = "disjoint" if self.layout.unpaired_dir is not None else "shuffle"
            if source == "disjoint" and self.layout.unpaired_dir is None:
                raise DataError(self.layout.raw_dir.parent, "data.unpaired_source=disjoint but there is no "
                                                            f"<rgb>_unpaired/ folder ({', '.join(RGB_FOLDERS)})")
            chosen = self.layout.unpaired_dir if source == "disjoint" else self.layout.rgb_dir
            if chosen is None:
                raise DataError(self.layout.raw_dir.parent, f"no RGB folder ({', '.join(RGB_FOLDERS)}) of target images")
            folder, self.source = chosen, source
        self.raw_files = list_files(self.layout.raw_dir, RAW_SUFFIXES)
        if limit:
            self.raw_files = self.raw_files[:limit]
        self.rgb_files = list_files(folder, RGB_SUFFIXES) if folder is not None else []
        if not self.raw_files:
            raise DataError(self.layout.raw_dir, f"no RAW files ({', '.join(RAW_SUFFIXES)})")
        if folder is not None and not self.rgb_files:
            raise DataError(folder, f"no RGB images ({', '.join(RGB_SUFFIXES)})")
        self.rgb_dir = folder
        self.reader = _RawReader(self.layout, True, conventional)
        self.norm, self.pattern = self.layout.norm, self.layout.pattern
        self.patch = patch
        self._raw_cache = _Cache(cache_mb / 2)
        self._rgb_cache = _Cache(cache_mb / 2)
        self._size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.raw_files)

    def _raw(self, i: int) -> dict[str, torch.Tensor]:
        hit = self._raw_cache.get(i)
        if hit is None:
            hit = self.reader.read(self.raw_files[i])
            self._raw_cache.put(i, hit)
        return hit

    def _rgb(self, j: int) -> torch.Tensor:
        hit = self._rgb_cache.get(j)
        if hit is None:
            hit = read_rgb(self.rgb_files[j])
            self._rgb_cache.put(j, hit)
        return hit

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = dict(self._raw(i))
        h, w = item["raw"].shape[-2:]
        if self.patch:
            if min(h, w) < self.patch:
                raise DataError(self.raw_files[i], f"RAW of {2 * h}x{2 * w} pixels is smaller than data.patch={2 * self.patch}")
            y, x = _crop_box(h, w, self.patch, None)
            p = self.patch
            item = {"raw": item["raw"][:, y:y + p, x:x + p], "ref": item["ref"][:, 2 * y:2 * (y + p), 2 * x:2 * (x + p)]}
            h = w = p
        elif self._size is None:
            self._size = (h, w)
        elif self._size != (h, w):
            raise DataError(self.raw_files[i], f"RAW of {h}x{w} packed pixels differs from the others "
                                               f"({self._size[0]}x{self._size[1]}); set data.patch to crop")
        if not self.with_real:
            return item
        j = int(torch.randint(len(self.rgb_files), ()))
        real = self._rgb(j)
        H, W = real.shape[-2:]
        if H < 2 * h or W < 2 * w:
            raise DataError(self.rgb_files[j], f"RGB image of {H}x{W} is smaller than the generator output "
                                               f"{2 * h}x{2 * w}; use larger targets or a smaller data.patch")
        y = int(torch.randint(H - 2 * h + 1, ()))
        x = int(torch.randint(W - 2 * w + 1, ()))
        item["real"] = real[:, y:y + 2 * h, x:x + 2 * w]
        return item
