"""Formula-level tests: rotated IoU vs exact polygons, NMS, equivariant gathering, the losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pretrainlab.lidar.rotated_iou import bev_corners, iou_matrix, rotated_nms


def _shapely_iou(a: np.ndarray, b: np.ndarray) -> float:
    from shapely.geometry import Polygon

    pa, pb = Polygon(bev_corners(a)[0]), Polygon(bev_corners(b)[0])
    inter = pa.intersection(pb).area
    return inter / (pa.area + pb.area - inter)


def test_rotated_iou_matches_exact_polygon_intersection() -> None:
    rng = np.random.default_rng(0)
    a = np.c_[rng.uniform(-2, 2, (200, 2)), np.zeros(200), rng.uniform(0.5, 4, (200, 2)), np.ones(200),
              rng.uniform(-np.pi, np.pi, 200)]
    b = np.c_[rng.uniform(-2, 2, (200, 2)), np.zeros(200), rng.uniform(0.5, 4, (200, 2)), np.ones(200),
              rng.uniform(-np.pi, np.pi, 200)]
    ours = iou_matrix(a, b, "bev")
    for i in range(0, 200, 7):
        for j in range(0, 200, 11):
            assert ours[i, j] == pytest.approx(_shapely_iou(a[i], b[j]), abs=1e-6)


def test_iou_special_cases() -> None:
    box = np.array([[1.0, 2.0, 0.0, 4.0, 2.0, 1.5, 0.3]])
    assert iou_matrix(box, box, "bev")[0, 0] == pytest.approx(1.0)
    assert iou_matrix(box, box, "3d")[0, 0] == pytest.approx(1.0)
    shifted = box.copy()
    shifted[0, 2] += 0.75  # half the height: 3D IoU = 0.75 / 2.25 = 1/3
    assert iou_matrix(box, shifted, "3d")[0, 0] == pytest.approx(1 / 3)
    rot = box.copy()
    rot[0, 6] += math.pi  # a box rotated by pi is the same rectangle
    assert iou_matrix(box, rot, "bev")[0, 0] == pytest.approx(1.0)
    far = box.copy()
    far[0, 0] += 50
    assert iou_matrix(box, far, "bev")[0, 0] == 0.0


def test_rotated_nms_keeps_best_of_overlapping() -> None:
    boxes = np.array([[0, 0, 0, 4, 2, 1.5, 0], [0.2, 0, 0, 4, 2, 1.5, 0.05], [10, 0, 0, 4, 2, 1.5, 0]], float)
    keep = rotated_nms(boxes, np.array([0.5, 0.9, 0.3]), 0.1)
    assert list(keep) == [1, 2]


def test_gather_follows_the_points_under_rigid_transforms() -> None:
    """Equivariance of reading features at point locations: a BEV map transformed with the points."""
    from pretrainlab.lidar.pillar_backbone import gather_bev
    from pretrainlab.lidar.rigid_transforms import apply_xy

    rng = [-8.0, -8.0, -3.0, 8.0, 8.0, 1.0]
    H = W = 64
    ys, xs = torch.meshgrid(torch.linspace(-8, 8, H), torch.linspace(-8, 8, W), indexing="ij")

    def field(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.sin(0.4 * x) + torch.cos(0.3 * y)

    xy = torch.rand(1, 50, 2) * 8 - 4
    p = {"theta": torch.tensor([math.pi / 2]), "scale": torch.tensor([1.0]), "flip": torch.tensor([1.0]),
         "tx": torch.tensor([0.0]), "ty": torch.tensor([0.0])}
    moved = apply_xy(xy, p)
    # transformed map: value at q = field(T^-1 q); T = rot90 o flip_y -> T^-1 (x, y) = (y, x)
    bev2 = field(ys, xs)[None, None]
    f2 = gather_bev(bev2, moved, rng)[0, :, 0]
    expect = field(xy[0, :, 0], xy[0, :, 1])
    assert torch.allclose(f2, expect, atol=0.05)


def test_rigid_transform_of_boxes_matches_points() -> None:
    from pretrainlab.lidar.formats import box_corners
    from pretrainlab.lidar.rigid_transforms import apply_boxes, apply_points, sample_transforms

    torch.manual_seed(0)
    box = torch.tensor([[[5.0, 2.0, -1.0, 4.0, 2.0, 1.5, 0.4]]])
    p = sample_transforms(1, (-1.5, 1.5), 0.2, (0.95, 1.05), 1.0, "cpu")
    corners = torch.from_numpy(box_corners(box[0, 0].numpy())).float()[None]
    moved = apply_points(torch.cat([corners, torch.zeros(1, 8, 1)], -1), p)[0, :, :3]
    nb = apply_boxes(box, p)[0, 0].numpy()
    got = torch.from_numpy(box_corners(nb)).float()
    # same set of corners (the order may change under the flip)
    d = torch.cdist(moved, got)
    assert d.min(1).values.max() < 1e-4


def test_total_loss_uses_paper_weights(lidar_smoke) -> None:
    from torch.utils.data import default_collate

    from pretrainlab.lidar import api
    from pretrainlab.lidar.datasets import PretrainPairs
    from pretrainlab.lidar.essl3d import ESSL3DTask

    cfg = api.load("essl3d", "smoke")
    assert (cfg.weights.pnce, cfg.weights.ce, cfg.weights.flow) == (0.01, 1.0, 300.0)
    task = ESSL3DTask(cfg)
    ds = PretrainPairs(lidar_smoke, cfg.data)
    out = task(default_collate([ds[0], ds[1]]))
    total = 0.01 * out["pnce"] + 1.0 * out["ce"] + 300.0 * out["flow"]
    assert out["loss"].item() == pytest.approx(total.item(), rel=1e-5)
    assert cfg.spatial.rotation_bins == 10


def test_flow_loss_is_elementwise_mse_of_normalised_features() -> None:
    import torch.nn.functional as Fn

    from pretrainlab.core.losses import byol_loss

    a, b = torch.randn(30, 16), torch.randn(30, 16)
    mse = Fn.mse_loss(Fn.normalize(a, dim=-1), Fn.normalize(b, dim=-1))
    assert (byol_loss(a, b) / 16).item() == pytest.approx(mse.item(), rel=1e-5)


def test_relative_rotation_bins() -> None:
    from pretrainlab.core.losses import rotation_bins

    d = torch.tensor([-math.pi + 1e-3, -0.01, 0.01, math.pi - 1e-3])
    assert rotation_bins(d, 10).tolist() == [0, 4, 5, 9]


def test_gaussian_radius_and_targets() -> None:
    from pretrainlab.lidar import api
    from pretrainlab.lidar.centerpoint_head import DetectorTask, gaussian_radius

    r = gaussian_radius(torch.tensor([5.0, 1.0]), torch.tensor([2.0, 1.0]), 0.1)
    assert (r > 0).all() and r[0] > r[1]
    task = DetectorTask(api.load("detect", "smoke"))
    boxes = torch.tensor([[[10.0, 0.0, -1.0, 4.0, 1.8, 1.5, 0.3]]])
    heat, _idx, reg, valid = task.targets(boxes, torch.tensor([[0]]), 32, 32)
    assert valid.all() and heat.max() == 1.0 and heat[0, 1:].max() == 0
    assert reg[0, 0, 6].item() == pytest.approx(math.sin(0.3), abs=1e-6)


def test_targets_equal_the_dense_reference() -> None:
    """The heat map built from the valid boxes only equals, bit for bit, the dense construction over every
    padded slot: Gaussian (B, K, H, W) x one-hot class, max over K (overlapping boxes of one class, padding,
    boxes outside the map and boxes of several classes included)."""
    import torch.nn.functional as F

    from pretrainlab.lidar import api
    from pretrainlab.lidar.centerpoint_head import DetectorTask, gaussian_radius

    task = DetectorTask(api.load("detect", "smoke"))
    cfg = task.cfg
    g = torch.Generator().manual_seed(0)
    B, K, H, W, nc = 3, 12, 32, 32, len(cfg.head.classes)
    r, v = cfg.data.detect_range, cfg.backbone.voxel_size
    boxes = torch.cat([torch.rand(B, K, 1, generator=g) * (r[3] - r[0] + 8) + r[0] - 4,
                       torch.rand(B, K, 1, generator=g) * (r[4] - r[1] + 8) + r[1] - 4,
                       torch.rand(B, K, 1, generator=g) - 1, torch.rand(B, K, 3, generator=g) * 4 + 0.5,
                       torch.rand(B, K, 1, generator=g) * 6 - 3], -1)
    boxes[0, 1, :2] = boxes[0, 0, :2] + 0.3  # two overlapping boxes
    labels = torch.randint(0, nc, (B, K), generator=g)
    labels[:, K - 4:] = -1  # padding
    heat, _idx, _reg, valid = task.targets(boxes, labels, H, W)
    # the dense construction the head used before
    ix, iy = ((boxes[..., 0] - r[0]) / v).floor().long(), ((boxes[..., 1] - r[1]) / v).floor().long()
    rad = gaussian_radius(boxes[..., 3] / v, boxes[..., 4] / v, cfg.head.min_overlap).floor().clamp_min(cfg.head.min_radius)
    sigma = (2 * rad + 1) / 6
    dx2 = (torch.arange(W, dtype=boxes.dtype)[None, None, None, :] - ix[..., None, None].to(boxes.dtype)) ** 2
    dy2 = (torch.arange(H, dtype=boxes.dtype)[None, None, :, None] - iy[..., None, None].to(boxes.dtype)) ** 2
    dense = torch.exp(-(dx2 + dy2) / (2 * sigma[..., None, None] ** 2)) * valid[..., None, None]
    onehot = F.one_hot(labels.clamp_min(0), nc).to(boxes.dtype) * valid[..., None]
    ref = (dense[:, :, None] * onehot[..., None, None]).amax(1)
    assert 0 < valid.sum() < (labels >= 0).sum() and heat.max() == 1.0
    assert torch.equal(heat, ref)
