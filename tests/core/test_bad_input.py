"""A sweep of bad input and misuse through the command line of the template domain (SimCLR) and
the core: every case exits 2 with one clear line naming the file or key, no traceback, nothing
left behind, no hang. Each domain has the same kind of sweep in tests/<d>/test_bad_input.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from pretrainlab.core.cli import main


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    data = root / "data"
    assert main(["simclr", "data", "--out", str(data), "--profile", "smoke"]) == 0
    run = root / "run"
    assert main(["simclr", "pretrain", "--profile", "smoke", "--data", str(data), "--out", str(run),
                 "train.progress=false"]) == 0
    # broken datasets
    empty = root / "empty"
    (empty / "train").mkdir(parents=True)
    noclass = root / "noclass"
    (noclass / "train" / "a").mkdir(parents=True)
    trunc = root / "trunc"
    (trunc / "train" / "a").mkdir(parents=True)
    raw = next((data / "train").glob("*/*.png")).read_bytes()
    for i in range(40):
        (trunc / "train" / "a" / f"{i}.png").write_bytes(raw)
    (trunc / "train" / "a" / "cut.png").write_bytes(raw[: len(raw) // 3])
    textimg = root / "textimg"
    (textimg / "train" / "a").mkdir(parents=True)
    for i in range(40):
        (textimg / "train" / "a" / f"{i}.png").write_text("not a png")
    bomb = root / "bomb"
    (bomb / "train" / "a").mkdir(parents=True)
    for i in range(40):
        (bomb / "train" / "a" / f"{i}.png").write_bytes(raw)
    _png_header_bomb(bomb / "train" / "a" / "huge.png")
    junk_ckpt = root / "junk_ckpt"
    junk_ckpt.mkdir()
    (junk_ckpt / "model.safetensors").write_bytes(b"\x00" * 64)
    (root / "file.txt").write_text("x")
    return {"root": root, "data": data, "run": run, "empty": empty, "noclass": noclass, "trunc": trunc,
            "textimg": textimg, "bomb": bomb, "junk_ckpt": junk_ckpt, "file": root / "file.txt"}


def _png_header_bomb(path: Path) -> None:
    """A tiny PNG whose IHDR declares 60000 x 60000 pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
                     + chunk(b"IEND", b""))


