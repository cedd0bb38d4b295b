"""A sweep of bad input and misuse through every face verb (data, pretrain, finetune, eval, embed, verify)
and the demo's prediction functions: each case exits 2 (the demo: raises DataError) with one clear line
naming the file or the key, no traceback, nothing left behind, no hang."""

from __future__ import annotations

import io
import pickle
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pretrainlab.core.cli import main
from pretrainlab.core.data import DataError
from pretrainlab.core.testing import write_zip


def _png_header_bomb(path: Path) -> None:
    """A tiny PNG whose IHDR declares 60000 x 60000 pixels."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
                     + chunk(b"IEND", b""))


class _Evil:
    def __reduce__(self) -> tuple:
        import os

        return (os.system, ("echo pwned > /tmp/face_bad_input_pwned",))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("facebad")
    data = root / "data"
    assert main(["face", "data", "--out", str(data), "--profile", "smoke"]) == 0
    pre, petal = root / "pre", root / "petal"
    assert main(["face", "pretrain", "--profile", "smoke", "--data", str(data), "--out", str(pre),
                 "train.progress=false", "train.max_steps=1"]) == 0
    assert main(["face", "finetune", "--profile", "smoke", "--data", str(data), "--init", str(pre), "--out",
                 str(petal), "train.progress=false", "train.max_steps=1"]) == 0
    w: dict[str, Path] = {"root": root, "data": data, "pre": pre, "petal": petal}
    face = next((data / "verify").glob("*/*.png"))
    raw = face.read_bytes()

    def copy(name: str) -> Path:
        dst = root / name
        shutil.copytree(data, dst)
        return dst

    d = copy("textimg")
    (next((d / "train_hr").iterdir()) / "zz.png").write_text("not a png")
    w["textimg"] = d
    d = copy("bomb")
    _png_header_bomb(next((d / "train_hr").iterdir()) / "huge.png")
    w["bomb"] = d
    d = copy("badrec")
    idx = d / "train_lr" / "train.idx"
    idx.write_text(idx.read_text() + "999\t123456789\n")
    w["badrec"] = d
    d = copy("badmagic")
    rec = d / "train_lr" / "train.rec"
    b = bytearray(rec.read_bytes())
    off = int((d / "train_lr" / "train.idx").read_text().splitlines()[2].split()[1])
    b[off:off + 4] = b"JUNK"
    rec.write_bytes(bytes(b))
    w["badmagic"] = d
    d = copy("nohr")
    shutil.rmtree(d / "train_hr")
    w["nohr"] = d
    d = copy("badpairs")
    (d / "verify" / "pairs.txt").write_text("2\t1\nNobody\t1\t2\n")
    w["badpairs"] = d
    d = copy("escape")
    (d / "tinyface" / "probe.txt").write_text("../../etc/passwd 1\n")
    w["escape"] = d
    d = copy("nogallery")
    (d / "tinyface" / "gallery_match.txt").write_text((d / "tinyface" / "gallery_match.txt").read_text().splitlines()[0] + "\n")
    w["nogallery"] = d
    with open(root / "evil.bin", "wb") as f:
        pickle.dump(([raw, raw], _Evil()), f)
    (root / "cut.bin").write_bytes((data / "verify.bin").read_bytes()[:300])
    torch.save({"patch_embed.proj.weight": torch.zeros(3), "x": torch.zeros(1)}, root / "wrong.pt")
    torch.save({"w": torch.zeros(2), "evil": _Evil()}, root / "evil.pt")
    (root / "text.pt").write_text("not a checkpoint")
    (root / "cnniqa.pth").write_text("not weights")
    # inputs for embed / verify
    faces = root / "faces"
    faces.mkdir()
    for i, p in enumerate(sorted((data / "verify").glob("*/*.png"))[:3]):
        shutil.copy(p, faces / f"f{i}.png")
    (root / "emptydir").mkdir()
    cut = root / "cutfaces"
    cut.mkdir()
    (cut / "a.png").write_bytes(raw)
    (cut / "b.png").write_bytes(raw[: len(raw) // 3])
    csvs = {"nonutf8": b"file,score\n\xff\xfe,1\n", "noheader": b"f0.png,1\nf1.png,2\nf2.png,3\n",
            "nan": b"file,score\nf0.png,nan\nf1.png,1\nf2.png,1\n", "dup": b"file,score\nf0.png,1\nf0.png,2\n",
            "missing": b"file,score\nf0.png,1\nf1.png,1\n", "extra": b"file,score\nf0.png,1\nf1.png,1\nf2.png,1\nzz.png,1\n",
            "text": b"file,score\nf0.png,high\nf1.png,1\nf2.png,1\n"}
    for k, v in csvs.items():
        (root / f"{k}.csv").write_bytes(v)
    (root / "outdir.npy").mkdir()
    torch.save(_reference_like_sd(), root / "ref.pt")
    (root / "file.txt").write_text("x")
    return w


def _reference_like_sd() -> dict[str, torch.Tensor]:
    """A tiny plain (non-adapted) reference-layout state dict, for the model.pt cases."""
    from pretrainlab.face.config import SwinConfig
    from pretrainlab.face.swin_face import SwinFace

    net = SwinFace(SwinConfig(image_size=24, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                              window_size=3, embedding_dim=32))
    return net.state_dict()


FT = ["face", "finetune", "--profile", "smoke", "--data", "{data}", "--init", "{pre}", "--out", "{new}"]
PT = ["face", "pretrain", "--profile", "smoke", "--out", "{new}"]
EMB = ["face", "embed", "--ckpt", "{petal}", "--input", "{root}/faces", "--out", "{out}/e.safetensors"]
EV = ["face", "eval", "--ckpt", "{petal}", "--out", "{out}/m.json"]

CASES = [
    # config values, named by their key
    ("lora rank 0", FT + ["lora.rank=0"], "lora.rank"),
    ("lora dropout 1.5", FT + ["lora.dropout=1.5"], "lora.dropout"),
    ("lora init", FT + ["lora.init=zero"], "lora.init"),
    ("lora scale 0", FT + ["lora.scale=0"], "lora.scale"),
    ("margin scale 0", FT + ["loss.s=0"], "loss.s"),
    ("arcface + cosface", FT + ["loss.m2=0.5"], "loss.m1/m2/m3"),
    ("margin m3 1", FT + ["loss.m3=1.0"], "loss.m3"),
    ("scorer bogus", FT + ["quality.scorer=bogus"], "quality.scorer"),
    ("threshold nan", FT + ["quality.threshold=nan"], "quality.threshold"),
    ("cnniqa without weights", FT + ["quality.scorer=cnniqa"], "quality.weights"),
    ("cnniqa weights missing", FT + ["quality.scorer=cnniqa", "quality.weights={root}/nope.pth"], "nope.pth"),
    ("cnniqa weights junk", FT + ["quality.scorer=cnniqa", "quality.weights={root}/cnniqa.pth"], "cnniqa.pth"),
    ("heads not dividing", PT + ["model.num_heads=[3,2]"], "model.num_heads"),
    ("image not multiple of patch", PT + ["model.image_size=25"], "model.image_size"),
    ("window 0", PT + ["model.window_size=0"], "model.window_size"),
    ("drop path 1", PT + ["model.drop_path=1.0"], "model.drop_path"),
    ("depths vs heads", PT + ["model.depths=[1]"], "model.depths"),
    ("ranks 0", PT + ["eval.ranks=[0]"], "eval.ranks"),
    ("far 2", PT + ["eval.fars=[2]"], "eval.fars"),
    ("epochs negative", FT + ["epochs=-1"], "epochs"),
    ("verify dir escapes", PT + ["data.verify_dir=../x"], "data.verify_dir"),
    ("method bogus", PT + ["method=bogus"], "method"),
    ("workers negative", PT + ["data.num_workers=-1"], "data.num_workers"),
    # checkpoints given as --init / --ckpt
    ("init is adapted", ["face", "finetune", "--profile", "smoke", "--data", "{data}", "--init", "{petal}", "--out", "{new}"],
     "adapted model"),
    ("init missing", ["face", "finetune", "--profile", "smoke", "--data", "{data}", "--init", "{root}/noinit", "--out",
                      "{new}"], "noinit"),
    ("init text .pt", ["face", "finetune", "--profile", "smoke", "--data", "{data}", "--init", "{root}/text.pt",
                       "--out", "{new}"], "text.pt"),
    ("init pickle runs code", ["face", "finetune", "--profile", "smoke", "--data", "{data}", "--init",
                               "{root}/evil.pt", "--out", "{new}"], "evil.pt: refused"),
    ("eval wrong .pt", ["face", "eval", "--ckpt", "{root}/wrong.pt", "--out", "{out}/m.json"], "wrong.pt"),
    ("eval ckpt is a file", ["face", "eval", "--ckpt", "{root}/file.txt", "--out", "{out}/m.json"], "file.txt"),
    # datasets
    ("text as png", ["face", "pretrain", "--profile", "smoke", "--data", "{textimg}", "--out", "{new}",
                     "train.batch_size=48", "train.max_steps=1"], "zz.png: not a readable image"),
    ("png header bomb", ["face", "pretrain", "--profile", "smoke", "--data", "{bomb}", "--out", "{new}",
                         "train.batch_size=49", "train.max_steps=1"], "huge.png"),
    ("no train_hr", ["face", "pretrain", "--profile", "smoke", "--data", "{nohr}", "--out", "{new}"], "train_hr"),
    ("idx offset past end", ["face", "finetune", "--profile", "smoke", "--data", "{badrec}", "--init", "{pre}",
                             "--out", "{new}"], "train.idx: line"),
    ("rec bad magic", ["face", "finetune", "--profile", "smoke", "--data", "{badmagic}", "--init", "{pre}", "--out",
                       "{new}", "train.batch_size=32", "train.max_steps=1"], "bad magic"),
    ("eval no verification set", EV + ["--data", "{root}/emptydir"], "verification set not found"),
    ("eval .bin runs code", EV + ["--data", "{root}", "data.verify_dir=evil.bin"], "evil.bin: refused"),
    ("eval truncated .bin", EV + ["--data", "{root}", "data.verify_dir=cut.bin"], "cut.bin: not a verification .bin"),
    ("eval pairs to missing image", EV + ["--data", "{badpairs}"], "pairs.txt: line 2"),
    ("eval list leaves folder", EV + ["--data", "{escape}"], "leaves the TinyFace folder"),
    ("eval probe without gallery", EV + ["--data", "{nogallery}"], "no gallery image"),
    # embed
    ("embed bad suffix", ["face", "embed", "--ckpt", "{petal}", "--input", "{root}/faces", "--out", "{out}/e.txt"],
     "--out must end in"),
    ("embed out is a folder", ["face", "embed", "--ckpt", "{petal}", "--input", "{root}/faces", "--out",
                               "{root}/outdir.npy"], "is a folder"),
    ("embed input missing", ["face", "embed", "--ckpt", "{petal}", "--input", "{root}/nofaces", "--out",
                             "{out}/e.npy"], "nofaces"),
    ("embed input empty", ["face", "embed", "--ckpt", "{petal}", "--input", "{root}/emptydir", "--out", "{out}/e.npy"],
     "no images"),
    ("embed truncated png", ["face", "embed", "--ckpt", "{petal}", "--input", "{root}/cutfaces", "--out",
                             "{out}/e.npy"], "b.png"),
    ("scores not utf-8", EMB + ["--quality-scores", "{root}/nonutf8.csv"], "nonutf8.csv: not UTF-8"),
    ("scores no header", EMB + ["--quality-scores", "{root}/noheader.csv"], "noheader.csv: first line"),
    ("scores nan", EMB + ["--quality-scores", "{root}/nan.csv"], "nan.csv: line 2"),
    ("scores text", EMB + ["--quality-scores", "{root}/text.csv"], "text.csv: line 2"),
    ("scores duplicate", EMB + ["--quality-scores", "{root}/dup.csv"], "listed twice"),
    ("scores missing image", EMB + ["--quality-scores", "{root}/missing.csv"], "no score for image 'f2.png'"),
    ("scores extra row", EMB + ["--quality-scores", "{root}/extra.csv"], "not among"),
    ("scores file missing", EMB + ["--quality-scores", "{root}/none.csv"], "none.csv"),
    ("reference shapes fixed", ["face", "embed", "--ckpt", "{root}/ref.pt", "--input", "{root}/faces", "--out",
                                "{out}/e.npy", "model.embed_dim=8"], "model.embed_dim"),
    ("override not key=value", EMB + ["quality.threshold"], "key=value"),
    ("override unknown key", EMB + ["quality.treshold=1"], "quality.treshold"),
    # verify
    ("verify folder as image", ["face", "verify", "--ckpt", "{petal}", "{root}/faces", "{root}/faces/f0.png"],
     "is a folder"),
    ("verify missing image", ["face", "verify", "--ckpt", "{petal}", "{root}/nope.png", "{root}/faces/f0.png"],
     "nope.png"),
    # data / run folders
    ("data exists", ["face", "data", "--out", "{data}", "--profile", "smoke"], "already exists"),
    ("finetune over existing run", ["face", "finetune", "--profile", "smoke", "--data", "{data}", "--init", "{pre}",
                                    "--out", "{petal}"], "already exists"),
]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own usage errors
        rc = int(e.code or 0)
    return rc, capsys.readouterr().err


def _tree(p: Path) -> list[str]:
    return sorted(str(x) for x in p.rglob("*"))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(case: tuple[str, list[str], str], world: dict[str, Path], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    _, argv, expect = case
    new, out = tmp_path / "new-run", tmp_path / "out"
    out.mkdir()
    fill = {**{k: str(v) for k, v in world.items()}, "new": str(new), "out": str(out)}
    argv = [a.format(**fill) for a in argv]
    if argv[1] in ("pretrain", "finetune"):
        argv.append("train.progress=false")
    before = _tree(world["root"])
    rc, err = run_cli(argv, capsys)
    assert rc == 2, f"exit {rc}\n{err[-2000:]}"
    assert expect in err, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err[-2000:]
    assert not new.exists(), "a failed command left its run folder"
    assert list(out.iterdir()) == [], f"a failed command left files: {list(out.iterdir())}"
    assert _tree(world["root"]) == before, "a failed command changed the inputs"
    assert not Path("/tmp/face_bad_input_pwned").exists()


# ------------------------------------------------------------------ the demo's prediction functions
@pytest.fixture(scope="module")
def app():
    from pretrainlab.core.demo import load_app_module

    return load_app_module("face")


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


DEMO = [
    ("text upload", "verify", lambda d: (d / "notes.txt", d / "notes.txt"), "unsupported file type"),
    ("fake png", "verify", lambda d: (d / "fake.png", d / "fake.png"), "fake.png: not a readable image"),
    ("png header bomb", "verify", lambda d: (d / "huge.png", d / "ok.png"), "huge.png"),
    ("missing probe", "identify", lambda d: (None, True, None), "please upload"),
    ("no gallery", "identify", lambda d: (None, False, d / "ok.png"), "upload a gallery zip"),
    ("zip slip", "identify", lambda d: (write_zip(d / "slip.zip", {"../x/a.png": _png(0)}), False, d / "ok.png"),
     "unsafe path"),
    ("not a zip", "identify", lambda d: (d / "fake.zip", False, d / "ok.png"), "not a zip"),
    ("flat zip", "identify", lambda d: (write_zip(d / "flat.zip", {"a.png": _png(0)}), False, d / "ok.png"),
     "no identity folders"),
    ("zip of text", "identify", lambda d: (write_zip(d / "txt.zip", {"p1/a.png": b"text"}), False, d / "ok.png"),
     "not a readable image"),
]


@pytest.mark.parametrize("case", DEMO, ids=[c[0] for c in DEMO])
def test_demo_bad_input(case, app, petal_ckpt: Path, tmp_path: Path) -> None:
    _, kind, make, expect = case
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.png").write_text("not really a png")
    (tmp_path / "fake.zip").write_text("not a zip")
    (tmp_path / "ok.png").write_bytes(_png(1))
    _png_header_bomb(tmp_path / "huge.png")
    args = [str(a) if isinstance(a, Path) else a for a in make(tmp_path)]
    with pytest.raises(DataError, match=expect):
        if kind == "verify":
            app.verify_pair(*args, ckpt=petal_ckpt)
        else:
            app.identify_probe(*args, ckpt=petal_ckpt)
