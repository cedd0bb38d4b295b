"""PETALface demo: verify two faces (similarity, quality weight a of each, decision) and identify a
probe against a gallery (top-5 identities as a grid).

``build_demo(ckpt=None)`` returns at once; the model is resolved on the first prediction (the given
checkpoint, else the newest face checkpoint in runs/, else the smoke profile is trained first and
the page says so).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from pretrainlab.core.data import DataError
from pretrainlab.core.demo import MAX_UPLOAD_MB, resolve_checkpoint, run_button, validate_upload

IMAGE_TYPES = [".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"]
_LOCK = threading.Lock()
_CACHE: dict[str, Any] = {}


def train_smoke() -> Path:
    """Pre-train + PETALface fine-tune at the smoke profile on the synthetic smoke data; the run folder."""
    from pretrainlab.core.domain import default_run_dir
    from pretrainlab.face.api import finetune, load, pretrain, synthetic_data

    data = synthetic_data("smoke")
    pre = default_run_dir("face", "demo-pretrain")  # fresh, time-stamped folders
    _, res = pretrain(load("pretrain", "smoke", ["train.progress=false"]), data, pre)
    run = default_run_dir("face", "demo-petalface")
    finetune(load("petalface", "smoke", ["train.progress=false", f"init={res.checkpoint}"]), data, run)
    return run


def get_model(ckpt: str | Path | None = None) -> tuple[Any, Any, Path, str]:
    """(task, cfg, checkpoint, message: which checkpoint and how it was trained) — cached per argument.

    ``ckpt`` may also be the reference's released ``model.pt`` (PETALface checkpoints need
    ``quality.*`` settings for their IQA scorer: set ``$PRETRAINLAB_FACE_OVERRIDES``, e.g.
    ``"quality.scorer=cnniqa quality.weights=/w/cnniqa.pth quality.threshold=0.5"``).
    """
    import os

    from pretrainlab.face.api import load_model

    key = str(ckpt or "")
    with _LOCK:
        if key not in _CACHE:
            if ckpt is not None and Path(ckpt).suffix.lower() in (".pt", ".pth"):
                folder, msg = Path(ckpt), "given checkpoint"
            else:
                folder, msg = resolve_checkpoint("face", ckpt, train_smoke)
            overrides = os.environ.get("PRETRAINLAB_FACE_OVERRIDES", "").split()
            task, cfg, folder, how = load_model(folder, overrides=overrides)
            _CACHE[key] = (task, cfg, folder, f"model: {folder} ({msg}); trained as: {how}")
        return _CACHE[key]


def verify_pair(img1: str | None, img2: str | None, ckpt: str | Path | None = None) -> tuple[str, list[tuple[str, str]]]:
    """Markdown verdict + the two images captioned with their quality weight a."""
    from pretrainlab.face.api import compare_faces

    p1 = validate_upload(img1, IMAGE_TYPES, what="first face image")
    p2 = validate_upload(img2, IMAGE_TYPES, what="second face image")
    task, cfg, folder, msg = get_model(ckpt)
    r = compare_faces(task, cfg, folder, p1, p2)
    verdict = "SAME PERSON" if r["same_person"] else "DIFFERENT PEOPLE"
    md = (f"### {verdict}\n\nfaces: `{p1.name}` and `{p2.name}`; cosine similarity **{r['similarity']:.3f}** (threshold {r['threshold']:.3f}: "
          f"{r['threshold_source']})\n\nquality weight {_a_caption(r['quality_a'][0])} / {_a_caption(r['quality_a'][1])} "
          f"(a = 0.5 + score - threshold; high a routes to the high-quality adapter)\n\n{msg}")
    if r["notes"]:
        md += "\n\nnotes: " + "; ".join(r["notes"])
    return md, [(str(p1), _a_caption(r["quality_a"][0])), (str(p2), _a_caption(r["quality_a"][1]))]


def _a_caption(a: float | None) -> str:
    return "a: not used by this model" if a is None else f"a = {a:.2f}"


def identify_probe(gallery: str | None, use_generated: bool, probe: str | None,
                   ckpt: str | Path | None = None) -> tuple[str, list[tuple[str, str]]]:
    """Markdown summary + the top-5 gallery identities as (image, caption) for a grid."""
    from pretrainlab.face.api import identify, read_gallery

    p = validate_upload(probe, IMAGE_TYPES, what="probe face image")
    task, cfg, _folder, msg = get_model(ckpt)
    if gallery:
        gpath = validate_upload(gallery, [".zip"], what="gallery zip")
    elif use_generated:
        from pretrainlab.face.api import synthetic_data

        gpath = synthetic_data(cfg.data.profile) / "verify"  # the data the model was built for
    else:
        raise DataError("(gallery)", "upload a gallery zip of identity folders or tick 'use the generated gallery'")
    if gallery:
        g = read_gallery(task, cfg, gpath)
    else:  # the generated gallery is embedded once per model, not on every request (300 images)
        key = ("generated", id(task), str(gpath))
        with _LOCK:
            if key not in _CACHE:
                _CACHE[key] = read_gallery(task, cfg, gpath)
            g = _CACHE[key]
    r = identify(task, cfg, g, p, k=5)
    md = (f"### top-{len(r['top'])} of {len(g.folder.classes)} identities ({len(g.folder.paths)} images)\n\n"
          f"probe `{p.name}`, quality weight {_a_caption(r['quality_a'])}\n\n"
          + "\n".join(f"{i + 1}. {t['identity']} ({t['similarity']:.3f})" for i, t in enumerate(r["top"]))
          + f"\n\n{msg}")
    return md, [(t["image"], f"{i + 1}. {t['identity']} ({t['similarity']:.2f})") for i, t in enumerate(r["top"])]


def build_demo(ckpt: str | Path | None = None) -> gr.Blocks:
    with gr.Blocks(title="PETALface") as demo:
        gr.Markdown("## PETALface: low-resolution face recognition with quality-weighted twin LoRA\n"
                    f"Uploads: images ({', '.join(IMAGE_TYPES)}) or a gallery .zip, up to {MAX_UPLOAD_MB} MB. "
                    "The first prediction loads the model (or trains the smoke profile if there is none).")
        with gr.Tab("Verify two faces"):
            with gr.Row():
                f1 = gr.File(label="face 1", file_types=IMAGE_TYPES, type="filepath", elem_id="face1")
                f2 = gr.File(label="face 2", file_types=IMAGE_TYPES, type="filepath", elem_id="face2")
            vbtn = gr.Button("Compare", variant="primary")
            vout = gr.Markdown(elem_id="verify-out")
            vgal = gr.Gallery(label="faces and their quality weight", columns=2, height=300, object_fit="contain")
            run_button(vbtn, lambda a, b: verify_pair(a, b, ckpt), [f1, f2], [vout, vgal], api_name="face_verify")
        with gr.Tab("Identify a probe"):
            with gr.Row():
                gz = gr.File(label="gallery (.zip of <identity>/<image>)", file_types=[".zip"], type="filepath")
                use_gen = gr.Checkbox(value=True, label="use the generated gallery when no zip is given")
                pf = gr.File(label="probe face", file_types=IMAGE_TYPES, type="filepath")
            ibtn = gr.Button("Identify", variant="primary")
            iout = gr.Markdown(elem_id="identify-out")
            igal = gr.Gallery(label="top-5 identities", columns=5, height=240, object_fit="contain")
            run_button(ibtn, lambda g, u, p: identify_probe(g, u, p, ckpt), [gz, use_gen, pf], [iout, igal],
                       api_name="face_identify")
    return demo


def load_test_calls(sample_dir: Path) -> list[tuple[str, list[Any], Callable[[Any], bool]]]:
    """What the hub load test (benchmarks/hub_load.py) sends: (endpoint, inputs, check of the result).
    Inputs are smoke synthetic faces copied into ``sample_dir`` under distinct names; each check wants a
    valid answer that names this call's own files (the status text echoes the uploaded names)."""
    from gradio_client import handle_file

    from pretrainlab.face.api import synthetic_data

    people = synthetic_data("smoke") / "verify"

    def face(person: str, k: int, name: str) -> Path:
        src = people / person / f"{person}_{k:04d}.png"
        dst = Path(sample_dir) / name
        dst.write_bytes(src.read_bytes())
        return dst

    def verify_ok(out: Any, a: str, b: str) -> bool:
        return (isinstance(out, (list, tuple)) and len(out) == 2 and "cosine similarity" in str(out[0])
                and f"`{a}` and `{b}`" in str(out[0]) and isinstance(out[1], list) and len(out[1]) == 2)

    def identify_ok(out: Any, probe: str) -> bool:
        return (isinstance(out, (list, tuple)) and len(out) == 2 and "### top-5 of " in str(out[0])
                and f"probe `{probe}`" in str(out[0]) and isinstance(out[1], list) and len(out[1]) == 5)

    calls: list[tuple[str, list[Any], Callable[[Any], bool]]] = []
    for i, (pa, pb) in enumerate([("Person_0001", "Person_0001"), ("Person_0002", "Person_0003")]):
        a, b = face(pa, 1, f"face-verify{i}-a.png"), face(pb, 2, f"face-verify{i}-b.png")
        calls.append(("face_verify", [handle_file(str(a)), handle_file(str(b))],
                      lambda out, a=a.name, b=b.name: verify_ok(out, a, b)))
    for i, person in enumerate(("Person_0002", "Person_0004")):
        p = face(person, 3, f"face-probe{i}.png")  # against the generated gallery (no zip upload)
        calls.append(("face_identify", [None, True, handle_file(str(p))], lambda out, p=p.name: identify_ok(out, p)))
    return calls


if __name__ == "__main__":
    from pretrainlab.core.demo import launch

    launch(build_demo())
