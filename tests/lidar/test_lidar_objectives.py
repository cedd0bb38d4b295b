"""The paper's objectives as specified, and training that only sees labelled space.

- Spatial branch (paper Sec. 3.2): the contrastive pair differs by translation / scale / flip only;
  the classification pair by a pure rotation whose bin is the label.
- FOV: every object whose points the detector trains on carries a label (OpenPCDet FOV_POINTS_ONLY).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pretrainlab.lidar import api


class _Recorder(torch.nn.Module):
    """A stand-in backbone that records the views it is given and returns a constant BEV map."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.views: list[torch.Tensor] = []

    def forward(self, points: torch.Tensor, mask: torch.Tensor, pc_range: list[float]) -> torch.Tensor:
        self.views.append(points.detach().clone())
        return torch.zeros(points.shape[0], 8, 8, 8) + self.w


def _spatial_views(seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor], dict, torch.Tensor]:
    import pretrainlab.lidar.spatial_equivariance as S

    cfg = api.load("spatial", "smoke").spatial
    branch = S.SpatialBranch(cfg, 8)
    torch.manual_seed(seed)
    B, N = 6, 300
    pts = torch.cat([torch.rand(B, N, 2) * 16 - 8, torch.rand(B, N, 1) - 2, torch.rand(B, N, 1)], -1)
    rec = _Recorder()
    targets = {}
    orig = S.equivariance_classification_loss

    def spy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        targets["bins"] = target.clone()
        return orig(logits, target)

    S.equivariance_classification_loss = spy
    try:
        branch(rec, torch.nn.Identity(), pts, torch.ones(B, N, dtype=torch.bool), [-12.8, -12.8, -3, 12.8, 12.8, 1])
    finally:
        S.equivariance_classification_loss = orig
    views = rec.views[0].chunk(3)
    return pts, list(views), targets, torch.tensor(cfg.rotation_range)


