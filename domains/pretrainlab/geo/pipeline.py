"""The PIGEON pipeline on top of the core trainer: data -> geocells -> (contrastive pre-training)
-> geocell training -> refinement index -> evaluation, plus single-image location.

Images are never held in memory as a split: datasets decode one item per ``__getitem__`` (in
DataLoader workers when ``train.num_workers > 0``), embedding and evaluation stream through a
DataLoader, and the refinement index's embeddings go to a memory-mapped file.
"""

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
from torch.utils.data import DataLoader, Dataset

from pretrainlab.geo.config import GeoConfig, validate
from pretrainlab.geo.formats import KOPPEN, REGRESSIONS, GeoRecords, decode_image, read_split
from pretrainlab.geo.semantic_geocells import Geocells, build_geocells, write_geojson

CELLS_FILE = "geocells.geojson"
INDEX_DIR = "refinement"


# ----------------------------------------------------------------------------- data

@dataclass
class Targets:
    """Auxiliary targets per row: ``climate (N,)`` / ``month (N,)`` long (-1 = missing),
    ``regression (N, 6)`` float (NaN = missing)."""

    climate: torch.Tensor
    month: torch.Tensor
    regression: torch.Tensor


def make_targets(rec: GeoRecords) -> Targets:
    kidx = {k: i for i, k in enumerate(KOPPEN)}
    text = rec.meta.text.get("climate")
    if text is not None:
        codes, vocab = text
        table = np.array([kidx.get(v, -1) for v in vocab], dtype=np.int64)
        clim = table[codes]
    else:
        clim = np.full(len(rec), -1, dtype=np.int64)
    m = rec.meta.numeric("month")
    ok = np.isfinite(m) & (m >= 1) & (m <= 12) & (np.mod(m, 1) == 0)
    month = np.where(ok, np.nan_to_num(m) - 1, -1).astype(np.int64)
    reg = np.stack([rec.meta.numeric(k) for k in REGRESSIONS], axis=1).astype(np.float32)
    return Targets(torch.from_numpy(clim), torch.from_numpy(month), torch.from_numpy(reg))


@dataclass
class Split:
    """One split: the records index (images stay on disk) and the auxiliary targets."""

    records: GeoRecords
    targets: Targets

    @property
    def latlon(self) -> np.ndarray:
        return self.records.latlon

    def __len__(self) -> int:
        return len(self.records)

    @functools.cached_property
    def country_codes(self) -> list[str]:
        """ISO-2 country per row: the ``country`` column where given, else the nearest GeoNames place."""
        from pretrainlab.geo.places import reverse_country

        given = self.records.meta.column("country") if "country" in self.records.meta.text else [""] * len(self)
        missing = [i for i, g in enumerate(given) if not g]
        if missing:
            rev = reverse_country(self.latlon[missing])
            for i, r in zip(missing, rev):
                given[i] = r
        return given


@functools.lru_cache(maxsize=8)
def load_split(root: str, split: str, fmt: str = "auto", layout: str = "auto", views: int = 1) -> Split:
    rec = read_split(Path(root), split, fmt, layout, views)
    for n in rec.notes:
        print(f"note: {n}", file=sys.stderr)
    return Split(rec, make_targets(rec))


def _split_for(cfg: GeoConfig, root: Path, split: str) -> Split:
    return load_split(str(root), split, cfg.data.format, cfg.data.layout, cfg.model.views)


@dataclass
class GeoData:
    train: Split
    test: Split
    cells: Geocells
    labels: np.ndarray  # (N_train,) geocell of every training image


_CELL_CACHE: dict[tuple[Any, ...], tuple[Geocells, np.ndarray]] = {}


def load_data(cfg: GeoConfig, root: Path) -> GeoData:
    """Index both splits (cached in-process) and build the geocells of the train split."""
    validate(cfg)
    root = Path(root)
    tr = _split_for(cfg, root, "train")
    te = _split_for(cfg, root, "test")
    key = (str(root), cfg.data.format, cfg.data.layout, json.dumps(dataclasses.asdict(cfg.geocells), sort_keys=True))
    if key not in _CELL_CACHE:
        _CELL_CACHE[key] = build_geocells(tr.latlon, cfg.geocells, str(tr.records.source))
    cells, labels = _CELL_CACHE[key]
    return GeoData(tr, te, cells, labels)


