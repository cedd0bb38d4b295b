"""Formula-level and statistical tests of TERA's alterations (TERA Sec. III-A..C, s3prl semantics)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pretrainlab.speech.alteration import alter, frequency_alteration, magnitude_alteration, time_alteration
from pretrainlab.speech.config import AlterationConfig

CFG = AlterationConfig()


def _batch(B: int = 64, T: int = 300, D: int = 80, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D, generator=g) + 5.0  # no exact zeros in the clean input
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    lengths[0] = T
    x = x * (torch.arange(T)[None, :, None] < lengths[:, None, None])
    return x, lengths


def test_time_alteration_block_count_and_proportion() -> None:
    x, lengths = _batch()
    _, mask, _ = time_alteration(x, lengths, CFG, torch.Generator().manual_seed(1))
    for b in range(len(lengths)):
        L = int(lengths[b])
        n_blocks = round(L * 0.15 / 7)  # s3prl: proportion = round(len * mask_proportion / consecutive)
        marked = int(mask[b].sum())
        assert marked <= n_blocks * 7  # blocks may overlap
        assert marked >= 7 if n_blocks else marked == 0
        assert not mask[b, L:].any()  # never in the padding
    frac = (mask.sum(1).float() / lengths).mean()
    assert 0.11 < float(frac) < 0.16  # ~15 % minus overlaps


def test_time_alteration_blocks_are_seven_frames() -> None:
    cfg = dataclasses.replace(CFG, time_proportion=0.03)  # sparse: blocks rarely touch
    x, lengths = _batch(B=32, T=400)
    _, mask, _ = time_alteration(x, lengths, cfg, torch.Generator().manual_seed(2))
    for row in mask:
        edges = torch.diff(torch.cat([torch.zeros(1), row.float(), torch.zeros(1)]))
        runs = (torch.nonzero(edges == -1).flatten() - torch.nonzero(edges == 1).flatten())
        assert all(int(r) % 7 == 0 or int(r) > 7 for r in runs)
        assert (runs >= 7).all()


def test_time_dice_zero_replace_keep() -> None:
    x, lengths = _batch(B=2000, T=120, D=8, seed=3)
    out, mask, dice = time_alteration(x, lengths, CFG, torch.Generator().manual_seed(4))
    zero = dice < 0.8
    replace = (dice >= 0.8) & (dice < 0.9)
    keep = dice >= 0.9
    assert abs(float(zero.float().mean()) - 0.8) < 0.03
    assert abs(float(replace.float().mean()) - 0.1) < 0.02
    m = mask[:, :, None].expand_as(x)
    assert (out[zero][m[zero]] == 0).all()  # zeroed
    assert torch.equal(out[keep], x[keep])  # kept (but still marked for the loss)
    assert mask[keep].any()
    # replaced frames are frames of the same utterance, and unmarked frames are untouched
    for b in torch.nonzero(replace).flatten()[:50]:
        rows = out[b][mask[b]]
        src = x[b, : int(lengths[b])]
        assert all(((src - r).abs().sum(1) == 0).any() for r in rows)
        assert torch.equal(out[b][~mask[b]], x[b][~mask[b]])


def test_frequency_band_width_and_position() -> None:
    x, lengths = _batch(B=4000, T=10, D=80, seed=5)
    out, band = frequency_alteration(x, lengths, CFG, torch.Generator().manual_seed(6))
    widths = band.sum(1)
    assert int(widths.max()) == int(80 * 0.2) and int(widths.min()) == 0  # U{0..16}
    counts = torch.bincount(widths, minlength=17).float() / len(widths)
    assert (counts - 1 / 17).abs().max() < 0.02  # uniform width
    assert (out.masked_select(band[:, None, :].expand_as(out)) == 0).all()
    assert torch.equal(out[~band[:, None, :].expand_as(out)], x[~band[:, None, :].expand_as(out)])
    # contiguous band
    for row in band[:200]:
        idx = torch.nonzero(row).flatten()
        if len(idx):
            assert int(idx[-1] - idx[0]) + 1 == len(idx)


def test_frequency_marks_band_on_all_valid_frames() -> None:
    cfg = dataclasses.replace(CFG, time=False, magnitude=False)
    x, lengths = _batch(B=16)
    a = alter(x, lengths, cfg, torch.Generator().manual_seed(7))
    for b in range(16):
        L = int(lengths[b])
        expect = a.band[b][None, :].expand(L, -1)
        assert torch.equal(a.mask[b, :L], expect)
        assert not a.mask[b, L:].any()


def test_magnitude_probability_and_std_not_marked() -> None:
    cfg = dataclasses.replace(CFG, time=False, frequency=False, magnitude_prob=0.3)
    x, lengths = _batch(B=4, T=50, D=80)
    g = torch.Generator().manual_seed(8)
    hits = 0
    n = 1500
    for _ in range(n):
        a = alter(x, lengths, cfg, g)
        assert not a.mask.any()  # noise marks nothing for the loss
        hits += int(a.noised)
    assert abs(hits / n - 0.3) < 0.04
    out, noised = magnitude_alteration(x, dataclasses.replace(cfg, magnitude_prob=1.0), g)
    assert bool(noised)
    assert abs(float((out - x).std()) - 0.2) < 0.01


def test_alter_combined_mask_is_union_and_padding_zero() -> None:
    x, lengths = _batch(B=8)
    a = alter(x, lengths, CFG, torch.Generator().manual_seed(9))
    valid = torch.arange(x.shape[1])[None, :] < lengths[:, None]
    expect = (a.time_mask[:, :, None] | (valid[:, :, None] & a.band[:, None, :])) & valid[:, :, None]
    assert torch.equal(a.mask, expect)
    assert (a.inputs[~valid] == 0).all()


@pytest.mark.parametrize("L", [1, 7, 8, 20, 30])
def test_short_utterances(L: int) -> None:
    x = torch.ones(2, 40, 10)
    lengths = torch.tensor([L, 40])
    _, mask, _ = time_alteration(x, lengths, CFG, torch.Generator().manual_seed(0))
    assert int(mask[0].sum()) == (0 if round(L * 0.15 / 7) == 0 else int(mask[0].sum()))
    assert not mask[0, L:].any()
