"""Readers of the CT formats the field uses; bad input raises ``DataError("<file>: <problem>")``.

Pre-training volumes (see :func:`find_sources`):

* DICOM series: a folder of single-slice files (``*.dcm`` or files with the DICM preamble);
  grouped by ``SeriesInstanceUID`` (a folder mixing series is an error unless a UID is chosen),
  sorted along the slice normal by ``ImagePositionPatient`` (``InstanceNumber`` when positions
  are missing), HU as the reference's ``get_pixels_hu`` (``preprocessing.reference_hu``). The
  slice spacing is measured from the positions (``SliceThickness`` only when they are missing).
* NIfTI (``.nii``, ``.nii.gz``) through nibabel.
* Both are returned in ONE orientation, the DICOM display one: ``(Z, H, W)`` with rows running
  anterior -> posterior, columns patient right -> left, slices inferior -> superior (MONAI's
  ``Orientation(axcodes="LPS")``, transposed to (Z, Y, X)). The same scan written as a DICOM
  series and as NIfTI (dcm2niix) therefore reads identically (``tests/ct/test_orientation.py``
  checks both against MONAI ``LoadImage`` + ``Orientation``).
* PNG slices in the reference's FLAT layout (``LIDC_3DDICOM_to_2Dpng.py`` writes one folder of
  ``<volume>_<index>.png``): the slices of a folder are grouped per volume by the name up to the
  last ``_`` and ordered by plain string order of the file names (the reference's
  ``sorted(glob)``: ``_1, _10, _11, ..., _2``). A folder of slices without ``_`` in their names is
  one volume named after the folder. 8-bit PNGs only (the reference's ``Image.open`` +
  ``convert('L')``: RGB is converted, 16-bit would be clipped, so it is refused).
* A DICOM tree read as the reference exports it (``preprocess.reference_png=true``):
  :mod:`pretrainlab.ct.lidc`.

Downstream sets (:func:`read_task`): COVID-CT as published (``CT_COVID/``, ``CT_NonCOVID/`` and
the ``Data-split`` ``.txt`` files; the notebook's labels COVID = 0, NonCOVID = 1), MedMNIST
OrganSMNIST ``.npz`` (``{split}_images``, ``{split}_labels``), and the brain-hemorrhage layout of
the reference notebook (``train/<class>/*``, ``test/<class>/*``, classes sorted; validation = 15 %
of train drawn with ``np.random.seed(42)``).

Sizes declared in headers (NIfTI ``dim``, DICOM Rows x Columns, PNG width x height, ``.npy``
shapes inside ``.npz``) are checked with ``pretrainlab.core.guards`` before anything is allocated.
"""

from __future__ import annotations

import dataclasses
import gzip
import re
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from pretrainlab.core.data import DataError
from pretrainlab.ct.preprocessing import DEFAULT_INTERCEPT, DEFAULT_SLOPE, PADDING_RAW, reference_hu

NIFTI_SUFFIXES = (".nii", ".nii.gz")
LPS = ("L", "P", "S")  # the one orientation of every volume (x = columns, y = rows, z = slices)


@dataclasses.dataclass
class Volume:
    """One CT volume: ``hu`` ``(Z, H, W)`` float32 in Hounsfield units (None for PNG volumes, which
    hold ``slices`` uint8 already), spacing ``(dz, dy, dx)`` mm, its source path."""

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


def nifti_stem(p: Path) -> str:
    name = p.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else name[: -len(".nii")]


