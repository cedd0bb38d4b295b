"""The command line of the geo domain: ``pretrainlab geo <verb>`` (the CLI only; nothing imports it).

Standard verbs from ``api.SPEC`` (pretrain, finetune, reproduce, report, demo); replaced here:
``data`` (``--shards``), ``eval`` (``--no-refine``), ``bench`` (geocell / index / streaming sizes).
Own verbs: ``cells``, ``locate``, ``convert-clip``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pretrainlab.core.domain import Verb, add_bench_args, add_data_args, resolve, run_generate, write_metrics
from pretrainlab.geo.api import SPEC


def _positive_int(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} must be >= 1")
    return n


def _count(v: str) -> int:
    n = _positive_int(v) if v != "0" else 0
    return n


def _data_args(p: argparse.ArgumentParser) -> None:
    add_data_args(p, SPEC.data_help)
    p.add_argument("--shards", action="store_true", help="also write webdataset shards (shards/<split>-NNNNNN.tar)")


def _data(a: argparse.Namespace) -> int:
    return run_generate(resolve(SPEC.generator), a, shards=a.shards)


def _cells_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--points", type=Path, required=True,
                   help="dataset CSV (OSV-5M, MP-16, IM2GPS3k, generic lat/lon), a YFCC info.txt, or a dataset folder")
    p.add_argument("--polygons", type=Path, default=None, help="admin-area polygons (GeoJSON)")
    p.add_argument("--out", type=Path, required=True, help="output GeoJSON (written atomically)")
    p.add_argument("--min-size", type=_positive_int, default=None, help="default: the recipe's geocells.min_size")
    p.add_argument("--max-size", type=_positive_int, default=None, help="default: the recipe's geocells.max_size")
    p.add_argument("--naive", action="store_true", help="the reference's naive rectangular cells (geocells.kind=naive)")
    p.add_argument("--profile", default="full", choices=["smoke", "tiny", "full"], help="recipe profile for the defaults")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. geocells.admin_level=admin1")


def _cells(a: argparse.Namespace) -> int:
    from pretrainlab.geo import api

    cells = api.cells(a.points, a.out, a.profile, a.overrides, a.min_size, a.max_size, a.polygons, a.naive)
    print(api.format_cells_report(cells.report))
    print(f"{len(cells)} geocells -> {a.out}")
    return 0


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True, help="a geo run or checkpoint folder")
    p.add_argument("--data", type=Path, default=None, help="dataset folder (default: the synthetic world of the run's profile)")
    p.add_argument("--no-refine", action="store_true", help="score the geocell guess only")
    p.add_argument("--out", type=Path, default=None, help="metrics JSON (default: metrics.json beside the checkpoint)")


def _eval(a: argparse.Namespace) -> int:
    import json

    from pretrainlab.core.checkpoint import find_checkpoint
    from pretrainlab.core.data import DataError
    from pretrainlab.geo import api

    out = a.out or find_checkpoint(a.ckpt) / "metrics.json"
    if Path(out).is_dir():
        raise DataError(out, "is a folder; give the metrics .json file to write")
    metrics = api.evaluate(a.ckpt, a.data, refine=not a.no_refine)
    write_metrics(Path(out), metrics)
    print(json.dumps(metrics, indent=2))
    print(f"metrics -> {out}", file=sys.stderr)
    return 0


def _locate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True, help="a geo run or checkpoint folder")
    p.add_argument("--image", type=Path, required=True, help="a .jpg / .png / .webp photo")
    p.add_argument("--top", type=_positive_int, default=5, help="geocells to list (>= 1)")


def _locate(a: argparse.Namespace) -> int:
    from pretrainlab.geo import api

    res = api.locate(a.ckpt, a.image, a.top)
    print(f"{'rank':>4} {'lat':>9} {'lon':>10} {'cell':>5} {'prob':>6}  name")
    for i, t in enumerate(res["top"], 1):
        print(f"{i:>4} {t['lat']:9.4f} {t['lon']:10.4f} {t['cell']:5d} {t['prob']:6.3f}  {t['name']} ({t['country']})")
    g = res["guess"]
    how = "geocell centroid" if not g["refined"] else (
        "refinement cancelled (> refine.cancel_km): the top cell's retrieved location" if g["cancelled"]
        else "refined by retrieval")
    print(f"guess: {g['lat']:.4f}, {g['lon']:.4f} (cell {g['cell']} {g['name']}; {how})")
    return 0


def _convert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hf", type=Path, required=True, help="Hugging Face CLIPModel folder (config.json + model.safetensors)")
    p.add_argument("--out", type=Path, required=True,
                   help="open_clip weights to write (.safetensors; the config goes beside it as .json)")


def _convert(a: argparse.Namespace) -> int:
    from pretrainlab.geo import api

    w, c = api.convert_clip(a.hf, a.out)
    print(f"weights -> {w}\nconfig  -> {c}\nuse: model.clip_model={c} model.pretrained={w}")
    return 0


def _bench_args(p: argparse.ArgumentParser) -> None:
    add_bench_args(p)
    p.add_argument("--cells-points", type=_count, nargs="+", default=[100_000, 1_000_000],
                   help="point counts for the geocell construction timing (0 = skip)")
    p.add_argument("--index-images", type=_count, default=1_000_000, help="refinement index size (0 = skip)")
    p.add_argument("--stream-images", type=_count, default=0,
                   help="also generate N images and measure peak-RSS growth while streaming them (e.g. 100000)")
    p.add_argument("--model", default=None, help="open_clip config (default: ViT-B-16 on CUDA, test-vit-small on CPU)")
    p.add_argument("--image-size", type=_positive_int, default=None, help="default: 224 on CUDA, 64 on CPU")


def _bench(a: argparse.Namespace) -> int:
    from pretrainlab.core.bench import report

    run_bench = resolve("pretrainlab.geo.bench:run_bench")
    res = run_bench(a.device, a.steps, a.warmup, a.batch_size, a.precision, a.compile, a.model, a.image_size,
                    a.index_images, a.cells_points, a.stream_images)
    report(res, a.out)
    return 0


def get_domain() -> Any:
    return SPEC.cli([
        Verb("data", f"write {SPEC.data_help}", _data_args, _data,
             "pretrainlab geo data --out data/geo --profile tiny --shards"),
        Verb("eval", "distance thresholds, median km, GeoScore, country / geocell accuracy of a checkpoint",
             _eval_args, _eval, "pretrainlab geo eval --ckpt runs/geo/<run> --no-refine"),
        Verb("bench", "training samples/s + memory, inference with refinement, geocell construction, streaming RSS",
             _bench_args, _bench, "pretrainlab geo bench --device cuda --precision bf16 --steps 200"),
        Verb("cells", "semantic (or naive) geocells from a dataset's coordinates -> GeoJSON + size distribution",
             _cells_args, _cells, "pretrainlab geo cells --points data/geo/train.csv --out cells.geojson"),
        Verb("locate", "top-k geocells (lat, lon, cell, probability) and the refined guess for one image",
             _locate_args, _locate, "pretrainlab geo locate --ckpt runs/geo/<run> --image photo.jpg"),
        Verb("convert-clip", "convert a Hugging Face CLIPModel folder (StreetCLIP, OpenAI) to open_clip weights + config",
             _convert_args, _convert, "pretrainlab geo convert-clip --hf StreetCLIP/ --out streetclip.safetensors"),
    ])


if __name__ == "__main__":  # pragma: no cover
    from pretrainlab.core.cli import main

    sys.exit(main([SPEC.name, *sys.argv[1:]]))
