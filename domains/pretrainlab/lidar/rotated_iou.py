"""Rotated-box IoU in bird's-eye view and 3D (the overlap of KITTI's evaluation and of NMS).

Exact convex-polygon intersection of two rotated rectangles, vectorised over pairs in numpy:
the intersection polygon's vertices are the corners of each box inside the other plus the
edge-edge crossings; they are sorted by angle around their centroid and the shoelace formula
gives the area. Tested against shapely's exact polygon intersection.
"""

from __future__ import annotations

import numpy as np


def bev_corners(boxes: np.ndarray) -> np.ndarray:
    """``(N, 7)`` boxes (x y z l w h yaw) -> ``(N, 4, 2)`` BEV corners, counter-clockwise."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    c, s = np.cos(b[:, 6]), np.sin(b[:, 6])
    dx = np.array([0.5, -0.5, -0.5, 0.5])[None] * b[:, 3:4]
    dy = np.array([0.5, 0.5, -0.5, -0.5])[None] * b[:, 4:5]
    x = b[:, 0:1] + c[:, None] * dx - s[:, None] * dy
    y = b[:, 1:2] + s[:, None] * dx + c[:, None] * dy
    return np.stack([x, y], -1)


def _inside(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """``pts (P, K, 2)`` inside convex CCW ``poly (P, 4, 2)`` -> ``(P, K)`` bool (boundary counts)."""
    a = poly
    b = np.roll(poly, -1, axis=1)
    e = (b - a)[:, None]  # (P, 1, 4, 2)
    r = pts[:, :, None] - a[:, None]  # (P, K, 4, 2)
    cross = e[..., 0] * r[..., 1] - e[..., 1] * r[..., 0]
    return (cross >= -1e-9).all(-1)


def bev_intersection_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection areas of box pairs ``a[i], b[i]`` (both ``(P, 7)``) -> ``(P,)``."""
    ca, cb = bev_corners(a), bev_corners(b)
    if len(ca) == 0:
        return np.zeros(0)
    with np.errstate(all="ignore"):
        return _clip_area(ca, cb)


def _clip_area(ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
    P = len(ca)
    cand = [ca, cb]
    valid = [_inside(ca, cb), _inside(cb, ca)]
    # edge-edge crossings (4 x 4)
    p, r = ca[:, :, None], (np.roll(ca, -1, 1) - ca)[:, :, None]  # (P, 4, 1, 2)
    q, s = cb[:, None], (np.roll(cb, -1, 1) - cb)[:, None]  # (P, 1, 4, 2)
    rxs = r[..., 0] * s[..., 1] - r[..., 1] * s[..., 0]  # (P, 4, 4)
    qp = q - p
    t = (qp[..., 0] * s[..., 1] - qp[..., 1] * s[..., 0]) / rxs
    u = (qp[..., 0] * r[..., 1] - qp[..., 1] * r[..., 0]) / rxs
    ok = (np.abs(rxs) > 1e-12) & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
    x = p + np.where(ok, t, 0.0)[..., None] * r
    cand.append(x.reshape(P, 16, 2))
    valid.append(ok.reshape(P, 16))
    pts = np.concatenate(cand, 1)  # (P, 24, 2)
    v = np.concatenate(valid, 1)
    n = v.sum(1)
    cen = (pts * v[..., None]).sum(1) / np.maximum(n, 1)[:, None]
    ang = np.arctan2(pts[..., 1] - cen[:, None, 1], pts[..., 0] - cen[:, None, 0])
    ang = np.where(v, ang, np.inf)
    order = np.argsort(ang, axis=1)
    pts = np.take_along_axis(pts, order[..., None], 1)
    v = np.take_along_axis(v, order, 1)
    first = pts[:, :1]
    pts = np.where(v[..., None], pts, first)  # invalid -> first valid point: zero-area segments
    nxt = np.roll(pts, -1, 1)
    area = 0.5 * np.abs((pts[..., 0] * nxt[..., 1] - pts[..., 1] * nxt[..., 0]).sum(1))
    return np.where(n >= 3, area, 0.0)


def bev_intersection_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection areas of every ground-plane rectangle of ``a (N, 5)`` with every one of ``b (M, 5)``.

    Rectangles are ``(x, y, l, w, yaw)`` (``l`` along the heading ``yaw``) -> ``(N, M)``; pairs whose
    circumscribed circles do not touch are skipped (area 0).
    """
    a = np.asarray(a, np.float64).reshape(-1, 5)
    b = np.asarray(b, np.float64).reshape(-1, 5)
    N, M = len(a), len(b)
    if N == 0 or M == 0:
        return np.zeros((N, M))
    ia, ib = np.repeat(np.arange(N), M), np.tile(np.arange(M), N)
    ra, rb = 0.5 * np.hypot(a[:, 2], a[:, 3]), 0.5 * np.hypot(b[:, 2], b[:, 3])
    near = np.hypot(a[ia, 0] - b[ib, 0], a[ia, 1] - b[ib, 1]) <= ra[ia] + rb[ib]
    inter = np.zeros(N * M)
    if near.any():
        def as7(r: np.ndarray) -> np.ndarray:
            return np.c_[r[:, :2], np.zeros(len(r)), r[:, 2:4], np.ones(len(r)), r[:, 4]]

        inter[near] = bev_intersection_pairs(as7(a[ia[near]]), as7(b[ib[near]]))
    return inter.reshape(N, M)


def iou_matrix(a: np.ndarray, b: np.ndarray, mode: str = "bev") -> np.ndarray:
    """IoU of every box of ``a (N, 7)`` with every box of ``b (M, 7)`` -> ``(N, M)``; ``mode`` bev | 3d."""
    a = np.asarray(a, np.float64).reshape(-1, 7)
    b = np.asarray(b, np.float64).reshape(-1, 7)
    N, M = len(a), len(b)
    if N == 0 or M == 0:
        return np.zeros((N, M))
    inter = bev_intersection_matrix(a[:, [0, 1, 3, 4, 6]], b[:, [0, 1, 3, 4, 6]])
    if mode == "bev":
        area_a, area_b = a[:, 3] * a[:, 4], b[:, 3] * b[:, 4]
        return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)
    if mode != "3d":
        raise ValueError(f"mode must be bev or 3d, got {mode}")
    za0, za1 = a[:, 2] - a[:, 5] / 2, a[:, 2] + a[:, 5] / 2
    zb0, zb1 = b[:, 2] - b[:, 5] / 2, b[:, 2] + b[:, 5] / 2
    hz = np.clip(np.minimum(za1[:, None], zb1[None]) - np.maximum(za0[:, None], zb0[None]), 0, None)
    inter3 = inter * hz
    va, vb = a[:, 3] * a[:, 4] * a[:, 5], b[:, 3] * b[:, 4] * b[:, 5]
    return inter3 / np.maximum(va[:, None] + vb[None] - inter3, 1e-9)


def rotated_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int = 100) -> np.ndarray:
    """Greedy NMS with rotated BEV IoU; returns kept indices in descending score order."""
    order = np.argsort(-scores)
    if len(order) == 0:
        return order
    iou = iou_matrix(boxes[order], boxes[order], "bev")
    keep: list[int] = []
    suppressed = np.zeros(len(order), bool)
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) >= max_keep:
            break
        suppressed |= iou[i] > iou_threshold
    return order[np.array(keep, dtype=np.int64)]
