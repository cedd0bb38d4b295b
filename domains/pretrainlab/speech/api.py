"""The public API of the speech domain (TERA): what the CLI, ``reproduce.py``, ``bench.py`` and the demo use.

- :data:`SPEC`, :func:`load` (recipe + profile + overrides -> :class:`~pretrainlab.speech.config.TeraConfig`),
  :func:`synthetic_data` (the cached eSpeak NG corpus of a profile);
- :func:`pretrain`: TERA pre-training (a row of the paper's ablation) into a run folder;
- :func:`finetune`: s3prl's probe protocol on a frozen upstream (``init``: a pretrainlab run, an s3prl
  ``states-*.ckpt``, or nothing for the log-mel features): one probe per ``probe.tasks`` trained by the
  core Trainer, the best dev state kept; the run folder's checkpoint holds every probe;
- :func:`evaluate`: the test accuracies of a probe checkpoint, or the whole protocol for an upstream;
- :func:`load_upstream` / :func:`load_task`: checkpoints of either kind; :func:`embed` /
  :func:`export` (the s3prl interop verbs).

Heavy imports stay inside the functions (this module is imported by ``pretrainlab --help``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pretrainlab.core.domain import DomainSpec

SPEC = DomainSpec(
    name="speech", title="TERA speech pre-training (time / frequency / magnitude alteration)",
    paper="Liu, Li, Lee 2021, TERA: Self-Supervised Learning of Transformer Encoder Representation for Speech",
    package="pretrainlab.speech", config="pretrainlab.speech.config:TeraConfig", default_recipe="tera",
    generator="pretrainlab.speech.synthetic:generate", recipes=Path(__file__).parent / "recipes",
    data_version="2",  # 2: labels on centred frames; SUPERB's 12-class keyword layout with its own test set
    data_help="the eSpeak NG corpus (LibriSpeech FLAC + transcripts + CPC / HTS alignments + Speech Commands)",
    readers={
        "LibriSpeech (<subset>/<spk>/<chapter>/*.flac + *.trans.txt)": "pretrainlab.speech.formats:librispeech",
        "a folder of wav / flac / ogg": "pretrainlab.speech.formats:find_audio",
        "CPC alignments (converted_aligned_phones.txt)": "pretrainlab.speech.formats:read_cpc_alignments",
        "HTS .lab alignments": "pretrainlab.speech.formats:read_hts_lab",
        "Speech Commands v1 + SUPERB test set": "pretrainlab.speech.formats:speech_commands",
        "s3prl TERA / Mockingjay states-*.ckpt": "pretrainlab.speech.s3prl_format:read_s3prl",
    },
    reproduce_help="TERA's alteration ablation on frozen-feature phone / speaker / keyword probes, paired over seeds",
    examples={
        "pretrain": "pretrainlab speech pretrain --config tera --profile smoke train.lr=1e-3",
        "finetune": "pretrainlab speech finetune --init runs/speech/<run> --profile smoke --out runs/speech/probes",
        "data": "pretrainlab speech data --out data/speech --profile tiny",
    },
)
load = SPEC.load
synthetic_data = SPEC.synthetic_data
PROBES_TASK = "SpeechProbes"  # meta.json "task" of a finetune checkpoint (every probe, best dev state)


def pretrain(cfg: Any, data: Path, run: Path, resume: bool = False, dataset: Any = None) -> Any:
    """TERA pre-training on ``data`` (LibriSpeech ``cfg.data.subsets`` or a folder of audio); returns
    (task, TrainResult). ``dataset``: a prepared :class:`~pretrainlab.speech.tera.PretrainDataset`."""
    from pretrainlab.speech.tera import pretrain as _pretrain

    return _pretrain(cfg, Path(data), Path(run), resume=resume, dataset=dataset)


def load_upstream(ckpt: Path | str, device: str = "cpu") -> Any:
    """A TERA upstream (pretrainlab run / checkpoint folder, or an s3prl ``.ckpt``) -> ``upstream.Upstream``."""
    from pretrainlab.speech.upstream import load_upstream as _load

    return _load(ckpt, device)


def is_s3prl_file(path: Path | str) -> bool:
    """Whether ``path`` is a torch file read as an s3prl checkpoint (``.ckpt`` / ``.pt`` / ``.pth``)."""
    from pretrainlab.speech.s3prl_format import is_s3prl_file as _is

    return _is(Path(path))


def is_probe_checkpoint(ckpt: Path | str | None) -> bool:
    """Whether ``ckpt`` is a finetune run / checkpoint (probes) rather than an upstream."""
    from pretrainlab.core.checkpoint import CheckpointError, find_checkpoint, read_meta

    if ckpt is None or is_s3prl_file(ckpt):
        return False
    try:
        return read_meta(find_checkpoint(Path(ckpt))).get("task") == PROBES_TASK
    except CheckpointError:
        return False


@dataclasses.dataclass
class Probes:
    """A finetune checkpoint: the probes (best dev states), their classes, and the upstream they read."""

    probes: dict[str, Any]
    classes: dict[str, list[str]]
    init: str  # the upstream checkpoint ("" = log-mel features)
    cfg: Any
    metrics: dict[str, Any]
    folder: Path


def load_probes(ckpt: Path | str) -> Probes:
    """Read a finetune checkpoint (``finetune``'s run folder or its ``checkpoints/step_*``)."""
    from pretrainlab.core.checkpoint import CheckpointError, find_checkpoint, load_tensors, read_meta
    from pretrainlab.core.config import ConfigError, from_dict
    from pretrainlab.speech.config import TeraConfig
    from pretrainlab.speech.downstream import probe_from_meta

    folder = find_checkpoint(Path(ckpt))
    meta = read_meta(folder)
    if meta.get("task") != PROBES_TASK:
        raise CheckpointError(f"{folder}: not a probe checkpoint (made by `pretrainlab speech finetune`)")
    try:
        cfg = from_dict(TeraConfig, meta["config"])
        tensors, _ = load_tensors(folder / "model.safetensors")
        probes, classes = {}, {}
        for task, info in meta["probes"].items():
            sub = {k[len(task) + 1:]: v for k, v in tensors.items() if k.startswith(task + ".")}
            probes[task] = probe_from_meta(info["meta"], sub)
            classes[task] = list(info["classes"])
    except (KeyError, TypeError, ConfigError, RuntimeError) as e:
        raise CheckpointError(f"{folder}: unreadable probe checkpoint ({type(e).__name__}: {e})") from None
    return Probes(probes, classes, str(meta.get("init", "")), cfg, dict(meta.get("metrics", {})), folder)


def finetune(cfg: Any, data: Path, run: Path, init: Path | None = None, resume: bool = False) -> dict[str, float]:
    """s3prl's probe protocol on the frozen upstream ``init`` (``None``: the log-mel features of ``cfg``).

    For each of ``cfg.probe.tasks``, a probe is trained by the core Trainer in ``run/runs/<task>/`` (dev
    accuracy every ``probe.eval_every`` steps, best state kept); after each task ``run/checkpoints``
    holds every finished probe (``task: SpeechProbes`` in meta.json, with the upstream, the classes and
    the metrics) and ``run/metrics.json`` the test accuracies at the best dev steps."""
    from pretrainlab.core.checkpoint import save_checkpoint
    from pretrainlab.core.config import to_dict
    from pretrainlab.core.domain import write_metrics
    from pretrainlab.speech.downstream import ProbeData, evaluate

    run = Path(run)
    up = load_upstream(init) if init is not None else None
    encoder = up.task.encoder if up is not None else None
    features = up.cfg.features if up is not None else cfg.features  # the probes read the upstream's features
    if up is not None:
        print(f"upstream: {up.source}")
    tasks = tuple(cfg.probe.tasks)
    pdata = ProbeData.build(Path(data), features, cfg.probe, tasks)
    cfg = dataclasses.replace(cfg, features=features)
    metrics: dict[str, float] = {}
    infos: dict[str, Any] = {}
    state: dict[str, Any] = {}
    for task in tasks:
        m, results = evaluate(encoder, pdata, features, cfg.probe, cfg.train, run / "runs", full_config=cfg,
                              tasks=(task,), resume=resume)
        metrics.update(m)
        r = results[task]
        infos[task] = {"meta": r.probe.meta, "classes": r.classes}
        state.update({f"{task}.{k}": v.detach().cpu() for k, v in r.probe.state_dict().items()})
        save_checkpoint(run / "checkpoints", cfg.probe.max_steps, state, {},
                        {"config": to_dict(cfg), "task": PROBES_TASK, "init": str(init or ""),
                         "upstream": up.source if up is not None else "log-mel features (no upstream)",
                         "probes": infos, "metrics": metrics}, keep=1)
    write_metrics(run / "metrics.json", metrics)
    print("  ".join(f"{t} {metrics[f'{t}_acc']:.3f} (dev {metrics[f'{t}_dev_acc']:.3f})" for t in tasks))
    return metrics


def load_task(ckpt: Path) -> tuple[Any, Any]:
    """A checkpoint -> (task in eval mode, its config): a :class:`TeraTask` for an upstream (pretrainlab
    or s3prl), :class:`Probes` for a finetune checkpoint."""
    if is_probe_checkpoint(ckpt):
        p = load_probes(ckpt)
        return p, p.cfg
    up = load_upstream(ckpt)
    return up.task, up.cfg


def evaluate(ckpt: Path | None, data: Path | None = None, profile: str | None = None,
             tasks: list[str] | None = None, seed: int = 0, overrides: list[str] | None = None) -> dict[str, Any]:
    """Test accuracies. A finetune checkpoint: its probes on the test split (no training). An upstream
    (pretrainlab run, s3prl ``.ckpt``) or ``None`` (the log-mel features): the whole protocol (probes
    trained in a temporary folder, best dev state, test accuracy) with the probe settings of ``profile``
    (default: ``full`` with ``data``, else the upstream's synthetic profile, else ``smoke``)."""
    import tempfile

    if is_probe_checkpoint(ckpt):
        assert ckpt is not None
        return _evaluate_probes(load_probes(ckpt), data, tasks)
    up = load_upstream(ckpt) if ckpt is not None else None
    # the probe settings: as asked; the paper's (full) on real data; else the synthetic set the upstream knows
    prof = profile or ("full" if data else up.cfg.data.profile if up is not None and up.cfg.data.profile != "full"
                       else "smoke")
    ov = [*(overrides or []), f"train.seed={seed}"] + ([f"probe.tasks=[{','.join(tasks)}]"] if tasks else [])
    cfg = load(None, prof, ov)
    root = Path(data) if data else synthetic_data(cfg.data.profile)
    with tempfile.TemporaryDirectory(prefix="speech-probes-") as tmp:
        metrics = finetune(cfg, root, Path(tmp), init=Path(ckpt) if ckpt is not None else None)
    return {**metrics, "upstream": up.source if up is not None else "log-mel features (no upstream)"}


def _evaluate_probes(p: Probes, data: Path | None, tasks: list[str] | None) -> dict[str, Any]:
    """The saved probes of a finetune checkpoint, tested on the test split of ``data``."""
    from pretrainlab.core.config import ConfigError
    from pretrainlab.core.train import select_device
    from pretrainlab.speech.downstream import ProbeData, test_accuracy

    chosen = list(tasks or p.probes)
    missing = [t for t in chosen if t not in p.probes]
    if missing:
        raise ConfigError(f"--tasks: {p.folder} holds no '{missing[0]}' probe (it has {', '.join(p.probes)})")
    up = load_upstream(p.init) if p.init else None
    encoder = up.task.encoder if up is not None else None
    features = up.cfg.features if up is not None else p.cfg.features
    root = Path(data) if data else synthetic_data(p.cfg.data.profile)
    pdata = ProbeData.build(root, features, p.cfg.probe, chosen)
    device = select_device(p.cfg.train.device)
    metrics: dict[str, Any] = {}
    for t in chosen:
        metrics[f"{t}_acc"] = test_accuracy(t, p.probes[t], p.classes[t], encoder, pdata, features, p.cfg.probe,
                                            device)
    metrics["upstream"] = up.source if up is not None else "log-mel features (no upstream)"
    return metrics


def embed(ckpt: Path, inputs: Path, out: Path, layer: int = -1, all_layers: bool = False,
          device: str = "cpu") -> list[Path]:
    """``out/<relative path>.npy`` hidden states of every audio file of ``inputs`` (see ``upstream.embed_files``)."""
    from pretrainlab.speech.upstream import embed_files

    return embed_files(Path(ckpt), Path(inputs), Path(out), layer, all_layers, device)


def export(ckpt: Path, out: Path) -> Path:
    """A pretrainlab TERA checkpoint written in s3prl's ``states-*.ckpt`` layout."""
    from pretrainlab.speech.upstream import export_s3prl

    return export_s3prl(Path(ckpt), Path(out))


def read_audio(path: Path, max_seconds: float | None = None) -> Any:
    """One audio file as 16 kHz mono (``audio.Audio``: wave, sample_rate, notes); DataError when unreadable."""
    from pretrainlab.speech.audio import load_audio

    return load_audio(Path(path), 16000, max_seconds=max_seconds)


def features(wave: Any, cfg: Any) -> Any:
    """``(N,)`` waveform -> ``(T, D)`` input features of ``cfg`` (s3prl's extraction)."""
    from pretrainlab.speech.features import extract

    return extract(wave, cfg.features)


def new_task(cfg: Any) -> Any:
    """A freshly initialised :class:`~pretrainlab.speech.tera.TeraTask` (encoder + reconstruction head)."""
    from pretrainlab.speech.tera import TeraTask

    return TeraTask(cfg)


def pretraining_dataset(root: Path | None, cfg: Any, preload: bool = False, like: Any = None) -> Any:
    """The pre-training set of ``root`` (files listed from headers; ``preload``: decode every file once now,
    for small corpora shared by many runs, e.g. the tiny reproduction). ``like``: reuse that set's files
    (and decoded audio) with ``cfg``'s features and crops."""
    from pretrainlab.speech.tera import PretrainDataset
    from pretrainlab.speech.tera import pretraining_dataset as _dataset

    if like is not None:
        return PretrainDataset(like.paths, cfg, like.waves)
    ds = _dataset(Path(root or "."), cfg)
    if preload:
        from pretrainlab.speech.audio import load_audio

        ds = PretrainDataset(ds.paths, cfg, [load_audio(p, cfg.features.sample_rate).wave for p in ds.paths])
    return ds


def probe_data(root: Path, cfg: Any, tasks: Any = None) -> Any:
    """The probe corpora of ``root`` for ``cfg.probe`` (file lists, labels and splits; nothing decoded)."""
    from pretrainlab.speech.downstream import ProbeData

    return ProbeData.build(Path(root), cfg.features, cfg.probe, tuple(tasks or cfg.probe.tasks))


def run_probes(encoder: Any, pdata: Any, cfg: Any, run: Path, tasks: Any = None) -> dict[str, float]:
    """Train and test ``cfg.probe``'s probes on a frozen ``encoder`` (``None``: the features of ``cfg``) into
    ``run/<task>/``; returns the metrics (test accuracy at the best dev step, dev accuracy, best step)."""
    from pretrainlab.speech.downstream import evaluate as _evaluate

    metrics, _ = _evaluate(encoder, pdata, cfg.features, cfg.probe, cfg.train, Path(run), full_config=cfg,
                           tasks=tuple(tasks or cfg.probe.tasks))
    return metrics
