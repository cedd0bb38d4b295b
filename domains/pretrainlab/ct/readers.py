"""Readers of the CT formats the field uses, each raising ``DataError("<file>: <problem>")``.

* DICOM series: a folder of single-slice files (``*.dcm`` or DICOM files without suffix); the
  slices are grouped by ``SeriesInstanceUID`` (a folder mixing series is an error unless a UID is
  chosen), sorted by ``ImagePositionPatient`` projected on the slice normal (``InstanceNumber``
  when positions are missing), converted to HU (``preprocessing.dicom_to_hu``).
* NIfTI (``.nii``, ``.nii.gz``) through nibabel, reoriented to the closest canonical (RAS)
  orientation; returned as ``(Z, Y, X)`` slices.
* PNG slice folders, as the paper's pipeline writes them: ``root/<volume>/<slice>.png`` (8-bit,
  sorted by file name).
* Downstream sets: ``ImageFolder`` of PNGs (COVID-CT style ``<split>/<class>/*.png``) and MedMNIST
  ``.npz`` (``{split}_images``, ``{split}_labels``; OrganSMNIST).

Layout of a pre-training folder (any mix): ``*.nii``, ``*.nii.gz``, DICOM series folders, PNG
slice folders.
"""

from __future__ import annotations

import dataclasses
import gzip
import warnings
import zlib
from pathlib import Path

import numpy as np

from pretrainlab.core.data import DataError
from pretrainlab.ct.preprocessing import dicom_to_hu

NIFTI_SUFFIXES = (".nii", ".nii.gz")
CT_SOP_CLASSES = ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1")  # CT / Enhanced CT Image Storage


@dataclasses.dataclass
class Volume:
    """One CT volume: ``hu`` ``(Z, H, W)`` float32 in Hounsfield units (None for PNG folders, which
    hold ``slices`` ``(Z, H, W)`` uint8 already), spacing ``(dz, dy, dx)`` mm, its source path."""

    name: str
    path: Path
    hu: np.ndarray | None
    slices: np.ndarray | None = None
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    kind: str = ""  # dicom | nifti | png
    warnings: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        arr = self.hu if self.hu is not None else self.slices
        return 0 if arr is None else int(arr.shape[0])


def _check_finite(arr: np.ndarray, path: Path) -> None:
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise DataError(path, f"{bad} non-finite voxel(s) (NaN / inf); fix or mask them before use")


def is_nifti(p: Path) -> bool:
    return p.name.lower().endswith(NIFTI_SUFFIXES)


