"""Demo of the built-in SimCLR recipe: upload an image, see its nearest neighbours in the learned
embedding space (pictures) and the k-NN class vote.

``build_demo(ckpt=None)`` returns at once; the encoder is resolved on the first query: the given
checkpoint, else the newest ``runs/simclr`` checkpoint, else the smoke profile is trained first
(a few seconds) and the page says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch

from pretrainlab.core.demo import describe_checkpoint, resolve_checkpoint, run_button, validate_upload

IMAGE_TYPES = [".png", ".jpg", ".jpeg", ".bmp"]
_lock = threading.Lock()
_cache: dict[str, Any] = {}


def train_smoke() -> Path:
    """Train the smoke profile (seconds on a CPU) into ``runs/simclr/demo-smoke``."""
    from pretrainlab.core.builtin import api
    from pretrainlab.core.data import runs_root

    cfg = api.load(None, "smoke", ["train.progress=false"])
    run = runs_root() / "simclr" / "demo-smoke"
    if run.exists():
        import shutil

        shutil.rmtree(run)
    api.pretrain(cfg, api.synthetic_data("smoke"), run)
    return run


def load_model(ckpt: str | Path | None) -> dict[str, Any]:
    """Encoder + embedding bank of the shapes test split (cached per checkpoint argument)."""
    from pretrainlab.core.builtin import api

    key = str(ckpt)
    with _lock:
        if key not in _cache:
            folder, message = resolve_checkpoint("simclr", ckpt, train_smoke)
            task, cfg = api.load_task(folder)
            bank = api.image_folder(api.synthetic_data("smoke") / "test", size=cfg.data.image_size)
            feats, labels = api.embed(task.encoder, bank)
            feats = torch.nn.functional.normalize(feats, dim=-1)
            _cache[key] = {"encoder": task.encoder, "bank": bank, "feats": feats, "labels": labels,
                           "message": f"{message}. {describe_checkpoint(folder)}", "size": cfg.data.image_size}
        return _cache[key]


def neighbours(image: torch.Tensor, model: dict[str, Any], k: int = 8) -> tuple[dict[str, float], list[tuple[np.ndarray, str]]]:
    """``image`` (3,H,W) in [0,1] -> (class vote of the k nearest, [(picture, caption)] of the neighbours)."""
    with torch.inference_mode():
        q = torch.nn.functional.normalize(model["encoder"].eval()(image[None]), dim=-1)[0]
    sims = model["feats"] @ q
    top = sims.topk(min(k, len(sims)))
    bank = model["bank"]
    votes: dict[str, float] = {c: 0.0 for c in bank.classes}
    gallery = []
    for s, i in zip(top.values.tolist(), top.indices.tolist()):
        c = bank.classes[int(model["labels"][i])]
        votes[c] += 1.0 / len(top.indices)
        pic = (bank[i]["image"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        gallery.append((pic, f"{c} (cos {s:.2f})"))
    return votes, gallery


def predict(path: str | None, ckpt: str | Path | None = None) -> tuple[dict[str, float], list[tuple[np.ndarray, str]], str]:
    from pretrainlab.core.builtin import api

    p = validate_upload(path, IMAGE_TYPES, what="image")
    model = load_model(ckpt)
    image = api.read_image(p, model["size"])
    votes, gallery = neighbours(image, model)
    return votes, gallery, f"query: `{p.name}` — {model['message']}"


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
        run_button(btn, lambda f: predict(f, ckpt), inp, [label, gallery, status], api_name="simclr_neighbours")
    return demo


def load_test_calls(sample_dir: Path) -> list[tuple[str, list[Any], Callable[[Any], bool]]]:
    """What the hub load test (benchmarks/hub_load.py) sends: (endpoint, inputs, check of the result).
    ``sample_dir`` is a scratch folder for input files; each call must get its own answer back."""
    from gradio_client import handle_file

    from pretrainlab.core.builtin import api

    calls = []
    for c in ("circle", "square", "triangle"):
        src = next((api.synthetic_data("smoke") / "test" / c).glob("*.png"))
        f = Path(sample_dir) / f"simclr-{c}.png"  # a distinct name per input: the answer must echo it
        f.write_bytes(src.read_bytes())
        calls.append(("simclr_neighbours", [handle_file(str(f))],
                      lambda out, name=f.name: isinstance(out, (list, tuple)) and len(out) == 3 and bool(out[0])
                      and name in str(out[2])))
    return calls


if __name__ == "__main__":
    from pretrainlab.core.demo import launch

    launch(build_demo())
