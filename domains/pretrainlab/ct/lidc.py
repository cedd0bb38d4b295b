"""The reference's DICOM -> PNG export of LIDC-IDRI, to the line, and its volume grouping.

Reference: Wolfda95/Less_is_More ``PreTrain-Data_Preprocessing/LIDC_3DDICOM_to_2Dpng.py`` (export)
and ``PreTrain-Data_Reduction/Hash_LIDC_Volume.py`` (grouping for Hash-k).

Export (:func:`export_png`, ``pretrainlab ct export-png``):

* the tree ``ROOT/<patient>/<study>/<series>/<file>`` is walked with ``sorted(glob(dir + "/*"))``
  at every level (hidden names skipped, as glob does); a series folder is exported only when it
  holds MORE than ``min_files`` (10) entries of any kind (the LIDC annotation ``.xml`` counts; the
  X-ray series have a few files), and only its files whose name ends with ``.dcm``;
* one running index ``i`` over the whole dataset, in that walk order; each slice is written as
  ``OUT/<patient>_<i>.png`` (one flat folder);
* pixels: ``get_pixels_hu`` (int16; raw -2000 -> 0; ``slope * raw`` truncated to int16 only when the
  slope is not 1; ``+= int16(intercept)``; defaults 1 / -1024), then ``interval_mapping`` with the
  slice's min / max in int16 arithmetic and float64 division, then ``cv2.imwrite`` of the float64
  array: rounded half to even, saturated to 0..255, NaN (a constant slice) -> 0. No windowing.

Grouping for the reduction (``Hash_LIDC_Volume.py``): the flat folder is read in ``sorted(glob)``
order and cut into volumes at the patient number, so a volume's slices are hashed in plain string
order of their names (``LIDC-IDRI-0001_0.png, _1, _10, _100, ..., _2``), not in slice order.
:func:`reference_sources` reproduces exactly that from the DICOM tree, so ``ct reduce`` of the tree
with ``preprocess.reference_png=true`` keeps the same files as exporting first and reducing the
flat folder (``tests/ct/test_lidc.py``; both against the reference scripts' own output).
"""

from __future__ import annotations

import glob
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pretrainlab.core.data import DataError
from pretrainlab.ct.formats import VolumeSource, dicom_hu

MIN_FILES = 10  # ref: `if number_files > 10:` (only CT series; X-ray series hold a few files)


def _listing(path: str) -> list[str]:
    """``sorted(glob.glob(path + "/*"))`` as the reference (escaped, so '[' in a name is literal)."""
    return sorted(glob.glob(glob.escape(path) + "/*"))


def reference_walk(root: str | Path, min_files: int = MIN_FILES) -> Iterator[tuple[str, int, Path]]:
    """``(patient, i, dcm_file)`` in the reference's export order (``i`` the running index)."""
    i = 0
    for file_a in _listing(str(root)):
        patient = file_a.split("/")[-1]
        for file_b in _listing(file_a):
            for file_c in _listing(file_b):
                files = _listing(file_c)
                if len(files) > min_files:
                    for file_d in files:
                        if file_d.endswith(".dcm"):
                            yield patient, i, Path(file_d)
                            i += 1


