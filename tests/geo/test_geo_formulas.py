"""Formula-level tests of PIGEON's equations: haversine, haversine label smoothing, GeoScore and
the metrics, spherical centroids, retrieval refinement, synthetic captions."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pretrainlab.geo.haversine import EARTH_RADIUS_KM, haversine, haversine_np, pairwise_haversine
from pretrainlab.geo.haversine_smoothing import (
    haversine_smooth_labels,
    haversine_smoothing_loss,
    soft_cross_entropy,
)
from pretrainlab.geo.metrics import geo_metrics, geoscore

PARIS, LONDON = (48.8566, 2.3522), (51.5074, -0.1278)


def test_haversine_known_distances() -> None:
    quarter = haversine_np(np.array([0.0, 0.0]), np.array([0.0, 90.0]))
    assert quarter == pytest.approx(math.pi / 2 * EARTH_RADIUS_KM, rel=1e-9)
    pole = haversine_np(np.array([90.0, 0.0]), np.array([-90.0, 123.0]))
    assert pole == pytest.approx(math.pi * EARTH_RADIUS_KM, rel=1e-9)
    d = float(haversine_np(np.array(PARIS), np.array(LONDON)))
    assert 340 < d < 346  # ~343.5 km
    t = float(haversine(torch.tensor(PARIS), torch.tensor(LONDON)))
    assert t == pytest.approx(d, rel=1e-5)
    # antimeridian: 179.5 E to 179.5 W on the equator is ~111 km, not ~40000 km
    assert float(haversine_np(np.array([0.0, 179.5]), np.array([0.0, -179.5]))) == pytest.approx(111.3, abs=0.5)


def test_pairwise_matches_loop() -> None:
    x = torch.tensor([[10.0, 20.0], [-30.0, 150.0]])
    c = torch.tensor([[0.0, 0.0], [45.0, -100.0], [-33.9, 151.2]])
    d = pairwise_haversine(x, c)
    for i in range(2):
        for j in range(3):
            assert float(d[i, j]) == pytest.approx(float(haversine_np(x[i].numpy(), c[j].numpy())), rel=1e-4)


def test_smoothing_labels_follow_equation() -> None:
    x = torch.tensor([[48.8566, 2.3522]])
    c = torch.tensor([[48.8566, 2.3522], [51.5074, -0.1278], [40.4168, -3.7038]])
    tau = 75.0
    y = haversine_smooth_labels(x, c, tau, reference="min")
    d = pairwise_haversine(x, c)
    expected = torch.exp(-(d - d.min()) / tau)
    assert torch.allclose(y, expected)
    assert float(y[0, 0]) == pytest.approx(1.0)
    assert float(y[0, 1]) == pytest.approx(math.exp(-float(d[0, 1]) / tau), rel=1e-5)
    # the true cell is the nearest one here: both references agree
    assert torch.allclose(y, haversine_smooth_labels(x, c, tau, torch.tensor([0]), reference="true"))
    yn = haversine_smooth_labels(x, c, tau, normalize=True)
    assert float(yn.sum()) == pytest.approx(1.0)
    # smaller tau -> sharper labels
    assert float(haversine_smooth_labels(x, c, 10.0)[0, 1]) < float(y[0, 1])
    with pytest.raises(ValueError):
        haversine_smooth_labels(x, c, 0.0)


def test_soft_cross_entropy_reduces_to_cross_entropy() -> None:
    logits = torch.randn(4, 6)
    target = torch.tensor([0, 3, 5, 1])
    assert float(soft_cross_entropy(logits, F.one_hot(target, 6).float())) == pytest.approx(
        float(F.cross_entropy(logits, target)), rel=1e-5)
    # far-apart centroids (>> tau): haversine smoothing equals one-hot cross-entropy
    c = torch.tensor([[0.0, 0.0], [0.0, 90.0], [45.0, -90.0]])
    x = c[[0, 2]]
    lg = torch.randn(2, 3)
    loss = haversine_smoothing_loss(lg, x, c, 75.0)
    assert float(loss) == pytest.approx(float(F.cross_entropy(lg, torch.tensor([0, 2]))), rel=1e-4)


def test_geoscore_and_metrics() -> None:
    assert geoscore(np.array([0.0]))[0] == 5000
    assert geoscore(np.array([1492.7]))[0] == round(5000 / math.e)
    true = np.array([[0.0, 0.0]] * 4)
    pred = np.array([[0.0, 0.0], [0.0, 0.1], [0.0, 1.0], [0.0, 30.0]])  # 0, ~11, ~111, ~3340 km
    m = geo_metrics(pred, true, pred_country=["A", "A", "B", "C"], true_country=["A"] * 4)
    assert m["acc@1km"] == 25.0 and m["acc@25km"] == 50.0 and m["acc@200km"] == 75.0
    assert m["acc@750km"] == 75.0 and m["acc@2500km"] == 75.0
    assert m["country_acc"] == 50.0
    assert m["median_km"] == pytest.approx(float(np.median(haversine_np(pred, true))))
    with pytest.raises(ValueError):
        geo_metrics(pred[:2], true)


def test_spherical_mean_across_antimeridian() -> None:
    from pretrainlab.geo.semantic_geocells import spherical_mean

    m = spherical_mean(np.array([[10.0, 179.0], [10.0, -179.0]]))
    assert abs(abs(m[1]) - 180.0) < 1e-6 and m[0] == pytest.approx(10.0, abs=0.01)


def test_caption_follows_reference_generator() -> None:
    """pretrain_dataset.py _select_caption: the parts, their order and their probabilities."""
    from pretrainlab.geo.synthetic_captions import build_caption, compass, display_country

    meta = {"country_name": "France", "town": "Lyon", "region": "Auvergne", "climate": "Cfb",
            "drive_side": "right", "heading": "91", "month": "7"}

    class Always(random.Random):
        def random(self) -> float:  # every part kept
            return 0.999

    cap = build_caption(meta, Always(0))
    assert cap.startswith("A Street View photo close to the town of Lyon in the region of Auvergne in France.")
    assert "This location has a temperate oceanic climate (Cfb)." in cap
    assert "drive on the" not in cap  # the reference draws a driving sentence only without a climate sentence
    assert "facing east" in cap and "taken in July" in cap
    assert build_caption({**meta, "climate": ""}, Always(0)).count("drive on the right side of the road") == 1

    class Never(random.Random):
        def random(self) -> float:
            return 0.0

    assert build_caption(meta, Never(0)) == "A Street View photo in France."
    assert compass(359) == "north" and compass(45) == "north" and compass(46) == "east" and compass(225) == "south"
    assert build_caption(meta, Always(0), heading_offset=90.0).count("facing south") == 1  # a panorama's 2nd view
    assert display_country("United States") == "the United States" and display_country("France") == "France"
    yf = build_caption(meta, Always(0), style="yfcc")
    assert yf.startswith("A photo I took close to the town of Lyon in the region of Auvergne in France.")
    # the probabilities: region 0.6, town 0.4, month 0.3 over many draws
    rng = random.Random(0)
    caps = [build_caption(meta, rng) for _ in range(4000)]
    located = [c for c in caps if c.startswith("A Street View photo")]
    # the location sentence is dropped only with a climate sentence (0.4) and then with 0.3: 12 % of captions
    assert abs(1 - len(located) / len(caps) - 0.4 * 0.3) < 0.02
    assert abs(np.mean(["in the region of" in c for c in located]) - 0.6) < 0.03
    assert abs(np.mean(["close to the town" in c for c in located]) - 0.4) < 0.03
    assert abs(np.mean(["taken in July" in c for c in caps]) - 0.3) < 0.03
