"""TERA network, reconstruction loss and pre-training task."""

from __future__ import annotations

import math

import torch

from pretrainlab.core.losses import masked_l1
from pretrainlab.speech.api import load
from pretrainlab.speech.config import ModelConfig
from pretrainlab.speech.tera import TeraTask, pad_collate, resolve_warmup
from pretrainlab.speech.transformer_encoder import Featurizer, TeraEncoder, sinusoidal_positions

SMALL = ModelConfig(hidden=32, layers=2, heads=2, ffn=64, max_frames=200, dropout=0.0, attention_dropout=0.0)


def test_sinusoidal_positions_formula() -> None:
    """s3prl builder.py get_sinusoid_table: pos / 10000^(2 (j // 2) / H) in float64, sin even / cos odd."""
    import numpy as np

    pe = sinusoidal_positions(1500, 64)
    pos, i = 7, 3
    assert math.isclose(float(pe[pos, 2 * i]), math.sin(pos / 10000 ** (2 * i / 64)), abs_tol=1e-6)
    assert math.isclose(float(pe[pos, 2 * i + 1]), math.cos(pos / 10000 ** (2 * i / 64)), abs_tol=1e-6)
    angle = np.arange(1500)[:, None] / np.power(10000, 2 * (np.arange(64) // 2) / 64)
    ref = np.where(np.arange(64) % 2 == 0, np.sin(angle), np.cos(angle)).astype(np.float32)
    assert float((pe.numpy() - ref).__abs__().max()) == 0.0  # rounded once to float32, as s3prl's table


def test_long_inputs_are_chunked_into_equal_parts() -> None:
    """s3prl builder.py: T > sequence_length -> torch.chunk(x, ceil(T / L)), each chunk encoded alone."""
    torch.manual_seed(0)
    enc = TeraEncoder(80, SMALL).eval()  # max_frames 200
    x = torch.randn(1, 450, 80)
    out = enc(x)["hidden_states"]
    parts = [enc(c)["hidden_states"] for c in torch.chunk(x, 3, dim=1)]  # 3 chunks of 150, positions from 0
    for k in range(len(out)):
        assert torch.allclose(out[k], torch.cat([p[k] for p in parts], 1), atol=1e-6)
    import dataclasses

    whole = TeraEncoder(80, dataclasses.replace(SMALL, max_frames=450)).eval()
    whole.load_state_dict(enc.state_dict())
    assert not torch.allclose(out[-1], whole(x)["last_hidden_state"], atol=1e-3)  # chunking does change the result


def test_ffn_has_no_inner_dropout() -> None:
    """s3prl's FFN: intermediate.dense -> act -> output.dense -> dropout (no dropout after the activation)."""
    enc = TeraEncoder(80, ModelConfig(hidden=32, layers=1, heads=2, ffn=64, dropout=0.3, attention_dropout=0.3))
    layer = enc.layers[0]
    assert layer.dropout.p == 0.0 and layer.dropout1.p == 0.3 and layer.dropout2.p == 0.3
    assert layer.self_attn.dropout == 0.3


def test_encoder_interface_and_post_ln() -> None:
    enc = TeraEncoder(80, SMALL).eval()
    out = enc(torch.randn(3, 50, 80), torch.tensor([50, 30, 10]))
    assert out["last_hidden_state"].shape == (3, 50, 32)
    assert len(out["hidden_states"]) == SMALL.layers + 1
    assert torch.equal(out["hidden_states"][-1], out["last_hidden_state"])
    assert all(not layer.norm_first for layer in enc.layers)  # BERT-style post-LN


def test_padding_does_not_change_valid_frames() -> None:
    torch.manual_seed(0)
    enc = TeraEncoder(80, SMALL).eval()
    x = torch.randn(1, 20, 80)
    a = enc(x, torch.tensor([20]))["last_hidden_state"]
    padded = torch.cat([x, torch.randn(1, 15, 80)], 1)
    b = enc(padded, torch.tensor([20]))["last_hidden_state"][:, :20]
    assert torch.allclose(a, b, atol=1e-5)


def test_featurizer_is_softmax_weighted_sum() -> None:
    f = Featurizer(3)
    with torch.no_grad():
        f.weights.copy_(torch.tensor([0.0, 1.0, 2.0]))
    x = torch.randn(3, 4, 5)
    w = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0)
    assert torch.allclose(f(x), (w[:, None, None] * x).sum(0), atol=1e-6)


def test_task_loss_is_masked_l1_on_altered_positions() -> None:
    cfg = load("tera", "smoke", [])
    task = TeraTask(cfg)
    batch = pad_collate([{"feat": torch.randn(60, 80)}, {"feat": torch.randn(45, 80)}])
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(1)
    pred, altered = task.reconstruct(batch["feat"], batch["lengths"], g)
    manual = ((pred - batch["feat"]).abs() * altered.mask).sum() / altered.mask.sum()
    assert torch.allclose(masked_l1(pred, batch["feat"], altered.mask), manual, atol=1e-5)
    out = task(batch)
    assert set(out) >= {"loss", "l1"} and out["loss"].ndim == 0


def test_warmup_is_seven_percent() -> None:
    cfg = resolve_warmup(load("tera", "tiny", ["train.max_steps=1000"]))  # config_runner.yaml warmup_proportion
    assert cfg.train.warmup_steps == 70 and cfg.train.schedule == "linear"


def test_loss_goes_down() -> None:
    torch.manual_seed(0)
    cfg = load("tera", "smoke", ["model.dropout=0.0", "model.attention_dropout=0.0"])
    task = TeraTask(cfg)
    t = torch.linspace(0, 6.28, 80)
    feats = [torch.sin(t[None, :] * (1 + i % 3) + torch.arange(n)[:, None] * 0.2) for i, n in enumerate([80, 70, 60, 50])]
    batch = pad_collate([{"feat": f} for f in feats])
    opt = torch.optim.Adam(task.parameters(), lr=3e-3)
    losses = []
    for step in range(40):
        pred, altered = task.reconstruct(batch["feat"], batch["lengths"], torch.Generator().manual_seed(step % 4))
        loss = masked_l1(pred, batch["feat"], altered.mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5
