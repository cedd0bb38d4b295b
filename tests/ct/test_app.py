"""The CT demo: pure functions without a browser, and the end-to-end page in headless Chromium."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pretrainlab.core.data import DataError
from pretrainlab.core.demo import load_app_module
from pretrainlab.core.testing import check_load_test_calls, upload


@pytest.fixture(scope="module")
def app():
    return load_app_module("ct")


@pytest.fixture()
def nifti(tmp_path: Path, ct_phantom) -> Path:
    from pretrainlab.ct.synthetic import write_nifti

    write_nifti(ct_phantom[0], tmp_path / "case.nii.gz")
    return tmp_path / "case.nii.gz"


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    return path


def test_load_upload_nifti_and_dicom_zip(app, nifti: Path, tmp_path: Path, ct_phantom) -> None:
    from pretrainlab.ct.preprocessing import minmax_uint8
    from pretrainlab.ct.synthetic import write_dicom_series

    name, sl = app.load_upload(nifti)
    assert name == "case.nii.gz" and sl.dtype == np.uint8 and sl.shape == ct_phantom[0].shape
    write_dicom_series(ct_phantom[0], tmp_path / "series", ct_phantom[1]["fov"], shuffle_names=True)
    z = _zip(tmp_path / "series.zip", {f"a/b/{p.name}": p.read_bytes() for p in (tmp_path / "series").iterdir()})
    _, sl2 = app.load_upload(z)
    np.testing.assert_array_equal(sl2, minmax_uint8(np.round(ct_phantom[0])))


def test_bad_uploads(app, tmp_path: Path) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("x.dcm", b"x")
    nested = _zip(tmp_path / "nested.zip", {"inner.zip": inner.getvalue()})
    with pytest.raises(DataError, match="nested.zip: nested archive"):
        app.load_upload(nested)
    with pytest.raises(DataError, match="unsupported file type"):
        app.load_upload(_zip(tmp_path / "x.rar", {"a": b"1"}))
    with pytest.raises(DataError, match="not a readable zip"):
        (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
        app.load_upload(tmp_path / "broken.zip")
    (tmp_path / "bad.nii").write_bytes(b"\x00" * 400)
    with pytest.raises(DataError, match="bad.nii: not a readable NIfTI"):
        app.load_upload(tmp_path / "bad.nii")
    with pytest.raises(DataError, match="please upload"):
        app.load_upload(None)


def test_zip_limits(app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "MAX_ZIP_FILES", 3)
    z = _zip(tmp_path / "many.zip", {f"{i}.dcm": b"0" for i in range(5)})
    with pytest.raises(DataError, match="over the limit of 3"):
        app.load_upload(z)
    monkeypatch.setattr(app, "MAX_UPLOAD_MB", 1e-6)
    with pytest.raises(DataError, match="over the"):
        app.load_upload(z)


def test_reduce_render_strip_summary(app) -> None:
    name, sl = app.phantom_case(2, n_slices=30, size=32)
    kept = app.reduce_case(sl, "hash", 6)
    from pretrainlab.core.config import ConfigError
    from pretrainlab.core.reduction import reference_hash_k

    np.testing.assert_array_equal(kept, reference_hash_k(sl, 6))
    img = app.render_slice(sl, int(kept[0]), kept)
    assert img.shape == (32 * 4, 32 * 4, 3) and tuple(img[0, 0]) == (40, 200, 80)
    dropped = next(i for i in range(len(sl)) if i not in set(kept.tolist()))
    assert tuple(app.render_slice(sl, dropped, kept)[0, 0]) == (220, 50, 50)
    strip = app.strip_image(len(sl), kept, 0)
    assert strip.shape[1] == len(sl) * 6
    assert f"{len(kept)} of 30 slices" in app.summary_text(name, len(sl), kept, "hash", 6)
    with pytest.raises(ConfigError, match=r"reduction\.hash_k: 2\.5 .*whole number"):
        app.reduce_case(sl, "hash", 2.5)
    with pytest.raises(ConfigError, match=r"reduction\.hash_k: -3"):
        app.reduce_case(sl, "hash", -3)  # would never end in the reference's loop: refused
    with pytest.raises(ConfigError, match=r"reduction\.ssim_threshold"):
        app.reduce_case(sl, "ssim", float("nan"))
    assert len(app.reduce_case(sl, "every_n", 5)) == 6


def test_predict_slice_uses_the_checkpoint_class_names(app) -> None:
    import dataclasses

    import torch

    from pretrainlab.ct.api import load
    from pretrainlab.ct.downstream import Classifier

    cfg = dataclasses.replace(load("finetune", "smoke", []), classes=("CT_COVID", "CT_NonCOVID"))
    torch.manual_seed(0)
    p = app.predict_slice(Classifier(cfg.model, 2), cfg, app.phantom_case(0, 20, 32)[1][10])
    assert set(p) == {"CT_COVID", "CT_NonCOVID"} and abs(sum(p.values()) - 1) < 1e-5
    organ = dataclasses.replace(load("finetune", "smoke", ["task=organ"]), classes=("a", "b", "c"))
    assert list(app.predict_slice(Classifier(organ.model, 3), organ, np.zeros((28, 28), np.uint8))) == ["a", "b", "c"]


@pytest.fixture(scope="module")
def covid_classifier(ct_smoke: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smoke COVID-CT classifier (Hash-6 pre-training + fine-tuning), as the demo trains it."""
    from pretrainlab.ct import api

    root = tmp_path_factory.mktemp("ct-demo-classifier")
    api.pretrain(api.load("hash6", "smoke", ["train.progress=false"]), ct_smoke, root / "pt")
    api.finetune(api.load("finetune", "smoke", ["task=covid", "train.progress=false"]), ct_smoke, root / "ft",
                 init=root / "pt")
    return root / "ft"


