"""Readers of the face-recognition dataset formats (all raise ``DataError("<file>: <problem>")``).

- Identity folders (torchvision ImageFolder / insightface "image folder"): ``root/<identity>/<img>``.
- LFW ``pairs.txt``: optional header ``"<folds> <n>"``; genuine lines ``name i j``, impostor lines
  ``name1 i name2 j``; image ``root/<name>/<name>_<i:04d>.<ext>`` (any image extension).
- TinyFace test protocol: ``Probe/``, ``Gallery_Match/``, ``Gallery_Distractor/`` with lists
  ``probe.txt``, ``gallery_match.txt``, ``gallery_distractor.txt`` of ``<relative path> <label>``
  (label -1 for distractors). Without lists, labels come from the file name prefix ``<id>_<k>.*``
  (the released TinyFace naming) and every distractor is -1.

Images: alignment-free crops, read with PIL and converted to RGB (grayscale, palette, alpha and
16-bit images are converted, not rejected); any size is resized to the network's input size,
and sizes far from it are reported (``notes``). Non-images and degenerate images are rejected.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from pretrainlab.core.data import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
MIN_SIDE = 8  # smaller than this is not a face crop
MAX_PIXELS = 64_000_000  # decompression-bomb guard


def _to_rgb_array(img: Image.Image) -> tuple[np.ndarray, list[str]]:
    """Any PIL mode -> uint8 ``(H, W, 3)``; notes say what was converted."""
    notes: list[str] = []
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img).astype(np.float64)
        hi = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(a / hi * 255.0, 0, 255).astype(np.uint8)
        notes.append(f"{mode} (high bit depth / integer) image scaled to 8 bits")
        return np.repeat(a[..., None], 3, axis=2), notes
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba)
        notes.append("alpha channel flattened on white")
    elif mode in ("L", "1"):
        notes.append("grayscale image replicated to 3 channels")
    elif mode == "CMYK":
        notes.append("CMYK converted to RGB")
    elif mode not in ("RGB", "P", "YCbCr"):
        notes.append(f"mode {mode} converted to RGB")
    return np.asarray(img.convert("RGB")), notes


def load_image(path: str | Path, size: int) -> tuple[torch.Tensor, list[str]]:
    """Read one face crop as uint8 ``(3, size, size)``; raise DataError for non-images.

    Returns the tensor and a list of notes (conversions, resizing of tiny / huge images).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "image file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise DataError(path, f"image of {w}x{h} pixels is too large (limit {MAX_PIXELS:,} pixels)")
                im.load()
                arr, notes = _to_rgb_array(im)
    except DataError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(path, f"not a readable image ({type(e).__name__})") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(path, f"corrupt or truncated image ({e})") from e
    h, w = arr.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise DataError(path, f"image is {w}x{h} pixels; a face crop needs at least {MIN_SIDE} pixels per side")
    if max(h, w) > 8 * size:
        notes.append(f"huge image {w}x{h} resized to {size}x{size}")
    elif min(h, w) * 4 < size:
        notes.append(f"tiny image {w}x{h} up-sampled to {size}x{size}")
    if (h, w) != (size, size):
        arr = np.asarray(Image.fromarray(arr).resize((size, size), Image.BICUBIC))
    return torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous(), notes


_DECODED: dict[tuple[Any, ...], torch.Tensor] = {}
_DECODED_LIMIT = 256 * 2**20  # bytes of decoded images kept for re-use within one process


def load_images(paths: list[Path], size: int, desc: str = "read") -> torch.Tensor:
    """uint8 ``(N, 3, size, size)`` with a progress bar.

    Decoded sets are kept in memory (keyed by path, modification time and size, up to 256 MB) so a
    reproduction that evaluates many models on the same protocol decodes each image once.
    """
    from tqdm.auto import tqdm

    if not paths:
        return torch.zeros(0, 3, size, size, dtype=torch.uint8)
    try:
        key: tuple[Any, ...] | None = (size, tuple((str(p), Path(p).stat().st_mtime_ns) for p in paths))
    except OSError:
        key = None  # a missing file: load_image below raises the DataError naming it
    if key is not None and key in _DECODED:
        return _DECODED[key]
    out = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)
    for i, p in enumerate(tqdm(paths, desc=desc, unit="img", leave=False)):
        out[i] = load_image(p, size)[0]
    if key is not None and out.numel() <= _DECODED_LIMIT:
        while _DECODED and sum(t.numel() for t in _DECODED.values()) + out.numel() > _DECODED_LIMIT:
            _DECODED.pop(next(iter(_DECODED)))
        _DECODED[key] = out
    return out


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


@dataclasses.dataclass
class IdentityFolder:
    """``root/<identity>/<image>``: paths, integer labels and identity names (sorted)."""

    root: Path
    paths: list[Path]
    labels: list[int]
    classes: list[str]

    @classmethod
    def read(cls, root: str | Path, max_images: int = 0) -> IdentityFolder:
        root = Path(root)
        if not root.is_dir():
            raise DataError(root, "identity-folder dataset not found (expected <root>/<identity>/<image>)")
        dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not dirs:
            loose = [p for p in root.iterdir() if _is_image(p)]
            hint = f" (found {len(loose)} loose images: put each identity in its own folder)" if loose else ""
            raise DataError(root, f"no identity folders{hint}")
        paths, labels, classes = [], [], []
        for d in dirs:
            imgs = sorted(p for p in d.iterdir() if _is_image(p))
            if not imgs:
                continue
            classes.append(d.name)
            paths += imgs
            labels += [len(classes) - 1] * len(imgs)
        if not paths:
            raise DataError(root, f"the {len(dirs)} identity folders hold no images ({', '.join(IMAGE_SUFFIXES)})")
        if max_images and len(paths) > max_images:
            idx = np.linspace(0, len(paths) - 1, max_images).astype(int)
            paths, labels = [paths[i] for i in idx], [labels[i] for i in idx]
        return cls(root, paths, labels, classes)