def _image(rec: GeoRecords, i: int, size: int) -> torch.Tensor:
    """Row ``i``'s image ``(3, S, S)`` uint8, or its panorama ``(V, 3, S, S)``."""
    ims = [decode_image(v.source(i), size, v.names[i].decode()) for v in rec.views]
    return ims[0] if len(ims) == 1 else torch.stack(ims)


class ImageDataset(Dataset):
    """Items ``{"image", "index"}`` of a records index, decoded lazily."""

    def __init__(self, rec: GeoRecords, size: int) -> None:
        self.rec, self.size = rec, size

    def __len__(self) -> int:
        return len(self.rec)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": _image(self.rec, i, self.size), "index": torch.tensor(i)}


class GeocellDataset(Dataset):
    """Items ``{"image", "latlon", "cell", "climate", "month", "regression"}`` of one split."""

    def __init__(self, split: Split, labels: np.ndarray, size: int) -> None:
        self.s, self.size = split, size
        self.latlon = torch.from_numpy(split.latlon.astype(np.float32))
        self.cell = torch.from_numpy(np.asarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.cell)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        t = self.s.targets
        return {"image": _image(self.s.records, i, self.size), "latlon": self.latlon[i], "cell": self.cell[i],
                "climate": t.climate[i], "month": t.month[i], "regression": t.regression[i]}


class CaptionDataset(Dataset):
    """Items ``{"image", "tokens"}`` with a fresh synthetic caption per load (PIGEON Sec. 3.2).
    A panorama row gives one sample per view (``PretrainDataset``: view ``j`` faces heading + 90 j)."""

    def __init__(self, split: Split, tokenizer: Any, size: int, style: str = "streetview") -> None:
        from pretrainlab.geo.places import country_name
        from pretrainlab.geo.synthetic import country_cues

        self.s, self.tok, self.size, self.style = split, tokenizer, size, style
        self.views = len(split.records.views)
        self.cc = split.country_codes
        self._name = country_name
        self._side = lambda c: country_cues(c)["drive_side"] if c else ""

    def __len__(self) -> int:
        return len(self.s) * self.views

    def caption(self, row: int, view: int, rng: random.Random) -> str:
        from pretrainlab.geo.synthetic_captions import build_caption

        meta = self.s.records.meta.row(row)
        cc = self.cc[row]
        meta["country_name"] = meta.get("country_name") or self._name(cc)
        return build_caption(meta, rng, self.style, heading_offset=90.0 * view, drive_side=self._side(cc))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row, view = divmod(i, self.views)
        rng = random.Random(random.getrandbits(64))
        refs = self.s.records.views[view]
        img = decode_image(refs.source(row), self.size, refs.names[row].decode())
        return {"image": img, "tokens": self.tok([self.caption(row, view, rng)])[0]}


def make_loader(ds: Dataset, batch: int, workers: int = 0, device: torch.device | None = None) -> DataLoader:
    return DataLoader(ds, batch_size=batch, shuffle=False, num_workers=workers,
                      pin_memory=bool(device is not None and device.type == "cuda"),
                      persistent_workers=False)


# ----------------------------------------------------------------------------- stages

def contrastive_pretrain(cfg: GeoConfig, data: GeoData, run_dir: Path, resume: bool = False) -> dict[str, torch.Tensor]:
    """Stage 1 (optional): CLIP loss on (image, synthetic caption) pairs; returns the open_clip weights."""
    from pretrainlab.core.train import Trainer, seed_everything
    from pretrainlab.geo.contrastive_pretraining import ContrastivePretrainTask, clip_state

    seed_everything(cfg.contrastive.train.seed)
    task = ContrastivePretrainTask(cfg)
    ds = CaptionDataset(data.train, task.tokenizer, cfg.model.image_size, cfg.contrastive.caption_style)
    Trainer(cfg.contrastive.train, run_dir, full_config=cfg).fit(task, ds, resume=resume)
    return {k: v.detach().cpu() for k, v in clip_state(task).items()}


def build_task(cfg: GeoConfig, data: GeoData | None = None, clip_init: dict[str, torch.Tensor] | None = None):  # -> GeolocationTask
    from pretrainlab.geo.geolocation import GeolocationTask

    task = GeolocationTask(cfg)
    if clip_init is not None:
        task.clip.load_state_dict(clip_init, strict=True)
    if data is not None:
        task.centroids.copy_(torch.from_numpy(data.cells.centroids.astype(np.float32)))
        reg = data.train.targets.regression
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
    write_geojson(data.cells, run_dir / CELLS_FILE, dataclasses.asdict(cfg.geocells))
    Trainer(cfg.train, run_dir, full_config=cfg).fit(task, GeocellDataset(data.train, data.labels, cfg.model.image_size),
                                                     resume=resume)
    return task


