"""The PIGEON pipeline on top of the core trainer: data -> geocells -> (contrastive pre-training)
-> geocell training -> refinement index -> evaluation, plus single-image location."""

from __future__ import annotations

import dataclasses
import functools
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pretrainlab.core.data import DataError
from pretrainlab.geo.config import GeoConfig
from pretrainlab.geo.formats import GeoRecords, load_images, read_split
from pretrainlab.geo.semantic_geocells import Geocells, build_geocells, write_geojson
from pretrainlab.geo.world import KOPPEN, REGRESSIONS

CELLS_FILE = "geocells.geojson"
INDEX_FILE = "refinement.safetensors"


# ----------------------------------------------------------------------------- data

def _num(v: str | None) -> float:
    try:
        return float(v) if v not in (None, "") else float("nan")
    except ValueError:
        return float("nan")


@dataclass
class Split:
    """One decoded split: records, images ``(N,3,S,S)`` uint8 and per-row targets."""

    records: GeoRecords
    images: torch.Tensor
    climate: torch.Tensor  # (N,) long, -1 = missing
    month: torch.Tensor  # (N,) long, -1 = missing
    regression: torch.Tensor  # (N, 6) float, NaN = missing

    @property
    def latlon(self) -> np.ndarray:
        return self.records.latlon

    def countries(self) -> list[str]:
        from pretrainlab.geo.places import reverse_country

        given = [m.get("country", "") for m in self.records.meta]
        if all(given):
            return given
        rev = reverse_country(self.latlon)
        return [g or r for g, r in zip(given, rev)]


def make_split(rec: GeoRecords, size: int, desc: str) -> Split:
    kidx = {k: i for i, k in enumerate(KOPPEN)}
    clim = torch.tensor([kidx.get(m.get("climate", ""), -1) for m in rec.meta], dtype=torch.long)
    mon = torch.tensor([int(x) - 1 if np.isfinite(x := _num(m.get("month"))) and 1 <= x <= 12 else -1
                        for m in rec.meta], dtype=torch.long)
    reg = torch.tensor([[_num(m.get(k)) for k in REGRESSIONS] for m in rec.meta], dtype=torch.float32)
    return Split(rec, load_images(rec, size, desc), clim, mon, reg)


@functools.lru_cache(maxsize=4)
def _load_split_cached(root: str, split: str, size: int, fmt: str) -> Split:
    return make_split(read_split(Path(root), split, fmt), size, f"decode {split}")


@dataclass
class GeoData:
    train: Split
    test: Split
    cells: Geocells
    labels: np.ndarray  # (N_train,) geocell of every training image


_CELL_CACHE: dict[tuple[Any, ...], tuple[Geocells, np.ndarray]] = {}


def load_data(cfg: GeoConfig, root: Path) -> GeoData:
    """Read + decode both splits (cached in-process) and build the semantic geocells of the train split."""
    root = Path(root)
    tr = _load_split_cached(str(root), "train", cfg.model.image_size, cfg.data_format)
    te = _load_split_cached(str(root), "test", cfg.model.image_size, cfg.data_format)
    key = (str(root), json.dumps(dataclasses.asdict(cfg.geocells), sort_keys=True))
    if key not in _CELL_CACHE:
        _CELL_CACHE[key] = build_geocells(tr.latlon, cfg.geocells, str(tr.records.source))
    cells, labels = _CELL_CACHE[key]
    return GeoData(tr, te, cells, labels)


class GeocellDataset(Dataset):
    """Items ``{"image", "latlon", "cell", "climate", "month", "regression"}`` of one split."""

    def __init__(self, split: Split, labels: np.ndarray) -> None:
        self.s = split
        self.latlon = torch.from_numpy(split.latlon.astype(np.float32))
        self.cell = torch.from_numpy(np.asarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.cell)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s = self.s
        return {"image": s.images[i], "latlon": self.latlon[i], "cell": self.cell[i], "climate": s.climate[i],
                "month": s.month[i], "regression": s.regression[i]}


class CaptionDataset(Dataset):
    """Items ``{"image", "tokens"}``: a fresh synthetic caption per load (PIGEON Sec. 3.2)."""

    def __init__(self, split: Split, tokenizer: Any, p_optional: float) -> None:
        self.s, self.tok, self.p = split, tokenizer, p_optional
        from pretrainlab.geo.places import country_name

        ccs = split.countries()  # given, or the nearest GeoNames place's country
        self.meta = [dict(m, country=cc, country_name=m.get("country_name") or country_name(cc))
                     for m, cc in zip(split.records.meta, ccs)]

    def __len__(self) -> int:
        return len(self.meta)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        from pretrainlab.geo.synthetic_captions import build_caption

        rng = random.Random(random.getrandbits(64))
        cap = build_caption(self.meta[i], rng, self.p)
        return {"image": self.s.images[i], "tokens": self.tok([cap])[0]}


# ----------------------------------------------------------------------------- stages

