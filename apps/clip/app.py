"""Gradio demo of the CLIP domain (CLIP-rocket, Fini et al. 2023).

Tab "Zero-shot": upload an image, type labels -> zero-shot probabilities as a bar chart, with the
CLIP-rocket head mixture ``w * linear + (1 - w) * MLP`` as a slider.
Tab "Search": type a query -> the top matches from a gallery (the generated retrieval benchmark,
or an uploaded .zip of images) as a grid.

The model is resolved lazily on the first prediction: ``--ckpt`` if given (a run folder, a
checkpoint, or a run's ``open_clip_model.safetensors``), else the newest ``runs/clip`` checkpoint,
else the smoke profile is trained first. Every answer says which model it came from and how it was
trained (profile, steps, data; imported weights), and flags an untrained (smoke) model.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from pretrainlab.core.data import DataError
from pretrainlab.core.demo import MAX_UPLOAD_MB, resolve_checkpoint, run_button, validate_upload

IMAGE_TYPES = [".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"]
DEFAULT_LABELS = "red circle, blue square, green star, yellow triangle, purple ring, orange diamond, cyan cross"
MAX_ZIP_IMAGES = 2000
MAX_ZIP_MEMBER_MB = 50  # an image member declaring more (uncompressed) is skipped: a zip bomb guard

_STATE: dict[str, Any] = {"task": None, "message": "", "ckpt": None, "gallery": None}


# ------------------------------------------------------------------ model
def _train_smoke() -> Path:
    from pretrainlab.clip import api
    from pretrainlab.core.domain import default_run_dir

    run = default_run_dir("clip", "demo-smoke-rocket")
    api.pretrain(api.load("rocket", "smoke", ["train.progress=false"]), None, run)
    return run


def get_task(ckpt: str | Path | None = None) -> tuple[Any, str]:
    """The cached Task and the message saying which model it is and how it was trained."""
    if _STATE["task"] is None or (ckpt is not None and str(ckpt) != str(_STATE["ckpt"])):
        from pretrainlab.clip import api
        from pretrainlab.core.demo import describe_checkpoint

        p = Path(ckpt) if ckpt else None
        if p is not None and p.is_file() and p.name != "model.safetensors":
            task = api.open_task(p)
            msg = f"{api.training_note(task)} (weights file given with --ckpt)"
        else:
            folder, how = resolve_checkpoint("clip", ckpt, _train_smoke)
            task = api.open_task(folder)
            prov = getattr(task, "provenance", {}) or {}
            data = "the generated synthetic set" if prov.get("synthetic", True) else str(prov.get("data"))
            msg = f"{how.split(':')[0]}: {task.cfg.method.objective} objective, {describe_checkpoint(folder)}, on {data}"
        _STATE.update(task=task, message=msg, ckpt=ckpt, gallery=None)
    return _STATE["task"], _STATE["message"]


def is_untrained(task: Any) -> bool:
    prov = getattr(task, "provenance", None) or {}
    step = prov.get("step")
    return prov.get("profile") == "smoke" or (isinstance(step, int) and step < 50)


# ------------------------------------------------------------------ pure functions
def parse_labels(text: str) -> list[str]:
    labels = [x.strip() for x in (text or "").replace("\n", ",").split(",") if x.strip()]
    if len(labels) < 2:
        raise DataError("labels", "type at least two comma-separated labels")
    if len(labels) > 100:
        raise DataError("labels", f"{len(labels)} labels: at most 100")
    if len(set(labels)) != len(labels):
        raise DataError("labels", "a label is given twice")
    return labels


def read_image(path: str | Path) -> Image.Image:
    """Validated upload -> RGB PIL image (size checked before decoding; odd modes converted). Errors
    name the uploaded file, not Gradio's temporary path."""
    from pretrainlab.clip import api

    p = validate_upload(path, IMAGE_TYPES, what="image")
    return api.read_image(p, name=p.name)


def zero_shot(task: Any, image: Image.Image, labels: list[str], w: float = 1.0) -> dict[str, float]:
    """Probabilities per label for one image (prompt 'a photo of a {}.'), after the model's own
    evaluation preprocessing (resize of the shorter side, center crop)."""
    from pretrainlab.clip import api

    probs = api.zero_shot(task, [image], labels, ("a photo of a {}.",), w)[0]
    return {lab: float(p) for lab, p in zip(labels, probs.tolist())}


def bar_chart(probs: dict[str, float], title: str = "") -> np.ndarray:
    """Horizontal bar chart of the probabilities as an RGB array."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(probs.items(), key=lambda t: t[1])
    fig, ax = plt.subplots(figsize=(5, 0.35 * len(items) + 1.2))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#4C72B0")
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def read_zip_gallery(path: str | Path) -> tuple[list[Image.Image], list[str], int]:
    """A .zip of images -> images, names, and how many image members were skipped (unreadable,
    too large, over the count limit)."""
    from pretrainlab.clip import api

    p = validate_upload(path, [".zip"], what="zip of images")
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(p.name, f"not a readable zip file ({e})") from None
    imgs, names, skipped = [], [], 0
    with zf:
        members = [m for m in zf.infolist()
                   if not m.is_dir() and Path(m.filename).suffix.lower() in api.image_extensions()]
        skipped += max(0, len(members) - MAX_ZIP_IMAGES)
        for m in members[:MAX_ZIP_IMAGES]:
            if m.file_size > MAX_ZIP_MEMBER_MB * 2**20:
                skipped += 1
                continue
            try:
                imgs.append(api.decode_image(zf.read(m), f"{p.name}:{m.filename}"))
                names.append(m.filename)
            except (DataError, OSError, zipfile.BadZipFile, RuntimeError, EOFError):
                skipped += 1
    if not imgs:
        raise DataError(p.name, f"no readable images in the zip ({skipped} skipped)")
    return imgs, names, skipped


def default_gallery(task: Any) -> tuple[list[Image.Image], list[str]]:
    """The generated retrieval benchmark of the checkpoint's data profile (cached)."""
    if _STATE.get("gallery") is None:
        from pretrainlab.clip import api

        _STATE["gallery"] = api.retrieval_gallery(task.cfg.data.profile)
    return _STATE["gallery"]


