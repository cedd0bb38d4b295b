"""Synthetic speech corpus from eSpeak NG, written in the real formats the readers take.

Layout written under ``out/`` (the LibriSpeech, CPC and Speech Commands / SUPERB conventions)::

    LibriSpeech/train-clean-100/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac   16 kHz mono FLAC
    LibriSpeech/train-clean-100/<spk>/<chapter>/<spk>-<chapter>.trans.txt    "<utt-id> TRANSCRIPT"
    LibriSpeech/train-clean-100/<spk>/<chapter>/<spk>-<chapter>-<utt>.lab    HTS alignment (100 ns units)
    LibriSpeech/converted_aligned_phones.txt   CPC: "<utt-id> <phone id per 10 ms frame> ..."
    LibriSpeech/phones.txt                     phone id -> name (one per line, id order)
    LibriSpeech/train_split.txt, test_split.txt   CPC's utterance-id splits
    speech_commands/<word>/<speaker-hash>_nohash_<n>.wav        1 s clips: 10 keywords + other words
    speech_commands/_background_noise_/*.wav                    noise recordings (SUPERB's _silence_ source)
    speech_commands/validation_list.txt, testing_list.txt       Warden's lists (dev speakers; test: none here)
    speech_commands_test/<class>/*.wav         SUPERB's test set layout: 10 keywords, _unknown_, _silence_

Speakers are eSpeak NG voices x variants (``en-us+m3``, ``en+f2``...) with their own pitch, range
and speaking rate (jittered per utterance); utterances are random sentences; every file gets
added noise (SNR 15-35 dB) and a third a synthetic room reverberation. Phone labels come from
eSpeak's phoneme events: the phone at each frame's centre, one label per upstream frame (frame
``t`` centred on sample ``160 t``, ``N // 160 + 1`` labels). Keyword speakers' hashes are chosen so
that s3prl's hashing rule puts the dev speakers in dev and the others in train; the test speakers'
clips go to the separate test set, as in SUPERB.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from pretrainlab.speech.audio import resample, save_audio
from pretrainlab.speech.espeak import SILENCE, synthesize
from pretrainlab.speech.formats import KEYWORDS, SILENCE_CLASS, UNKNOWN, warden_split

SAMPLE_RATE = 16000
HOP = 160
AUXILIARY = ("bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow")  # v1's other words
WORDS = ("the", "of", "and", "a", "to", "in", "he", "have", "it", "that", "for", "they", "with", "as", "not",
         "on", "she", "at", "by", "this", "we", "you", "do", "but", "from", "or", "which", "one", "would", "all",
         "will", "there", "say", "who", "make", "when", "can", "more", "if", "no", "man", "out", "other", "so",
         "what", "time", "up", "go", "about", "than", "into", "could", "state", "only", "new", "year", "some",
         "take", "come", "these", "know", "see", "use", "get", "like", "then", "first", "any", "work", "now",
         "may", "such", "give", "over", "think", "most", "even", "find", "day", "also", "after", "way", "many",
         "must", "look", "before", "great", "back", "through", "long", "where", "much", "should", "well",
         "people", "down", "own", "just", "because", "good", "each", "those", "feel", "seem", "how", "high",
         "too", "place", "little", "world", "very", "still", "nation", "hand", "old", "life", "tell", "write",
         "become", "here", "show", "house", "both", "between", "need", "mean", "call", "develop", "under",
         "last", "right", "move", "thing", "general", "school", "never", "same", "another", "begin", "while",
         "number", "part", "turn", "real", "leave", "might", "want", "point", "form", "off", "child", "few",
         "small", "since", "against", "ask", "late", "home", "interest", "large", "person", "end", "open",
         "public", "follow", "during", "present", "without", "again", "hold", "govern", "around", "possible",
         "head", "consider", "word", "program", "problem", "however", "lead", "system", "set", "order", "eye",
         "plan", "run", "keep", "face", "fact", "group", "play", "stand", "increase", "early", "course",
         "change", "help", "line", "river", "garden", "winter", "morning", "yellow", "music", "water")
VOICES = ("en-us", "en", "en-gb-x-rp", "en-029")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
# profile: (speakers, utterances per speaker, words per utterance (lo, hi), keyword repetitions per speaker)
PROFILES = {"smoke": (4, 4, (3, 5), 1), "tiny": (10, 20, (5, 9), 3), "full": (40, 100, (6, 14), 8)}
TEST_FRACTION = 0.25
KW_TEST_FRACTION, KW_DEV_FRACTION = 0.3, 0.1  # keyword speakers in the test set / in dev


def keyword_hash(i: int, split: str) -> str:
    """An 8-hex speaker hash that s3prl's ``split_dataset`` rule assigns to ``split`` ('train' / 'dev')."""
    k = 0
    while True:
        h = hashlib.sha1(f"spk{i}-{k}".encode()).hexdigest()[:8]
        if warden_split(f"{h}_nohash_0.wav") == split:
            return h
        k += 1