# ------------------------------------------------------------------------------------- NIfTI
def read_nifti(path: str | Path, min_slices: int = 2) -> Volume:
    """``.nii`` / ``.nii.gz`` -> Volume with ``hu (Z, Y, X)`` in canonical (RAS) orientation."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "NIfTI file not found")
    try:
        img = nib.load(str(path))
        img = nib.as_closest_canonical(img)
        data = np.asarray(img.get_fdata(dtype=np.float32))
        zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    except (nib.filebasedimages.ImageFileError, EOFError, OSError, ValueError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(path, f"not a readable NIfTI file (corrupt or truncated header / data: {e})") from e
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim == 2 or (data.ndim == 3 and data.shape[2] < min_slices):
        raise DataError(path, f"a 2-D image (shape {data.shape}); expected a 3-D CT volume with >= {min_slices} slices")
    if data.ndim != 3:
        raise DataError(path, f"expected a 3-D volume, got shape {data.shape}")
    _check_finite(data, path)
    hu = np.ascontiguousarray(data.transpose(2, 1, 0))  # (X, Y, Z) -> (Z, Y, X)
    dz = zooms[2] if len(zooms) > 2 else 1.0
    return Volume(path.name.split(".nii")[0], path, hu, spacing=(dz, zooms[1], zooms[0]), kind="nifti")


# ------------------------------------------------------------------------------------- DICOM
def _dicom_files(folder: Path) -> list[Path]:
    files = []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        if p.suffix.lower() == ".dcm":
            files.append(p)
        elif p.suffix == "":
            try:
                with open(p, "rb") as f:
                    head = f.read(132)
                if head[128:132] == b"DICM":
                    files.append(p)
            except OSError:
                continue
    return files


def is_dicom_folder(folder: Path) -> bool:
    return folder.is_dir() and bool(_dicom_files(folder))


def read_dicom_series(folder: str | Path, series_uid: str = "", padding_value: float | None = -2000.0,
                      allow_non_ct: bool = False, allow_missing_rescale: bool = False, min_slices: int = 2) -> Volume:
    """A folder of DICOM slices -> Volume (HU), sorted along the slice normal.

    Raises DataError for unreadable / corrupt files, non-CT modalities (unless ``allow_non_ct``),
    missing rescale tags (unless ``allow_missing_rescale``), mixed series (unless ``series_uid``),
    single slices, and slices of differing size.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "DICOM series folder not found")
    files = _dicom_files(folder)
    if not files:
        raise DataError(folder, "no DICOM files (*.dcm or files with the DICM preamble)")
    headers = []
    for f in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(str(f), stop_before_pixels=True)
                missing = [t for t in ("Rows", "Columns", "SeriesInstanceUID") if ds.get(t) in (None, "")]
        except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise DataError(f, f"corrupt or unreadable DICOM header ({type(e).__name__}: {e})") from e
        if missing:
            raise DataError(f, f"corrupt or unreadable DICOM header (required tags missing: {', '.join(missing)})")
        headers.append((f, ds))
    uids: dict[str, list[tuple[Path, object]]] = {}
    for f, ds in headers:
        uids.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((f, ds))
    if series_uid:
        if series_uid not in uids:
            raise DataError(folder, f"series {series_uid} not found; present: {', '.join(sorted(uids))}")
        chosen = uids[series_uid]
    elif len(uids) > 1:
        desc = "; ".join(f"{u or '(no UID)'} ({len(v)} files)" for u, v in sorted(uids.items()))
        raise DataError(folder, f"mixes {len(uids)} DICOM series: {desc}. Choose one with "
                                f"preprocess.series_uid=<UID> (or split the folder)")
    else:
        chosen = next(iter(uids.values()))
    warn: list[str] = []
    for f, ds in chosen:
        mod = str(ds.get("Modality", ""))
        if mod != "CT":
            msg = f"modality is {mod or 'missing'}, not CT"
            if not allow_non_ct:
                raise DataError(f, msg + " (set preprocess.allow_non_ct=true to read it anyway)")
            warn.append(f"{f}: {msg}")
            warnings.warn(f"{f}: {msg}", stacklevel=2)
            break
    if len(chosen) < min_slices:
        raise DataError(chosen[0][0], f"a single 2-D slice; expected a series of >= {min_slices} slices (a folder per volume)")

    def sort_key(item: tuple[Path, object]) -> tuple[float, float]:
        _, ds = item
        pos = ds.get("ImagePositionPatient")
        ori = ds.get("ImageOrientationPatient")
        inst = float(ds.get("InstanceNumber", 0) or 0)
        if pos is not None and ori is not None and len(ori) == 6:
            normal = np.cross(np.asarray(ori[:3], float), np.asarray(ori[3:], float))
            return float(np.dot(normal, np.asarray(pos, float))), inst
        return inst, 0.0

    chosen = sorted(chosen, key=sort_key)
    slices, shape = [], None
    for f, _ in chosen:
        try:
            ds = pydicom.dcmread(str(f))
            raw = ds.pixel_array
        except Exception as e:  # pixel decoding raises many types (missing handlers, truncated data)
            raise DataError(f, f"cannot decode the pixel data ({type(e).__name__}: {e})") from e
        if raw.ndim != 2:
            raise DataError(f, f"expected one 2-D slice per file, got pixel array of shape {raw.shape}")
        if shape is None:
            shape = raw.shape
        elif raw.shape != shape:
            raise DataError(f, f"slice size {raw.shape} differs from the series' {shape}")
        slope, inter = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
        if slope is None or inter is None:
            msg = "missing RescaleSlope / RescaleIntercept: cannot convert to Hounsfield units"
            if not allow_missing_rescale:
                raise DataError(f, msg + " (set preprocess.allow_missing_rescale=true to assume 1 / 0)")
            if not warn or "rescale" not in warn[-1]:
                warn.append(f"{f}: {msg}; assumed slope 1, intercept 0")
                warnings.warn(warn[-1], stacklevel=2)
            slope, inter = 1.0, 0.0
        slices.append(dicom_to_hu(np.asarray(raw), float(slope), float(inter), padding_value))
    hu = np.stack(slices).astype(np.float32)
    _check_finite(hu, folder)
    ds0 = chosen[0][1]
    ps = [float(v) for v in ds0.get("PixelSpacing", [1.0, 1.0])]
    dz = float(ds0.get("SliceThickness", 1.0) or 1.0)
    return Volume(folder.name, folder, hu, spacing=(dz, ps[0], ps[1]), kind="dicom", warnings=warn)


