"""The speech demo: pure functions without a browser, and end-to-end in headless Chromium."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pretrainlab.core.data import DataError
from pretrainlab.core.demo import load_app_module
from pretrainlab.core.testing import check_load_test_calls, upload


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


def test_analyse_outputs_and_labels(app, probe_run: Path, sample: Path) -> None:
    panels, post, kw, status = app.analyse(sample, ckpt=probe_run)
    assert panels.ndim == 3 and panels.shape[2] == 3 and post.ndim == 3
    assert len(kw) == 3 and all(0 <= v <= 1 for v in kw.values()) and sum(kw.values()) <= 1 + 1e-4
    assert set(kw) <= set(load_app_module("speech").api.load_probes(probe_run).classes["keyword"])
    assert "frames" in status and "smoke" in status and "NOT meaningful" in status  # says what the model is


def test_s3prl_checkpoint_is_labelled_imported(app, smoke_data: Path, sample: Path) -> None:
    data = Path(__file__).parent / "data" / "states-500.ckpt"
    entry = app.load_model(data)
    assert "imported reference weights" in entry["message"] and "s3prl" in entry["message"]
    panels, _, _, status = app.analyse(sample, ckpt=data)
    assert panels.ndim == 3 and "imported" in status


def test_load_test_calls_check_their_own_answers(app, probe_run: Path, tmp_path: Path) -> None:
    """The hub load test's calls: run each through the pure function the endpoint serves; its check
    accepts its own answer and rejects every other call's answer (the status names the file)."""
    calls = app.load_test_calls(tmp_path)
    assert {c[0] for c in calls} == {"speech_analyse"} and len(calls) >= 2
    fns = {"speech_analyse": lambda p, s: app.analyse(p, probe_run, int(s))}
    check_load_test_calls(calls, fns, tmp_path)


def test_analyse_bad_inputs(app, probe_run: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    with pytest.raises(DataError, match="^bad.wav: not a readable audio file"):
        app.analyse(bad, ckpt=probe_run)
    with pytest.raises(DataError, match="unsupported file type"):
        p = tmp_path / "x.txt"
        p.write_text("x")
        app.analyse(p, ckpt=probe_run)
    with pytest.raises(DataError):
        app.analyse(None, ckpt=probe_run)
    import soundfile as sf

    long = tmp_path / "long.wav"
    sf.write(str(long), np.zeros(16000 * 31, np.float32), 16000)
    with pytest.raises(DataError, match="^long.wav: audio is 31.0 s long; at most 30 s"):
        app.analyse(long, ckpt=probe_run)


def test_panel_titles_are_not_cut(app) -> None:
    """Every panel title ('log-mel input (CMVN)' ...) lies wholly inside the picture (issue: 'g-mel input')."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    fig = app.panels_figure(*(rng.normal(size=(50, 80)) for _ in range(3)), np.zeros((50, 80), bool))
    fig.canvas.draw()
    box = fig.bbox
    titles = [ax.title for ax in fig.axes]
    assert [t.get_text() for t in titles] == list(app.PANEL_TITLES)
    for t in titles:
        e = t.get_window_extent()
        assert e.x0 >= box.x0 and e.x1 <= box.x1 and e.y0 >= box.y0 and e.y1 <= box.y1, t.get_text()
    plt.close(fig)
    import gradio as gr

    images = [b for b in app.build_demo().blocks.values() if isinstance(b, gr.Image)]
    assert len(images) == 2 and not any(im.show_label for im in images)  # no badge over the titles


def test_posteriorgram_image(app) -> None:
    post = np.random.default_rng(0).dirichlet(np.ones(30), size=50)
    img = app.posteriorgram_image(post, [f"p{i}" for i in range(30)])
    assert img.ndim == 3 and img.shape[2] == 3


@pytest.mark.e2e
def test_demo_in_browser(app, gradio_page, probe_run: Path, sample: Path, tmp_path: Path) -> None:
    page, _ = gradio_page(app.build_demo(ckpt=probe_run))
    upload(page, sample, "#speech-audio")
    page.get_by_role("button", name="Analyse").click()
    page.wait_for_selector("#speech-status :text('frames')", timeout=90_000)
    text = page.inner_text("#speech-status")
    assert "L1 on the altered positions" in text and "smoke" in text
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
    page.wait_for_selector(f"#speech-status :text('{other.name}')", timeout=60_000)
