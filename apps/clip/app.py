"""Gradio demo of the CLIP domain (CLIP-rocket, Fini et al. 2023).

Tab "Zero-shot": upload an image, type labels -> zero-shot probabilities as a bar chart, with the
CLIP-rocket head mixture ``w * linear + (1 - w) * MLP`` as a slider.
Tab "Search": type a query -> the top matches from a gallery (the generated retrieval benchmark,
or an uploaded .zip of images) as a grid.

The model is resolved lazily on the first prediction: ``--ckpt`` if given, else the newest
``runs/clip`` checkpoint, else the smoke profile is trained first (the page says which).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from pretrainlab.core.data import DataError
from pretrainlab.core.demo import MAX_UPLOAD_MB, guarded, resolve_checkpoint, validate_upload

IMAGE_TYPES = [".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"]
DEFAULT_LABELS = "red circle, blue square, green star, yellow triangle, purple ring, orange diamond, cyan cross"
MAX_ZIP_IMAGES = 2000

_STATE: dict[str, Any] = {"task": None, "message": "", "ckpt": None, "gallery": None}


# ------------------------------------------------------------------ model
def _train_smoke() -> Path:
    from pretrainlab.clip.pipeline import load, pretrain
    from pretrainlab.core.cli import default_run_dir

    run = default_run_dir("clip", "demo-smoke-rocket")
    pretrain(load("rocket", "smoke", ["train.progress=false"]), None, run)
    return run


def get_task(ckpt: str | Path | None = None) -> tuple[Any, str]:
    """The cached Task and the message saying where it came from."""
    if _STATE["task"] is None or (ckpt is not None and str(ckpt) != str(_STATE["ckpt"])):
        from pretrainlab.clip.pipeline import load_task

        folder, msg = resolve_checkpoint("clip", ckpt, _train_smoke)
        _STATE.update(task=load_task(folder), message=msg, ckpt=ckpt, gallery=None)
    return _STATE["task"], _STATE["message"]


# ------------------------------------------------------------------ pure functions
def parse_labels(text: str) -> list[str]:
    labels = [x.strip() for x in (text or "").replace("\n", ",").split(",") if x.strip()]
    if len(labels) < 2:
        raise DataError("labels", "type at least two comma-separated labels")
    if len(labels) > 100:
        raise DataError("labels", f"{len(labels)} labels: at most 100")
    return labels


def read_image(path: str | Path, size: int) -> np.ndarray:
    """Validated upload -> ``(size, size, 3)`` uint8 (odd modes converted)."""
    from pretrainlab.clip.formats import decode_image

    p = validate_upload(path, IMAGE_TYPES, what="image")
    return decode_image(p.read_bytes(), p.name, size)


def zero_shot(task: Any, image: np.ndarray, labels: list[str], w: float = 1.0) -> dict[str, float]:
    """Probabilities per label for one ``(S, S, 3)`` image (prompt 'a photo of a {}.')."""
    from pretrainlab.clip.zeroshot import zero_shot_predict

    probs = zero_shot_predict(task, image[None], labels, ("a photo of a {}.",), w)[0]
    return {lab: float(p) for lab, p in zip(labels, probs.tolist())}


def bar_chart(probs: dict[str, float]) -> np.ndarray:
    """Horizontal bar chart of the probabilities as an RGB array."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(probs.items(), key=lambda t: t[1])
    fig, ax = plt.subplots(figsize=(5, 0.35 * len(items) + 1))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#4C72B0")
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def read_zip_gallery(path: str | Path, size: int) -> tuple[np.ndarray, list[str]]:
    """A .zip of images -> ``(N, size, size, 3)`` uint8 and names; unreadable members are skipped."""
    from pretrainlab.clip.formats import IMAGE_EXTS, decode_image

    p = validate_upload(path, [".zip"], what="zip of images")
    try:
        zf = zipfile.ZipFile(p)
    except zipfile.BadZipFile as e:
        raise DataError(p.name, "not a readable zip file") from e
    imgs, names = [], []
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir() and Path(m.filename).suffix.lower() in IMAGE_EXTS]
        for m in members[:MAX_ZIP_IMAGES]:
            try:
                imgs.append(decode_image(zf.read(m), m.filename, size))
                names.append(m.filename)
            except (DataError, OSError, zipfile.BadZipFile):
                continue
    if not imgs:
        raise DataError(p.name, "no readable images in the zip")
    return np.stack(imgs), names


def default_gallery(task: Any) -> tuple[np.ndarray, list[str]]:
    """The generated retrieval benchmark of the checkpoint's data profile (cached)."""
    if _STATE.get("gallery") is None:
        from pretrainlab.clip.dataset import load_retrieval
        from pretrainlab.clip.pipeline import synthetic_data

        ret = load_retrieval(synthetic_data(task.cfg.data.profile) / "retrieval", task.image_size)
        _STATE["gallery"] = (ret["images"], ret["captions"])
    return _STATE["gallery"]