def contrastive_pretrain(cfg: GeoConfig, data: GeoData, run_dir: Path, resume: bool = False) -> dict[str, torch.Tensor]:
    """Stage 1 (optional): CLIP loss on (image, synthetic caption) pairs; returns the open_clip weights."""
    from pretrainlab.core.train import Trainer, seed_everything
    from pretrainlab.geo.contrastive_pretraining import ContrastivePretrainTask, clip_state

    seed_everything(cfg.contrastive.train.seed)
    task = ContrastivePretrainTask(cfg)
    ds = CaptionDataset(data.train, task.tokenizer, cfg.contrastive.p_optional)
    Trainer(cfg.contrastive.train, run_dir, full_config=cfg).fit(task, ds, resume=resume)
    return {k: v.detach().cpu() for k, v in clip_state(task).items()}


def build_task(cfg: GeoConfig, data: GeoData | None = None, clip_init: dict[str, torch.Tensor] | None = None):  # -> GeolocationTask
    from pretrainlab.geo.geolocation import GeolocationTask

    task = GeolocationTask(cfg)
    if clip_init is not None:
        task.clip.load_state_dict(clip_init, strict=True)
    if data is not None:
        task.centroids.copy_(torch.from_numpy(data.cells.centroids.astype(np.float32)))
        reg = data.train.regression
        mean = torch.nanmean(reg, dim=0)
        std = torch.sqrt(torch.nanmean((reg - mean) ** 2, dim=0))
        task.reg_mean.copy_(torch.nan_to_num(mean, nan=0.0))
        task.reg_std.copy_(torch.where(torch.isfinite(std) & (std > 0), std, torch.ones_like(std)))
    return task


def train_geocells(cfg: GeoConfig, data: GeoData, run_dir: Path, clip_init: dict[str, torch.Tensor] | None = None,
                   resume: bool = False):  # -> GeolocationTask
    """Stage 2: geocell head (+ auxiliary heads) with the freezing scheme; writes the cells GeoJSON."""
    from pretrainlab.core.train import Trainer, seed_everything

    run_dir = Path(run_dir)
    cfg = dataclasses.replace(cfg, n_cells=len(data.cells))
    seed_everything(cfg.train.seed)
    task = build_task(cfg, data, clip_init)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_geojson(data.cells, run_dir / CELLS_FILE, {"min_size": cfg.geocells.min_size, "max_size": cfg.geocells.max_size})
    Trainer(cfg.train, run_dir, full_config=cfg).fit(task, GeocellDataset(data.train, data.labels), resume=resume)
    return task


@torch.no_grad()
def embed_split(task: Any, images: torch.Tensor, batch: int = 256) -> dict[str, torch.Tensor]:
    """``(N,3,S,S)`` -> ``{"embedding": (N,D), "probs": (N,K)}`` on the task's device (inference mode)."""
    from pretrainlab.core.train import autocast_dtype

    dev = task.centroids.device
    task.eval()
    embs, probs = [], []
    dtype = autocast_dtype(task.cfg.train.precision, dev)
    for i in range(0, len(images), batch):
        x = images[i:i + batch].to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            out = task.predict(x)
        embs.append(out["embedding"].float())
        probs.append(torch.softmax(out["geocell"].float(), dim=-1))
    task.train()
    return {"embedding": torch.cat(embs), "probs": torch.cat(probs)}


def build_refinement(task: Any, data: GeoData, cfg: GeoConfig, run_dir: Path | None = None):  # -> RefinementIndex
    from pretrainlab.geo.retrieval_refinement import build_index

    emb = embed_split(task, data.train.images, cfg.eval_batch_size)["embedding"]
    index = build_index(emb, data.train.latlon, data.labels, cfg.refine)
    if run_dir is not None:
        index.save(Path(run_dir) / INDEX_FILE)
    return index


def evaluate(task: Any, data: GeoData, cfg: GeoConfig, index: Any = None) -> dict[str, float]:
    """Metrics of the geocell guess (top cell's centroid), or the refined guess when ``index`` is given."""
    from tqdm.auto import tqdm

    from pretrainlab.geo.metrics import geo_metrics
    from pretrainlab.geo.places import reverse_country
    from pretrainlab.geo.retrieval_refinement import refine

    out = embed_split(task, data.test.images, cfg.eval_batch_size)
    if index is not None:
        idx = index.to(task.centroids.device)
        parts = []
        for i in tqdm(range(0, len(out["probs"]), cfg.eval_batch_size), desc="refine", leave=False):
            sl = slice(i, i + cfg.eval_batch_size)
            parts.append(refine(out["embedding"][sl], out["probs"][sl], task.centroids, idx, cfg.refine)["latlon"])
        pred = torch.cat(parts).cpu().numpy()
    else:
        pred = task.centroids[out["probs"].argmax(1)].cpu().numpy()
    m = geo_metrics(pred, data.test.latlon, pred_country=reverse_country(pred), true_country=data.test.countries())
    top1 = (out["probs"].argmax(1).cpu().numpy() == _test_cells(data)).mean()
    m["geocell_acc"] = float(100 * top1)
    return m


