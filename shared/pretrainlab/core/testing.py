"""Test helpers shared by every domain's tests: serve a Gradio app on a free 127.0.0.1 port and
drive it in headless Debian Chromium through Playwright.

Chromium is started the way this sandbox needs: ``/usr/bin/chromium`` (``$PRETRAINLAB_CHROMIUM``
overrides), ``--headless --no-sandbox --disable-gpu`` and the flags that stop background network
traffic, with a fresh user-data dir.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    env = os.environ.get("PRETRAINLAB_CHROMIUM")
    if env:
        return env
    for cand in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.path.exists(cand):
            return cand
    return shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60.0) -> None:
    t0 = time.time()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status < 500:
                    return
        except OSError:  # URLError / connection refused while the server starts
            if time.time() - t0 > timeout:
                raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
            time.sleep(0.2)


@contextlib.contextmanager
def serve(demo: Any) -> Iterator[str]:
    """Launch a ``gr.Blocks`` on 127.0.0.1:<free port> without blocking; yield its URL."""
    from pretrainlab.core.demo import launch

    port = free_port()
    launch(demo, port=port, block=False)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_http(url)
        yield url
    finally:
        demo.close()


@contextlib.contextmanager
def browser_page(timeout_ms: int = 60_000) -> Iterator[Any]:
    """A Playwright page in headless Chromium (with a fresh profile)."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise RuntimeError("Chromium not found: install Debian's 'chromium' (make setup does it as root)")
    profile = tempfile.mkdtemp(prefix="pl-chromium-")
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.set_default_timeout(timeout_ms)
            yield page
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)