# ------------------------------------------------------------------------------------- orientation
def to_lps(data_xyz: np.ndarray, affine_ras: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Reorient an ``(X, Y, Z)`` array with a RAS affine to LPS axes; return ``(Z, Y, X)`` and the
    spacing ``(dz, dy, dx)`` (MONAI ``Orientation(axcodes="LPS")`` on the same data and affine)."""
    import nibabel as nib

    aff = np.asarray(affine_ras, dtype=np.float64)
    ornt = nib.orientations.io_orientation(aff)
    tr = nib.orientations.ornt_transform(ornt, nib.orientations.axcodes2ornt(LPS))
    out = nib.orientations.apply_orientation(data_xyz, tr)
    zooms = np.sqrt((aff[:3, :3] ** 2).sum(axis=0))
    new = [0.0, 0.0, 0.0]
    for src, (dst, _) in enumerate(tr):
        new[int(dst)] = float(zooms[src])
    return np.ascontiguousarray(out.transpose(2, 1, 0)), (new[2], new[1], new[0])


# ------------------------------------------------------------------------------------- NIfTI
def read_nifti(path: str | Path, min_slices: int = 2) -> Volume:
    """``.nii`` / ``.nii.gz`` -> Volume with ``hu (Z, Y, X)`` in the LPS display orientation."""
    import nibabel as nib

    from pretrainlab.core.guards import check_decode_size, check_payload

    path = Path(path)
    if path.is_dir():
        raise DataError(path, "is a folder, expected a .nii / .nii.gz file")
    if not path.is_file():
        raise DataError(path, "NIfTI file not found")
    try:
        img = nib.load(str(path))
        shape = tuple(int(d) for d in img.header.get_data_shape())
    except (nib.filebasedimages.ImageFileError, EOFError, OSError, ValueError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(path, f"not a readable NIfTI file (corrupt or truncated header / data: {e})") from e
    check_decode_size(path, shape, 4, "NIfTI volume")  # float32 after get_fdata
    if not path.name.lower().endswith(".gz"):
        check_payload(path, shape, img.header.get_data_dtype().itemsize, int(img.header.get_data_offset()),
                      what="NIfTI volume")
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except (EOFError, OSError, ValueError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(path, f"not a readable NIfTI file (corrupt or truncated header / data: {e})") from e
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim == 2 or (data.ndim == 3 and data.shape[2] < min_slices):
        raise DataError(path, f"a 2-D image (shape {data.shape}); expected a 3-D CT volume with >= {min_slices} slices")
    if data.ndim != 3:
        raise DataError(path, f"expected a 3-D volume, got shape {data.shape}")
    _check_finite(data, path)
    hu, spacing = to_lps(data, img.affine)
    return Volume(nifti_stem(path), path, hu, spacing=spacing, kind="nifti")


# ------------------------------------------------------------------------------------- DICOM
def _is_dicom_file(p: Path) -> bool:
    if p.suffix.lower() == ".dcm":
        return True
    if p.suffix == "":
        try:
            with open(p, "rb") as f:
                head = f.read(132)
            return head[128:132] == b"DICM"
        except OSError:
            return False
    return False


def _dicom_files(folder: Path) -> list[Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [p for p in entries if p.is_file() and not p.name.startswith(".") and _is_dicom_file(p)]


def is_dicom_folder(folder: Path) -> bool:
    return folder.is_dir() and bool(_dicom_files(folder))


def _read_header(f: Path) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(str(f), stop_before_pixels=True)
            missing = [t for t in ("Rows", "Columns", "SeriesInstanceUID") if ds.get(t) in (None, "")]
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(f, f"corrupt or unreadable DICOM header ({type(e).__name__}: {e})") from e
    if missing:
        raise DataError(f, f"corrupt or unreadable DICOM header (required tags missing: {', '.join(missing)})")
    return ds


def check_dicom_size(f: Path, ds: Any) -> None:
    """Rows x Columns x frames x bytes per pixel against the decode limit (and the file size when
    the pixel data is uncompressed), before the pixels are read."""
    from pretrainlab.core.guards import check_decode_size, check_payload

    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.get("BitsAllocated", 16) or 16)
    except (TypeError, ValueError) as e:
        raise DataError(f, f"corrupt DICOM header (image size tags: {e})") from e
    shape = (frames, rows, cols, spp)
    check_decode_size(f, shape, 8, "DICOM pixel data")  # float64 during the HU conversion, the worst case
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if ts in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"):  # uncompressed
        check_payload(f, (frames, rows, cols, spp), max(1, bits // 8), what="DICOM pixel data")


def read_dicom_pixels(f: Path) -> tuple[np.ndarray, Any]:
    """One DICOM slice's stored pixel array ``(H, W)`` (size-checked) and its dataset."""
    import pydicom

    ds = _read_header(f)
    check_dicom_size(f, ds)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = pydicom.dcmread(str(f))
            raw = full.pixel_array
    except Exception as e:  # pixel decoding raises many types (missing handlers, truncated data)
        raise DataError(f, f"cannot decode the pixel data ({type(e).__name__}: {e})") from e
    if raw.ndim != 2:
        raise DataError(f, f"expected one 2-D slice per file, got pixel array of shape {raw.shape}")
    return raw, full


def _rescale(f: Path, ds: Any, allow_missing: bool) -> tuple[float, float, str | None]:
    slope, inter = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is None or inter is None:
        msg = "missing RescaleSlope / RescaleIntercept: cannot convert to Hounsfield units"
        if not allow_missing:
            raise DataError(f, msg + " (set preprocess.allow_missing_rescale=true to assume the reference's 1 / -1024)")
        return (float(slope) if slope is not None else float(DEFAULT_SLOPE),
                float(inter) if inter is not None else float(DEFAULT_INTERCEPT),
                f"{f}: {msg}; assumed the reference's slope {DEFAULT_SLOPE}, intercept {DEFAULT_INTERCEPT}")
    return float(slope), float(inter), None


def dicom_hu(f: Path, padding_value: int | None = PADDING_RAW, allow_missing_rescale: bool = False,
             out_warnings: list[str] | None = None) -> tuple[np.ndarray, Any]:
    """One DICOM slice -> int16 HU as the reference's ``get_pixels_hu``, and its dataset."""
    raw, ds = read_dicom_pixels(f)
    slope, inter, note = _rescale(f, ds, allow_missing_rescale)
    hu, wrapped = reference_hu(raw, slope, inter, padding_value)
    for key, msg in ([("RescaleSlope", note)] if note else []) + (
            [("int16", (f"{f}: the reference's int16 arithmetic overflows on this slice (pixel values beyond int16 "
                       "after rescaling); kept as the reference computes them"))] if wrapped else []):
        if out_warnings is None or not any(key in w for w in out_warnings):  # once per series
            if out_warnings is not None:
                out_warnings.append(msg)
            warnings.warn(msg, stacklevel=2)
    return hu, ds


def _series_geometry(chosen: list[tuple[Path, Any]]) -> tuple[np.ndarray, list[float]]:
    """The LPS affine of ``(col j, row i, slice k)`` indices and the measured slice gaps."""
    ds0 = chosen[0][1]
    ori = ds0.get("ImageOrientationPatient")
    ori = [float(v) for v in ori] if ori is not None and len(ori) == 6 else [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    row_cos, col_cos = np.asarray(ori[:3]), np.asarray(ori[3:])
    normal = np.cross(row_cos, col_cos)
    ps = ds0.get("PixelSpacing")
    dr, dc = (float(ps[0]), float(ps[1])) if ps is not None and len(ps) == 2 else (1.0, 1.0)
    pos = [d.get("ImagePositionPatient") for _, d in chosen]
    gaps: list[float] = []
    if all(p is not None and len(p) == 3 for p in pos) and len(pos) > 1:
        p = np.asarray([[float(v) for v in q] for q in pos])
        proj = p @ normal
        gaps = [float(g) for g in np.diff(proj)]
        step = (p[-1] - p[0]) / (len(p) - 1)
        origin = p[0]
    else:
        thick = float(ds0.get("SliceThickness", 1.0) or 1.0)
        step = normal * thick
        origin = np.asarray([float(v) for v in pos[0]]) if pos[0] is not None and len(pos[0]) == 3 else np.zeros(3)
    aff = np.eye(4)
    aff[:3, 0] = row_cos * dc  # column index j moves along the row direction cosines
    aff[:3, 1] = col_cos * dr  # row index i moves along the column direction cosines
    aff[:3, 2] = step
    aff[:3, 3] = origin
    return aff, gaps


def read_dicom_series(folder: str | Path, series_uid: str = "", padding_value: int | None = PADDING_RAW,
                      allow_non_ct: bool = False, allow_missing_rescale: bool = False, min_slices: int = 2) -> Volume:
    """A folder of DICOM slices -> Volume (HU) in the LPS display orientation.

    Raises DataError for unreadable / corrupt files, non-CT modalities (unless ``allow_non_ct``),
    missing rescale tags (unless ``allow_missing_rescale``), mixed series (unless ``series_uid``),
    single slices, slices of differing size, and declared sizes over the decode limit.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "DICOM series folder not found")
    files = _dicom_files(folder)
    if not files:
        raise DataError(folder, "no DICOM files (*.dcm or files with the DICM preamble)")
    headers = [(f, _read_header(f)) for f in files]
    uids: dict[str, list[tuple[Path, Any]]] = {}
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
    mod = str(chosen[0][1].get("Modality", ""))
    if mod != "CT":
        msg = f"modality is {mod or 'missing'}, not CT"
        if not allow_non_ct:
            raise DataError(chosen[0][0], msg + " (set preprocess.allow_non_ct=true to read it anyway)")
        warn.append(f"{chosen[0][0]}: {msg}")
        warnings.warn(warn[-1], stacklevel=2)
    if len(chosen) < min_slices:
        raise DataError(chosen[0][0], f"a single 2-D slice; expected a series of >= {min_slices} slices (a folder per volume)")
    shape0 = (int(chosen[0][1].Rows), int(chosen[0][1].Columns))
    from pretrainlab.core.guards import check_decode_size

    check_decode_size(folder, (len(chosen), *shape0), 4, "DICOM series")

    def sort_key(item: tuple[Path, Any]) -> tuple[float, float]:
        _, ds = item
        pos = ds.get("ImagePositionPatient")
        ori = ds.get("ImageOrientationPatient")
        inst = float(ds.get("InstanceNumber", 0) or 0)
        if pos is not None and ori is not None and len(ori) == 6:
            normal = np.cross(np.asarray(ori[:3], float), np.asarray(ori[3:], float))
            return float(np.dot(normal, np.asarray(pos, float))), inst
        return inst, 0.0

    chosen = sorted(chosen, key=sort_key)
    hu = np.empty((len(chosen), *shape0), dtype=np.float32)
    for z, (f, ds) in enumerate(chosen):
        if (int(ds.Rows), int(ds.Columns)) != shape0:
            raise DataError(f, f"slice size {(int(ds.Rows), int(ds.Columns))} differs from the series' {shape0}")
        sl, _ = dicom_hu(f, padding_value, allow_missing_rescale, warn)
        if sl.shape != shape0:
            raise DataError(f, f"pixel array of shape {sl.shape} differs from its header's {shape0}")
        hu[z] = sl
    aff_lps, gaps = _series_geometry(chosen)
    if gaps and (min(gaps) <= 0 or (max(gaps) - min(gaps)) > 0.01 * abs(np.median(gaps))):
        msg = (f"{folder}: uneven slice positions (gaps {min(gaps):.3g} to {max(gaps):.3g} mm: missing or duplicate "
               "slices?)")
        warn.append(msg)
        warnings.warn(msg, stacklevel=2)
    aff_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ aff_lps  # DICOM LPS -> RAS (as MONAI / dcm2niix)
    out, spacing = to_lps(hu.transpose(2, 1, 0), aff_ras)
    return Volume(folder.name, folder, out, spacing=spacing, kind="dicom", warnings=warn)


# ------------------------------------------------------------------------------------- PNG
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def read_png_image(path: str | Path) -> np.ndarray:
    """An 8-bit PNG / JPEG as ``(H, W)`` uint8 (``convert('L')`` as imagehash does; 16-bit refused)."""
    from pretrainlab.core.guards import open_image

    path = Path(path)
    im = open_image(path)
    if im.mode in HIGH_BIT_MODES:
        raise DataError(path, (f"a {im.mode} image (more than 8 bits); the reference pipeline reads 8-bit PNGs "
                               "(convert('L') would clip it at 255). Export 8-bit slices, e.g. `pretrainlab ct export-png`"))
    return np.asarray(im.convert("L") if im.mode != "L" else im)


def flat_volume_name(file: Path) -> str:
    """The volume of a flat-layout slice: its name up to the last ``_`` (the folder's name if none)."""
    stem = file.stem
    return stem.rsplit("_", 1)[0] if "_" in stem else file.parent.name


def flat_groups(folder: str | Path) -> list[tuple[str, list[Path]]]:
    """The PNG slices directly in ``folder`` grouped per volume (name up to the last ``_``), each
    group in plain string order of the file names, groups in string order of their names."""
    folder = Path(folder)
    groups: dict[str, list[Path]] = {}
    for p in folder.iterdir():
        if p.is_file() and p.suffix.lower() == ".png" and not p.name.startswith("."):
            groups.setdefault(flat_volume_name(p), []).append(p)
    return [(name, sorted(files, key=lambda q: q.name)) for name, files in sorted(groups.items())]


def read_png_folder(folder: str | Path, min_slices: int = 2) -> Volume:
    """One volume's PNG slices (all PNGs of ``folder`` in string order of their names) -> Volume."""
    folder = Path(folder)
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".png"), key=lambda q: q.name)
    if len(files) < min_slices:
        raise DataError(folder, f"{len(files)} PNG slice(s); expected a volume of >= {min_slices}")
    arrs = [read_png_image(p) for p in files]
    for p, a in zip(files, arrs):
        if a.shape != arrs[0].shape:
            raise DataError(p, f"slice size {a.shape} differs from the volume's {arrs[0].shape}")
    return Volume(folder.name, folder, None, slices=np.stack(arrs), kind="png")


# ------------------------------------------------------------------------------------- discovery
@dataclasses.dataclass
class VolumeSource:
    """One pre-training volume found by :func:`find_sources`, read lazily by ``reduce``.

    ``kind``: ``nifti`` / ``dicom`` (a file / series folder; slices written as ``<name>_<z>.png``),
    ``png`` (flat-layout slices ``files`` in the reference's order, kept ones copied by name) or
    ``lidc`` (the reference's export of a patient: ``files`` are DICOM slices, ``out_names`` their
    ``<patient>_<i>.png`` names, both in string order of the names).
    """

    name: str
    path: Path
    kind: str
    files: tuple[Path, ...] = ()
    out_names: tuple[str, ...] = ()

    def slice_names(self, n: int) -> list[str]:
        if self.out_names:
            return list(self.out_names)
        if self.kind == "png":
            return [p.name for p in self.files]
        return [f"{self.name}_{z}.png" for z in range(n)]


def _source_name(d: Path, root: Path) -> str:
    rel = d.relative_to(root) if d != root else Path(d.name)
    return "-".join(rel.parts) or d.name


def find_sources(path: str | Path, cfg: object | None = None) -> tuple[list[VolumeSource], list[dict[str, str]]]:
    """Every pre-training volume under ``path`` and the series skipped on the way.

    ``path``: a NIfTI file, a DICOM series folder, a flat PNG folder, or a folder of any of those
    (searched recursively in sorted order). In a folder holding several DICOM series, series whose
    Modality is not CT (LIDC-IDRI holds X-rays beside the CT) are skipped and listed unless
    ``preprocess.allow_non_ct``. (With ``preprocess.reference_png`` the reduction reads the folder
    as the reference's LIDC export instead: :func:`pretrainlab.ct.lidc.reference_sources`.) Volume
    names must be unique (they name the output files).
    """
    from pretrainlab.ct.config import PreprocessConfig

    pc = cfg if isinstance(cfg, PreprocessConfig) else PreprocessConfig()
    path = Path(path)
    if not path.exists():
        raise DataError(path, "no such file or folder")
    if path.is_file():
        if is_nifti(path):
            return [VolumeSource(nifti_stem(path), path, "nifti")], []
        if _is_dicom_file(path):
            raise DataError(path, "a single DICOM slice (2-D); give the series folder that holds it")
        if path.suffix.lower() == ".png":
            raise DataError(path, "a single PNG slice; give the folder of slices (<volume>_<index>.png)")
        raise DataError(path, "unsupported file; expected .nii / .nii.gz, a DICOM series folder or a folder of PNG slices")
    out: list[VolumeSource] = []
    dicom_dirs: list[Path] = []

    def walk(d: Path) -> None:
        try:
            entries = sorted(d.iterdir())
        except OSError as e:
            raise DataError(d, f"cannot list the folder ({e})") from e
        for name, files in flat_groups(d):
            out.append(VolumeSource(name, d, "png", tuple(files)))
        if _dicom_files(d):
            dicom_dirs.append(d)
            out.append(VolumeSource(_source_name(d, path), d, "dicom"))
        for p in entries:
            if p.name.startswith("."):
                continue
            if p.is_file() and is_nifti(p):
                out.append(VolumeSource(nifti_stem(p), p, "nifti"))
            elif p.is_dir():
                walk(p)

    walk(path)
    skipped: list[dict[str, str]] = []
    if len(dicom_dirs) > 1 and not pc.allow_non_ct:
        keep = []
        for s in out:
            if s.kind == "dicom":
                files = _dicom_files(s.path)
                mod = str(_read_header(files[0]).get("Modality", "")) if files else ""
                if mod != "CT":
                    skipped.append({"volume": s.name, "path": str(s.path), "reason": f"modality {mod or 'missing'}, not CT"})
                    continue
            keep.append(s)
        out = keep
    if not out:
        what = "no CT volumes found (expected .nii / .nii.gz files, DICOM series or PNG slice folders)"
        if skipped:
            what = f"no CT series found ({len(skipped)} non-CT series skipped)"
        raise DataError(path, what)
    seen: dict[str, VolumeSource] = {}
    for s in out:
        if s.name in seen:
            raise DataError(s.path, f"volume name '{s.name}' also comes from {seen[s.name].path}: the output files "
                                    f"<volume>_<index>.png would collide; rename one of them")
        seen[s.name] = s
    return out, skipped


def find_volumes(path: str | Path) -> list[Path]:
    """The paths of the volumes under ``path`` (see :func:`find_sources`)."""
    return [s.path for s in find_sources(path)[0]]


def read_source(src: VolumeSource, cfg: object | None = None) -> tuple[list[np.ndarray] | np.ndarray, list[str], list[str]]:
    """A source's 8-bit slices (``(Z, H, W)``, or a list of 2-D arrays of differing sizes for flat
    PNG volumes), their output file names and the reader's warnings."""
    from pretrainlab.ct.config import PreprocessConfig

    pc = cfg if isinstance(cfg, PreprocessConfig) else PreprocessConfig()
    if src.kind == "png":
        slices = [read_png_image(p) for p in src.files]
        if all(s.shape == slices[0].shape for s in slices):
            return np.stack(slices), src.slice_names(len(slices)), []
        return slices, src.slice_names(len(slices)), []
    if src.kind == "lidc":
        raise ValueError("a 'lidc' source is read by pretrainlab.ct.lidc.read_reference_slices")
    vol = read_volume(src.path, pc)
    sl = volume_slices(vol, pc)
    return sl, src.slice_names(len(sl)), list(vol.warnings)


def read_volume(path: str | Path, cfg: object | None = None) -> Volume:
    """Read one NIfTI file, DICOM series folder or folder of PNG slices; ``cfg`` is a ``PreprocessConfig``."""
    from pretrainlab.ct.config import PreprocessConfig

    pc = cfg if isinstance(cfg, PreprocessConfig) else PreprocessConfig()
    path = Path(path)
    if not path.exists():
        raise DataError(path, "no such file or folder")
    if path.is_file():
        if is_nifti(path):
            return read_nifti(path, pc.min_slices)
        find_sources(path, pc)  # raises the right message
    if is_dicom_folder(path):
        return read_dicom_series(path, pc.series_uid, pc.padding_value, pc.allow_non_ct, pc.allow_missing_rescale,
                                 pc.min_slices)
    if path.is_dir() and any(p.suffix.lower() == ".png" for p in path.iterdir()):
        return read_png_folder(path, pc.min_slices)
    raise DataError(path, "not a CT volume (NIfTI file, DICOM series folder or folder of PNG slices)")


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
COVID_CLASSES = ("CT_COVID", "CT_NonCOVID")  # ref: COVID-19.ipynb, train_y.append(0) for COVID, 1 for NonCOVID
SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclasses.dataclass
class Split:
    """One downstream split: ``images`` (paths of files, decoded lazily) or ``arrays`` ``(N, H, W)``
    uint8, ``labels`` ``(N,)`` int64 and the ``classes`` (name of each label)."""

    labels: np.ndarray
    classes: tuple[str, ...]
    kind: str  # png (COVID-CT, brain) | npz (OrganSMNIST)
    paths: list[Path] | None = None
    arrays: np.ndarray | None = None
    source: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` as ``(H, W)`` uint8."""
        if self.arrays is not None:
            return self.arrays[i]
        assert self.paths is not None
        return read_png_image(self.paths[i])


def _read_lines(path: Path) -> list[str]:
    from pretrainlab.core.guards import check_decode_size

    try:
        size = path.stat().st_size
    except OSError as e:
        raise DataError(path, f"cannot read the split file ({e})") from e
    check_decode_size(path, (size,), 1, "split list")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(path, f"not UTF-8 text (byte {e.start}); expected one image file name per line") from e
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def _unique(root: Path, pattern: str, what: str, want_dir: bool) -> Path:
    hits = sorted(p for p in root.rglob(pattern) if p.is_dir() == want_dir and not any(
        part.startswith(".") for part in p.relative_to(root).parts))
    if not hits:
        raise DataError(root, f"no {what} ({pattern}) found under it; expected the COVID-CT layout "
                              "CT_COVID/, CT_NonCOVID/ and Data-split/{COVID,NonCOVID}/<split>CT_<class>.txt")
    if len(hits) > 1:
        raise DataError(root, f"{len(hits)} candidates for {what}: {', '.join(str(h) for h in hits[:3])}")
    return hits[0]


def read_covid_ct(root: str | Path, split: str) -> Split:
    """COVID-CT as published (UCSD-AI4H/COVID-CT): images in ``CT_COVID/`` and ``CT_NonCOVID/``,
    the split lists ``<split>CT_COVID.txt`` / ``<split>CT_NonCOVID.txt`` (``Data-split/``) holding
    one file name per line; the notebook's labels: COVID 0, NonCOVID 1."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "COVID-CT folder not found")
    if split not in SPLITS:
        raise DataError(root, f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    paths: list[Path] = []
    labels: list[int] = []
    for label, cls in enumerate(COVID_CLASSES):
        img_dir = _unique(root, cls, f"{cls} image folder", True)
        txt = _unique(root, f"{split}{cls}.txt", f"{split} split list of {cls}", False)
        names = _read_lines(txt)
        if not names:
            raise DataError(txt, "empty split list")
        for n, name in enumerate(names, 1):
            cand = img_dir / name
            if not cand.is_file():
                alt = root / name
                if not alt.is_file():
                    raise DataError(txt, f"line {n}: {name} is not in {img_dir}")
                cand = alt
            paths.append(cand)
            labels.append(label)
    return Split(np.asarray(labels, dtype=np.int64), COVID_CLASSES, "png", paths=paths, source=str(root))


def _class_folder(root: Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    if not root.is_dir():
        raise DataError(root, "class folder not found (expected <root>/<class>/<image>)")
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if len(classes) < 2:
        raise DataError(root, f"expected >= 2 class sub-folders (<root>/<class>/<image>), found {len(classes)}")
    paths, labels = [], []
    for ci, c in enumerate(classes):
        files = sorted(p for p in (root / c).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        labels += [ci] * len(files)
    if not paths:
        raise DataError(root, "no images (.png / .jpg) in the class folders")
    return paths, labels, classes


def read_brain(root: str | Path, split: str, val_fraction: float = 0.15, seed: int = 42) -> Split:
    """The brain-hemorrhage layout of the reference notebook: ``root/train/<class>/*``,
    ``root/test/<class>/*`` (classes sorted); validation = the first ``int(val_fraction * n)`` of
    ``np.random.seed(seed); np.random.shuffle(arange(n))`` over train, the rest is train. Files are
    listed in sorted order (the notebook's ``os.listdir`` order depends on the file system)."""
    root = Path(root)
    if split not in SPLITS:
        raise DataError(root, f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if split == "test":
        paths, labels, classes = _class_folder(root / "test")
        return Split(np.asarray(labels, dtype=np.int64), classes, "png", paths=paths, source=str(root))
    paths, labels, classes = _class_folder(root / "train")
    test_classes = _class_folder(root / "test")[2] if (root / "test").is_dir() else classes
    if test_classes != classes:
        raise DataError(root, f"train classes {classes} differ from test classes {test_classes}")
    idx = np.arange(len(paths))
    np.random.RandomState(seed).shuffle(idx)  # = np.random.seed(seed); np.random.shuffle(indices)
    n_val = int(val_fraction * len(paths))
    pick = idx[:n_val] if split == "val" else idx[n_val:]
    return Split(np.asarray([labels[i] for i in pick], dtype=np.int64), classes, "png",
                 paths=[paths[i] for i in pick], source=str(root))


def read_medmnist(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A MedMNIST ``.npz`` split -> images ``(N, H, W)`` uint8, labels ``(N,)`` int64."""
    path = Path(path)
    if split not in SPLITS:
        raise DataError(path, f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    from pretrainlab.core.guards import load_npz

    z = load_npz(path, [f"{split}_images", f"{split}_labels"])
    x, y = z[f"{split}_images"], z[f"{split}_labels"]
    if x.ndim == 4 and x.shape[-1] in (1, 3):
        x = x[..., 0] if x.shape[-1] == 1 else np.rint(x.astype(np.float64).mean(-1)).astype(np.uint8)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DataError(path, f"{split}_images must be (N, H, W) uint8, got {x.shape} {x.dtype}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(path, f"{split}_labels must be integers, got {y.dtype}")
    y = y.reshape(-1).astype(np.int64)
    if len(y) != len(x):
        raise DataError(path, f"{len(x)} {split} images but {len(y)} labels")
    return x, y


def read_organ(root: str | Path, split: str, size: int = 28) -> Split:
    """OrganSMNIST (MedMNIST) ``organsmnist.npz`` (28 px) or ``organsmnist_<size>.npz``."""
    root = Path(root)
    name = "organsmnist.npz" if size == 28 else f"organsmnist_{size}.npz"
    path = root / name if root.is_dir() else root
    if root.is_dir() and not path.exists() and (root / "organ" / name).exists():
        path = root / "organ" / name
    x, y = read_medmnist(path, split)
    if len(y) and (y.min() < 0 or y.max() >= len(ORGAN_CLASSES)):
        raise DataError(path, f"{split}_labels outside 0..{len(ORGAN_CLASSES) - 1} (OrganSMNIST has 11 classes)")
    return Split(y, ORGAN_CLASSES, "npz", arrays=x, source=str(path))


def task_folder(root: Path, task: str) -> Path:
    """Where a task's files live under a dataset root (``downstream/<task>`` of the generated layout,
    or the root itself when it IS the task's folder)."""
    root = Path(root)
    for cand in (root / "downstream" / TASK_DIRS[task], root / TASK_DIRS[task]):
        if cand.is_dir():
            return cand
    return root


TASK_DIRS = {"covid": "covid", "organ": "organ", "organ64": "organ", "brain": "brain"}


def read_task(root: str | Path, task: str, split: str, cfg: object | None = None) -> Split:
    """A downstream split of ``task`` (covid | organ | organ64 | brain) under ``root``."""
    from pretrainlab.ct.config import TASKS, FinetuneConfig

    fc = cfg if isinstance(cfg, FinetuneConfig) else FinetuneConfig()
    if task not in TASKS:
        raise DataError(str(root), f"unknown downstream task {task!r}; expected one of {', '.join(TASKS)}")
    folder = task_folder(Path(root), task)
    if task == "covid":
        return read_covid_ct(folder, split)
    if task == "brain":
        return read_brain(folder, split, fc.brain_val_fraction, fc.split_seed)
    return read_organ(folder, split, 28 if task == "organ" else 64)


# ------------------------------------------------------------------------------------- flat layout names
_SAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_name(name: str) -> str:
    """A volume name usable in a file name (no separators or spaces)."""
    return _SAFE.sub("-", name).strip("-") or "volume"
