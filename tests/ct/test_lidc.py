"""The reference's data pipeline exactly: the DICOM -> PNG export (LIDC_3DDICOM_to_2Dpng.py) and the
per-volume Hash-k on its flat folder (Hash_LIDC_Volume.py), against what the reference scripts
themselves wrote for the same real-DICOM tree (fixture ``data/lidc_reference.json``, made with
cv2 4.5.5; see ``data/README.md``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pretrainlab.core.cli import main

FIXTURE = json.loads((Path(__file__).parent / "data" / "lidc_reference.json").read_text())


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "L", path
        return np.asarray(im)


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def exported(lidc_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pretrainlab.ct.api import export_png

    out = tmp_path_factory.mktemp("export") / "png"
    export_png(lidc_tree, out, progress=False)
    return out


def test_export_writes_the_reference_files_and_pixels(exported: Path) -> None:
    """Same names (running index over the dataset; series with > 10 entries only; .dcm only, not .DCM)
    and the same pixels as cv2.imwrite wrote: int16 HU, truncating slope, rounding half to even, NaN -> 0."""
    names = sorted(p.name for p in exported.iterdir())
    assert names == FIXTURE["exported"]
    for n in names:
        a = _pixels(exported / n)
        assert list(a.shape) == FIXTURE["pixels"][n]["shape"]
        assert _sha(a) == FIXTURE["pixels"][n]["sha256"], n


def test_rounding_is_half_to_even_not_truncation(exported: Path) -> None:
    """The tie series (510 raw values -> x.5 for every odd one): truncation (the old to_uint8) differs."""
    from pretrainlab.ct.lidc import reference_png_pixels

    ramp = (np.arange(128 * 128) % 511).reshape(128, 128).astype(np.int16)
    ours = reference_png_pixels(ramp)[0]
    truncated = ((ramp - ramp.min()) / float(ramp.max() - ramp.min()) * 255).astype(np.uint8)
    assert (ours != truncated).mean() > 0.2  # about half of the pixels
    np.testing.assert_array_equal(ours, np.rint(ramp / 2.0).astype(np.uint8))
    tie = next(n for n in FIXTURE["exported"] if n.endswith("_26.png"))  # first slice of the ramp series
    assert _sha(_pixels(exported / tie)) == FIXTURE["pixels"][tie]["sha256"]
    const = next(n for n in FIXTURE["exported"] if n.endswith("_9.png"))  # the constant slice: 0 / 0 -> 0
    assert _pixels(exported / const).max() == 0


@pytest.mark.parametrize("k", sorted(FIXTURE["kept"], key=int))
def test_flat_reduce_keeps_the_reference_files(exported: Path, tmp_path: Path, k: str) -> None:
    """``ct reduce --method hash --k K --input FLAT --out OUT`` keeps exactly Hash_LIDC_Volume.py's files,
    copied under their names, grouped per volume by the name up to the last '_' in string order."""
    out = tmp_path / "kept"
    assert main(["ct", "reduce", "--method", "hash", "--k", k, "--input", str(exported), "--out", str(out)]) == 0
    kept = sorted(p.name for p in out.glob("*.png"))
    assert kept == FIXTURE["kept"][k]
    for n in kept:
        assert (out / n).read_bytes() == (exported / n).read_bytes()
    rep = json.loads((out / "reduction.json").read_text())
    assert [v["volume"] for v in rep["volumes"]] == ["LIDC-IDRI-0001", "LIDC-IDRI-0002"]
    assert sorted(f for v in rep["volumes"] for f in v["kept_files"]) == kept
    v1 = rep["volumes"][0]
    assert v1["slices_in"] == 14 and v1["kept_files"][0] == "LIDC-IDRI-0001_0.png"
    order = [f"LIDC-IDRI-0001_{i}.png" for i in [0, 1, 10, 11, 12, 13, 2, 3, 4, 5, 6, 7, 8, 9]]
    assert [order[i] for i in v1["kept_indices"]] == v1["kept_files"]  # indices into the string order
    assert rep["params"] == {"k": int(k), "hash_size": 8} and rep["slices_in"] == len(FIXTURE["exported"])


def test_reference_png_reduce_of_the_dicom_tree_equals_export_then_reduce(lidc_tree: Path, tmp_path: Path) -> None:
    """Reading the DICOM tree as the reference exports it (no PNGs on disk) keeps the same files."""
    out = tmp_path / "direct"
    assert main(["ct", "reduce", "--reference-png", "--method", "hash", "--k", "6", "--input", str(lidc_tree),
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == FIXTURE["kept"]["6"]
    for n in FIXTURE["kept"]["6"]:
        assert _sha(_pixels(out / n)) == FIXTURE["pixels"][n]["sha256"]


def test_default_reader_selects_ct_series_and_orders_by_position(lidc_tree: Path, tmp_path: Path) -> None:
    """Without --reference-png, every CT series is a volume in anatomical order; the X-ray is skipped."""
    out = tmp_path / "series"
    assert main(["ct", "reduce", "--method", "all", "--input", str(lidc_tree), "--out", str(out)]) == 0
    rep = json.loads((out / "reduction.json").read_text())
    assert len(rep["volumes"]) == 4 and [s["reason"] for s in rep["skipped"]] == ["modality DX, not CT"]
    assert {v["slices_in"] for v in rep["volumes"]} == {14, 12, 11, 10}  # the .DCM file is a DICOM slice too


def test_negative_k_is_refused_before_any_work(exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in (["--k", "-3"], ["--strategy", "hash", "--threshold", "-1"], ["reduction.hash_k=-1"], ["--k", "2.5"]):
        assert main(["ct", "reduce", "--input", str(exported), "--out", str(tmp_path / "x"), *bad]) == 2
        err = capsys.readouterr().err
        assert "error:" in err and "hash_k" in err and "Traceback" not in err
        assert not (tmp_path / "x").exists()
