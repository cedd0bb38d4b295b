"""The geo demo: pure functions without a browser, then one end-to-end run in headless Chromium."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pretrainlab.core.data import DataError
from pretrainlab.core.demo import load_app_module
from pretrainlab.core.testing import check_load_test_calls, upload

app = load_app_module("geo")


def test_world_map_and_format() -> None:
    top = [{"lat": 48.8, "lon": 2.3, "cell": 3, "name": "Paris", "country": "FR", "prob": 0.6},
           {"lat": 40.4, "lon": -3.7, "cell": 5, "name": "Madrid", "country": "ES", "prob": 0.2}]
    guess = {"lat": 48.9, "lon": 2.4, "cell": 3, "refined": True}
    img = app.world_map(top, guess, (51.5, -0.1), None)
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8 and img.std() > 10
    md = app.format_result({"top": top, "guess": guess}, (51.5, -0.1), "checkpoint: x")
    assert "| 1 | 48.800 | 2.300 | 3 Paris (FR) | 0.600 |" in md and "refined by retrieval" in md
    assert "**Error**: 3" in md  # ~350 km from London


def test_parse_truth() -> None:
    assert app.parse_truth(None, None) is None and app.parse_truth(10, 20) == (10.0, 20.0)
    with pytest.raises(DataError, match="latitude 120.0 out of range"):
        app.parse_truth(120, 0)


def test_load_test_calls_check_their_own_answers(geo_run: Path, tmp_path: Path) -> None:
    """The hub load test's geo calls, through what the Locate button serves: (path, map, markdown)."""
    calls = app.load_test_calls(tmp_path)

    def locate(path: str, lat: float, lon: float) -> tuple[str, np.ndarray, str]:
        m, md = app.predict(path, lat, lon, geo_run)
        return path, m, md

    check_load_test_calls(calls, {"geo_locate": locate}, tmp_path)


def test_predict_pure(geo_run: Path, geo_data: Path, tmp_path: Path) -> None:
    img, md = app.predict(str(geo_data / "images" / "test" / "test000003.jpg"), 10.0, 20.0, ckpt=geo_run)
    assert img.shape[2] == 3 and "Guess" in md and "Error" in md and "checkpoint" in md
    # the page says how the model was trained: a smoke model is flagged, the tower's origin is named
    assert "smoke" in md and "NOT meaningful" in md and "random weights" in md and "refinement on" in md
    p, la, lo = app.generated_sample(2)
    assert Path(p).is_file() and -90 <= la <= 90 and -180 <= lo <= 180
    bad = tmp_path / "x.txt"
    bad.write_text("hello")
    with pytest.raises(DataError, match="unsupported file type"):
        app.predict(str(bad), None, None, ckpt=geo_run)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(DataError, match="not a readable image"):
        app.predict(str(broken), None, None, ckpt=geo_run)
    with pytest.raises(DataError, match="please upload"):
        app.predict(None, None, None, ckpt=geo_run)


@pytest.mark.e2e
def test_demo_in_browser(gradio_page, geo_run: Path, geo_data: Path, tmp_path: Path) -> None:
    page, _ = gradio_page(app.build_demo(ckpt=geo_run))
    upload(page, geo_data / "images" / "test" / "test000001.jpg", "#geo-image")
    page.get_by_role("button", name="Locate").click()
    result = page.locator("#geo-result")
    result.get_by_text("Guess").wait_for(timeout=120_000)
    assert "| 1 |" in result.inner_text() or "rank" in result.inner_text()
    assert page.locator("img").count() >= 2  # the uploaded photo and the world map
    # a bad upload: an error on the page, and the app keeps serving
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    upload(page, bad, "#geo-image")
    page.get_by_role("button", name="Locate").click()
    page.get_by_text("not a readable image").first.wait_for(timeout=60_000)
    # still serving: a good image works again
    upload(page, geo_data / "images" / "test" / "test000002.jpg", "#geo-image")
    page.get_by_role("button", name="Locate").click()
    result.get_by_text("Guess").wait_for(timeout=60_000)
    # a generated sample: it replaces the upload and sets the truth; Locate gives a new answer
    before = result.inner_text()
    page.get_by_role("button", name="Pick a generated image").click()
    lat = page.get_by_label("true latitude (optional)").and_(page.locator("input")).first
    page.wait_for_function("(el) => el.value !== ''", arg=lat.element_handle(), timeout=60_000)
    page.wait_for_function("() => { const c = document.querySelector('#geo-image td.filename');"
                           " return c && c.getAttribute('aria-label') !== 'test000002.jpg'; }", timeout=60_000)
    page.get_by_role("button", name="Locate").click()
    page.wait_for_function("(b) => { const r = document.querySelector('#geo-result');"
                           " return r && r.innerText !== b && r.innerText.includes('Error:'); }", arg=before,
                           timeout=60_000)
