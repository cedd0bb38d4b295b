"""RAW and RGB readers of the ISP datasets (paper Sec. 4 "Datasets").

Supported layouts (``<split>`` is ``train`` / ``test``; pairs match by file stem)::

    Zurich RAW-to-RGB      <split>/huawei_raw/*.png (16-bit Bayer, 448x448)  <split>/canon/*.jpg (448x448)
    MAI 2021 / UltraISP    <split>/mediatek_raw/*.png (16-bit Bayer, 256x256) <split>/fujifilm/*.png
    NTIRE (packed .npy)    <split>/raw/*.npy (H x W x 4, /1023)               <split>/rgb/*.png
    unpaired targets       <split>/<rgb folder>_unpaired/*  (optional: a disjoint target set)
    camera RAW             any *.dng / *.cr2 / *.nef / *.arw / *.raf / *.orf / *.rw2 (rawpy)

An optional ``isp_dataset.json`` at the root gives ``norm`` and ``bayer_pattern`` (the
synthetic generator writes it). Every reader raises :class:`DataError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from pretrainlab.core.data import DataError
from pretrainlab.isp.bayer import NORM_PRESETS, PATTERNS, pack, to_rggb

RAW_FOLDERS = {"huawei_raw": "zurich", "mediatek_raw": "mai", "raw": "ntire"}
RGB_FOLDERS = ("canon", "fujifilm", "rgb")
CAMERA_RAW_SUFFIXES = (".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2", ".pef", ".srw")
RAW_SUFFIXES = (".png", ".npy") + CAMERA_RAW_SUFFIXES
RGB_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_COUNT = 16383  # 14-bit: anything above is not a RAW count


def read_bayer_png(path: Path) -> np.ndarray:
    """A single-channel 16-bit PNG Bayer mosaic -> ``(H, W)`` uint16 counts."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode, bands = im.mode, len(im.getbands())
            arr = np.array(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(path, f"not a readable PNG RAW mosaic ({e})") from e
    if bands != 1 or arr.ndim != 2:
        raise DataError(path, f"RAW mosaic must have 1 channel, found {bands} ({mode}); "
                              "expected a single-channel 16-bit Bayer PNG")
    if mode not in ("I;16", "I;16B", "I;16L", "I"):
        raise DataError(path, f"RAW mosaic has bit depth of mode '{mode}' (8-bit?); expected a 16-bit PNG")
    return check_mosaic(arr.astype(np.int64), path).astype(np.uint16)


def check_mosaic(arr: np.ndarray, path: Path) -> np.ndarray:
    """Reject mosaics with odd or tiny dimensions, negative or out-of-range counts."""
    if arr.ndim != 2:
        raise DataError(path, f"RAW mosaic must be 2-D (H, W), got shape {arr.shape}")
    h, w = arr.shape
    if h % 2 or w % 2:
        raise DataError(path, f"RAW mosaic has odd dimensions {h}x{w}; a Bayer mosaic needs even height and width")
    if h < 4 or w < 4:
        raise DataError(path, f"RAW mosaic of {h}x{w} is too small")
    if arr.min() < 0 or arr.max() > MAX_COUNT:
        raise DataError(path, f"RAW counts outside [0, {MAX_COUNT}] (min {arr.min()}, max {arr.max()})")
    return arr


def read_packed_npy(path: Path) -> np.ndarray:
    """NTIRE ``.npy``: ``(H, W, 4)`` packed counts (or a ``(H, W)`` mosaic, packed here) -> ``(4, h, w)`` float."""
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(path, f"not a readable .npy array ({e})") from e
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(path, f"array dtype {arr.dtype} is not a real number type")
    if arr.ndim == 2:
        return pack(torch.from_numpy(check_mosaic(arr.astype(np.int64), path).astype(np.float32))).numpy()
    if arr.ndim != 3 or arr.shape[-1] != 4:
        raise DataError(path, f"expected a packed (H, W, 4) array or a (H, W) mosaic, got shape {arr.shape}")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > MAX_COUNT:
        raise DataError(path, "packed RAW has non-finite or out-of-range values")
    return np.ascontiguousarray(arr.transpose(2, 0, 1).astype(np.float32))


def read_camera_raw(path: Path) -> tuple[torch.Tensor, dict[str, Any]]:
    """DNG / camera RAW via rawpy -> ``(4, h, w)`` packed, black-subtracted, [0, 1]-normalised RGGB."""
    import rawpy

    path = Path(path)
    try:
        with rawpy.imread(str(path)) as raw:
            mos = raw.raw_image_visible.astype(np.float32).copy()
            cpat = raw.raw_pattern
            desc = raw.color_desc.decode(errors="replace")
            black = np.array(raw.black_level_per_channel, dtype=np.float32)
            white = float(raw.white_level)
            colors = raw.raw_colors_visible.copy()
    except (rawpy.LibRawError, OSError, ValueError) as e:
        raise DataError(path, f"rawpy cannot read this RAW file ({type(e).__name__}: {e})") from e
    if cpat is None or np.asarray(cpat).shape != (2, 2):
        raise DataError(path, "not a 2x2 Bayer sensor (X-Trans / Foveon / linear DNG are not supported)")
    pattern = "".join(desc[int(i)] for i in np.asarray(cpat).reshape(-1)).replace("G2", "G")
    pattern = pattern.replace("g", "G")
    if pattern not in PATTERNS:
        raise DataError(path, f"unknown Bayer pattern '{pattern}'")
    mos = (mos - black[colors]) / max(1.0, white - float(black.mean()))
    m = to_rggb(torch.from_numpy(np.clip(mos, 0, None)), pattern)
    return pack(m), {"pattern_in_file": pattern, "black": black.tolist(), "white": white}


def read_rgb(path: Path) -> torch.Tensor:
    """An sRGB PNG / JPEG -> ``(3, H, W)`` float in [0, 1]."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(path, f"not a readable RGB image ({e})") from e
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def dataset_info(root: Path) -> dict[str, Any]:
    """``isp_dataset.json`` at the dataset root (or one level up), if any."""
    for cand in (Path(root) / "isp_dataset.json", Path(root).parent / "isp_dataset.json"):
        if cand.exists():
            try:
                return dict(json.loads(cand.read_text()))
            except (json.JSONDecodeError, OSError, TypeError, ValueError) as e:
                raise DataError(cand, f"not valid JSON ({e})") from e
    return {}


def resolve_norm(norm: str, raw_folder: str, info: dict[str, Any]) -> str:
    if norm != "auto":
        if norm not in NORM_PRESETS:
            raise ValueError(f"unknown data.norm '{norm}'; use auto or one of {', '.join(NORM_PRESETS)}")
        return norm
    return str(info.get("norm") or RAW_FOLDERS.get(raw_folder, "zurich"))


def load_raw(path: Path, norm: str = "auto", pattern: str = "auto") -> tuple[torch.Tensor, str]:
    """Any supported RAW file -> ``((4, h, w) normalised packed float, Bayer pattern)``."""
    from pretrainlab.isp.bayer import normalise

    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    suf = path.suffix.lower()
    info = dataset_info(path.parent.parent) if path.parent.name in RAW_FOLDERS else dataset_info(path.parent)
    pat = pattern if pattern != "auto" else str(info.get("bayer_pattern", "RGGB"))
    if pat.upper() not in PATTERNS:
        raise DataError(path, f"unknown Bayer pattern '{pat}'; use one of {', '.join(PATTERNS)}")
    if suf in CAMERA_RAW_SUFFIXES:
        packed, _ = read_camera_raw(path)
        return packed.float(), "RGGB"
    if suf == ".png":
        counts = pack(torch.from_numpy(read_bayer_png(path).astype(np.float32)))
        folder = path.parent.name
    elif suf == ".npy":
        counts = torch.from_numpy(read_packed_npy(path))
        folder = "raw"
    else:
        raise DataError(path, f"unsupported RAW file type '{suf}'; expected one of {', '.join(RAW_SUFFIXES)}")
    n = resolve_norm(norm, folder if folder in RAW_FOLDERS else "", info)
    return normalise(counts, n), pat.upper()


def find_split(root: Path, split: str) -> tuple[Path, Path, str]:
    """``(raw folder, rgb folder, raw folder kind)`` of ``root/split``; DataError when absent."""
    base = Path(root) / split
    if not base.is_dir():
        raise DataError(base, f"split folder not found (expected {Path(root).name}/{split}/huawei_raw + canon, "
                              "mediatek_raw + fujifilm, or raw + rgb)")
    for raw_name in RAW_FOLDERS:
        if (base / raw_name).is_dir():
            for rgb_name in RGB_FOLDERS:
                if (base / rgb_name).is_dir():
                    return base / raw_name, base / rgb_name, raw_name
            raise DataError(base, f"found {raw_name}/ but no RGB folder ({', '.join(RGB_FOLDERS)})")
    raise DataError(base, "no RAW folder (huawei_raw/, mediatek_raw/ or raw/)")


class ISPPairs(Dataset):
    """RAW / RGB pairs of one split -> ``{"raw": (4, h, w), "target": (3, 2h, 2w)}`` (+ ``"ref"``).

    ``with_ref`` adds the conventional-ISP render of the same RAW (unpaired content reference).
    Items are decoded once and kept in memory when the split has at most ``preload_max`` pairs.
    """

    def __init__(self, root: Path, split: str = "train", norm: str = "auto", pattern: str = "auto",
                 limit: int = 0, with_ref: bool = False, conventional: Any = None, preload_max: int = 20000,
                 progress: bool = True) -> None:
        root = Path(root)
        self.raw_dir, self.rgb_dir, kind = find_split(root, split)
        self.info = dataset_info(root)
        self.norm = resolve_norm(norm, kind, self.info)
        self.pattern = (pattern if pattern != "auto" else str(self.info.get("bayer_pattern", "RGGB"))).upper()
        if self.pattern not in PATTERNS:
            raise DataError(root, f"unknown Bayer pattern '{self.pattern}'")
        raws = sorted(p for p in self.raw_dir.iterdir() if p.suffix.lower() in (".png", ".npy"))
        rgbs = {p.stem: p for p in self.rgb_dir.iterdir() if p.suffix.lower() in RGB_SUFFIXES}
        if not raws:
            raise DataError(self.raw_dir, "no RAW files (*.png / *.npy)")
        pairs = []
        for r in raws:
            if r.stem not in rgbs:
                raise DataError(r, f"no RGB target with the same name in {self.rgb_dir}")
            pairs.append((r, rgbs[r.stem]))
        self.pairs = pairs[:limit] if limit else pairs
        self.with_ref = with_ref
        self.conventional = conventional
        unp = self.rgb_dir.parent / f"{self.rgb_dir.name}_unpaired"
        self.unpaired_files = sorted(p for p in unp.iterdir() if p.suffix.lower() in RGB_SUFFIXES) if unp.is_dir() else []
        self._cache: dict[int, dict[str, torch.Tensor]] = {}
        self.preload = len(self.pairs) <= preload_max
        if self.preload:
            from tqdm.auto import tqdm

            for i in tqdm(range(len(self.pairs)), desc=f"read {split}", unit="pair", leave=False, disable=not progress):
                self._cache[i] = self._read(i)

    def _read(self, i: int) -> dict[str, torch.Tensor]:
        from pretrainlab.isp.bayer import normalise

        rp, tp = self.pairs[i]
        if rp.suffix.lower() == ".npy":
            counts = torch.from_numpy(read_packed_npy(rp))
        else:
            counts = pack(torch.from_numpy(read_bayer_png(rp).astype(np.float32)))
        raw = normalise(counts, self.norm)
        tgt = read_rgb(tp)
        if tuple(tgt.shape[-2:]) != (2 * raw.shape[-2], 2 * raw.shape[-1]):
            raise DataError(tp, f"RGB target is {tgt.shape[-2]}x{tgt.shape[-1]} but its RAW {rp.name} gives "
                                f"{2 * raw.shape[-2]}x{2 * raw.shape[-1]}")
        item = {"raw": raw, "target": tgt}
        if self.with_ref:
            from pretrainlab.isp.conventional_isp import conventional_isp

            c = self.conventional
            kw = {} if c is None else {"demosaic": c.demosaic, "wb_gains": tuple(c.wb_gains), "gamma": c.gamma}
            item["ref"] = conventional_isp(raw[None], self.pattern, **kw)[0]
        return item

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self._cache[i] if i in self._cache else self._read(i)


class UnpairedISP(Dataset):
    """Unpaired training set: each RAW meets a random real RGB image, never its own target.

    ``source``: ``disjoint`` draws from ``<rgb>_unpaired/`` (a disjoint target set); ``shuffle``
    (the paper) draws another pair's target. Items: ``{"raw", "ref", "target", "real"}``; ``target``
    (the paired ground truth) is only used by the paired modes.
    """

    def __init__(self, pairs: ISPPairs, source: str = "auto") -> None:
        self.pairs = pairs
        if source == "auto":
            source = "disjoint" if pairs.unpaired_files else "shuffle"
        if source == "disjoint" and not pairs.unpaired_files:
            raise DataError(pairs.rgb_dir.parent, f"data.unpaired_source=disjoint but no {pairs.rgb_dir.name}_unpaired/ folder")
        if source not in ("disjoint", "shuffle"):
            raise ValueError(f"unknown data.unpaired_source '{source}' (auto | shuffle | disjoint)")
        self.source = source
        self.real = torch.stack([read_rgb(p) for p in pairs.unpaired_files]) if source == "disjoint" else None
        if self.real is not None and self.real.shape[-2:] != pairs[0]["target"].shape[-2:]:
            raise DataError(pairs.unpaired_files[0], "unpaired targets differ in size from the paired targets")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = dict(self.pairs[i])
        if self.real is not None:
            item["real"] = self.real[int(torch.randint(len(self.real), ()))]
        else:
            j = int(torch.randint(len(self.pairs) - 1, ())) if len(self.pairs) > 1 else 0
            j = j + 1 if j >= i and len(self.pairs) > 1 else j
            item["real"] = self.pairs[j]["target"]
        return item
