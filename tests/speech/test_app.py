"""The speech demo: pure functions without a browser, and end-to-end in headless Chromium."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pretrainlab.core.data import DataError
from pretrainlab.core.demo import load_app_module
from pretrainlab.core.testing import upload


@pytest.fixture(scope="module")
def app(smoke_run: Path):
    return load_app_module("speech")


@pytest.fixture(scope="module")
def sample(smoke_data: Path) -> Path:
    return next((smoke_data / "speech_commands" / "yes").glob("*.wav"))


def test_build_demo_is_fast_and_lazy(app) -> None:
    before = dict(app._cache)
    app.build_demo()
    assert app._cache == before  # building loads / trains nothing


def test_analyse_outputs(app, smoke_run: Path, sample: Path) -> None:
    panels, post, kw, status = app.analyse(sample, ckpt=smoke_run)
    assert panels.ndim == 3 and panels.shape[2] == 3 and post.ndim == 3
    assert len(kw) == 3 and all(0 <= v <= 1 for v in kw.values()) and sum(kw.values()) <= 1 + 1e-4
    assert "checkpoint" in status and "frames" in status
    assert (Path(smoke_run) / "checkpoints").exists()


def test_analyse_bad_inputs(app, smoke_run: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    with pytest.raises(DataError, match="bad.wav"):
        app.analyse(bad, ckpt=smoke_run)
    with pytest.raises(DataError, match="unsupported file type"):
        p = tmp_path / "x.txt"
        p.write_text("x")
        app.analyse(p, ckpt=smoke_run)
    with pytest.raises(DataError):
        app.analyse(None, ckpt=smoke_run)


def test_posteriorgram_image(app) -> None:
    post = np.random.default_rng(0).dirichlet(np.ones(30), size=50)
    img = app.posteriorgram_image(post, [f"p{i}" for i in range(30)])
    assert img.ndim == 3 and img.shape[2] == 3


@pytest.mark.e2e
def test_demo_in_browser(app, gradio_page, smoke_run: Path, sample: Path, tmp_path: Path) -> None:
    page, _ = gradio_page(app.build_demo(ckpt=smoke_run))
    upload(page, sample, "#speech-audio")
    page.get_by_role("button", name="Analyse").click()
    page.wait_for_selector("#speech-status :text('frames')", timeout=90_000)
    assert "L1 on the altered positions" in page.inner_text("#speech-status")
    assert page.locator("img").count() >= 2
    # a bad upload shows the error and the app keeps serving
    bad = tmp_path / "broken.wav"
    bad.write_text("definitely not audio")
    upload(page, bad, "#speech-audio")
    page.get_by_role("button", name="Analyse").click()
    page.wait_for_selector("text=/broken.wav: not a readable audio file/", timeout=60_000)
    other = next(sample.parent.parent.joinpath("no").glob("*.wav"))
    upload(page, other, "#speech-audio")
    page.get_by_role("button", name="Analyse").click()
    page.wait_for_selector(f"#speech-status :text('no/{other.name}'), #speech-status :text('{other.name}')",
                           timeout=60_000)
