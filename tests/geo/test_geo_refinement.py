"""Retrieval refinement against a compact independent port of the reference
(``prototype.py`` clusters, ``proto_refiner.py ProtoRefiner.forward``), the cancel rule, the index's
files, and ``locate`` reporting the cell its location belongs to."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from pretrainlab.geo.haversine import haversine_np
from pretrainlab.geo.retrieval_refinement import RefineConfig, RefinementIndex, build_index, refine


def _world(seed: int = 0, n_cells: int = 6):
    """Cells around real cities, each with 2-3 tight groups of training images; embeddings that
    carry the group (so retrieval has something to find) plus noise."""
    rng = np.random.default_rng(seed)
    cities = np.array([[48.85, 2.35], [52.52, 13.40], [40.42, -3.70], [35.68, 139.69], [-33.87, 151.21], [40.71, -74.0]])
    latlon, labels, groups = [], [], []
    g = 0
    for c in range(n_cells):
        for _ in range(int(rng.integers(2, 4))):
            centre = cities[c] + rng.normal(0, 1.0, 2)
            n = int(rng.integers(4, 9))
            latlon.append(centre + rng.normal(0, 0.01, (n, 2)))
            labels += [c] * n
            groups += [g] * n
            g += 1
    latlon = np.concatenate(latlon)
    groups = np.array(groups)
    protos = rng.normal(0, 1, (g, 16)) * 3
    emb = (protos[groups] + rng.normal(0, 0.3, (len(groups), 16))).astype(np.float32)
    cents = np.stack([latlon[np.array(labels) == c].mean(0) for c in range(n_cells)])
    return latlon, np.array(labels), emb, cents


def _ref_clusters(latlon: np.ndarray, labels: np.ndarray, ms: int, xi: float) -> dict[int, list[np.ndarray]]:
    """prototype.py: per cell, OPTICS(metric='precomputed') on haversine km with zeros -> 1e-5; < ms points
    -> one cluster; noise dropped. Returns per cell the member index arrays of its clusters."""
    from sklearn.cluster import OPTICS

    out: dict[int, list[np.ndarray]] = {}
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < ms:
            cl = np.zeros(len(idx), dtype=int)
        else:
            d = haversine_np(latlon[idx][:, None], latlon[idx][None])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cl = OPTICS(min_samples=ms, xi=xi, metric="precomputed").fit_predict(np.where(d == 0, 1e-5, d))
        out[int(c)] = [idx[cl == k] for k in sorted(set(cl.tolist()) - {-1})]
    return out


def _ref_forward(q: np.ndarray, probs: np.ndarray, cents: np.ndarray, clusters, latlon, emb, topk=5, T=1.6,
                 max_km=1000.0, farthest=True):
    """ProtoRefiner.forward for one query (the reference's loop, in numpy)."""
    cand = np.argsort(-probs, kind="stable")[:topk]
    top_d, top_preds = [], []
    for c in cand:
        cl = clusters.get(int(c), [])
        if not cl:
            top_d.append(-100000.0)
            top_preds.append(None)
            continue
        protos = np.stack([emb[m].mean(0) for m in cl])
        logits = -np.sqrt(((protos - q) ** 2).sum(1))
        top_d.append(logits.max())
        m = cl[int(np.argmax(logits))]
        if len(m) == 1:
            top_preds.append(latlon[m[0]])
        else:
            dist = np.sqrt(((emb[m] - q) ** 2).sum(1))
            top_preds.append(latlon[m[int(np.argmax(dist) if farthest else np.argmin(dist))]])
    ex = np.exp(np.array(top_d) / T)
    final = probs[cand] * ex / ex.sum()
    j = int(np.argmax(final))
    if top_preds[j] is not None and haversine_np(top_preds[j], cents[cand[0]]) > max_km:
        j = int(np.argmax(probs[cand]))
    return top_preds[j], int(cand[j])


@pytest.mark.parametrize("final", ["farthest", "nearest"])
def test_refine_matches_reference(final: str, tmp_path: Path) -> None:
    latlon, labels, emb, cents = _world(0)
    cfg = RefineConfig(final=final)
    index = build_index(torch.from_numpy(emb), latlon, labels, len(cents), cfg, tmp_path / "idx")
    clusters = _ref_clusters(latlon, labels, cfg.optics_min_samples, cfg.optics_xi)
    # the same clusters (noise dropped) as the reference
    assert len(index.proto_cell) == sum(len(v) for v in clusters.values())
    for c, cl in clusters.items():
        a, b = index.cell_offsets[c], index.cell_offsets[c + 1]
        got = sorted(tuple(sorted(map(tuple, np.round(index.latlon[index.offsets[m]:index.offsets[m + 1]], 9).tolist())))
                     for m in range(a, b))
        want = sorted(tuple(sorted(map(tuple, np.round(latlon[m], 9).tolist()))) for m in cl)
        assert got == want
    rng = np.random.default_rng(1)
    queries = emb[rng.choice(len(emb), 40, replace=False)] + rng.normal(0, 0.2, (40, 16)).astype(np.float32)
    logits = rng.normal(0, 2, (40, len(cents)))
    probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
    out = refine(torch.from_numpy(queries), torch.from_numpy(probs), torch.from_numpy(cents).float(), index, cfg)
    for i in range(40):
        want_ll, want_cell = _ref_forward(queries[i], probs[i], cents, clusters, latlon, emb, farthest=final == "farthest")
        assert out["cell"][i].item() == want_cell
        assert np.allclose(out["latlon"][i].numpy(), want_ll, atol=1e-4)
    assert out["changed"].any() and (~out["changed"]).any()
    # the files: a memory-mapped copy gives the same answers
    loaded = RefinementIndex.load(tmp_path / "idx")
    assert isinstance(loaded.embeddings, np.memmap) and isinstance(loaded.prototypes, np.memmap)
    again = refine(torch.from_numpy(queries), torch.from_numpy(probs), torch.from_numpy(cents).float(), loaded, cfg)
    assert torch.equal(again["latlon"], out["latlon"]) and torch.equal(again["cell"], out["cell"])


def test_cancelled_refinement_keeps_the_top_cells_location() -> None:
    """Beyond cancel_km the guess is the TOP cell's retrieved location and the reported cell is the
    top cell (the old code returned the top centroid with the other candidate's cell number)."""
    latlon, labels, emb, cents = _world(2)
    cfg = RefineConfig(final="nearest")
    index = build_index(emb, latlon, labels, len(cents), cfg)
    tokyo = int(np.argmin(haversine_np(cents, np.array([35.68, 139.69]))))
    paris = int(np.argmin(haversine_np(cents, np.array([48.85, 2.35]))))
    q = emb[labels == tokyo][:1]  # looks like Tokyo ...
    probs = np.full((1, len(cents)), 0.01)
    probs[0, paris], probs[0, tokyo] = 0.6, 0.35  # ... but the classifier prefers Paris
    probs /= probs.sum()
    r = refine(torch.from_numpy(q), torch.from_numpy(probs), torch.from_numpy(cents).float(), index, cfg)
    assert bool(r["cancelled"][0]) and int(r["cell"][0]) == paris
    ll = r["latlon"][0].numpy()
    assert haversine_np(ll, cents[paris]) < 300  # a Paris training image's location, not Tokyo, not the centroid
    assert any(np.allclose(ll, p, atol=1e-5) for p in latlon[labels == paris])
    # with a generous cancel distance the refinement moves to Tokyo
    r = refine(torch.from_numpy(q), torch.from_numpy(probs), torch.from_numpy(cents).float(), index,
               RefineConfig(cancel_km=20000))
    assert int(r["cell"][0]) == tokyo and not bool(r["cancelled"][0])


def test_locate_reports_the_cell_of_its_location() -> None:
    """locate / the demo: the guess's cell (number, name, shape) is the cell whose location is printed."""
    from pretrainlab.geo.config import GeoConfig
    from pretrainlab.geo.pipeline import Locator, locate
    from pretrainlab.geo.semantic_geocells import Geocells

    latlon, labels, emb, cents = _world(2)
    cfg = GeoConfig()
    index = build_index(emb, latlon, labels, len(cents), cfg.refine)
    tokyo = int(np.argmin(haversine_np(cents, np.array([35.68, 139.69]))))
    paris = int(np.argmin(haversine_np(cents, np.array([48.85, 2.35]))))
    logits = torch.full((1, len(cents)), -4.0)
    logits[0, paris], logits[0, tokyo] = 2.0, 1.5

    class Task:
        centroids = torch.from_numpy(cents).float()

        def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"embedding": torch.from_numpy(emb[labels == tokyo][:1]), "geocell": logits}

    names = [f"cell{c}" for c in range(len(cents))]
    cells = Geocells(cents, names, ["XX"] * len(cents), [""] * len(cents), np.bincount(labels))
    loc = Locator(Task(), cfg, cells, index, Path("."))
    res = locate(loc, torch.zeros(3, 8, 8, dtype=torch.uint8))
    g = res["guess"]
    assert g["cancelled"] and g["cell"] == paris and g["name"] == f"cell{paris}"
    assert haversine_np(np.array([g["lat"], g["lon"]]), cents[g["cell"]]) < 300
    assert res["top"][0]["cell"] == paris and len(res["top"]) == 5
    with pytest.raises(ValueError, match="top"):
        locate(loc, torch.zeros(3, 8, 8, dtype=torch.uint8), k=0)
