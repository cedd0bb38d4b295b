"""Hierarchical retrieval refinement (PIGEON Sec. 3.6).

Index (built once from the training set): inside every geocell, OPTICS clusters of the training
locations with the haversine metric; each cluster's prototype is the mean embedding of its images
(OPTICS noise points of a cell form one extra cluster).

Query: take the ``top_k_cells`` (5) most probable geocells; in each, the prototype nearest to the
query embedding (Euclidean distance of L2-normalised embeddings); a softmax with temperature
``T`` (1.6) over those candidates' negative distances, multiplied by the geocell probabilities,
picks the cluster; the guess is the location of the training image in that cluster nearest to the
query (the reference code appears to take the farthest one, argmax of cdist: not reproduced). If
the refined guess is more than ``cancel_km`` (1000 km) from the top geocell's centroid, the
geocell guess is kept.

Shapes: embeddings ``(N, D)``, prototypes ``(M, D)``; queries ``(B, D)``, cell probabilities ``(B, K)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pretrainlab.geo.config import RefineConfig
from pretrainlab.geo.haversine import haversine


@dataclass
class RefinementIndex:
    embeddings: torch.Tensor  # (N, D) L2-normalised training embeddings
    latlon: torch.Tensor  # (N, 2)
    member: torch.Tensor  # (N,) cluster id of every training image
    prototypes: torch.Tensor  # (M, D) L2-normalised mean embeddings
    proto_cell: torch.Tensor  # (M,) geocell of every cluster

    def to(self, device: torch.device | str) -> RefinementIndex:
        return RefinementIndex(*(getattr(self, f).to(device) for f in
                                 ("embeddings", "latlon", "member", "prototypes", "proto_cell")))

    def save(self, path: Path) -> None:
        from pretrainlab.core.checkpoint import save_weights

        save_weights({k: getattr(self, k).contiguous() for k in
                      ("embeddings", "latlon", "member", "prototypes", "proto_cell")}, Path(path))

    @classmethod
    def load(cls, path: Path) -> RefinementIndex:
        from pretrainlab.core.checkpoint import load_tensors

        t, _ = load_tensors(Path(path))
        return cls(t["embeddings"], t["latlon"], t["member"], t["prototypes"], t["proto_cell"])


def cell_clusters(latlon: np.ndarray, labels: np.ndarray, cfg: RefineConfig, progress: bool = False) -> np.ndarray:
    """OPTICS (haversine metric) inside each geocell -> global cluster id per point ``(N,)``."""
    from sklearn.cluster import OPTICS
    from tqdm.auto import tqdm

    member = np.empty(len(labels), dtype=np.int64)
    nxt = 0
    for c in tqdm(np.unique(labels), desc="refinement clusters", unit="cell", leave=False, disable=not progress):
        idx = np.nonzero(labels == c)[0]
        if len(idx) <= cfg.optics_min_samples:
            member[idx] = nxt
            nxt += 1
            continue
        rad = np.radians(latlon[idx])
        cl = OPTICS(min_samples=cfg.optics_min_samples, xi=cfg.optics_xi, metric="haversine").fit(rad).labels_
        ids = np.unique(cl)
        remap = {int(v): nxt + i for i, v in enumerate(ids)}  # noise (-1) becomes one cluster too
        member[idx] = np.array([remap[int(v)] for v in cl])
        nxt += len(ids)
    return member


def build_index(embeddings: torch.Tensor, latlon: np.ndarray, labels: np.ndarray, cfg: RefineConfig,
                progress: bool = False) -> RefinementIndex:
    """Refinement index from training embeddings ``(N, D)``, locations ``(N, 2)`` and cells ``(N,)``."""
    emb = F.normalize(embeddings.float(), dim=-1).cpu()
    member = torch.from_numpy(cell_clusters(latlon, labels, cfg, progress))
    m = int(member.max()) + 1
    sums = torch.zeros(m, emb.shape[1]).index_add_(0, member, emb)
    protos = F.normalize(sums, dim=-1)
    proto_cell = torch.zeros(m, dtype=torch.long)
    proto_cell[member] = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    return RefinementIndex(emb, torch.from_numpy(np.asarray(latlon, dtype=np.float32)), member, protos, proto_cell)


@torch.no_grad()
def refine(query: torch.Tensor, cell_probs: torch.Tensor, centroids: torch.Tensor, index: RefinementIndex,
           cfg: RefineConfig) -> dict[str, torch.Tensor]:
    """Refined guesses ``latlon (B, 2)`` (+ ``cluster (B,)``, ``cell (B,)``, ``cancelled (B,)`` bool)."""
    q = F.normalize(query.float(), dim=-1)
    probs = cell_probs.float()
    k = min(cfg.top_k_cells, probs.shape[1])
    top_p, top_c = probs.topk(k, dim=1)  # (B, k)
    d = torch.cdist(q, index.prototypes)  # (B, M)
    inf = torch.full_like(d, float("inf"))
    best_d, best_m = [], []
    for j in range(k):  # nearest prototype inside each candidate cell
        dj = torch.where(index.proto_cell[None, :] == top_c[:, j:j + 1], d, inf)
        v, i = dj.min(dim=1)
        best_d.append(v)
        best_m.append(i)
    bd = torch.stack(best_d, 1)  # (B, k); inf when a cell has no cluster
    bm = torch.stack(best_m, 1)
    w = torch.softmax(-bd / cfg.temperature, dim=1) * top_p
    w = torch.nan_to_num(w, nan=0.0)
    pick = w.argmax(dim=1)
    cluster = bm.gather(1, pick[:, None]).squeeze(1)
    cell = top_c.gather(1, pick[:, None]).squeeze(1)
    in_cluster = index.member[None, :] == cluster[:, None]  # (B, N)
    if cfg.final == "mean":
        wts = in_cluster.float()
        guess = (wts @ index.latlon.float()) / wts.sum(1, keepdim=True).clamp(min=1)
    else:
        de = torch.cdist(q, index.embeddings)
        de = torch.where(in_cluster, de, torch.full_like(de, float("inf")))
        guess = index.latlon.float()[de.argmin(dim=1)]
    fallback = centroids.float()[top_c[:, 0]]
    cancelled = haversine(guess, fallback) > cfg.cancel_km
    guess = torch.where(cancelled[:, None], fallback, guess)
    return {"latlon": guess, "cluster": cluster, "cell": cell, "cancelled": cancelled}