class FaceImageDataset(torch.utils.data.Dataset):
    """Decoded identity-folder images in memory: item ``{"image": (3,S,S) float [0,1], "label": ()}``."""

    def __init__(self, folder: IdentityFolder, size: int) -> None:
        self.folder = folder
        self.images = load_images(folder.paths, size, desc=f"read {folder.root.name}")
        self.labels = torch.tensor(folder.labels, dtype=torch.long)
        self.num_classes = len(folder.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i].float() / 255.0, "label": self.labels[i]}


@dataclasses.dataclass
class Pairs:
    """LFW verification pairs: image paths of each side, genuine flags and the fold count."""

    left: list[Path]
    right: list[Path]
    same: list[bool]
    folds: int


def _lfw_image(root: Path, name: str, idx: str, pairs_file: Path, line_no: int) -> Path:
    try:
        n = int(idx)
    except ValueError:
        raise DataError(pairs_file, f"line {line_no}: image number '{idx}' is not an integer") from None
    stem = f"{name}_{n:04d}"
    for suf in IMAGE_SUFFIXES:
        p = root / name / (stem + suf)
        if p.is_file():
            return p
    raise DataError(pairs_file, f"line {line_no}: image {root / name / stem}.* does not exist")


def read_pairs(pairs_file: str | Path, image_root: str | Path | None = None, default_folds: int = 10) -> Pairs:
    """Parse an LFW-style ``pairs.txt`` (images under ``image_root``, default: its folder)."""
    pf = Path(pairs_file)
    if not pf.is_file():
        raise DataError(pf, "pairs file not found")
    root = Path(image_root) if image_root else pf.parent
    try:
        lines = pf.read_text().splitlines()
    except UnicodeDecodeError:
        raise DataError(pf, "pairs file is not text") from None
    left, right, same = [], [], []
    folds = default_folds
    for i, raw in enumerate(lines, 1):
        parts = raw.split()
        if not parts:
            continue
        if i == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
            folds = int(parts[0])
            continue
        if len(parts) == 3:
            left.append(_lfw_image(root, parts[0], parts[1], pf, i))
            right.append(_lfw_image(root, parts[0], parts[2], pf, i))
            same.append(True)
        elif len(parts) == 4:
            left.append(_lfw_image(root, parts[0], parts[1], pf, i))
            right.append(_lfw_image(root, parts[2], parts[3], pf, i))
            same.append(False)
        else:
            raise DataError(pf, f"line {i}: expected 'name i j' or 'name1 i name2 j', got {raw.strip()!r}")
    if not same:
        raise DataError(pf, "no pairs")
    if all(same) or not any(same):
        raise DataError(pf, "needs both genuine and impostor pairs")
    folds = max(2, min(folds, len(same)))
    return Pairs(left, right, same, folds)


@dataclasses.dataclass
class TinyFaceProtocol:
    """TinyFace identification: probe images / labels vs gallery (matches + distractors, label -1)."""

    probe: list[Path]
    probe_labels: list[int]
    gallery: list[Path]
    gallery_labels: list[int]


def _read_list(root: Path, list_file: Path) -> tuple[list[Path], list[int]]:
    paths, labels = [], []
    for i, raw in enumerate(list_file.read_text().splitlines(), 1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataError(list_file, f"line {i}: expected '<relative path> <label>', got {raw.strip()!r}")
        try:
            lab = int(parts[1])
        except ValueError:
            raise DataError(list_file, f"line {i}: label '{parts[1]}' is not an integer") from None
        p = root / parts[0]
        if not p.is_file():
            raise DataError(list_file, f"line {i}: image {p} does not exist")
        paths.append(p)
        labels.append(lab)
    return paths, labels


def _scan(folder: Path, distractor: bool) -> tuple[list[Path], list[int]]:
    if not folder.is_dir():
        raise DataError(folder, "TinyFace folder not found (expected Probe/, Gallery_Match/, Gallery_Distractor/)")
    paths = sorted(p for p in folder.iterdir() if _is_image(p))
    labels = []
    for p in paths:
        if distractor:
            labels.append(-1)
            continue
        head = p.stem.split("_")[0]
        if not head.isdigit():
            raise DataError(p, "TinyFace file names must start with the identity number ('<id>_<k>.jpg') "
                               "or come with a probe.txt / gallery_match.txt list")
        labels.append(int(head))
    return paths, labels


def read_tinyface(root: str | Path) -> TinyFaceProtocol:
    """Read the TinyFace-style probe / gallery / distractor protocol under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "TinyFace folder not found")
    parts = {}
    for key, folder, lst, dis in (("probe", "Probe", "probe.txt", False),
                                  ("match", "Gallery_Match", "gallery_match.txt", False),
                                  ("dist", "Gallery_Distractor", "gallery_distractor.txt", True)):
        parts[key] = _read_list(root, root / lst) if (root / lst).is_file() else _scan(root / folder, dis)
    if not parts["probe"][0]:
        raise DataError(root, "no probe images")
    if not parts["match"][0]:
        raise DataError(root, "no gallery images")
    gal_ids = set(parts["match"][1])
    missing = sorted(set(parts["probe"][1]) - gal_ids)
    if missing:
        raise DataError(root, f"{len(missing)} probe identities have no gallery image (e.g. {missing[:3]})")
    return TinyFaceProtocol(parts["probe"][0], parts["probe"][1], parts["match"][0] + parts["dist"][0],
                            parts["match"][1] + parts["dist"][1])
