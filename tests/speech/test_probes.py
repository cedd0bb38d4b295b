"""The probes: features stay aligned with the labels on long utterances (chunked upstream), s3prl's
``_match_length`` / ``concat_frames`` / ``Featurizer`` semantics, dev-set model selection through the
core Trainer, and the saved probes giving back the reported test accuracy."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pretrainlab.speech import api
from pretrainlab.speech.downstream import (
    FrameProbe,
    ProbeTask,
    States,
    align_to_labels,
    balanced_indices,
    collate_items,
    load_clip,
)
from pretrainlab.speech.formats import downstream_frames


def _match_length_s3prl(inputs: torch.Tensor, label_len: int) -> torch.Tensor:
    """phone_linear/expert.py _match_length for one utterance (B = 1), ported."""
    input_len = inputs.size(1)
    if input_len > label_len:
        return inputs[:, :label_len, :]
    if input_len < label_len:
        pad_vec = inputs[:, -1, :].unsqueeze(1)
        return torch.cat((inputs, pad_vec.repeat(1, label_len - input_len, 1)), dim=1)
    return inputs


@pytest.mark.parametrize("T", [5, 9, 12])
def test_align_to_labels_is_s3prls_match_length(T: int) -> None:
    x = torch.randn(2, 3, 12, 4)  # (B, K, T, H), row 0 has T valid frames, row 1 all 12
    lengths, labels = torch.tensor([T, 12]), torch.tensor([9, 7])
    out = align_to_labels(x, lengths, labels)
    for b in range(2):
        for k in range(3):
            ref = _match_length_s3prl(x[b, k, : int(lengths[b])][None], int(labels[b]))[0]
            assert torch.equal(out[b, k, : int(labels[b])], ref)


def _concat_frames_s3prl(features: torch.Tensor, n: int) -> torch.Tensor:
    """phone_linear_concat/model.py concat_frames with 'same' padding, for one utterance (B = 1), ported."""
    def roll(x: torch.Tensor, k: int) -> torch.Tensor:
        if k > 0:
            return torch.cat((x[0].repeat(k, 1), x[:-k]), dim=0)
        return torch.cat((x[-k:], x[-1].repeat(-k, 1)), dim=0)

    b, t, d = features.shape
    f = features.repeat(1, 1, n).view(b, t, n, d).permute(0, 2, 1, 3).clone()
    mid = n // 2
    for r in range(1, mid + 1):
        f[0, mid + r] = roll(f[0][mid + r], r)
        f[0, mid - r] = roll(f[0][mid - r], -r)
    return f.permute(0, 2, 1, 3).reshape(b, t, d * n)


def test_phone_concat_is_s3prls_concat_frames() -> None:
    probe = FrameProbe(1, 4, 3, concat=9, weighted=False)
    captured: list[torch.Tensor] = []
    probe.head = nn.Identity()
    x = torch.randn(1, 1, 20, 4)
    captured.append(probe(x, torch.tensor([20])))
    assert torch.equal(captured[0], _concat_frames_s3prl(x[:, 0], 9))


def test_balanced_indices() -> None:
    idx = balanced_indices([0, 0, 0, 0, 1, 2, 2], 3)
    counts = np.bincount([[0, 0, 0, 0, 1, 2, 2][i] for i in idx])
    assert list(counts) == [4, 4, 4]


class _Capture(nn.Module):
    """A stand-in probe that records what it is fed."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.n, self.seen = n_classes, []
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        self.seen.append((x.detach(), lengths.detach()))
        return torch.zeros(*x.shape[:1], x.shape[2], self.n) + self.w


