"""Acoustic features exactly as s3prl computes them for TERA (TERA Sec. IV-A).

``mel`` / ``linear`` (s3prl ``upstream/baseline/preprocessor.py`` ``OnlinePreprocessor``, what every
logMel TERA checkpoint uses), for a ``(N,)`` waveform:

1. scale to ``target_db`` dB RMS: ``wave * 10^(-25/20) / (rms + 1e-10)`` (``builder.py``
   ``_normalize_wav_decibel``);
2. centred STFT: ``n_fft = (n_freq - 1) * 2 = 400``, hop 160, window 400 (periodic Hann), reflect
   padding, one-sided; power ``|X|^2`` -> ``linear`` ``(n_freq, T)`` with ``T = N // 160 + 1``;
3. ``mel``: torchaudio ``MelScale`` (HTK scale, 0 - 8 kHz, no filter normalisation);
4. ``log(x + 1e-10)``; ``deltas`` orders of ``compute_deltas`` (window 5) stacked on the feature axis;
5. per-utterance CMVN: ``(x - mean) / (std + 1e-10)`` over time with the UNBIASED std.

``fbank`` (s3prl ``upstream/baseline/extracter.py``, the ``kaldi`` audio block of ``fbankBase``):
torchaudio's Kaldi ``fbank`` of the raw waveform (no dB scaling; Kaldi framing, ``snip_edges``:
``T = 1 + (N - 400) // 160``), deltas, CMVN as above.

A frame ``t`` of ``mel`` / ``linear`` is centred on sample ``160 t``; a ``fbank`` frame starts there.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from pretrainlab.speech.config import FeatureConfig


def normalize_db(wave: Tensor, target_db: float = -25.0, eps: float = 1e-10) -> Tensor:
    """Scale ``(N,)`` to ``target_db`` dB RMS (s3prl ``_normalize_wav_decibel``)."""
    rms = wave.pow(2).mean().pow(0.5)
    return wave * (10 ** (target_db / 20)) / (rms + eps)


def num_frames(n_samples: int, cfg: FeatureConfig) -> int:
    """Frames of an ``n_samples`` waveform: ``N // hop + 1`` (centred STFT) or ``1 + (N - win) // hop`` (Kaldi)."""
    n = int(n_samples)
    if cfg.kind == "fbank":
        return max(0, 1 + (n - cfg.win) // cfg.hop)
    return n // cfg.hop + 1


def frame_centre(t: np.ndarray | int, cfg: FeatureConfig) -> np.ndarray:
    """Sample at the centre of frame ``t`` (``hop t``, or ``hop t + win / 2`` for Kaldi framing)."""
    t = np.asarray(t, dtype=np.float64)
    return t * cfg.hop + (cfg.win / 2 if cfg.kind == "fbank" else 0.0)


@lru_cache(maxsize=8)
def _window(win: int) -> Tensor:
    return torch.hann_window(win)  # periodic, as torch.hann_window / s3prl's registered buffer


@lru_cache(maxsize=8)
def _melscale(sample_rate: int, n_mels: int, n_stft: int) -> torch.nn.Module:
    import torchaudio

    return torchaudio.transforms.MelScale(n_mels=n_mels, sample_rate=sample_rate, n_stft=n_stft)


def power_spectrogram(wave: Tensor, cfg: FeatureConfig) -> Tensor:
    """``(N,)`` -> ``(n_freq, N // hop + 1)`` power spectrogram (centred, reflect-padded STFT)."""
    if wave.numel() <= cfg.n_fft // 2:  # reflect padding needs more samples than the half window
        wave = torch.nn.functional.pad(wave, (0, cfg.n_fft // 2 + 1 - wave.numel()))
    spec = torch.stft(wave, n_fft=cfg.n_fft, hop_length=cfg.hop, win_length=cfg.win, window=_window(cfg.win),
                      center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    return spec.abs().pow(2)


def cmvn(feat: Tensor, eps: float = 1e-10) -> Tensor:
    """Per-utterance CMVN of ``(T, D)`` over time: ``(x - mean) / (unbiased std + eps)`` (s3prl)."""
    if feat.shape[0] < 2:  # the unbiased std of one frame is undefined: centre only
        return feat - feat.mean(0, keepdim=True)
    return (feat - feat.mean(0, keepdim=True)) / (feat.std(0, keepdim=True) + eps)


def _stack_deltas(feat: Tensor, order: int, win: int) -> Tensor:
    """``(D, T)`` -> ``(D * (1 + order), T)``: the features and ``order`` successive deltas."""
    import torchaudio

    out = [feat]
    for _ in range(order):
        out.append(torchaudio.functional.compute_deltas(out[-1], win_length=win))
    return torch.cat(out, dim=0)


def _select(linear: Tensor, cfg: FeatureConfig, kind: str, log: bool, deltas: int, use_cmvn: bool) -> Tensor:
    """One s3prl feature (``select_feat``) from the power spectrogram: ``(n_freq, T)`` -> ``(T, D)``."""
    raw = _melscale(cfg.sample_rate, cfg.n_mels, cfg.n_freq)(linear) if kind == "mel" else linear
    if log:
        raw = (raw + cfg.eps).log()
    feat = _stack_deltas(raw, deltas, cfg.delta_win).t()
    return cmvn(feat, cfg.eps) if use_cmvn else feat


def _as_wave(wave: np.ndarray | Tensor) -> Tensor:
    w = wave if isinstance(wave, Tensor) else torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    w = w.float().reshape(-1)
    if w.numel() == 0:
        raise ValueError("empty waveform")
    return w


def _fbank(w: Tensor, cfg: FeatureConfig) -> Tensor:
    import torchaudio

    if w.numel() < cfg.win:  # Kaldi framing gives no frame for less than one window
        w = torch.nn.functional.pad(w, (0, cfg.win - w.numel()))
    fb = torchaudio.compliance.kaldi.fbank(w[None], sample_frequency=cfg.sample_rate, num_mel_bins=cfg.n_mels,
                                           frame_length=cfg.win_ms, frame_shift=cfg.hop_ms, use_log_fbank=cfg.log)
    feat = _stack_deltas(fb.t(), cfg.deltas, cfg.delta_win).t()
    return cmvn(feat, cfg.eps) if cfg.cmvn else feat


def extract_pair(wave: np.ndarray | Tensor, cfg: FeatureConfig, normalize: bool = True) -> tuple[Tensor, Tensor]:
    """``(N,)`` -> (input ``(T, cfg.dim)``, target ``(T, cfg.target_dim)``) from ONE spectrogram (s3prl's
    preprocessor computes both channels of the same waveform). The target is the input when
    ``target_kind`` is empty. ``normalize=False``: the wave is already at ``target_db`` (s3prl's
    pre-training set scales the whole utterance before cropping)."""
    w = _as_wave(wave)
    if cfg.kind == "fbank":
        feat = _fbank(w, cfg)
        return feat, feat
    linear = power_spectrogram(normalize_db(w, cfg.target_db) if normalize else w, cfg)
    feat = _select(linear, cfg, cfg.kind, cfg.log, cfg.deltas, cfg.cmvn)
    if not cfg.target_kind:
        return feat, feat
    return feat, _select(linear, cfg, cfg.target_kind, cfg.target_log, cfg.target_deltas, cfg.target_cmvn)


def extract(wave: np.ndarray | Tensor, cfg: FeatureConfig) -> Tensor:
    """``(N,)`` waveform at ``cfg.sample_rate`` -> ``(num_frames(N), cfg.dim)`` float32 input features."""
    w = _as_wave(wave)
    if cfg.kind == "fbank":
        return _fbank(w, cfg)
    linear = power_spectrogram(normalize_db(w, cfg.target_db), cfg)
    return _select(linear, cfg, cfg.kind, cfg.log, cfg.deltas, cfg.cmvn)
