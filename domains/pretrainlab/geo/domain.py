"""CLI registration of the geo domain: ``pretrainlab geo <verb>``.

Heavy imports stay inside the verb functions so ``pretrainlab --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pretrainlab.core.cli import (
    Domain,
    Verb,
    add_bench_args,
    add_config_args,
    add_data_args,
    default_run_dir,
    demo_verb,
    reproduce_verb,
    run_generate,
)

NAME = "geo"
RECIPES = Path(__file__).parent / "recipes"
DEFAULT_RECIPE = "pigeon"
DATA_VERSION = "1"


def load(config: str | None, profile: str | None, overrides: list[str] | dict):  # -> GeoConfig
    from pretrainlab.core.config import load_config
    from pretrainlab.geo.config import GeoConfig, validate

    return validate(load_config(GeoConfig, config or DEFAULT_RECIPE, recipes_dir=RECIPES, profile=profile,
                                overrides=overrides))


def synthetic_data(profile: str, seed: int = 0) -> Path:
    from pretrainlab.core.data import cached_synthetic
    from pretrainlab.geo import world

    return cached_synthetic(NAME, world.generate, profile, seed, version=DATA_VERSION)


# ----------------------------------------------------------------------------- verbs

def _data_args(p: argparse.ArgumentParser) -> None:
    add_data_args(p, "images, metadata CSV")
    p.add_argument("--shards", action="store_true", help="also write webdataset shards (shards/<split>-NNNNNN.tar)")


def _data(a: argparse.Namespace) -> int:
    from pretrainlab.geo.world import generate

    return run_generate(generate, a, shards=a.shards)


def _cells_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--points", type=Path, required=True,
                   help="dataset CSV (any supported layout: OSV-5M, MP-16, IM2GPS3k, generic lat/lon), YFCC info.txt, "
                        "or a dataset folder (its train split)")
    p.add_argument("--polygons", type=Path, default=None, help="admin-area polygons (GeoJSON)")
    p.add_argument("--out", type=Path, required=True, help="output GeoJSON (written atomically)")
    p.add_argument("--min-size", type=int, default=None, help="default: the recipe's geocells.min_size")
    p.add_argument("--max-size", type=int, default=None, help="default: the recipe's geocells.max_size")
    p.add_argument("--naive", action="store_true", help="the reference's naive rectangular cells (geocells.kind=naive)")
    p.add_argument("--profile", default="full", choices=["smoke", "tiny", "full"], help="recipe profile for the defaults")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. geocells.admin_level=admin1")


def _cells(a: argparse.Namespace) -> int:
    import dataclasses

    from pretrainlab.core.data import DataError
    from pretrainlab.geo.formats import read_points
    from pretrainlab.geo.semantic_geocells import (
        build_geocells,
        format_report,
        validate_config,
        write_geojson,
    )

    cfg = load(None, a.profile, a.overrides)
    changes: dict = {k: v for k, v in (("min_size", a.min_size), ("max_size", a.max_size)) if v is not None}
    if a.polygons:
        changes["polygons"] = str(a.polygons)
    if a.naive:
        changes["kind"] = "naive"
    gc = dataclasses.replace(cfg.geocells, **changes)
    validate_config(gc)
    out = Path(a.out)
    if out.suffix.lower() not in (".geojson", ".json"):
        raise DataError(out, "output must end in .geojson (or .json)")
    if out.is_dir():
        raise DataError(out, "is a folder; give the GeoJSON file to write")
    if out.exists() and out.resolve() in {Path(a.points).resolve(), *( [Path(a.polygons).resolve()] if a.polygons else [])}:
        raise DataError(out, "is one of the inputs; choose another output file")
    if not out.parent.is_dir():
        raise DataError(out.parent, "output folder does not exist")
    pts = read_points(a.points, cfg.data_layout)
    cells, _ = build_geocells(pts, gc, str(a.points), progress=False)
    write_geojson(cells, out, {"points": str(a.points), **dataclasses.asdict(gc)})
    print(format_report(cells.report))
    print(f"{len(cells)} geocells -> {out}")
    return 0


def _data_root(a: argparse.Namespace, cfg) -> Path:
    return a.data or synthetic_data(cfg.data_profile)


def _pretrain(a: argparse.Namespace) -> int:
    from pretrainlab.geo.pipeline import run_recipe

    cfg = load(a.config, a.profile, a.overrides)
    run = a.out or default_run_dir(NAME, Path(str(a.config or DEFAULT_RECIPE)).stem)
    run_recipe(cfg, _data_root(a, cfg), run, resume=a.resume)
    print(run)
    return 0


def _finetune_args(p: argparse.ArgumentParser) -> None:
    add_config_args(p, DEFAULT_RECIPE)
    p.add_argument("--init", type=Path, default=None,
                   help="CLIP weights: a pretrain run / checkpoint (clip.* keys) or a local open_clip .safetensors")


def _finetune(a: argparse.Namespace) -> int:
    from pretrainlab.geo.pipeline import run_recipe

    cfg = load(a.config, a.profile, a.overrides)
    run = a.out or default_run_dir(NAME, "finetune")
    run_recipe(cfg, _data_root(a, cfg), run, init=a.init, resume=a.resume, skip_pretrain=True)
    print(run)
    return 0


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--data", type=Path, default=None, help="dataset folder (default: the synthetic world of the run's profile)")
    p.add_argument("--no-refine", action="store_true", help="score the geocell guess only")
    p.add_argument("--out", type=Path, default=None, help="metrics.json path (default: next to the checkpoint)")


def _eval(a: argparse.Namespace) -> int:
    import json

    from pretrainlab.core.data import DataError
    from pretrainlab.core.io import atomic_write_json
    from pretrainlab.geo.pipeline import GeoData, _split_for, evaluate, load_locator
    from pretrainlab.geo.semantic_geocells import Geocells

    loc = load_locator(a.ckpt)
    cfg = loc.cfg
    out = a.out or loc.folder / "metrics.json"
    if Path(out).is_dir():
        raise DataError(out, "is a folder; give the metrics .json file to write")
    root = a.data or synthetic_data(cfg.data_profile)
    test = _split_for(cfg, Path(root), "test")
    cells = loc.cells or Geocells(loc.task.centroids.numpy(), [], [], [], None)  # type: ignore[arg-type]
    data = GeoData(test, test, cells, None)  # type: ignore[arg-type]
    if not a.no_refine and loc.index is None and cfg.refine.enabled:
        print("note: the run has no refinement index; scoring the geocell guess", file=sys.stderr)
    metrics = evaluate(loc.task, data, cfg, None if a.no_refine else loc.index)
    atomic_write_json(Path(out), metrics)
    print(json.dumps(metrics, indent=2))
    print(f"metrics -> {out}", file=sys.stderr)
    return 0


def _positive_int(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} must be >= 1")
    return n


def _locate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--image", type=Path, required=True)
    p.add_argument("--top", type=_positive_int, default=5, help="geocells to list (>= 1)")


def _locate(a: argparse.Namespace) -> int:
    from pretrainlab.geo.pipeline import load_locator, locate, read_image_file

    loc = load_locator(a.ckpt)
    res = locate(loc, read_image_file(a.image, loc.cfg.model.image_size, loc.cfg.model.views), a.top)
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
    p.add_argument("--out", type=Path, required=True, help="open_clip weights to write (.safetensors; the config goes beside it as .json)")


def _convert(a: argparse.Namespace) -> int:
    from pretrainlab.geo.hf_clip import convert_hf_clip

    w, c = convert_hf_clip(a.hf, a.out)
    print(f"weights -> {w}\nconfig  -> {c}\nuse: model.clip_model={c} model.pretrained={w}")
    return 0


def _bench_args(p: argparse.ArgumentParser) -> None:
    add_bench_args(p)
    p.add_argument("--cells-points", type=int, nargs="+", default=[100_000, 1_000_000],
                   help="point counts for the geocell construction timing (0 = skip)")
    p.add_argument("--index-images", type=int, default=1_000_000, help="refinement index size for the inference timing")
    p.add_argument("--stream-images", type=int, default=0,
                   help="also generate N images and measure peak-RSS growth while streaming them (e.g. 100000)")
    p.add_argument("--model", default=None, help="open_clip config (default: ViT-B-16 on CUDA, test-vit-small on CPU)")
    p.add_argument("--image-size", type=int, default=None, help="default: 224 on CUDA, 64 on CPU")


def _bench(a: argparse.Namespace) -> int:
    from pretrainlab.geo.bench import run_bench

    run_bench(a)
    return 0


def get_domain() -> Domain:
    return Domain(
        name=NAME, title="Image geolocation: PIGEON (semantic geocells, haversine smoothing, retrieval refinement)",
        paper="Haas, Skreta, Alberti, Finn 2024, PIGEON: Predicting Image Geolocations (CVPR)", extra="geo",
        verbs=[
            Verb("data", "write the synthetic world (CSV + images, optional webdataset shards)", _data_args, _data,
                 "pretrainlab geo data --out data/geo --profile tiny --shards"),
            Verb("cells", "build semantic geocells from a points CSV (+ optional admin polygons) -> GeoJSON",
                 _cells_args, _cells, "pretrainlab geo cells --points data/geo/train.csv --out cells.geojson"),
            Verb("pretrain", "the whole recipe: contrastive pre-training (if enabled) + geocell training + refinement index + eval",
                 lambda p: add_config_args(p, DEFAULT_RECIPE), _pretrain,
                 "pretrainlab geo pretrain --profile smoke train.max_steps=10"),
            Verb("finetune", "geocell training from given CLIP weights (no pre-training stage)", _finetune_args, _finetune,
                 "pretrainlab geo finetune --init runs/geo/<run>/pretrain --profile tiny"),
            Verb("eval", "distance thresholds, median km, GeoScore, country accuracy of a checkpoint", _eval_args, _eval,
                 "pretrainlab geo eval --ckpt runs/geo/<run>"),
            Verb("locate", "top-5 guesses (lat, lon, cell, probability) for one image", _locate_args, _locate,
                 "pretrainlab geo locate --ckpt runs/geo/<run> --image photo.jpg"),
            reproduce_verb(NAME, "the ablation table (CE -> + smoothing -> + contrastive -> + aux -> + refinement), 3 seeds",
                           "pretrainlab.geo.reproduce:reproduce"),
            Verb("convert-clip", "convert a Hugging Face CLIPModel folder (StreetCLIP, OpenAI) to open_clip weights + config",
                 _convert_args, _convert, "pretrainlab geo convert-clip --hf StreetCLIP/ --out streetclip.safetensors"),
            Verb("bench", "geocell construction time, training samples/s + peak memory, inference images/s with refinement",
                 _bench_args, _bench, "pretrainlab geo bench --device cuda --precision bf16 --steps 200"),
            demo_verb(NAME),
        ],
    )


if __name__ == "__main__":  # pragma: no cover
    from pretrainlab.core.cli import main

    sys.exit(main([NAME, *sys.argv[1:]]))