def _fit_affine(a: torch.Tensor, b: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares 2x2 ``A`` and ``t`` with ``b = a @ A.T + t`` (per scan)."""
    X = np.c_[a.numpy(), np.ones(len(a))]
    sol, *_ = np.linalg.lstsq(X, b.numpy(), rcond=None)
    return sol[:2].T, sol[2]


def test_contrastive_pair_differs_by_translation_scale_flip_only() -> None:
    pts, (v1, v2, _v3), _, _ = _spatial_views()
    for b in range(len(pts)):
        A, _t = _fit_affine(v1[b, :, :2].double(), v2[b, :, :2].double())
        # no rotation: a diagonal map (scale, possibly one axis negated by a flip)
        assert abs(A[0, 1]) < 1e-4 and abs(A[1, 0]) < 1e-4, A
        assert 0.9 < abs(A[0, 0]) < 1.11 and abs(abs(A[0, 0]) - abs(A[1, 1])) < 1e-4


def test_classification_pair_is_a_pure_rotation_labelled_by_its_bin() -> None:
    pts, (v1, _v2, v3), targets, rng = _spatial_views(1)
    lo, hi = float(rng[0]), float(rng[1])
    for b in range(len(pts)):
        A, t = _fit_affine(v1[b, :, :2].double(), v3[b, :, :2].double())
        assert np.allclose(A @ A.T, np.eye(2), atol=1e-4) and np.linalg.det(A) > 0  # a rotation, no flip / scale
        assert np.allclose(t, 0, atol=1e-4)  # about the sensor
        np.testing.assert_allclose(v3[b, :, 2:], v1[b, :, 2:], atol=1e-6)  # z and intensity unchanged
        theta = math.atan2(A[1, 0], A[0, 0])
        assert lo <= theta < hi
        assert int(targets["bins"][b]) == min(9, math.floor((theta - lo) / (hi - lo) * 10))


def test_range_bins_cover_the_rotation_range() -> None:
    from pretrainlab.lidar.spatial_equivariance import range_bins

    lo, hi = -math.pi / 2, math.pi / 2
    th = torch.tensor([lo, lo + 1e-6, -1e-6, 0.0, hi - 1e-6])
    assert range_bins(th, lo, hi, 10).tolist() == [0, 0, 4, 5, 9]


@pytest.mark.parametrize("fov_only", [True, False])
def test_every_object_the_detector_sees_is_labelled(fov_only: bool) -> None:
    """Points the detector trains on that belong to an unlabelled car / pedestrian / cyclist would teach it
    that such objects are background: with the camera-FOV rule (default) there are none; without it
    (the old behaviour) there are."""
    from pretrainlab.lidar.formats import Calib, Frame

    cfg = api.load("detect", "tiny", [f"data.fov_only={str(fov_only).lower()}"])
    unlabelled = labelled_seen = 0
    for sc in api.simulated_scans(6, columns=512, seed=3):
        pts = np.c_[sc.points, sc.instance.astype(np.float32)]  # carry the actor id through the crops
        frame = Frame(pts, sc.objects, Calib.default(), Path("sim"), image_shape=(375, 1242))
        seen = api.model_points(frame, cfg)
        ids, counts = np.unique(seen[:, 4].astype(int), return_counts=True)
        objects = {int(i) for i, c in zip(ids, counts) if i >= 0 and c >= 5}
        labels = set(sc.object_actor)
        classes = {i for i in objects if sc.kinds[i] in ("Car", "Pedestrian", "Cyclist")}
        unlabelled += len(classes - labels)
        labelled_seen += len(classes & labels)
    assert labelled_seen > 5
    if fov_only:
        assert unlabelled == 0
    else:
        assert unlabelled > 0


def test_detection_frames_keep_only_fov_points(lidar_smoke: Path) -> None:
    from pretrainlab.lidar.datasets import DetectionFrames
    from pretrainlab.lidar.formats import fov_mask

    cfg = api.load("detect", "smoke", ["data.max_points=100000"])
    split = api.open_split(cfg, lidar_smoke, "train")
    item = DetectionFrames(split, cfg.data)[0]
    f = split[0]
    pts = item["points"][item["mask"]].numpy()
    assert fov_mask(pts, f.calib, f.image_shape).all()
    assert not fov_mask(f.points, f.calib, f.image_shape).all()  # the scan itself reaches beyond the image


def test_detector_points_equal_openpcdet_order(lidar_smoke: Path) -> None:
    """Range first, then FOV (the cheap test first) keeps exactly OpenPCDet's points, in the same order:
    its FOV filter (``get_fov_flag``) then its range filter."""
    from pretrainlab.lidar.datasets import detector_points
    from pretrainlab.lidar.formats import crop_to_range, fov_mask

    cfg = api.load("detect", "smoke", [])
    split = api.open_split(cfg, lidar_smoke, "val")
    for i in range(len(split)):
        f = split[i]
        ref = crop_to_range(f.points[fov_mask(f.points, f.calib, f.image_shape)], cfg.data.detect_range)[0]
        got = detector_points(f, cfg.data)
        assert 0 < len(got) < len(f.points) and np.array_equal(got, ref)
        assert np.array_equal(api.model_points(f, cfg), ref)


def test_rotation_classifier_learns_a_pure_rotation() -> None:
    """On an asymmetric structure (an L of two walls) the branch learns the bin of the rotation between
    v1 and R(theta) v1 within ~100 steps (loss from ln 10 = 2.30 to well below it)."""
    from pretrainlab.lidar.essl3d import ESSL3DTask

    torch.manual_seed(0)
    task = ESSL3DTask(api.load("spatial", "smoke", ["weights.pnce=0"]))
    opt = torch.optim.AdamW(task.parameters(), lr=3e-3)
    B, N = 16, 256
    losses = []
    for _ in range(100):
        t = torch.rand(B, N, 1)
        wall = torch.cat([t * 16 - 8, torch.full_like(t, 3.0)], -1)
        stub = torch.cat([torch.full_like(t, 4.0), t * 4], -1)
        xy = torch.where(torch.rand(B, N, 1) < 0.7, wall, stub)
        out = task({"points": torch.cat([xy, torch.rand(B, N, 1) - 1.5, torch.rand(B, N, 1)], -1),
                    "mask": torch.ones(B, N, dtype=torch.bool)})
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["ce"].item())
    assert np.mean(losses[:5]) > 2.0 and np.mean(losses[-10:]) < 1.2


@pytest.mark.parametrize("kind", ["detect", "pretrain"])
def test_item_cache_changes_nothing_but_the_decoding(lidar_smoke: Path, kind: str) -> None:
    """With the decoded-item cache (data.cache_mb) every item, its random subsampling included, equals
    the item read without it, epoch after epoch; items are decoded once while they fit."""
    from pretrainlab.lidar.datasets import DetectionFrames, PretrainPairs

    recipe = "detect" if kind == "detect" else "essl3d"
    cfg_on, cfg_off = api.load(recipe, "smoke", []), api.load(recipe, "smoke", ["data.cache_mb=0"])
    if kind == "detect":
        split = api.open_split(cfg_on, lidar_smoke, "train")
        on, off = DetectionFrames(split, cfg_on.data), DetectionFrames(split, cfg_off.data)
    else:
        on, off = PretrainPairs(lidar_smoke, cfg_on.data), PretrainPairs(lidar_smoke, cfg_off.data)
    for _epoch in range(3):
        for i in range(len(on)):
            torch.manual_seed(i)
            a = on[i]
            torch.manual_seed(i)
            b = off[i]
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert on.cache.misses == len(on) > 0 and on.cache.hits == 2 * len(on) and len(off.cache) == 0
