"""Readers (and the shard writer) of the image-text formats vision-language pre-training uses.

* **open_clip CSV** (``--dataset-type csv``): a separated file (tab by default) with a header naming
  the image column (``filepath``) and the caption column (``title``); relative paths resolve against
  the CSV's folder, then the current directory. The file is indexed once by line offsets (two int64
  per row: ~48 MB for 3M rows) and each row is parsed when it is read, so a 3M-pair CSV costs tens of
  MB, not gigabytes. Rows are line-based (no quoted multi-line fields, unlike pandas).
* **webdataset shards** (``--dataset-type webdataset``): ``.tar`` files where each sample is
  ``<key>.jpg|png|jpeg|webp`` + ``<key>.txt``. Given as open_clip's brace pattern
  (``shards/{00000..00331}.tar``, several joined with ``::``), a folder of ``.tar`` files, a glob or one
  shard. Training streams them with the ``webdataset`` library (:mod:`pretrainlab.clip.dataset`).
* **image folder + captions JSONL**: ``captions.jsonl`` lines ``{"file": "img.jpg", "caption": "..."}``
  with paths relative to the folder (read whole: meant for benchmark-sized sets).
* **class folders** (ImageNet-style ``val/<wnid>/*.JPEG``) and the **zero-shot benchmark**
  (``classes.json`` + ``labels.csv``) for zero-shot classification.

Bad input: a missing column, an unreadable CSV / tar / JSONL is a :class:`DataError` naming the file.
A bad *sample* (an image that does not decode or declares more pixels than the limit, a missing
image, an empty or non-UTF-8 caption, a row with too few columns, a shard member without image or
``.txt``) is skipped and counted; readers report how many and the first problems, and above
``data.max_bad_fraction`` of the samples they raise a ``DataError``. Image sizes are read from the
header and checked (``pretrainlab.core.guards``) before any pixel is decoded. Odd image modes are
converted: CMYK, 16-bit (``I;16`` / ``I``) rescaled to 8 bit, alpha (RGBA / LA / P with transparency)
composited on white (open_clip's ``convert("RGB")`` drops alpha), grayscale replicated.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from pretrainlab.core import guards
from pretrainlab.core.data import DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
WDS_IMAGE_EXTS = ("jpg", "png", "jpeg", "webp")  # open_clip: wds.rename(image="jpg;png;jpeg;webp")
MAX_BAD_EXAMPLES = 5  # problems quoted in an error / report


# ------------------------------------------------------------------ records
@dataclasses.dataclass
class Record:
    """One image-text sample before decoding: where the image bytes are and its caption."""

    source: str  # file the sample came from (CSV / shard / JSONL), for error messages
    key: str
    caption: str
    image_path: str  # image file, or the tar shard
    offset: int = -1  # byte offset of the image inside a tar shard (-1: a plain file)
    size: int = -1

    @property
    def name(self) -> str:
        """How errors name the sample: the image file, with the row / shard member it came from."""
        if self.source == self.image_path:
            return self.image_path
        if self.offset >= 0:
            return f"{self.source}:{self.key}"
        return f"{self.source}:{self.key} ({self.image_path})"

    def read_bytes(self) -> bytes:
        """The image file's bytes; DataError naming the row when missing / unreadable."""
        try:
            if self.offset < 0:
                return Path(self.image_path).read_bytes()
            with open(self.image_path, "rb") as f:
                f.seek(self.offset)
                return f.read(self.size)
        except FileNotFoundError:
            raise DataError(self.name, f"image file not found: {self.image_path}") from None
        except IsADirectoryError:
            raise DataError(self.name, f"image path is a folder: {self.image_path}") from None
        except OSError as e:
            raise DataError(self.name, f"cannot read image {self.image_path} ({e.strerror or e})") from None


class Problems:
    """A count of skipped samples and the first few reasons (bounded memory at any scale)."""

    def __init__(self) -> None:
        self.count = 0
        self.examples: list[str] = []

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.examples) < MAX_BAD_EXAMPLES:
            self.examples.append(message)

    def first(self) -> str:
        return "; ".join(self.examples) if self.examples else "(none recorded)"


