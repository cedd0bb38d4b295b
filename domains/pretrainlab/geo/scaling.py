"""Measurements at real scale (what ``pretrainlab geo bench`` reports beyond training steps):
geocell construction on 10^5 / 10^6 points, peak memory while streaming generated images, and
inference with retrieval refinement against a 10^6-image memory-mapped index."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def cells_bench(n: int, voronoi: bool = True) -> dict[str, Any]:
    from pretrainlab.geo.semantic_geocells import GeocellConfig, build_geocells
    from pretrainlab.geo.synthetic import sample_locations

    m = sample_locations(n, np.random.default_rng(0))
    ll = np.stack([m["lat"], m["lon"]], axis=1)
    cfg = GeocellConfig(min_size=1000, max_size=2000, voronoi=False)  # PIGEOTTO sizes, reference OPTICS rounds
    t, c = time.perf_counter(), time.process_time()
    cells, labels = build_geocells(ll, cfg, progress=False)
    out: dict[str, Any] = {"points": n, "geocells": len(cells), "assign_wall_s": time.perf_counter() - t,
                           "assign_cpu_s": time.process_time() - c, "size_distribution": cells.report}
    if voronoi:
        from pretrainlab.geo.semantic_geocells import admin_areas, cell_shapes

        t, c = time.perf_counter(), time.process_time()
        cell_shapes(ll, labels, admin_areas(ll, cfg), len(cells))
        out.update(shapes_wall_s=time.perf_counter() - t, shapes_cpu_s=time.process_time() - c)
    return out


def _rss_mb() -> float:
    """The process's current resident set (Linux /proc; elsewhere its peak so far), in MiB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stream_bench(n: int, size: int = 64, workers: int = 0, batch: int = 500) -> dict[str, Any]:
    """Generate ``n`` distinct small JPEGs + a CSV in a temporary folder, index them and stream every
    image through a DataLoader at ``size`` px: index bytes per row, the growth of the resident set
    while streaming (sampled every batch, so earlier peaks of the process do not hide it; vs the
    ``n x 3 x size x size`` bytes a decoded split would take), images/s."""
    import io

    from PIL import Image
    from torch.utils.data import DataLoader

    from pretrainlab.geo.formats import read_split
    from pretrainlab.geo.pipeline import ImageDataset

    with tempfile.TemporaryDirectory(prefix="geo-stream-") as tmp:
        root = Path(tmp)
        img_dir = root / "images" / "train"
        img_dir.mkdir(parents=True)
        rng = np.random.default_rng(0)
        buf = io.BytesIO()
        lines = ["image,lat,lon"]
        for i in range(n):  # one random colour per image: every file differs
            buf.seek(0)
            buf.truncate()
            Image.new("RGB", (8, 8), tuple(int(c) for c in rng.integers(0, 256, 3))).save(buf, format="JPEG", quality=50)
            (img_dir / f"{i}.jpg").write_bytes(buf.getvalue())
            lines.append(f"{i}.jpg,{rng.uniform(-60, 60):.5f},{rng.uniform(-170, 170):.5f}")
        (root / "train.csv").write_text("\n".join(lines) + "\n")
        rec = read_split(root, "train")
        index_bytes = rec.ids.nbytes + rec.latlon.nbytes + rec.images.names.nbytes + rec.images.dir_idx.nbytes
        before = _rss_mb()
        peak = before
        seen, checksum = 0, 0.0
        t = time.perf_counter()
        for b in DataLoader(ImageDataset(rec, size), batch_size=batch, num_workers=workers):
            seen += len(b["image"])
            checksum += float(b["image"][:, :, 0, 0].float().mean())
            peak = max(peak, _rss_mb())
        dt = time.perf_counter() - t
        grown = peak - before
    return {"images": seen, "image_size": size, "index_bytes_per_row": index_bytes / max(1, n),
            "rss_growth_mb": grown, "decoded_split_mb": n * 3 * size * size / 2**20,
            "images_per_s": seen / dt, "checksum": checksum}


def synthetic_index(n: int, d: int, n_cells: int, folder: Path, seed: int = 0):  # -> RefinementIndex
    """A refinement index of ``n`` random unit-scale embeddings in ``n_cells`` cells of ~10-image
    clusters, written and memory-mapped as a run's index is (timing only)."""
    from pretrainlab.geo.retrieval_refinement import RefinementIndex

    rng = np.random.default_rng(seed)
    per_cluster = 10
    m = n // per_cluster
    emb = np.lib.format.open_memmap(folder / "embeddings.npy", mode="w+", dtype=np.float32, shape=(m * per_cluster, d))
    for s in range(0, len(emb), 65536):
        emb[s:s + 65536] = rng.standard_normal((min(65536, len(emb) - s), d), dtype=np.float32)
    emb.flush()
    protos = np.lib.format.open_memmap(folder / "prototypes.npy", mode="w+", dtype=np.float32, shape=(m, d))
    protos[:] = rng.standard_normal((m, d), dtype=np.float32)
    protos.flush()
    proto_cell = np.sort(rng.integers(0, n_cells, m))
    cell_offsets = np.searchsorted(proto_cell, np.arange(n_cells + 1)).astype(np.int64)
    latlon = np.stack([rng.uniform(-60, 70, len(emb)), rng.uniform(-180, 180, len(emb))], axis=1)
    offsets = np.arange(0, len(emb) + 1, per_cluster, dtype=np.int64)
    p_ll = latlon.reshape(m, per_cluster, 2).mean(1)
    RefinementIndex(latlon, offsets, proto_cell, p_ll, cell_offsets, protos, emb, folder).save(folder)
    return RefinementIndex.load(folder)


def refinement_bench(task: Any, cfg: Any, n_index: int, bs: int, steps: int, device: str, precision: str) -> dict[str, Any]:
    """Inference images/s (model + refinement) against an ``n_index``-image index of the task's width."""
    from pretrainlab.core.train import autocast_dtype, select_device
    from pretrainlab.geo.retrieval_refinement import refine

    dev = select_device(device)
    cuda = dev.type == "cuda"
    k = task.heads.geocell.out_features
    size = cfg.model.image_size
    with tempfile.TemporaryDirectory(prefix="geo-bench-index-") as tmp:
        d = task.heads.geocell.in_features
        t0 = time.perf_counter()
        index = synthetic_index(n_index, d, k, Path(tmp))
        build_s = time.perf_counter() - t0
        task.to(dev).eval()
        x = torch.randint(0, 256, (bs, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)).to(dev)
        dtype = autocast_dtype(precision, dev)
        rcfg = dataclasses.replace(cfg.refine)
        t_model = t_refine = 0.0
        with torch.inference_mode():
            for i in range(steps + 1):
                t1 = time.perf_counter()
                with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
                    out = task.predict(x)
                probs = torch.softmax(out["geocell"].float(), -1)
                if cuda:
                    torch.cuda.synchronize(dev)
                t2 = time.perf_counter()
                refine(out["embedding"].float().cpu(), probs.cpu(), task.centroids.cpu(), index, rcfg)
                t3 = time.perf_counter()
                if i:  # the first pass warms up
                    t_model += t2 - t1
                    t_refine += t3 - t2
        disk = sum(f.stat().st_size for f in Path(tmp).iterdir()) / 2**20
        del index
    return {"name": "inference_with_refinement", "images_per_s": bs * steps / (t_model + t_refine),
            "model_images_per_s": bs * steps / t_model, "refine_images_per_s": bs * steps / t_refine,
            "batch_size": bs, "index_images": n_index, "index_dim": d, "index_disk_mb": disk, "index_write_s": build_s}
