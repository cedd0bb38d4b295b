"""Readers of the speech formats; each raises ``DataError`` naming the file on bad input.

- a folder of audio files (``*.wav`` / ``*.flac`` / ``*.ogg``, searched recursively);
- the LibriSpeech layout ``<root>/LibriSpeech/<subset>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` with
  ``<spk>-<chapter>.trans.txt`` transcripts, several subsets at once (``train-clean-100``,
  ``train-clean-360``, ``train-other-500``); ``<root>`` may also be ``LibriSpeech/`` or a subset folder;
- CPC phone alignments ``converted_aligned_phones.txt`` (``<utt-id> <phone id per 10 ms frame>...``,
  s3prl ``downstream/phone_linear/data``) with ``train_split.txt`` / ``test_split.txt`` and an optional
  ``phones.txt`` (id -> name);
- HTS ``.lab`` alignments (``start end phone``, times in 100 ns units) next to the audio;
- Speech Commands v1 (``<root>/speech_commands/<word>/<speaker>_nohash_<n>.wav``, ``_background_noise_/``,
  ``validation_list.txt`` / ``testing_list.txt``) and SUPERB's separate test set
  (``<root>/speech_commands_test/<class>/*.wav`` with ``_unknown_`` / ``_silence_`` folders, i.e.
  ``speech_commands_test_set_v0.01``), read as SUPERB's 12 classes (s3prl ``downstream/speech_commands``).

Nothing here decodes audio: corpora are lists of files, labels and splits (lengths come from the
audio headers), so a reader of all of LibriSpeech 960 h holds file names and phone ids only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
from pathlib import Path

import numpy as np

from pretrainlab.core.data import DataError
from pretrainlab.speech.audio import AUDIO_SUFFIXES, audio_frames
from pretrainlab.speech.config import FeatureConfig

ALIGN_TOLERANCE = 2  # frames an alignment may differ from the features (s3prl repeats / cuts the features)
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")  # speech_commands/dataset.py
UNKNOWN, SILENCE_CLASS = "_unknown_", "_silence_"
KEYWORD_CLASSES = (*KEYWORDS, UNKNOWN, SILENCE_CLASS)  # SUPERB KS: 12 classes
MAX_UTTR_PER_CLASS = 2**27 - 1  # speech_commands/expert.py split_dataset (Warden's hashing rule)


def read_text(path: Path, what: str = "text file") -> str:
    """A UTF-8 text file; DataError when missing, a folder or not UTF-8."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError as e:
        raise DataError(p, "file not found") from e
    except IsADirectoryError as e:
        raise DataError(p, f"is a folder, expected a {what}") from e
    except OSError as e:
        raise DataError(p, f"cannot read the {what} ({e.strerror or e})") from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(p, f"line {line}: not UTF-8 text (byte 0x{data[e.start]:02x}); expected a {what}") from None


