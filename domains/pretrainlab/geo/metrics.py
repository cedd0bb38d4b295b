"""Geolocation metrics (PIGEON Sec. 5): % of guesses within 1 / 25 / 200 / 750 / 2500 km
(street / city / region / country / continent), median error, GeoScore and country accuracy.

GeoScore is GeoGuessr's score, ``round(5000 * exp(-d / 1492.7))`` per guess, averaged.
"""

from __future__ import annotations

import numpy as np

from pretrainlab.geo.haversine import haversine_np

THRESHOLDS_KM = (1.0, 25.0, 200.0, 750.0, 2500.0)  # PIGEON Table 1 columns
GEOSCORE_MAX = 5000.0  # GeoGuessr
GEOSCORE_SCALE_KM = 1492.7  # GeoGuessr world-map decay (PIGEON Sec. 5)


def threshold_key(km: float) -> str:
    return f"acc@{km:g}km"


def geoscore(dist_km: np.ndarray) -> np.ndarray:
    """Per-guess GeoGuessr score ``(N,)``."""
    return np.round(GEOSCORE_MAX * np.exp(-np.asarray(dist_km, dtype=np.float64) / GEOSCORE_SCALE_KM))


def geo_metrics(pred: np.ndarray, true: np.ndarray, thresholds: tuple[float, ...] = THRESHOLDS_KM,
                pred_country: list[str] | None = None, true_country: list[str] | None = None) -> dict[str, float]:
    """``pred, true (N, 2)`` (lat, lon degrees) -> ``{"acc@1km": %, ..., "median_km", "geoscore", "country_acc"}``."""
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 2 or pred.shape[1] != 2:
        raise ValueError(f"expected two (N, 2) arrays, got {pred.shape} and {true.shape}")
    d = haversine_np(pred, true)
    out = {threshold_key(t): float(100.0 * np.mean(d <= t)) for t in thresholds}
    out["median_km"] = float(np.median(d))
    out["geoscore"] = float(np.mean(geoscore(d)))
    if pred_country is not None and true_country is not None:
        out["country_acc"] = float(100.0 * np.mean([p == t for p, t in zip(pred_country, true_country)]))
    return out
