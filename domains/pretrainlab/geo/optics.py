"""OPTICS clustering as scikit-learn computes it, in O(n) memory and a vectorised inner loop.

PIGEON's reference code clusters with ``sklearn.cluster.OPTICS(min_samples, xi)`` twice: on the
(lng, lat) coordinates of a geocell to split it (``cell.py``, Minkowski p = 2, ``max_eps = inf``),
and on a precomputed haversine matrix inside each geocell for retrieval refinement
(``prototype.py``). scikit-learn's reachability loop calls ``radius_neighbors`` once per point
(``max_eps = inf``: every point every time), which makes a 2,000-point cell take about a second
and a 50,000-point admin area hours. This module computes the SAME ordering, core distances,
reachability and predecessors (same tie-breaking: the smallest unprocessed index on ties, values
rounded to 15 decimals as scikit-learn does) with one vectorised distance row per step, then
extracts the clusters with scikit-learn's public ``cluster_optics_xi``. Parity with
``sklearn.cluster.OPTICS(...).labels_`` is tested in ``tests/geo/test_geo_optics.py``.

Shapes: ``X (n, d)`` points or ``D (n, n)`` a precomputed distance matrix -> labels ``(n,)`` int
(-1 = noise).
"""

from __future__ import annotations

import numpy as np

_DECIMALS = int(np.finfo(np.float64).precision)  # 15: scikit-learn rounds reachability to this


def optics_graph(X: np.ndarray | None = None, min_samples: int = 5, D: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(ordering, core_distances, reachability, predecessor)`` exactly as
    ``sklearn.cluster.compute_optics_graph`` with ``max_eps=inf`` and the Euclidean metric (``X``) or
    ``metric="precomputed"`` (``D``)."""
    if (X is None) == (D is None):
        raise ValueError("give exactly one of X (points) or D (a distance matrix)")
    if D is not None:
        D = np.asarray(D, dtype=np.float64)
        n = D.shape[0]
        if D.ndim != 2 or D.shape[1] != n:
            raise ValueError(f"D must be square, got {D.shape}")
    else:
        X = np.ascontiguousarray(np.asarray(X, dtype=np.float64))
        n = X.shape[0]
    if not 2 <= min_samples <= n:
        raise ValueError(f"min_samples must be in [2, n_samples={n}], got {min_samples}")
    if D is not None:
        core = np.partition(D, min_samples - 1, axis=1)[:, min_samples - 1].copy()
    else:
        from scipy.spatial import cKDTree

        dist, _ = cKDTree(X).query(X, k=min_samples)
        core = np.asarray(dist, dtype=np.float64).reshape(n, -1)[:, -1].copy()
    np.around(core, decimals=_DECIMALS, out=core)

    reach = np.full(n, np.inf)
    pred = np.full(n, -1, dtype=np.int64)
    order = np.empty(n, dtype=np.int64)
    # ``work`` orders the candidates as scikit-learn's argmin over the unprocessed points does:
    # finite reachability first, then unreached points (np.finfo.max) by index; processed = inf.
    work = np.full(n, np.finfo(np.float64).max)
    unproc = np.ones(n, dtype=bool)
    for i in range(n):
        p = int(np.argmin(work))
        unproc[p] = False
        work[p] = np.inf
        order[i] = p
        if not np.isfinite(core[p]):
            continue
        idx = np.flatnonzero(unproc)
        if idx.size == 0:
            continue
        if D is not None:
            d = D[p, idx]
        else:
            diff = X[idx] - X[p]
            d = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        rd = np.maximum(d, core[p])
        np.around(rd, decimals=_DECIMALS, out=rd)
        better = rd < reach[idx]
        up = idx[better]
        reach[up] = rd[better]
        pred[up] = p
        work[up] = rd[better]
    return order, core, reach, pred


def optics_labels(X: np.ndarray | None = None, min_samples: int = 5, xi: float = 0.05,
                  min_cluster_size: int | None = None, D: np.ndarray | None = None) -> np.ndarray:
    """Cluster labels ``(n,)`` (-1 = noise) equal to
    ``sklearn.cluster.OPTICS(min_samples=..., xi=..., min_cluster_size=...).fit(X).labels_``
    (``metric="precomputed"`` when ``D`` is given)."""
    from sklearn.cluster import cluster_optics_xi

    order, _core, reach, pred = optics_graph(X, min_samples, D)
    labels, _ = cluster_optics_xi(reachability=reach, predecessor=pred, ordering=order, min_samples=min_samples,
                                  min_cluster_size=min_cluster_size, xi=xi, predecessor_correction=True)
    return np.asarray(labels, dtype=np.int64)
