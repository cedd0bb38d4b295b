"""Audio input / output with soundfile (torchaudio 2.9 no longer reads files).

``load_audio`` is the one entry point for every audio file the domain reads. Before decoding it
reads the header: a declared size over the core's decode limit (``pretrainlab.core.guards``), an
implausible sample rate, a WAV whose ``data`` chunk declares more bytes than the file holds
(truncated: libsndfile would silently return the part that is there) and, with ``max_seconds``,
audio that is too long are refused with a :class:`DataError` naming the file. After decoding it
refuses empty, too short, non-finite and short-read (truncated FLAC / OGG) audio; it downmixes
stereo, resamples other rates and flags clipping, returning what it did as ``notes`` so callers
(the demo, the CLI) can say so.
"""

from __future__ import annotations

import dataclasses
import struct
from math import gcd
from pathlib import Path

import numpy as np

from pretrainlab.core.data import DataError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
MIN_SECONDS = 0.1  # shorter than this gives fewer than ~10 frames at the 10 ms hop
CLIP_FRACTION = 0.01  # more than 1 % of samples at full scale: called clipped
MIN_RATE, MAX_RATE = 1000, 384_000  # sample rates outside this range are corrupt headers, not audio


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


def wav_data_shortfall(path: Path) -> tuple[int, int] | None:
    """For a RIFF / WAVE file: ``(declared, present)`` bytes of its ``data`` chunk when the file holds
    fewer than the header declares (a truncated file), else None. Other formats: None."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = path.stat().st_size
            for _ in range(256):  # chunk walk; a real WAV has a handful of chunks before 'data'
                hdr = f.read(8)
                if len(hdr) < 8:
                    return None
                cid, n = hdr[:4], struct.unpack("<I", hdr[4:])[0]
                if cid == b"data":
                    present = size - f.tell()
                    # 0 / 0xFFFFFFFF: size left open by a streaming writer (nothing declared)
                    return (n, present) if 0 < n < 0xFFFFFFFF and n > present else None
                f.seek(n + (n & 1), 1)
    except OSError:
        return None
    return None


def _reason(e: Exception, path: Path) -> str:
    """libsndfile's message without the file's full path (the DataError names the file already)."""
    text = str(e).replace(f"Error opening '{path}': ", "").replace(f"'{path}'", path.name).replace(str(path), path.name)
    return " ".join(text.split()) or type(e).__name__


def read_header(path: str | Path, sample_rate: int = 16000, max_seconds: float | None = None) -> tuple[int, int, int]:
    """(frames, channels, sample rate) of an audio file from its header, after every check that needs no
    decoding: readable, a plausible rate, the declared size under the decode limit, not a truncated
    WAV, not longer than ``max_seconds``. DataError naming the file otherwise."""
    import soundfile as sf

    from pretrainlab.core.guards import check_decode_size

    path = Path(path)
    if path.is_dir():
        raise DataError(path, "is a folder, expected an audio file (wav / flac / ogg)")
    try:
        info = sf.info(str(path))
    except FileNotFoundError as e:
        raise DataError(path, "file not found") from e
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError) as e:
        raise DataError(path, f"not a readable audio file (wav / flac / ogg expected): {_reason(e, path)}") from e
    sr, frames, channels = int(info.samplerate), int(info.frames), int(info.channels)
    if not MIN_RATE <= sr <= MAX_RATE:
        raise DataError(path, f"header declares a sample rate of {sr} Hz (expected {MIN_RATE}-{MAX_RATE} Hz): "
                              "corrupt header")
    check_decode_size(path, (frames, channels), 4, "audio")
    check_decode_size(path, (max(frames, 1) * sample_rate // sr + 1,), 8, "resampled audio")
    short = wav_data_shortfall(path)
    if short is not None:
        raise DataError(path, f"truncated: the WAV header declares {short[0]} bytes of audio but the file holds "
                              f"{short[1]} ({100 * short[1] / short[0]:.0f} %)")
    if max_seconds is not None and frames / sr > max_seconds:
        raise DataError(path, f"audio is {frames / sr:.1f} s long; at most {max_seconds:g} s are accepted here")
    return frames, channels, sr


def load_audio(path: str | Path, sample_rate: int = 16000, min_seconds: float = MIN_SECONDS,
               max_seconds: float | None = None) -> Audio:
    """Read a wav / flac / ogg file as mono float32 at ``sample_rate``.

    Raises:
        DataError: not a readable audio file, truncated, over the decode limit or ``max_seconds``,
            an implausible sample rate, empty, shorter than ``min_seconds`` or non-finite samples.
    """
    import soundfile as sf

    path = Path(path)
    notes: list[str] = []
    frames, _, _ = read_header(path, sample_rate, max_seconds)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError) as e:
        raise DataError(path, f"cannot decode the audio ({_reason(e, path)}): truncated or corrupt") from e
    if data.size == 0:
        raise DataError(path, "audio is empty (0 samples)")
    if data.shape[0] < frames:
        raise DataError(path, f"truncated: the header declares {frames} samples but only {data.shape[0]} decode")
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


def audio_frames(path: str | Path, sample_rate: int = 16000) -> int:
    """Samples of ``path`` at ``sample_rate`` from its header alone (no decoding; :func:`read_header`'s checks)."""
    frames, _, sr = read_header(path, sample_rate)
    return frames * sample_rate // sr


def save_audio(path: str | Path, wave: np.ndarray, sample_rate: int) -> None:
    """Write ``(N,)`` float audio as 16-bit PCM (format from the suffix: .wav / .flac)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(wave, -1.0, 1.0), sample_rate, subtype="PCM_16")
