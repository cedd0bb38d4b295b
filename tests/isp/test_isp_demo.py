"""The demo's pure functions (no browser) and one end-to-end browser test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pretrainlab.core.data import DataError
from pretrainlab.core.demo import load_app_module
from pretrainlab.core.testing import check_load_test_calls, upload


@pytest.fixture(scope="module")
def app():
    return load_app_module("isp")


def test_render_file_and_sample(app, smoke_run: Path, smoke_data: Path) -> None:
    conv, learned, crop, info, png = app.render_file(smoke_data / "samples/0.dng", smoke_run)
    assert conv.shape == learned.shape == (96, 128, 3) and conv.dtype == np.uint8
    assert crop.shape[0] == 4 * 24 and crop.shape[1] == 2 * 4 * 32 + 4
    assert "0.dng" in info and Path(png).exists()
    assert "smoke profile" in info and "NOT meaningful" in info  # a 3-step model says so on the page
    out = app.predict_sample("0.npy", smoke_run)
    assert out[1].shape == (96, 128, 3)


def test_released_weights_in_the_demo(app, tmp_path: Path, smoke_data: Path) -> None:
    from pretrainlab.isp.generators import build_generator

    w = tmp_path / "models/Fujifilm/RMFA_TINY_unpaired_step_48270.pth"
    w.parent.mkdir(parents=True)
    torch.save(build_generator("rmfanet_tiny").state_dict(), w)
    _, learned, _, info, _ = app.render_file(smoke_data / "samples/0.png", weights=w, arch="rmfanet_tiny")
    assert learned.shape == (96, 128, 3)
    assert "imported reference weights" in info and "RMFA_TINY_unpaired_step_48270.pth" in info and "Fujifilm" in info
    assert "29223 params" in info


def test_predict_upload_rejects_bad_files(app, smoke_run: Path, tmp_path: Path) -> None:
    bad = tmp_path / "x.txt"
    bad.write_text("hello")
    with pytest.raises(DataError, match="unsupported file type"):
        app.predict_upload(str(bad), smoke_run)
    three = tmp_path / "three.npy"
    np.save(three, np.zeros((6, 6, 3), np.uint16) + 100)
    with pytest.raises(DataError, match="three.npy: expected a packed"):
        app.predict_upload(str(three), smoke_run)
    from PIL import Image

    Image.fromarray(np.full((33, 32), 100, np.uint16)).save(tmp_path / "odd.png")
    with pytest.raises(DataError, match="odd.png: .*odd dimensions"):
        app.predict_upload(str(tmp_path / "odd.png"), smoke_run)
    with pytest.raises(DataError, match="please upload"):
        app.predict_upload(None, smoke_run)


def test_load_test_calls_check_their_own_answers(app, smoke_run: Path, tmp_path: Path) -> None:
    """The hub load test's calls: run each through the pure function the endpoint serves; its check
    accepts its own answer and rejects every other call's answer (the result line names the file)."""
    calls = app.load_test_calls(tmp_path)
    assert {c[0] for c in calls} == {"isp_render", "isp_render_sample"} and len(calls) >= 3
    fns = {"isp_render": lambda f: app.predict_upload(f, smoke_run),
           "isp_render_sample": lambda n: app.predict_sample(n, smoke_run)}
    check_load_test_calls(calls, fns, tmp_path)


def test_build_demo_is_fast_and_lazy(app) -> None:
    import time

    t0 = time.time()
    app._CACHE.clear()
    demo = app.build_demo()
    assert demo is not None and time.time() - t0 < 10
    assert not app._CACHE  # nothing resolved at build time (resolution is on the first click)


@pytest.mark.e2e
def test_browser_upload_render_and_error(app, smoke_run: Path, smoke_data: Path, tmp_path: Path, gradio_page) -> None:
    page, _ = gradio_page(app.build_demo(ckpt=smoke_run))
    upload(page, smoke_data / "samples/1.dng", "#isp-upload")
    page.click("#isp-render-upload")
    page.wait_for_function("() => document.querySelector('#isp-info textarea')?.value.includes('1.dng')",
                           timeout=60_000)
    assert "mosaic" in page.input_value("#isp-info textarea")
    assert "NOT meaningful" in page.input_value("#isp-info textarea")
    assert page.locator("img").count() >= 2
    bad = tmp_path / "broken.dng"
    bad.write_bytes(b"not a raw file at all")
    page.reload()  # a fresh upload box (the uploaded file replaced the input)
    page.wait_for_selector(".gradio-container", state="visible")
    upload(page, bad, "#isp-upload")
    page.click("#isp-render-upload")
    page.get_by_text("rawpy cannot read").first.wait_for(timeout=30_000)
    page.click("#isp-render-sample")  # still serving
    page.wait_for_function("() => document.querySelector('#isp-info textarea')?.value.includes('0.dng')",
                           timeout=60_000)