def reference_sources(root: str | Path, min_files: int = MIN_FILES) -> list[VolumeSource]:
    """One :class:`VolumeSource` per patient: its slices in string order of ``<patient>_<i>.png``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "expected the LIDC-IDRI folder (<patient>/<study>/<series>/*.dcm) for preprocess.reference_png")
    per: dict[str, list[tuple[str, Path]]] = {}
    for patient, i, f in reference_walk(root, min_files):
        per.setdefault(patient, []).append((f"{patient}_{i}.png", f))
    if not per:
        raise DataError(root, f"no series folder with more than {min_files} files at <patient>/<study>/<series>/ "
                              "(the reference's LIDC-IDRI layout)")
    out = []
    for patient in sorted(per):
        items = sorted(per[patient], key=lambda t: t[0])  # Hash_LIDC_Volume.py: sorted(glob) of the flat folder
        out.append(VolumeSource(patient, root / patient, "lidc", tuple(f for _, f in items), tuple(n for n, _ in items)))
    return out


def reference_png_pixels(hu: np.ndarray) -> tuple[np.ndarray, bool]:
    """``interval_mapping(hu, hu.min(), hu.max(), 0, 255)`` + ``cv2.imwrite``'s conversion, exactly:
    int16 differences, float64 division, rounding half to even, saturation, NaN -> 0.

    Returns ``(uint8 image, wrapped)``; ``wrapped`` when the int16 differences overflowed (a slice
    spanning more than 32767 HU), where the reference's PNG is garbage and the caller should warn.
    """
    img = np.asarray(hu, dtype=np.int16)
    lo, hi = img.min(), img.max()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        diff = img - lo  # int16 - int16 scalar: int16 (wraps like the reference)
        span = np.int16(hi - lo)
        scaled = np.array(diff / float(span), dtype=float)
        mapped = 0 + scaled * (255 - 0)
    wrapped = int(hi) - int(lo) > 32767
    out = np.rint(mapped)
    out[~np.isfinite(out)] = 0.0  # cv2: NaN (and +-inf) -> 0
    return np.clip(out, 0, 255).astype(np.uint8), wrapped


def reference_slice(f: Path, padding_value: int | None = -2000, allow_missing_rescale: bool = True,
                    out_warnings: list[str] | None = None) -> np.ndarray:
    """One DICOM file as the reference exports it: ``(H, W)`` uint8.

    The reference assumes slope 1 / intercept -1024 when the tags are missing
    (``allow_missing_rescale=True`` does the same, with a warning).
    """
    hu, _ = dicom_hu(f, padding_value, allow_missing_rescale, out_warnings)
    px, wrapped = reference_png_pixels(hu)
    if wrapped:
        msg = f"{f}: the slice spans more than 32767 HU; the reference's int16 min-max mapping overflows here"
        if out_warnings is not None and msg not in out_warnings:
            out_warnings.append(msg)
        warnings.warn(msg, stacklevel=2)
    return px


def read_reference_slices(src: VolumeSource, cfg: Any) -> tuple[list[np.ndarray] | np.ndarray, list[str]]:
    """The 8-bit slices of a ``lidc`` source, in its (name) order."""
    warn: list[str] = []
    slices = [reference_slice(f, cfg.padding_value, True, warn) for f in src.files]
    if slices and all(s.shape == slices[0].shape for s in slices):
        return np.stack(slices), warn
    return slices, warn


def export_png(root: str | Path, out: str | Path, min_files: int = MIN_FILES, overwrite: bool = False,
               progress: bool = True) -> dict[str, Any]:
    """Write the reference's flat PNG folder of a LIDC-IDRI tree (atomically: temporary folder, then
    renamed). Returns a summary ``{"slices", "patients", "seconds", "out"}``."""
    from PIL import Image
    from tqdm.auto import tqdm

    from pretrainlab.core.io import atomic_dir

    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise DataError(root, "not a folder; expected the LIDC-IDRI root (<patient>/<study>/<series>/*.dcm)")
    if out.exists() and not overwrite:
        raise DataError(out, "already exists; pass --overwrite to replace it")
    if out.resolve() == root.resolve() or root.resolve() in out.resolve().parents:
        raise DataError(out, f"is inside the input {root}; write the PNGs elsewhere")
    plan = list(reference_walk(root, min_files))
    if not plan:
        raise DataError(root, f"no series folder with more than {min_files} files at <patient>/<study>/<series>/")
    t0 = time.perf_counter()
    warn: list[str] = []
    with atomic_dir(out, overwrite=overwrite) as tmp:
        bar = tqdm(plan, desc="export-png", unit="slice", disable=not progress, file=sys.stderr)
        for patient, i, f in bar:
            Image.fromarray(reference_slice(f, out_warnings=warn)).save(tmp / f"{patient}_{i}.png")
        bar.close()
    dt = time.perf_counter() - t0
    patients = len({p for p, _, _ in plan})
    if progress:
        print(f"export-png: {len(plan)} slices of {patients} patients in {dt:.1f} s ({len(plan) / max(dt, 1e-9):.0f} "
              f"slices/s) -> {out}", file=sys.stderr)
    return {"slices": len(plan), "patients": patients, "seconds": dt, "out": str(out), "warnings": warn}


def copy_file(src: Path, dst: Path) -> None:
    """Copy a kept PNG under its own name (``shutil.copy2`` as the reference)."""
    try:
        shutil.copy2(src, dst)
    except OSError as e:
        raise DataError(src, f"cannot copy to {dst.parent} ({e})") from e



def write_lidc_tree(root: Path, volumes: list[tuple[np.ndarray, np.ndarray]]) -> int:
    """``root/LIDC-IDRI-<n>/<study>/<series>/1-<i>.dcm`` + an annotation ``.xml`` per series (the
    TCIA download's layout); returns the number of slices."""
    from pretrainlab.ct.synthetic import write_dicom_series

    n = 0
    for v, (hu, fov) in enumerate(volumes, 1):
        series = root / f"LIDC-IDRI-{v:04d}" / "01-01-2000-NA-NA-30178" / "3000566.000000-NA-03192"
        write_dicom_series(hu, series, fov, seed=v, name_format="1-{:03d}.dcm", first_index=1)
        (series / "069.xml").write_text("<LidcReadMessage/>")
        n += len(hu)
    return n


def reference_pipeline(root: Path, work: Path, k: int = 6) -> tuple[list[str], float]:
    """The reference's two scripts in sequence (export, then hash per volume); returns the kept
    file names and the seconds."""
    import imagehash
    from PIL import Image

    t0 = time.perf_counter()
    flat, kept_dir = work / "png", work / "kept"
    flat.mkdir(parents=True)
    kept_dir.mkdir(parents=True)
    for patient, i, f in reference_walk(root):  # LIDC_3DDICOM_to_2Dpng.py
        Image.fromarray(reference_slice(f)).save(flat / f"{patient}_{i}.png")
    names = sorted(str(p) for p in flat.glob("*"))  # Hash_LIDC_Volume.py
    volumes: dict[str, list[str]] = {}
    for n in names:
        volumes.setdefault(Path(n).name.rsplit("_", 1)[0], []).append(n)
    kept: list[str] = []
    for paths in volumes.values():
        hashes = np.asarray([np.ravel(imagehash.dhash(Image.open(p), hash_size=8).hash) for p in paths])
        remaining = list(paths)
        while len(remaining) > 0:
            similar = np.logical_xor(hashes[0], hashes).sum(1) <= k
            matches = np.where(similar)[0]
            shutil.copy2(remaining[matches[0]], kept_dir)
            kept.append(Path(remaining[matches[0]]).name)
            hashes = np.delete(hashes, matches, axis=0)
            remaining = list(np.delete(np.asarray(remaining), matches, axis=0))
    return kept, time.perf_counter() - t0


__all__ = [
    "MIN_FILES",
    "copy_file",
    "export_png",
    "read_reference_slices",
    "reference_pipeline",
    "reference_png_pixels",
    "reference_slice",
    "reference_sources",
    "reference_walk",
    "write_lidc_tree",
]