CASES = [
    # (id, argv template, expected text in the error)
    ("unknown key", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "train.lrr=1"], "train.lrr"),
    ("unknown section", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "modle.width=3"], "modle"),
    ("batch 0", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "train.batch_size=0"], "train.batch_size"),
    ("lr nan", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "train.lr=nan"], "train.lr"),
    ("lr negative", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "train.lr=-0.1"], "train.lr"),
    ("lr text", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "train.lr=fast"], "train.lr"),
    ("steps 0", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "train.max_steps=0"], "train.max_steps"),
    ("steps float", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "train.max_steps=2.5"],
     "train.max_steps"),
    ("accum 0", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "train.grad_accum=0"], "train.grad_accum"),
    ("bad schedule", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "train.schedule=cosin"],
     "train.schedule"),
    ("bad optimizer", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "train.optimizer=adamx"],
     "train.optimizer"),
    ("bad precision", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "train.precision=fp8"],
     "train.precision"),
    ("bad device", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "train.device=gpu0"], "train.device"),
    ("betas >1", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "train.betas=[0.9,1.2]"], "train.betas"),
    ("betas 3", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "train.betas=[0.9,0.9,0.9]"],
     "train.betas"),
    ("momentum 1", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "train.momentum=1.0"], "train.momentum"),
    ("nesterov adam", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "train.nesterov=true"],
     "train.nesterov"),
    ("workers -1", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "train.num_workers=-1"],
     "train.num_workers"),
    ("temperature 0", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "loss.temperature=0"],
     "loss.temperature"),
    ("width 0", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "model.width=0"], "model.width"),
    ("data profile", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "data.profile=huge"],
     "data.profile"),
    ("not key=value", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "train.lr"], "key=value"),
    ("empty key", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "=3"], "empty key"),
    ("missing recipe", ["simclr", "pretrain", "--config", "simclrr", "--out", "{new}"], "simclrr"),
    ("missing yaml", ["simclr", "pretrain", "--config", "{root}/nope.yaml", "--out", "{new}"], "nope.yaml"),
    ("existing run", ["simclr", "pretrain", "--profile", "smoke", "--data", "{data}", "--out", "{run}"],
     "already exists"),
    ("resume missing", ["simclr", "pretrain", "--profile", "smoke", "--out", "{new}", "--resume"], "--resume"),
    ("out is a file", ["simclr", "pretrain", "--profile", "smoke", "--out", "{file}", "--overwrite"], "is a file"),
    ("data missing", ["simclr", "pretrain", "--profile", "smoke", "--data", "{root}/nodata", "--out", "{new}"],
     "nodata"),
    ("data no classes", ["simclr", "pretrain", "--profile", "smoke", "--data", "{empty}", "--out", "{new}"],
     "no class sub-folders"),
    ("data no images", ["simclr", "pretrain", "--profile", "smoke", "--data", "{noclass}", "--out", "{new}"],
     "no .png"),
    ("truncated png", ["simclr", "pretrain", "--profile", "smoke", "--data", "{trunc}", "--out", "{new}",
                       "train.batch_size=41", "train.max_steps=1"], "cut.png"),
    ("text as png", ["simclr", "pretrain", "--profile", "smoke", "--data", "{textimg}", "--out", "{new}"],
     "not a readable image"),
    ("png header bomb", ["simclr", "pretrain", "--profile", "smoke", "--data", "{bomb}", "--out", "{new}",
                         "train.batch_size=41", "train.max_steps=1"], "huge.png"),
    ("eval missing ckpt", ["simclr", "eval", "--ckpt", "{root}/nockpt"], "nockpt"),
    ("eval junk ckpt", ["simclr", "eval", "--ckpt", "{junk_ckpt}"], "junk_ckpt"),
    ("eval folder without ckpt", ["simclr", "eval", "--ckpt", "{empty}"], "holds no checkpoint"),
    ("finetune missing init", ["simclr", "finetune", "--profile", "smoke", "--init", "{root}/noinit", "--out", "{new}"],
     "noinit"),
    ("data exists", ["simclr", "data", "--out", "{data}", "--profile", "smoke"], "already exists"),
    ("report missing", ["simclr", "report", "--publish", "{root}/none.json"], "none.json"),
    ("demo missing ckpt", ["simclr", "demo", "--ckpt", "{root}/nodemo"], "nodemo"),
    ("demo bad port", ["simclr", "demo", "--port", "70000"], "--port 70000"),
    ("bad profile", ["simclr", "reproduce", "--profile", "huge"], "invalid choice"),
    ("bench bad precision", ["simclr", "bench", "--precision", "fp8"], "invalid choice"),
]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``main(argv)`` in this process (an exception escaping it fails the test with its traceback)."""
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own usage errors
        rc = int(e.code or 0)
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(case: tuple[str, list[str], str], world: dict[str, Path], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    _, argv, expect = case
    new = tmp_path / "new-run"
    fill = {**{k: str(v) for k, v in world.items()}, "new": str(new)}
    argv = [a.format(**fill) for a in argv] + (["train.progress=false"] if argv[1] == "pretrain" else [])
    before = sorted(p.name for p in world["root"].iterdir())
    run_before = sorted(str(p) for p in world["run"].rglob("*"))
    rc, err = run_cli(argv, capsys)
    assert rc == 2, f"exit {rc}\n{err[-2000:]}"
    assert expect in err, err[-2000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 or "usage:" in err, err[-2000:]
    assert not new.exists(), "a failed command left its run folder"
    assert sorted(p.name for p in world["root"].iterdir()) == before
    assert sorted(str(p) for p in world["run"].rglob("*")) == run_before, "the existing run was touched"


@pytest.mark.parametrize("argv, expect", [
    (["simclr", "bench", "--device", "gpu"], "is not a device"),
    (["simclr", "bench", "--steps", "0"], "below the minimum 1"),
    (["simclr", "bench", "--warmup", "-1"], "below the minimum 0"),
    (["simclr", "bench", "--batch-size", "many"], "not a whole number"),
])
def test_bench_arguments_are_checked_for_every_domain(argv: list[str], expect: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = run_cli(argv, capsys)
    assert rc == 2 and expect in err