def _test_cells(data: GeoData) -> np.ndarray:
    from pretrainlab.geo.semantic_geocells import nearest_cell

    return nearest_cell(data.test.latlon, data.cells.centroids)


def run_recipe(cfg: GeoConfig, data_root: Path, run_dir: Path, init: Path | None = None, resume: bool = False,
               skip_pretrain: bool = False) -> dict[str, Any]:
    """Everything a recipe row does; writes ``metrics.json`` into ``run_dir`` and returns the metrics."""
    from pretrainlab.core.io import atomic_write_json

    run_dir = Path(run_dir)
    data = load_data(cfg, data_root)
    clip_init = load_clip_init(init) if init else None
    if clip_init is None and cfg.contrastive.enabled and not skip_pretrain:
        clip_init = contrastive_pretrain(cfg, data, run_dir / "pretrain", resume=resume)
    task = train_geocells(cfg, data, run_dir, clip_init, resume=resume)
    index = build_refinement(task, data, cfg, run_dir) if cfg.refine.enabled else None
    metrics = evaluate(task, data, cfg, index)
    atomic_write_json(run_dir / "metrics.json", metrics)
    print("eval: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()), file=sys.stderr)
    return metrics


# ----------------------------------------------------------------------------- checkpoints

def load_clip_init(path: Path) -> dict[str, torch.Tensor]:
    """open_clip weights from a pretrain / geolocation checkpoint (``clip.*`` keys) or a plain file."""
    from pretrainlab.core.checkpoint import CheckpointError, find_checkpoint, load_tensors

    p = Path(path)
    f = p if p.suffix == ".safetensors" else find_checkpoint(p) / "model.safetensors"
    t, _ = load_tensors(f)
    sub = {k[len("clip."):]: v for k, v in t.items() if k.startswith("clip.")}
    if not sub and not any(k.startswith("visual.") for k in t):
        raise CheckpointError(f"{f}: holds no CLIP weights (no clip.* / visual.* keys)")
    return sub or t


@dataclass
class Locator:
    """A trained model ready to locate images: task, cells (with shapes), refinement index."""

    task: Any
    cfg: GeoConfig
    cells: Geocells | None
    index: Any
    folder: Path


def load_locator(ckpt: Path, device: str = "cpu") -> Locator:
    from pretrainlab.core.checkpoint import CheckpointError, find_checkpoint, load_weights, read_meta
    from pretrainlab.core.config import from_dict
    from pretrainlab.geo.retrieval_refinement import RefinementIndex
    from pretrainlab.geo.semantic_geocells import read_geojson

    folder = find_checkpoint(Path(ckpt))
    cfg = from_dict(GeoConfig, read_meta(folder)["config"])
    if cfg.n_cells <= 0:
        raise CheckpointError(f"{folder}: not a geolocation checkpoint (no geocells; a pretrain checkpoint? "
                              f"use it with 'finetune --init')")
    task = build_task(cfg)
    load_weights(task, folder / "model.safetensors")
    task.to(device).eval()
    run = folder.parent.parent
    cells = read_geojson(run / CELLS_FILE) if (run / CELLS_FILE).exists() else None
    index = RefinementIndex.load(run / INDEX_FILE).to(device) if (cfg.refine.enabled and (run / INDEX_FILE).exists()) else None
    return Locator(task, cfg, cells, index, folder)


@torch.no_grad()
def locate(loc: Locator, image: torch.Tensor, k: int = 5) -> dict[str, Any]:
    """One image ``(3,S,S)`` uint8 -> top-``k`` cells (lat, lon, cell, probability) + the final guess."""
    from pretrainlab.geo.retrieval_refinement import refine

    dev = loc.task.centroids.device
    out = loc.task.predict(image[None].to(dev))
    probs = torch.softmax(out["geocell"].float(), dim=-1)[0]
    p, c = probs.topk(min(k, probs.numel()))
    cents = loc.task.centroids[c].cpu().numpy()
    top = [{"lat": float(la), "lon": float(lo), "cell": int(ci),
            "name": (loc.cells.names[int(ci)] if loc.cells is not None else ""),
            "country": (loc.cells.countries[int(ci)] if loc.cells is not None else ""), "prob": float(pi)}
           for (la, lo), ci, pi in zip(cents, c.tolist(), p.tolist())]
    guess = {"lat": top[0]["lat"], "lon": top[0]["lon"], "cell": top[0]["cell"], "refined": False}
    if loc.index is not None:
        r = refine(out["embedding"], probs[None], loc.task.centroids, loc.index, loc.cfg.refine)
        la, lo = r["latlon"][0].tolist()
        guess = {"lat": la, "lon": lo, "cell": int(r["cell"][0]), "refined": not bool(r["cancelled"][0])}
    return {"top": top, "guess": guess}


def read_image_file(path: Path, size: int) -> torch.Tensor:
    from pretrainlab.geo.formats import load_image

    if not Path(path).exists():
        raise DataError(path, "image file not found")
    return load_image(Path(path), size)
