"""Gradio demo of pretrainlab.isp: upload a RAW file (mosaic PNG, packed .npy, .dng) or pick a
generated one; see the conventional ISP render and the learned lightweight ISP render side by side,
with latency, a zoomed crop, and a download of the result."""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from pretrainlab.core.demo import MAX_UPLOAD_MB, guarded, resolve_checkpoint, validate_upload

DOMAIN = "isp"
UPLOAD_SUFFIXES = (".png", ".npy", ".dng", ".cr2", ".nef", ".arw", ".raf", ".orf", ".rw2")
SAMPLES = ("0.dng", "0.png", "0.npy", "1.dng")
_CACHE: dict[str, Any] = {}


def _train_smoke() -> Path:
    from pretrainlab.core.data import runs_root
    from pretrainlab.isp.domain import load, synthetic_data
    from pretrainlab.isp.unpaired_training import pretrain

    cfg = load("efficientisp_unpaired", "smoke", ["train.progress=false"])
    run = runs_root() / DOMAIN / f"demo-smoke-{time.strftime('%Y%m%d-%H%M%S')}"
    pretrain(cfg, synthetic_data("smoke"), run)
    return run


def get_model(ckpt: str | Path | None = None) -> tuple[Any, Any, str]:
    """``(generator, config, message)``, resolved once (newest checkpoint, or the smoke profile trained now)."""
    key = str(ckpt or "")
    if key not in _CACHE:
        from pretrainlab.isp.unpaired_training import load_generator

        folder, msg = resolve_checkpoint(DOMAIN, ckpt, _train_smoke)
        gen, cfg, _ = load_generator(folder)
        _CACHE[key] = (gen, cfg, msg)
    return _CACHE[key]


def sample_path(name: str) -> Path:
    """A generated RAW frame of the smoke synthetic set (generated on first use)."""
    from pretrainlab.isp.domain import synthetic_data

    if name not in SAMPLES:
        raise ValueError(f"unknown sample '{name}'")
    return synthetic_data("smoke") / "samples" / name


def zoom_crop(a: np.ndarray, b: np.ndarray, frac: float = 0.25, scale: int = 4) -> np.ndarray:
    """Centre crops of two ``(H, W, 3)`` uint8 images, enlarged ``scale`` x (nearest), side by side."""
    h, w = a.shape[:2]
    ch, cw = max(4, int(h * frac)), max(4, int(w * frac))
    y, x = (h - ch) // 2, (w - cw) // 2
    crops = [np.repeat(np.repeat(im[y:y + ch, x:x + cw], scale, 0), scale, 1) for im in (a, b)]
    sep = np.full((crops[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([crops[0], sep, crops[1]], axis=1)


def render_file(path: str | Path, ckpt: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, str]:
    """RAW file -> (conventional render, learned render, zoomed crops, info text, PNG path of the learned render)."""
    import torch
    from PIL import Image

    from pretrainlab.isp.formats import load_raw
    from pretrainlab.isp.render import render_tensor, to_uint8

    p = Path(path)
    packed, pattern = load_raw(p)
    gen, cfg, msg = get_model(ckpt)
    t0 = time.perf_counter()
    conv = render_tensor(packed, None, pattern, cfg.conventional)
    t1 = time.perf_counter()
    with torch.inference_mode():
        learned = render_tensor(packed, gen, pattern)
    t2 = time.perf_counter()
    a, b = to_uint8(conv), to_uint8(learned)
    out = Path(tempfile.mkdtemp(prefix="isp-render-")) / f"{p.stem}_learned.png"
    buf = io.BytesIO()
    Image.fromarray(b).save(buf, format="PNG")
    out.write_bytes(buf.getvalue())
    h, w = b.shape[:2]
    info = (f"{p.name}: {w}x{h} RGB from a {pattern} mosaic. Conventional ISP {1000 * (t1 - t0):.0f} ms; "
            f"{cfg.model.generator} ({sum(x.numel() for x in gen.parameters())} params) {1000 * (t2 - t1):.0f} ms "
            f"on CPU. {msg}")
    return a, b, zoom_crop(a, b), info, str(out)


def predict_upload(file: Any, ckpt: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, str]:
    path = getattr(file, "name", file)
    p = validate_upload(path, UPLOAD_SUFFIXES, MAX_UPLOAD_MB, what="RAW file (.png mosaic, .npy, .dng)")
    return render_file(p, ckpt)


def predict_sample(name: str, ckpt: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, str]:
    return render_file(sample_path(name), ckpt)


def build_demo(ckpt: str | Path | None = None) -> gr.Blocks:
    with gr.Blocks(title="pretrainlab · learned lightweight ISP") as demo:
        gr.Markdown("## Learned lightweight smartphone ISP (RAW → RGB)\n"
                    "Upload a RAW file — a 16-bit Bayer mosaic PNG, a packed `.npy` (H×W×4) or a `.dng` — "
                    f"(max {MAX_UPLOAD_MB} MB) or pick a generated one. Left: conventional ISP "
                    "(Menon 2007 demosaic, white balance, stretch, gamma); right: the learned generator.")
        with gr.Row():
            upload = gr.File(label="RAW file", file_types=list(UPLOAD_SUFFIXES), elem_id="isp-upload")
            with gr.Column():
                sample = gr.Dropdown(list(SAMPLES), value=SAMPLES[0], label="or a generated RAW frame")
                b_sample = gr.Button("Render sample", elem_id="isp-render-sample")
        b_upload = gr.Button("Render upload", variant="primary", elem_id="isp-render-upload")
        info = gr.Textbox(label="result", elem_id="isp-info", interactive=False)
        with gr.Row():
            conv = gr.Image(label="conventional ISP", type="numpy")
            learned = gr.Image(label="learned ISP", type="numpy")
        crop = gr.Image(label="zoomed centre crop (conventional | learned)", type="numpy")
        download = gr.File(label="download the learned render (PNG)")
        outs = [conv, learned, crop, info, download]
        b_upload.click(guarded(lambda f: predict_upload(f, ckpt)), inputs=upload, outputs=outs)
        b_sample.click(guarded(lambda n: predict_sample(n, ckpt)), inputs=sample, outputs=outs)
    return demo


if __name__ == "__main__":
    from pretrainlab.core.demo import launch

    launch(build_demo())
