"""Shared fixtures: isolated runs / cache folders, one thread per test process, the browser harness."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session", autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Runs and the synthetic-data cache go to per-session temporary folders (shared by all tests)."""
    old = {k: os.environ.get(k) for k in ("PRETRAINLAB_RUNS", "PRETRAINLAB_CACHE")}
    os.environ["PRETRAINLAB_RUNS"] = str(tmp_path_factory.mktemp("runs"))
    cache = os.environ.get("PRETRAINLAB_TEST_CACHE")
    if not cache and os.environ.get("PYTEST_XDIST_WORKER"):
        # pytest-xdist: the workers share one data cache (generation is atomic, so racing is safe)
        cache = str(tmp_path_factory.getbasetemp().parent / "shared-cache")
    os.environ["PRETRAINLAB_CACHE"] = cache or str(tmp_path_factory.mktemp("cache"))
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture()
def gradio_page() -> Iterator[Callable[[Any], tuple[Any, str]]]:
    """``page, url = gradio_page(demo)``: serve a gr.Blocks on 127.0.0.1 and open it in headless Chromium.

    The page has already navigated to the app and waited for Gradio to render.
    """
    from pretrainlab.core.testing import browser_page, serve

    with ExitStack() as stack:

        def open_app(demo: Any) -> tuple[Any, str]:
            url = stack.enter_context(serve(demo))
            page = stack.enter_context(browser_page())
            page.goto(url)
            page.wait_for_selector("gradio-app", state="attached")
            page.wait_for_selector(".gradio-container", state="visible")
            return page, url

        yield open_app
