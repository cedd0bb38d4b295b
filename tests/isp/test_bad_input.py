"""A sweep of bad input and misuse over every isp verb and the demo's prediction functions (#23).

Each case must end in ONE clean line (``error: <file or key>: <problem>``, exit code 2; or argparse's
own one-line usage error), name the file or the key, print no traceback, leave no file behind and
not hang (each case runs in-process in a fresh folder; the slowest fail within seconds).
"""

from __future__ import annotations

import pickle
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pretrainlab.core.cli import main

Setup = Callable[[Path, Path], list[str]]  # (tmp folder, smoke data) -> argv after "isp"


def _png16(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr.astype(np.uint16)).save(path)
    return path


def _write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _npy(path: Path, arr: np.ndarray) -> Path:
    np.save(path, arr)
    return path


def _png_bomb(path: Path) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 16, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    return path


def _npy_bomb(path: Path) -> Path:
    header = "{'descr': '<u2', 'fortran_order': False, 'shape': (100000, 100000, 4), }"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + header.ljust(117).encode() + b"\n" + b"\0" * 64)
    return path


class _Evil:
    def __reduce__(self):  # a pickle that would run code when loaded
        return (print, ("pwned",))


def _evil_pth(path: Path) -> Path:
    with open(path, "wb") as f:
        pickle.dump({"conv1.weight": _Evil()}, f)
    return path


def _weights(path: Path, arch: str) -> Path:
    from pretrainlab.isp.generators import build_generator

    torch.save(build_generator(arch).state_dict(), path)
    return path


def _raw(t: Path, d: Path) -> str:
    return str(d / "samples/0.png")


def _render(inp: str, *extra: str) -> list[str]:
    return ["render", "--conventional", "--input", inp, "--out", "OUT", *extra]


def _copy_data(t: Path, d: Path, corrupt: str | None = None, drop: str | None = None) -> Path:
    """A copy of the smoke set (one training RAW replaced by ``corrupt`` bytes, or the folder ``drop`` removed)."""
    root = t / "ds"
    shutil.copytree(d, root)
    if corrupt is not None:
        (root / "train/huawei_raw/0.png").write_bytes(corrupt.encode())
    if drop is not None:
        shutil.rmtree(root / drop)
    return root


def _pretrain(*over: str, data: str | None = None) -> Callable[[Path, Path], list[str]]:
    def argv(t: Path, d: Path) -> list[str]:
        return ["pretrain", "--profile", "smoke", "--data", data or str(d), "--out", str(t / "run"),
                "train.progress=false", *over]

    return argv