def check_bad_fraction(bad: int, total: int, max_bad_fraction: float, what: str | os.PathLike[str],
                       examples: str = "", warn: bool = True) -> None:
    """Raise DataError when more than ``max_bad_fraction`` of ``total`` samples were skipped; else warn."""
    total = max(1, total)
    if bad and bad / total > max_bad_fraction:
        raise DataError(what, f"{bad} of {total} samples are unreadable ({bad / total:.0%} > "
                              f"data.max_bad_fraction={max_bad_fraction:g}); first: {examples or '(none recorded)'}")
    if bad and warn:
        print(f"warning: {what}: skipped {bad} of {total} unreadable samples; first: {examples}", file=sys.stderr)


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


def decode_pil(data: bytes, name: str | os.PathLike[str]) -> Image.Image:
    """Image bytes -> fully decoded RGB ``PIL.Image``. The header's width x height is checked against
    :data:`pretrainlab.core.guards.DEFAULT_MAX_IMAGE_PIXELS` and the decode limit before any pixel is
    decoded; a truncated or corrupt file is a DataError naming ``name``, never a half-grey image."""
    if not data:
        raise DataError(name, "image file is empty")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > guards.DEFAULT_MAX_IMAGE_PIXELS:
                raise DataError(name, f"image header declares {w} x {h} pixels, over the limit of "
                                      f"{guards.DEFAULT_MAX_IMAGE_PIXELS} pixels")
            guards.check_decode_size(name, (h, w, 4), 4, "image")  # RGBA float32: the worst case while converting
            im.load()
            return to_rgb(im)
    except DataError:
        raise
    except Image.DecompressionBombError as e:
        raise DataError(name, f"image is too large to decode ({e})") from None
    except UnidentifiedImageError:
        raise DataError(name, f"image does not decode (not a recognised image format; {len(data)} bytes)") from None
    except Exception as e:  # noqa: BLE001 - PIL raises many types (OSError, SyntaxError, ValueError...) for bad files
        raise DataError(name, f"image does not decode ({type(e).__name__}: {e}); truncated or corrupt") from None


def read_image_file(path: str | os.PathLike[str]) -> Image.Image:
    """An image file -> RGB PIL image (DataError naming the file when missing, a folder or corrupt)."""
    p = Path(path)
    if p.is_dir():
        raise DataError(p, "is a folder, expected an image file")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataError(p, "file not found") from None
    except OSError as e:
        raise DataError(p, f"cannot read ({e.strerror or e})") from None
    return decode_pil(data, p)


