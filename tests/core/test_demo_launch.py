"""core.demo.launch serves what the demos show from the synthetic-data cache and the runs folder, even
when those lie outside the working directory and the system temp dir (the default ~/.cache/pretrainlab):
found by the hub load test, where the face gallery (tiny data in the cache) failed with Gradio's
"Cannot move ... to the gradio cache dir"."""

from __future__ import annotations

import io
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def outside_cache(monkeypatch: pytest.MonkeyPatch):
    root = Path.home() / ".cache" / f"pretrainlab-test-{uuid.uuid4().hex[:8]}"  # neither cwd nor temp
    root.mkdir(parents=True)
    monkeypatch.setenv("PRETRAINLAB_CACHE", str(root))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_launch_serves_files_from_the_data_cache(outside_cache: Path) -> None:
    gr = pytest.importorskip("gradio")
    from gradio_client import Client

    from pretrainlab.core.demo import launch
    from pretrainlab.core.testing import free_port

    img = outside_cache / "data" / "gallery" / "a.png"
    img.parent.mkdir(parents=True)
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(img)
    with gr.Blocks() as demo:
        btn = gr.Button("go")
        out = gr.Gallery()
        btn.click(lambda: [(str(img), "a")], None, out, api_name="show")
    port = free_port()
    launch(demo, port=port, block=False)
    try:
        res = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(api_name="/show")
        assert len(res) == 1 and Path(res[0]["image"]).read_bytes() == img.read_bytes()
    finally:
        demo.close()


def test_image_outputs_reach_gradio_as_files_that_never_change() -> None:
    """Found by the hub load test (2 of 799 calls: "peer closed connection without sending complete message
    body"): Gradio writes array outputs to ``<cache>/<hash>/image.webp`` with a plain write, so concurrent
    requests with the same answer rewrite a file while it is being downloaded. run_button now hands Gradio
    content-addressed files written once (atomically), which Gradio copies atomically."""
    gr = pytest.importorskip("gradio")
    from pretrainlab.core.demo import image_file, image_out_dir, run_button

    arr = np.zeros((6, 9, 3), np.uint8)
    arr[2:4, 3:7] = (250, 10, 40)
    with gr.Blocks() as demo:
        btn = gr.Button("go")
        im, gal, txt = gr.Image(type="numpy"), gr.Gallery(), gr.Markdown()
        run_button(btn, lambda: (arr, [(arr, "a"), Image.fromarray(arr), "/some/path.png"], "done"), None,
                   [im, gal, txt], api_name="show")
    fn = next(f.fn for f in demo.fns.values() if f.api_name == "show")
    a, g, t = fn()
    assert isinstance(a, str) and Path(a).parent == image_out_dir() and a.endswith(".webp")
    assert g[0] == (a, "a") and g[1] == a and g[2] == "/some/path.png" and t == "done"
    before, content = Path(a).stat(), Path(a).read_bytes()
    assert fn()[0] == a  # the same answer: the same file, not rewritten (only touched)
    assert Path(a).stat().st_ino == before.st_ino and Path(a).read_bytes() == content
    png = image_file(arr, "png")
    assert np.array_equal(np.asarray(Image.open(png)), arr)  # the bytes Gradio would have encoded
    assert not list(image_out_dir().glob(".part-*"))
    with pytest.raises(TypeError, match="uint8"):
        image_file(arr.astype(np.float32))


def test_concurrent_identical_image_answers_all_arrive_whole() -> None:
    gr = pytest.importorskip("gradio")
    import concurrent.futures as cf

    from gradio_client import Client

    from pretrainlab.core.demo import launch, run_button
    from pretrainlab.core.testing import free_port

    arr = (np.arange(64 * 64 * 3) % 251).astype(np.uint8).reshape(64, 64, 3)
    with gr.Blocks() as demo:
        btn = gr.Button("go")
        im = gr.Image(type="numpy", format="png")
        run_button(btn, lambda: arr, None, [im], api_name="show")
    port = free_port()
    launch(demo, port=port, block=False)
    try:
        def call(_: int) -> bytes:
            return Path(Client(f"http://127.0.0.1:{port}/", verbose=False).predict(api_name="/show")).read_bytes()

        with cf.ThreadPoolExecutor(8) as ex:
            got = list(ex.map(call, range(16)))
        assert all(np.array_equal(np.asarray(Image.open(io.BytesIO(b))), arr) for b in got)
    finally:
        demo.close()


def test_malloc_arenas_capped_unless_the_user_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    """A demo server caps glibc's malloc arenas (steady concurrent load grew its RSS without bound)."""
    import sys

    from pretrainlab.core.demo import cap_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert cap_malloc_arenas() is False  # the user's setting wins
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    import platform

    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert cap_malloc_arenas(8) is True


def test_image_outputs_pruned_only_when_unused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a longer load run: files were pruned by their creation time, so a file handed out again
    (the same answer) could be deleted before Gradio copied it, and Gradio then served the bare path (403).
    A file handed out again is touched; only files unused for IMAGE_OUT_MAX_AGE_S go."""
    import os

    from pretrainlab.core import demo

    a = np.zeros((4, 4, 3), np.uint8)
    b = np.full((4, 4, 3), 9, np.uint8)
    pa, pb = demo.image_file(a, "png"), demo.image_file(b, "png")
    old = Path(pa).stat().st_mtime - 3600
    os.utime(pa, (old, old))
    os.utime(pb, (old, old))
    monkeypatch.setitem(demo._image_out, "writes", 0)
    assert demo.image_file(a, "png") == pa  # handed out again (as a concurrent request would)
    monkeypatch.setitem(demo._image_out, "writes", 199)  # the next write prunes
    pc = demo.image_file(np.full((4, 4, 3), 77, np.uint8), "png")
    assert Path(pa).exists() and Path(pc).exists() and not Path(pb).exists()
