"""TERA speech demo: record or upload audio and look at what the model does with it.

Shows the log-mel input, the altered input (time + frequency + magnitude alteration, TERA Sec. III)
and the model's reconstruction side by side; a phone posteriorgram from the frame-level phone probe
on the frozen representation; the keyword probe's top-3.

``build_demo(ckpt=None)`` returns at once; the model is resolved on the first request: the given
checkpoint, else the newest ``runs/speech`` checkpoint, else the smoke profile is trained first
(seconds) and the page says so. Probes missing next to the checkpoint are trained on the synthetic
corpus of the checkpoint's profile (smoke or tiny; saved next to it) on first use.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch

from pretrainlab.core.demo import guarded, resolve_checkpoint, validate_upload

AUDIO_TYPES = [".wav", ".flac", ".ogg"]
MAX_SECONDS = 30.0
_lock = threading.Lock()
_cache: dict[str, Any] = {}


def train_smoke() -> Path:
    """Train the smoke profile (seconds on a CPU) into ``runs/speech/demo-smoke``."""
    from pretrainlab.core.data import runs_root
    from pretrainlab.speech.domain import load, synthetic_data
    from pretrainlab.speech.tera import pretrain

    cfg = load("tera", "smoke", ["train.progress=false", "train.max_steps=20"])
    run = runs_root() / "speech" / "demo-smoke"
    pretrain(cfg, synthetic_data("smoke"), run)
    return run


def load_model(ckpt: str | Path | None) -> dict[str, Any]:
    """TERA task + phone and keyword probes for a checkpoint argument (cached)."""
    from pretrainlab.speech.domain import load, synthetic_data
    from pretrainlab.speech.downstream import ProbeData, evaluate, load_probe, write_probes
    from pretrainlab.speech.upstream import load_upstream

    key = str(ckpt or "")
    with _lock:
        if key in _cache:
            return _cache[key]
        folder, message = resolve_checkpoint("speech", ckpt, train_smoke)
        task, cfg, folder = load_upstream(folder)
        need = [t for t in ("phone_linear", "keyword") if not (folder / "probes" / f"{t}.safetensors").exists()]
        if need:
            prof = cfg.data_profile if cfg.data_profile in ("smoke", "tiny") else "smoke"
            probe_cfg = load("tera", prof, ["probe.epochs=20"]).probe
            pdata = ProbeData.build(synthetic_data(prof), cfg.features, cfg.subset)
            metrics, probes = evaluate(task.encoder, pdata, probe_cfg, tasks=tuple(need))
            write_probes(folder, probes, pdata, metrics)
            message += f"; trained the {' and '.join(need)} probes on the {prof} synthetic corpus first"
        phone, phones = load_probe(folder / "probes" / "phone_linear.safetensors")
        kw, keywords = load_probe(folder / "probes" / "keyword.safetensors")
        entry = {"task": task, "cfg": cfg, "phone": phone, "phones": phones, "kw": kw, "keywords": keywords,
                 "message": message}
        _cache[key] = entry
        return entry


def _figure_to_array(fig: Any) -> np.ndarray:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    buf.seek(0)
    from PIL import Image

    return np.asarray(Image.open(buf).convert("RGB"))


def spectrogram_panels(clean: np.ndarray, altered: np.ndarray, recon: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Three ``(T, D)`` feature maps side by side (altered positions outlined) -> RGB image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2), sharey=True)
    vmin, vmax = np.percentile(clean, 1), np.percentile(clean, 99)
    for ax, img, title in zip(axes, (clean, altered, recon), ("log-mel input (CMVN)", "altered input",
                                                               "reconstruction")):
        ax.imshow(img.T, origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("frame (10 ms)")
    axes[1].contour(mask.T.astype(float), levels=[0.5], colors="cyan", linewidths=0.6)
    axes[0].set_ylabel("mel bin")
    fig.tight_layout()
    return _figure_to_array(fig)


def posteriorgram_image(post: np.ndarray, names: list[str], top: int = 20) -> np.ndarray:
    """``(T, C)`` phone posteriors -> RGB image of the ``top`` most likely phones over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keep = np.argsort(-post.max(0))[: min(top, post.shape[1])]
    keep = keep[np.argsort([names[i] for i in keep])]
    fig, ax = plt.subplots(figsize=(13, 3.6))
    ax.imshow(post[:, keep].T, origin="lower", aspect="auto", cmap="Blues", vmin=0, vmax=max(float(post.max()), 1e-3))
    ax.set_yticks(range(len(keep)))
    ax.set_yticklabels([names[i] for i in keep], fontsize=7)
    ax.set_xlabel("frame (10 ms)")
    ax.set_title("phone posteriorgram (linear probe on the frozen TERA layers)", fontsize=10)
    fig.tight_layout()
    return _figure_to_array(fig)