def decode_caption(raw: bytes, name: str) -> str:
    """UTF-8 caption bytes -> whitespace-collapsed text; DataError when not UTF-8 or empty."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(name, f"caption is not UTF-8 (byte {e.start})") from None
    text = " ".join(text.split())
    if not text:
        raise DataError(name, "caption is empty")
    return text


# ------------------------------------------------------------------ CSV / TSV (open_clip)
class CsvSource:
    """open_clip's CSV, indexed by the byte offset of each valid row; rows are parsed on access.

    Text-level problems (too few columns, non-UTF-8 or empty caption / path) are found while
    indexing and counted in :attr:`problems`; image-level ones when the image is read.
    """

    def __init__(self, path: str | os.PathLike[str], img_key: str = "filepath", caption_key: str = "title",
                 sep: str = "\t", chunk: int = 1 << 24) -> None:
        self.path = Path(path)
        self.sep = sep.encode()
        self.problems = Problems()
        if self.path.is_dir():
            raise DataError(self.path, "is a folder, expected a CSV / TSV file")
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise DataError(self.path, "file not found") from None
        except OSError as e:
            raise DataError(self.path, f"cannot read ({e.strerror or e})") from None
        with f:
            header_line = f.readline()
            if not header_line.strip():
                raise DataError(self.path, "file is empty (expected a header line naming the columns)")
            try:
                header = header_line.decode("utf-8-sig").rstrip("\r\n").split(sep)
            except UnicodeDecodeError:
                raise DataError(self.path, "header line is not UTF-8") from None
            missing = [c for c in (img_key, caption_key) if c not in header]
            if missing:
                raise DataError(self.path, f"missing column(s) {missing}; found {header} (separator {sep!r}); "
                                           "set data.csv_img_key / data.csv_caption_key / data.csv_separator")
            self.header = header
            self.ii, self.ci = header.index(img_key), header.index(caption_key)
            offsets: list[np.ndarray] = []
            pos, line_no, tail = f.tell(), 2, b""
            while True:
                buf = f.read(chunk)
                if not buf:
                    break
                data = tail + buf
                start = pos - len(tail)
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    tail, pos = data, pos + len(buf)
                    continue
                good, line_no = self._index(data[:cut], start, line_no)
                offsets.append(good)
                tail, pos = data[cut:], pos + len(buf)
            if tail.strip():
                good, line_no = self._index(tail + b"\n", pos - len(tail), line_no)
                offsets.append(good)
        self.offsets = np.concatenate(offsets) if offsets else np.zeros((0, 2), np.int64)  # (offset, line number)

    def _index(self, block: bytes, start: int, line_no: int) -> tuple[np.ndarray, int]:
        good: list[int] = []
        pos = start
        need = max(self.ii, self.ci)
        for line in block.split(b"\n")[:-1]:
            here = pos
            pos += len(line) + 1
            n = line_no
            line_no += 1
            if not line.strip():
                continue
            cells = line.rstrip(b"\r").split(self.sep)
            where = f"{self.path}:{n}"
            if len(cells) <= need:
                self.problems.add(f"{where}: {len(cells)} column(s), expected {len(self.header)}")
                continue
            try:
                decode_caption(cells[self.ci], where)
                if not cells[self.ii].decode("utf-8").strip():
                    raise DataError(where, "image path is empty")
            except UnicodeDecodeError:
                self.problems.add(f"{where}: image path is not UTF-8")
                continue
            except DataError as e:
                self.problems.add(str(e))
                continue
            good.append(here)
            good.append(n)
        arr = np.asarray(good, np.int64).reshape(-1, 2)
        return arr, line_no

    def _handle(self) -> Any:
        """This process's open handle of the CSV (reopened in each DataLoader worker)."""
        if getattr(self, "_fh", None) is None or self._pid != os.getpid():
            self._fh, self._pid = open(self.path, "rb"), os.getpid()  # noqa: SIM115 - kept open for reads
        return self._fh

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_fh", "_pid")}

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def total(self) -> int:
        return len(self) + self.problems.count

    def __getitem__(self, i: int) -> Record:
        off, n = (int(x) for x in self.offsets[i])
        f = self._handle()
        f.seek(off)
        line = f.readline().rstrip(b"\r\n")
        cells = line.split(self.sep)
        caption = " ".join(cells[self.ci].decode("utf-8").split())
        rel = cells[self.ii].decode("utf-8").strip()
        img = Path(rel)
        if not img.is_absolute():
            local = self.path.parent / rel
            img = local if local.exists() or not img.exists() else img
        return Record(str(self.path), str(n), caption, str(img))


# ------------------------------------------------------------------ image folder + captions.jsonl
class ListSource:
    """Records held in a list (captions JSONL, an image folder): benchmark-sized sets."""

    def __init__(self, records: list[Record], problems: Problems | None = None, path: str = "") -> None:
        self.records = records
        self.problems = problems or Problems()
        self.path = path

    def __len__(self) -> int:
        return len(self.records)

    @property
    def total(self) -> int:
        return len(self.records) + self.problems.count

    def __getitem__(self, i: int) -> Record:
        return self.records[i]


