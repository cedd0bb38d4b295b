"""Audio input / output with soundfile (torchaudio 2.9 no longer reads files).

``load_audio`` is the one entry point for every file the domain reads: it rejects empty, too
short, non-finite and non-audio files with a :class:`DataError` naming the file, and it downmixes
stereo, resamples other rates and flags clipping, returning what it did as ``notes`` so callers
(the demo, the CLI) can say so.
"""

from __future__ import annotations

import dataclasses
from math import gcd
from pathlib import Path

import numpy as np

from pretrainlab.core.data import DataError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
MIN_SECONDS = 0.1  # shorter than this gives fewer than ~8 frames at the 10 ms hop
CLIP_FRACTION = 0.01  # more than 1 % of samples at full scale: called clipped


@dataclasses.dataclass
class Audio:
    """A mono waveform ``(N,)`` float32 in [-1, 1] at ``sample_rate``, and what loading changed."""

    wave: np.ndarray
    sample_rate: int
    notes: list[str]

    @property
    def seconds(self) -> float:
        return len(self.wave) / float(self.sample_rate)


def resample(wave: np.ndarray, orig: int, target: int) -> np.ndarray:
    """Polyphase resampling ``(N,) -> (N * target / orig,)`` (scipy ``resample_poly``)."""
    if orig == target:
        return wave
    from scipy.signal import resample_poly

    g = gcd(int(orig), int(target))
    return resample_poly(wave, target // g, orig // g).astype(np.float32)


def load_audio(path: str | Path, sample_rate: int = 16000, min_seconds: float = MIN_SECONDS) -> Audio:
    """Read a wav / flac / ogg file as mono float32 at ``sample_rate``.

    Raises:
        DataError: not an audio file, empty, shorter than ``min_seconds`` or non-finite samples.
    """
    import soundfile as sf

    path = Path(path)
    notes: list[str] = []
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except FileNotFoundError as e:
        raise DataError(path, "file not found") from e
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError) as e:
        raise DataError(path, f"not a readable audio file (wav / flac / ogg expected): {e}") from e
    if data.size == 0:
        raise DataError(path, "audio is empty (0 samples)")
    if not np.isfinite(data).all():
        raise DataError(path, f"audio holds {int((~np.isfinite(data)).sum())} non-finite (NaN / inf) samples")
    if data.shape[1] > 1:
        notes.append(f"{data.shape[1]} channels downmixed to mono")
        data = data.mean(axis=1, keepdims=True)
    wave = np.ascontiguousarray(data[:, 0])
    peak_frac = float((np.abs(wave) >= 0.999).mean())
    if peak_frac > CLIP_FRACTION:
        notes.append(f"clipped: {100 * peak_frac:.1f} % of samples at full scale")
    if sr != sample_rate:
        notes.append(f"resampled from {sr} Hz to {sample_rate} Hz")
        wave = resample(wave, sr, sample_rate)
    if len(wave) / sample_rate < min_seconds:
        raise DataError(path, f"audio is too short ({len(wave) / sample_rate * 1000:.0f} ms; "
                              f"at least {min_seconds * 1000:.0f} ms needed)")
    return Audio(wave.astype(np.float32), sample_rate, notes)


def save_audio(path: str | Path, wave: np.ndarray, sample_rate: int) -> None:
    """Write ``(N,)`` float audio as 16-bit PCM (format from the suffix: .wav / .flac)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(wave, -1.0, 1.0), sample_rate, subtype="PCM_16")
