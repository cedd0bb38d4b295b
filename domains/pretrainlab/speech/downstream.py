"""Frozen-feature downstream runner (s3prl downstream recipes / SUPERB protocol, TERA Sec. V).

The upstream is frozen; its ``hidden_states`` (input representation + every layer, ``K`` of them)
are extracted once. Each probe learns a softmax-weighted sum over the ``K`` layers (s3prl
``Featurizer``) and a head, trained with AdamW on the cached features:

- ``phone_linear``: frame-level phone classification with a linear head (s3prl ``phone_linear``);
- ``phone_1hidden``: the same with one ReLU hidden layer (s3prl ``phone_1hidden``);
- ``keyword``: keyword spotting on Speech Commands: frame-wise projector + ReLU, mean pooling, linear;
- ``speaker``: speaker identification on the LibriSpeech-layout utterances, the same utterance-level probe.

The log-mel baseline is the same runner with the features themselves as the only "layer".
Deviations: s3prl's utterance-level projector is linear; a ReLU is added before the mean pooling
because with per-utterance CMVN inputs the mean of a linear projection of log-mel frames is
identically zero (the baseline would be at chance by construction). s3prl trains probes for many thousands of steps with early stopping on a dev set;
here a fixed number of epochs (``probe.epochs``) and the test accuracy at the end.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pretrainlab.speech.config import FeatureConfig, ProbeConfig
from pretrainlab.speech.transformer_encoder import Featurizer, TeraEncoder


@dataclasses.dataclass
class ProbeData:
    """Features and labels of the three probe tasks (log-mel features, computed once)."""

    phone_feats: list[Tensor]  # (T_i, D) per utterance
    phone_labels: list[np.ndarray]  # (T_i,) phone ids
    phone_test: list[bool]
    phones: list[str]
    speaker_labels: list[int]  # per utterance (same utterances, same split)
    speakers: list[str]
    kw_feats: list[Tensor]
    kw_labels: list[int]
    kw_test: list[bool]  # test split (validation clips are added to training: no early stopping here)
    keywords: list[str]

    @staticmethod
    def build(root: Path, fcfg: FeatureConfig, subset: str = "train-clean-100", max_utterances: int = 0) -> ProbeData:
        from pretrainlab.speech.datasets import load_features, phone_corpus, speech_commands

        corpus, feats = phone_corpus(root, fcfg, subset, max_utterances)
        speakers = sorted({u.speaker for u in corpus.utts})
        kw = speech_commands(root)
        kw_feats = load_features(kw.paths, fcfg, "keyword clips")
        return ProbeData(feats, corpus.labels, corpus.is_test, corpus.phones,
                         [speakers.index(u.speaker) for u in corpus.utts], speakers,
                         kw_feats, kw.labels, [s == "test" for s in kw.splits], kw.keywords)


@torch.no_grad()
def hidden_states(encoder: TeraEncoder | None, feats: list[Tensor], batch: int = 16,
                  device: str | torch.device = "cpu") -> list[Tensor]:
    """``(T_i, D)`` features -> ``(K, T_i, H)`` per utterance (float32, CPU). ``encoder=None``: the features
    themselves (``K = 1``, the log-mel baseline)."""
    if encoder is None:
        return [f[None].float() for f in feats]
    encoder.eval().to(device)
    out: list[Tensor] = []
    order = sorted(range(len(feats)), key=lambda i: feats[i].shape[0])  # batch similar lengths together
    res: dict[int, Tensor] = {}
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        chunk = [feats[i][: encoder.cfg.max_frames] for i in idx]
        lengths = torch.tensor([c.shape[0] for c in chunk], device=device)
        x = torch.nn.utils.rnn.pad_sequence(chunk, batch_first=True).to(device)
        hs = torch.stack(encoder(x, lengths)["hidden_states"], 1).float().cpu()  # (b, K, T, H)
        for j, i in enumerate(idx):
            res[i] = hs[j, :, : int(lengths[j])]
    out = [res[i] for i in range(len(feats))]
    return out


class UtteranceProbe(nn.Module):
    """Weighted layer sum + frame-wise projector (ReLU) + masked mean pooling + linear:
    ``(N, K, T, H)`` with ``(N,)`` lengths -> ``(N, C)`` logits (s3prl ``UtteranceLevel`` with ``MeanPooling``)."""

    def __init__(self, k: int, dim: int, n_classes: int, hidden: int = 128, weighted: bool = True) -> None:
        super().__init__()
        self.featurizer = Featurizer(k, weighted)
        self.projector = nn.Linear(dim, hidden)
        self.head = nn.Linear(hidden, n_classes)
        self.meta = {"k": k, "dim": dim, "n_classes": n_classes, "hidden": hidden, "weighted": weighted,
                     "kind": "utterance"}

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        h = torch.relu(self.projector(self.featurizer(x.transpose(0, 1))))  # (N, T, hidden)
        valid = (torch.arange(h.shape[1], device=h.device)[None, :] < lengths[:, None]).to(h.dtype)
        pooled = (h * valid[:, :, None]).sum(1) / lengths.clamp(min=1)[:, None].to(h.dtype)
        return self.head(pooled)


class Probe(nn.Module):
    """Weighted layer sum + head: ``(N, K, H) -> (N, C)`` logits."""

    def __init__(self, k: int, dim: int, n_classes: int, hidden: int = 0, weighted: bool = True) -> None:
        super().__init__()
        self.featurizer = Featurizer(k, weighted)
        self.head: nn.Module = nn.Linear(dim, n_classes) if hidden <= 0 else nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
        self.meta = {"k": k, "dim": dim, "n_classes": n_classes, "hidden": hidden, "weighted": weighted,
                     "kind": "frame"}

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.featurizer(x.transpose(0, 1)))


def train_probe(x: Tensor, y: Tensor, x_test: Tensor, y_test: Tensor, n_classes: int, cfg: ProbeConfig,
                hidden: int = 0, batch: int = 256, seed: int = 0, lengths: Tensor | None = None,
                lengths_test: Tensor | None = None) -> tuple[float, nn.Module]:
    """Fit a probe with AdamW; returns (test accuracy, probe).

    Frame level: ``x`` ``(N, K, H)`` frames, ``y`` ``(N,)`` -> :class:`Probe`. Utterance level (``lengths``
    given): ``x`` ``(N, K, T, H)`` padded utterances -> :class:`UtteranceProbe`."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    utt = lengths is not None
    probe: nn.Module = UtteranceProbe(x.shape[1], x.shape[3], n_classes, hidden or cfg.hidden, cfg.weighted_sum) \
        if utt else Probe(x.shape[1], x.shape[2], n_classes, hidden, cfg.weighted_sum)
    opt = torch.optim.AdamW(probe.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = x.shape[0]

    def logits(xb: Tensor, idx: Tensor, lens: Tensor | None) -> Tensor:
        return probe(xb, lens[idx]) if lens is not None else probe(xb)

    probe.train()
    with torch.enable_grad():  # callers may run under no_grad / inference code
        for _ in range(cfg.epochs):
            perm = torch.randperm(n, generator=g)
            for s in range(0, n, batch):
                idx = perm[s:s + batch]
                loss = nn.functional.cross_entropy(logits(x[idx], idx, lengths), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    probe.eval()
    with torch.no_grad():
        chunk = 256 if utt else 4096
        pred = torch.cat([logits(x_test[s:s + chunk], torch.arange(s, min(s + chunk, x_test.shape[0])),
                                 lengths_test).argmax(1) for s in range(0, x_test.shape[0], chunk)])
    return float((pred == y_test).float().mean()), probe


def _padded(states: list[Tensor], max_frames: int) -> tuple[Tensor, Tensor]:
    """``[(K, T_i, H)]`` -> ``(N, K, T, H)`` zero-padded (each cropped to ``max_frames``) and ``(N,)`` lengths."""
    cropped = [s[:, :max_frames] for s in states]
    lengths = torch.tensor([c.shape[1] for c in cropped])
    x = torch.nn.utils.rnn.pad_sequence([c.transpose(0, 1) for c in cropped], batch_first=True)  # (N, T, K, H)
    return x.permute(0, 2, 1, 3).contiguous(), lengths


def evaluate(encoder: TeraEncoder | None, data: ProbeData, cfg: ProbeConfig, seed: int = 0,
             device: str | torch.device = "cpu", tasks: tuple[str, ...] = ("phone_linear", "phone_1hidden",
                                                                            "keyword", "speaker"),
             ) -> tuple[dict[str, float], dict[str, nn.Module]]:
    """Run the probes on a frozen upstream; returns ({metric: accuracy}, {task: probe})."""
    from tqdm.auto import tqdm

    metrics: dict[str, float] = {}
    probes: dict[str, nn.Module] = {}
    bar = tqdm(tasks, desc="probes", leave=False)
    ph_states = hidden_states(encoder, data.phone_feats, device=device)
    tr = [i for i, t in enumerate(data.phone_test) if not t]
    te = [i for i, t in enumerate(data.phone_test) if t]
    for task in bar:
        bar.set_postfix_str(task)
        if task.startswith("phone"):
            x = torch.cat([ph_states[i].transpose(0, 1) for i in tr])
            y = torch.from_numpy(np.concatenate([data.phone_labels[i] for i in tr]))
            xt = torch.cat([ph_states[i].transpose(0, 1) for i in te])
            yt = torch.from_numpy(np.concatenate([data.phone_labels[i] for i in te]))
            acc, probes[task] = train_probe(x, y, xt, yt, len(data.phones), cfg,
                                            hidden=cfg.hidden if task == "phone_1hidden" else 0,
                                            batch=cfg.batch_frames, seed=seed)
        elif task == "speaker":
            x, lens = _padded(ph_states, cfg.max_utterance_frames)
            y = torch.tensor(data.speaker_labels)
            acc, probes[task] = train_probe(x[tr], y[tr], x[te], y[te], len(data.speakers), cfg,
                                            batch=cfg.batch_utts, seed=seed, lengths=lens[tr], lengths_test=lens[te])
        elif task == "keyword":
            x, lens = _padded(hidden_states(encoder, data.kw_feats, device=device), cfg.max_utterance_frames)
            y = torch.tensor(data.kw_labels)
            ktr = [i for i, t in enumerate(data.kw_test) if not t]
            kte = [i for i, t in enumerate(data.kw_test) if t]
            acc, probes[task] = train_probe(x[ktr], y[ktr], x[kte], y[kte], len(data.keywords), cfg,
                                            batch=cfg.batch_utts, seed=seed, lengths=lens[ktr],
                                            lengths_test=lens[kte])
        else:
            raise ValueError(f"unknown probe task '{task}'")
        metrics[f"{task}_acc"] = acc
    return metrics, probes


def save_probe(path: Path, probe: nn.Module, labels: list[str]) -> None:
    """A probe as safetensors with its shape and class names in the metadata."""
    from pretrainlab.core.checkpoint import save_weights

    path.parent.mkdir(parents=True, exist_ok=True)
    save_weights(probe, path, {"meta": json.dumps(probe.meta), "labels": json.dumps(labels)})


def load_probe(path: Path) -> tuple[nn.Module, list[str]]:
    from pretrainlab.core.checkpoint import CheckpointError, load_tensors

    tensors, meta = load_tensors(path)
    try:
        m = json.loads(meta["meta"])
        labels = json.loads(meta["labels"])
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a speech probe file ({e})") from e
    cls = UtteranceProbe if m.get("kind") == "utterance" else Probe
    probe = cls(m["k"], m["dim"], m["n_classes"], m["hidden"], m["weighted"])
    probe.load_state_dict(tensors)
    return probe.eval(), labels


def write_probes(folder: Path, probes: dict[str, nn.Module], data: ProbeData, metrics: dict[str, Any]) -> None:
    """Save every probe into ``folder/probes/<task>.safetensors`` and the metrics as JSON."""
    from pretrainlab.core.io import atomic_write_json

    names = {"phone_linear": data.phones, "phone_1hidden": data.phones, "keyword": data.keywords,
             "speaker": data.speakers}
    for task, p in probes.items():
        save_probe(Path(folder) / "probes" / f"{task}.safetensors", p, names[task])
    atomic_write_json(Path(folder) / "probes" / "metrics.json", metrics)
