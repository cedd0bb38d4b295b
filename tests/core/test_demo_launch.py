"""core.demo.launch serves what the demos show from the synthetic-data cache and the runs folder, even
when those lie outside the working directory and the system temp dir (the default ~/.cache/pretrainlab):
found by the hub load test, where the face gallery (tiny data in the cache) failed with Gradio's
"Cannot move ... to the gradio cache dir"."""

from __future__ import annotations

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