def speaker_table(n: int, rng: np.random.Generator) -> list[dict[str, object]]:
    """``n`` distinct voices: voice + variant, base pitch / range / rate."""
    combos = [(v, var) for var in VARIANTS for v in VOICES]
    order = rng.permutation(len(combos))[:n]
    out = []
    for i, j in enumerate(order):
        voice, var = combos[int(j)]
        female = var.startswith("f")
        out.append({"id": 100 + i, "chapter": 1000 + i, "voice": f"{voice}+{var}",
                    "pitch": int(rng.integers(45, 80) if female else rng.integers(20, 55)),
                    "range": int(rng.integers(30, 80)), "rate": int(rng.integers(135, 195))})
    return out


def frame_labels(phones: list[tuple[int, str]], sr_events: int, n_samples: int) -> list[str]:
    """Phone active at each frame centre (frame ``t`` of the centred STFT is centred on sample ``160 t``;
    ``N // 160 + 1`` frames at 16 kHz, the upstream's frame count)."""
    n_frames = n_samples // HOP + 1
    starts = np.array([s * SAMPLE_RATE / sr_events for s, _ in phones], dtype=np.float64)
    names = [p for _, p in phones]
    centres = np.arange(n_frames) * HOP
    idx = np.searchsorted(starts, centres, side="right") - 1
    return [SILENCE if i < 0 else names[i] for i in idx]


