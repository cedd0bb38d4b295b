"""A sweep of bad input and misuse over every speech verb and the demo's prediction function (issue #23).

Each case runs the CLI in-process (or the demo function) and asserts: exit code 2 with ONE line
``error: <file or key>: <problem>`` on stderr (no traceback), the file / key named, and nothing left
behind (no run folder, no output folder, no partial outputs). A few cases are misuse that must
succeed safely (colliding output names, stereo / other-rate audio).
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from pretrainlab.core.cli import main
from pretrainlab.core.data import DataError

pytestmark = pytest.mark.timeout(300)


def _wav(path: Path, seconds: float = 1.0, sr: int = 16000, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(0).normal(0, 0.1, (int(sr * seconds), channels)).astype(np.float32)
    sf.write(str(path), x if channels > 1 else x[:, 0], sr, subtype="PCM_16")
    return path


def _truncated(path: Path) -> Path:
    full = _wav(path.with_name("full_" + path.name), 2.0)
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    full.unlink()
    return path


def _flac_bomb(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    bits = (16000 << 44) | (15 << 36) | 2**35
    path.write_bytes(b"fLaC" + bytes([0x80, 0, 0, 34]) + struct.pack(">HH", 4096, 4096) + bytes(6)
                     + bits.to_bytes(8, "big") + bytes(16))
    return path


class _Trap:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _copy_corpus(smoke_data: Path, dst: Path, keywords: bool = True) -> Path:
    shutil.copytree(smoke_data / "LibriSpeech", dst / "LibriSpeech")
    if keywords:
        shutil.copytree(smoke_data / "speech_commands", dst / "speech_commands")
        shutil.copytree(smoke_data / "speech_commands_test", dst / "speech_commands_test")
    return dst


def _edit_cpc(root: Path, fn: Callable[[list[str]], list[str]]) -> None:
    p = root / "LibriSpeech" / "converted_aligned_phones.txt"
    p.write_text("\n".join(fn(p.read_text().splitlines())) + "\n")


# Each case: (name, build(tmp, smoke_data, smoke_run, probe_run) -> (argv, must_not_exist), expected substring).
CASES: list[tuple[str, Callable[..., tuple[list[str], list[Path]]], str]] = []


def case(name: str, expect: str) -> Callable[[Callable[..., tuple[list[str], list[Path]]]], None]:
    def deco(fn: Callable[..., tuple[list[str], list[Path]]]) -> None:
        CASES.append((name, fn, expect))
    return deco


def _pre(t: Path, data: Path, *ov: str) -> tuple[list[str], list[Path]]:
    out = t / "run"
    return ["speech", "pretrain", "--profile", "smoke", "--data", str(data), "--out", str(out),
            "train.progress=false", *ov], [out]


# ---------------------------------------------------------------- pretrain
@case("pretrain: a non-audio .wav among the data", "x.wav: not a readable audio file")
def _(t, d, r, p):
    _wav(t / "data" / "a.wav")
    (t / "data" / "x.wav").write_text("nope")
    return _pre(t, t / "data")


@case("pretrain: --data does not exist", "nowhere: no such file or folder")
def _(t, d, r, p):
    return _pre(t, t / "nowhere")


@case("pretrain: --data holds no audio", "holds no audio files")
def _(t, d, r, p):
    (t / "empty").mkdir()
    (t / "empty" / "notes.txt").write_text("x")
    return _pre(t, t / "empty")


@case("pretrain: truncated WAV", "half.wav: truncated: the WAV header declares")
def _(t, d, r, p):
    _wav(t / "data" / "a.wav")
    _truncated(t / "data" / "half.wav")
    return _pre(t, t / "data")


@case("pretrain: FLAC declaring 2^35 samples", "bomb.flac: header declares audio of shape")
def _(t, d, r, p):
    _wav(t / "data" / "a.wav")
    _flac_bomb(t / "data" / "bomb.flac")
    return _pre(t, t / "data")


@case("pretrain: 1 Hz sample rate", "slow.wav: header declares a sample rate of 1 Hz")
def _(t, d, r, p):
    (t / "data").mkdir()
    sf.write(str(t / "data" / "slow.wav"), np.zeros(5000, np.float32), 1)
    return _pre(t, t / "data")


@case("pretrain: train.lr=nan", "train.lr: NaN is not allowed")
def _(t, d, r, p):
    return _pre(t, d, "train.lr=nan")


@case("pretrain: heads do not divide hidden", "model.heads: hidden 32 is not a multiple of heads 5")
def _(t, d, r, p):
    return _pre(t, d, "model.heads=5")


@case("pretrain: model.hidden=0", "model.hidden: 0 is not allowed")
def _(t, d, r, p):
    return _pre(t, d, "model.hidden=0")


@case("pretrain: time proportion above 1", "alteration.time_proportion: 2.0 is not allowed")
def _(t, d, r, p):
    return _pre(t, d, "alteration.time_proportion=2")


@case("pretrain: unknown key", "unknown config key 'model.nheads'")
def _(t, d, r, p):
    return _pre(t, d, "model.nheads=4")


@case("pretrain: unknown feature kind", "features.kind: 'mfcc' is not allowed")
def _(t, d, r, p):
    return _pre(t, d, "features.kind=mfcc")


@case("pretrain: a subset the data lacks", "no LibriSpeech subset 'train-other-500'")
def _(t, d, r, p):
    return _pre(t, d, "data.subsets=[train-clean-100,train-other-500]")


@case("pretrain: every utterance under min_frames", "no utterance is longer than min_frames=100000")
def _(t, d, r, p):
    return _pre(t, d, "data.min_frames=100000")


@case("pretrain: crop longer than the model", "data.crop_frames: 5000 exceeds model.max_frames")
def _(t, d, r, p):
    return _pre(t, d, "data.crop_frames=5000")


@case("pretrain: frequency alteration with a linear target", "alteration.frequency: frequency alteration needs")
def _(t, d, r, p):
    return _pre(t, d, "features.target_kind=linear")


@case("pretrain: batch size 0", "train.batch_size: 0 is not allowed")
def _(t, d, r, p):
    return _pre(t, d, "train.batch_size=0")


@case("pretrain: unknown recipe", "nosuchrecipe")
def _(t, d, r, p):
    argv, left = _pre(t, d)
    return [*argv, "--config", "nosuchrecipe"], left


@case("pretrain: non-UTF-8 transcript", ".trans.txt: line 1: not UTF-8 text")
def _(t, d, r, p):
    root = _copy_corpus(d, t / "c", keywords=False)
    trans = next(root.glob("LibriSpeech/*/*/*/*.trans.txt"))
    trans.write_bytes(b"\xff\xfe" + trans.read_bytes())
    return _pre(t, root)


# ---------------------------------------------------------------- finetune / eval
def _ft(t: Path, data: Path, init: Path | str | None, *ov: str) -> tuple[list[str], list[Path]]:
    out = t / "probes"
    argv = ["speech", "finetune", "--profile", "smoke", "--data", str(data), "--out", str(out),
            "train.progress=false", *ov]
    return ([*argv, "--init", str(init)] if init is not None else argv), [out]


@case("finetune: --init does not exist", "nothing: no such checkpoint or run folder")
def _(t, d, r, p):
    return _ft(t, d, t / "nothing")


@case("finetune: --init is a text file named .ckpt", "fake.ckpt: not a readable torch s3prl checkpoint")
def _(t, d, r, p):
    (t / "fake.ckpt").write_text("hello")
    return _ft(t, d, t / "fake.ckpt")


@case("finetune: --init is a pickle trap", "trap.ckpt: refused: the pickle would load")
def _(t, d, r, p):
    torch.save({"Transformer": {}, "Args": _Trap()}, t / "trap.ckpt")
    return _ft(t, d, t / "trap.ckpt")


@case("finetune: --init is a folder without a checkpoint", "holds no checkpoint")
def _(t, d, r, p):
    (t / "emptyrun").mkdir()
    return _ft(t, d, t / "emptyrun")


@case("finetune: --init's meta.json is corrupt", "meta.json: unreadable")
def _(t, d, r, p):
    run = t / "copy"
    shutil.copytree(r, run)
    next(run.glob("checkpoints/step_*")).joinpath("meta.json").write_text("{not json")
    return _ft(t, d, run)


@case("finetune: an unknown probe task", "probe.tasks[0]: 'phone' is not allowed")
def _(t, d, r, p):
    return _ft(t, d, r, "probe.tasks=[phone]")


@case("finetune: keyword probe without Speech Commands", "not a Speech Commands layout")
def _(t, d, r, p):
    root = _copy_corpus(d, t / "c", keywords=False)
    return _ft(t, root, r, "probe.tasks=[keyword]")


@case("finetune: an utterance without alignment", "converted_aligned_phones.txt: no alignment for utterance")
def _(t, d, r, p):
    root = _copy_corpus(d, t / "c")
    _edit_cpc(root, lambda lines: lines[1:])
    return _ft(t, root, r, "probe.tasks=[phone_linear]")


@case("finetune: an alignment of the wrong length", "alignment has")
def _(t, d, r, p):
    root = _copy_corpus(d, t / "c")
    _edit_cpc(root, lambda lines: [" ".join(lines[0].split()[:20])] + lines[1:])
    return _ft(t, root, r, "probe.tasks=[phone_linear]")


@case("finetune: phones.txt names too few phones", "phones.txt: names 2 phones")
def _(t, d, r, p):
    root = _copy_corpus(d, t / "c")
    (root / "LibriSpeech" / "phones.txt").write_text("sil\na\n")
    return _ft(t, root, r, "probe.tasks=[phone_linear]")


@case("finetune: test_split lists none of the corpus", "test_split.txt: lists none of the corpus")
def _(t, d, r, p):
    root = _copy_corpus(d, t / "c")
    (root / "LibriSpeech" / "test_split.txt").write_text("9-9-9\n")
    return _ft(t, root, r, "probe.tasks=[phone_linear]")


@case("finetune: a non-numeric phone id", "line 1: phone ids must be integers")
def _(t, d, r, p):
    root = _copy_corpus(d, t / "c")
    _edit_cpc(root, lambda lines: [lines[0] + " x"] + lines[1:])
    return _ft(t, root, r, "probe.tasks=[phone_linear]")


@case("finetune: a keyword test class that SUPERB lacks", "'banana' is not one of SUPERB's 12 classes")
def _(t, d, r, p):
    root = _copy_corpus(d, t / "c")
    _wav(root / "speech_commands_test" / "banana" / "x.wav")
    return _ft(t, root, r, "probe.tasks=[keyword]")


@case("finetune: background noise shorter than 1 s", "short.wav: background noise shorter than 1 s")
def _(t, d, r, p):
    root = _copy_corpus(d, t / "c")
    _wav(root / "speech_commands" / "_background_noise_" / "short.wav", 0.5)
    return _ft(t, root, r, "probe.tasks=[keyword]")


@case("eval: --ckpt does not exist", "nothing: no such checkpoint or run folder")
def _(t, d, r, p):
    return ["speech", "eval", "--ckpt", str(t / "nothing"), "--data", str(d), "--out", str(t / "m.json")], \
        [t / "m.json"]


@case("eval: --tasks names a probe the run lacks", "--tasks: ")
def _(t, d, r, p):
    return ["speech", "eval", "--ckpt", str(p), "--data", str(d), "--tasks", "speaker", "--out",
            str(t / "m.json")], [t / "m.json"]


@case("eval: probes tested on data with other classes", "probe was trained on")
def _(t, d, r, p):
    root = _copy_corpus(d, t / "c")
    (root / "LibriSpeech" / "phones.txt").write_text((root / "LibriSpeech" / "phones.txt").read_text() + "extra\n")
    return ["speech", "eval", "--ckpt", str(p), "--data", str(root), "--tasks", "phone_linear", "--out",
            str(t / "m.json")], [t / "m.json"]


# ---------------------------------------------------------------- embed / export
def _emb(t: Path, ckpt: Path, inp: Path, *extra: str) -> tuple[list[str], list[Path]]:
    return ["speech", "embed", "--ckpt", str(ckpt), "--input", str(inp), "--out", str(t / "emb"), *extra], \
        [t / "emb"]


@case("embed: one bad file in a folder leaves no outputs", "broken.wav: not a readable audio file")
def _(t, d, r, p):
    for i in range(4):
        _wav(t / "in" / f"ok{i}.wav")
    (t / "in" / "broken.wav").write_text("nope")
    return _emb(t, r, t / "in")


@case("embed: --layer out of range", "--layer: 9 is out of range")
def _(t, d, r, p):
    return _emb(t, r, _wav(t / "in" / "a.wav"), "--layer", "9")


@case("embed: --input does not exist", "missing.wav: no such file or folder")
def _(t, d, r, p):
    return _emb(t, r, t / "missing.wav")


@case("embed: --input is not audio", "notes.txt: not an audio file")
def _(t, d, r, p):
    (t / "notes.txt").write_text("x")
    return _emb(t, r, t / "notes.txt")


@case("embed: --out is a file", "--out: ")
def _(t, d, r, p):
    (t / "emb").write_text("precious")
    argv, _ = _emb(t, r, _wav(t / "in" / "a.wav"))
    return argv, []


@case("embed: truncated WAV", "half.wav: truncated")
def _(t, d, r, p):
    return _emb(t, r, _truncated(t / "in" / "half.wav"))


@case("embed: an s3prl checkpoint with pre-LN", "pre_layer_norm is true")
def _(t, d, r, p):
    from pretrainlab.speech.s3prl_format import read_states

    st = read_states(Path(__file__).parent / "data" / "states-500.ckpt")
    st.pop("Optimizer")
    st["Upstream_Config"]["transformer"]["pre_layer_norm"] = True
    torch.save(st, t / "preln.ckpt")
    return _emb(t, t / "preln.ckpt", _wav(t / "in" / "a.wav"))


@case("embed: a probe run as --ckpt", "a probe checkpoint (from finetune), not a speech (TERA) checkpoint")
def _(t, d, r, p):
    return _emb(t, p, _wav(t / "in" / "a.wav"))


@case("export: --out is a folder", "--out: ")
def _(t, d, r, p):
    (t / "dir").mkdir()
    return ["speech", "export", "--ckpt", str(r), "--out", str(t / "dir")], [t / "dir" / "states.ckpt"]


@case("export: an s3prl file as --ckpt", "already an s3prl checkpoint")
def _(t, d, r, p):
    return ["speech", "export", "--ckpt", str(Path(__file__).parent / "data" / "states-500.ckpt"), "--out",
            str(t / "x.ckpt")], [t / "x.ckpt"]


@case("export: --ckpt does not exist", "gone: no such checkpoint or run folder")
def _(t, d, r, p):
    return ["speech", "export", "--ckpt", str(t / "gone"), "--out", str(t / "x.ckpt")], [t / "x.ckpt"]


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_cli_refuses_cleanly(name: str, tmp_path: Path, smoke_data: Path, smoke_run: Path, probe_run: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    _, build, expect = next(c for c in CASES if c[0] == name)
    argv, must_not_exist = build(tmp_path, smoke_data, smoke_run, probe_run)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    capsys.readouterr()
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("removed ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expect in lines[0], lines[0]
    assert "Traceback" not in err
    for left in must_not_exist:
        assert not left.exists(), f"{left} left behind"
    for path, data in before.items():  # nothing the user had was changed
        assert path.read_bytes() == data, f"{path} changed"


def test_embed_keeps_extensions_when_stems_collide(tmp_path: Path, smoke_run: Path) -> None:
    _wav(tmp_path / "in" / "a.wav")
    a = np.random.default_rng(1).normal(0, 0.1, 16000).astype(np.float32)
    sf.write(str(tmp_path / "in" / "a.flac"), a, 16000)
    _wav(tmp_path / "in" / "b.wav")
    assert main(["speech", "embed", "--ckpt", str(smoke_run), "--input", str(tmp_path / "in"), "--out",
                 str(tmp_path / "emb")]) == 0
    names = sorted(p.name for p in (tmp_path / "emb").iterdir())
    assert names == ["a.flac.npy", "a.wav.npy", "b.npy"]
    assert not np.array_equal(np.load(tmp_path / "emb" / "a.flac.npy"), np.load(tmp_path / "emb" / "a.wav.npy"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".emb")]  # the staging folder is gone


# ---------------------------------------------------------------- the demo's prediction function
@pytest.fixture(scope="module")
def app(smoke_run: Path):
    from pretrainlab.core.demo import load_app_module

    return load_app_module("speech")


DEMO_CASES: dict[str, tuple[Callable[[Path], Path | None], str]] = {
    "not audio": (lambda t: (t / "x.wav").write_text("no") and t / "x.wav", "x.wav: not a readable audio file"),
    "wrong type": (lambda t: (t / "x.mp4").write_bytes(b"\0" * 10) and t / "x.mp4", "x.mp4: unsupported file type"),
    "nothing uploaded": (lambda t: None, "please upload"),
    "empty file": (lambda t: (t / "e.wav").write_bytes(b"") or t / "e.wav", "e.wav: file is empty"),
    "31 s": (lambda t: _wav(t / "long.wav", 31.0), "long.wav: audio is 31.0 s long; at most 30 s"),
    "truncated": (lambda t: _truncated(t / "half.wav"), "half.wav: truncated"),
    "size bomb": (lambda t: _flac_bomb(t / "bomb.flac"), "bomb.flac: header declares audio of shape"),
    "too short": (lambda t: _wav(t / "tiny.wav", 0.05), "tiny.wav: audio is too short"),
}


@pytest.mark.parametrize("name", list(DEMO_CASES))
def test_demo_refuses_cleanly(app, probe_run: Path, tmp_path: Path, name: str) -> None:
    make, expect = DEMO_CASES[name]
    path = make(tmp_path)
    with pytest.raises(DataError) as e:
        app.analyse(path, ckpt=probe_run)
    assert expect in str(e.value) and "\n" not in str(e.value) and "/tmp" not in str(e.value)


def test_demo_takes_stereo_and_other_rates(app, probe_run: Path, tmp_path: Path) -> None:
    _, _, _, status = app.analyse(_wav(tmp_path / "st.wav", 1.0, 44100, channels=2), ckpt=probe_run)
    assert "downmixed" in status and "resampled from 44100" in status


def test_demo_checkpoint_errors(app, tmp_path: Path) -> None:
    from pretrainlab.core.checkpoint import CheckpointError

    (tmp_path / "nockpt").mkdir()
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        app.analyse(_wav(tmp_path / "a.wav"), ckpt=tmp_path / "nockpt")


def test_bench_validates_its_arguments() -> None:
    from pretrainlab.core.config import ConfigError
    from pretrainlab.speech.bench import bench

    with pytest.raises(ConfigError, match="--batch-size: 0"):
        bench(device="cpu", steps=1, warmup=0, batch_size=0)
    with pytest.raises(ConfigError, match="--warmup: -1"):
        bench(device="cpu", steps=1, warmup=-1)
