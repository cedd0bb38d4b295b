"""Real synthetic speech with eSpeak NG through ctypes (the ``espeakng-loader`` wheel ships the
library and its voice data; Debian's ``libespeak-ng`` is the fallback).

``synthesize(text, voice, rate, pitch)`` returns the 22.05 kHz waveform and eSpeak's phoneme
events (``espeakINITIALIZE_PHONEME_EVENTS``): each phoneme's start sample, from which
:mod:`pretrainlab.speech.synthetic` derives frame-level phone labels at the 10 ms hop.
"""

from __future__ import annotations

import ctypes
import dataclasses
import threading

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
EVENT_LIST_TERMINATED, EVENT_PHONEME = 0, 7
CHARS_UTF8 = 1
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH, PARAM_RANGE = 1, 2, 3, 4
SILENCE = "sil"


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclasses.dataclass
class Utterance:
    """``wave`` ``(N,)`` float32 at ``sample_rate``; ``phones`` ``[(start_sample, phone)]`` in order."""

    wave: np.ndarray
    sample_rate: int
    phones: list[tuple[int, str]]


def normalize_phone(name: str) -> str:
    """eSpeak mnemonic -> phone label: stress marks dropped, pauses become ``sil``."""
    p = name.replace("'", "").replace(",", "").replace("%", "").replace("=", "").strip()
    return SILENCE if (not p or p.startswith("_")) else p


class _Engine:
    _lock = threading.Lock()
    _inst: _Engine | None = None

    def __init__(self) -> None:
        try:
            import espeakng_loader

            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data = espeakng_loader.get_data_path().encode()
        except ImportError:  # Debian's library and data
            lib = ctypes.CDLL("libespeak-ng.so.1")
            data = None
        self.lib = lib
        lib.espeak_Initialize.restype = ctypes.c_int
        self.sample_rate = int(lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data, INITIALIZE_PHONEME_EVENTS))
        if self.sample_rate <= 0:
            raise RuntimeError("eSpeak NG failed to initialise (no voice data found)")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._cb = _CALLBACK(self._callback)
        lib.espeak_SetSynthCallback(self._cb)
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]

    def _callback(self, wav: ctypes.Array, n: int, events: ctypes.Array) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type == EVENT_PHONEME:
                self._events.append((int(e.sample), e.id.decode("utf-8", "replace")))
            i += 1
        return 0

    @classmethod
    def get(cls) -> _Engine:
        with cls._lock:
            if cls._inst is None:
                cls._inst = _Engine()
            return cls._inst

    def synth(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int) -> Utterance:
        with self._lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"eSpeak NG has no voice '{voice}'")
            self.lib.espeak_SetParameter(PARAM_RATE, int(rate), 0)
            self.lib.espeak_SetParameter(PARAM_PITCH, int(pitch), 0)
            self.lib.espeak_SetParameter(PARAM_RANGE, int(pitch_range), 0)
            self._chunks, self._events = [], []
            raw = text.encode("utf-8")
            self.lib.espeak_Synth(raw, len(raw) + 1, 0, 0, 0, CHARS_UTF8, None, None)
            self.lib.espeak_Synchronize()
            wave = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            events = list(self._events)
        phones = [(s, normalize_phone(p)) for s, p in events]
        return Utterance(wave.astype(np.float32) / 32768.0, self.sample_rate, phones)


def synthesize(text: str, voice: str = "en-us", rate: int = 160, pitch: int = 50, pitch_range: int = 50) -> Utterance:
    """Speak ``text`` with an eSpeak NG voice (e.g. ``en-us+f3``), rate in words/min, pitch 0-99."""
    return _Engine.get().synth(text, voice, rate, pitch, pitch_range)
