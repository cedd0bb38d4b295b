"""Acoustic features of TERA (TERA Sec. IV-A; s3prl ``upstream/mockingjay`` feature extractor).

``(N,)`` waveform -> ``(T, D)`` frames at a 10 ms hop with a 25 ms window, ``T = 1 + (N - 400) // 160``
at 16 kHz (no centre padding, Kaldi's ``snip_edges`` framing, so frame ``t`` covers samples
``[160 t, 160 t + 400)`` and frame-level labels line up at the same hop):

- waveform scaled to -25 dB RMS first (s3prl ``_normalize_wav_decibel``);
- ``logmel``: 80-dim log Mel spectrogram (torchaudio ``MelSpectrogram``), TERA's main input;
- ``fbank``: Kaldi fbank 80 + first and second deltas = 240 dims (the paper's alternative);
- per-utterance CMVN (zero mean, unit variance per dimension).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from pretrainlab.speech.config import FeatureConfig


def normalize_db(wave: torch.Tensor, target_db: float = -25.0, eps: float = 1e-10) -> torch.Tensor:
    """Scale ``(N,)`` so its RMS is ``target_db`` dBFS: ``wave * 10^(target/20) / rms``."""
    rms = wave.float().pow(2).mean().sqrt()
    return wave * (10.0 ** (target_db / 20.0)) / (rms + eps)


def num_frames(n_samples: int, cfg: FeatureConfig) -> int:
    """Frames of an ``n_samples`` waveform (``snip_edges`` framing): ``1 + (N - win) // hop``, >= 0."""
    return max(0, 1 + (int(n_samples) - cfg.win) // cfg.hop)


@lru_cache(maxsize=4)
def _mel(sample_rate: int, n_fft: int, win: int, hop: int, n_mels: int) -> torch.nn.Module:
    import torchaudio

    return torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, win_length=win,
                                                hop_length=hop, n_mels=n_mels, center=False, power=2.0)


def cmvn(feat: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-utterance mean / variance normalisation of ``(T, D)`` over time."""
    return (feat - feat.mean(0, keepdim=True)) / (feat.std(0, unbiased=False, keepdim=True) + eps)


def extract(wave: np.ndarray | torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """``(N,)`` waveform at ``cfg.sample_rate`` -> ``(T, cfg.dim)`` float32 features."""
    w = torch.as_tensor(np.asarray(wave, dtype=np.float32)) if not isinstance(wave, torch.Tensor) else wave.float()
    if w.numel() < cfg.win:
        w = torch.nn.functional.pad(w, (0, cfg.win - w.numel()))
    w = normalize_db(w, cfg.target_db)
    if cfg.kind == "logmel":
        spec = _mel(cfg.sample_rate, cfg.n_fft, cfg.win, cfg.hop, cfg.n_mels)(w)  # (n_mels, T)
        feat = torch.log(spec + cfg.log_eps).t().contiguous()
    elif cfg.kind == "fbank":
        import torchaudio

        fb = torchaudio.compliance.kaldi.fbank(w[None] * 32768.0, num_mel_bins=cfg.n_mels, frame_length=cfg.win_ms,
                                               frame_shift=cfg.hop_ms, sample_frequency=cfg.sample_rate,
                                               dither=0.0, energy_floor=0.0)
        feats = [fb]
        cur = fb.t()[None]
        for _ in range(cfg.deltas):
            cur = torchaudio.functional.compute_deltas(cur)
            feats.append(cur[0].t())
        feat = torch.cat(feats, dim=1)
    else:
        raise ValueError(f"unknown feature kind '{cfg.kind}' (use logmel or fbank)")
    return cmvn(feat) if cfg.cmvn else feat