def read_folder(root: str | os.PathLike[str], captions: str = "captions.jsonl") -> ListSource:
    """``root/captions.jsonl`` lines ``{"file": ..., "caption": ...}``; files relative to ``root``."""
    root = Path(root)
    path = root / captions if root.is_dir() else root
    root = path.parent
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        raise DataError(path, "file not found (expected captions.jsonl lines {\"file\": ..., \"caption\": ...})") from None
    except OSError as e:
        raise DataError(path, f"cannot read ({e.strerror or e})") from None
    records, bad = [], Problems()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            bad.add(f"{where}: line is not UTF-8")
            continue
        except json.JSONDecodeError as e:
            raise DataError(path, f"line {n} is not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict) or "file" not in obj or "caption" not in obj:
            raise DataError(path, f"line {n} lacks the 'file' / 'caption' keys")
        if not isinstance(obj["file"], str) or not obj["file"].strip():
            bad.add(f"{where}: 'file' is not a file name")
            continue
        cap = " ".join(str(obj["caption"]).split()) if isinstance(obj["caption"], str) else ""
        if not cap:
            bad.add(f"{where}: caption is empty or not text")
            continue
        records.append(Record(str(path), str(n), cap, str(root / obj["file"])))
    return ListSource(records, bad, str(path))


def read_image_folder(root: str | os.PathLike[str]) -> ListSource:
    """Every image file under ``root`` (recursive, sorted), without captions."""
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise DataError(root, f"no images ({', '.join(IMAGE_EXTS)}) found")
    return ListSource([Record(str(p), str(p.relative_to(root)), "", str(p)) for p in files], path=str(root))


# ------------------------------------------------------------------ webdataset shards
def is_shard_spec(spec: str | os.PathLike[str]) -> bool:
    s = str(spec)
    return ".tar" in s and ("{" in s or "::" in s or any(ch in s for ch in "*?["))


def shard_list(spec: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """open_clip's shard spec -> local ``.tar`` paths: a brace pattern (``d/{00000..00009}.tar``, several
    joined with ``::``), a folder of shards, a glob, one shard or a list. Every shard must exist."""
    from webdataset.shardlists import expand_urls

    if isinstance(spec, (list, tuple)):
        shards = [str(s) for s in spec]
    else:
        s = str(spec)
        p = Path(s)
        if p.is_dir():
            shards = sorted(str(x) for x in p.glob("*.tar"))
        elif any(ch in s for ch in "*?[") and "{" not in s:
            anchor = Path(p.anchor or ".")
            shards = sorted(str(x) for x in anchor.glob(str(p.relative_to(p.anchor)) if p.anchor else s))
        else:
            try:
                shards = expand_urls(s)
            except Exception as e:  # noqa: BLE001 - braceexpand raises its own types
                raise DataError(s, f"not a valid shard pattern ({e})") from None
    if not shards:
        raise DataError(spec if not isinstance(spec, (list, tuple)) else "shards", "no .tar shards found")
    missing = [x for x in shards if "://" not in x and not Path(x).is_file()]
    if missing:
        raise DataError(missing[0], f"shard not found ({len(missing)} of {len(shards)} shards missing)")
    return shards


def shard_sample(shard: str, key: str, members: dict[str, bytes]) -> tuple[bytes, str]:
    """``(image bytes, caption)`` of one shard sample; DataError naming ``shard:key`` when incomplete."""
    where = f"{shard}:{key}"
    img = next((members[e] for e in WDS_IMAGE_EXTS if e in members), None)
    if img is None:
        raise DataError(where, f"no image member (.{' / .'.join(WDS_IMAGE_EXTS)})")
    if "txt" not in members:
        raise DataError(where, "no .txt caption member")
    return img, decode_caption(members["txt"], where)


def read_wds_index(spec: str | os.PathLike[str] | Sequence[str]) -> ListSource:
    """Index shards for random access (tar headers only): records pointing at each image member.

    Used for benchmark-sized sets and the ordered readers (embed / retrieval); training streams."""
    shards = shard_list(spec)
    records, bad = [], Problems()
    for shard in shards:
        try:
            with tarfile.open(shard, "r:") as tf:
                members = tf.getmembers()
                groups: dict[str, dict[str, tarfile.TarInfo]] = {}
                for m in members:
                    base = m.name.rsplit("/", 1)[-1]
                    if not m.isfile() or "." not in base:
                        continue
                    key = m.name[: len(m.name) - len(base)] + base.split(".", 1)[0]
                    groups.setdefault(key, {})[base.split(".", 1)[1].lower()] = m
                for key, g in groups.items():
                    where = f"{shard}:{key}"
                    img = next((g[e] for e in WDS_IMAGE_EXTS if e in g), None)
                    if img is None:
                        bad.add(f"{where}: no image member")
                        continue
                    if "txt" not in g:
                        bad.add(f"{where}: no .txt caption member")
                        continue
                    f = tf.extractfile(g["txt"])
                    try:
                        caption = decode_caption(f.read() if f else b"", where)
                    except DataError as e:
                        bad.add(str(e))
                        continue
                    records.append(Record(str(shard), key, caption, str(shard), img.offset_data, img.size))
        except (OSError, tarfile.TarError, EOFError) as e:
            raise DataError(shard, f"not a readable tar shard ({e})") from None
    return ListSource(records, bad, str(spec))


# ------------------------------------------------------------------ zero-shot sets
@dataclasses.dataclass
class ClassSet:
    """Images with class labels for zero-shot classification."""

    records: list[Record]  # caption = "" (the label is in ``labels``)
    labels: np.ndarray  # (N,) int64
    classnames: list[str]
    templates: list[str]
    unseen: list[str]
    problems: Problems
    path: str


def read_zeroshot(root: str | os.PathLike[str]) -> ClassSet:
    """The zero-shot benchmark: ``root/classes.json`` (``classnames``, ``templates``, optional ``unseen``)
    + ``root/labels.csv`` (``filepath<TAB>label`` with class indices)."""
    root = Path(root)
    cpath = root / "classes.json"
    try:
        meta = json.loads(cpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(cpath, "zero-shot class file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(cpath, f"not valid UTF-8 JSON ({e})") from None
    ok = isinstance(meta, dict) and all(isinstance(meta.get(k), list) and meta.get(k) for k in ("classnames", "templates"))
    if not ok or not all(isinstance(c, str) for c in meta["classnames"] + meta["templates"]):
        raise DataError(cpath, "needs non-empty 'classnames' and 'templates' lists of strings")
    bad_t = [t for t in meta["templates"] if t.count("{}") != 1]
    if bad_t:
        raise DataError(cpath, f"every template needs exactly one '{{}}' for the class name; got {bad_t[0]!r}")
    src = CsvSource(root / "labels.csv", "filepath", "label")
    n_cls = len(meta["classnames"])
    records, labels = [], []
    for i in range(len(src)):
        r = src[i]
        try:
            y = int(r.caption)
        except ValueError:
            src.problems.add(f"{src.path}:{r.key}: label {r.caption!r} is not a class index")
            continue
        if not 0 <= y < n_cls:
            src.problems.add(f"{src.path}:{r.key}: label {y} outside [0, {n_cls})")
            continue
        records.append(Record(r.source, r.key, "", r.image_path))
        labels.append(y)
    return ClassSet(records, np.asarray(labels, np.int64), list(meta["classnames"]), list(meta["templates"]),
                    [str(u) for u in meta.get("unseen", []) or []], src.problems, str(root))


def is_class_folder(root: str | os.PathLike[str]) -> bool:
    """An ImageNet-style folder: ``root/val/<class>/`` or ``root/<class>/`` sub-folders holding images."""
    p = Path(root)
    base = p / "val" if (p / "val").is_dir() else p
    if not base.is_dir() or (p / "zeroshot").exists() or (p / "classes.json").exists():
        return False
    subs = [d for d in base.iterdir() if d.is_dir()]
    return bool(subs) and any(f.suffix.lower() in IMAGE_EXTS for f in next(iter(sorted(subs))).iterdir())


def read_class_folder(root: str | os.PathLike[str]) -> ClassSet:
    """ImageNet-style ``root/val/<wnid>/*.JPEG`` (or ``root/<class>/*``), classes in sorted folder order
    (torchvision ``ImageFolder``). 1000 classes: open_clip's ``IMAGENET_CLASSNAMES`` (same sorted-wnid
    order) and ``OPENAI_IMAGENET_TEMPLATES``; otherwise the folder names (``_`` -> space) with those templates."""
    import open_clip

    p = Path(root)
    base = p / "val" if (p / "val").is_dir() else p
    if not base.is_dir():
        raise DataError(p, "not a folder (expected class sub-folders, e.g. val/<wnid>/*.JPEG)")
    classes = sorted(d.name for d in base.iterdir() if d.is_dir())
    if not classes:
        raise DataError(base, "holds no class sub-folders (expected <class>/<image> files, e.g. val/<wnid>/*.JPEG)")
    records, labels = [], []
    for y, c in enumerate(classes):
        for f in sorted((base / c).iterdir()):
            if f.is_file() and f.suffix.lower() in IMAGE_EXTS:
                records.append(Record(str(f), f"{c}/{f.name}", "", str(f)))
                labels.append(y)
    if not records:
        raise DataError(base, f"no images ({', '.join(IMAGE_EXTS)}) in its class folders")
    if len(classes) == len(open_clip.IMAGENET_CLASSNAMES):
        names = list(open_clip.IMAGENET_CLASSNAMES)
    else:
        names = [c.replace("_", " ") for c in classes]
    templates = [t("{}") for t in open_clip.OPENAI_IMAGENET_TEMPLATES]
    return ClassSet(records, np.asarray(labels, np.int64), names, templates, [], Problems(), str(base))


# ------------------------------------------------------------------ dispatch
def detect_format(path: str | os.PathLike[str]) -> str:
    s = str(path)
    p = Path(s)
    if is_shard_spec(s):
        return "wds"
    if p.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    if p.suffix == ".tar" or (p.is_dir() and any(p.glob("*.tar"))):
        return "wds"
    if p.suffix == ".jsonl" or (p.is_dir() and (p / "captions.jsonl").exists()):
        return "folder"
    if p.is_dir() and (p / "train.csv").exists():
        return "csv"
    raise DataError(p, "cannot tell the format: expected a .csv/.tsv file, .tar shards (a folder, a glob or a "
                       "brace pattern like shards/{00000..00009}.tar), or a folder with captions.jsonl or train.csv")


def resolve_source(path: str | os.PathLike[str], fmt: str = "auto") -> tuple[str, str]:
    """``(format, concrete source)``: a dataset root made by ``pretrainlab clip data`` resolves to its
    ``train.csv`` (csv) or ``shards/`` (wds)."""
    s = str(path)
    p = Path(s)
    if not is_shard_spec(s) and not p.exists():
        raise DataError(p, "not found")
    fmt = detect_format(s) if fmt == "auto" else fmt
    if fmt not in ("csv", "wds", "folder"):
        raise DataError(p, f"unknown data format '{fmt}'; allowed: auto, csv, wds, folder")
    if fmt == "csv" and p.is_dir():
        s = str(p / "train.csv")
    elif fmt == "wds" and p.is_dir() and (p / "shards").is_dir():
        s = str(p / "shards")
    return fmt, s


def read_source(path: str | os.PathLike[str], fmt: str = "auto", img_key: str = "filepath",
                caption_key: str = "title", sep: str = "\t") -> CsvSource | ListSource:
    """A map-style (random-access) reader of an image-text source in ``fmt`` (``auto`` detects it).
    Shards are indexed by their tar headers (for ordered reads; training streams them instead)."""
    fmt, s = resolve_source(path, fmt)
    if fmt == "csv":
        return CsvSource(s, img_key, caption_key, sep)
    if fmt == "wds":
        return read_wds_index(s)
    return read_folder(s)


# ------------------------------------------------------------------ writer
class ShardWriter:
    """Writes webdataset shards ``<prefix>-NNNNNN.tar`` of ``per_shard`` samples (``<key>.jpg`` + ``<key>.txt``)."""

    def __init__(self, folder: str | os.PathLike[str], prefix: str = "train", per_shard: int = 1000) -> None:
        self.folder, self.prefix, self.per_shard = Path(folder), prefix, per_shard
        self.folder.mkdir(parents=True, exist_ok=True)
        self.n = 0
        self.shards = 0
        self.tar: tarfile.TarFile | None = None

    def write(self, key: str, members: dict[str, bytes]) -> None:
        if self.n % self.per_shard == 0:
            self.close()
            self.tar = tarfile.open(self.folder / f"{self.prefix}-{self.shards:06d}.tar", "w")  # noqa: SIM115
            self.shards += 1
        assert self.tar is not None
        for ext, payload in members.items():
            ti = tarfile.TarInfo(f"{key}.{ext}")
            ti.size, ti.mtime = len(payload), 0
            self.tar.addfile(ti, io.BytesIO(payload))
        self.n += 1

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()
            self.tar = None

