"""Hierarchical retrieval refinement (PIGEON Sec. 3.6) as LukasHaas/PIGEON computes it
(``dataset_creation/prototype/prototype.py`` builds the clusters, ``models/proto_refiner.py``
refines).

Index, built once from the training set:

- inside every geocell, OPTICS on the precomputed haversine distance matrix of the cell's
  training locations (zero distances replaced by 1e-5 km, as the reference), ``min_samples`` 3 and
  ``xi`` 0.15 (PIGEON's ``DEFAULT_CLUSTER_ARGS``; PIGEOTTO uses (100, 0.1)); a cell with fewer
  points than ``min_samples`` is one cluster; OPTICS noise points belong to no cluster (the
  reference drops ``cluster == -1``);
- a cluster's prototype is the mean of its members' RAW embeddings (no normalisation), its
  location the mean of their (lat, lon).

Query (per image): the ``top_k_cells`` (5) most probable geocells; in each, the prototype with the
smallest Euclidean distance to the raw query embedding; a softmax with temperature ``T`` (1.6) over
the candidates' negative distances, multiplied by the geocell probabilities, picks the candidate.
Inside every candidate's cluster the guess is refined to one training image's location: a
single-image cluster gives its location; otherwise ``final="nearest"`` takes the member nearest
to the query (the paper), ``final="farthest"`` the member with the LARGEST distance (what the
reference code's ``torch.argmax(distances)`` does), ``final="mean"`` the cluster's mean location.
If the chosen candidate's refined location lies more than ``cancel_km`` (1000 km) from the top
geocell's centroid, the refinement is cancelled: the guess is the TOP cell's refined location
(the reference then takes ``top_preds`` of the initial cell, not its centroid) and the reported
cell is the top cell. A candidate cell without any cluster takes no part (the reference gives it
distance -100000 and location (0, 0); here its centroid stands in if it is the top cell).

Scale: the index is stored cluster-major, so a cluster's members are one contiguous block of
``embeddings.npy`` (a memory-mapped float32 array that is never loaded whole); prototypes are
memory-mapped too, and a query only reads the prototypes of its top-5 cells and the members of
two clusters. RAM for an index is ~40 bytes per training image + the cell table; disk is
``4 * D`` bytes per image and per cluster (OSV-5M, 4.9M images, ViT-L/14 D = 1024: ~20 GB).

Shapes: embeddings ``(N, D)``; queries ``(B, D)``; cell probabilities ``(B, K)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from pretrainlab.core.config import ConfigError
from pretrainlab.core.data import DataError
from pretrainlab.geo.haversine import haversine_np

ZERO_DISTANCE_KM = 1e-5  # prototype.py: np.where(distances == 0, 1e-5, distances)
FINALS = ("nearest", "farthest", "mean")


@dataclass
class RefineConfig:
    enabled: bool = True  # PIGEON Sec. 3.6 hierarchical retrieval refinement
    top_k_cells: int = 5  # ProtoRefiner(topk=5)
    temperature: float = 1.6  # ProtoRefiner(temperature=1.6): softmax over -distance / T (raw embeddings)
    cancel_km: float = 1000.0  # ProtoRefiner(max_refinement=1000)
    optics_min_samples: int = 3  # prototype.py DEFAULT_CLUSTER_ARGS (3, 0.15) for PIGEON; (100, 0.1) PIGEOTTO
    optics_xi: float = 0.15  # prototype.py (PIGEON)
    final: str = "nearest"  # nearest (paper) | farthest (the reference code's argmax of distances) | mean
    query_chunk: int = 64  # queries scored at once (bounds the gathered prototypes' memory)

    CHECKS: ClassVar[dict[str, Any]] = {
        "top_k_cells": ">=1", "temperature": ">0", "cancel_km": ">0", "optics_min_samples": ">=2",
        "optics_xi": ">0 <1", "final": FINALS, "query_chunk": ">=1",
    }

    def check(self) -> None:
        for k in ("temperature", "cancel_km"):
            if not np.isfinite(getattr(self, k)):
                raise ConfigError(f"{k}: {getattr(self, k)!r} must be finite")


def validate_config(cfg: RefineConfig, prefix: str = "refine") -> None:
    from pretrainlab.core.config import validate

    validate(cfg, prefix + ".")


def cell_clusters(latlon: np.ndarray, min_samples: int, xi: float) -> np.ndarray:
    """``ProtoDataset._compute_clusters`` for one cell: OPTICS labels ``(n,)`` on the haversine matrix."""
    from pretrainlab.geo.optics import optics_labels

    n = len(latlon)
    if n < min_samples:
        return np.zeros(n, dtype=np.int64)
    d = haversine_np(latlon[:, None, :], latlon[None, :, :])
    d = np.where(d == 0, ZERO_DISTANCE_KM, d)
    return optics_labels(min_samples=min_samples, xi=xi, D=d)


@dataclass
class RefinementIndex:
    """Cluster-major index. Member rows of cluster ``m``: ``offsets[m]:offsets[m + 1]``; prototypes
    of cell ``k``: ``cell_offsets[k]:cell_offsets[k + 1]`` (clusters are sorted by cell)."""

    latlon: np.ndarray  # (N', 2) float64 member locations (noise points dropped), cluster-major
    offsets: np.ndarray  # (M + 1,) int64
    proto_cell: np.ndarray  # (M,) int64
    proto_latlon: np.ndarray  # (M, 2) mean location of each cluster
    cell_offsets: np.ndarray  # (K + 1,) int64
    prototypes: np.ndarray  # (M, D) float32 (memory-mapped when loaded)
    embeddings: np.ndarray  # (N', D) float32 (memory-mapped when loaded)
    folder: Path | None = None

    @property
    def n_cells(self) -> int:
        return len(self.cell_offsets) - 1

    def save(self, folder: Path) -> Path:
        """Write ``index.npz``-free files: ``index.safetensors`` (small tables), ``prototypes.npy``,
        ``embeddings.npy`` (already there when built by :func:`build_index` into ``folder``)."""
        from pretrainlab.core.checkpoint import save_tensors

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("prototypes", "embeddings"):
            target = folder / f"{name}.npy"
            arr = getattr(self, name)
            if not (isinstance(arr, np.memmap) and Path(arr.filename).resolve() == target.resolve()):
                tmp = target.with_suffix(".tmp.npy")
                np.save(tmp, np.asarray(arr, dtype=np.float32))
                tmp.replace(target)
        tmp = folder / ".index.safetensors.tmp"
        save_tensors(tmp, {
            "latlon": torch.from_numpy(np.ascontiguousarray(self.latlon, dtype=np.float64)),
            "offsets": torch.from_numpy(self.offsets.astype(np.int64)),
            "proto_cell": torch.from_numpy(self.proto_cell.astype(np.int64)),
            "proto_latlon": torch.from_numpy(np.ascontiguousarray(self.proto_latlon, dtype=np.float64)),
            "cell_offsets": torch.from_numpy(self.cell_offsets.astype(np.int64))})
        tmp.replace(folder / "index.safetensors")
        return folder

    @classmethod
    def load(cls, folder: Path) -> RefinementIndex:
        from pretrainlab.core.checkpoint import load_tensors
        from pretrainlab.core.guards import load_npy

        folder = Path(folder)
        t, _ = load_tensors(folder / "index.safetensors")
        need = ("latlon", "offsets", "proto_cell", "proto_latlon", "cell_offsets")
        if any(k not in t for k in need):
            raise DataError(folder / "index.safetensors", f"not a refinement index (needs {', '.join(need)})")
        protos = load_npy(folder / "prototypes.npy", mmap=True)
        emb = load_npy(folder / "embeddings.npy", mmap=True)
        idx = cls(t["latlon"].numpy(), t["offsets"].numpy(), t["proto_cell"].numpy(), t["proto_latlon"].numpy(),
                  t["cell_offsets"].numpy(), protos, emb, folder)
        m, n = len(idx.proto_cell), len(idx.latlon)
        if protos.shape[0] != m or emb.shape[0] != n or idx.offsets[-1] != n or protos.shape[1] != emb.shape[1]:
            raise DataError(folder, f"refinement index files disagree: {m} clusters, {protos.shape[0]} prototypes, "
                                    f"{n} locations, {emb.shape[0]} embeddings")
        return idx


def build_index(embeddings: np.ndarray | torch.Tensor, latlon: np.ndarray, labels: np.ndarray, n_cells: int,
                cfg: RefineConfig, folder: Path | None = None, progress: bool = False,
                chunk: int = 65536) -> RefinementIndex:
    """Index from training embeddings ``(N, D)`` (array or memmap, read in chunks), their locations
    ``(N, 2)`` and geocell labels ``(N,)``. With ``folder`` the member embeddings are written there
    as ``embeddings.npy`` (cluster-major) without holding them in memory."""
    from tqdm.auto import tqdm

    validate_config(cfg)
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().float().cpu().numpy()
    latlon = np.asarray(latlon, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    d = embeddings.shape[1]
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_cells + 1))
    rows_parts, cl_parts, cell_counts = [], [], np.zeros(n_cells, dtype=np.int64)
    nxt = 0
    for c in tqdm(range(n_cells), desc="refinement clusters", unit="cell", leave=False, disable=not progress):
        idx = order[bounds[c]:bounds[c + 1]]
        if len(idx) == 0:
            continue
        cl = cell_clusters(latlon[idx], cfg.optics_min_samples, cfg.optics_xi)
        keep = cl >= 0  # prototype.py: centroids.loc[centroids['cluster'] != -1]
        if not keep.any():
            continue
        ids, inv = np.unique(cl[keep], return_inverse=True)
        o = np.argsort(inv, kind="stable")
        rows_parts.append(idx[keep][o])
        cl_parts.append(inv[o] + nxt)
        nxt += len(ids)
        cell_counts[c] = len(ids)
    if nxt == 0:
        raise DataError("(refinement index)", "no cluster in any geocell: too few training images")
    rows = np.concatenate(rows_parts)
    member = np.concatenate(cl_parts)
    counts = np.bincount(member, minlength=nxt)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    proto_cell = np.repeat(np.arange(n_cells), cell_counts)
    cell_offsets = np.concatenate([[0], np.cumsum(cell_counts)]).astype(np.int64)
    if folder is not None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        emb_out: np.ndarray = np.lib.format.open_memmap(folder / "embeddings.npy", mode="w+", dtype=np.float32,
                                                        shape=(len(rows), d))
        protos: np.ndarray = np.lib.format.open_memmap(folder / "prototypes.npy", mode="w+", dtype=np.float32,
                                                       shape=(nxt, d))
    else:
        emb_out = np.empty((len(rows), d), dtype=np.float32)
        protos = np.empty((nxt, d), dtype=np.float32)
    m0 = 0
    while m0 < nxt:  # groups of whole clusters, ~chunk rows each (rows are cluster-major)
        m1 = int(np.searchsorted(offsets, offsets[m0] + chunk, side="right"))
        m1 = min(nxt, max(m1 - 1, m0 + 1))
        a, b = int(offsets[m0]), int(offsets[m1])
        r = rows[a:b]
        srt = np.argsort(r, kind="stable")
        e = np.empty((len(r), d), dtype=np.float32)
        e[srt] = np.asarray(embeddings[r[srt]], dtype=np.float32)  # reads in file order
        emb_out[a:b] = e
        # _compute_protos_for_cell: the mean of the members' raw embeddings
        protos[m0:m1] = np.add.reduceat(e.astype(np.float64), offsets[m0:m1] - a, axis=0) / counts[m0:m1, None]
        m0 = m1
    for arr in (emb_out, protos):
        if isinstance(arr, np.memmap):
            arr.flush()
    p_ll = np.add.reduceat(latlon[rows], offsets[:-1], axis=0) / counts[:, None]
    index = RefinementIndex(latlon[rows], offsets, proto_cell, p_ll, cell_offsets, protos, emb_out, folder)
    if folder is not None:
        index.save(folder)
    return index


def _cell_table(index: RefinementIndex) -> tuple[np.ndarray, int]:
    """``(K, P)`` prototype ids per cell padded with -1, ``P`` = the most clusters in a cell."""
    counts = np.diff(index.cell_offsets)
    p = max(1, int(counts.max()))
    table = np.full((index.n_cells, p), -1, dtype=np.int64)
    for c in np.flatnonzero(counts):
        table[c, :counts[c]] = np.arange(index.cell_offsets[c], index.cell_offsets[c + 1])
    return table, p


def _within_cluster(q: np.ndarray, m: int, index: RefinementIndex, final: str) -> np.ndarray:
    """``ProtoRefiner._within_cluster_refinement``: a location ``(2,)`` inside cluster ``m``."""
    a, b = int(index.offsets[m]), int(index.offsets[m + 1])
    if b - a == 1 or final == "mean":
        return index.proto_latlon[m] if final == "mean" else index.latlon[a]
    e = np.asarray(index.embeddings[a:b], dtype=np.float32)
    dist = np.sqrt(((e - q[None, :]) ** 2).sum(axis=1))
    j = int(np.argmax(dist)) if final == "farthest" else int(np.argmin(dist))
    return index.latlon[a + j]


def _candidate_location(q: np.ndarray, cells: np.ndarray, pids: np.ndarray, dists: np.ndarray, j: int,
                        cents: torch.Tensor, index: RefinementIndex, final: str) -> np.ndarray:
    """Candidate ``j``'s refined location (its cell's centroid when the cell has no cluster)."""
    m = int(pids[j])
    if not np.isfinite(dists[j]) or m < 0:
        return cents[cells[j]].numpy().astype(np.float64)
    return _within_cluster(q, m, index, final)


@torch.no_grad()
def refine(query: torch.Tensor, cell_probs: torch.Tensor, centroids: torch.Tensor, index: RefinementIndex,
           cfg: RefineConfig) -> dict[str, torch.Tensor]:
    """Refined guesses: ``latlon (B, 2)``, ``cell (B,)`` (the cell whose location is returned),
    ``cluster (B,)`` (-1 = none), ``cancelled (B,)`` bool, ``changed (B,)`` bool (cell differs from the top)."""
    validate_config(cfg)
    q_all = query.detach().float().cpu().numpy()
    probs = cell_probs.detach().float().cpu()
    cents = centroids.detach().float().cpu()
    k = min(cfg.top_k_cells, probs.shape[1])
    top_p, top_c = probs.topk(k, dim=1)
    table = getattr(index, "_table", None)
    if table is None:
        table = _cell_table(index)
        index._table = table  # type: ignore[attr-defined]
    cell_tab, _ = table
    b = len(q_all)
    out_ll = np.zeros((b, 2))
    out_cell = np.zeros(b, dtype=np.int64)
    out_cluster = np.full(b, -1, dtype=np.int64)
    cancelled = np.zeros(b, dtype=bool)
    for s in range(0, b, cfg.query_chunk):
        sl = slice(s, min(b, s + cfg.query_chunk))
        q = q_all[sl]
        tc = top_c[sl].numpy()
        pid = cell_tab[tc]  # (b, k, P)
        valid = pid >= 0
        protos = np.asarray(index.prototypes[np.unique(pid[valid])], dtype=np.float32) if valid.any() else None
        dist = np.full(pid.shape, np.inf)
        if protos is not None:
            uniq = np.unique(pid[valid])
            pos = np.searchsorted(uniq, np.where(valid, pid, uniq[0]))
            diff = protos[pos] - q[:, None, None, :]
            dist = np.where(valid, np.sqrt((diff * diff).sum(-1)), np.inf)
        best = dist.argmin(-1)  # (b, k): nearest prototype per candidate cell
        best_d = np.take_along_axis(dist, best[..., None], -1)[..., 0]
        best_pid = np.take_along_axis(pid, best[..., None], -1)[..., 0]
        logits = torch.from_numpy(-best_d).float()
        logits = torch.where(torch.isfinite(logits), logits, torch.full_like(logits, -1e5))  # no cluster: -100000
        w = torch.softmax(logits / cfg.temperature, dim=1) * top_p[sl]
        pick = w.argmax(dim=1).numpy()
        for r in range(len(q)):
            i = s + r
            j = int(pick[r])
            guess = _candidate_location(q[r], tc[r], best_pid[r], best_d[r], j, cents, index, cfg.final)
            if j != 0 and haversine_np(guess, cents[tc[r, 0]].numpy()) > cfg.cancel_km:
                cancelled[i] = True  # ProtoRefiner: final_probs = candidate_probs -> the top cell
                j = 0
                guess = _candidate_location(q[r], tc[r], best_pid[r], best_d[r], 0, cents, index, cfg.final)
            out_ll[i] = guess
            out_cell[i] = tc[r, j]
            out_cluster[i] = int(best_pid[r, j]) if np.isfinite(best_d[r, j]) else -1
    return {"latlon": torch.from_numpy(out_ll).float(), "cell": torch.from_numpy(out_cell),
            "cluster": torch.from_numpy(out_cluster), "cancelled": torch.from_numpy(cancelled),
            "changed": torch.from_numpy(out_cell != top_c[:, 0].numpy())}


