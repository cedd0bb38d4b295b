"""Torch datasets over the on-disk formats: pre-training scan pairs and labelled detection frames.

Both are streamed: the dataset holds file names only and reads one scan (and its label / calib /
flow) per item, so a DataLoader worker decodes lazily and a split never sits in memory. What is
decoded (points cropped / FOV-filtered, labels, flow) is kept up to ``data.cache_mb`` per process
(``core.data.ItemCache``, least recently used out first), so a small label subset read for many
epochs is decoded once; the random part of an item is drawn afresh on every read. Every scan
is cropped to the configured range and brought to a fixed ``max_points`` by random subsampling or
by repeating random points (a repeated point changes nothing in a max-pooled pillar), so batches
are dense tensors. Detection frames keep only the points inside the camera's field of view
(OpenPCDet ``FOV_POINTS_ONLY``, with each frame's own image size): objects outside the image carry
no label in KITTI, and a detector that saw their points would learn them as background.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pretrainlab.core.data import DataError, ItemCache
from pretrainlab.lidar.config import DataConfig
from pretrainlab.lidar.formats import (
    CLASSES,
    LabelledSplit,
    ScanSequence,
    consecutive_pairs,
    crop_to_range,
    fov_mask,
    list_sequences,
    read_velodyne_bin,
)
from pretrainlab.lidar.temporal_flow import flow_file, icp_transform, read_flow


def _rng() -> np.random.Generator:
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


def fixed_size(n_in: int, n_out: int, rng: np.random.Generator) -> np.ndarray:
    """Indices that subsample (without replacement) or repeat-pad ``n_in`` points to ``n_out``."""
    if n_in >= n_out:
        return rng.choice(n_in, n_out, replace=False)
    return np.concatenate([np.arange(n_in), rng.integers(0, n_in, n_out - n_in)])


def crop_disk(pts: np.ndarray, radius: float, z_range: tuple[float, float]) -> np.ndarray:
    """Boolean mask of points within ``radius`` (ground plane) and the z range."""
    return (np.hypot(pts[:, 0], pts[:, 1]) < radius) & (pts[:, 2] >= z_range[0]) & (pts[:, 2] < z_range[1])


def _dense(pts: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(points (n, 4), mask (n,), source index (n,))``; an empty input gives an all-padding item."""
    if len(pts) == 0:
        return np.zeros((n, 4), np.float32), np.zeros(n, bool), np.zeros(n, np.int64)
    sel = fixed_size(len(pts), n, rng)
    return pts[sel], np.ones(n, bool), sel


