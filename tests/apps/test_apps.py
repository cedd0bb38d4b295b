"""The built-in SimCLR demo and the hub: pure functions, then real headless-Chromium tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pretrainlab.core.data import DataError
from pretrainlab.core.demo import load_app_module
from pretrainlab.core.testing import check_load_test_calls, upload


@pytest.fixture(scope="module")
def simclr_app():  # type: ignore[no-untyped-def]
    return load_app_module("simclr")


@pytest.fixture(scope="module")
def shape_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pretrainlab.core.builtin.synthetic import draw_shape

    p = tmp_path_factory.mktemp("img") / "circle.png"
    draw_shape("circle", np.random.default_rng(0)).save(p)
    return p


def test_load_test_calls_check_their_own_answers(simclr_app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The hub load test's simclr calls, through the function its endpoint serves."""
    calls = simclr_app.load_test_calls(tmp_path)
    check_load_test_calls(calls, {"simclr_neighbours": simclr_app.predict}, tmp_path)


def test_predict_trains_smoke_when_no_checkpoint(simclr_app, shape_png: Path) -> None:  # type: ignore[no-untyped-def]
    votes, gallery, message = simclr_app.predict(str(shape_png))
    assert "trained the smoke profile" in message or "newest in runs" in message
    assert abs(sum(votes.values()) - 1.0) < 1e-6 and len(gallery) == 8
    assert gallery[0][0].shape == (32, 32, 3)


@pytest.mark.parametrize("name,content,match", [
    ("x.txt", b"hello", "unsupported file type"),
    ("empty.png", b"", "empty"),
    ("broken.png", b"\x89PNG not really", "not a readable image"),
])
def test_bad_uploads(simclr_app, tmp_path: Path, name: str, content: bytes, match: str) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(DataError, match=match) as e:
        simclr_app.predict(str(p))
    assert name in str(e.value)
    with pytest.raises(DataError, match="please upload"):
        simclr_app.predict(None)


@pytest.mark.e2e
def test_simclr_demo_in_browser(simclr_app, shape_png: Path, gradio_page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page, _ = gradio_page(simclr_app.build_demo())
    upload(page, shape_png, "#simclr-image")
    page.get_by_role("button", name="Find neighbours").click()
    page.get_by_text("cos ").first.wait_for()  # gallery captions
    assert "checkpoint" in page.locator("#simclr-status").inner_text()
    # bad upload: the error shows, the app keeps serving
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    upload(page, bad, "#simclr-image")
    page.get_by_role("button", name="Find neighbours").click()
    page.get_by_text("not a readable image").first.wait_for()
    upload(page, shape_png, "#simclr-image")
    page.get_by_role("button", name="Find neighbours").click()
    page.get_by_text("cos ").first.wait_for()


@pytest.mark.e2e
def test_hub_renders_one_tab_per_domain(gradio_page) -> None:  # type: ignore[no-untyped-def]
    hub = load_app_module("hub")
    names = hub.available_apps()
    assert "simclr" in names
    page, _ = gradio_page(hub.build_demo())
    for name in names:
        page.get_by_role("tab", name=name).wait_for()
    page.get_by_role("tab", name="simclr").click()
    page.get_by_role("button", name="Find neighbours").wait_for()
    Image  # noqa: B018 - keep PIL imported for fixtures