def degrade(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Room reverberation (a third of the files) and additive noise at 15-35 dB SNR."""
    from scipy.signal import fftconvolve

    x = wave.astype(np.float64)
    if rng.random() < 1 / 3:
        rt60 = rng.uniform(0.15, 0.45)
        n = int(rt60 * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        ir = rng.normal(0, 1, n) * np.exp(-6.9 * t / rt60)
        ir[0] = 1.0 / max(1e-3, rng.uniform(0.3, 1.0))
        ir /= np.sqrt((ir ** 2).sum())
        x = fftconvolve(x, ir)[: len(x)]
    snr = rng.uniform(15, 35)
    p = (x ** 2).mean() + 1e-12
    x = x + rng.normal(0, np.sqrt(p / 10 ** (snr / 10)), len(x))
    return (x / max(1.0, np.abs(x).max() / 0.95)).astype(np.float32)


def speak(text: str, spk: dict[str, object], rng: np.random.Generator
          ) -> tuple[np.ndarray, list[str], list[tuple[int, str]]]:
    """16 kHz waveform, frame labels and ``[(start sample at 16 kHz, phone)]`` of ``text`` spoken by ``spk``
    (pitch / rate jittered)."""
    utt = synthesize(text, str(spk["voice"]), rate=int(spk["rate"]) + int(rng.integers(-15, 16)),
                     pitch=int(np.clip(int(spk["pitch"]) + int(rng.integers(-6, 7)), 0, 99)),
                     pitch_range=int(spk["range"]))
    wave = resample(utt.wave, utt.sample_rate, SAMPLE_RATE)
    lead = int(rng.integers(800, 3200))  # 50-200 ms of leading silence
    wave = np.concatenate([np.zeros(lead, np.float32), wave, np.zeros(int(rng.integers(800, 3200)), np.float32)])
    phones = [(0, SILENCE)] + [(s + lead * utt.sample_rate / SAMPLE_RATE, p) for s, p in utt.phones]
    labels = frame_labels([(round(s), p) for s, p in phones], utt.sample_rate, len(wave))
    return wave, labels, [(round(s * SAMPLE_RATE / utt.sample_rate), p) for s, p in phones]


def write_lab(path: Path, phones: list[tuple[int, str]], n_samples: int) -> None:
    """HTS mono label file: ``start end phone`` per phone, times in 100 ns units (16 kHz sample = 625)."""
    lines = []
    for i, (s, p) in enumerate(phones):
        e = phones[i + 1][0] if i + 1 < len(phones) else n_samples
        e = min(max(e, s), n_samples)
        if e > s:
            lines.append(f"{s * 625} {e * 625} {p}")
    path.write_text("\n".join(lines) + "\n")


def generate(out: Path, profile: str = "tiny", seed: int = 0) -> None:
    """Write the LibriSpeech-style corpus with CPC + HTS alignments and the Speech Commands set."""
    from tqdm.auto import tqdm

    if profile not in PROFILES:
        raise ValueError(f"unknown profile '{profile}' (use {', '.join(PROFILES)})")
    n_spk, n_utt, (lo, hi), reps = PROFILES[profile]
    rng = np.random.default_rng(seed)
    out = Path(out)
    speakers = speaker_table(n_spk, rng)
    root = out / "LibriSpeech"
    sub = root / "train-clean-100"
    aligned: dict[str, list[str]] = {}
    train_ids, test_ids = [], []
    n_test = max(1, round(n_utt * TEST_FRACTION))
    seconds = 0.0
    bar = tqdm(total=n_spk * n_utt + n_spk * (len(KEYWORDS) * reps + len(AUXILIARY)), desc="espeak corpus",
               unit="utt", leave=False)
    for spk in speakers:
        folder = sub / str(spk["id"]) / str(spk["chapter"])
        folder.mkdir(parents=True, exist_ok=True)
        trans = []
        for u in range(n_utt):
            words = [str(w) for w in rng.choice(WORDS, size=int(rng.integers(lo, hi + 1)))]
            uid = f"{spk['id']}-{spk['chapter']}-{u:04d}"
            wave, labels, phones = speak(" ".join(words), spk, rng)
            wave = degrade(wave, rng)
            save_audio(folder / f"{uid}.flac", wave, SAMPLE_RATE)
            write_lab(folder / f"{uid}.lab", phones, len(wave))
            trans.append(f"{uid} {' '.join(words).upper()}")
            aligned[uid] = labels
            (test_ids if u >= n_utt - n_test else train_ids).append(uid)
            seconds += len(wave) / SAMPLE_RATE
            bar.update()
        (folder / f"{spk['id']}-{spk['chapter']}.trans.txt").write_text("\n".join(trans) + "\n")
    inventory = [SILENCE] + sorted({p for lab in aligned.values() for p in lab} - {SILENCE})
    ids = {p: i for i, p in enumerate(inventory)}
    (root / "phones.txt").write_text("\n".join(inventory) + "\n")
    (root / "converted_aligned_phones.txt").write_text(
        "".join(f"{uid} {' '.join(str(ids[p]) for p in lab)}\n" for uid, lab in aligned.items()))
    (root / "train_split.txt").write_text("\n".join(train_ids) + "\n")
    (root / "test_split.txt").write_text("\n".join(test_ids) + "\n")

    kw, kw_test = out / "speech_commands", out / "speech_commands_test"
    n_test = max(1, round(n_spk * KW_TEST_FRACTION))
    n_dev = max(1, round(n_spk * KW_DEV_FRACTION))
    roles = ["test"] * n_test + ["dev"] * n_dev + ["train"] * (n_spk - n_test - n_dev)
    validation = []
    for i, (spk, role) in enumerate(zip(speakers, roles)):
        h = keyword_hash(i, "dev" if role == "dev" else "train")
        for word in KEYWORDS + AUXILIARY:
            for r in range(reps if word in KEYWORDS else 1):
                clip = _keyword_clip(word, spk, rng)
                if role == "test":
                    rel = f"{word if word in KEYWORDS else UNKNOWN}/{h}_nohash_{word}_{r}.wav"
                    save_audio(kw_test / rel, clip, SAMPLE_RATE)
                else:
                    rel = f"{word}/{h}_nohash_{r}.wav"
                    save_audio(kw / rel, clip, SAMPLE_RATE)
                    if role == "dev":
                        validation.append(rel)
                bar.update()
        if role == "test":  # SUPERB's test set holds 1 s _silence_ clips of background noise
            for r in range(reps):
                save_audio(kw_test / SILENCE_CLASS / f"{h}_silence_{r}.wav", _noise(SAMPLE_RATE, rng), SAMPLE_RATE)
    (kw / "testing_list.txt").write_text("")
    (kw / "validation_list.txt").write_text("\n".join(validation) + "\n")
    for name in ("white_noise", "pink_noise", "running_tap"):
        save_audio(kw / "_background_noise_" / f"{name}.wav", _noise(3 * SAMPLE_RATE, rng, name), SAMPLE_RATE)
    bar.close()
    print(f"wrote {n_spk * n_utt} utterances ({seconds / 60:.1f} min, {len(inventory)} phones, {n_spk} speakers) "
          f"and {n_spk * (len(KEYWORDS) * reps + len(AUXILIARY))} keyword clips ({profile})")


def _keyword_clip(word: str, spk: dict[str, object], rng: np.random.Generator) -> np.ndarray:
    """``word`` spoken by ``spk``, placed at a random offset in a 1 s clip, degraded."""
    wave, _, _ = speak(word, spk, rng)
    clip = np.zeros(SAMPLE_RATE, np.float32)
    n = min(len(wave), SAMPLE_RATE)
    off = int(rng.integers(0, SAMPLE_RATE - n + 1))
    s = (len(wave) - n) // 2
    clip[off:off + n] = wave[s:s + n]
    return degrade(clip, rng)


def _noise(n: int, rng: np.random.Generator, kind: str = "") -> np.ndarray:
    """``n`` samples of background noise: white, pink (1/f), or a tap-like band-passed noise."""
    x = rng.normal(0, 1, n)
    if kind in ("pink_noise", "running_tap", ""):
        f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        spec = np.fft.rfft(x)
        if kind == "running_tap":
            spec *= np.exp(-0.5 * ((f - 2500) / 1200) ** 2)
        else:
            spec /= np.sqrt(np.maximum(f, 20.0))
        x = np.fft.irfft(spec, n)
    return (x / (np.abs(x).max() + 1e-9) * rng.uniform(0.05, 0.3)).astype(np.float32)