def search(task: Any, query: str, images: np.ndarray, names: list[str], k: int = 8) -> list[tuple[np.ndarray, str]]:
    """Top-``k`` gallery images for a text query: ``[(image, "score  name"), ...]``."""
    import torch.nn.functional as F

    from pretrainlab.clip.zeroshot import embed_images, embed_texts

    q = (query or "").strip()
    if not q:
        raise DataError("query", "type a text query")
    gi = F.normalize(embed_images(task, images)["z"], dim=-1)
    qt = F.normalize(embed_texts(task, [q])["z"], dim=-1)
    sims = (gi @ qt.t())[:, 0]
    top = sims.argsort(descending=True)[:k].tolist()
    return [(_upscale(images[i]), f"{float(sims[i]):.3f}  {names[i]}") for i in top]


def _upscale(img: np.ndarray, size: int = 128) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.NEAREST))


# ------------------------------------------------------------------ UI
def build_demo(ckpt: str | Path | None = None) -> gr.Blocks:
    """The demo page (returns immediately; the model is loaded on the first prediction)."""

    @guarded
    def classify(file: Any, labels_text: str, w: float) -> tuple[str, np.ndarray, np.ndarray]:
        labels = parse_labels(labels_text)
        task, msg = get_task(ckpt)
        img = read_image(file if isinstance(file, (str, Path)) or file is None else file.name, task.image_size)
        probs = zero_shot(task, img, labels, float(w) if task.uses_aug_pairs else 1.0)
        best = max(probs, key=probs.get)
        head = f"w = {w:g}" if task.uses_aug_pairs else "linear head"
        return (f"**top: {best}** ({probs[best]:.1%}); {head}\n\n{msg}", _upscale(img, 192), bar_chart(probs))

    @guarded
    def find(query: str, zfile: Any, k: float) -> tuple[str, list[tuple[np.ndarray, str]]]:
        task, msg = get_task(ckpt)
        if zfile:
            images, names = read_zip_gallery(zfile if isinstance(zfile, (str, Path)) else zfile.name, task.image_size)
            src = f"uploaded zip ({len(names)} images)"
        else:
            images, names = default_gallery(task)
            src = f"generated retrieval benchmark ({len(names)} images)"
        hits = search(task, query, images, names, int(k))
        return f"top {len(hits)} of {src} for **{query}**\n\n{msg}", hits

    with gr.Blocks(title="pretrainlab · CLIP-rocket") as demo:
        gr.Markdown("## CLIP-rocket: zero-shot classification and text-to-image search\n"
                    "Models pre-trained with `pretrainlab clip pretrain` (CLIP, SLIP, BarLIP, BYOLIP, SwALIP, "
                    f"CLIP-rocket). Uploads up to {MAX_UPLOAD_MB} MB.")
        with gr.Tab("Zero-shot"):
            with gr.Row():
                with gr.Column():
                    up = gr.File(label="image", file_types=IMAGE_TYPES, type="filepath", elem_id="clip-image")
                    labels = gr.Textbox(label="labels (comma-separated)", value=DEFAULT_LABELS, elem_id="clip-labels")
                    w = gr.Slider(0.0, 1.0, value=0.5, step=0.1, label="head mixture w (linear) vs 1 - w (MLP)")
                    go = gr.Button("Classify", variant="primary", elem_id="clip-classify")
                with gr.Column():
                    status = gr.Markdown(elem_id="clip-status")
                    shown = gr.Image(label="input", type="numpy", interactive=False)
                    chart = gr.Image(label="zero-shot probabilities", type="numpy", interactive=False)
            go.click(classify, [up, labels, w], [status, shown, chart])
        with gr.Tab("Search"):
            with gr.Row():
                with gr.Column():
                    query = gr.Textbox(label="query", value="a big red circle on the left")
                    zup = gr.File(label="gallery .zip (optional; default: generated benchmark)", file_types=[".zip"],
                                  type="filepath", elem_id="clip-zip")
                    k = gr.Slider(1, 24, value=8, step=1, label="matches")
                    go2 = gr.Button("Search", variant="primary", elem_id="clip-search")
                with gr.Column():
                    status2 = gr.Markdown(elem_id="clip-search-status")
                    grid = gr.Gallery(label="top matches", columns=4, height="auto")
            go2.click(find, [query, zup, k], [status2, grid])
    return demo


if __name__ == "__main__":
    import argparse

    from pretrainlab.core.demo import launch

    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--port", type=int, default=7860)
    args = ap.parse_args()
    launch(build_demo(args.ckpt), port=args.port)
