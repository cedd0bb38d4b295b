"""TERA speech demo: record or upload audio and look at what the model does with it.

Shows the log-mel input, the altered input (time + frequency + magnitude alteration, TERA Sec. III)
and the model's reconstruction side by side; a phone posteriorgram from the frame-level phone probe
on the frozen representation; the keyword probe's top-3 (SUPERB's 12 classes).

``build_demo(ckpt=None)`` returns at once; the model is resolved on the first request: the given
checkpoint (a TERA run, an s3prl ``states-*.ckpt``, or a probe run from ``finetune``), else the newest
TERA / probe checkpoint under ``runs/speech``, else the smoke profile is trained first (seconds).
Probes missing for an upstream are trained on the synthetic corpus of its profile (``finetune``, saved
beside the run). The page says which checkpoint it shows, how it was trained (a smoke model is
flagged as not meaningful; s3prl weights as imported), and how the probes scored.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch

from pretrainlab.core.data import DataError
from pretrainlab.core.demo import describe_checkpoint, run_button, validate_upload
from pretrainlab.speech import api

AUDIO_TYPES = [".wav", ".flac", ".ogg"]
MAX_SECONDS = 30.0
DEMO_TASKS = ("phone_linear", "keyword")
PANEL_TITLES = ("log-mel input (CMVN)", "altered input", "reconstruction")
_lock = threading.Lock()
_cache: dict[str, Any] = {}


def train_smoke() -> Path:
    """Train the smoke profile (seconds on a CPU) into ``runs/speech/demo-smoke``."""
    import shutil

    from pretrainlab.core.data import runs_root

    cfg = api.load("tera", "smoke", ["train.progress=false", "train.max_steps=20"])
    run = runs_root() / "speech" / "demo-smoke"
    if run.exists():
        shutil.rmtree(run)
    api.pretrain(cfg, api.synthetic_data("smoke"), run)
    return run


def _task_of(folder: Path) -> str:
    try:
        return str(json.loads((folder / "meta.json").read_text()).get("task", ""))
    except (OSError, json.JSONDecodeError):
        return ""


def newest(root: Path | None = None) -> Path | None:
    """The newest TERA or probe checkpoint under ``runs/speech`` (probe runs' trainer states are skipped)."""
    from pretrainlab.core.data import runs_root

    base = (root or runs_root()) / "speech"
    cands = [p.parent for p in base.rglob("model.safetensors") if p.parent.name.startswith("step_")] \
        if base.exists() else []
    cands = [c for c in cands if _task_of(c) in ("TeraTask", api.PROBES_TASK)]
    return max(cands, key=lambda c: (c / "model.safetensors").stat().st_mtime) if cands else None


def resolve(ckpt: str | Path | None) -> tuple[str, Path | None, str]:
    """(upstream checkpoint, probe checkpoint or None, how it was found)."""
    from pretrainlab.core.checkpoint import CheckpointError, find_checkpoint

    if ckpt and api.is_s3prl_file(Path(ckpt)):
        return str(ckpt), None, f"checkpoint: {ckpt}"
    if ckpt:
        folder, how = find_checkpoint(Path(ckpt)), f"checkpoint: {ckpt}"
    else:
        found = newest()
        folder, how = (found, f"checkpoint: newest in runs/ ({found})") if found is not None else \
            (find_checkpoint(train_smoke()), "no checkpoint found: trained the smoke profile first")
    if _task_of(folder) == api.PROBES_TASK:
        init = api.load_probes(folder).init
        if not init:
            raise CheckpointError(f"{folder}: probes of the log-mel baseline have no TERA upstream to show")
        return init, folder, how
    if _task_of(folder) != "TeraTask":
        raise CheckpointError(f"{folder}: not a TERA or probe checkpoint")
    return str(folder), None, how


def probes_for(upstream: Any, up_ckpt: str) -> Path:
    """The phone / keyword probes of an upstream: trained once (finetune) on the synthetic corpus of its
    profile, in ``<run>/demo-probes`` (``runs/speech/demo-probes-<name>`` for an s3prl file)."""
    from pretrainlab.core.data import runs_root

    if upstream.folder is not None:
        f = upstream.folder
        run = f.parent.parent if f.parent.name == "checkpoints" else f
        out = run / "demo-probes"
    else:
        out = runs_root() / "speech" / f"demo-probes-{Path(up_ckpt).stem}"
    if api.is_probe_checkpoint(out):
        return out
    prof = upstream.cfg.data.profile if upstream.cfg.data.profile in ("smoke", "tiny") else "smoke"
    cfg = api.load("tera", prof, ["train.progress=false", f"probe.tasks=[{','.join(DEMO_TASKS)}]"])
    if out.exists():
        import shutil

        shutil.rmtree(out)
    api.finetune(cfg, api.synthetic_data(prof), out, init=Path(up_ckpt))
    return out


def load_model(ckpt: str | Path | None) -> dict[str, Any]:
    """TERA upstream + phone and keyword probes for a checkpoint argument (cached)."""
    key = str(ckpt or "")
    with _lock:
        if key in _cache:
            return _cache[key]
        up_ckpt, probe_folder, how = resolve(ckpt)
        up = api.load_upstream(up_ckpt)
        trained_now = False
        if probe_folder is None or not all(t in api.load_probes(probe_folder).probes for t in DEMO_TASKS):
            probe_folder = probes_for(up, up_ckpt)
            trained_now = True
        probes = api.load_probes(probe_folder)
        if any(t not in probes.probes for t in DEMO_TASKS):
            raise DataError(probe_folder, f"holds no {' / '.join(DEMO_TASKS)} probes; run `pretrainlab speech finetune`")
        upstream_line = describe_checkpoint(up.folder) if up.folder is not None else \
            f"imported reference weights (s3prl checkpoint {up_ckpt})"
        acc = ", ".join(f"{t} test acc {probes.metrics.get(f'{t}_acc', float('nan')):.2f}" for t in DEMO_TASKS)
        probe_line = (f"probes {'trained just now' if trained_now else 'from'} {probes.folder} on the "
                      f"{probes.cfg.data.profile} synthetic corpus ({probes.cfg.probe.max_steps} steps; {acc})")
        if probes.cfg.data.profile == "smoke":
            probe_line += " — smoke probes: their outputs are NOT meaningful"
        entry = {"up": up, "probes": probes, "message": f"{how}. Upstream: {upstream_line}. {probe_line}."}
        _cache[key] = entry
        return entry


def _figure_to_array(fig: Any) -> np.ndarray:
    import matplotlib.pyplot as plt
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def panels_figure(clean: np.ndarray, altered: np.ndarray, recon: np.ndarray, mask: np.ndarray) -> Any:
    """The matplotlib figure of three ``(T, D)`` feature maps side by side (altered positions outlined)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), sharey=True, constrained_layout=True)
    vmin, vmax = np.percentile(clean, 1), np.percentile(clean, 99)
    for ax, img, title in zip(axes, (clean, altered, recon), PANEL_TITLES):
        ax.imshow(img.T, origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("frame (10 ms)")
    if mask.any():
        axes[1].contour(mask.T.astype(float), levels=[0.5], colors="cyan", linewidths=0.6)
    axes[0].set_ylabel("feature bin")
    return fig


def spectrogram_panels(clean: np.ndarray, altered: np.ndarray, recon: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Three ``(T, D)`` feature maps side by side (altered positions outlined) -> RGB image."""
    return _figure_to_array(panels_figure(clean, altered, recon, mask))


def posteriorgram_image(post: np.ndarray, names: list[str], top: int = 20) -> np.ndarray:
    """``(T, C)`` phone posteriors -> RGB image of the ``top`` most likely phones over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keep = np.argsort(-post.max(0))[: min(top, post.shape[1])]
    keep = keep[np.argsort([names[i] for i in keep])]
    fig, ax = plt.subplots(figsize=(13, 3.6), constrained_layout=True)
    ax.imshow(post[:, keep].T, origin="lower", aspect="auto", cmap="Blues", vmin=0, vmax=max(float(post.max()), 1e-3))
    ax.set_yticks(range(len(keep)))
    ax.set_yticklabels([names[i] for i in keep], fontsize=7)
    ax.set_xlabel("frame (10 ms)")
    ax.set_title("phone posteriorgram (linear probe on the frozen TERA layers)", fontsize=10)
    return _figure_to_array(fig)


def analyse(path: str | Path | None, ckpt: str | Path | None = None, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray, dict[str, float], str]:
    """Audio file -> (spectrogram panels, posteriorgram, keyword top-3 {word: prob}, status text)."""
    p = validate_upload(path, AUDIO_TYPES, what="audio file (wav / flac / ogg)")
    m = load_model(ckpt)
    up, probes = m["up"], m["probes"]
    task, cfg = up.task, up.cfg
    try:
        audio = api.read_audio(p, max_seconds=MAX_SECONDS)
    except DataError as e:  # name the file as the user knows it, not gradio's temporary path
        raise DataError(p.name, e.problem) from e
    feat = api.features(audio.wave, cfg)
    lengths = torch.tensor([feat.shape[0]])
    x = feat[None]
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        recon, altered = task.reconstruct(x, lengths, g)
        states = torch.stack(task.encoder(x, lengths)["hidden_states"], 1)  # (1, K, T, H)
        n = max(1, round(len(audio.wave) / cfg.features.hop))  # the frames a downstream sees (Featurizer.tolist)
        states, seen = states[:, :, :n], torch.tensor([min(n, feat.shape[0])])
        post = torch.softmax(probes.probes["phone_linear"](states, seen), -1)[0].numpy()  # (T, C)
        kw = torch.softmax(probes.probes["keyword"](states, seen), -1)[0]
    top = torch.topk(kw, min(3, kw.numel()))
    classes = probes.classes["keyword"]
    keywords = {classes[int(i)]: float(v) for v, i in zip(top.values, top.indices)}
    same_dims = recon.shape[-1] == feat.shape[-1]  # Mockingjay reconstructs a linear spectrogram: not drawn
    panels = spectrogram_panels(feat.numpy(), altered.inputs[0].numpy(),
                                recon[0].numpy() if same_dims else np.zeros_like(feat.numpy()), altered.mask[0].numpy())
    notes = "; ".join(audio.notes) if audio.notes else "mono, 16 kHz"
    l1 = float((recon[0] - feat).abs()[altered.mask[0]].mean()) if altered.mask.any() and same_dims else float("nan")
    status = (f"{m['message']}\n\n{p.name}: {audio.seconds:.2f} s, {feat.shape[0]} frames ({notes}); "
              f"L1 on the altered positions {l1:.3f}; magnitude noise {'on' if bool(altered.noised) else 'off'}")
    return panels, posteriorgram_image(post, probes.classes["phone_linear"]), keywords, status


def build_demo(ckpt: str | Path | None = None) -> gr.Blocks:
    """The Gradio page (returns at once; the model loads on the first request)."""
    with gr.Blocks(title="TERA speech pre-training") as demo:
        gr.Markdown("## TERA: alteration, reconstruction and probes\nRecord or upload speech (wav / flac / ogg, "
                    f"up to {MAX_SECONDS:.0f} s). The first request loads the newest checkpoint (or trains the "
                    "smoke profile, a few seconds) and its phone / keyword probes; the status line says which "
                    "checkpoint and how it was trained.")
        with gr.Row():
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="audio", elem_id="speech-audio")
            with gr.Column():
                seed = gr.Number(value=0, precision=0, label="alteration seed")
                run = gr.Button("Analyse", variant="primary")
        status = gr.Markdown(elem_id="speech-status")
        # no label badge: Gradio draws it over the picture's top-left corner, where the first title is
        panels = gr.Image(label="log-mel | altered | reconstruction", show_label=False, type="numpy",
                          elem_id="speech-panels")
        post = gr.Image(label="phone posteriorgram", show_label=False, type="numpy", elem_id="speech-posteriorgram")
        kw = gr.Label(num_top_classes=3, label="keyword top-3 (SUPERB's 12 classes)")

        def _run(path: str | None, s: float) -> tuple[Any, ...]:
            return analyse(path, ckpt, int(s or 0))

        run_button(run, _run, [audio, seed], [panels, post, kw, status], api_name="speech_analyse")
    return demo


def load_test_calls(sample_dir: Path) -> list[tuple[str, list[Any], Callable[[Any], bool]]]:
    """What the hub load test (benchmarks/hub_load.py) sends: (endpoint, inputs, check of the result).
    Inputs are smoke synthetic keyword clips copied into ``sample_dir`` under distinct names; each check
    wants a valid answer whose status names this call's own file (``<name>: 1.00 s, N frames ...``)."""
    from gradio_client import handle_file

    clips = api.synthetic_data("smoke") / "speech_commands"

    def ok(out: Any, name: str) -> bool:
        return (isinstance(out, (list, tuple)) and len(out) == 4 and f"\n\n{name}: " in str(out[3])
                and " frames (" in str(out[3]) and "L1 on the altered positions" in str(out[3]))

    calls: list[tuple[str, list[Any], Callable[[Any], bool]]] = []
    for i, word in enumerate(("yes", "no", "stop")):
        dst = Path(sample_dir) / f"speech-{word}{i}.wav"
        dst.write_bytes(next(iter(sorted((clips / word).glob("*.wav")))).read_bytes())
        calls.append(("speech_analyse", [handle_file(str(dst)), i], lambda out, n=dst.name: ok(out, n)))
    return calls


if __name__ == "__main__":
    from pretrainlab.core.demo import launch

    launch(build_demo())