def search(task: Any, query: str, images: list[Image.Image], names: list[str], k: int = 8) -> list[tuple[np.ndarray, str]]:
    """Top-``k`` gallery images for a text query: ``[(image, "score  name"), ...]``."""
    from pretrainlab.clip import api

    q = (query or "").strip()
    if not q:
        raise DataError("query", "type a text query")
    sims = (api.image_embeddings(task, images) @ api.text_embeddings(task, [q]).t())[:, 0]
    top = sims.argsort(descending=True)[:k].tolist()
    return [(_thumb(images[i]), f"{float(sims[i]):.3f}  {names[i]}") for i in top]


def _thumb(img: Image.Image, size: int = 160) -> np.ndarray:
    im = img.copy()
    im.thumbnail((size, size), Image.BICUBIC if min(img.size) > size else Image.NEAREST)
    if max(im.size) < size:  # tiny synthetic images: enlarge for the page
        scale = size / max(im.size)
        im = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.NEAREST)
    return np.asarray(im.convert("RGB"))


# ------------------------------------------------------------------ endpoints
def classify(file: Any, labels_text: str, w: float, ckpt: str | Path | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    """The Zero-shot tab's endpoint (``clip_classify``): status text, the input thumbnail, the chart."""
    labels = parse_labels(labels_text)
    path = file if isinstance(file, (str, Path)) or file is None else file.name
    img = read_image(path)
    task, msg = get_task(ckpt)
    probs = zero_shot(task, img, labels, float(w) if task.uses_aug_pairs else 1.0)
    best = max(probs, key=probs.get)
    head = f"w = {w:g}" if task.uses_aug_pairs else "linear head"
    warn = is_untrained(task)
    title = "UNTRAINED model: probabilities are meaningless" if warn else ""
    status = (f"`{Path(path).name}` — **top: {best}** ({probs[best]:.1%}); {head}"
              + (" — **untrained model**" if warn else "") + f"\n\nmodel: {msg}")
    return status, _thumb(img, 192), bar_chart(probs, title)


def find(query: str, zfile: Any, k: float, ckpt: str | Path | None = None) -> tuple[str, list[tuple[np.ndarray, str]]]:
    """The Search tab's endpoint (``clip_search``): status text and the (thumbnail, name) grid."""
    task, msg = get_task(ckpt)
    if zfile:
        images, names, skipped = read_zip_gallery(zfile if isinstance(zfile, (str, Path)) else zfile.name)
        src = f"`{Path(str(zfile)).name}` ({len(names)} images{f', {skipped} skipped' if skipped else ''})"
    else:
        images, names = default_gallery(task)
        src = f"generated retrieval benchmark ({len(names)} images)"
    hits = search(task, query, images, names, int(k))
    warn = " — **untrained model: the ranking is meaningless**" if is_untrained(task) else ""
    return f"top {len(hits)} of {src} for **{query}**{warn}\n\nmodel: {msg}", hits


# ------------------------------------------------------------------ UI
def build_demo(ckpt: str | Path | None = None) -> gr.Blocks:
    """The demo page (returns immediately; the model is loaded on the first prediction)."""

    def _classify(file: Any, labels_text: str, w: float) -> tuple[str, np.ndarray, np.ndarray]:
        return classify(file, labels_text, w, ckpt=ckpt)

    def _find(query: str, zfile: Any, k: float) -> tuple[str, list[tuple[np.ndarray, str]]]:
        return find(query, zfile, k, ckpt=ckpt)

    with gr.Blocks(title="pretrainlab · CLIP-rocket") as demo:
        gr.Markdown("## CLIP-rocket: zero-shot classification and text-to-image search\n"
                    "Models pre-trained with `pretrainlab clip pretrain` (CLIP, SLIP, BarLIP, BYOLIP, SwALIP, "
                    "CLIP-rocket) or imported open_clip weights; each answer names the model and how it was "
                    f"trained. Uploads up to {MAX_UPLOAD_MB} MB.")
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
            run_button(go, _classify, [up, labels, w], [status, shown, chart], api_name="clip_classify")
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
            run_button(go2, _find, [query, zup, k], [status2, grid], api_name="clip_search")
    return demo


def load_test_calls(sample_dir: Path) -> list[tuple[str, list[Any], Callable[[Any], bool]]]:
    """What the hub load test (benchmarks/hub_load.py) sends: zero-shot calls on distinct copies of the
    smoke zero-shot images; each answer must name its own upload."""
    from gradio_client import handle_file

    from pretrainlab.clip import api

    calls = []
    src = sorted((api.synthetic_data("smoke") / "zeroshot" / "images").glob("*.jpg"))[:3]
    for i, s in enumerate(src):
        f = Path(sample_dir) / f"clip-sample-{i}.jpg"
        f.write_bytes(s.read_bytes())
        calls.append(("clip_classify", [handle_file(str(f)), "red circle, blue square, green star", 0.5],
                      lambda out, name=f.name: isinstance(out, (list, tuple)) and len(out) == 3 and name in str(out[0])
                      and "top:" in str(out[0])))
    return calls


if __name__ == "__main__":
    import argparse

    from pretrainlab.core.demo import launch

    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--port", type=int, default=7860)
    args = ap.parse_args()
    launch(build_demo(args.ckpt), port=args.port)
