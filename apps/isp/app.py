"""Gradio demo of pretrainlab.isp: upload a RAW file (mosaic PNG, NTIRE packed .npy, .dng) or pick a
generated one; see the conventional ISP render and the learned lightweight ISP render side by side,
with latency, a zoomed crop, and a download of the result.

``build_demo(ckpt=None, weights=None, arch=None)`` returns at once. The model: ``weights`` (the
paper's released ``.pth``, e.g. ``RMFA_TINY_unpaired_step_48270.pth``), else ``ckpt``, else the newest
``runs/isp`` checkpoint, else the smoke profile trained first. The page says which one and how it
was trained; a smoke model's output is labelled as not meaningful.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from pretrainlab.core.demo import (
    MAX_UPLOAD_MB,
    describe_checkpoint,
    resolve_checkpoint,
    run_button,
    validate_upload,
)

DOMAIN = "isp"
UPLOAD_SUFFIXES = (".png", ".npy", ".dng", ".cr2", ".nef", ".arw", ".raf", ".orf", ".rw2")
SAMPLES = ("0.dng", "0.png", "0.npy", "1.dng")
_lock = threading.Lock()
_CACHE: dict[str, Any] = {}


def train_smoke() -> Path:
    """Train the smoke profile (seconds on a CPU) into ``runs/isp/demo-smoke``."""
    import shutil

    from pretrainlab.core.data import runs_root
    from pretrainlab.isp import api

    cfg = api.load("efficientisp_unpaired", "smoke", ["train.progress=false"])
    run = runs_root() / DOMAIN / "demo-smoke"
    if run.exists():
        shutil.rmtree(run)
    api.pretrain(cfg, api.synthetic_data("smoke"), run)
    return run


def get_model(ckpt: str | Path | None = None, weights: str | Path | None = None,
              arch: str | None = None) -> tuple[Any, Any, str]:
    """``(renderer, conventional renderer, description)``, resolved once per argument set."""
    from pretrainlab.isp import api

    key = f"{ckpt}|{weights}|{arch}"
    with _lock:
        if key not in _CACHE:
            conv = api.load_renderer(conventional=True)
            if weights:
                r = api.load_renderer(weights=Path(weights), arch=arch)
                text = (f"imported reference weights: the paper's released {r.label.split('released ')[-1]}, trained by "
                        f"the authors ({Path(weights).parent.name or 'release'}); reference preprocessing '{r.norm}'")
            else:
                folder, msg = resolve_checkpoint(DOMAIN, ckpt, train_smoke)
                r = api.load_renderer(ckpt=folder)
                text = f"{msg}. {describe_checkpoint(folder)}"
            _CACHE[key] = (r, conv, text)
        return _CACHE[key]


def sample_path(name: str) -> Path:
    """A generated RAW frame of the smoke synthetic set (generated on first use)."""
    from pretrainlab.core.data import DataError
    from pretrainlab.isp import api

    if name not in SAMPLES:
        raise DataError(name, f"unknown sample; choose one of {', '.join(SAMPLES)}")
    return api.synthetic_data("smoke") / "samples" / name


def zoom_crop(a: np.ndarray, b: np.ndarray, frac: float = 0.25, scale: int = 4) -> np.ndarray:
    """Centre crops of two ``(H, W, 3)`` uint8 images, enlarged ``scale`` x (nearest), side by side."""
    h, w = a.shape[:2]
    ch, cw = max(4, int(h * frac)), max(4, int(w * frac))
    y, x = (h - ch) // 2, (w - cw) // 2
    crops = [np.repeat(np.repeat(im[y:y + ch, x:x + cw], scale, 0), scale, 1) for im in (a, b)]
    sep = np.full((crops[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([crops[0], sep, crops[1]], axis=1)


def render_file(path: str | Path, ckpt: str | Path | None = None, weights: str | Path | None = None,
                arch: str | None = None, shown_name: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, str]:
    """RAW file -> (conventional render, learned render, zoomed crops, info text, PNG path of the learned render)."""
    from PIL import Image

    from pretrainlab.isp import api

    p = Path(path)
    learned_r, conv_r, text = get_model(ckpt, weights, arch)
    t0 = time.perf_counter()
    a, frame = api.render_file(p, conv_r)
    t1 = time.perf_counter()
    b, _ = api.render_file(p, learned_r)
    t2 = time.perf_counter()
    name = shown_name or p.name
    out = Path(tempfile.mkdtemp(prefix="isp-render-")) / f"{Path(name).stem}_learned.png"
    buf = io.BytesIO()
    Image.fromarray(b).save(buf, format="PNG")
    out.write_bytes(buf.getvalue())
    h, w = b.shape[:2]
    n_params = sum(x.numel() for x in learned_r.gen.parameters())
    info = (f"{name}: {w}x{h} RGB from a {frame.pattern} mosaic. Conventional ISP {1000 * (t1 - t0):.0f} ms; "
            f"learned ISP ({n_params} params) {1000 * (t2 - t1):.0f} ms on CPU. Model: {text}")
    return a, b, zoom_crop(a, b), info, str(out)


def predict_upload(file: Any, ckpt: str | Path | None = None, weights: str | Path | None = None,
                   arch: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, str]:
    path = file if file is None or isinstance(file, (str, Path)) else getattr(file, "name", file)  # str / Path / gr file
    p = validate_upload(path, UPLOAD_SUFFIXES, MAX_UPLOAD_MB, what="RAW file (.png mosaic, .npy, .dng)")
    return render_file(p, ckpt, weights, arch, getattr(file, "orig_name", None))


def predict_sample(name: str, ckpt: str | Path | None = None, weights: str | Path | None = None,
                   arch: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, str]:
    return render_file(sample_path(name), ckpt, weights, arch)


def build_demo(ckpt: str | Path | None = None, weights: str | Path | None = None, arch: str | None = None) -> gr.Blocks:
    model_line = (f"Model: the paper's released weights `{Path(weights).name}`." if weights else
                  f"Model: checkpoint `{ckpt}`." if ckpt else
                  "Model: the newest checkpoint in `runs/isp`, or a smoke model trained on first use (not meaningful).")
    with gr.Blocks(title="pretrainlab · learned lightweight ISP") as demo:
        gr.Markdown("## Learned lightweight smartphone ISP (RAW → RGB)\n"
                    "Upload a RAW file — a 16-bit Bayer mosaic PNG, an NTIRE packed `.npy` (H×W×4, R G G B) or a "
                    f"`.dng` — (max {MAX_UPLOAD_MB} MB) or pick a generated one. Left: the conventional ISP of the "
                    "paper's reference code (Menon 2007 demosaic, fixed white balance, stretch, gamma); right: the "
                    f"learned generator. {model_line} The result line says how the model was trained.")
        with gr.Row():
            upload = gr.File(label="RAW file", file_types=list(UPLOAD_SUFFIXES), elem_id="isp-upload")
            with gr.Column():
                sample = gr.Dropdown(list(SAMPLES), value=SAMPLES[0], label="or a generated RAW frame")
                b_sample = gr.Button("Render sample", elem_id="isp-render-sample")
        b_upload = gr.Button("Render upload", variant="primary", elem_id="isp-render-upload")
        info = gr.Textbox(label="result (and which model rendered it)", elem_id="isp-info", interactive=False)
        with gr.Row():
            conv = gr.Image(label="conventional ISP", type="numpy")
            learned = gr.Image(label="learned ISP", type="numpy")
        crop = gr.Image(label="zoomed centre crop (conventional | learned)", type="numpy")
        download = gr.File(label="download the learned render (PNG)")
        outs = [conv, learned, crop, info, download]
        run_button(b_upload, lambda f: predict_upload(f, ckpt, weights, arch), upload, outs, api_name="isp_render")
        run_button(b_sample, lambda n: predict_sample(n, ckpt, weights, arch), sample, outs,
                   api_name="isp_render_sample")
    return demo


def load_test_calls(sample_dir: Path) -> list[tuple[str, list[Any], Callable[[Any], bool]]]:
    """What the hub load test (benchmarks/hub_load.py) sends: (endpoint, inputs, check of the result).
    Inputs are the smoke synthetic RAW frames (.dng, .png mosaic, .npy) copied into ``sample_dir`` under
    distinct names, and one generated sample by name; each check wants a valid answer whose result line
    starts with this call's own file name (``<name>: WxH RGB ...``) and whose PNG is named after it."""
    from gradio_client import handle_file

    def ok(out: Any, name: str) -> bool:
        return (isinstance(out, (list, tuple)) and len(out) == 5 and str(out[3]).startswith(f"{name}: ")
                and " mosaic. Conventional ISP " in str(out[3])
                and Path(str(out[4])).name == f"{Path(name).stem}_learned.png")

    calls: list[tuple[str, list[Any], Callable[[Any], bool]]] = []
    for src in ("0.dng", "0.png", "0.npy"):
        dst = Path(sample_dir) / f"isp-upload{src.replace('.', '-')}{Path(src).suffix}"  # isp-upload0-dng.dng
        dst.write_bytes(sample_path(src).read_bytes())
        calls.append(("isp_render", [handle_file(str(dst))], lambda out, n=dst.name: ok(out, n)))
    calls.append(("isp_render_sample", ["1.dng"], lambda out: ok(out, "1.dng")))
    return calls


if __name__ == "__main__":
    from pretrainlab.core.demo import launch

    launch(build_demo())
