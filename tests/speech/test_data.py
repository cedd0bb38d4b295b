"""Readers, the eSpeak NG generator, the probe splits, and one test per class of bad input."""

from __future__ import annotations

import random
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from pretrainlab.core.data import DataError
from pretrainlab.speech.audio import load_audio
from pretrainlab.speech.config import FeatureConfig
from pretrainlab.speech.features import extract, normalize_db, num_frames
from pretrainlab.speech.formats import (
    KEYWORD_CLASSES,
    check_alignment,
    dev_split,
    downstream_frames,
    find_audio,
    librispeech,
    phone_corpus,
    pretraining_files,
    read_cpc_alignments,
    read_hts_lab,
    speech_commands,
    warden_split,
)

FC = FeatureConfig()


def _wav(path: Path, data: np.ndarray, sr: int = 16000, subtype: str = "PCM_16") -> Path:
    sf.write(str(path), data, sr, subtype=subtype)
    return path


def flac_declaring(path: Path, total: int, sr: int = 16000) -> Path:
    """A FLAC whose STREAMINFO declares ``total`` samples and holds none (a decode bomb)."""
    bits = (sr << 44) | (0 << 41) | (15 << 36) | total  # 20 bits rate, 3 bits channels-1, 5 bits bps-1, 36 total
    info = struct.pack(">HH", 4096, 4096) + bytes(6) + bits.to_bytes(8, "big") + bytes(16)
    path.write_bytes(b"fLaC" + bytes([0x80, 0, 0, 34]) + info)
    return path


# ------------------------------------------------------------------ generated corpus + readers
def test_generator_layout(smoke_data: Path) -> None:
    sub = smoke_data / "LibriSpeech" / "train-clean-100"
    assert list(sub.glob("*/*/*.flac")) and list(sub.glob("*/*/*.trans.txt")) and list(sub.glob("*/*/*.lab"))
    for f in ("converted_aligned_phones.txt", "phones.txt", "train_split.txt", "test_split.txt"):
        assert (smoke_data / "LibriSpeech" / f).exists()
    assert sorted(p.name for p in (smoke_data / "speech_commands_test").iterdir()) == sorted(KEYWORD_CLASSES)
    assert len(list((smoke_data / "speech_commands" / "_background_noise_").glob("*.wav"))) == 3
    info = sf.info(str(next(sub.glob("*/*/*.flac"))))
    assert info.samplerate == 16000 and info.channels == 1 and info.format == "FLAC"


def test_librispeech_reader(smoke_data: Path) -> None:
    utts = librispeech(smoke_data)
    assert len(utts) == 16 and len({u.speaker for u in utts}) == 4
    assert all(u.text and u.text == u.text.upper() for u in utts)


def test_cpc_labels_are_one_per_upstream_frame_and_agree_with_hts(smoke_data: Path) -> None:
    root = smoke_data / "LibriSpeech"
    cpc = read_cpc_alignments(root / "converted_aligned_phones.txt")
    names = (root / "phones.txt").read_text().split()
    for u in librispeech(smoke_data)[:6]:
        n = sf.info(str(u.path)).frames
        lab = read_hts_lab(u.path.with_suffix(".lab"), FC)
        assert len(cpc[u.id]) == num_frames(n, FC) == n // 160 + 1  # frame t centred on sample 160 t
        assert abs(len(lab) - len(cpc[u.id])) <= 1
        agree = np.mean([names[i] == p for i, p in zip(cpc[u.id], lab)])
        assert agree > 0.97


def test_dev_split_is_s3prls_seed_1337_shuffle() -> None:
    """s3prl phone_linear/dataset.py: random.seed(1337); random.shuffle(lines); first int(0.9 N) train."""
    ids = [f"100-1000-{i:04d}" for i in range(37)]
    lines = [i + "\n" for i in ids]
    random.seed(1337)
    random.shuffle(lines)
    cut = int(len(lines) * 0.9)
    tr, dv = dev_split(ids)
    assert tr == [x.strip() for x in lines[:cut]] and dv == [x.strip() for x in lines[cut:]]
    assert len(dv) == 4


def test_phone_corpus_splits(smoke_data: Path) -> None:
    pc = phone_corpus(smoke_data, FC)
    assert set(pc.split) == {"train", "dev", "test"}
    test = set((smoke_data / "LibriSpeech" / "test_split.txt").read_text().split())
    assert {u.id for u, s in zip(pc.utts, pc.split) if s == "test"} == test
    assert pc.phones[0] == "sil" and len(pc.phones) > 20
    for n, lab in zip(pc.samples, pc.labels):
        assert abs(len(lab) - downstream_frames(n, FC)) <= 2


