"""Guards against inputs that would exhaust memory or be silently misread.

A file header declares a size (PLY ``element vertex N``, PCD ``POINTS N``, a ``.npy`` shape, a
NIfTI ``dim``, a PNG's width x height); a reader must check that size BEFORE it allocates:

- for uncompressed formats the declared payload cannot exceed what the file holds
  (:func:`check_payload`, ``file_bytes``);
- for every format the decoded size must stay under a limit (:func:`decode_limit`, 8 GiB by
  default, ``$PRETRAINLAB_MAX_DECODE_BYTES`` to change it).

Both raise :class:`~pretrainlab.core.data.DataError` naming the file, so the CLI prints one line and
a demo shows the message and keeps serving. The helpers for common containers (``.npy``, images)
live here too, so each reader calls one function instead of re-deriving the check.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pretrainlab.core.data import DataError

DEFAULT_MAX_DECODE_BYTES = 8 * 2**30  # 8 GiB: larger than any single real scan / image / volume we read
DEFAULT_MAX_IMAGE_PIXELS = 256 * 2**20  # 268M pixels (a 16k x 16k image); PIL's own default is 89M


def decode_limit() -> int:
    """The largest decoded array a reader may allocate, in bytes (``$PRETRAINLAB_MAX_DECODE_BYTES``)."""
    raw = os.environ.get("PRETRAINLAB_MAX_DECODE_BYTES")
    if not raw:
        return DEFAULT_MAX_DECODE_BYTES
    try:
        value = int(float(raw))
    except ValueError as e:
        raise DataError("$PRETRAINLAB_MAX_DECODE_BYTES", f"{raw!r} is not a number of bytes") from e
    if value <= 0:
        raise DataError("$PRETRAINLAB_MAX_DECODE_BYTES", f"{raw!r} must be positive")
    return value


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def check_decode_size(path: str | os.PathLike[str], shape: Sequence[int], itemsize: int, what: str = "data") -> int:
    """Refuse a declared array of ``shape`` x ``itemsize`` bytes over :func:`decode_limit`; return its bytes."""
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise DataError(path, f"header declares a negative {what} size {tuple(dims)}")
    nbytes = math.prod(dims) * int(itemsize)
    limit = decode_limit()
    if nbytes > limit:
        raise DataError(path, f"header declares {what} of shape {tuple(dims)} ({_human(nbytes)} decoded), over the "
                              f"{_human(limit)} limit; the file is corrupt, or raise $PRETRAINLAB_MAX_DECODE_BYTES")
    return nbytes


def check_payload(path: str | os.PathLike[str], shape: Sequence[int], itemsize: int, offset: int = 0,
                  what: str = "data", exact: bool = False) -> int:
    """An uncompressed payload: the declared bytes after ``offset`` must fit in the file (and the limit).

    ``exact=True`` also refuses trailing bytes (a raw ``.bin`` whose size is not a whole number of
    records is usually the wrong file or dtype). Returns the payload size in bytes.
    """
    nbytes = check_decode_size(path, shape, itemsize, what)
    size = Path(path).stat().st_size
    have = size - int(offset)
    if nbytes > have:
        raise DataError(path, f"header declares {what} of shape {tuple(int(d) for d in shape)} ({nbytes} bytes) but "
                              f"the file holds only {max(0, have)} bytes after its header: truncated or corrupt")
    if exact and nbytes != have:
        raise DataError(path, f"{have - nbytes} bytes follow the declared {what} (shape "
                              f"{tuple(int(d) for d in shape)}): wrong format or dtype")
    return nbytes


def load_npy(path: str | os.PathLike[str], mmap: bool = False) -> np.ndarray:
    """``np.load`` of one ``.npy`` file after checking its header against the file size and the limit.

    Never unpickles (object arrays are refused). ``mmap=True`` maps the file instead of reading it
    (for large arrays read piecewise).
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:  # pragma: no cover - numpy knows no other versions
                raise DataError(p, f"unsupported .npy version {version}")
            offset = f.tell()
    except FileNotFoundError as e:
        raise DataError(p, "file not found") from e
    except IsADirectoryError as e:
        raise DataError(p, "is a folder, expected a .npy file") from e
    except (ValueError, OSError, SyntaxError) as e:
        raise DataError(p, f"not a valid .npy file ({e})") from e
    if dtype.hasobject:
        raise DataError(p, "holds Python objects (a pickle); only numeric arrays are read")
    check_payload(p, shape, dtype.itemsize, offset, what=f"{dtype} array")
    try:
        arr = np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(p, f"cannot read the .npy array ({e})") from e
    return arr


