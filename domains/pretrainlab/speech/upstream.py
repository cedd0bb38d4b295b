"""Loading a pre-trained TERA upstream from a checkpoint, and the ``embed`` verb's feature writer.

``load_upstream(ckpt)`` rebuilds the config stored in the checkpoint (``meta.json``) and returns the
:class:`TeraTask` (encoder + prediction head) with its weights; ``embed_files`` writes per-utterance
``(T, H)`` (or ``(K, T, H)`` for every layer) ``.npy`` features at the 10 ms hop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pretrainlab.speech.config import TeraConfig
from pretrainlab.speech.tera import TeraTask


def load_upstream(ckpt: str | Path, device: str | torch.device = "cpu") -> tuple[TeraTask, TeraConfig, Path]:
    """(task in eval mode, its config, the checkpoint folder) from a run / checkpoint folder."""
    from pretrainlab.core.checkpoint import find_checkpoint, load_weights, read_meta
    from pretrainlab.core.config import from_dict

    folder = find_checkpoint(Path(ckpt))
    cfg = from_dict(TeraConfig, read_meta(folder)["config"])
    task = TeraTask(cfg)
    load_weights(task, folder / "model.safetensors")
    return task.eval().to(device), cfg, folder


@torch.no_grad()
def embed_wave(task: TeraTask, wave: np.ndarray, all_layers: bool = False,
               device: str | torch.device = "cpu") -> np.ndarray:
    """``(N,)`` waveform -> ``(T, H)`` last hidden state, or ``(K, T, H)`` with ``all_layers``.

    Utterances longer than ``model.max_frames`` are encoded in consecutive chunks."""
    from pretrainlab.speech.features import extract

    feat = extract(wave, task.cfg.features).to(device)
    m = task.cfg.model.max_frames
    outs = []
    for s in range(0, feat.shape[0], m):
        x = feat[s:s + m][None]
        hs = task.encoder(x, torch.tensor([x.shape[1]], device=device))["hidden_states"]
        outs.append(torch.stack(hs)[:, 0] if all_layers else hs[-1][0])
    out = torch.cat(outs, dim=-2).float().cpu().numpy()
    return out


def embed_files(ckpt: Path, inputs: Path, out: Path, all_layers: bool = False, device: str = "cpu") -> list[Path]:
    """Write ``out/<relative path>.npy`` for every audio file of ``inputs`` (a file or folder)."""
    from tqdm.auto import tqdm

    from pretrainlab.core.io import atomic_write_bytes
    from pretrainlab.speech.audio import load_audio
    from pretrainlab.speech.datasets import find_audio

    task, cfg, _ = load_upstream(ckpt, device)
    files = find_audio(inputs)
    base = inputs if inputs.is_dir() else inputs.parent
    written = []
    frames = 0
    for f in tqdm(files, desc="embed", unit="file"):
        audio = load_audio(f, cfg.features.sample_rate)
        for n in audio.notes:
            print(f"{f}: {n}")
        arr = embed_wave(task, audio.wave, all_layers, device)
        frames += arr.shape[-2]
        dst = out / f.relative_to(base).with_suffix(".npy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        import io

        buf = io.BytesIO()
        np.save(buf, arr.astype(np.float32))
        atomic_write_bytes(dst, buf.getvalue())
        written.append(dst)
    print(f"embedded {len(files)} files ({frames} frames at 10 ms, {'all layers' if all_layers else 'last layer'}) "
          f"into {out}")
    return written
