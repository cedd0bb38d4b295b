"""Frozen-upstream probes, s3prl's downstream protocol (TERA Sec. V; SUPERB).

The upstream is frozen (eval mode); its ``hidden_states`` (input representation + every layer, ``K``
of them) are cut to ``round(N / 160)`` frames per utterance (s3prl ``Featurizer.tolist``) and mixed by a
learnable softmax-weighted sum (``Featurizer``; ``probe.weighted_sum: false`` takes the last layer).
Each task trains its head on the ``train`` split, evaluates on ``dev`` every ``probe.eval_every``
steps, keeps the best dev state and reports the ``test`` accuracy of that state (s3prl's
``best-states-dev.ckpt`` protocol):

- ``phone_linear`` / ``phone_1hidden`` / ``phone_concat`` (s3prl ``downstream/phone_linear``,
  ``phone_1hidden``, ``phone_linear_concat``): frame-level phones of LibriSpeech train-clean-100 with
  CPC's alignments; a linear head, one ReLU hidden layer of 768, or a linear head on 9 concatenated
  frames. The features of each utterance are cut to its label length or its last frame repeated
  (``_match_length``: the labels are never changed); loss and accuracy over every labelled frame.
- ``speaker_frame`` (``speaker_linear_frame_libri``): a linear speaker classifier on every frame.
- ``speaker`` (``speaker_linear_utter_libri``): the mean over frames, then a linear speaker classifier.
- ``keyword`` (``speech_commands``, SUPERB KS): SUPERB's 12 classes; a linear projector (256), mean
  pooling over frames, a linear classifier; Adam 1e-4 with class-balanced sampling.

Splits: CPC's ``test_split`` is test, ``train_split`` is shuffled with seed 1337 and cut 90 / 10 into
train / dev (s3prl ``phone_linear/dataset.py``); the speaker tasks use the same utterances (s3prl ships
its own speaker split files with the recipe). Keyword: :func:`pretrainlab.speech.formats.speech_commands`.

Hidden states are cached in RAM when they fit in ``probe.cache_gb`` (checked from the audio headers
before anything is computed); otherwise the upstream runs on every probe batch (s3prl's way), with
audio decoded lazily in DataLoader workers (``probe.num_workers``).

Deviations: fixed ``probe.max_steps`` / ``eval_every`` per profile (s3prl: 500k / 10k steps); random
batches instead of length buckets; the keyword dev accuracy is class-balanced (the expectation of
s3prl's weighted-random dev sampler); ``_silence_`` clips are fixed random crops of the background
noise (s3prl draws a new crop on every read); ``phone_concat`` repeats each utterance's own edge
frames (s3prl pads the batch, so a short utterance's right edge repeats zeros).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from pretrainlab.core.train import Task
from pretrainlab.speech.config import FeatureConfig, ProbeConfig
from pretrainlab.speech.formats import (
    KEYWORD_CLASSES,
    Clip,
    KeywordCorpus,
    PhoneCorpus,
    downstream_frames,
    phone_corpus,
    speech_commands,
)
from pretrainlab.speech.transformer_encoder import Featurizer, TeraEncoder

FRAME_TASKS = ("phone_linear", "phone_1hidden", "phone_concat", "speaker_frame")


# ------------------------------------------------------------------------------------------------ data
@dataclasses.dataclass
class ProbeSet:
    """One probe corpus: clips, their lengths (samples), per-item targets and split."""

    clips: list[Clip]
    samples: list[int]
    targets: list[Any]  # (T_i,) frame labels, or an int class
    split: list[str]  # 'train' | 'dev' | 'test'
    classes: list[str]

    def indices(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.split) if s == split]

    def only(self, split: str) -> ProbeSet:
        """The items of one split."""
        idx = self.indices(split)
        return ProbeSet([self.clips[i] for i in idx], [self.samples[i] for i in idx], [self.targets[i] for i in idx],
                        [split] * len(idx), self.classes)


@dataclasses.dataclass
class ProbeData:
    """The corpora of every probe task (file lists and labels; nothing decoded)."""

    phones: PhoneCorpus | None
    keywords: KeywordCorpus | None
    sample_rate: int = 16000

    @staticmethod
    def build(root: Path, fcfg: FeatureConfig, pcfg: ProbeConfig, tasks: tuple[str, ...] | list[str]) -> ProbeData:
        need_phone = any(t != "keyword" for t in tasks)
        phones = phone_corpus(root, fcfg, pcfg.subset, pcfg.max_utterances, pcfg.dev_fraction, pcfg.dev_seed) \
            if need_phone else None
        kw = speech_commands(root, pcfg.keyword_silence_clips, pcfg.dev_seed, fcfg.sample_rate) \
            if "keyword" in tasks else None
        return ProbeData(phones, kw, fcfg.sample_rate)

    def set_for(self, task: str) -> ProbeSet:
        if task == "keyword":
            from pretrainlab.speech.audio import audio_frames

            kw = self.keywords
            assert kw is not None
            samples = [c.length or audio_frames(c.path, self.sample_rate) for c in kw.clips]
            return ProbeSet(kw.clips, samples, list(kw.labels), kw.splits, kw.classes)
        pc = self.phones
        assert pc is not None
        clips = [Clip(u.path) for u in pc.utts]
        if task.startswith("phone"):
            return ProbeSet(clips, pc.samples, pc.labels, pc.split, pc.phones)
        return ProbeSet(clips, pc.samples, pc.speaker_index(), pc.split, pc.speakers)


def load_clip(clip: Clip, sample_rate: int) -> np.ndarray:
    from pretrainlab.speech.audio import load_audio

    wave = load_audio(clip.path, sample_rate).wave
    return wave[clip.start:clip.start + clip.length] if clip.length else wave


class States:
    """What the probes read for a probe set: the frozen upstream's hidden states ``(K, t_i, H)``
    (``t_i = round(N_i / 160)``) cached in RAM when they fit in ``probe.cache_gb`` (the size is checked
    from the audio headers first), else the item's features, which :class:`ProbeTask` runs through the
    upstream on every batch (s3prl's way; audio decoded lazily in DataLoader workers)."""

    def __init__(self, encoder: TeraEncoder | None, pset: ProbeSet, fcfg: FeatureConfig, pcfg: ProbeConfig,
                 device: torch.device) -> None:
        self.encoder = encoder.eval().to(device) if encoder is not None else None
        self.pset, self.fcfg, self.pcfg, self.device = pset, fcfg, pcfg, device
        self.k = 1 if encoder is None else encoder.num_hidden_states
        self.dim = fcfg.dim if encoder is None else encoder.cfg.hidden
        frames = sum(downstream_frames(n, fcfg) for n in pset.samples)
        self.bytes = frames * self.k * self.dim * 4
        self.cache: list[Tensor] | None = None
        if self.bytes <= pcfg.cache_gb * 2**30:
            from tqdm.auto import tqdm

            self.cache = [torch.empty(0)] * len(pset.clips)
            order = sorted(range(len(pset.clips)), key=lambda i: pset.samples[i])  # similar lengths together
            loader = DataLoader(torch.utils.data.Subset(_Items(self, stream=True), order), batch_size=16,
                                num_workers=pcfg.num_workers, collate_fn=collate_items)
            for b in tqdm(loader, desc="hidden states", leave=False):
                x, lengths = upstream_states(self.encoder, b["feats"].to(device), b["lengths"].to(device),
                                             b["samples"].to(device), fcfg)
                for j, i in enumerate(b["index"].tolist()):
                    self.cache[i] = x[j, :, : int(lengths[j])].float().cpu()

    def dataset(self, split: str) -> Dataset:
        """The items of one split, each ``{"states" | "feat", "label", ...}``."""
        return torch.utils.data.Subset(_Items(self, stream=self.cache is None), self.pset.indices(split))


class _Items(Dataset):
    def __init__(self, states: States, stream: bool) -> None:
        self.s, self.stream = states, stream

    def __len__(self) -> int:
        return len(self.s.pset.clips)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from pretrainlab.speech.features import extract

        target = self.s.pset.targets[i]
        item: dict[str, Any] = {"index": i, "label": target}
        if not self.stream:
            assert self.s.cache is not None
            item["states"] = self.s.cache[i]
        else:
            wave = load_clip(self.s.pset.clips[i], self.s.fcfg.sample_rate)
            item["feat"], item["samples"] = extract(wave, self.s.fcfg), len(wave)
        return item


def collate_items(items: list[dict[str, Any]]) -> dict[str, Tensor]:
    """Pad a list of probe items: ``states (B, K, T, H)`` or ``feats (B, T, D)`` + ``samples``; ``lengths``;
    ``labels`` ``(B, L)`` (frame labels, -100 after ``label_lengths``) or ``(B,)``."""
    out: dict[str, Tensor] = {"index": torch.tensor([it["index"] for it in items])}
    if "states" in items[0]:
        out["states"] = torch.nn.utils.rnn.pad_sequence([it["states"].transpose(0, 1) for it in items],
                                                        batch_first=True).transpose(1, 2)
        out["lengths"] = torch.tensor([it["states"].shape[1] for it in items])
    else:
        out["feats"] = torch.nn.utils.rnn.pad_sequence([it["feat"] for it in items], batch_first=True)
        out["lengths"] = torch.tensor([it["feat"].shape[0] for it in items])
        out["samples"] = torch.tensor([it["samples"] for it in items])
    labels = [it["label"] for it in items]
    if isinstance(labels[0], np.ndarray):
        ys = [torch.as_tensor(y.astype(np.int64)) for y in labels]
        out["labels"] = torch.nn.utils.rnn.pad_sequence(ys, batch_first=True, padding_value=-100)
        out["label_lengths"] = torch.tensor([len(y) for y in ys])
    else:
        out["labels"] = torch.tensor([int(y) for y in labels])
    return out


@torch.no_grad()
def upstream_states(encoder: TeraEncoder | None, feats: Tensor, lengths: Tensor, samples: Tensor,
                    fcfg: FeatureConfig) -> tuple[Tensor, Tensor]:
    """Padded features ``(B, T, D)`` -> the frozen upstream's ``(B, K, T, H)`` and the lengths a downstream
    sees, ``min(T_i, round(N_i / hop))`` (s3prl ``Featurizer.tolist``; ``None``: the features, ``K = 1``)."""
    x = feats[:, None] if encoder is None else torch.stack(encoder(feats, lengths)["hidden_states"], 1)
    seen = torch.round(samples.double() / fcfg.hop).long().clamp(min=1)  # Python's round: half to even, as torch
    return x, torch.minimum(lengths, seen)


def align_to_labels(x: Tensor, lengths: Tensor, label_lengths: Tensor) -> Tensor:
    """s3prl ``_match_length`` per utterance: frame ``t`` of the output is input frame ``min(t, T_i - 1)``
    (features cut to the labels, or the last frame repeated); ``(B, K, T, H)`` -> ``(B, K, L, H)``."""
    B, K, _, H = x.shape
    L = int(label_lengths.max())
    t = torch.arange(L, device=x.device)[None, :]
    idx = torch.minimum(t, (lengths - 1).clamp(min=0)[:, None])  # (B, L)
    return x.gather(2, idx[:, None, :, None].expand(B, K, L, H))


# ------------------------------------------------------------------------------------------------ heads
class FrameProbe(nn.Module):
    """Featurizer + a frame-level head: ``(B, K, T, H)`` -> ``(B, T, C)`` logits.

    ``hidden > 0``: Linear -> ReLU -> Linear (phone_1hidden); ``concat > 1``: the ``concat`` frames centred
    on each frame (edges repeated) side by side, then linear (phone_linear_concat)."""

    def __init__(self, k: int, dim: int, n_classes: int, hidden: int = 0, concat: int = 1,
                 weighted: bool = True) -> None:
        super().__init__()
        self.featurizer = Featurizer(k, weighted)
        self.concat = concat
        din = dim * concat
        self.head: nn.Module = nn.Linear(din, n_classes) if hidden <= 0 else nn.Sequential(
            nn.Linear(din, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
        self.meta = {"kind": "frame", "k": k, "dim": dim, "n_classes": n_classes, "hidden": hidden,
                     "concat": concat, "weighted": weighted}

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        h = self.featurizer(x.transpose(0, 1))  # (B, T, H)
        if self.concat > 1:
            B, T, H = h.shape
            r = self.concat // 2
            # slot j holds frame t + r - j (s3prl concat_frames: the middle slot is t, later slots the past)
            t = torch.arange(T, device=h.device)[None, :, None] + torch.arange(r, -r - 1, -1, device=h.device)
            t = torch.minimum(t.clamp(min=0), (lengths.to(h.device) - 1).clamp(min=0)[:, None, None])  # (B, T, c)
            h = h.gather(1, t.reshape(B, -1, 1).expand(B, T * self.concat, H)).reshape(B, T, self.concat * H)
        return self.head(h)


class UtteranceProbe(nn.Module):
    """Featurizer + (projector) + mean pooling over valid frames + linear: ``(B, K, T, H)`` -> ``(B, C)``.

    ``projector > 0``: s3prl speech_commands (Linear to 256 before MeanPooling); 0: speaker_linear_utter
    (mean of the features, then linear)."""

    def __init__(self, k: int, dim: int, n_classes: int, projector: int = 0, weighted: bool = True) -> None:
        super().__init__()
        self.featurizer = Featurizer(k, weighted)
        self.projector: nn.Module = nn.Linear(dim, projector) if projector > 0 else nn.Identity()
        self.head = nn.Linear(projector if projector > 0 else dim, n_classes)
        self.meta = {"kind": "utterance", "k": k, "dim": dim, "n_classes": n_classes, "projector": projector,
                     "weighted": weighted}

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        h = self.projector(self.featurizer(x.transpose(0, 1)))  # (B, T, P)
        valid = (torch.arange(h.shape[1], device=h.device)[None, :] < lengths.to(h.device)[:, None]).to(h.dtype)
        pooled = (h * valid[:, :, None]).sum(1) / lengths.to(h.device).clamp(min=1)[:, None].to(h.dtype)
        return self.head(pooled)


def build_probe(task: str, k: int, dim: int, n_classes: int, cfg: ProbeConfig) -> nn.Module:
    if task in FRAME_TASKS:
        return FrameProbe(k, dim, n_classes, hidden=cfg.hidden if task == "phone_1hidden" else 0,
                          concat=cfg.concat_frames if task == "phone_concat" else 1, weighted=cfg.weighted_sum)
    if task == "speaker":
        return UtteranceProbe(k, dim, n_classes, 0, cfg.weighted_sum)
    if task == "keyword":
        return UtteranceProbe(k, dim, n_classes, cfg.projector_dim, cfg.weighted_sum)
    raise ValueError(f"unknown probe task '{task}'")


# ------------------------------------------------------------------------------------------------ training
class ProbeTask(Task):
    """One probe on a frozen upstream, trained by the core :class:`~pretrainlab.core.train.Trainer`.

    ``forward(batch)`` -> ``{"loss": cross-entropy over the labelled frames / items, "acc"}``. Every
    ``eval_every`` steps (and at the last) :meth:`on_step_end` measures the dev accuracy and keeps the
    best state in ``best`` (a frozen copy of the probe, saved with the checkpoint, so resuming keeps it).
    The upstream is held outside the module tree: it is neither trained nor saved with the probe."""

    def __init__(self, name: str, states: States, cfg: ProbeConfig) -> None:
        super().__init__()
        self.name, self.cfg = name, cfg
        self._states = [states]  # not a submodule
        self.probe = build_probe(name, states.k, states.dim, len(states.pset.classes), cfg)
        self.best = copy.deepcopy(self.probe).requires_grad_(False)
        self.register_buffer("best_dev", torch.tensor(-1.0))
        self.register_buffer("best_step", torch.tensor(0))

    @property
    def states(self) -> States:
        return self._states[0]

    def logits(self, batch: dict[str, Tensor], probe: nn.Module | None = None) -> tuple[Tensor, Tensor]:
        """(logits ``(B, L, C)`` or ``(B, C)``, labels ``(B, L)`` (-100 = none) or ``(B,)``)."""
        s = self.states
        if "feats" in batch:
            x, lengths = upstream_states(s.encoder, batch["feats"], batch["lengths"], batch["samples"], s.fcfg)
        else:
            x, lengths = batch["states"], batch["lengths"]
        y = batch["labels"]
        if self.name.startswith("phone"):  # features follow the labels (_match_length)
            x = align_to_labels(x, lengths, batch["label_lengths"])
            lengths = batch["label_lengths"]
        elif self.name == "speaker_frame":  # the utterance's speaker on every frame
            valid = torch.arange(x.shape[2], device=x.device)[None, :] < lengths[:, None]
            y = torch.where(valid, y[:, None], torch.full_like(valid, -100, dtype=torch.long))
        return (probe or self.probe)(x, lengths), y

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        logits, y = self.logits(batch)
        flat, yf = logits.reshape(-1, logits.shape[-1]), y.reshape(-1)
        loss = nn.functional.cross_entropy(flat, yf, ignore_index=-100)
        keep = yf != -100
        acc = (flat.argmax(-1) == yf)[keep].float().mean()
        return {"loss": loss, "acc": acc.detach()}

    def batch_size(self, batch: Any) -> int:
        return int(batch["labels"].shape[0])

    @torch.no_grad()
    def accuracy(self, split: str, use_best: bool = False) -> float:
        """Frame tasks: correct / labelled frames; utterance tasks: per item (keyword dev: mean of the
        per-class accuracies, the expectation of s3prl's class-balanced dev sampler)."""
        s = self.states
        probe = self.best if use_best else self.probe
        was = probe.training
        probe.eval()
        n = len(s.pset.classes)
        correct, count = torch.zeros(n), torch.zeros(n)
        dev = next(self.parameters()).device
        loader = DataLoader(s.dataset(split), batch_size=self.cfg.batch_size, collate_fn=collate_items,
                            num_workers=self.cfg.num_workers if s.cache is None else 0)
        for b in loader:
            b = {k: v.to(dev) for k, v in b.items()}
            logits, y = self.logits(b, probe)
            pred, keep = logits.argmax(-1), y != -100
            yk, hit = y[keep].cpu(), (pred == y)[keep].float().cpu()
            correct.index_add_(0, yk, hit)
            count.index_add_(0, yk, torch.ones_like(hit))
        probe.train(was)
        if self.name == "keyword" and split == "dev":
            seen = count > 0
            return float((correct[seen] / count[seen]).mean())
        return float(correct.sum() / count.sum().clamp(min=1))

    def on_step_end(self, step: int, max_steps: int) -> None:
        if step % self.cfg.eval_every and step != max_steps:
            return
        acc = self.accuracy("dev")
        if acc > float(self.best_dev):
            self.best.load_state_dict(self.probe.state_dict())
            self.best_dev.fill_(acc)
            self.best_step.fill_(step)


def balanced_indices(labels: list[int], n_classes: int) -> list[int]:
    """Item positions replicated so every class appears equally often (the expectation of s3prl's
    ``WeightedRandomSampler`` with weights ``N / count(class)``): each class is repeated up to the largest."""
    by: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by.setdefault(int(y), []).append(i)
    top = max(len(v) for v in by.values())
    out: list[int] = []
    for c in sorted(by):
        v = by[c]
        out += [v[j % len(v)] for j in range(top)]
    return out


def probe_train_config(cfg: ProbeConfig, base: Any, task: str, n_train: int) -> Any:
    """The :class:`TrainConfig` of one probe run (s3prl downstream configs; device / precision / seed /
    progress from ``base``): AdamW 2e-4 (keyword: Adam 1e-4), constant lr, clip 1, batch 32 utterances
    (at most the training set: the trainer drops incomplete batches)."""
    return dataclasses.replace(
        base, optimizer="adam" if task == "keyword" else "adamw", lr=cfg.keyword_lr if task == "keyword" else cfg.lr,
        weight_decay=0.0 if task == "keyword" else cfg.weight_decay, schedule="constant", warmup_steps=0,
        batch_size=max(1, min(cfg.batch_size, n_train)), grad_accum=1, clip_grad=cfg.clip_grad,
        max_steps=cfg.max_steps, num_workers=cfg.num_workers, ckpt_every=0, keep_checkpoints=1,
        log_every=max(1, min(base.log_every, cfg.max_steps)), compile=False)


@dataclasses.dataclass
class ProbeResult:
    test_acc: float
    dev_acc: float
    best_step: int
    probe: nn.Module
    classes: list[str]


def train_probe(name: str, states: States, cfg: ProbeConfig, train_cfg: Any, run_dir: Path, full_config: Any,
                resume: bool = False) -> ProbeResult:
    """Train one probe through the core Trainer into ``run_dir``; the test accuracy of the best dev state."""
    from pretrainlab.core.data import DataError
    from pretrainlab.core.train import Trainer, seed_everything

    pset = states.pset
    tr, dv, te = pset.indices("train"), pset.indices("dev"), pset.indices("test")
    if not tr or not dv or not te:
        raise DataError(pset.clips[0].path.parent, f"probe '{name}' needs train, dev and test items "
                                                   f"(have {len(tr)} / {len(dv)} / {len(te)})")
    seed_everything(train_cfg.seed)
    task = ProbeTask(name, states, cfg)
    ds: Dataset = states.dataset("train")
    if name == "keyword":  # class-balanced training (speech_commands/expert.py WeightedRandomSampler)
        ds = torch.utils.data.Subset(ds, balanced_indices([pset.targets[i] for i in tr], len(pset.classes)))
    tcfg = probe_train_config(cfg, train_cfg, name, len(ds))
    Trainer(tcfg, run_dir, full_config=full_config).fit(task, ds, collate_fn=collate_items, resume=resume)
    return ProbeResult(task.accuracy("test", use_best=True), float(task.best_dev), int(task.best_step),
                       task.best.eval(), pset.classes)


def evaluate(encoder: TeraEncoder | None, data: ProbeData, fcfg: FeatureConfig, cfg: ProbeConfig, train_cfg: Any,
             run_dir: Path, full_config: Any = None, tasks: tuple[str, ...] | list[str] | None = None,
             resume: bool = False) -> tuple[dict[str, float], dict[str, ProbeResult]]:
    """Train and test the probes on a frozen upstream (``None``: the features themselves, the log-mel
    baseline); each probe's run goes to ``run_dir/<task>/``. Returns ({``<task>_acc`` (test accuracy at
    the best dev step), ``<task>_dev_acc``, ``<task>_best_step``}, results)."""
    from pretrainlab.core.train import select_device

    device = select_device(train_cfg.device)
    metrics: dict[str, float] = {}
    results: dict[str, ProbeResult] = {}
    cache: dict[str, States] = {}
    for task in list(tasks or cfg.tasks):
        corpus = "keyword" if task == "keyword" else "librispeech"
        if corpus not in cache:
            cache[corpus] = States(encoder, data.set_for(task), fcfg, cfg, device)
        elif corpus == "librispeech":  # same clips, other targets (phones / speakers)
            cache[corpus] = _retarget(cache[corpus], data.set_for(task))
        res = train_probe(task, cache[corpus], cfg, train_cfg, Path(run_dir) / task, full_config, resume)
        results[task] = res
        metrics[f"{task}_acc"] = res.test_acc
        metrics[f"{task}_dev_acc"] = res.dev_acc
        metrics[f"{task}_best_step"] = res.best_step
    return metrics, results


def _retarget(states: States, pset: ProbeSet) -> States:
    """The same cached states with another probe set's targets and classes (same clips)."""
    new = copy.copy(states)
    new.pset = pset
    return new


# ------------------------------------------------------------------------------------------------ files
def probe_from_meta(meta: dict[str, Any], state: dict[str, Tensor]) -> nn.Module:
    """A probe rebuilt from its ``meta`` (shape) and weights."""
    if meta.get("kind") == "utterance":
        probe: nn.Module = UtteranceProbe(meta["k"], meta["dim"], meta["n_classes"], meta["projector"], meta["weighted"])
    else:
        probe = FrameProbe(meta["k"], meta["dim"], meta["n_classes"], meta["hidden"], meta["concat"], meta["weighted"])
    probe.load_state_dict(state)
    return probe.eval()


def test_accuracy(task: str, probe: nn.Module, classes: list[str], encoder: TeraEncoder | None, data: ProbeData,
                  fcfg: FeatureConfig, cfg: ProbeConfig, device: torch.device) -> float:
    """A trained probe's accuracy on the test split of ``data`` (its classes must be the probe's)."""
    from pretrainlab.core.data import DataError

    pset = data.set_for(task)
    if list(pset.classes) != list(classes):
        raise DataError(pset.clips[0].path.parent, f"the '{task}' probe was trained on {len(classes)} classes that "
                                                   f"differ from this data's {len(pset.classes)}")
    states = States(encoder, pset.only("test"), fcfg, cfg, device)
    pt = ProbeTask(task, states, cfg).to(device)
    pt.best.load_state_dict(probe.state_dict())
    return pt.accuracy("test", use_best=True)


__all__ = ["KEYWORD_CLASSES", "FrameProbe", "ProbeData", "ProbeSet", "ProbeTask", "States", "UtteranceProbe",
           "evaluate", "probe_from_meta", "test_accuracy", "train_probe"]