def test_load_test_calls_check_their_own_answers(app, covid_classifier: Path, tmp_path: Path) -> None:
    """The hub load test's calls: run each through the pure function the endpoint serves; its check
    accepts its own answer and rejects every other call's answer (the summary names the volume)."""
    calls = app.load_test_calls(tmp_path)
    assert {c[0] for c in calls} == {"ct_analyse", "ct_phantom"} and len(calls) >= 3
    pred = app.Predictor(covid_classifier)
    fns = {"ct_analyse": lambda u, s, st, t: app.analyse(pred, u, False, s, st, t),
           "ct_phantom": lambda u, s, st, t: app.analyse(pred, u, True, s, st, t)}
    check_load_test_calls(calls, fns, tmp_path)


@pytest.mark.e2e
def test_e2e_upload_reduce_and_bad_upload(app, gradio_page, nifti: Path, tmp_path: Path) -> None:
    page, _ = gradio_page(app.build_demo())
    upload(page, nifti, "#ct-upload")
    page.locator("#ct-run").click()
    page.get_by_text("case.nii.gz").first.wait_for(timeout=120_000)
    summary = page.locator("#ct-summary").inner_text(timeout=120_000)
    assert "keeps" in summary and "of 40 slices" in summary
    page.locator("#ct-status").get_by_text("smoke profile").first.wait_for()  # says how the classifier was trained
    assert "NOT meaningful" in page.locator("#ct-status").inner_text()
    assert page.locator("img").count() >= 2
    # a bad upload shows the error and the app keeps serving
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("x.dcm", b"x")
    bad = _zip(tmp_path / "nested.zip", {"inner.zip": inner.getvalue()})
    upload(page, bad, "#ct-upload")
    page.locator("#ct-run").click()
    page.get_by_text("nested archive").first.wait_for(timeout=60_000)
    page.locator("#ct-phantom").click()
    page.get_by_text("phantom #0").first.wait_for(timeout=60_000)
    assert "phantom #0" in page.locator("#ct-summary").inner_text()