def _predict_batches(task: Any, rec: GeoRecords, cfg: GeoConfig, desc: str):  # yields (index, embedding, probs)
    from tqdm.auto import tqdm

    from pretrainlab.core.train import autocast_dtype

    dev = task.centroids.device
    dtype = autocast_dtype(task.cfg.train.precision, dev)
    loader = make_loader(ImageDataset(rec, cfg.model.image_size), cfg.eval_batch_size, cfg.train.num_workers, dev)
    task.eval()
    try:
        with torch.no_grad():
            for b in tqdm(loader, desc=desc, unit="batch", leave=False, disable=not cfg.train.progress):
                x = b["image"].to(dev, non_blocking=True)
                with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
                    out = task.predict(x)
                yield b["index"].numpy(), out["embedding"].float(), torch.softmax(out["geocell"].float(), dim=-1)
    finally:
        task.train()


def build_refinement(task: Any, data: GeoData, cfg: GeoConfig, run_dir: Path | None = None):  # -> RefinementIndex
    """Embed the training split (streamed into a memory-mapped file) and build the refinement index."""
    import shutil
    import tempfile

    from pretrainlab.geo.retrieval_refinement import build_index

    rec = data.train.records
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="geo-embed-", dir=str(run_dir) if run_dir else None))
    try:
        emb = None
        for idx, e, _ in _predict_batches(task, rec, cfg, "embed train"):
            if emb is None:
                emb = np.lib.format.open_memmap(work / "train.npy", mode="w+", dtype=np.float32, shape=(len(rec), e.shape[1]))
            emb[idx] = e.cpu().numpy()
        assert emb is not None
        emb.flush()
        folder = None
        if run_dir is not None:
            folder = Path(run_dir) / INDEX_DIR
            if folder.exists():
                shutil.rmtree(folder)
        tmp = (Path(run_dir) / f".{INDEX_DIR}.tmp") if run_dir is not None else None
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp)
        index = build_index(emb, data.train.latlon, data.labels, len(data.cells), cfg.refine, tmp,
                            progress=cfg.train.progress)
        del emb
        if tmp is not None and folder is not None:
            tmp.replace(folder)
            index.folder = folder
            from pretrainlab.geo.retrieval_refinement import RefinementIndex

            index = RefinementIndex.load(folder)
        return index
    finally:
        shutil.rmtree(work, ignore_errors=True)


def predict_split(task: Any, split: Split, cfg: GeoConfig, index: Any = None) -> dict[str, np.ndarray]:
    """Streamed predictions for a split: ``pred (N, 2)`` (geocell centroid, or refined), ``top_cell (N,)``."""
    from pretrainlab.geo.retrieval_refinement import refine

    n = len(split)
    pred = np.zeros((n, 2))
    top = np.zeros(n, dtype=np.int64)
    cents = task.centroids.detach().float().cpu()
    for idx, emb, probs in _predict_batches(task, split.records, cfg, "evaluate"):
        c = probs.argmax(dim=1).cpu()
        top[idx] = c.numpy()
        if index is not None:
            pred[idx] = refine(emb.cpu(), probs.cpu(), cents, index, cfg.refine)["latlon"].numpy()
        else:
            pred[idx] = cents[c].numpy()
    return {"pred": pred, "top_cell": top}


def evaluate(task: Any, data: GeoData, cfg: GeoConfig, index: Any = None) -> dict[str, float]:
    """Metrics of the geocell guess (top cell's centroid), or of the refined guess when ``index`` is given."""
    from pretrainlab.geo.metrics import geo_metrics
    from pretrainlab.geo.places import reverse_country
    from pretrainlab.geo.semantic_geocells import nearest_cell

    out = predict_split(task, data.test, cfg, index)
    pred = out["pred"]
    m = geo_metrics(pred, data.test.latlon, pred_country=reverse_country(pred), true_country=data.test.country_codes)
    true_cell = nearest_cell(data.test.latlon, task.centroids.detach().cpu().numpy())
    m["geocell_acc"] = float(100 * (out["top_cell"] == true_cell).mean())
    return m