# ------------------------------------------------------------------------------------- PNG
def read_png_image(path: Path) -> np.ndarray:
    """An 8-bit grayscale PNG / JPEG as ``(H, W)`` uint8 (RGB is converted to L)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "I;16", "I"):
                im = im.convert("L")
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(path, f"not a readable image ({e})") from e
    if arr.dtype != np.uint8:
        from pretrainlab.core.reduction import to_uint8

        arr = to_uint8(arr)
    return arr


def read_png_folder(folder: str | Path, min_slices: int = 2) -> Volume:
    """``folder/*.png`` (one volume's slices, sorted by file name) -> Volume with ``slices`` uint8."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if len(files) < min_slices:
        raise DataError(folder, f"{len(files)} PNG slice(s); expected a volume of >= {min_slices}")
    arrs = [read_png_image(p) for p in files]
    shape = arrs[0].shape
    for p, a in zip(files, arrs):
        if a.shape != shape:
            raise DataError(p, f"slice size {a.shape} differs from the volume's {shape}")
    return Volume(folder.name, folder, None, slices=np.stack(arrs), kind="png")


# ------------------------------------------------------------------------------------- discovery
def find_volumes(path: str | Path) -> list[Path]:
    """The volumes under ``path``: a NIfTI file, a DICOM series folder, a PNG slice folder, or a
    folder of those (searched recursively, sorted by path)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "no such file or folder")
    if path.is_file():
        if is_nifti(path):
            return [path]
        if path.suffix.lower() == ".dcm":
            raise DataError(path, "a single DICOM slice (2-D); give the series folder that holds it")
        raise DataError(path, "unsupported file; expected .nii / .nii.gz, a DICOM series folder or a PNG slice folder")
    out: list[Path] = []

    def walk(d: Path) -> None:
        entries = sorted(d.iterdir())
        if _dicom_files(d):
            out.append(d)
            return
        if sum(1 for p in entries if p.suffix.lower() == ".png") >= 1 and not any(p.is_dir() for p in entries):
            out.append(d)
            return
        for p in entries:
            if p.is_file() and is_nifti(p):
                out.append(p)
            elif p.is_dir() and not p.name.startswith("."):
                walk(p)

    walk(path)
    if not out:
        raise DataError(path, "no CT volumes found (expected .nii / .nii.gz files, DICOM series or PNG slice folders)")
    return out


def read_volume(path: str | Path, cfg: object | None = None) -> Volume:
    """Read any supported volume; ``cfg`` is a ``PreprocessConfig`` (defaults when None)."""
    from pretrainlab.ct.config import PreprocessConfig

    pc = cfg if isinstance(cfg, PreprocessConfig) else PreprocessConfig()
    path = Path(path)
    if path.is_file():
        if is_nifti(path):
            return read_nifti(path, pc.min_slices)
        find_volumes(path)  # raises the right message
    if is_dicom_folder(path):
        return read_dicom_series(path, pc.series_uid, pc.padding_value, pc.allow_non_ct, pc.allow_missing_rescale,
                                 pc.min_slices)
    if path.is_dir() and any(p.suffix.lower() == ".png" for p in path.iterdir()):
        return read_png_folder(path, pc.min_slices)
    raise DataError(path, "not a CT volume (NIfTI file, DICOM series folder or PNG slice folder)")


def volume_slices(vol: Volume, cfg: object | None = None) -> np.ndarray:
    """8-bit slices ``(Z, H, W)`` of a volume with the configured scaling (paper: min-max)."""
    from pretrainlab.ct.config import PreprocessConfig
    from pretrainlab.ct.preprocessing import to_slices

    pc = cfg if isinstance(cfg, PreprocessConfig) else PreprocessConfig()
    if vol.slices is not None:
        return vol.slices
    assert vol.hu is not None
    return to_slices(vol.hu, pc.window, pc.window_center, pc.window_width)


# ------------------------------------------------------------------------------------- downstream
ORGAN_CLASSES = ("bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver",
                 "lung-left", "lung-right", "pancreas", "spleen")  # MedMNIST OrganSMNIST label order
LESION_CLASSES = ("no_lesion", "lesion")


def read_image_folder(root: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``root/<class>/*.png`` -> images ``(N, H, W)`` uint8 (all one size), labels ``(N,)``, classes."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "image folder not found")
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
    if len(classes) < 2:
        raise DataError(root, f"expected >= 2 class sub-folders (root/<class>/*.png), found {len(classes)}")
    imgs, labels, shape = [], [], None
    for ci, c in enumerate(classes):
        for p in sorted((root / c).iterdir()):
            if p.suffix.lower() not in (".png", ".jpg", ".jpeg"):
                continue
            a = read_png_image(p)
            if shape is None:
                shape = a.shape
            if a.shape != shape:
                from PIL import Image

                a = np.asarray(Image.fromarray(a).resize(shape[::-1], Image.Resampling.BILINEAR))
            imgs.append(a)
            labels.append(ci)
    if not imgs:
        raise DataError(root, "no images in the class folders")
    return np.stack(imgs), np.asarray(labels, dtype=np.int64), classes


def read_medmnist(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A MedMNIST ``.npz`` split -> images ``(N, H, W)`` uint8, labels ``(N,)`` int64."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if f"{split}_images" not in z or f"{split}_labels" not in z:
                raise DataError(path, f"lacks '{split}_images' / '{split}_labels' (keys: {', '.join(z.files)})")
            x, y = np.asarray(z[f"{split}_images"]), np.asarray(z[f"{split}_labels"])
    except DataError:
        raise
    except (OSError, ValueError, zlib.error, EOFError) as e:
        raise DataError(path, f"not a readable MedMNIST .npz ({e})") from e
    if x.ndim == 4 and x.shape[-1] in (1, 3):
        x = x[..., 0] if x.shape[-1] == 1 else x.mean(-1).astype(np.uint8)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DataError(path, f"{split}_images must be (N, H, W) uint8, got {x.shape} {x.dtype}")
    y = y.reshape(-1).astype(np.int64)
    if len(y) != len(x):
        raise DataError(path, f"{len(x)} {split} images but {len(y)} labels")
    return x, y


def read_task(root: str | Path, task: str, split: str) -> tuple[np.ndarray, np.ndarray, int]:
    """A downstream split: ``lesion`` (PNG ImageFolder) or ``organ`` (OrganSMNIST .npz) -> x, y, n_classes."""
    root = Path(root)
    if task == "lesion":
        x, y, classes = read_image_folder(root / "lesion" / split)
        return x, y, len(classes)
    if task in ("organ", "organ64"):
        name = "organsmnist.npz" if task == "organ" else "organsmnist_64.npz"
        x, y = read_medmnist(root / "organ" / name, split)
        return x, y, len(ORGAN_CLASSES)
    raise ValueError(f"unknown downstream task {task!r} (lesion | organ | organ64)")
