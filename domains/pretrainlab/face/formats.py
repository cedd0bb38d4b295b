"""Readers / writers of the face-recognition formats; every problem is ``DataError("<file>: <problem>")``.

Training sets (``FaceTrainSet.open(path)`` picks by what is there):
- insightface MXNet RecordIO ``train.rec`` + ``train.idx`` (WebFace4M/12M, MS1MV3, TinyFace / BRIAR
  packs as the reference trains): read WITHOUT mxnet (:class:`RecordIO`), records decoded lazily;
- identity folders ``root/<identity>/<img>`` (ImageFolder).
Evaluation sets:
- LFW ``pairs.txt`` over ``<name>/<name>_<i:04d>.<ext>`` (:func:`read_pairs`);
- insightface verification ``.bin`` (lfw.bin, cfp_fp.bin, agedb_30.bin; :func:`read_bin`): a pickle
  ``(bins, issame_list)`` decoded by a restricted unpickler that resolves NO real global: bytes (Python 2
  ``str``, read with ``encoding="bytes"``), lists, tuples and bools need none; the few names a Python 3
  writer emits (numpy's ``_reconstruct`` / ``_frombuffer`` / ``ndarray`` / ``dtype`` for a bool array,
  ``_codecs.encode`` for bytes at protocol 2) map to inert stand-ins that can only build a 1-D bool
  array or latin-1 bytes; any other global is refused naming it;
- TinyFace test protocol ``Probe/``, ``Gallery_Match/``, ``Gallery_Distractor/`` (recursive, labels from
  the ``<id>_`` file-name prefix as ``validation_lq/tinyface_helper.py``; distractors -100), or
  ``probe.txt`` / ``gallery_match.txt`` / ``gallery_distractor.txt`` lists; paths only: images are
  decoded lazily in DataLoader workers (the 153k distractors are streamed, never held decoded);
- IJB-B / IJB-C (:func:`read_ijb`): ``meta/<t>_face_tid_mid.txt``, ``meta/<t>_template_pair_label.txt``,
  ``meta/<t>_name_5pts_score.txt`` and ``loose_crop/`` as insightface's eval_ijbc.py.

Images and alignment: the recognition network expects ALIGNED face crops (insightface's 112 x 112
five-point template, the reference's training / evaluation data); identity folders, RecordIO,
``.bin``, TinyFace and LFW inputs must already be aligned crops (the released sets are). Only IJB
images are aligned here, from the 5 landmarks of ``<t>_name_5pts_score.txt`` (:func:`norm_crop`).

Preprocessing as the reference: evaluation ``ToTensor -> Resize(S, bicubic) on the float tensor ->
Normalize(0.5, 0.5)`` with torchvision 0.15 tensor semantics: ``interpolate(mode="bicubic",
align_corners=False, antialias=False)``, NO clamp (values may leave [-1, 1]) (:func:`eval_tensor`);
training ``ToPILImage -> Resize(S) (PIL bilinear) -> ToTensor -> Normalize`` (ref: dataset.py
MXFaceDataset) (:func:`train_tensor`). Grayscale / palette / alpha / 16-bit images are converted to RGB.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import struct
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from pretrainlab.core.data import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
MIN_SIDE = 8  # smaller than this is not a face crop
MAX_PIXELS = 64_000_000  # decompression-bomb guard for one face image
MAX_RECORD_BYTES = 64 * 2**20  # one RecordIO record (an encoded face image: a few kB)
MAX_LIST_BYTES = 512 * 2**20  # a text list / .idx / .bin read into memory


# ------------------------------------------------------------------ decoding and preprocessing
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


def decode_image(src: str | Path | bytes, name: str | Path | None = None) -> tuple[np.ndarray, list[str]]:
    """A file path or encoded bytes -> uint8 ``(H, W, 3)`` RGB + notes; the header size is checked first."""
    where = Path(name if name is not None else src if not isinstance(src, bytes) else "(image bytes)")
    if not isinstance(src, bytes):
        p = Path(src)
        if p.is_dir():
            raise DataError(p, "is a folder, expected an image file")
        if not p.is_file():
            raise DataError(p, "image file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise DataError(where, f"image header declares {w}x{h} pixels, over the limit of {MAX_PIXELS:,} pixels")
                im.load()
                arr, notes = _to_rgb_array(im)
    except DataError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(where, f"not a readable image ({type(e).__name__})") from None
    except (OSError, SyntaxError, ValueError, struct.error) as e:
        raise DataError(where, f"corrupt or truncated image ({e})") from None
    h, w = arr.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise DataError(where, f"image is {w}x{h} pixels; a face crop needs at least {MIN_SIDE} pixels per side")
    return arr, notes


def eval_tensor(arr: np.ndarray, size: int) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` -> float32 ``(3, size, size)``: ToTensor -> bicubic resize of the FLOAT tensor
    (no antialias, no clamp: torchvision 0.15 tensor ``Resize``) -> ``(x - 0.5) / 0.5`` (ref: validation_lq)."""
    x = torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div(255.0)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x[None], size=(size, size), mode="bicubic", align_corners=False, antialias=False)[0]
    return (x - 0.5) / 0.5


