"""A pre-trained TERA upstream from a checkpoint, and the ``embed`` / ``export`` verbs' writers.

``load_upstream(ckpt)`` takes a pretrainlab run / checkpoint folder (``meta.json`` holds the config)
or an s3prl ``states-*.ckpt`` file (:mod:`pretrainlab.speech.s3prl_format`) and returns the
:class:`TeraTask` in eval mode with a line saying what it is and how it was trained.
``embed_wave`` is s3prl's upstream forward for one utterance: features as s3prl computes them, the
encoder in eval mode, inputs longer than ``model.max_frames`` cut into equal chunks.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from pretrainlab.core.checkpoint import CheckpointError
from pretrainlab.core.config import ConfigError
from pretrainlab.speech.config import TeraConfig
from pretrainlab.speech.tera import TeraTask

PROFILE_NOTE = {"smoke": "smoke profile: a few steps, effectively untrained; outputs are not meaningful",
                "tiny": "tiny profile: a small model pre-trained for minutes on synthetic speech",
                "full": "full profile: the paper's recipe"}


@dataclasses.dataclass
class Upstream:
    """A loaded upstream: the task (encoder + head), its config, where it came from."""

    task: TeraTask
    cfg: TeraConfig
    folder: Path | None  # the pretrainlab checkpoint folder; None for an imported s3prl file
    source: str  # one line for people: which checkpoint, how it was trained
    step: int | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    imported: bool = False


def load_upstream(ckpt: str | Path, device: str | torch.device = "cpu") -> Upstream:
    """The upstream of a pretrainlab run / checkpoint folder or of an s3prl TERA / Mockingjay ``.ckpt`` file."""
    from pretrainlab.core.checkpoint import find_checkpoint, load_weights, read_meta
    from pretrainlab.core.config import from_dict
    from pretrainlab.speech.s3prl_format import is_s3prl_file, load_task

    path = Path(ckpt)
    if is_s3prl_file(path):
        task, ck = load_task(path)
        m = ck.config.model
        src = (f"{path} (imported s3prl checkpoint{f', step {ck.step}' if ck.step is not None else ''}; "
               f"{m.layers} layers x {m.hidden}, {ck.config.features.kind} features)")
        return Upstream(task.to(device), ck.config, None, src, ck.step, ck.notes, imported=True)
    if path.is_file() and path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: not a checkpoint (a pretrainlab run folder or an s3prl .ckpt file expected)")
    folder = find_checkpoint(path)
    meta = read_meta(folder)
    if meta.get("task") != "TeraTask":
        what = "a probe checkpoint (from finetune)" if meta.get("task") == "SpeechProbes" else \
            f"a '{meta.get('task', '?')}' checkpoint"
        hint = f"; its upstream is {meta['init']}" if meta.get("init") else ""
        raise CheckpointError(f"{folder}: {what}, not a speech (TERA) checkpoint{hint}")
    try:
        cfg = from_dict(TeraConfig, meta["config"])
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(f"{folder / 'meta.json'}: not a speech (TERA) checkpoint ({e})") from None
    task = TeraTask(cfg)
    load_weights(task, folder / "model.safetensors")
    step = meta.get("step")
    src = (f"{folder} (pretrainlab, recipe '{cfg.description or 'tera'}', step {step}; "
           f"{PROFILE_NOTE.get(cfg.data.profile, cfg.data.profile)})")
    return Upstream(task.eval().to(device), cfg, folder, src, step)


@torch.no_grad()
def hidden_states_of(task: TeraTask, wave: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """``(N,)`` waveform -> ``(K, T, H)``: the input representation and every layer (s3prl ``hidden_states``)."""
    from pretrainlab.speech.features import extract

    feat = extract(wave, task.cfg.features).to(device)[None]
    hs = task.encoder.eval()(feat)["hidden_states"]
    return torch.stack(hs)[:, 0]


def layer_index(layer: int, k: int) -> int:
    """``--layer`` (``-1`` last, ``0`` the input representation, ``1..L``) -> an index into ``K`` states."""
    if not -k <= layer < k:
        raise ConfigError(f"--layer: {layer} is out of range; the model has {k} hidden states "
                          f"(0 = input representation, 1..{k - 1} = layers, -1 = last)")
    return layer % k


def output_names(files: list[Path], base: Path) -> list[Path]:
    """``<relative path>.npy`` per input; inputs whose stems collide in one folder (``a.wav``, ``a.flac``)
    keep their extension (``a.wav.npy``, ``a.flac.npy``) so that no output overwrites another."""
    rel = [f.relative_to(base) for f in files]
    stems: dict[Path, int] = {}
    for r in rel:
        stems[r.with_suffix("")] = stems.get(r.with_suffix(""), 0) + 1
    return [r.with_name(r.name + ".npy") if stems[r.with_suffix("")] > 1 else r.with_suffix(".npy") for r in rel]


def embed_files(ckpt: Path, inputs: Path, out: Path, layer: int = -1, all_layers: bool = False,
                device: str = "cpu") -> list[Path]:
    """Write ``out/<relative path>.npy`` (float32 ``(T, H)`` of one layer, or ``(K, T, H)``) for every audio
    file of ``inputs``. Outputs are staged in a temporary folder and moved in only when every file
    succeeded: a bad file leaves ``out`` as it was."""
    from tqdm.auto import tqdm

    from pretrainlab.speech.audio import load_audio
    from pretrainlab.speech.formats import find_audio

    files = find_audio(inputs)
    up = load_upstream(ckpt, device)
    k = up.cfg.model.layers + 1
    idx = None if all_layers else layer_index(layer, k)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} is a file, expected a folder")
    base = inputs if inputs.is_dir() else inputs.parent
    names = output_names(files, base)
    print(f"upstream: {up.source}")
    for n in up.notes:
        print(f"note: {n}")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.embed-", dir=out.parent))
    frames = 0
    try:
        for f, name in zip(tqdm(files, desc="embed", unit="file"), names):
            audio = load_audio(f, up.cfg.features.sample_rate)
            for n in audio.notes:
                print(f"{f}: {n}")
            hs = hidden_states_of(up.task, audio.wave, device)
            arr = (hs if idx is None else hs[idx]).float().cpu().numpy()
            frames += arr.shape[-2]
            dst = stage / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            np.save(buf, arr.astype(np.float32))
            dst.write_bytes(buf.getvalue())
        written = []
        for name in names:
            final = out / name
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / name, final)
            written.append(final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    what = "all layers (K, T, H)" if idx is None else f"hidden state {idx} of {k - 1} layers"
    print(f"embedded {len(files)} files ({frames} frames at {up.cfg.features.hop_ms:g} ms, {what}) into {out}")
    return written


def export_s3prl(ckpt: Path, out: Path) -> Path:
    """Write a pretrainlab TERA checkpoint in s3prl's ``states-*.ckpt`` layout."""
    from pretrainlab.speech.s3prl_format import write_s3prl

    up = load_upstream(ckpt)
    if up.imported:
        raise CheckpointError(f"{ckpt}: already an s3prl checkpoint")
    if out.exists() and out.is_dir():
        raise ConfigError(f"--out: {out} is a folder; give the file to write (e.g. {out / 'states.ckpt'})")
    path = write_s3prl(up.task, up.cfg, int(up.step or 0), out)
    print(f"exported {up.source} -> {path} (s3prl layout: Transformer, SpecHead, Upstream_Config, Config, Step, Args)")
    return path
