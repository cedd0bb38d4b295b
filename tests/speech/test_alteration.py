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


@pytest.mark.parametrize("L", [24, 40, 69])
def test_one_block_is_exactly_seven_frames(L: int) -> None:
    """round(L * 0.15 / 7) == 1 for 24 <= L < 70: exactly one run of exactly 7 consecutive frames, starting
    in [0, L - 7 - 1] (s3prl: valid_start_max = L - 7 - 1)."""
    x = torch.ones(400, 80, 4)
    lengths = torch.full((400,), L)
    _, mask, _ = time_alteration(x, lengths, CFG, torch.Generator().manual_seed(L))
    starts = set()
    for row in mask:
        idx = torch.nonzero(row).flatten()
        assert len(idx) == 7 and int(idx[-1] - idx[0]) == 6
        starts.add(int(idx[0]))
    assert min(starts) == 0 and max(starts) == L - 8  # every start reachable, none beyond


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
    cfg = dataclasses.replace(CFG, time=False, frequency=True, magnitude_prob=0.3)
    no_noise = dataclasses.replace(cfg, magnitude=False)
    x, lengths = _batch(B=4, T=50, D=80)
    g = torch.Generator().manual_seed(8)
    hits = 0
    n = 1000
    for i in range(n):
        a = alter(x, lengths, cfg, torch.Generator().manual_seed(i))
        if i < 50:
            b = alter(x, lengths, no_noise, torch.Generator().manual_seed(i))
            assert torch.equal(a.mask, b.mask)  # noise marks nothing for the loss
        hits += int(a.noised)
    assert abs(hits / n - 0.3) < 0.045
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


@pytest.mark.parametrize("L", [1, 7, 8, 20, 30, 120])
def test_short_utterances(L: int) -> None:
    """round(L * 0.15 / 7) blocks of 7 frames (0 for L <= 23: 1, 7, 8, 20 mark nothing; 30: one block of 7;
    120: three blocks, overlapping at most into 7..21 frames), never past L."""
    x = torch.ones(64, 130, 10)
    lengths = torch.full((64,), L)
    _, mask, _ = time_alteration(x, lengths, CFG, torch.Generator().manual_seed(0))
    n_blocks = round(L * 0.15 / 7)
    marked = mask.sum(1)
    assert not mask[:, L:].any()
    if n_blocks == 0:
        assert int(marked.max()) == 0
    elif n_blocks == 1:
        assert (marked == 7).all()
    else:
        assert int(marked.min()) >= 7 and int(marked.max()) == 7 * n_blocks and int(marked.max()) <= 21


def test_magnitude_only_marks_every_valid_frame() -> None:
    """The M row (s3prl mask_proportion 0, mask_frequency 0): mask_label is all ones (here: every valid frame)."""
    cfg = dataclasses.replace(CFG, time=False, frequency=False, magnitude=True, magnitude_prob=1.0)
    x, lengths = _batch(B=6)
    a = alter(x, lengths, cfg, torch.Generator().manual_seed(3))
    valid = torch.arange(x.shape[1])[None, :] < lengths[:, None]
    assert torch.equal(a.mask, valid[:, :, None].expand_as(a.mask))
    assert bool(a.noised) and not torch.equal(a.inputs[valid], x[valid])


def test_target_mask_for_another_target() -> None:
    """A linear-spectrogram target (Mockingjay): every dim of the time-altered frames counts."""
    from pretrainlab.speech.alteration import target_mask

    cfg = dataclasses.replace(CFG, frequency=False, magnitude=False)
    x, lengths = _batch(B=4)
    a = alter(x, lengths, cfg, torch.Generator().manual_seed(4))
    m = target_mask(a, lengths, 201)
    assert m.shape == (4, x.shape[1], 201)
    assert torch.equal(m.any(-1), a.time_mask) and torch.equal(m.all(-1), a.time_mask)