def analyse(path: str | Path | None, ckpt: str | Path | None = None, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray, dict[str, float], str]:
    """Audio file -> (spectrogram panels, posteriorgram, keyword top-3 {word: prob}, status text)."""
    from pretrainlab.core.data import DataError
    from pretrainlab.speech.audio import load_audio
    from pretrainlab.speech.features import extract

    p = validate_upload(path, AUDIO_TYPES, what="audio file (wav / flac / ogg)")
    m = load_model(ckpt)
    task, cfg = m["task"], m["cfg"]
    try:
        audio = load_audio(p, cfg.features.sample_rate)
    except DataError as e:  # name the file as the user knows it, not gradio's temporary path
        raise DataError(p.name, e.problem) from e
    if audio.seconds > MAX_SECONDS:
        raise DataError(p.name, f"audio is {audio.seconds:.0f} s long; the demo takes at most {MAX_SECONDS:.0f} s")
    feat = extract(audio.wave, cfg.features)[: cfg.model.max_frames]
    x, lengths = feat[None], torch.tensor([feat.shape[0]])
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        recon, altered = task.reconstruct(x, lengths, g)
        states = torch.stack(task.encoder(x, lengths)["hidden_states"], 1)  # (1, K, T, H)
        post = torch.softmax(m["phone"](states[0].transpose(0, 1)), -1).numpy()  # (T, C)
        kw = torch.softmax(m["kw"](states, lengths), -1)[0]
    top = torch.topk(kw, min(3, kw.numel()))
    keywords = {m["keywords"][int(i)]: float(v) for v, i in zip(top.values, top.indices)}
    panels = spectrogram_panels(feat.numpy(), altered.inputs[0].numpy(), recon[0].numpy(), altered.mask[0].numpy())
    notes = "; ".join(audio.notes) if audio.notes else "mono, 16 kHz"
    l1 = float((recon[0] - feat).abs()[altered.mask[0]].mean()) if altered.mask.any() else float("nan")
    status = (f"{m['message']}\n\n{p.name}: {audio.seconds:.2f} s, {feat.shape[0]} frames ({notes}); "
              f"L1 on the altered positions {l1:.3f}; magnitude noise {'on' if bool(altered.noised) else 'off'}")
    return panels, posteriorgram_image(post, m["phones"]), keywords, status


def build_demo(ckpt: str | Path | None = None) -> gr.Blocks:
    """The Gradio page (returns at once; the model loads on the first request)."""
    with gr.Blocks(title="TERA speech pre-training") as demo:
        gr.Markdown("## TERA: alteration, reconstruction and probes\nRecord or upload speech (wav / flac / ogg, "
                    f"up to {MAX_SECONDS:.0f} s). The first request loads the newest checkpoint or trains the "
                    "smoke profile (a few seconds).")
        with gr.Row():
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="audio", elem_id="speech-audio")
            with gr.Column():
                seed = gr.Number(value=0, precision=0, label="alteration seed")
                run = gr.Button("Analyse", variant="primary")
        status = gr.Markdown(elem_id="speech-status")
        panels = gr.Image(label="log-mel | altered | reconstruction", type="numpy")
        post = gr.Image(label="phone posteriorgram", type="numpy")
        kw = gr.Label(num_top_classes=3, label="keyword top-3")

        def _run(path: str | None, s: float) -> tuple[Any, ...]:
            a, b, c, d = analyse(path, ckpt, int(s or 0))
            return a, b, c, d

        run.click(guarded(_run), [audio, seed], [panels, post, kw, status])
    return demo


if __name__ == "__main__":
    from pretrainlab.core.demo import launch

    launch(build_demo())