def test_keyword_corpus_is_superbs_12_classes(smoke_data: Path) -> None:
    kw = speech_commands(smoke_data, silence_clips=2)
    assert kw.classes == list(KEYWORD_CLASSES) and len(kw.classes) == 12
    assert {s for s in kw.splits} == {"train", "dev", "test"}
    unknown, silence = KEYWORD_CLASSES.index("_unknown_"), KEYWORD_CLASSES.index("_silence_")
    train = [y for y, s in zip(kw.labels, kw.splits) if s == "train"]
    assert unknown in train and silence in train  # other words -> _unknown_; noise crops -> _silence_
    crops = [c for c, y in zip(kw.clips, kw.labels) if y == silence and c.length]
    assert crops and all(c.length == 16000 for c in crops)
    for c, s in zip(kw.clips, kw.splits):  # train / dev follow s3prl's hashing rule (SUPERB layout)
        if s in ("train", "dev") and "_background_noise_" not in str(c.path):
            assert warden_split(c.path.name) == s


def test_keyword_warden_lists_without_a_test_set(smoke_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "sc"
    shutil.copytree(smoke_data / "speech_commands", root / "speech_commands")
    clips = sorted((root / "speech_commands" / "yes").glob("*.wav"))
    (root / "speech_commands" / "testing_list.txt").write_text(f"yes/{clips[0].name}\n")
    kw = speech_commands(root)
    assert kw.splits.count("test") == 1


def test_features_shapes_and_normalisation() -> None:
    wave = np.random.default_rng(0).normal(0, 0.3, 16000).astype(np.float32)
    f = extract(wave, FC)
    assert f.shape == (num_frames(16000, FC), 80) == (101, 80)  # centred STFT: N // 160 + 1
    assert torch.allclose(f.mean(0), torch.zeros(80), atol=1e-4)
    assert torch.allclose(f.std(0), torch.ones(80), atol=1e-4)  # the unbiased std (s3prl)
    w = normalize_db(torch.from_numpy(wave), -25.0)
    assert abs(20 * np.log10(float(w.pow(2).mean().sqrt())) + 25.0) < 1e-3
    assert extract(wave, FeatureConfig(kind="fbank", deltas=2)).shape == (98, 240)


def test_pretraining_files_subsets_and_min_frames(smoke_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "ls"
    shutil.copytree(smoke_data / "LibriSpeech" / "train-clean-100", root / "LibriSpeech" / "train-clean-100")
    shutil.copytree(smoke_data / "LibriSpeech" / "train-clean-100", root / "LibriSpeech" / "train-clean-360")
    both = pretraining_files(root, ["train-clean-100", "train-clean-360"], FC, 0)
    assert len(both) == 32
    lengths = sorted(f.samples for f in both)
    cut = lengths[10] // 160
    kept = pretraining_files(root, ["train-clean-100", "train-clean-360"], FC, cut)
    assert all(f.samples > cut * 160 for f in kept) and len(kept) < 32  # s3prl: length > 200 * 160 kept
    with pytest.raises(DataError, match="no LibriSpeech subset 'train-other-500'"):
        pretraining_files(root, ["train-clean-100", "train-other-500"], FC, 0)
    with pytest.raises(DataError, match="no utterance is longer than min_frames=100000"):
        pretraining_files(root, ["train-clean-100"], FC, 100000)


# ------------------------------------------------------------------ bad input, one class each
def test_empty_audio(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty.wav.*empty"):
        load_audio(_wav(tmp_path / "empty.wav", np.zeros(0, np.float32)))


def test_too_short_audio(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="short.wav.*too short"):
        load_audio(_wav(tmp_path / "short.wav", np.zeros(400, np.float32)))


def test_stereo_is_downmixed_and_said(tmp_path: Path) -> None:
    a = load_audio(_wav(tmp_path / "st.wav", np.stack([np.full(8000, 0.2), np.full(8000, 0.4)], 1)))
    assert a.wave.ndim == 1 and np.allclose(a.wave, 0.3, atol=1e-3)
    assert any("downmixed" in n for n in a.notes)


def test_other_rate_is_resampled_and_said(tmp_path: Path) -> None:
    a = load_audio(_wav(tmp_path / "r44.wav", np.zeros(44100, np.float32), 44100))
    assert len(a.wave) == 16000 and any("resampled from 44100" in n for n in a.notes)


def test_clipped_is_flagged(tmp_path: Path) -> None:
    x = np.clip(np.sin(np.linspace(0, 200, 16000)) * 3, -1, 1).astype(np.float32)
    assert any("clipped" in n for n in load_audio(_wav(tmp_path / "clip.wav", x)).notes)


def test_non_finite_samples(tmp_path: Path) -> None:
    x = np.zeros(16000, np.float32)
    x[100] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        load_audio(_wav(tmp_path / "nan.wav", x, subtype="FLOAT"))


def test_non_audio_file(tmp_path: Path) -> None:
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio")
    with pytest.raises(DataError, match="notes.wav.*not a readable audio file"):
        load_audio(p)


def test_truncated_wav_is_refused(tmp_path: Path) -> None:
    """A WAV cut at half its length: libsndfile would return the half that is there."""
    p = _wav(tmp_path / "full.wav", np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32))
    half = tmp_path / "half.wav"
    half.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    assert len(sf.read(str(half))[0]) < 32000  # what a plain reader would have returned
    with pytest.raises(DataError, match="half.wav: truncated: the WAV header declares 64000 bytes"):
        load_audio(half)


def test_truncated_flac_is_refused(tmp_path: Path) -> None:
    p = _wav(tmp_path / "full.flac", np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32))
    half = tmp_path / "half.flac"
    half.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(DataError, match="half.flac: (truncated|cannot decode)"):
        load_audio(half)


def test_declared_size_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    """A 42-byte FLAC declaring 2^35 samples (128 GiB as float32)."""
    with pytest.raises(DataError, match="bomb.flac: header declares audio of shape .* over the"):
        load_audio(flac_declaring(tmp_path / "bomb.flac", 2**35))


def test_implausible_sample_rate(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="rate1.wav: header declares a sample rate of 1 Hz"):
        load_audio(_wav(tmp_path / "rate1.wav", np.zeros(20000, np.float32), 1))


def test_too_long_for_the_caller(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="long.wav: audio is 3.0 s long; at most 2 s"):
        load_audio(_wav(tmp_path / "long.wav", np.zeros(48000, np.float32)), max_seconds=2)


def test_folder_given_as_audio(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a folder"):
        load_audio(tmp_path)


def test_alignment_length_mismatch(tmp_path: Path) -> None:
    check_alignment(100, 101, tmp_path / "a.txt", "u")  # within tolerance
    with pytest.raises(DataError, match="a.txt: utterance u: alignment has 100 frames but the audio gives 150"):
        check_alignment(100, 150, tmp_path / "a.txt", "u")


def test_alignment_mismatch_in_corpus(smoke_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    shutil.copytree(smoke_data / "LibriSpeech", root / "LibriSpeech")
    cpc = root / "LibriSpeech" / "converted_aligned_phones.txt"
    lines = cpc.read_text().splitlines()
    uid, *ids = lines[0].split()
    lines[0] = " ".join([uid] + ids[: len(ids) // 2])
    cpc.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=f"converted_aligned_phones.txt: utterance {uid}: alignment has"):
        phone_corpus(root, FC)


def test_malformed_alignment_files(tmp_path: Path) -> None:
    p = tmp_path / "converted_aligned_phones.txt"
    p.write_text("100-1-0001 0 1 x 2\n")
    with pytest.raises(DataError, match="line 1: phone ids must be integers"):
        read_cpc_alignments(p)
    lab = tmp_path / "u.lab"
    lab.write_text("0 100000 sil\n50000 10 a\n")
    with pytest.raises(DataError, match="u.lab: line 2"):
        read_hts_lab(lab, FC)


@pytest.mark.parametrize("name", ["converted_aligned_phones.txt", "trans"])
def test_non_utf8_side_files(smoke_data: Path, tmp_path: Path, name: str) -> None:
    root = tmp_path / "c"
    shutil.copytree(smoke_data / "LibriSpeech", root / "LibriSpeech")
    target = root / "LibriSpeech" / name if name != "trans" else next(root.glob("LibriSpeech/*/*/*/*.trans.txt"))
    target.write_bytes(target.read_bytes()[:20] + b"\xff\xfe caf\xe9\n" + target.read_bytes()[20:])
    with pytest.raises(DataError, match=f"{target.name}: line 1: not UTF-8 text"):
        phone_corpus(root, FC)


def test_missing_audio_and_layouts(tmp_path: Path) -> None:
    d = tmp_path / "LibriSpeech" / "train-clean-100" / "1" / "2"
    d.mkdir(parents=True)
    (d / "1-2.trans.txt").write_text("1-2-0000 HELLO\n")
    with pytest.raises(DataError, match="1-2.trans.txt: utterance 1-2-0000 has no 1-2-0000.flac"):
        librispeech(tmp_path)
    with pytest.raises(DataError, match="holds no audio files"):
        find_audio(tmp_path)
    with pytest.raises(DataError, match="not a Speech Commands layout"):
        speech_commands(d)


def test_hts_full_context_and_lab_only_corpus(smoke_data: Path, tmp_path: Path) -> None:
    lab = tmp_path / "fc.lab"
    lab.write_text("0 300000 x^x-sil+hh=ax@x_x/A:0\n300000 600000 sil^sil-hh+ax=l@1_2/A:0\n")
    assert read_hts_lab(lab, FC) == ["sil"] * 3 + ["hh"] * 3  # centres at 0, 10, 20 ms | 30, 40, 50 ms
    root = tmp_path / "labonly"
    shutil.copytree(smoke_data / "LibriSpeech", root / "LibriSpeech")
    (root / "LibriSpeech" / "converted_aligned_phones.txt").unlink()
    pc = phone_corpus(root, FC)  # falls back to the .lab files
    assert "sil" in pc.phones and "test" in pc.split