class PretrainPairs(Dataset):
    """Consecutive scans ``(t-1, t)`` of every sequence under ``root`` with the scene flow of ``t-1``.

    Layouts (``formats.list_sequences``): KITTI odometry / SemanticKITTI, KITTI raw, KITTI-360.
    Item: ``{"points", "mask", "prev_points", "prev_mask", "prev_flow"}`` (``(N,4)``, ``(N,)``, ``(N,3)``).
    Flow (``data.flow_source``): ``file`` reads ``flow/<stem>.npy`` (or ``.npz``) beside the scan folder
    (or under ``data.flow_root``); ``icp`` estimates the ego motion of each pair by ICP (the 4x4
    transform is cached, not the flow). With ``need_flow=False`` and no sequence, the labelled scans
    of ``split`` serve as single frames (prev = the scan itself, zero flow: enough for the spatial
    branch).
    """

    def __init__(self, root: Path, cfg: DataConfig, need_flow: bool = True, split: str = "train") -> None:
        self.root, self.cfg = Path(root), cfg
        self.pairs: list[tuple[Path, Path, ScanSequence | None]] = []
        for seq in list_sequences(self.root):
            self.pairs += [(a, b, seq) for a, b in consecutive_pairs(seq)]
        self.single: LabelledSplit | None = None
        if not self.pairs:
            if need_flow:
                raise DataError(self.root, "no pair of consecutive scans for the temporal branch (expected "
                                           "sequences/SS/velodyne/*.bin, <date>/<drive>_sync/velodyne_points/data/"
                                           "*.bin or data_3d_raw/<seq>/velodyne_points/data/*.bin)")
            self.single = LabelledSplit(self.root, split)
        r = cfg.pretrain_range
        self.radius = cfg.crop_radius_ratio * min(r[3] - r[0], r[4] - r[1]) / 2
        self._icp: dict[int, np.ndarray] = {}
        self.cache = ItemCache(cfg.cache_mb << 20)  # the decoded, cropped pair (``data.cache_mb``)

    def __len__(self) -> int:
        return len(self.single) if self.single is not None else len(self.pairs)

    def _flow(self, i: int, prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """``(index into prev or None for all points, flow (M, 3))`` of pair ``i``."""
        a, _, seq = self.pairs[i]
        if self.cfg.flow_source == "file":
            assert seq is not None
            return read_flow(flow_file(seq, a, self.root, self.cfg.flow_root), len(prev))
        if i not in self._icp:  # flow_source == "icp" (validated by the config)
            self._icp[i] = icp_transform(prev, cur)
        T = self._icp[i]
        return None, (prev[:, :3] @ T[:3, :3].T + T[:3, 3] - prev[:, :3]).astype(np.float32)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = _rng()
        cur, prev, flow = self.cache.get(i, lambda: self._decode(i))
        n = self.cfg.max_points
        out: dict[str, torch.Tensor] = {}
        p, m, _ = _dense(cur, n, rng)
        out["points"], out["mask"] = torch.from_numpy(p), torch.from_numpy(m)
        p, m, sel = _dense(prev, n, rng)
        out["prev_points"], out["prev_mask"] = torch.from_numpy(p), torch.from_numpy(m)
        out["prev_flow"] = torch.from_numpy(flow[sel])
        return out

    def _decode(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pair ``i`` inside the pre-training disk: current points, previous points and their flow."""
        z = (self.cfg.pretrain_range[2], self.cfg.pretrain_range[5])
        if self.single is not None:
            f = self.single[i]
            cur = prev = f.points
            idx, flow = None, np.zeros((len(prev), 3), np.float32)
            src = f.path
        else:
            a, b, _ = self.pairs[i]
            prev, cur = read_velodyne_bin(a), read_velodyne_bin(b)
            idx, flow = self._flow(i, prev, cur)
            src = a
        if idx is not None:
            prev = prev[idx]
        keep = crop_disk(prev, self.radius, z)
        if not keep.any():
            raise DataError(src, "no point of this scan lies inside the pre-training range")
        return cur[crop_disk(cur, self.radius, z)], prev[keep], flow[keep]


def detector_points(frame: Any, cfg: DataConfig) -> np.ndarray:
    """The points a detector sees: inside the detection range and (``cfg.fov_only``) the camera field of
    view. The same set, in the same order, as OpenPCDet's FOV filter followed by its range filter; the
    range is applied first only because it is the cheaper test (the FOV projection then runs on the
    points that remain)."""
    pts, _ = crop_to_range(frame.points, cfg.detect_range)
    if cfg.fov_only and frame.calib is not None and frame.image_shape is not None:
        pts = pts[fov_mask(pts, frame.calib, frame.image_shape)]
    return pts


def label_subset(n: int, fraction: float, seed: int = 0) -> np.ndarray:
    """The first ``ceil(fraction * n)`` of a seeded permutation (the 5 / 20 / 100 % label splits)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label_fraction must be in (0, 1], got {fraction}")
    k = max(1, int(np.ceil(fraction * n)))
    return np.sort(np.random.default_rng(seed).permutation(n)[:k])


class DetectionFrames(Dataset):
    """Labelled frames, read per item -> ``{"points" (N,4), "mask" (N,), "boxes" (K,7), "labels" (K,)}``.

    Points: inside the camera field of view (``cfg.fov_only``, the default) and the detection range;
    a frame with none there gives an all-padding item (mask False). Labels: the boxes of ``classes``
    (other KITTI types and DontCare are not targets, as in OpenPCDet), padded with label -1.
    """

    def __init__(self, split: LabelledSplit, cfg: DataConfig, classes: tuple[str, ...] = CLASSES) -> None:
        self.split, self.cfg, self.classes = split, cfg, classes
        self.cache = ItemCache(cfg.cache_mb << 20)  # the decoded frame (``data.cache_mb``), never its sampling

    def __len__(self) -> int:
        return len(self.split)

    def _decode(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frame ``i``'s detector points, padded boxes ``(K, 7)`` and labels ``(K,)`` (-1 = padding)."""
        f = self.split[i]
        K = self.cfg.max_objects
        boxes = np.zeros((K, 7), np.float32)
        labels = np.full(K, -1, np.int64)
        objs = [o for o in f.objects if o.cls in self.classes][:K]
        for j, o in enumerate(objs):
            boxes[j] = o.box
            labels[j] = self.classes.index(o.cls)
        return detector_points(f, self.cfg), boxes, labels

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        pts, boxes, labels = self.cache.get(i, lambda: self._decode(i))
        p, m, _ = _dense(pts, self.cfg.max_points, _rng())
        return {"points": torch.from_numpy(p), "mask": torch.from_numpy(m),
                "boxes": torch.from_numpy(boxes.copy()), "labels": torch.from_numpy(labels.copy())}
