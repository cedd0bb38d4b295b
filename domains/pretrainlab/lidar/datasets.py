"""Torch datasets over the on-disk formats: pre-training scan pairs and labelled detection frames.

Every scan is cropped to the configured range (the number of dropped points is counted and
reported) and brought to a fixed ``max_points`` by random subsampling or by repeating random
points (a repeated point changes nothing in a max-pooled pillar), so batches are dense tensors.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pretrainlab.core.data import DataError
from pretrainlab.lidar.config import DataConfig
from pretrainlab.lidar.formats import (
    CLASSES,
    Frame,
    crop_to_range,
    list_sequences,
    load_frames,
    read_velodyne_bin,
)
from pretrainlab.lidar.temporal_flow import icp_flow, read_flow


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


class PretrainPairs(Dataset):
    """Consecutive scans ``(t-1, t)`` of ``root/sequences/SS/velodyne`` with the flow of ``t-1``.

    Item: ``{"points", "mask", "prev_points", "prev_mask", "prev_flow"}`` (``(N,4)``, ``(N,)``, ``(N,3)``).
    With ``need_flow=False`` and no sequences, the labelled KITTI scans of ``split`` serve as single
    frames (prev = the scan itself, zero flow; enough for the spatial branch).
    """

    def __init__(self, root: Path, cfg: DataConfig, need_flow: bool = True, split: str = "train") -> None:
        self.root, self.cfg = Path(root), cfg
        self.pairs: list[tuple[Path, Path, Path | None]] = []
        for seq in list_sequences(self.root):
            files = sorted((seq / "velodyne").glob("*.bin"))
            for a, b in itertools.pairwise(files):
                flow = seq / "flow" / f"{a.stem}.npy"
                self.pairs.append((a, b, flow if flow.exists() else None))
        if not self.pairs:
            if need_flow:
                raise DataError(self.root, "no scan sequences (expected sequences/SS/velodyne/NNNNNN.bin with >= 2 scans) "
                                           "for the temporal branch")
            frames = load_frames(self.root, split)
            self.pairs = [(f.path, f.path, None) for f in frames]
            self.single = True
        else:
            self.single = False
        r = cfg.pretrain_range
        self.radius = cfg.crop_radius_ratio * min(r[3] - r[0], r[4] - r[1]) / 2
        self.n_cropped = 0
        self._icp: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    def _flow(self, i: int, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        a, _, f = self.pairs[i]
        if self.single:
            return np.zeros((len(prev), 3), np.float32)
        if self.cfg.flow_source == "file":
            if f is None:
                raise DataError(a, "no flow file for this scan (sequences/SS/flow/NNNNNN.npy); use data.flow_source=icp")
            return read_flow(f, len(prev))
        if self.cfg.flow_source == "icp":
            if i not in self._icp:
                self._icp[i] = icp_flow(prev, cur)
            return self._icp[i]
        raise ValueError(f"unknown data.flow_source '{self.cfg.flow_source}' (file | icp)")

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        a, b, _ = self.pairs[i]
        prev, cur = read_velodyne_bin(a), read_velodyne_bin(b)
        flow = self._flow(i, prev, cur)
        z = (self.cfg.pretrain_range[2], self.cfg.pretrain_range[5])
        rng = _rng()
        out = {}
        for name, pts, fl in (("points", cur, None), ("prev_points", prev, flow)):
            keep = crop_disk(pts, self.radius, z)
            if not keep.any():
                raise DataError(a if name == "prev_points" else b, "no points inside the pre-training range")
            p = pts[keep]
            sel = fixed_size(len(p), self.cfg.max_points, rng)
            out[name] = torch.from_numpy(p[sel])
            out["mask" if name == "points" else "prev_mask"] = torch.ones(self.cfg.max_points, dtype=torch.bool)
            if fl is not None:
                out["prev_flow"] = torch.from_numpy(fl[keep][sel])
        return out


def label_subset(n: int, fraction: float, seed: int = 0) -> np.ndarray:
    """The first ``ceil(fraction * n)`` of a seeded permutation (the 5 / 20 / 100 % label splits)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label_fraction must be in (0, 1], got {fraction}")
    k = max(1, int(np.ceil(fraction * n)))
    return np.sort(np.random.default_rng(seed).permutation(n)[:k])


class DetectionFrames(Dataset):
    """Labelled frames -> ``{"points" (N,4), "mask" (N,), "boxes" (K,7), "labels" (K,)}`` (label -1 = padding)."""

    def __init__(self, frames: list[Frame], cfg: DataConfig, classes: tuple[str, ...] = CLASSES) -> None:
        self.cfg, self.classes = cfg, classes
        self.frames = []
        self.n_cropped = 0
        for f in frames:
            pts, dropped = crop_to_range(f.points, cfg.detect_range)
            if len(pts) == 0:
                raise DataError(f.path, f"no points inside the detection range {cfg.detect_range}")
            self.n_cropped += dropped
            self.frames.append((pts, f))

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        pts, f = self.frames[i]
        sel = fixed_size(len(pts), self.cfg.max_points, _rng())
        K = self.cfg.max_objects
        boxes = np.zeros((K, 7), np.float32)
        labels = np.full(K, -1, np.int64)
        objs = [o for o in f.objects if o.cls in self.classes][:K]
        for j, o in enumerate(objs):
            boxes[j] = o.box
            labels[j] = self.classes.index(o.cls)
        return {"points": torch.from_numpy(pts[sel]), "mask": torch.ones(self.cfg.max_points, dtype=torch.bool),
                "boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels)}