CASES: dict[str, tuple[Setup, str]] = {
    # --------------------------------------------------------------------------- data
    "data: --photos folder missing": (lambda t, d: ["data", "--out", str(t / "d"), "--profile", "smoke",
                                                    "--photos", str(t / "nope")], "nope: --photos: folder not found"),
    "data: --photos without images": (lambda t, d: ["data", "--out", str(t / "d"), "--profile", "smoke", "--photos",
                                                   str(_mkdir(t / "ph"))],
                                      "--photos: no JPEG / PNG"),
    "data: --photos with a broken JPEG": (lambda t, d: _write(_mkdir(t / "ph") / "x.jpg", "no") and
                                          ["data", "--out", str(t / "d"), "--profile", "smoke", "--photos", str(t / "ph")],
                                          "x.jpg: not a readable image"),
    "data: unknown profile": (lambda t, d: ["data", "--out", str(t / "d"), "--profile", "huge"], "invalid choice: 'huge'"),
    # --------------------------------------------------------------------------- pretrain: config keys
    "pretrain: loss.d_every=0": (_pretrain("loss.d_every=0"), "loss.d_every: 0 is not allowed"),
    "pretrain: train.batch_size=0": (_pretrain("train.batch_size=0"), "train.batch_size: 0 is not allowed"),
    "pretrain: train.lr=nan": (_pretrain("train.lr=nan"), "train.lr: NaN is not allowed"),
    "pretrain: loss.mode=bogus": (_pretrain("loss.mode=bogus"), "loss.mode: 'bogus' is not allowed"),
    "pretrain: data.norm=bogus": (_pretrain("data.norm=bogus"), "data.norm: 'bogus' is not allowed"),
    "pretrain: model.generator=NoSuch": (_pretrain("model.generator=NoSuch"), "model.generator: 'NoSuch' is not allowed"),
    "pretrain: data.patch=30": (_pretrain("data.patch=30"), "data.patch: 30 is not allowed"),
    "pretrain: loss.blur_kernel=4": (_pretrain("loss.blur_kernel=4"), "loss.blur_kernel: 4 is not allowed"),
    "pretrain: features.vit_dim=30": (_pretrain("features.vit_dim=30"), "features.vit_dim: 30 is not divisible"),
    "pretrain: loss.disc_widths=[0,...]": (_pretrain("loss.disc_widths=[0,8,8,8,8]"), "loss.disc_widths[0]: 0 is not allowed"),
    "pretrain: loss.r_scale=-1": (_pretrain("loss.r_scale=-1"), "loss.r_scale: -1.0 is not allowed"),
    "pretrain: data.bayer_pattern=XYZW": (_pretrain("data.bayer_pattern=XYZW"), "data.bayer_pattern: 'XYZW' is not allowed"),
    "pretrain: unknown key": (_pretrain("loss.modee=paired"), "loss.modee"),
    # --------------------------------------------------------------------------- pretrain: files
    "pretrain: --data missing": (lambda t, d: _pretrain(data=str(t / "nope"))(t, d), "nope: dataset folder not found"),
    "pretrain: --data without train/": (lambda t, d: _pretrain(data=str(_mkdir(t / "empty")))(t, d),
                                        "train: split folder not found"),
    "pretrain: disjoint targets missing": (lambda t, d: _pretrain("data.unpaired_source=disjoint", data=str(
        _copy_data(t, d, drop="train/canon_unpaired")))(t, d), "no <rgb>_unpaired/ folder"),
    "pretrain: unpaired_rgb_dir missing": (_pretrain(f"data.unpaired_rgb_dir={'/nonexistent/dslr'}"),
                                           "dslr: data.unpaired_rgb_dir: folder not found"),
    "pretrain: a corrupt training RAW": (lambda t, d: _pretrain(data=str(_copy_data(t, d, "garbage")))(t, d),
                                         "0.png: not a readable image"),
    "pretrain: patch larger than the RAWs": (_pretrain("data.patch=128"), "smaller than data.patch=128"),
    "pretrain: model.init missing": (_pretrain("model.init=/nonexistent/pretrained_20000.pth"),
                                     "pretrained_20000.pth: model.init: file not found"),
    "pretrain: model.init of another arch": (lambda t, d: _pretrain(f"model.init={_weights(t / 'r.pth', 'robustisp')}")(t, d),
                                             "r.pth: holds RobustISP (--arch robustisp) weights, not --arch efficientisp"),
    "pretrain: vgg .mat missing": (_pretrain("features.vgg_weights=/nonexistent/vgg.mat"), "vgg.mat: file not found"),
    "pretrain: vgg .mat not a MAT file": (lambda t, d: _pretrain(f"features.vgg_weights={_write(t / 'v.mat', 'x')}")(t, d),
                                         "v.mat: not a MatConvNet VGG .mat file"),
    "pretrain: ViT weights are a pickle trap": (lambda t, d: _pretrain(f"features.vit_weights={_evil_pth(t / 'vit.pth')}")(t, d),
                                                "vit.pth: refused"),
    "pretrain: --resume on a fresh folder": (lambda t, d: [*_pretrain()(t, d), "--resume"], "--resume"),
    # --------------------------------------------------------------------------- finetune / eval
    "finetune: --init missing": (lambda t, d: ["finetune", "--profile", "smoke", "--data", str(d), "--init",
                                               str(t / "nope"), "--out", str(t / "ft"), "train.progress=false"],
                                 "nope: model.init: file not found"),
    "finetune: --init folder without checkpoint": (lambda t, d: [
        "finetune", "--profile", "smoke", "--data", str(d), "--init", str(_mkdir(t / "e")), "--out", str(t / "ft"),
        "train.progress=false"], "holds no checkpoint"),
    "eval: --ckpt missing": (lambda t, d: ["eval", "--ckpt", str(t / "nope"), "--data", str(d)], "nope: no such checkpoint"),
    "eval: --ckpt a text .pth": (lambda t, d: ["eval", "--ckpt", str(_write(t / "w.pth", "hello")), "--data", str(d)],
                                 "w.pth: not a readable torch"),
    "eval: --ckpt a pickle trap": (lambda t, d: ["eval", "--ckpt", str(_evil_pth(t / "e.pth")), "--data", str(d)],
                                   "e.pth: refused"),
    "eval: --ckpt an unknown state dict": (lambda t, d: torch.save({"w": torch.zeros(2)}, t / "u.pth") or
                                           ["eval", "--ckpt", str(t / "u.pth"), "--data", str(d)],
                                           "u.pth: holds no known generator"),
    "eval: data without a test split": (lambda t, d: ["eval", "--ckpt", str(_weights(t / "e.pth", "efficientisp")),
                                                      "--data", str(_copy_data(t, d, drop="test"))],
                                        "test: split folder not found"),
    # --------------------------------------------------------------------------- render
    "render: no model": (lambda t, d: ["render", "--input", _raw(t, d), "--out", "OUT"], "--ckpt: missing"),
    "render: two models": (lambda t, d: [*_render(_raw(t, d)), "--weights", str(t / "w.pth")], "give only one of"),
    "render: --arch without --weights": (lambda t, d: [*_render(_raw(t, d)), "--arch", "robustisp"], "--arch: only used with"),
    "render: --arch bogus": (lambda t, d: [*_render(_raw(t, d)), "--arch", "vgg"], "invalid choice: 'vgg'"),
    "render: --weights missing": (lambda t, d: ["render", "--weights", str(t / "w.pth"), "--input", _raw(t, d),
                                                "--out", "OUT"], "w.pth: file not found"),
    "render: --weights of another arch": (lambda t, d: ["render", "--weights", str(_weights(t / "r.pth", "rmfanet_tiny")),
                                                        "--arch", "robustisp", "--input", _raw(t, d), "--out", "OUT"],
                                          "r.pth: holds RMFA-Net tiny (--arch rmfanet_tiny) weights, not --arch robustisp"),
    "render: --weights a pickle trap": (lambda t, d: ["render", "--weights", str(_evil_pth(t / "w.pth")), "--input",
                                                      _raw(t, d), "--out", "OUT"], "w.pth: refused"),
    "render: --ckpt a folder of another kind": (lambda t, d: ["render", "--ckpt", str(_mkdir(t / "x")), "--input", _raw(t, d),
                                                             "--out", "OUT"],
                                                "holds no checkpoint"),
    "render: --input missing": (lambda t, d: _render(str(t / "nope.png")), "nope.png: file or folder not found"),
    "render: --input empty folder": (lambda t, d: _render(str(_mkdir(t / "in"))), "in: no RAW files"),
    "render: --norm bogus": (lambda t, d: ["render", "--weights", str(_weights(t / "w.pth", "efficientisp")), "--input",
                                           _raw(t, d), "--out", "OUT", "--norm", "bogus"], "--norm: 'bogus' is not allowed"),
    "render: --pattern XYZW": (lambda t, d: _render(_raw(t, d), "--pattern", "XYZW"), "unknown Bayer pattern 'XYZW'"),
    "render: --out is a file": (lambda t, d: ["render", "--conventional", "--input", _raw(t, d), "--out",
                                             str(_write(t / "o.txt", "x"))],
                                "o.txt: --out exists and is not a folder"),
    "render: --out overwrites the input": (lambda t, d: shutil.copy(d / "samples/0.png", _mkdir(t / "in") / "a.png") and
                                           ["render", "--conventional", "--input", str(t / "in"), "--out", str(t / "in")],
                                           "a.png: rendering would overwrite this input RAW file"),
    "render: PNG header of 60000x60000": (lambda t, d: _render(str(_png_bomb(t / "bomb.png"))), "bomb.png: "),
    "render: NPY header of 1e5 x 1e5 x 4": (lambda t, d: _render(str(_npy_bomb(t / "bomb.npy"))), "bomb.npy: header declares"),
    "render: float npy already normalised": (lambda t, d: _render(str(_npy(t / "f.npy", np.random.rand(8, 8, 4)))),
                                             "f.npy: float64 values in"),
    "render: npy with NaN": (lambda t, d: _render(str(_npy(t / "n.npy", np.full((8, 8, 4), np.nan)))),
                             "n.npy: RAW array holds NaN"),
    "render: npy counts over 14 bits": (lambda t, d: _render(str(_npy(t / "big.npy", np.full((8, 8, 4), 40000, np.uint16)))),
                                        "big.npy: RAW counts outside"),
    "render: npy pickle": (lambda t, d: _render(str(t / "p.npy")) if np.save(t / "p.npy", np.array([{}], dtype=object),
                                                                             allow_pickle=True) is None else [],
                           "p.npy: holds Python objects"),
    "render: npy of shape (8, 8, 3)": (lambda t, d: _render(str(_npy(t / "s.npy", np.zeros((8, 8, 3), np.uint16)))),
                                       "s.npy: expected a packed"),
    "render: 8-bit PNG": (lambda t, d: Image.fromarray(np.zeros((8, 8), np.uint8)).save(t / "g.png") or _render(str(t / "g.png")),
                          "g.png: RAW mosaic is 8-bit"),
    "render: RGB PNG as a RAW": (lambda t, d: Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(t / "c.png") or
                                 _render(str(t / "c.png")), "c.png: RAW mosaic has mode 'RGB'"),
    "render: odd mosaic": (lambda t, d: _render(str(_png16(t / "odd.png", np.full((9, 8), 100)))), "odd.png: RAW mosaic has odd"),
    "render: empty PNG file": (lambda t, d: _render(str(_write(t / "z.png", b""))), "z.png: not a readable"),
    "render: truncated DNG": (lambda t, d: _render(str(_write(t / "cut.dng", (d / "samples/0.dng").read_bytes()[:300]))),
                              "cut.dng: rawpy cannot read"),
    "render: a text file named .dng": (lambda t, d: _render(str(_write(t / "x.dng", "hi"))),
                                       "x.dng: rawpy cannot read"),
    "render: unsupported file type": (lambda t, d: _render(str(_write(t / "x.tif", "hi"))),
                                      "x.tif: unsupported RAW file type"),
    "render: folder with one bad RAW": (lambda t, d: _write(_mkdir(t / "in") / "b.npy", b"junk") and
                                        shutil.copy(d / "samples/0.png", t / "in/a.png") and _render(str(t / "in")),
                                        "b.npy: not a valid .npy file"),
    # --------------------------------------------------------------------------- demo / bench / reproduce / report
    "demo: --weights missing": (lambda t, d: ["demo", "--weights", str(t / "w.pth")], "w.pth: --weights: no such"),
    "demo: --arch without --weights": (lambda t, d: ["demo", "--arch", "robustisp"], "--arch: only used with --weights"),
    "demo: --ckpt and --weights": (lambda t, d: ["demo", "--ckpt", str(d), "--weights", str(_weights(t / "w.pth", "robustisp"))],
                                   "--ckpt and --weights"),
    "bench: --device bogus": (lambda t, d: ["bench", "--device", "bogus"], "--device: 'bogus' is not"),
    "bench: --steps 0": (lambda t, d: ["bench", "--device", "cpu", "--steps", "0"], "--steps"),
    "report: --publish missing": (lambda t, d: ["report", "--publish", str(t / "nope.json")], "nope.json: file not found"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case: str, tmp_path: Path, smoke_data: Path, smoke_nets, capsys: pytest.CaptureFixture[str]) -> None:
    setup, expected = CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    argv = [a.replace("OUT", str(work / "out")) if a == "OUT" else a for a in setup(work, smoke_data)]
    before = {p for p in work.rglob("*")}
    try:
        rc = main(["isp", *argv])
    except SystemExit as e:  # argparse's own usage errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, (case, err[-600:])
    assert expected in err, (case, err[-600:])
    assert "Traceback" not in err and "pwned" not in capsys.readouterr().out
    error_lines = [line for line in err.splitlines() if line.startswith("error:") or ": error:" in line]
    assert len(error_lines) == 1, err[-600:]
    after = {p for p in work.rglob("*")}
    assert after == before, f"left behind: {sorted(str(p.relative_to(work)) for p in after - before)}"


DEMO_CASES = {
    "no file": (lambda t: None, "please upload"),
    "a text file": (lambda t: _write(t / "x.txt", "hi"), "x.txt: unsupported file type"),
    "a PNG bomb": (lambda t: _png_bomb(t / "bomb.png"), "bomb.png: "),
    "a normalised float npy": (lambda t: _npy(t / "f.npy", np.random.rand(8, 8, 4).astype(np.float32)), "look already normalised"),
    "an 8-bit PNG": (lambda t: Image.fromarray(np.zeros((8, 8), np.uint8)).save(t / "g.png") or t / "g.png", "8-bit"),
    "a broken DNG": (lambda t: _write(t / "b.dng", b"\x00" * 64), "b.dng: rawpy cannot read"),
}


@pytest.mark.parametrize("case", sorted(DEMO_CASES))
def test_demo_prediction_rejects(case: str, tmp_path: Path, smoke_run: Path) -> None:
    from pretrainlab.core.data import DataError
    from pretrainlab.core.demo import load_app_module

    app = load_app_module("isp")
    make, expected = DEMO_CASES[case]
    with pytest.raises(DataError) as e:
        app.predict_upload(make(tmp_path), smoke_run)
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_demo_sample_and_weights_misuse(tmp_path: Path, smoke_run: Path) -> None:
    from pretrainlab.core.checkpoint import CheckpointError
    from pretrainlab.core.data import DataError
    from pretrainlab.core.demo import load_app_module

    app = load_app_module("isp")
    with pytest.raises(DataError, match="bogus: unknown sample"):
        app.predict_sample("bogus", smoke_run)
    w = _weights(tmp_path / "robust.pth", "robustisp")
    with pytest.raises(CheckpointError, match="robust.pth: holds RobustISP"):
        app.predict_sample("0.png", weights=w, arch="efficientisp")
