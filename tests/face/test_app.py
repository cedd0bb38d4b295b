"""The demo's pure functions (no browser) and one end-to-end browser test."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from pretrainlab.core.data import DataError
from pretrainlab.core.demo import load_app_module
from pretrainlab.core.testing import check_load_test_calls, upload


@pytest.fixture(scope="module")
def app():
    return load_app_module("face")


def test_verify_pair_pure(app, smoke_data: Path, petal_ckpt: Path) -> None:
    a = smoke_data / "verify" / "Person_0001" / "Person_0001_0001.png"
    b = smoke_data / "verify" / "Person_0001" / "Person_0001_0002.png"
    md, gal = app.verify_pair(str(a), str(b), ckpt=petal_ckpt)
    assert ("SAME PERSON" in md or "DIFFERENT PEOPLE" in md) and "quality weight a" in md
    assert len(gal) == 2 and gal[0][1].startswith("a = ")


def test_identify_probe_pure(app, smoke_data: Path, petal_ckpt: Path, tmp_path: Path) -> None:
    z = tmp_path / "gallery.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for person in ("Person_0001", "Person_0002", "Person_0003"):
            for f in sorted((smoke_data / "verify" / person).iterdir())[:2]:
                zf.write(f, f"people/{person}/{f.name}")
    probe = smoke_data / "verify" / "Person_0002" / "Person_0002_0004.png"
    md, grid = app.identify_probe(str(z), False, str(probe), ckpt=petal_ckpt)
    assert "top-3 of 3 identities" in md and len(grid) == 3
    md2, grid2 = app.identify_probe(None, True, str(probe), ckpt=petal_ckpt)
    assert "top-5 of 10 identities" in md2 and len(grid2) == 5


def test_load_test_calls_check_their_own_answers(app, petal_ckpt: Path, tmp_path: Path) -> None:
    """The hub load test's calls: run each through the pure function the endpoint serves; its check
    accepts its own answer and rejects every other call's answer (distinct names echoed in the text)."""
    calls = app.load_test_calls(tmp_path)
    assert {c[0] for c in calls} == {"face_verify", "face_identify"} and len(calls) >= 3
    fns = {"face_verify": lambda a, b: app.verify_pair(a, b, ckpt=petal_ckpt),
           "face_identify": lambda g, u, p: app.identify_probe(g, u, p, ckpt=petal_ckpt)}
    check_load_test_calls(calls, fns, tmp_path)


def test_bad_uploads_pure(app, tmp_path: Path, petal_ckpt: Path) -> None:
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(DataError, match="unsupported file type"):
        app.verify_pair(str(txt), str(txt), ckpt=petal_ckpt)
    fake = tmp_path / "fake.png"
    fake.write_text("not really a png")
    with pytest.raises(DataError, match="fake.png: not a readable image"):
        app.verify_pair(str(fake), str(fake), ckpt=petal_ckpt)
    with pytest.raises(DataError, match="please upload"):
        app.identify_probe(None, True, None, ckpt=petal_ckpt)


@pytest.mark.e2e
def test_browser_verify_and_bad_upload(app, gradio_page, smoke_data: Path, petal_ckpt: Path, tmp_path: Path) -> None:
    page, _ = gradio_page(app.build_demo(ckpt=petal_ckpt))
    a = smoke_data / "verify" / "Person_0001" / "Person_0001_0001.png"
    b = smoke_data / "verify" / "Person_0002" / "Person_0002_0001.png"
    upload(page, a, "#face1")
    upload(page, b, "#face2")
    page.get_by_role("button", name="Compare").click()
    page.wait_for_selector("#verify-out :text('cosine similarity')", timeout=60_000)
    text = page.locator("#verify-out").inner_text()
    assert "quality weight a" in text and ("SAME PERSON" in text or "DIFFERENT PEOPLE" in text)
    # bad upload: a text file renamed .png -> an error on the page, the app keeps serving
    bad = tmp_path / "broken.png"
    bad.write_text("garbage")
    upload(page, bad, "#face1")
    page.get_by_role("button", name="Compare").click()
    page.wait_for_selector(":text('not a readable image')", timeout=60_000)
    upload(page, a, "#face1")
    page.get_by_role("button", name="Compare").click()
    page.wait_for_selector("#verify-out :text('cosine similarity')", timeout=60_000)


def test_model_without_checkpoint_trains_smoke_or_uses_newest(app) -> None:
    _task, _cfg, folder, msg = app.get_model(None)
    assert folder.name.startswith("step_") and ("trained the smoke profile" in msg or "newest" in msg)
    assert app.build_demo() is not None


def test_generated_gallery_embedded_once_per_model(app, smoke_data: Path, petal_ckpt: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub load test showed every 'identify' request re-embedding the 300-image generated gallery
    (seconds per call under load); it is embedded once per model now, uploaded zips still every time."""
    import pretrainlab.face.api as face_api

    calls = []
    real = face_api.read_gallery
    monkeypatch.setattr(face_api, "read_gallery", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    probe = smoke_data / "verify" / "Person_0002" / "Person_0002_0004.png"
    first = app.identify_probe(None, True, str(probe), ckpt=petal_ckpt)
    second = app.identify_probe(None, True, str(probe), ckpt=petal_ckpt)
    assert first[0] == second[0] and len(calls) <= 1