def train_tensor(arr: np.ndarray, size: int) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` -> float32 ``(3, size, size)``: PIL bilinear Resize -> ToTensor -> Normalize
    (ref: dataset.py MXFaceDataset; the flip happens in the task, before the IQA score)."""
    if arr.shape[:2] != (size, size):
        arr = np.asarray(Image.fromarray(arr).resize((size, size), Image.BILINEAR))
    x = torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div(255.0)
    return (x - 0.5) / 0.5


def load_image(path: str | Path, size: int) -> tuple[torch.Tensor, list[str]]:
    """One face crop as the evaluation tensor ``(3, size, size)`` (normalised) + notes (conversions, sizes)."""
    arr, notes = decode_image(path)
    h, w = arr.shape[:2]
    if max(h, w) > 8 * size:
        notes.append(f"huge image {w}x{h} resized to {size}x{size}")
    elif min(h, w) * 4 < size:
        notes.append(f"tiny image {w}x{h} up-sampled to {size}x{size}")
    return eval_tensor(arr, size), notes


DECODE_CACHE_BYTES = int(os.environ.get("PRETRAINLAB_FACE_DECODE_CACHE_MB", "256")) * 2**20
_decoded: dict[Any, np.ndarray] = {}
_decoded_bytes = 0


def _source_key(src: Any) -> Any:
    if isinstance(src, (str, Path)):
        st = os.stat(src)
        return ("file", str(src), st.st_mtime_ns, st.st_size)
    if isinstance(src, RecordSource):
        return ("rec", str(src.rec.rec_path), src.rec.rec_size, src.key)
    if isinstance(src, BinImage):
        return ("bin", str(src.path), src.index, len(src.data))
    return None


def decode_source(src: Any) -> np.ndarray:
    """A path / RecordIO / .bin / IJB source -> uint8 ``(H, W, 3)``. Decoded images are kept in a bounded
    per-process cache (``$PRETRAINLAB_FACE_DECODE_CACHE_MB``, default 256 MB): small sets (the tiny profile,
    a reproduction evaluating many models on one protocol) decode once; a real-scale set fills the cache and
    is streamed from disk beyond it, never held whole."""
    global _decoded_bytes
    try:
        key = _source_key(src)
    except OSError:
        key = None  # a missing file: the decoder below raises the DataError naming it
    if key is not None and key in _decoded:
        return _decoded[key]
    arr = src.decode() if hasattr(src, "decode") and not isinstance(src, (str, Path, bytes)) else decode_image(src)[0]
    if key is not None and _decoded_bytes + arr.nbytes <= DECODE_CACHE_BYTES:
        arr.setflags(write=False)
        _decoded[key] = arr
        _decoded_bytes += arr.nbytes
    return arr


class ImageList(torch.utils.data.Dataset):
    """Paths (or ``(container, key)`` sources) decoded lazily: item ``(3, S, S)`` normalised tensor
    (evaluation preprocessing, or the training one with ``train=True``)."""

    def __init__(self, sources: Sequence[Any], size: int, train: bool = False) -> None:
        self.sources, self.size, self.train = list(sources), size, train

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> torch.Tensor:
        arr = decode_source(self.sources[i])
        return train_tensor(arr, self.size) if self.train else eval_tensor(arr, self.size)


def image_batches(sources: Sequence[Any], size: int, batch_size: int, num_workers: int = 0,
                  desc: str = "read") -> Iterator[torch.Tensor]:
    """Normalised ``(b, 3, S, S)`` batches of ``sources``, decoded lazily (in workers when ``num_workers``)."""
    from tqdm.auto import tqdm

    loader = torch.utils.data.DataLoader(ImageList(sources, size), batch_size=batch_size, shuffle=False,
                                         num_workers=num_workers, persistent_workers=False)
    with tqdm(total=len(sources), desc=desc, unit="img", leave=False) as bar:
        for x in loader:
            bar.update(len(x))
            yield x


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


# ------------------------------------------------------------------ MXNet RecordIO (insightface train.rec / .idx)
RECORDIO_MAGIC = 0xCED7230A
_IR_HEADER = struct.Struct("<IfQQ")  # flag, label, id, id2 (mxnet.recordio.IRHeader)


class RecordIO:
    """Indexed MXNet RecordIO (``train.idx`` "key<TAB>offset" lines + ``train.rec``), read without mxnet.

    Record framing (dmlc-core recordio): ``uint32 magic 0xced7230a``, ``uint32 lrec`` (``cflag = lrec >> 29``,
    ``length = lrec & (2^29 - 1)``), payload, padding to 4 bytes; ``cflag`` 1 / 2 / 3 = first / middle /
    last part of a record whose payload contained the magic word (the reader puts the magic back between
    parts). Payload (mxnet.recordio.pack): ``IRHeader`` ``<IfQQ`` then ``flag`` float32 labels when
    ``flag > 0``, then the encoded image. insightface convention: record 0's labels ``(a, b)`` say images
    are records ``1 .. a-1`` (identity ranges ``a .. b-1``); without it every key is an image.
    """

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.rec_path, self.idx_path = folder / "train.rec", folder / "train.idx"
        for p in (self.rec_path, self.idx_path):
            if not p.is_file():
                raise DataError(p, "missing (an insightface RecordIO set is train.rec + train.idx)")
        self.rec_size = self.rec_path.stat().st_size
        if self.idx_path.stat().st_size > MAX_LIST_BYTES:
            raise DataError(self.idx_path, f"index larger than {MAX_LIST_BYTES // 2**20} MB")
        self.offsets: dict[int, int] = {}
        try:
            text = self.idx_path.read_text(encoding="ascii")
        except UnicodeDecodeError as e:
            raise DataError(self.idx_path, f"not a RecordIO index (non-ASCII byte at {e.start})") from None
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                raise DataError(self.idx_path, f"line {n}: expected '<key>\\t<offset>', got {line.strip()[:60]!r}")
            key, off = int(parts[0]), int(parts[1])
            if off + 8 > self.rec_size:
                raise DataError(self.idx_path, f"line {n}: offset {off} is past the end of {self.rec_path.name} "
                                               f"({self.rec_size} bytes)")
            self.offsets[key] = off
        if not self.offsets:
            raise DataError(self.idx_path, "empty index")
        self._fh: Any = None
        self._pid = -1
        header, _ = self.read(min(self.offsets))
        if 0 in self.offsets and header[0] > 0:
            labels = header[1]
            a, b = int(labels[0]), int(labels[1]) if len(labels) > 1 else int(labels[0])
            if not 1 <= a <= max(self.offsets) + 1 or any(k not in self.offsets for k in (1, a - 1) if a > 1):
                raise DataError(self.rec_path, f"record 0 declares images 1..{a - 1}, not in the index")
            self.keys = list(range(1, a))
            self.identity_range = (a, b)
        else:
            self.keys = sorted(self.offsets)
            self.identity_range = None
        if not self.keys:
            raise DataError(self.rec_path, "no image records")

    def _file(self) -> Any:
        if self._fh is None or self._pid != os.getpid():  # one handle per DataLoader worker process
            self._fh = open(self.rec_path, "rb")  # noqa: SIM115 - kept open for lazy reads
            self._pid = os.getpid()
        return self._fh

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fh": None, "_pid": -1}

    def read_raw(self, key: int) -> bytes:
        """The payload of record ``key`` (parts joined with the magic word, as dmlc's reader)."""
        if key not in self.offsets:
            raise DataError(self.rec_path, f"record {key} is not in {self.idx_path.name}")
        f = self._file()
        pos = self.offsets[key]
        parts: list[bytes] = []
        total = 0
        while True:
            f.seek(pos)
            head = f.read(8)
            if len(head) < 8:
                raise DataError(self.rec_path, f"record {key}: truncated header at byte {pos}")
            magic, lrec = struct.unpack("<II", head)
            if magic != RECORDIO_MAGIC:
                raise DataError(self.rec_path, f"record {key}: bad magic 0x{magic:08x} at byte {pos} (not RecordIO, "
                                               "or the index does not match this .rec)")
            cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
            total += length
            if total > MAX_RECORD_BYTES:
                raise DataError(self.rec_path, f"record {key}: declares over {MAX_RECORD_BYTES // 2**20} MB")
            if pos + 8 + length > self.rec_size:
                raise DataError(self.rec_path, f"record {key}: declares {length} bytes at byte {pos}, past the end "
                                               f"of the file ({self.rec_size} bytes): truncated")
            data = f.read(length)
            if parts and cflag not in (2, 3):
                raise DataError(self.rec_path, f"record {key}: continuation part with flag {cflag}")
            parts.append(data)
            pos += 8 + length + (-length % 4)
            if cflag in (0, 3):
                break
            if not parts[:-1] and cflag != 1:
                raise DataError(self.rec_path, f"record {key}: unknown part flag {cflag}")
        return struct.pack("<I", RECORDIO_MAGIC).join(parts)

    def read(self, key: int) -> tuple[tuple[int, list[float]], bytes]:
        """``((flag, labels), encoded image bytes)`` of record ``key`` (mxnet.recordio.unpack)."""
        raw = self.read_raw(key)
        if len(raw) < _IR_HEADER.size:
            raise DataError(self.rec_path, f"record {key}: {len(raw)} bytes, shorter than its 24-byte header")
        flag, label, _id, _id2 = _IR_HEADER.unpack_from(raw)
        body = raw[_IR_HEADER.size:]
        if flag > 0:
            if 4 * flag > len(body):
                raise DataError(self.rec_path, f"record {key}: declares {flag} labels, more than its payload holds")
            labels = list(np.frombuffer(body[:4 * flag], dtype="<f4").astype(float))
            body = body[4 * flag:]
        else:
            labels = [float(label)]
        return (int(flag), labels), body

    def label(self, key: int) -> int:
        (_flag, labels), _ = self.read(key)
        v = labels[0]
        if not np.isfinite(v) or v < 0 or v != int(v):
            raise DataError(self.rec_path, f"record {key}: label {v!r} is not a class index")
        return int(v)

    def decode(self, key: int) -> np.ndarray:
        _, body = self.read(key)
        return decode_image(body, name=f"{self.rec_path}#{key}")[0]

    def __len__(self) -> int:
        return len(self.keys)


@dataclasses.dataclass(frozen=True)
class RecordSource:
    """One image of a RecordIO set (picklable; decoded on demand in a worker)."""

    rec: RecordIO
    key: int

    def decode(self) -> np.ndarray:
        return self.rec.decode(self.key)


def _recordio_frame(payload: bytes) -> bytes:
    """dmlc-core RecordIOWriter: split at every 4-aligned magic word (dropped; the reader re-inserts it)."""
    magic = struct.pack("<I", RECORDIO_MAGIC)
    cuts = [i for i in range(0, len(payload) - 3, 4) if payload[i:i + 4] == magic]
    pieces, start = [], 0
    for c in cuts:
        pieces.append(payload[start:c])
        start = c + 4
    pieces.append(payload[start:])
    out = bytearray()
    for n, piece in enumerate(pieces):
        cflag = 0 if len(pieces) == 1 else 1 if n == 0 else 3 if n == len(pieces) - 1 else 2
        out += struct.pack("<II", RECORDIO_MAGIC, (cflag << 29) | len(piece)) + piece + b"\0" * (-len(piece) % 4)
    return bytes(out)


def pack_record(labels: Sequence[float], image: bytes, idx: int = 0) -> bytes:
    """mxnet.recordio.pack: ``IRHeader(flag, label, id, id2)`` (+ float32 labels when several) + bytes."""
    if len(labels) == 1:
        return _IR_HEADER.pack(0, float(labels[0]), idx, 0) + image
    return _IR_HEADER.pack(len(labels), 0.0, idx, 0) + np.asarray(labels, dtype="<f4").tobytes() + image


def write_recordio(folder: str | Path, images: Sequence[bytes], labels: Sequence[int]) -> None:
    """Write ``train.rec`` / ``train.idx`` as insightface packs them (record 0 header, images, identity ranges)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    order = np.argsort(np.asarray(labels), kind="stable")
    n = len(images)
    ids = sorted({int(x) for x in labels})
    records: list[tuple[int, bytes]] = [(0, pack_record([n + 1, n + 1 + len(ids)], b""))]
    sorted_labels = [int(labels[i]) for i in order]
    for k, i in enumerate(order, 1):
        records.append((k, pack_record([float(labels[i])], images[i], k)))
    for j, c in enumerate(ids):
        first = 1 + sorted_labels.index(c)
        last = first + sorted_labels.count(c)
        records.append((n + 1 + j, pack_record([first, last], b"")))
    offset = 0
    lines = []
    with open(folder / "train.rec", "wb") as f:
        for key, payload in records:
            framed = _recordio_frame(payload)
            lines.append(f"{key}\t{offset}")
            f.write(framed)
            offset += len(framed)
    (folder / "train.idx").write_text("\n".join(lines) + "\n")
    (folder / "property").write_text(f"{len(ids)},112,112\n")


# ------------------------------------------------------------------ training sets (RecordIO or identity folders)
@dataclasses.dataclass
class FaceTrainSet:
    """A labelled training set: lazily decoded sources, integer labels, identity names."""

    root: Path
    sources: list[Any]
    labels: list[int]
    classes: list[str]

    @classmethod
    def open(cls, root: str | Path, max_images: int = 0) -> FaceTrainSet:
        """``root`` holding train.rec + train.idx (insightface) or identity folders."""
        root = Path(root)
        if (root / "train.rec").exists() or (root / "train.idx").exists():
            rec = RecordIO(root)
            keys = rec.keys
            if max_images and len(keys) > max_images:
                keys = [keys[i] for i in np.linspace(0, len(keys) - 1, max_images).astype(int)]
            raw = [rec.label(k) for k in keys]  # header reads only (the images stay encoded on disk)
            ids = sorted(set(raw))
            remap = {c: i for i, c in enumerate(ids)}
            return cls(root, [RecordSource(rec, k) for k in keys], [remap[x] for x in raw], [str(c) for c in ids])
        f = IdentityFolder.read(root, max_images)
        return cls(root, list(f.paths), list(f.labels), list(f.classes))

    @property
    def num_classes(self) -> int:
        return len(self.classes)


class FaceTrainDataset(torch.utils.data.Dataset):
    """Item ``{"image": (3,S,S) normalised (train preprocessing), "label": ()}``, decoded lazily."""

    def __init__(self, data: FaceTrainSet, size: int) -> None:
        self.data = data
        self.images = ImageList(data.sources, size, train=True)
        self.labels = torch.tensor(data.labels, dtype=torch.long)
        self.num_classes = data.num_classes

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "label": self.labels[i]}


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
        if root.is_file():
            raise DataError(root, "is a file; expected a folder of identity folders (<root>/<identity>/<image>) "
                                  "or of train.rec + train.idx")
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


# ------------------------------------------------------------------ verification pairs (LFW pairs.txt / insightface .bin)
@dataclasses.dataclass
class Pairs:
    """Verification pairs: the image source of each side, genuine flags and the fold count."""

    left: list[Any]
    right: list[Any]
    same: list[bool]
    folds: int


def _read_text(p: Path, what: str) -> str:
    if p.is_dir():
        raise DataError(p, f"is a folder, expected a {what}")
    if not p.is_file():
        raise DataError(p, f"{what} not found")
    if p.stat().st_size > MAX_LIST_BYTES:
        raise DataError(p, f"{p.stat().st_size:,} bytes is too large for a {what}")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(p, f"not UTF-8 text (byte {e.start}); a {what} is a text file") from None


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
    root = Path(image_root) if image_root else pf.parent
    lines = _read_text(pf, "pairs file").splitlines()
    left: list[Any] = []
    right: list[Any] = []
    same: list[bool] = []
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
            raise DataError(pf, f"line {i}: expected 'name i j' or 'name1 i name2 j', got {raw.strip()[:80]!r}")
    return _check_pairs(pf, left, right, same, folds)


def _check_pairs(pf: Path, left: list[Any], right: list[Any], same: list[bool], folds: int) -> Pairs:
    if not same:
        raise DataError(pf, "no pairs")
    if all(same) or not any(same):
        raise DataError(pf, "needs both genuine and impostor pairs")
    if folds < 2:
        raise DataError(pf, f"declares {folds} folds; k-fold accuracy needs at least 2")
    return Pairs(left, right, same, max(2, min(folds, len(same))))


class _BoolArrayStandIn:
    """Inert stand-in for ``numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')`` -> a 1-D bool array."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        # ndarray.__setstate__((version, shape, dtype, is_fortran, rawdata))
        if not (isinstance(state, tuple) and len(state) == 5):
            raise DataError(self.where, "numpy array state is not (version, shape, dtype, fortran, data)")
        _v, shape, dtype, _fortran, raw = state
        if not isinstance(dtype, _DtypeStandIn) or not isinstance(raw, (bytes, bytearray)):
            raise DataError(self.where, "only a numpy bool array is allowed in a verification .bin")
        if not (isinstance(shape, tuple) and len(shape) == 1 and isinstance(shape[0], int) and shape[0] == len(raw)):
            raise DataError(self.where, f"numpy bool array declares shape {shape!r} for {len(raw)} bytes")
        self.array = np.frombuffer(bytes(raw), dtype=np.uint8).astype(bool)


class _DtypeStandIn:
    """Inert stand-in for ``numpy.dtype('b1', False, True)`` (the only dtype a .bin may name)."""

    def __init__(self, *args: Any) -> None:
        if args[:1] not in (("b1",), (b"b1",)):
            raise DataError("(.bin)", f"numpy dtype {args[:1]!r} is not allowed (only bool)")

    def __setstate__(self, state: Any) -> None:
        pass


_NUMPY_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
                  ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


def _latin1(where: Path) -> Any:
    """Stand-in for ``_codecs.encode(text, "latin1")``: how Python 3 writes bytes at pickle protocol <= 2."""

    def encode(text: Any, encoding: Any = "utf-8") -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise DataError(where, "only latin-1 byte strings are allowed in a verification .bin")
        return text.encode("latin1")

    return encode

def _bool_from_buffer(where: Path) -> Any:
    """Stand-in for ``numpy._core.numeric._frombuffer(buf, dtype, shape, order)`` (pickle protocol 5)."""

    def build(buf: Any, dtype: Any, shape: Any, order: Any = "C") -> _BoolArrayStandIn:
        out = _BoolArrayStandIn(where)
        raw = bytes(buf.raw() if isinstance(buf, pickle.PickleBuffer) else buf) if isinstance(
            buf, (bytes, bytearray, pickle.PickleBuffer)) else None
        if raw is None:
            raise DataError(where, "numpy array data is not bytes")
        out.__setstate__((1, tuple(shape) if isinstance(shape, (tuple, list)) else shape, dtype, False, raw))
        return out

    return build


class _BinUnpickler(pickle.Unpickler):
    """Resolves no global, except numpy's bool-array trio mapped to inert stand-ins."""

    def __init__(self, data: bytes, where: Path) -> None:
        super().__init__(io.BytesIO(data), encoding="bytes")
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            where = self.where
            if name == "_reconstruct":
                return lambda cls, shape, typecode: _BoolArrayStandIn(where)
            if name == "_frombuffer":
                return _bool_from_buffer(where)
            if name == "encode":
                return _latin1(where)
            if name == "dtype":
                return _DtypeStandIn
            return _BoolArrayStandIn  # ndarray: only ever passed to _reconstruct
        raise DataError(self.where, f"refused: the pickle names the global '{module}.{name}'; a verification .bin "
                                    "holds only (list of image bytes, list / bool array of flags)")


def read_bin(path: str | Path) -> Pairs:
    """An insightface verification ``.bin`` -> :class:`Pairs` of encoded image bytes (decoded lazily)."""
    p = Path(path)
    if p.is_dir():
        raise DataError(p, "is a folder, expected a verification .bin file")
    if not p.is_file():
        raise DataError(p, "verification .bin not found")
    size = p.stat().st_size
    if size > MAX_LIST_BYTES * 4:
        raise DataError(p, f"{size:,} bytes is larger than any verification set (limit {MAX_LIST_BYTES * 4:,})")
    data = p.read_bytes()  # read whole: pickle's declared lengths then never allocate past the file
    try:
        obj = _BinUnpickler(data, p).load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            MemoryError, OverflowError, struct.error) as e:
        raise DataError(p, f"not a verification .bin ({type(e).__name__}: {str(e)[:120]})") from None
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise DataError(p, "expected the pair (bins, issame_list)")
    bins, issame = obj
    if isinstance(issame, _BoolArrayStandIn):
        issame = issame.array
    if not isinstance(bins, (list, tuple)) or not all(isinstance(b, (bytes, bytearray)) for b in bins):
        raise DataError(p, "bins must be a list of encoded images (bytes)")
    if isinstance(issame, np.ndarray) or isinstance(issame, (list, tuple)) and all(isinstance(x, (bool, int)) and x in (0, 1) for x in issame):
        flags = [bool(x) for x in issame]
    else:
        raise DataError(p, "issame_list must be a list of booleans")
    if len(bins) != 2 * len(flags):
        raise DataError(p, f"{len(bins)} images for {len(flags)} pairs (expected {2 * len(flags)})")
    srcs = [BinImage(p, bytes(b), i) for i, b in enumerate(bins)]
    return _check_pairs(p, srcs[0::2], srcs[1::2], flags, 10)


@dataclasses.dataclass(frozen=True)
class BinImage:
    """One encoded image of a ``.bin`` (decoded on demand)."""

    path: Path
    data: bytes
    index: int

    def decode(self) -> np.ndarray:
        return decode_image(self.data, name=f"{self.path}#{self.index}")[0]


def write_bin(path: str | Path, images: Sequence[bytes], issame: Sequence[bool], numpy_flags: bool = False,
              protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
    """insightface's ``pickle.dump((bins, issame_list), f, protocol=HIGHEST)`` (``numpy_flags``: a bool array;
    ``protocol=2``: the layout of the released Python 2 files)."""
    flags: Any = np.asarray(issame, dtype=bool) if numpy_flags else [bool(x) for x in issame]
    with open(path, "wb") as f:
        pickle.dump((list(images), flags), f, protocol=protocol)


def read_verification(path: str | Path) -> Pairs:
    """``<dir>/pairs.txt`` (LFW layout), a ``pairs.txt`` file, or an insightface ``.bin``."""
    p = Path(path)
    if p.suffix.lower() == ".bin":
        return read_bin(p)
    if p.is_dir():
        return read_pairs(p / "pairs.txt")
    if not p.exists():
        raise DataError(p, "verification set not found (expected a folder with pairs.txt in the LFW layout, "
                           "or an insightface .bin; set data.verify_dir)")
    return read_pairs(p)


# ------------------------------------------------------------------ TinyFace
@dataclasses.dataclass
class TinyFaceProtocol:
    """TinyFace identification: probe paths / labels vs gallery (matches + distractors, label -100)."""

    probe: list[Path]
    probe_labels: list[int]
    gallery: list[Path]
    gallery_labels: list[int]


DISTRACTOR = -100  # ref: tinyface_helper.py labels_distractor


def _read_list(root: Path, list_file: Path) -> tuple[list[Path], list[int]]:
    paths, labels = [], []
    for i, raw in enumerate(_read_text(list_file, "image list").splitlines(), 1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataError(list_file, f"line {i}: expected '<relative path> <label>', got {raw.strip()[:80]!r}")
        try:
            lab = int(parts[1])
        except ValueError:
            raise DataError(list_file, f"line {i}: label '{parts[1]}' is not an integer") from None
        if ".." in Path(parts[0]).parts or Path(parts[0]).is_absolute():
            raise DataError(list_file, f"line {i}: path {parts[0]!r} leaves the TinyFace folder")
        p = root / parts[0]
        if not p.is_file():
            raise DataError(list_file, f"line {i}: image {p} does not exist")
        paths.append(p)
        labels.append(DISTRACTOR if lab < 0 else lab)
    return paths, labels


def _scan(folder: Path, distractor: bool) -> tuple[list[Path], list[int]]:
    if not folder.is_dir():
        raise DataError(folder, "TinyFace folder not found (expected Probe/, Gallery_Match/, Gallery_Distractor/)")
    paths = sorted(Path(d) / f for d, _, files in os.walk(folder) for f in files if _is_image(Path(d) / f))
    labels = []
    for p in paths:
        if distractor:
            labels.append(DISTRACTOR)
            continue
        head = p.name.split("_")[0]
        if not head.isdigit():
            raise DataError(p, "TinyFace file names must start with the identity number ('<id>_<k>.jpg') "
                               "or come with a probe.txt / gallery_match.txt list")
        labels.append(int(head))
    return paths, labels


def read_tinyface(root: str | Path) -> TinyFaceProtocol:
    """Read the TinyFace probe / gallery / distractor protocol under ``root`` (paths only; nothing decoded)."""
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
    missing = sorted(set(parts["probe"][1]) - set(parts["match"][1]))
    if missing:
        raise DataError(root, f"{len(missing)} probe identities have no gallery image (e.g. {missing[:3]})")
    return TinyFaceProtocol(parts["probe"][0], parts["probe"][1], parts["match"][0] + parts["dist"][0],
                            parts["match"][1] + parts["dist"][1])


# ------------------------------------------------------------------ IJB-B / IJB-C (insightface eval_ijbc.py layout)
ARCFACE_DST = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                        [70.7299, 92.2041]], dtype=np.float32)  # ref: eval_ijbc.py src (+8 on x) for 112 x 112


def norm_crop(arr: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """insightface alignment: similarity transform of the 5 landmarks onto the ArcFace template, bilinear
    warp, black border (skimage ``warp``; ``cv2.warpAffine`` in the reference: same transform, interpolation
    rounding may differ by one grey level)."""
    from skimage import transform as trans

    t = trans.SimilarityTransform()
    if not t.estimate(landmarks.astype(np.float64), ARCFACE_DST.astype(np.float64) * size / 112.0):
        raise ValueError("degenerate landmarks")
    out = trans.warp(arr, t.inverse, output_shape=(size, size), order=1, mode="constant", cval=0.0, preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class IJBImage:
    """One IJB loose crop aligned with its 5 landmarks on demand."""

    path: Path
    landmarks: tuple[float, ...]

    def decode(self) -> np.ndarray:
        arr, _ = decode_image(self.path)
        try:
            return norm_crop(arr, np.asarray(self.landmarks, dtype=np.float32).reshape(5, 2))
        except ValueError as e:
            raise DataError(self.path, f"cannot align the face ({e})") from None


@dataclasses.dataclass
class IJBProtocol:
    images: list[IJBImage]
    faceness: np.ndarray  # (N,) detector scores
    templates: np.ndarray  # (N,) template id of each image
    medias: np.ndarray  # (N,) media id of each image
    pair_t1: np.ndarray
    pair_t2: np.ndarray
    pair_label: np.ndarray  # (P,) 1 genuine, 0 impostor


def _int_table(p: Path, cols: int, what: str) -> np.ndarray:
    rows = []
    for i, line in enumerate(_read_text(p, what).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < cols:
            raise DataError(p, f"line {i}: expected {cols} fields, got {len(parts)}")
        rows.append(parts[:cols])
    if not rows:
        raise DataError(p, f"empty {what}")
    return np.asarray(rows, dtype=object)


def read_ijb(root: str | Path, target: str = "IJBC") -> IJBProtocol:
    """IJB-B / IJB-C: ``meta/<t>_face_tid_mid.txt``, ``<t>_template_pair_label.txt``, ``<t>_name_5pts_score.txt``
    and ``loose_crop/`` under ``root`` (``t`` = ``ijbb`` / ``ijbc``), as insightface eval_ijbc.py reads them."""
    root = Path(root)
    t = target.lower()
    meta = root / "meta"
    tm = _int_table(meta / f"{t}_face_tid_mid.txt", 3, "IJB template/media list")
    pairs = _int_table(meta / f"{t}_template_pair_label.txt", 3, "IJB pair list")
    lmk_file = meta / f"{t}_name_5pts_score.txt"
    images, faceness = [], []
    for i, line in enumerate(_read_text(lmk_file, "IJB landmark list").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 12:
            raise DataError(lmk_file, f"line {i}: expected 'name x1 y1 .. x5 y5 score' (12 fields), got {len(parts)}")
        try:
            vals = [float(v) for v in parts[1:]]
        except ValueError:
            raise DataError(lmk_file, f"line {i}: landmarks / score are not numbers") from None
        if not np.all(np.isfinite(vals)):
            raise DataError(lmk_file, f"line {i}: non-finite landmark or score")
        img = root / "loose_crop" / parts[0]
        if ".." in Path(parts[0]).parts:
            raise DataError(lmk_file, f"line {i}: path {parts[0]!r} leaves loose_crop/")
        images.append(IJBImage(img, tuple(vals[:10])))
        faceness.append(vals[10])
    if len(images) != len(tm):
        raise DataError(lmk_file, f"{len(images)} images, but {meta / f'{t}_face_tid_mid.txt'} lists {len(tm)}")
    try:
        templates, medias = tm[:, 1].astype(np.int64), tm[:, 2].astype(np.int64)
        p1, p2, lab = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64), pairs[:, 2].astype(np.int64)
    except ValueError:
        raise DataError(meta, "template / media / pair ids must be integers") from None
    unknown = set(np.unique(np.concatenate([p1, p2]))) - set(np.unique(templates))
    if unknown:
        raise DataError(meta / f"{t}_template_pair_label.txt", f"{len(unknown)} templates have no image (e.g. {sorted(unknown)[:3]})")
    if not set(np.unique(lab)) <= {0, 1}:
        raise DataError(meta / f"{t}_template_pair_label.txt", "labels must be 0 or 1")
    missing = [im.path for im in images[:1000] if not im.path.is_file()]
    if missing:
        raise DataError(missing[0], "IJB image listed in the landmark file does not exist")
    return IJBProtocol(images, np.asarray(faceness, np.float32), templates, medias, p1, p2, lab)


def write_ijb(root: str | Path, target: str, images: Sequence[np.ndarray], landmarks: Sequence[np.ndarray],
              templates: Sequence[int], medias: Sequence[int], pairs: Sequence[tuple[int, int, int]]) -> None:
    """Write an IJB-style set (loose crops as PNG + the three meta files) in insightface's layout."""
    root = Path(root)
    t = target.lower()
    (root / "loose_crop").mkdir(parents=True, exist_ok=True)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    names = [f"{i + 1}.png" for i in range(len(images))]
    for name, arr in zip(names, images):
        Image.fromarray(arr).save(root / "loose_crop" / name)
    (root / "meta" / f"{t}_face_tid_mid.txt").write_text(
        "".join(f"{n} {tt} {m}\n" for n, tt, m in zip(names, templates, medias)))
    (root / "meta" / f"{t}_template_pair_label.txt").write_text("".join(f"{a} {b} {c}\n" for a, b, c in pairs))
    (root / "meta" / f"{t}_name_5pts_score.txt").write_text("".join(
        f"{n} {' '.join(f'{v:.2f}' for v in np.asarray(lm).reshape(-1))} 0.99\n" for n, lm in zip(names, landmarks)))
