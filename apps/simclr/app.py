"""Demo of the built-in SimCLR recipe: upload an image, see its nearest neighbours in the learned
embedding space (pictures) and the k-NN class vote.

``build_demo(ckpt=None)`` returns at once; the encoder is resolved on the first query: the given
checkpoint, else the newest ``runs/simclr`` checkpoint, else the smoke profile is trained first
(a few seconds) and the page says so.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch

from pretrainlab.core.demo import guarded, resolve_checkpoint, validate_upload

IMAGE_TYPES = [".png", ".jpg", ".jpeg", ".bmp"]
_lock = threading.Lock()
_cache: dict[str, Any] = {}


def train_smoke() -> Path:
    """Train the smoke profile (seconds on a CPU) into ``runs/simclr/demo-smoke``."""
    from pretrainlab.core.builtin.domain import load, synthetic_data
    from pretrainlab.core.builtin.simclr import pretrain
    from pretrainlab.core.data import runs_root

    cfg = load(None, "smoke", ["train.progress=false"])
    run = runs_root() / "simclr" / "demo-smoke"
    pretrain(cfg, synthetic_data("smoke"), run)
    return run


def load_model(ckpt: str | Path | None) -> dict[str, Any]:
    """Encoder + embedding bank of the shapes test split (cached per checkpoint argument)."""
    from pretrainlab.core.builtin.domain import load_encoder, synthetic_data
    from pretrainlab.core.builtin.shapes import ImageFolder
    from pretrainlab.core.builtin.simclr import embed

    key = str(ckpt)
    with _lock:
        if key not in _cache:
            folder, message = resolve_checkpoint("simclr", ckpt, train_smoke)
            encoder = load_encoder(folder)
            bank = ImageFolder(synthetic_data("smoke") / "test")
            feats = torch.nn.functional.normalize(embed(encoder, bank.images), dim=-1)
            _cache[key] = {"encoder": encoder, "bank": bank, "feats": feats, "message": message}
        return _cache[key]


def neighbours(image: torch.Tensor, model: dict[str, Any], k: int = 8) -> tuple[dict[str, float], list[tuple[np.ndarray, str]]]:
    """``image`` (3,H,W) in [0,1] -> (class vote of the k nearest, [(picture, caption)] of the neighbours)."""
    from pretrainlab.core.builtin.simclr import embed

    q = torch.nn.functional.normalize(embed(model["encoder"], image[None]), dim=-1)[0]
    sims = model["feats"] @ q
    top = sims.topk(min(k, len(sims)))
    bank = model["bank"]
    votes: dict[str, float] = {c: 0.0 for c in bank.classes}
    gallery = []
    for s, i in zip(top.values.tolist(), top.indices.tolist()):
        c = bank.classes[int(bank.labels[i])]
        votes[c] += 1.0 / len(top.indices)
        pic = (bank.images[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        gallery.append((pic, f"{c} (cos {s:.2f})"))
    return votes, gallery


def predict(path: str | None, ckpt: str | Path | None = None) -> tuple[dict[str, float], list[tuple[np.ndarray, str]], str]:
    from pretrainlab.core.builtin.shapes import load_image

    p = validate_upload(path, IMAGE_TYPES, what="image")
    image = load_image(p)
    model = load_model(ckpt)
    votes, gallery = neighbours(image, model)
    return votes, gallery, model["message"]


def build_demo(ckpt: str | Path | None = None) -> gr.Blocks:
    with gr.Blocks(title="pretrainlab · SimCLR") as demo:
        gr.Markdown("### SimCLR (built-in recipe)\nUpload a picture of a shape; the encoder pre-trained with "
                    "SimCLR on generated shapes finds its nearest neighbours.")
        with gr.Row():
            inp = gr.File(label="image (.png / .jpg)", file_types=IMAGE_TYPES, type="filepath", elem_id="simclr-image")
            with gr.Column():
                label = gr.Label(label="k-NN vote", num_top_classes=3)
                status = gr.Markdown(elem_id="simclr-status")
        gallery = gr.Gallery(label="nearest neighbours", columns=8, height=160)
        btn = gr.Button("Find neighbours", variant="primary")
        btn.click(guarded(lambda f: predict(f, ckpt)), inputs=inp, outputs=[label, gallery, status])
    return demo


if __name__ == "__main__":
    from pretrainlab.core.demo import launch

    launch(build_demo())
