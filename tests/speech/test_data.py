"""Readers, features, the eSpeak NG generator, and one test per class of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from pretrainlab.core.data import DataError
from pretrainlab.speech.audio import load_audio
from pretrainlab.speech.config import FeatureConfig
from pretrainlab.speech.datasets import (
    find_audio,
    librispeech,
    match_length,
    phone_corpus,
    read_cpc_alignments,
    read_hts_lab,
    speech_commands,
)
from pretrainlab.speech.features import extract, normalize_db, num_frames

FC = FeatureConfig()


def _wav(path: Path, data: np.ndarray, sr: int = 16000) -> Path:
    sf.write(str(path), data, sr)
    return path


# ------------------------------------------------------------------ generated corpus + readers
def test_generator_layout(smoke_data: Path) -> None:
    sub = smoke_data / "LibriSpeech" / "train-clean-100"
    assert list(sub.glob("*/*/*.flac")) and list(sub.glob("*/*/*.trans.txt")) and list(sub.glob("*/*/*.lab"))
    for f in ("converted_aligned_phones.txt", "phones.txt", "train_split.txt", "test_split.txt"):
        assert (smoke_data / "LibriSpeech" / f).exists()
    assert (smoke_data / "speech_commands" / "testing_list.txt").exists()
    assert (smoke_data / "manifest.json").exists()
    info = sf.info(str(next(sub.glob("*/*/*.flac"))))
    assert info.samplerate == 16000 and info.channels == 1 and info.format == "FLAC"


def test_librispeech_reader(smoke_data: Path) -> None:
    utts = librispeech(smoke_data)
    assert len(utts) == 16 and len({u.speaker for u in utts}) == 4
    assert all(u.text and u.text == u.text.upper() for u in utts)


def test_cpc_and_hts_alignments_agree(smoke_data: Path) -> None:
    root = smoke_data / "LibriSpeech"
    cpc = read_cpc_alignments(root / "converted_aligned_phones.txt")
    names = (root / "phones.txt").read_text().split()
    for u in librispeech(smoke_data)[:6]:
        lab = read_hts_lab(u.path.with_suffix(".lab"))
        n = num_frames(sf.info(str(u.path)).frames, FC)
        assert len(cpc[u.id]) == n == len(lab)
        agree = np.mean([names[i] == p for i, p in zip(cpc[u.id], lab)])
        assert agree > 0.97  # same phone events, frame centres (rounding at boundaries only)


def test_phone_corpus_labels_match_features(smoke_data: Path) -> None:
    corpus, feats = phone_corpus(smoke_data, FC)
    assert all(len(lab) == f.shape[0] for lab, f in zip(corpus.labels, feats))
    assert any(corpus.is_test) and not all(corpus.is_test)
    assert corpus.phones[0] == "sil" and len(corpus.phones) > 20
    speech = np.concatenate(corpus.labels)
    assert 0.3 < float((speech != 0).mean()) < 0.95  # mostly speech, some silence


def test_speech_commands_reader(smoke_data: Path) -> None:
    kw = speech_commands(smoke_data)
    assert "yes" in kw.keywords and "test" in kw.splits and "train" in kw.splits
    assert all(p.suffix == ".wav" for p in kw.paths)


def test_features_shapes_and_normalisation() -> None:
    wave = np.random.default_rng(0).normal(0, 0.3, 16000).astype(np.float32)
    f = extract(wave, FC)
    assert f.shape == (num_frames(16000, FC), 80) == (98, 80)
    assert torch.allclose(f.mean(0), torch.zeros(80), atol=1e-4)  # CMVN
    assert torch.allclose(f.std(0, unbiased=False), torch.ones(80), atol=1e-3)
    w = normalize_db(torch.from_numpy(wave), -25.0)
    assert abs(20 * np.log10(float(w.pow(2).mean().sqrt())) + 25.0) < 1e-3
    fb = extract(wave, FeatureConfig(kind="fbank"))
    assert fb.shape == (98, 240)


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
    p = tmp_path / "nan.flac.wav"
    sf.write(str(p), x, 16000, subtype="FLOAT")
    with pytest.raises(DataError, match="non-finite"):
        load_audio(p)


def test_non_audio_file(tmp_path: Path) -> None:
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio")
    with pytest.raises(DataError, match="notes.wav.*not a readable audio file"):
        load_audio(p)


def test_alignment_length_mismatch(tmp_path: Path) -> None:
    assert len(match_length(np.arange(100), 101, tmp_path / "a.txt")) == 101  # within tolerance
    with pytest.raises(DataError, match="a.txt.*alignment has 100 frames but the audio gives 150"):
        match_length(np.arange(100), 150, tmp_path / "a.txt")


def test_alignment_mismatch_in_corpus(smoke_data: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "corpus"
    shutil.copytree(smoke_data / "LibriSpeech", root / "LibriSpeech")
    cpc = root / "LibriSpeech" / "converted_aligned_phones.txt"
    lines = cpc.read_text().splitlines()
    uid, *ids = lines[0].split()
    lines[0] = " ".join([uid] + ids[: len(ids) // 2])
    cpc.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="converted_aligned_phones.txt.*alignment has"):
        phone_corpus(root, FC)


def test_malformed_alignment_files(tmp_path: Path) -> None:
    p = tmp_path / "converted_aligned_phones.txt"
    p.write_text("100-1-0001 0 1 x 2\n")
    with pytest.raises(DataError, match="line 1: phone ids must be integers"):
        read_cpc_alignments(p)
    lab = tmp_path / "u.lab"
    lab.write_text("0 100000 sil\n50000 10 a\n")
    with pytest.raises(DataError, match="u.lab.*line 2"):
        read_hts_lab(lab)


def test_missing_audio_and_layouts(tmp_path: Path) -> None:
    d = tmp_path / "LibriSpeech" / "train-clean-100" / "1" / "2"
    d.mkdir(parents=True)
    (d / "1-2.trans.txt").write_text("1-2-0000 HELLO\n")
    with pytest.raises(DataError, match="1-2.trans.txt.*no 1-2-0000.flac"):
        librispeech(tmp_path)
    with pytest.raises(DataError, match="holds no audio files"):
        find_audio(tmp_path)
    with pytest.raises(DataError, match="not a Speech Commands layout"):
        speech_commands(tmp_path / "LibriSpeech" / "train-clean-100" / "1" / "2")


def test_hts_full_context_and_lab_only_corpus(smoke_data: Path, tmp_path: Path) -> None:
    import shutil

    lab = tmp_path / "fc.lab"
    lab.write_text("0 300000 x^x-sil+hh=ax@x_x/A:0\n300000 600000 sil^sil-hh+ax=l@1_2/A:0\n")
    assert set(read_hts_lab(lab)) == {"sil", "hh"}
    root = tmp_path / "labonly"
    shutil.copytree(smoke_data / "LibriSpeech", root / "LibriSpeech")
    (root / "LibriSpeech" / "converted_aligned_phones.txt").unlink()
    corpus, feats = phone_corpus(root, FC)  # falls back to the .lab files
    assert all(len(lab) == f.shape[0] for lab, f in zip(corpus.labels, feats))
    assert "sil" in corpus.phones and any(corpus.is_test)
