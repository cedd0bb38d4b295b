"""Test helpers shared by every domain's tests: serve a Gradio app on a free 127.0.0.1 port and
drive it in headless Debian Chromium through Playwright.

Chromium is started the way this sandbox needs: ``/usr/bin/chromium`` (``$PRETRAINLAB_CHROMIUM``
overrides), ``--headless --no-sandbox --disable-gpu`` and the flags that stop background network
traffic, with a fresh user-data dir.
"""

from __future__ import annotations

import contextlib
import json
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


def write_zip(path: str | os.PathLike[str], members: dict[str, bytes]) -> Any:
    """Write a zip of ``{name: bytes}`` at ``path`` (an upload fixture for the demos' zip readers); returns it."""
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


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


def upload(page: Any, path: str | os.PathLike[str], scope: str = "body", timeout_ms: int = 60_000) -> None:
    """Put ``path`` into the upload component under the CSS ``scope`` and wait until it holds it.

    What a user does: press the component's Clear button if it holds a file, wait for the empty
    drop zone, choose the file, and see the component take it: the upload finished (no "Uploading"
    progress left) and ``gr.File`` lists this very file (not an earlier one that a slow event put
    there), or a component without a file list (``gr.Audio``) shows its preview. Waiting on those states, not on a fixed
    sleep, keeps browser tests steady on a loaded CI machine, where a click can land while Gradio
    still re-renders the component. The file is chosen again (up to three times) if the component
    does not take it; one that never does fails with the file and the scope named.
    """
    from pathlib import Path

    root = page.locator(scope).first
    clear = root.locator("button[aria-label='Clear']")
    before = clear.count()
    if before:
        clear.first.click()
        _poll(page, lambda: clear.count() < before, timeout_ms)
    name = Path(path).name
    box = root.locator("input[type=file]").first
    # gr.File lists what it holds in a preview table, one cell per file named by its aria-label
    listed = root.locator(f"td.filename[aria-label={json.dumps(name)}]")
    table = root.locator("table.file-preview")
    shown = root.get_by_text(name)
    # Gradio shows the name during the upload too ("Uploading 1 file..."), and a click on a button then
    # only says "Waiting for file(s) to finish uploading": done = no progress left, and the component
    # lists this very file (gr.File), or, for components without a file list (gr.Audio, gr.Image),
    # its drop zone gave way to a preview or the name shows.
    uploading = root.get_by_text("Uploading", exact=False)

    def holds() -> bool:
        if uploading.count():
            return False
        if listed.count():
            return listed.first.is_visible()
        if table.count():  # a file list that does not (yet) hold this file
            return False
        return box.count() == 0 or (shown.count() > 0 and shown.first.is_visible())

    for _ in range(3):
        box.wait_for(state="attached", timeout=timeout_ms)
        box.set_input_files(str(path), timeout=timeout_ms)
        if _poll(page, holds, timeout_ms // 3):
            return
    raise AssertionError(f"the upload of {name} into {scope!r} never showed in the page")


def _poll(page: Any, done: Any, timeout_ms: int) -> bool:
    """Check ``done()`` every 100 ms (letting the page run) until it holds or ``timeout_ms`` passes."""
    t0 = time.time()
    while time.time() - t0 < timeout_ms / 1000:
        if done():
            return True
        page.wait_for_timeout(100)
    return False


def check_load_test_calls(calls: list[tuple[str, list[Any], Any]], fns: dict[str, Any], sample_dir: Any) -> None:
    """Assert what the hub load test relies on: each of an app's ``load_test_calls`` run through the pure
    function its endpoint serves (``fns[api_name](*inputs)``, uploads as local paths) gives an answer its
    own check accepts, and that check rejects every other call's answer and an error in its place (so a
    session can tell its result from another's). Upload inputs must lie in ``sample_dir``."""
    from pathlib import Path

    assert calls and {c[0] for c in calls} <= set(fns), f"endpoints {sorted({c[0] for c in calls})} vs {sorted(fns)}"
    outs = []
    for name, inputs, _check in calls:
        assert all(Path(x["path"]).parent == Path(sample_dir) for x in inputs if isinstance(x, dict))
        outs.append(fns[name](*[x["path"] if isinstance(x, dict) else x for x in inputs]))  # handle_file -> path
    error = "error: something went wrong"
    for i, (name, _inputs, check) in enumerate(calls):
        assert check(outs[i]), f"call {i} ({name}) rejects its own answer"
        assert not any(check(o) for j, o in enumerate(outs) if j != i), f"call {i} ({name}) accepts another answer"
        assert not check((error, [])) and not check(tuple(error for _ in outs[i])), f"call {i} accepts an error"