def image_size(path: str | os.PathLike[str]) -> tuple[int, int, str]:
    """``(width, height, mode)`` from an image header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if p.is_dir():
        raise DataError(p, "is a folder, expected an image file")
    try:
        with Image.open(p) as im:
            return int(im.width), int(im.height), str(im.mode)
    except FileNotFoundError as e:
        raise DataError(p, "file not found") from e
    except Image.DecompressionBombError as e:
        raise DataError(p, f"image is too large to decode ({e})") from e
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(p, f"not a readable image ({type(e).__name__}: {e})") from e


def open_image(path: str | os.PathLike[str], mode: str | None = None,
               max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Any:
    """A fully decoded ``PIL.Image`` (optionally converted to ``mode``) after checking its declared size.

    The header's width x height is checked against ``max_pixels`` and the decode limit before the
    pixels are read; a truncated file is an error, never a half-grey image.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    w, h, m = image_size(p)
    if w * h > max_pixels:
        raise DataError(p, f"image header declares {w} x {h} pixels, over the limit of {max_pixels} pixels")
    check_decode_size(p, (h, w, Image.getmodebands(m)), 4, "image")  # float32 after conversion, the worst case
    try:
        with Image.open(p) as im:
            im.load()
            return im.convert(mode) if mode and im.mode != mode else im.copy()
    except Image.DecompressionBombError as e:
        raise DataError(p, f"image is too large to decode ({e})") from e
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(p, f"cannot decode the image ({type(e).__name__}: {e}); truncated or corrupt") from e




def load_npz(path: str | os.PathLike[str], keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz`` archive, each member's ``.npy`` header checked BEFORE it is decompressed.

    For every member (or only ``keys``): its declared shape x itemsize must fit the decode limit and the
    member's uncompressed size in the zip directory; object arrays (pickles) are refused. A missing key,
    a truncated archive or a corrupt member is a DataError naming the file (and the member).
    """
    import zipfile

    p = Path(path)
    if p.is_dir():
        raise DataError(p, "is a folder, expected an .npz file")
    try:
        zf = zipfile.ZipFile(p)
    except FileNotFoundError as e:
        raise DataError(p, "file not found") from e
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(p, f"not a readable .npz archive ({e})") from e
    out: dict[str, np.ndarray] = {}
    with zf:
        members = {n.removesuffix(".npy"): n for n in zf.namelist()}
        wanted = list(keys) if keys is not None else list(members)
        missing = [k for k in wanted if k not in members]
        if missing:
            raise DataError(p, f"has no array(s) {missing}; it holds {sorted(members)}")
        for k in wanted:
            info = zf.getinfo(members[k])
            try:
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _fortran, dtype = reader(f)
                    header = f.tell()
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError) as e:
                raise DataError(p, f"member '{k}' is not a valid .npy array ({e})") from e
            if dtype.hasobject:
                raise DataError(p, f"member '{k}' holds Python objects (a pickle); only numeric arrays are read")
            nbytes = check_decode_size(p, shape, dtype.itemsize, f"array '{k}'")
            if nbytes > info.file_size - header:
                raise DataError(p, f"member '{k}' declares shape {tuple(shape)} ({nbytes} bytes) but holds only "
                                   f"{max(0, info.file_size - header)} bytes: truncated or corrupt")
            try:
                with zf.open(info) as f:
                    out[k] = np.lib.format.read_array(f, allow_pickle=False)
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
                raise DataError(p, f"member '{k}' cannot be read ({e}); truncated or corrupt") from e
    return out


__all__ = [
    "DEFAULT_MAX_DECODE_BYTES",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "check_decode_size",
    "check_payload",
    "decode_limit",
    "image_size",
    "load_npy",
    "load_npz",
    "open_image",
]
