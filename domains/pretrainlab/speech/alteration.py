"""TERA's three alterations of the input frames (TERA Sec. III-A, III-B, III-C), vectorised.

Semantics follow the reference implementation (s3prl ``pretrain/mockingjay/task.py``,
``process_train_MAM_data``), per utterance ``b`` with ``L_b`` valid frames of ``D`` dims:

- **Time alteration** (Sec. III-A): ``n_b = round(L_b * 0.15 / 7)`` block starts drawn without
  replacement from ``[0, max(L_b - 7 - 1, 0)]``; each covers 7 consecutive frames (blocks may
  overlap). ONE dice per utterance for all its blocks: ``< 0.8`` the frames are set to zero,
  ``[0.8, 0.9)`` they are replaced by other randomly chosen 7-frame blocks of the same utterance,
  else they are kept. All chosen frames (every dim) are marked for the loss in all three cases.
- **Frequency alteration** (Sec. III-B): one band per utterance of width ``w ~ U{0..int(0.2 D)}``
  starting at ``s ~ U{0..D - w - 1}``, zeroed over the whole utterance; the band's bins are marked
  for the loss on every valid frame.
- **Magnitude alteration** (Sec. III-C): ONE dice per batch; with probability ``p`` Gaussian noise
  ``N(0, 0.2)`` is added to every element of the altered input. Noise marks nothing for the loss.
- With time and frequency alteration both off (the ``M`` row) s3prl's ``mask_label`` is all ones: the
  loss is taken on every frame.

Deviations: s3prl drops utterances with nothing marked from the batch; here they stay in the
forward pass but add nothing to the masked L1 mean (the loss's value and gradient are the same, and
no host sync is needed). In the ``M`` row s3prl's all-ones label also covers the batch's zero
padding (training the outputs there towards zero); here only valid frames count.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from pretrainlab.speech.config import AlterationConfig


@dataclasses.dataclass
class Altered:
    """``inputs`` ``(B, T, D)`` altered frames; ``mask`` ``(B, T, D)`` bool, True where the loss is taken;
    ``time_mask`` ``(B, T)`` frames chosen by time alteration; ``band`` ``(B, D)`` bins of the frequency band;
    ``dice`` ``(B,)`` the per-utterance time dice; ``noised`` 0-d bool, whether the batch got noise."""

    inputs: Tensor
    mask: Tensor
    time_mask: Tensor
    band: Tensor
    dice: Tensor
    noised: Tensor


def valid_mask(lengths: Tensor, T: int) -> Tensor:
    """``(B,)`` lengths -> ``(B, T)`` bool, True on valid frames."""
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


def _random_starts(n_blocks: Tensor, max_start: Tensor, T: int, k: int, generator: torch.Generator | None,
                   device: torch.device) -> tuple[Tensor, Tensor]:
    """``k`` start positions per row drawn without replacement from ``[0, max_start]``; ``(B, k)`` starts and
    ``(B, k)`` validity (block index < n_blocks)."""
    B = n_blocks.shape[0]
    scores = torch.rand(B, T, generator=generator, device=device)
    pos = torch.arange(T, device=device)[None, :]
    scores = scores.masked_fill(pos > max_start[:, None], 2.0)  # never chosen before any valid start
    starts = scores.argsort(dim=1)[:, :k]
    valid = torch.arange(k, device=device)[None, :] < n_blocks[:, None]
    return starts, valid


def time_alteration(x: Tensor, lengths: Tensor, cfg: AlterationConfig,
                    generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """TERA Sec. III-A on ``x`` ``(B, T, D)`` -> (altered ``(B, T, D)``, frame mask ``(B, T)``, dice ``(B,)``)."""
    B, T, _ = x.shape
    dev = x.device
    C = cfg.time_consecutive
    n_blocks = torch.round(lengths.float() * cfg.time_proportion / C).long()  # round half to even, as Python's
    max_start = (lengths - C - 1).clamp(min=0)
    n_blocks = torch.minimum(n_blocks, max_start + 1)
    k = max(1, min(T, round(T * cfg.time_proportion / C) + 1))  # static upper bound on blocks per row
    starts, valid = _random_starts(n_blocks, max_start, T, k, generator, dev)
    offs = torch.arange(C, device=dev)
    dst = (starts[:, :, None] + offs).clamp(max=T - 1)  # (B, k, C)
    vmask = valid[:, :, None].expand_as(dst)
    frame_mask = torch.zeros(B, T, device=dev).scatter_add_(1, dst.reshape(B, -1), vmask.reshape(B, -1).float()) > 0
    dice = torch.rand(B, generator=generator, device=dev)
    zero = dice < cfg.time_zero_prob
    replace = (dice >= cfg.time_zero_prob) & (dice < cfg.time_zero_prob + cfg.time_replace_prob)
    # replacement: chosen block j takes the frames of another random block j of the same utterance
    src_starts, _ = _random_starts(n_blocks, max_start, T, k, generator, dev)
    src = (src_starts[:, :, None] + offs).clamp(max=T - 1)
    index = torch.arange(T + 1, device=dev).expand(B, T + 1).clone()  # column T: a sink for no-op writes
    rep_ok = (vmask & replace[:, None, None]).reshape(B, -1)
    index.scatter_(1, torch.where(rep_ok, dst.reshape(B, -1), T), src.reshape(B, -1))
    index = index[:, :T]
    out = x.gather(1, index[:, :, None].expand_as(x))
    out = out.masked_fill((frame_mask & zero[:, None])[:, :, None], 0.0)
    return out, frame_mask, dice


def frequency_alteration(x: Tensor, lengths: Tensor, cfg: AlterationConfig,
                         generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """TERA Sec. III-B on ``x`` ``(B, T, D)`` -> (altered ``(B, T, D)``, band ``(B, D)`` bool)."""
    B, _T, D = x.shape
    dev = x.device
    max_w = int(D * cfg.frequency_max_proportion)
    width = torch.floor(torch.rand(B, generator=generator, device=dev) * (max_w + 1)).long()  # U{0..max_w}
    start = torch.floor(torch.rand(B, generator=generator, device=dev) * (D - width).float()).long()  # U{0..D-w-1}
    d = torch.arange(D, device=dev)[None, :]
    band = (d >= start[:, None]) & (d < (start + width)[:, None])
    return x.masked_fill(band[:, None, :], 0.0), band


def magnitude_alteration(x: Tensor, cfg: AlterationConfig,
                         generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """TERA Sec. III-C: with probability ``p`` (one dice per batch) add ``N(0, std)`` to all of ``x``."""
    dice = torch.rand((), generator=generator, device=x.device)
    noised = dice < cfg.magnitude_prob
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * cfg.magnitude_std
    return x + noise * noised.to(x.dtype), noised


def alter(x: Tensor, lengths: Tensor, cfg: AlterationConfig, generator: torch.Generator | None = None) -> Altered:
    """Apply the enabled alterations to clean frames ``x`` ``(B, T, D)`` with valid ``lengths`` ``(B,)``."""
    B, T, D = x.shape
    dev = x.device
    valid = valid_mask(lengths, T)
    out = x
    mask = torch.zeros(B, T, D, dtype=torch.bool, device=dev)
    tmask = torch.zeros(B, T, dtype=torch.bool, device=dev)
    band = torch.zeros(B, D, dtype=torch.bool, device=dev)
    dice = torch.ones(B, device=dev)
    noised = torch.zeros((), dtype=torch.bool, device=dev)
    if cfg.time:
        out, tmask, dice = time_alteration(out, lengths, cfg, generator)
        mask |= tmask[:, :, None]
    if cfg.frequency:
        out, band = frequency_alteration(out, lengths, cfg, generator)
        mask |= valid[:, :, None] & band[:, None, :]
    if cfg.magnitude:
        out, noised = magnitude_alteration(out, cfg, generator)
    if not (cfg.time or cfg.frequency):  # s3prl: mask_label = ones when neither alteration marks anything
        mask = valid[:, :, None].expand(B, T, D).clone()
    out = out.masked_fill(~valid[:, :, None], 0.0)
    return Altered(out, mask & valid[:, :, None], tmask & valid, band, dice, noised)


def target_mask(altered: Altered, lengths: Tensor, target_dim: int) -> Tensor:
    """The loss mask for a reconstruction target of ``target_dim`` dims: ``altered.mask`` when the target is
    the input; for another target (Mockingjay's linear spectrogram) every dim of the altered frames (s3prl
    marks whole frames; frequency alteration then needs equal dims, see ``TeraConfig.check``)."""
    B, T, D = altered.mask.shape
    if target_dim == D:
        return altered.mask
    frames = altered.mask.any(-1)  # time-altered frames (or every valid frame in the M-only case)
    return frames[:, :, None].expand(B, T, target_dim) & valid_mask(lengths, T)[:, :, None]