def find_audio(root: Path) -> list[Path]:
    """All audio files under ``root`` (sorted); DataError when there are none."""
    root = Path(root)
    if root.is_file():
        if root.suffix.lower() not in AUDIO_SUFFIXES:
            raise DataError(root, f"not an audio file (expected {', '.join(AUDIO_SUFFIXES)})")
        return [root]
    if not root.is_dir():
        raise DataError(root, "no such file or folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")
                   and p.is_file())
    if not files:
        raise DataError(root, f"holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return files


# ------------------------------------------------------------------------------------------------ LibriSpeech
@dataclasses.dataclass
class Utt:
    """One utterance: id, file, speaker (and transcript when known)."""

    id: str
    path: Path
    speaker: str = ""
    text: str = ""


def librispeech_root(root: Path, subset: str = "train-clean-100") -> Path | None:
    """The folder of LibriSpeech subset ``subset`` under ``root`` (``root/LibriSpeech/<subset>``,
    ``root/<subset>`` or ``root`` itself when so named), or None."""
    root = Path(root)
    cands = [root / "LibriSpeech" / subset, root / subset] + ([root] if root.name == subset else [])
    return next((c for c in cands if c.is_dir() and any(c.glob("*/*/*.trans.txt"))), None)


def is_librispeech(root: Path) -> bool:
    """``root`` holds LibriSpeech-layout transcripts (any subset)."""
    root = Path(root)
    return any(root.glob("LibriSpeech/*/*/*/*.trans.txt")) or any(root.glob("*/*/*/*.trans.txt")) \
        or any(root.glob("*/*/*.trans.txt"))


def read_transcripts(path: Path) -> dict[str, str]:
    """``<spk>-<chapter>.trans.txt`` -> ``{utt_id: TEXT}``."""
    out = {}
    for i, line in enumerate(read_text(path, "LibriSpeech transcript").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts[0].split("-")) != 3:
            raise DataError(path, f"line {i}: '{parts[0][:40]}' is not a LibriSpeech utterance id <spk>-<chapter>-<utt>")
        out[parts[0]] = parts[1] if len(parts) > 1 else ""
    return out


def librispeech(root: Path, subset: str = "train-clean-100") -> list[Utt]:
    """Utterances of one LibriSpeech subset (transcripts read, audio listed, nothing decoded)."""
    sub = librispeech_root(root, subset)
    if sub is None:
        raise DataError(root, f"no LibriSpeech subset '{subset}' (expected LibriSpeech/{subset}/<spk>/<chapter>/"
                              "*.trans.txt)")
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


@dataclasses.dataclass
class AudioFile:
    """One pre-training file and its length in samples at the feature rate (from the header)."""

    path: Path
    samples: int


def pretraining_files(root: Path, subsets: list[str], fcfg: FeatureConfig, min_frames: int = 0) -> list[AudioFile]:
    """The pre-training utterances: the named LibriSpeech subsets (each must be there) or, for a folder
    that is not LibriSpeech, every audio file under it; utterances of ``<= min_frames`` frames are
    dropped (s3prl ``max_timestep: -200`` keeps ``length > 200 * 160`` samples). Reads headers only."""
    from tqdm.auto import tqdm

    root = Path(root)
    if is_librispeech(root):
        paths = [u.path for s in subsets for u in librispeech(root, s)]
    else:
        paths = find_audio(root)
    files = [AudioFile(p, audio_frames(p, fcfg.sample_rate))
             for p in tqdm(paths, desc="audio headers", unit="file", leave=False, disable=len(paths) < 2000)]
    kept = [f for f in files if f.samples > min_frames * fcfg.hop]
    if not kept:
        longest = max(f.samples for f in files) / fcfg.sample_rate
        raise DataError(root, f"no utterance is longer than min_frames={min_frames} frames "
                              f"({min_frames * fcfg.hop / fcfg.sample_rate:.2f} s; the longest is {longest:.2f} s); "
                              "lower min_frames")
    return kept


# ------------------------------------------------------------------------------------------------ alignments
def read_cpc_alignments(path: Path, keep: set[str] | None = None) -> dict[str, np.ndarray]:
    """CPC ``converted_aligned_phones.txt`` -> ``{utt_id: (T,) int16 phone ids}`` (only ``keep`` when given)."""
    out: dict[str, np.ndarray] = {}
    for i, line in enumerate(read_text(path, "phone alignment file").splitlines(), 1):
        parts = line.split()
        if not parts or (keep is not None and parts[0] not in keep):
            continue
        try:
            ids = np.array([int(x) for x in parts[1:]], dtype=np.int64)
        except ValueError as e:
            raise DataError(path, f"line {i}: phone ids must be integers ({e})") from e
        if ids.size == 0 or (ids < 0).any() or (ids > 32767).any():
            raise DataError(path, f"line {i}: utterance {parts[0][:40]} has no phone ids or ids outside 0..32767")
        out[parts[0]] = ids.astype(np.int16)
    if not out:
        raise DataError(path, "alignment file lists none of the utterances" if keep else "alignment file is empty")
    return out


def read_hts_lab(path: Path, fcfg: FeatureConfig) -> list[str]:
    """HTS ``.lab`` (``start end phone`` in 100 ns units) -> the phone at each feature frame's centre
    (``features.frame_centre``), for every frame whose centre lies before the last segment's end."""
    from pretrainlab.speech.features import frame_centre

    segs: list[tuple[int, int, str]] = []
    for i, line in enumerate(read_text(path, "HTS label file").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 3:
            raise DataError(path, f"line {i}: expected 'start end phone', got '{line.strip()[:60]}'")
        try:
            s, e = int(parts[0]), int(parts[1])
        except ValueError as err:
            raise DataError(path, f"line {i}: times must be integers in 100 ns units ({err})") from err
        if s < 0 or e < s or (segs and s < segs[-1][0]):
            raise DataError(path, f"line {i}: segment times go backwards ({s} -> {e})")
        centre = re.search(r"-([^-+]+)\+", parts[2])  # full-context label "a^b-CENTRE+c=d..." -> CENTRE
        segs.append((s, e, centre.group(1) if centre else parts[2]))
    if not segs:
        raise DataError(path, "label file is empty")
    end_samples = segs[-1][1] * fcfg.sample_rate / 1e7
    hop = float(fcfg.hop)
    n = int(np.ceil(end_samples / hop)) if fcfg.kind != "fbank" else max(0, 1 + int((end_samples - fcfg.win) // hop))
    if n > 10_000_000:
        raise DataError(path, f"label times reach {segs[-1][1] / 1e7:.0f} s: not 100 ns units?")
    centres = frame_centre(np.arange(n), fcfg) * 1e7 / fcfg.sample_rate  # in 100 ns
    ends = np.array([e for _, e, _ in segs])
    idx = np.minimum(np.searchsorted(ends, centres, side="right"), len(segs) - 1)
    return [segs[j][2] for j in idx]


def downstream_frames(n_samples: int, fcfg: FeatureConfig) -> int:
    """Frames an s3prl downstream sees for an ``n_samples`` utterance: ``round(N / hop)``
    (``upstream/interfaces.py`` ``Featurizer.tolist``)."""
    return max(1, round(int(n_samples) / fcfg.hop))


def check_alignment(n_labels: int, n_frames: int, path: Path, uid: str, tolerance: int = ALIGN_TOLERANCE) -> None:
    """An alignment may differ from the features by ``tolerance`` frames; more means a wrong file / rate."""
    if abs(n_labels - n_frames) > tolerance:
        raise DataError(path, f"utterance {uid}: alignment has {n_labels} frames but the audio gives {n_frames} "
                              f"frames at the {1000 * 0.01:.0f} ms hop (more than {tolerance} apart): wrong file or "
                              "different frame rate")


def read_id_list(path: Path) -> list[str]:
    """An utterance-id list (``train_split.txt`` / ``test_split.txt``), one id per line, file order kept."""
    return [ln.strip() for ln in read_text(path, "utterance list").splitlines() if ln.strip()]


def dev_split(train_ids: list[str], fraction: float = 0.1, seed: int = 1337) -> tuple[list[str], list[str]]:
    """s3prl ``phone_linear/dataset.py``: ``random.seed(1337); random.shuffle(ids)``, the first
    ``int(0.9 N)`` train, the rest dev."""
    ids = list(train_ids)
    random.Random(seed).shuffle(ids)
    cut = int(len(ids) * (1 - fraction))
    return ids[:cut], ids[cut:]


@dataclasses.dataclass
class PhoneCorpus:
    """Utterances with frame-level phone ids (CPC's train / test split, dev as s3prl) and speakers."""

    utts: list[Utt]
    samples: list[int]  # audio length in samples at the feature rate (header)
    labels: list[np.ndarray]  # (T_i,) phone ids at the 10 ms hop, as read (never resized)
    split: list[str]  # 'train' | 'dev' | 'test'
    phones: list[str]  # id -> name
    speakers: list[str]  # speaker id -> LibriSpeech speaker

    def speaker_index(self) -> list[int]:
        idx = {s: i for i, s in enumerate(self.speakers)}
        return [idx[u.speaker] for u in self.utts]


def _alignment_file(root: Path, sub: Path) -> Path | None:
    for p in (sub.parent / "converted_aligned_phones.txt", sub / "converted_aligned_phones.txt",
              Path(root) / "converted_aligned_phones.txt"):
        if p.is_file():
            return p
    return None


def phone_corpus(root: Path, fcfg: FeatureConfig, subset: str = "train-clean-100", max_utterances: int = 0,
                 dev_fraction: float = 0.1, dev_seed: int = 1337) -> PhoneCorpus:
    """The phone-probe corpus: utterances, CPC (else HTS ``.lab``) alignments, train / dev / test split.

    The split: ``test_split.txt`` is test; ``train_split.txt`` is shuffled with seed 1337 and cut 90 / 10
    into train / dev (s3prl). Without split files: the last quarter of each speaker's utterances is
    test. ``max_utterances > 0`` keeps that many, evenly spaced over the sorted corpus. Every alignment
    is checked against the audio length (header) before anything is decoded."""
    utts = librispeech(root, subset)
    if 0 < max_utterances < len(utts):
        keep = np.linspace(0, len(utts) - 1, max_utterances).round().astype(int)
        utts = [utts[i] for i in sorted(set(keep.tolist()))]
    sub = librispeech_root(root, subset)
    assert sub is not None
    samples = [audio_frames(u.path, fcfg.sample_rate) for u in utts]
    cpc = _alignment_file(root, sub)
    labels: list[np.ndarray] = []
    if cpc is not None:
        table = read_cpc_alignments(cpc, {u.id for u in utts})
        names_file = cpc.parent / "phones.txt"
        n_ids = 1 + max(int(v.max()) for v in table.values())
        phones = read_text(names_file, "phone list").split() if names_file.exists() else [str(i) for i in range(n_ids)]
        if len(phones) < n_ids:
            raise DataError(names_file, f"names {len(phones)} phones but the alignments use ids up to {n_ids - 1}")
        for u, n in zip(utts, samples):
            if u.id not in table:
                raise DataError(cpc, f"no alignment for utterance {u.id}")
            check_alignment(len(table[u.id]), downstream_frames(n, fcfg), cpc, u.id)
            labels.append(table[u.id])
        split_dir = cpc.parent
    else:
        names: dict[str, int] = {}
        for u, n in zip(utts, samples):
            lab = u.path.with_suffix(".lab")
            if not lab.exists():
                raise DataError(u.path, "no phone alignment (converted_aligned_phones.txt or a .lab next to the audio)")
            ph = read_hts_lab(lab, fcfg)
            check_alignment(len(ph), downstream_frames(n, fcfg), lab, u.id)
            labels.append(np.array([names.setdefault(p, len(names)) for p in ph], dtype=np.int16))
        phones = list(names)
        split_dir = sub.parent
    ids = {u.id for u in utts}
    test_file, train_file = split_dir / "test_split.txt", split_dir / "train_split.txt"
    if test_file.exists():
        test = set(read_id_list(test_file)) & ids
        train_ids = [i for i in read_id_list(train_file) if i in ids] if train_file.exists() else \
            [u.id for u in utts if u.id not in test]
    else:  # no split files: the last quarter of each speaker's utterances
        by_spk: dict[str, list[str]] = {}
        for u in utts:
            by_spk.setdefault(u.speaker, []).append(u.id)
        test = {i for v in by_spk.values() for i in v[len(v) - max(1, len(v) // 4):]}
        train_ids = [u.id for u in utts if u.id not in test]
    if not test:
        raise DataError(test_file, "lists none of the corpus's utterances: no test split")
    tr, dv = dev_split(train_ids, dev_fraction, dev_seed)
    if not tr or not dv:
        raise DataError(train_file if train_file.exists() else sub, f"{len(train_ids)} training utterances are too "
                                                                    "few for a train / dev split")
    where = {**{i: "train" for i in tr}, **{i: "dev" for i in dv}, **{i: "test" for i in test}}
    keep_i = [k for k, u in enumerate(utts) if u.id in where]
    utts = [utts[k] for k in keep_i]
    return PhoneCorpus(utts, [samples[k] for k in keep_i], [labels[k] for k in keep_i], [where[u.id] for u in utts],
                       phones, sorted({u.speaker for u in utts}))


# ------------------------------------------------------------------------------------------------ keywords
@dataclasses.dataclass
class Clip:
    """One keyword item: a file, or a 1 s crop ``[start, start + length)`` of a background-noise file."""

    path: Path
    start: int = 0
    length: int = 0  # 0 = the whole file


@dataclasses.dataclass
class KeywordCorpus:
    """SUPERB's 12-class keyword spotting: clips, class ids, split ('train' | 'dev' | 'test')."""

    clips: list[Clip]
    labels: list[int]
    splits: list[str]
    classes: list[str]


def warden_split(name: str) -> str:
    """s3prl ``split_dataset``: sha1 of the speaker hash -> 'dev' (< 10 %), 'discard' (< 20 %) or 'train'."""
    speaker = re.sub(r"_nohash_.*$", "", name)
    h = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16)
    pct = (h % (MAX_UTTR_PER_CLASS + 1)) * (100.0 / MAX_UTTR_PER_CLASS)
    return "dev" if pct < 10 else "discard" if pct < 20 else "train"


def _class_of(word: str) -> int:
    return KEYWORD_CLASSES.index(word) if word in KEYWORD_CLASSES[:-1] else KEYWORD_CLASSES.index(UNKNOWN)


def speech_commands(root: Path, silence_clips: int = 10, seed: int = 0, sample_rate: int = 16000) -> KeywordCorpus:
    """SUPERB keyword spotting from a Speech Commands v1 tree (and its separate test set when present).

    Train / dev: ``speech_commands/`` split by s3prl's hashing rule when ``speech_commands_test/`` exists
    (SUPERB), else by ``validation_list.txt`` / ``testing_list.txt`` (Warden's lists, which then give the
    test split). Words outside the 10 keywords are ``_unknown_``; ``_silence_`` items are
    ``silence_clips`` random 1 s crops of each ``_background_noise_`` file (s3prl crops at random on
    every read), in train and in dev (as s3prl). Test: the test set's class folders."""
    root = Path(root)
    train_root = root / "speech_commands" if (root / "speech_commands").is_dir() else root
    if not train_root.is_dir():
        raise DataError(root, "no such folder")
    test_root = next((p for p in (root / "speech_commands_test", root / "speech_commands_test_set_v0.01")
                      if p.is_dir()), None)
    words = sorted(d.name for d in train_root.iterdir()
                   if d.is_dir() and not d.name.startswith(("_", ".")) and any(d.glob("*.wav")))
    if not words:
        raise DataError(train_root, "not a Speech Commands layout (expected speech_commands/<word>/"
                                    "<speaker>_nohash_<n>.wav folders)")

    def listing(name: str) -> set[str]:
        p = train_root / name
        return set(read_text(p, "Speech Commands file list").split()) if p.exists() else set()

    testing, validation = (set(), set()) if test_root else (listing("testing_list.txt"), listing("validation_list.txt"))
    clips: list[Clip] = []
    labels: list[int] = []
    splits: list[str] = []
    for w in words:
        for p in sorted((train_root / w).glob("*.wav")):
            rel = f"{w}/{p.name}"
            split = warden_split(p.name) if test_root else \
                "test" if rel in testing else "dev" if rel in validation else "train"
            if split != "discard":
                clips.append(Clip(p))
                labels.append(_class_of(w))
                splits.append(split)
    noise = sorted((train_root / "_background_noise_").glob("*.wav"))
    rng = np.random.default_rng(seed)
    for p in noise:
        n = audio_frames(p, sample_rate)
        if n < sample_rate:
            raise DataError(p, f"background noise shorter than 1 s ({n / sample_rate:.2f} s): no _silence_ clip fits")
        for split in ("train", "dev"):
            for _ in range(silence_clips):
                clips.append(Clip(p, int(rng.integers(0, n - sample_rate + 1)), sample_rate))
                labels.append(KEYWORD_CLASSES.index(SILENCE_CLASS))
                splits.append(split)
    if test_root is not None:
        classes_dirs = sorted(d for d in test_root.iterdir() if d.is_dir() and not d.name.startswith("."))
        for d in classes_dirs:
            if d.name not in KEYWORD_CLASSES:
                raise DataError(d, f"test class folder '{d.name}' is not one of SUPERB's 12 classes "
                                   f"({', '.join(KEYWORD_CLASSES)})")
            for p in sorted(d.glob("*.wav")):
                clips.append(Clip(p))
                labels.append(KEYWORD_CLASSES.index(d.name))
                splits.append("test")
    if not any(s == "train" for s in splits):
        raise DataError(train_root, "keyword folders hold no training .wav clips")
    if "test" not in splits:
        where = test_root or train_root / "testing_list.txt"
        raise DataError(where, "missing or lists none of the clips: no test split")
    if "dev" not in splits:
        raise DataError(train_root, "no dev clips (validation_list.txt / the hashing rule chose none)")
    return KeywordCorpus(clips, labels, splits, list(KEYWORD_CLASSES))