@pytest.mark.parametrize("cache_gb", [2.0, 0.0])  # cached hidden states / the upstream run on every batch
def test_long_utterances_stay_aligned(smoke_data: Path, cache_gb: float) -> None:
    """Every utterance is longer than the upstream's max_frames (chunked): the frames the probe sees for
    utterance i at frame t are the upstream's own states of that utterance at frame min(t, T_i - 1)."""
    cfg = api.load("tera", "smoke", ["model.max_frames=60", "data.crop_frames=60", f"probe.cache_gb={cache_gb}"])
    torch.manual_seed(0)
    encoder = api.new_task(cfg).encoder.eval()
    pdata = api.probe_data(smoke_data, cfg, ["phone_linear"])
    pset = pdata.set_for("phone_linear")
    assert min(pset.samples) // 160 > 60  # all longer than a chunk
    states = States(encoder, pset, cfg.features, cfg.probe, torch.device("cpu"))
    assert (states.cache is None) == (cache_gb == 0)
    task = ProbeTask("phone_linear", states, cfg.probe)
    task.probe = _Capture(len(pset.classes))
    ids = pset.indices("train")[:4]
    batch = collate_items([states.dataset("train").dataset[i] for i in ids])
    logits, y = task.logits(batch)
    (x, lengths), = task.probe.seen
    for j, i in enumerate(ids):
        wave = load_clip(pset.clips[i], 16000)
        full = _own_states(encoder, wave, cfg)
        labels = pset.targets[i]
        assert int(lengths[j]) == len(labels) and logits.shape[1] == y.shape[1] == max(len(pset.targets[k]) for k in ids)
        for t in (0, len(labels) // 2, len(labels) - 1):
            assert torch.allclose(x[j, :, t], full[:, min(t, full.shape[1] - 1)], atol=1e-5)
        assert torch.equal(y[j, : len(labels)], torch.as_tensor(labels.astype(np.int64)))
        assert (y[j, len(labels):] == -100).all()


def _own_states(encoder: nn.Module, wave: np.ndarray, cfg) -> torch.Tensor:
    """One utterance alone through the upstream, cut to round(N / 160) frames (s3prl Featurizer.tolist)."""
    from pretrainlab.speech.features import extract

    with torch.no_grad():
        hs = torch.stack(encoder(extract(wave, cfg.features)[None])["hidden_states"])[:, 0]
    return hs[:, : downstream_frames(len(wave), cfg.features)]


def test_speaker_frame_labels_every_frame(smoke_data: Path) -> None:
    cfg = api.load("tera", "smoke", [])
    pdata = api.probe_data(smoke_data, cfg, ["speaker_frame"])
    pset = pdata.set_for("speaker_frame")
    states = States(None, pset, cfg.features, cfg.probe, torch.device("cpu"))
    task = ProbeTask("speaker_frame", states, cfg.probe)
    ids = pset.indices("test")[:3]
    batch = collate_items([states.dataset("test").dataset[i] for i in ids])
    logits, y = task.logits(batch)
    for j, i in enumerate(ids):
        n = int(batch["lengths"][j])
        assert (y[j, :n] == pset.targets[i]).all() and (y[j, n:] == -100).all()
    assert logits.shape[:2] == y.shape


def test_finetune_selects_on_dev_and_saved_probes_give_the_test_accuracy(probe_run: Path, smoke_data: Path) -> None:
    import json

    metrics = json.loads((probe_run / "metrics.json").read_text())
    cfg = api.load("tera", "smoke", [])
    for t in ("phone_linear", "keyword"):
        assert metrics[f"{t}_best_step"] in range(cfg.probe.eval_every, cfg.probe.max_steps + 1, cfg.probe.eval_every)
        assert 0 <= metrics[f"{t}_acc"] <= 1 and 0 <= metrics[f"{t}_dev_acc"] <= 1
    probes = api.load_probes(probe_run)
    assert set(probes.probes) == {"phone_linear", "keyword"} and probes.init
    assert len(probes.classes["keyword"]) == 12
    again = api.evaluate(probe_run, data=smoke_data)
    for t in ("phone_linear", "keyword"):
        assert again[f"{t}_acc"] == pytest.approx(metrics[f"{t}_acc"], abs=1e-6)
    trainer_runs = {p.name for p in (probe_run / "runs").iterdir()}
    assert trainer_runs == {"phone_linear", "keyword"}  # each probe trained by the core Trainer
    assert (probe_run / "runs" / "keyword" / "metrics.jsonl").exists()


def test_logmel_baseline_and_random_encoder(smoke_data: Path, tmp_path: Path) -> None:
    cfg = api.load("tera", "smoke", ["train.progress=false", "probe.tasks=[phone_linear,speaker]"])
    pdata = api.probe_data(smoke_data, cfg)
    m = api.run_probes(None, pdata, cfg, tmp_path / "logmel")
    assert set(m) == {f"{t}_{k}" for t in ("phone_linear", "speaker") for k in ("acc", "dev_acc", "best_step")}
    torch.manual_seed(0)
    m2 = api.run_probes(api.new_task(cfg).encoder, pdata, dataclasses.replace(cfg), tmp_path / "random")
    assert all(0 <= m2[f"{t}_acc"] <= 1 for t in ("phone_linear", "speaker"))
