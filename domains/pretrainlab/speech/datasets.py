"""Readers for the speech formats (each raises ``DataError`` naming the file on bad input).

- a folder of audio files (``*.wav`` / ``*.flac`` / ``*.ogg``, searched recursively);
- the LibriSpeech layout ``<root>/LibriSpeech/<subset>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` with
  ``<spk>-<chapter>.trans.txt`` transcripts (``<root>`` may also be ``LibriSpeech/`` or the subset folder);
- CPC phone alignments ``converted_aligned_phones.txt`` (``<utt-id> <phone id per 10 ms frame>...``),
  with ``train_split.txt`` / ``test_split.txt`` and an optional ``phones.txt`` (id -> name);
- HTS ``.lab`` alignments (``start end phone``, times in 100 ns units) next to the audio;
- the Speech Commands layout ``<root>/<keyword>/<speaker>_nohash_<n>.wav`` with ``testing_list.txt`` and
  ``validation_list.txt`` (``_background_noise_`` and folders starting with ``_`` are skipped).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import torch

from pretrainlab.core.data import DataError
from pretrainlab.speech.audio import AUDIO_SUFFIXES, load_audio
from pretrainlab.speech.config import FeatureConfig, TeraConfig
from pretrainlab.speech.features import extract, num_frames

ALIGN_TOLERANCE = 2  # frames an alignment may differ from the audio's frame count (cropped / padded)


@dataclasses.dataclass
class Utt:
    """One utterance of a corpus: id, file, speaker (and transcript when known)."""

    id: str
    path: Path
    speaker: str = ""
    text: str = ""


def find_audio(root: Path) -> list[Path]:
    """All audio files under ``root`` (sorted); DataError when there are none."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DataError(root, "no such file or folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise DataError(root, f"holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return files


def librispeech_root(root: Path, subset: str = "train-clean-100") -> Path | None:
    """The subset folder of a LibriSpeech layout under ``root``, or None when ``root`` is not one."""
    root = Path(root)
    for cand in (root / "LibriSpeech" / subset, root / subset, root):
        if cand.is_dir() and any(cand.glob("*/*/*.trans.txt")):
            return cand
    return None


def read_transcripts(path: Path) -> dict[str, str]:
    """``<spk>-<chapter>.trans.txt`` -> ``{utt_id: TEXT}``."""
    out = {}
    for i, line in enumerate(Path(path).read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts[0].split("-")) != 3:
            raise DataError(path, f"line {i}: '{parts[0]}' is not a LibriSpeech utterance id <spk>-<chapter>-<utt>")
        out[parts[0]] = parts[1] if len(parts) > 1 else ""
    return out


def librispeech(root: Path, subset: str = "train-clean-100") -> list[Utt]:
    """Utterances of a LibriSpeech-layout corpus (transcripts read, audio listed)."""
    sub = librispeech_root(root, subset)
    if sub is None:
        raise DataError(root, f"not a LibriSpeech layout (expected LibriSpeech/{subset}/<spk>/<chapter>/*.trans.txt)")
    utts = []
    for trans in sorted(sub.glob("*/*/*.trans.txt")):
        for uid, text in read_transcripts(trans).items():
            audio = next((trans.parent / f"{uid}{s}" for s in (".flac", ".wav") if (trans.parent / f"{uid}{s}").exists()),
                         None)
            if audio is None:
                raise DataError(trans, f"utterance {uid} has no {uid}.flac / .wav next to the transcript")
            utts.append(Utt(uid, audio, uid.split("-")[0], text))
    if not utts:
        raise DataError(sub, "no utterances listed in the transcripts")
    return utts


def read_cpc_alignments(path: Path) -> dict[str, np.ndarray]:
    """CPC ``converted_aligned_phones.txt`` -> ``{utt_id: (T,) int64 phone ids}``."""
    out = {}
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            out[parts[0]] = np.array([int(x) for x in parts[1:]], dtype=np.int64)
        except ValueError as e:
            raise DataError(path, f"line {i}: phone ids must be integers ({e})") from e
        if out[parts[0]].size == 0 or (out[parts[0]] < 0).any():
            raise DataError(path, f"line {i}: utterance {parts[0]} has no / negative phone ids")
    if not out:
        raise DataError(path, "alignment file is empty")
    return out


def read_hts_lab(path: Path, hop_ms: float = 10.0, win_ms: float = 25.0) -> list[str]:
    """HTS ``.lab`` (``start end phone`` in 100 ns units) -> the phone at each frame's centre
    (frame ``t`` spans ``[t hop, t hop + win)``; ``1 + (end - win) // hop`` frames, as the features)."""
    segs = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 3:
            raise DataError(path, f"line {i}: expected 'start end phone', got '{line.strip()}'")
        try:
            s, e = int(parts[0]), int(parts[1])
        except ValueError as err:
            raise DataError(path, f"line {i}: times must be integers in 100 ns units ({err})") from err
        if e < s or (segs and s < segs[-1][0]):
            raise DataError(path, f"line {i}: segment times go backwards ({s} -> {e})")
        centre = re.search(r"-([^-+]+)\+", parts[2])  # full-context label "a^b-CENTRE+c=d..." -> CENTRE
        phone = centre.group(1) if centre else parts[2]
        segs.append((s, e, phone))
    if not segs:
        raise DataError(path, "label file is empty")
    hop, win = round(hop_ms * 10000), round(win_ms * 10000)
    n = max(0, 1 + (segs[-1][1] - win) // hop)
    ends = np.array([e for _, e, _ in segs])
    centres = np.arange(n) * hop + win / 2
    idx = np.minimum(np.searchsorted(ends, centres, side="right"), len(segs) - 1)
    return [segs[j][2] for j in idx]


def match_length(labels: np.ndarray, n_frames: int, path: Path, tolerance: int = ALIGN_TOLERANCE) -> np.ndarray:
    """Crop / edge-pad ``(T_a,)`` labels to ``n_frames``; DataError when they differ by more than ``tolerance``."""
    if abs(len(labels) - n_frames) > tolerance:
        raise DataError(path, f"alignment has {len(labels)} frames but the audio gives {n_frames} frames at the "
                              f"10 ms hop (more than {tolerance} apart): wrong file or different frame rate")
    if len(labels) >= n_frames:
        return labels[:n_frames]
    return np.concatenate([labels, np.full(n_frames - len(labels), labels[-1], dtype=labels.dtype)])


def load_features(paths: list[Path], fcfg: FeatureConfig, desc: str = "features") -> list[torch.Tensor]:
    """``(T_i, D)`` features of each file (progress bar)."""
    from tqdm.auto import tqdm

    out = []
    for p in tqdm(paths, desc=desc, unit="file", leave=False):
        out.append(extract(load_audio(p, fcfg.sample_rate).wave, fcfg))
    return out


def pretraining_features(root: Path, cfg: TeraConfig) -> list[torch.Tensor]:
    """Features of the pre-training utterances: a LibriSpeech subset if present, else every audio file."""
    sub = librispeech_root(root, cfg.subset)
    paths = [u.path for u in librispeech(root, cfg.subset)] if sub is not None else find_audio(root)
    return load_features(paths, cfg.features, "pre-training features")


@dataclasses.dataclass
class PhoneCorpus:
    """Utterances with frame-level phone ids, split as CPC's ``train_split`` / ``test_split``."""

    utts: list[Utt]
    labels: list[np.ndarray]  # (T_i,) int64 per utterance, at the 10 ms hop
    is_test: list[bool]
    phones: list[str]  # id -> name


def phone_corpus(root: Path, fcfg: FeatureConfig, subset: str = "train-clean-100",
                 max_utterances: int = 0) -> tuple[PhoneCorpus, list[torch.Tensor]]:
    """Read utterances, features and CPC (else HTS ``.lab``) alignments; lengths are checked.

    ``max_utterances > 0`` keeps that many utterances, evenly spaced over the sorted corpus (every
    speaker stays represented), so probing the full train-clean-100 fits in memory."""
    utts = librispeech(root, subset)
    if 0 < max_utterances < len(utts):
        keep = np.linspace(0, len(utts) - 1, max_utterances).round().astype(int)
        utts = [utts[i] for i in sorted(set(keep.tolist()))]
    sub = librispeech_root(root, subset)
    assert sub is not None
    base = sub.parent
    cpc = next((p for p in (base / "converted_aligned_phones.txt", sub / "converted_aligned_phones.txt",
                            Path(root) / "converted_aligned_phones.txt") if p.exists()), None)
    feats = load_features([u.path for u in utts], fcfg, "phone corpus")
    labels: list[np.ndarray] = []
    if cpc is not None:
        table = read_cpc_alignments(cpc)
        names_file = cpc.parent / "phones.txt"
        n_ids = 1 + max(int(v.max()) for v in table.values())
        phones = names_file.read_text().split() if names_file.exists() else [str(i) for i in range(n_ids)]
        for u, f in zip(utts, feats):
            if u.id not in table:
                raise DataError(cpc, f"no alignment for utterance {u.id}")
            labels.append(match_length(table[u.id], f.shape[0], cpc))
        split_file = cpc.parent / "test_split.txt"
        test = set(split_file.read_text().split()) if split_file.exists() else set()
    else:
        names: dict[str, int] = {}
        raw = []
        for u, f in zip(utts, feats):
            lab = u.path.with_suffix(".lab")
            if not lab.exists():
                raise DataError(u.path, "no phone alignment (converted_aligned_phones.txt or a .lab next to the audio)")
            ph = read_hts_lab(lab, fcfg.hop_ms, fcfg.win_ms)
            ids = np.array([names.setdefault(p, len(names)) for p in ph], dtype=np.int64)
            raw.append(match_length(ids, f.shape[0], lab))
        labels = raw
        phones = list(names)
        test = set()
    if not test:  # no split file: the last quarter of each speaker's utterances
        by_spk: dict[str, list[str]] = {}
        for u in utts:
            by_spk.setdefault(u.speaker, []).append(u.id)
        for ids in by_spk.values():
            test.update(ids[len(ids) - max(1, len(ids) // 4):])
    return PhoneCorpus(utts, labels, [u.id in test for u in utts], phones), feats


@dataclasses.dataclass
class KeywordCorpus:
    """Speech Commands clips: paths, keyword ids, split ('train' | 'validation' | 'test')."""

    paths: list[Path]
    labels: list[int]
    splits: list[str]
    keywords: list[str]


def speech_commands(root: Path) -> KeywordCorpus:
    """Read the Speech Commands layout under ``root`` (or ``root/speech_commands``)."""
    root = Path(root)
    if (root / "speech_commands").is_dir():
        root = root / "speech_commands"
    if not root.is_dir():
        raise DataError(root, "no such folder")
    words = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(("_", ".")))
    if not words:
        raise DataError(root, "not a Speech Commands layout (expected <keyword>/<speaker>_nohash_<n>.wav folders)")

    def listing(name: str) -> set[str]:
        p = root / name
        return set(p.read_text().split()) if p.exists() else set()

    testing, validation = listing("testing_list.txt"), listing("validation_list.txt")
    paths, labels, splits = [], [], []
    for k, w in enumerate(words):
        for p in sorted((root / w).glob("*.wav")):
            rel = f"{w}/{p.name}"
            paths.append(p)
            labels.append(k)
            splits.append("test" if rel in testing else "validation" if rel in validation else "train")
    if not paths:
        raise DataError(root, "keyword folders hold no .wav clips")
    if "test" not in splits:
        raise DataError(root / "testing_list.txt", "missing or lists none of the clips: no test split")
    return KeywordCorpus(paths, labels, splits, words)


def check_features_fit(feats: list[torch.Tensor], fcfg: FeatureConfig, paths: list[Path]) -> None:
    """Every feature sequence has at least one frame (else DataError naming the file)."""
    for f, p in zip(feats, paths):
        if f.shape[0] < 1:
            raise DataError(p, f"audio gives no frames (needs at least {fcfg.win} samples)")


__all__ = [
    "KeywordCorpus",
    "PhoneCorpus",
    "Utt",
    "find_audio",
    "librispeech",
    "librispeech_root",
    "load_features",
    "match_length",
    "num_frames",
    "phone_corpus",
    "pretraining_features",
    "read_cpc_alignments",
    "read_hts_lab",
    "read_transcripts",
    "speech_commands",
]