def run_recipe(cfg: GeoConfig, data_root: Path, run_dir: Path, init: Path | None = None, resume: bool = False,
               skip_pretrain: bool = False) -> dict[str, Any]:
    """Everything a recipe row does; writes ``metrics.json`` into ``run_dir`` and returns the metrics."""
    from pretrainlab.core.io import atomic_write_json

    run_dir = Path(run_dir)
    validate(cfg)
    data = load_data(cfg, data_root)
    clip_init = load_clip_init(init) if init else None
    if clip_init is None and cfg.contrastive.enabled and not skip_pretrain:
        clip_init = contrastive_pretrain(cfg, data, run_dir / "pretrain", resume=resume)
    task = train_geocells(cfg, data, run_dir, clip_init, resume=resume)
    from pretrainlab.core import distributed as D

    if not D.is_main():  # under torchrun rank 0 alone writes the index and the metrics into the run folder
        D.barrier()
        return {}
    index = build_refinement(task, data, cfg, run_dir) if cfg.refine.enabled else None
    metrics = evaluate(task, data, cfg, index)
    atomic_write_json(run_dir / "metrics.json", metrics)
    print("eval: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()), file=sys.stderr)
    D.barrier()
    return metrics


# ----------------------------------------------------------------------------- checkpoints

def load_clip_init(path: Path) -> dict[str, torch.Tensor]:
    """open_clip weights from a pretrain / geolocation run or checkpoint (``clip.*`` keys) or a plain
    open_clip ``.safetensors`` file."""
    from pretrainlab.core.checkpoint import CheckpointError, find_checkpoint, load_tensors

    p = Path(path)
    if p.is_file() and p.suffix != ".safetensors":
        raise CheckpointError(f"{p}: expected a run folder or a .safetensors weights file (convert Hugging Face "
                              f"folders with 'pretrainlab geo convert-clip')")
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
    if cells is not None and len(cells) != cfg.n_cells:
        raise CheckpointError(f"{run / CELLS_FILE}: {len(cells)} cells but the checkpoint has {cfg.n_cells}")
    index = RefinementIndex.load(run / INDEX_DIR) if (cfg.refine.enabled and (run / INDEX_DIR).is_dir()) else None
    return Locator(task, cfg, cells, index, folder)


@torch.no_grad()
def locate(loc: Locator, image: torch.Tensor, k: int = 5) -> dict[str, Any]:
    """One image ``(3,S,S)`` (or panorama ``(V,3,S,S)``) uint8 -> top-``k`` cells (lat, lon, cell,
    probability) + the final guess, whose ``cell`` is the cell its location belongs to."""
    from pretrainlab.geo.retrieval_refinement import refine

    if k < 1:
        raise ValueError(f"top: {k} must be >= 1")
    dev = loc.task.centroids.device
    out = loc.task.predict(image[None].to(dev))
    probs = torch.softmax(out["geocell"].float(), dim=-1)[0]
    p, c = probs.topk(min(k, probs.numel()))
    cents = loc.task.centroids[c].cpu().numpy()

    def info(ci: int) -> dict[str, str]:
        if loc.cells is None:
            return {"name": "", "country": ""}
        return {"name": loc.cells.names[ci], "country": loc.cells.countries[ci]}

    top = [{"lat": float(la), "lon": float(lo), "cell": int(ci), **info(int(ci)), "prob": float(pi)}
           for (la, lo), ci, pi in zip(cents, c.tolist(), p.tolist())]
    guess = {"lat": top[0]["lat"], "lon": top[0]["lon"], "cell": top[0]["cell"], "refined": False, "cancelled": False,
             **info(top[0]["cell"])}
    if loc.index is not None:
        r = refine(out["embedding"].cpu(), probs[None].cpu(), loc.task.centroids.cpu(), loc.index, loc.cfg.refine)
        la, lo = r["latlon"][0].tolist()
        cell = int(r["cell"][0])
        guess = {"lat": la, "lon": lo, "cell": cell, "refined": True, "cancelled": bool(r["cancelled"][0]), **info(cell)}
    return {"top": top, "guess": guess}


def read_image_file(path: Path, size: int, views: int = 1) -> torch.Tensor:
    """An image file (or, for a panorama model, one image used for all views) -> ``(3,S,S)`` uint8."""
    img = decode_image(Path(path), size)
    return img if views == 1 else img[None].expand(views, -1, -1, -1).contiguous()
