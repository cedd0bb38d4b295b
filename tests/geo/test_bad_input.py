"""A sweep of bad input and misuse over every geo verb and the demo's prediction functions (issue #23).

Each CLI case asserts: exit code 2, the last line of stderr is ``error: ...`` naming the file or the
key, no traceback, nothing left behind (no run folder, no output file); each demo case: a DataError
naming the upload. A case that hangs fails on the timeout.
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from pretrainlab.core.cli import main
from pretrainlab.core.data import DataError

pytestmark = pytest.mark.timeout(180)

QUIET = ["train.progress=false", "contrastive.train.progress=false", "train.tensorboard=false",
         "contrastive.train.tensorboard=false"]


def _png_bomb(p: Path) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    p.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
                  + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))
    return p


def _text(p: Path, text: str | bytes) -> Path:
    p.write_bytes(text) if isinstance(text, bytes) else p.write_text(text)
    return p


def _world_copy(geo_data: Path, dst: Path) -> Path:
    shutil.copytree(geo_data, dst, ignore=shutil.ignore_patterns("shards"))
    return dst


def _missing_image_world(geo_data: Path, dst: Path) -> Path:
    root = _world_copy(geo_data, dst)
    (root / "images" / "train" / "train000007.jpg").unlink()
    return root


def _truncated_jpg(geo_data: Path, p: Path) -> Path:
    return _text(p, (geo_data / "images" / "test" / "test000000.jpg").read_bytes()[:300])


def _polys(p: Path, geom: dict) -> Path:
    return _text(p, json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": geom, "properties": {"name": "a"}}]}))


SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]}

# (id, builder(tmp, data, run) -> (argv after "geo", substring of the error line, paths that must not exist))
Case = Callable[[Path, Path, Path], tuple[list[str], str, list[Path]]]
CLI_CASES: list[tuple[str, Case]] = [
    # ------------------------------------------------------------------ cells
    ("cells-points-missing", lambda t, d, r: (["cells", "--points", str(t / "no.csv"), "--out", str(t / "c.geojson")],
                                               "no.csv: points CSV not found", [t / "c.geojson"])),
    ("cells-points-folder-without-csv", lambda t, d, r: (["cells", "--points", str(t), "--out", str(t / "c.geojson")],
                                                          "no train.csv", [t / "c.geojson"])),
    ("cells-lat-out-of-range", lambda t, d, r: (["cells", "--points", str(_text(t / "p.csv", "lat,lon\n100,0\n")),
                                                 "--out", str(t / "c.geojson")], "p.csv:2: latitude 100.0 out of range",
                                                [t / "c.geojson"])),
    ("cells-non-utf8", lambda t, d, r: (["cells", "--points", str(_text(t / "p.csv", b"lat,lon\n\xff\xfe,1\n")),
                                         "--out", str(t / "c.geojson")], "p.csv: not UTF-8", [t / "c.geojson"])),
    ("cells-row-longer-than-header", lambda t, d, r: (["cells", "--points", str(_text(t / "p.csv", "lat,lon\n1,2,3\n")),
                                                       "--out", str(t / "c.geojson")], "p.csv:2: row has 3 fields",
                                                      [t / "c.geojson"])),
    ("cells-empty-csv", lambda t, d, r: (["cells", "--points", str(_text(t / "p.csv", "")), "--out", str(t / "c.geojson")],
                                         "p.csv: empty CSV", [t / "c.geojson"])),
    ("cells-no-latlon-columns", lambda t, d, r: (["cells", "--points", str(_text(t / "p.csv", "x,y\n1,2\n")),
                                                  "--out", str(t / "c.geojson")], "missing lat / lon columns",
                                                 [t / "c.geojson"])),
    ("cells-non-numeric", lambda t, d, r: (["cells", "--points", str(_text(t / "p.csv", "lat,lon\nnorth,2\n")),
                                            "--out", str(t / "c.geojson")], "p.csv:2: latitude / longitude not numeric",
                                           [t / "c.geojson"])),
    ("cells-out-wrong-suffix", lambda t, d, r: (["cells", "--points", str(d / "train.csv"), "--out", str(t / "c.txt")],
                                                "c.txt: output must end in .geojson", [t / "c.txt"])),
    ("cells-out-is-folder", lambda t, d, r: (["cells", "--points", str(d / "train.csv"), "--out",
                                              str((t / "o.geojson").mkdir() or t / "o.geojson")], "is a folder", [])),
    ("cells-out-is-the-polygon-input", lambda t, d, r: (["cells", "--points", str(d / "train.csv"), "--polygons",
                                                         str(_polys(t / "a.geojson", SQUARE)), "--out", str(t / "a.geojson")],
                                                        "is one of the inputs", [])),
    ("cells-out-folder-missing", lambda t, d, r: (["cells", "--points", str(d / "train.csv"), "--out",
                                                   str(t / "nope" / "c.geojson")], "output folder does not exist",
                                                  [t / "nope"])),
    ("cells-min-above-max", lambda t, d, r: (["cells", "--points", str(d / "train.csv"), "--out", str(t / "c.geojson"),
                                              "--min-size", "50", "--max-size", "40"], "geocells.max_size",
                                             [t / "c.geojson"])),
    ("cells-bad-optics-round", lambda t, d, r: (["cells", "--points", str(d / "train.csv"), "--out", str(t / "c.geojson"),
                                                 "geocells.optics_rounds=[[1,0.5]]"], "geocells.optics_rounds[0]",
                                                [t / "c.geojson"])),
    ("cells-bad-kind", lambda t, d, r: (["cells", "--points", str(d / "train.csv"), "--out", str(t / "c.geojson"),
                                         "geocells.kind=hex"], "geocells.kind: 'hex' is not allowed", [t / "c.geojson"])),
    ("cells-unknown-key", lambda t, d, r: (["cells", "--points", str(d / "train.csv"), "--out", str(t / "c.geojson"),
                                            "geocells.sizee=3"], "unknown config key 'geocells.sizee'", [t / "c.geojson"])),
    ("cells-shapefile", lambda t, d, r: (["cells", "--points", str(d / "train.csv"), "--polygons",
                                          str(_text(t / "a.shp", "x")), "--out", str(t / "c.geojson")],
                                         "a.shp: shapefiles need a GIS reader", [t / "c.geojson"])),
    ("cells-polygons-not-json", lambda t, d, r: (["cells", "--points", str(d / "train.csv"), "--polygons",
                                                  str(_text(t / "a.geojson", "{nope")), "--out", str(t / "c.geojson")],
                                                 "a.geojson: not valid GeoJSON", [t / "c.geojson"])),
    ("cells-polygons-points", lambda t, d, r: (["cells", "--points", str(d / "train.csv"), "--polygons",
                                                str(_polys(t / "a.geojson", {"type": "Point", "coordinates": [0, 0]})),
                                                "--out", str(t / "c.geojson")], "expected (Multi)Polygon",
                                               [t / "c.geojson"])),
    ("cells-polygons-missing", lambda t, d, r: (["cells", "--points", str(d / "train.csv"), "--polygons",
                                                 str(t / "none.geojson"), "--out", str(t / "c.geojson")],
                                                "none.geojson: polygon file not found", [t / "c.geojson"])),
    # ------------------------------------------------------------------ pretrain / finetune
    ("pretrain-batch-size-0", lambda t, d, r: (["pretrain", "--profile", "smoke", "--data", str(d), "--out", str(t / "run"),
                                                "train.batch_size=0", *QUIET], "train.batch_size: 0", [t / "run"])),
    ("pretrain-lr-nan", lambda t, d, r: (["pretrain", "--profile", "smoke", "--data", str(d), "--out", str(t / "run"),
                                          "train.lr=nan", *QUIET], "train.lr: NaN is not allowed", [t / "run"])),
    ("pretrain-tau-0", lambda t, d, r: (["pretrain", "--profile", "smoke", "--data", str(d), "--out", str(t / "run"),
                                         "loss.tau_km=0"], "loss.tau_km: 0.0 is not allowed", [t / "run"])),
    ("pretrain-bad-final", lambda t, d, r: (["pretrain", "--profile", "smoke", "--data", str(d), "--out", str(t / "run"),
                                             "refine.final=best"], "refine.final: 'best' is not allowed", [t / "run"])),
    ("pretrain-three-views", lambda t, d, r: (["pretrain", "--profile", "smoke", "--data", str(d), "--out", str(t / "run"),
                                               "model.views=3"], "model.views: 3 is not allowed", [t / "run"])),
    ("pretrain-unknown-model", lambda t, d, r: (["pretrain", "--profile", "smoke", "--data", str(d), "--out",
                                                 str(t / "run"), "model.clip_model=NoSuchModel"],
                                                "model.clip_model: unknown open_clip model 'NoSuchModel'", [t / "run"])),
    ("pretrain-bad-layout", lambda t, d, r: (["pretrain", "--profile", "smoke", "--data", str(d), "--out", str(t / "run"),
                                              "data.layout=kitti"], "data.layout: 'kitti' is not allowed", [t / "run"])),
    ("pretrain-negative-aux-weight", lambda t, d, r: (["pretrain", "--profile", "smoke", "--data", str(d), "--out",
                                                       str(t / "run"), "aux.climate_weight=-2"], "aux.climate_weight",
                                                      [t / "run"])),
    ("pretrain-data-missing", lambda t, d, r: (["pretrain", "--profile", "smoke", "--data", str(t / "nodata"), "--out",
                                                str(t / "run"), *QUIET], "nodata: dataset folder not found", [t / "run"])),
    ("pretrain-image-missing", lambda t, d, r: (["pretrain", "--profile", "smoke", "--data",
                                                 str(_missing_image_world(d, t / "w")), "--out", str(t / "run"), *QUIET],
                                                "train.csv:9: image 'images/train/train000007.jpg' not found", [t / "run"])),
    ("pretrain-weights-missing", lambda t, d, r: (["pretrain", "--profile", "smoke", "--data", str(d), "--out",
                                                   str(t / "run"), f"model.pretrained={t / 'w.safetensors'}", *QUIET],
                                                  "w.safetensors", [t / "run"])),
    ("pretrain-out-is-file", lambda t, d, r: (["pretrain", "--profile", "smoke", "--data", str(d), "--out",
                                               str(_text(t / "run.txt", "x"))], "is a file", [])),
    ("pretrain-resume-empty", lambda t, d, r: (["pretrain", "--profile", "smoke", "--data", str(d), "--out",
                                                str(t / "run"), "--resume"], "--resume", [t / "run"])),
    ("finetune-init-missing", lambda t, d, r: (["finetune", "--profile", "smoke", "--data", str(d), "--out", str(t / "ft"),
                                                "--init", str(t / "none"), *QUIET], "none", [t / "ft"])),
    ("finetune-init-pt-file", lambda t, d, r: (["finetune", "--profile", "smoke", "--data", str(d), "--out", str(t / "ft"),
                                                "--init", str(_text(t / "w.pt", "x")), *QUIET],
                                               "w.pt: expected a run folder or a .safetensors", [t / "ft"])),
    ("finetune-init-not-clip", lambda t, d, r: (["finetune", "--profile", "smoke", "--data", str(d), "--out", str(t / "ft"),
                                                 "--init", str(_safetensors(t / "w.safetensors")), *QUIET],
                                                "holds no CLIP weights", [t / "ft"])),
    # ------------------------------------------------------------------ eval
    ("eval-ckpt-missing", lambda t, d, r: (["eval", "--ckpt", str(t / "none"), "--data", str(d)], "none", [])),
    ("eval-pretrain-checkpoint", lambda t, d, r: (["eval", "--ckpt", str(r / "pretrain"), "--data", str(d), "--out",
                                                   str(t / "m.json")], "not a geolocation checkpoint", [t / "m.json"])),
    ("eval-out-is-folder", lambda t, d, r: (["eval", "--ckpt", str(r), "--data", str(d), "--out", str(t)],
                                            "is a folder", [])),
    ("eval-data-without-test", lambda t, d, r: (["eval", "--ckpt", str(r), "--data", str((t / "e").mkdir() or t / "e"),
                                                 "--out", str(t / "m.json")], "no test.csv", [t / "m.json"])),
    # ------------------------------------------------------------------ locate
    ("locate-image-missing", lambda t, d, r: (["locate", "--ckpt", str(r), "--image", str(t / "no.jpg")],
                                              "no.jpg: image file not found", [])),
    ("locate-image-folder", lambda t, d, r: (["locate", "--ckpt", str(r), "--image", str(t)], "is a folder", [])),
    ("locate-text-as-jpg", lambda t, d, r: (["locate", "--ckpt", str(r), "--image", str(_text(t / "x.jpg", "hello"))],
                                            "x.jpg: not a readable image", [])),
    ("locate-png-bomb", lambda t, d, r: (["locate", "--ckpt", str(r), "--image", str(_png_bomb(t / "bomb.png"))],
                                         "bomb.png: image", [])),
    ("locate-truncated-jpg", lambda t, d, r: (["locate", "--ckpt", str(r), "--image", str(_truncated_jpg(d, t / "cut.jpg"))],
                                              "cut.jpg: not a readable image", [])),
    ("locate-top-0", lambda t, d, r: (["locate", "--ckpt", str(r), "--image", str(d / "images/test/test000000.jpg"),
                                       "--top", "0"], "argument --top: 0 must be >= 1", [])),
    ("locate-ckpt-without-checkpoint", lambda t, d, r: (["locate", "--ckpt", str((t / "empty").mkdir() or t / "empty"),
                                                         "--image", str(d / "images/test/test000000.jpg")], "empty", [])),
    # ------------------------------------------------------------------ convert-clip, bench, data
    ("convert-hf-missing", lambda t, d, r: (["convert-clip", "--hf", str(t / "none"), "--out", str(t / "o.safetensors")],
                                            "none: not a folder", [t / "o.safetensors", t / "o.json"])),
    ("convert-no-config", lambda t, d, r: (["convert-clip", "--hf", str((t / "hf").mkdir() or t / "hf"), "--out",
                                            str(t / "o.safetensors")], "hf: no config.json",
                                           [t / "o.safetensors", t / "o.json"])),
    ("convert-out-suffix", lambda t, d, r: (["convert-clip", "--hf", str((t / "hf").mkdir() or t / "hf"), "--out",
                                             str(t / "o.bin")], "o.bin: output must end in .safetensors", [t / "o.bin"])),
    ("bench-negative-points", lambda t, d, r: (["bench", "--cells-points", "-5"], "argument --cells-points", [])),
    ("data-existing-out", lambda t, d, r: (["data", "--out", str(_world_copy(d, t / "w")), "--profile", "smoke"],
                                           "already exists", [])),
]


def _safetensors(p: Path) -> Path:
    import torch

    from pretrainlab.core.checkpoint import save_tensors

    save_tensors(p, {"head.weight": torch.zeros(2, 2)})
    return p


@pytest.mark.parametrize("case", [c for _, c in CLI_CASES], ids=[i for i, _ in CLI_CASES])
def test_cli_bad_input(case: Case, tmp_path: Path, geo_data: Path, geo_run: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    argv, needle, gone = case(tmp_path, geo_data, geo_run)
    capsys.readouterr()
    try:
        rc = main(["geo", *argv])
    except SystemExit as e:  # argparse
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, err[-2000:]
    assert "Traceback" not in err
    last = [ln for ln in err.strip().splitlines() if ln.strip()][-1]
    assert "error:" in last and needle in last, last
    for p in gone:
        assert not p.exists(), f"{p} was left behind"


# ---------------------------------------------------------------------------------------------- demo

app = pytest.importorskip("pretrainlab.core.demo").load_app_module("geo")


DEMO_CASES: list[tuple[str, Callable[[Path, Path], tuple[Callable[[], object], str]]]] = [
    ("no-upload", lambda t, r: (lambda: app.predict(None, None, None, ckpt=r), "please upload")),
    ("text-file", lambda t, r: (lambda: app.predict(str(_text(t / "x.txt", "hi")), None, None, ckpt=r),
                                "x.txt: unsupported file type")),
    ("empty-file", lambda t, r: (lambda: app.predict(str(_text(t / "e.jpg", b"")), None, None, ckpt=r), "e.jpg: file is empty")),
    ("broken-jpg", lambda t, r: (lambda: app.predict(str(_text(t / "b.jpg", "not an image")), None, None, ckpt=r),
                                 "b.jpg: not a readable image")),
    ("png-bomb", lambda t, r: (lambda: app.predict(str(_png_bomb(t / "bomb.png")), None, None, ckpt=r), "bomb.png: image")),
    ("latitude-out-of-range", lambda t, r: (lambda: app.parse_truth(95, 0), "latitude 95.0 out of range")),
    ("longitude-text", lambda t, r: (lambda: app.parse_truth(10, "east"), "not numeric")),
    ("only-latitude", lambda t, r: (lambda: app.parse_truth(10, None), "true location")),
]


@pytest.mark.parametrize("case", [c for _, c in DEMO_CASES], ids=[i for i, _ in DEMO_CASES])
def test_demo_bad_input(case: Callable[[Path, Path], tuple[Callable[[], object], str]], tmp_path: Path,
                        geo_run: Path) -> None:
    fn, needle = case(tmp_path, geo_run)
    with pytest.raises(DataError) as e:
        fn()
    assert needle in str(e.value)
