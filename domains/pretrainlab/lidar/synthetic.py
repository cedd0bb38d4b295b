"""LiDAR simulator: a spinning 64-beam sensor ray-cast with open3d against procedural street scenes.

The synthetic substitute for KITTI / KITTI-360 (no LiDAR data ships offline). A KITTI-like
HDL-64E (vertical field of view +2 to -24.8 deg, 64 beams, mounted 1.73 m above the ground) is
ray-cast with ``open3d.t.geometry.RaycastingScene`` against a ground plane and procedurally
placed cars, pedestrians, cyclists, buildings, poles and trees with realistic sizes. Sequences
move the ego vehicle and the objects (SE(2) motions), so the exact scene flow of every point is
known from the hit geometry: ``flow = E_{t+1}^-1 O_{t+1} O_t^-1 E_t p - p``. Intensity falls with
range and the cosine of the incidence angle; occlusion levels come from rays cast to sample
points of each object; truncation from the projection into the KITTI camera.

Writes the KITTI object layout (``training/{velodyne,label_2,calib}``, ``ImageSets``) for the
labelled frames and the KITTI odometry layout (``sequences/SS/{velodyne,flow}``, ``poses.txt``)
for the unlabelled pre-training sequences. Deterministic by seed.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from pretrainlab.lidar.formats import (
    KITTI_IMAGE_SHAPE,
    Calib,
    Object3D,
    bboxes2d_of,
    fov_mask,
    write_kitti_label,
    write_velodyne_bin,
)


@dataclasses.dataclass
class SensorConfig:
    n_beams: int = 64  # HDL-64E (KITTI)
    fov_up_deg: float = 2.0  # KITTI vertical field of view +2 ...
    fov_down_deg: float = -24.8  # ... -24.8 deg
    n_columns: int = 2048  # azimuth steps per revolution (full resolution; HDL-64E ~0.17 deg at 10 Hz)
    height: float = 1.73  # KITTI Velodyne mounting height (m)
    max_range: float = 80.0  # m
    range_noise: float = 0.02  # m, Gaussian range noise
    dropout: float = 0.02  # fraction of returns lost


@dataclasses.dataclass
class SceneConfig:
    cars: tuple[int, int] = (6, 14)  # uniform count range per scene
    pedestrians: tuple[int, int] = (3, 8)
    cyclists: tuple[int, int] = (2, 5)
    buildings: tuple[int, int] = (6, 12)
    poles: tuple[int, int] = (4, 10)
    trees: tuple[int, int] = (4, 10)
    extent: float = 60.0  # objects are placed within x in [-extent/2, extent], |y| <= road / sidewalks
    dt: float = 0.1  # s between scans (10 Hz)
    min_points: int = 5  # objects with fewer LiDAR points are not labelled


# realistic sizes (l, w, h) in metres: mean and jitter
SIZES = {"Car": ((4.2, 1.75, 1.55), (0.4, 0.12, 0.1)), "Pedestrian": ((0.75, 0.6, 1.75), (0.1, 0.08, 0.12)),
         "Cyclist": ((1.75, 0.6, 1.72), (0.12, 0.06, 0.08))}
SPEEDS = {"Car": (0.0, 12.0), "Pedestrian": (0.0, 1.6), "Cyclist": (1.0, 6.0)}  # m/s
REFLECTIVITY = {"ground": 0.25, "Car": 0.7, "Pedestrian": 0.35, "Cyclist": 0.5, "building": 0.45, "pole": 0.6,
                "tree": 0.3}


def _box_mesh(l: float, w: float, h: float, z0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned box centred at the origin in x, y with bottom at ``z0``: vertices (8,3), triangles (12,3)."""
    x, y = l / 2, w / 2
    v = np.array([[-x, -y, z0], [x, -y, z0], [x, y, z0], [-x, y, z0],
                  [-x, -y, z0 + h], [x, -y, z0 + h], [x, y, z0 + h], [-x, y, z0 + h]], np.float32)
    t = np.array([[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4], [1, 2, 6], [1, 6, 5],
                  [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]], np.int64)
    return v, t


def _cylinder_mesh(r: float, h: float, z0: float = 0.0, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.stack([r * np.cos(a), r * np.sin(a)], 1)
    v = np.concatenate([np.c_[ring, np.full(n, z0)], np.c_[ring, np.full(n, z0 + h)],
                        [[0, 0, z0], [0, 0, z0 + h]]]).astype(np.float32)
    t = []
    for i in range(n):
        j = (i + 1) % n
        t += [[i, j, n + j], [i, n + j, n + i], [2 * n, j, i], [2 * n + 1, n + i, n + j]]
    return v, np.array(t, np.int64)


def _merge(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    vs, ts, off = [], [], 0
    for v, t in parts:
        vs.append(v)
        ts.append(t + off)
        off += len(v)
    return np.concatenate(vs), np.concatenate(ts)


def _shape(cls: str, l: float, w: float, h: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Object mesh in its local frame (x forward, bottom at z=0)."""
    if cls == "Car":  # body + cabin
        body = _box_mesh(l, w, h * 0.55, 0.15)
        body[0][:4, 2] = 0.15
        cabin = _box_mesh(l * 0.55, w * 0.92, h * 0.45, h * 0.55)
        cabin[0][:, 0] -= l * 0.08
        wheels = _box_mesh(l * 0.8, w * 0.9, 0.3, 0.0)
        return _merge([body, cabin, wheels])
    if cls == "Pedestrian":
        legs = _box_mesh(l * 0.5, w * 0.6, h * 0.5, 0.0)
        torso = _cylinder_mesh(w * 0.42, h * 0.38, h * 0.5, 8)
        head = _box_mesh(0.22, 0.2, h * 0.12, h * 0.88)
        return _merge([legs, torso, head])
    if cls == "Cyclist":
        bike = _box_mesh(l, 0.12, 0.95, 0.05)
        rider = _box_mesh(0.5, w * 0.9, h - 0.9, 0.9)
        return _merge([bike, rider])
    raise ValueError(cls)


def _se2(x: float, y: float, yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0, x], [s, c, 0, y], [0, 0, 1, 0], [0, 0, 0, 1]], np.float64)


@dataclasses.dataclass
class Actor:
    """One scene element: mesh in its local frame, pose over time, class and reflectivity."""

    kind: str  # Car / Pedestrian / Cyclist / building / pole / tree
    verts: np.ndarray
    tris: np.ndarray
    pose0: np.ndarray  # (4, 4) world pose at t=0
    velocity: float = 0.0  # m/s along the heading
    yaw_rate: float = 0.0  # rad/s
    size: tuple[float, float, float] = (0.0, 0.0, 0.0)  # l, w, h (labelled classes)

    def pose(self, t: float) -> np.ndarray:
        """World pose after ``t`` seconds of constant-velocity / constant-yaw-rate motion."""
        if self.velocity == 0.0 and self.yaw_rate == 0.0:
            return self.pose0
        yaw0 = math.atan2(self.pose0[1, 0], self.pose0[0, 0])
        if abs(self.yaw_rate) < 1e-6:
            dx, dy = self.velocity * t * math.cos(yaw0), self.velocity * t * math.sin(yaw0)
        else:
            r = self.velocity / self.yaw_rate
            dx = r * (math.sin(yaw0 + self.yaw_rate * t) - math.sin(yaw0))
            dy = -r * (math.cos(yaw0 + self.yaw_rate * t) - math.cos(yaw0))
        return _se2(self.pose0[0, 3] + dx, self.pose0[1, 3] + dy, yaw0 + self.yaw_rate * t)


class Scene:
    """A procedural street scene (road along world +x) with an ego vehicle driving along it."""

    def __init__(self, rng: np.random.Generator, cfg: SceneConfig | None = None) -> None:
        self.cfg = cfg = cfg or SceneConfig()
        self.actors: list[Actor] = []
        E = cfg.extent
        road = rng.uniform(6.0, 9.0)  # half-width of the road (m)
        self.ego_speed = float(rng.uniform(0.0, 12.0))
        self.ego_yaw_rate = float(rng.normal(0, 0.03))

        def free(x: float, y: float, r: float) -> bool:
            return all((a.pose0[0, 3] - x) ** 2 + (a.pose0[1, 3] - y) ** 2 > (r + 1.2) ** 2 for a in self.actors
                       if a.kind in SIZES) and x * x + y * y > 16

        def n(rng_range: tuple[int, int]) -> int:
            return int(rng.integers(rng_range[0], rng_range[1] + 1))

        for cls, count in (("Car", n(cfg.cars)), ("Pedestrian", n(cfg.pedestrians)), ("Cyclist", n(cfg.cyclists))):
            mean, jit = SIZES[cls]
            for _ in range(count):
                l, w, h = (float(m + rng.uniform(-j, j)) for m, j in zip(mean, jit))
                for _try in range(20):
                    x = float(rng.uniform(-E / 2, E))
                    if cls == "Car":
                        if rng.random() < 0.3:  # parked at the kerb
                            y = float(rng.choice([-1, 1]) * (road - 1.1))
                            yaw, speed = float(rng.choice([0.0, np.pi]) + rng.normal(0, 0.05)), 0.0
                        else:  # in a lane, either direction
                            d = rng.choice([-1, 1])
                            y = float(d * rng.uniform(0.8, road - 2.2))
                            yaw = float((0.0 if d < 0 else np.pi) + rng.normal(0, 0.08))
                            speed = float(rng.uniform(*SPEEDS[cls]))
                    elif cls == "Pedestrian":
                        if rng.random() < 0.25:  # crossing
                            y = float(rng.uniform(-road, road))
                            yaw = float(rng.choice([-1, 1]) * np.pi / 2 + rng.normal(0, 0.3))
                        else:  # on the sidewalk
                            y = float(rng.choice([-1, 1]) * rng.uniform(road + 0.5, road + 3.5))
                            yaw = float(rng.choice([0.0, np.pi]) + rng.normal(0, 0.3))
                        speed = float(rng.uniform(*SPEEDS[cls]))
                    else:
                        y = float(rng.choice([-1, 1]) * rng.uniform(road - 1.8, road - 0.5))
                        yaw = float(rng.choice([0.0, np.pi]) + rng.normal(0, 0.1))
                        speed = float(rng.uniform(*SPEEDS[cls]))
                    if free(x, y, max(l, w) / 2):
                        v, t = _shape(cls, l, w, h, rng)
                        yaw_rate = float(rng.normal(0, 0.02)) if speed > 0 else 0.0
                        self.actors.append(Actor(cls, v, t, _se2(x, y, yaw), speed, yaw_rate, (l, w, h)))
                        break
        for kind, count in (("building", n(cfg.buildings)), ("pole", n(cfg.poles)), ("tree", n(cfg.trees))):
            for _ in range(count):
                side = rng.choice([-1, 1])
                x = float(rng.uniform(-E, 1.5 * E))
                if kind == "building":
                    bl, bw, bh = rng.uniform(8, 25), rng.uniform(6, 15), rng.uniform(5, 18)
                    y = side * (road + 5.0 + bw / 2 + rng.uniform(0, 6))
                    v, t = _box_mesh(bl, bw, bh)
                elif kind == "pole":
                    y = side * (road + rng.uniform(0.3, 1.0))
                    v, t = _cylinder_mesh(0.12, float(rng.uniform(4, 8)), 0.0, 6)
                else:
                    y = side * (road + rng.uniform(3.8, 6.0))
                    th = float(rng.uniform(1.5, 3.0))
                    cr = float(rng.uniform(1.0, 2.2))
                    trunk = _cylinder_mesh(0.18, th, 0.0, 6)
                    crown = _box_mesh(cr * 1.6, cr * 1.6, cr * 1.6, th)
                    v, t = _merge([trunk, crown])
                self.actors.append(Actor(kind, v, t, _se2(x, float(y), float(rng.uniform(-0.1, 0.1)))))

    def merged_mesh(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every actor's mesh in its local frame, merged (cached): ``verts (V, 3)``, ``tris (T, 3) uint32``,
        actor per vertex ``(V,)``, actor per triangle ``(T,)``, first vertex of each actor ``(A,)``."""
        if getattr(self, "_merged", None) is None:
            off, starts, tris = 0, [], []
            for a in self.actors:
                starts.append(off)
                tris.append(a.tris + off)
                off += len(a.verts)
            self._merged = (np.concatenate([a.verts for a in self.actors]).astype(np.float64),
                            np.concatenate(tris).astype(np.uint32),
                            np.repeat(np.arange(len(self.actors)), [len(a.verts) for a in self.actors]),
                            np.repeat(np.arange(len(self.actors)), [len(a.tris) for a in self.actors]),
                            np.array(starts, np.int64))
        return self._merged

    def ego_pose(self, t: float) -> np.ndarray:
        """World pose of the LiDAR at time ``t`` (z = mounting height above the ground plane)."""
        ego = Actor("ego", np.zeros((0, 3)), np.zeros((0, 3)), _se2(0, 0, 0), self.ego_speed, self.ego_yaw_rate)
        P = ego.pose(t).copy()
        return P


def _beam_directions(s: SensorConfig) -> np.ndarray:
    """Unit ray directions ``(n_beams * n_columns, 3)`` in the sensor frame."""
    el = np.deg2rad(np.linspace(s.fov_up_deg, s.fov_down_deg, s.n_beams))
    az = np.linspace(np.pi, -np.pi, s.n_columns, endpoint=False)
    E, A = np.meshgrid(el, az, indexing="ij")
    return np.stack([np.cos(E) * np.cos(A), np.cos(E) * np.sin(A), np.sin(E)], -1).reshape(-1, 3).astype(np.float32)


@dataclasses.dataclass
class Scan:
    """One simulated scan in the sensor (LiDAR) frame."""

    points: np.ndarray  # (N, 4) x y z intensity
    instance: np.ndarray  # (N,) actor index, -1 ground
    objects: list[Object3D]
    object_actor: list[int]  # actor index of each labelled object
    kinds: list[str] = dataclasses.field(default_factory=list)  # kind of every actor (Car, building, ...)


def _threads() -> int:
    """Ray-casting threads: ``$OMP_NUM_THREADS`` when set (the project's convention), else all cores (0)."""
    import os

    try:
        return max(0, int(os.environ.get("OMP_NUM_THREADS", "0")))
    except ValueError:
        return 0


class LidarSimulator:
    """Ray-casts scenes; ``scan(scene, t)`` and ``flow(scene, scan, t, t_next)``.

    Speed (the simulator feeds longer tiny runs): the scene is placed in the sensor frame of time
    ``t`` (a few hundred vertices move, not the 65k-130k rays); the ground plane is intersected
    analytically (``t = -height / d_z``); every actor goes into one triangle mesh (one BVH,
    ``primitive_ids`` name the actor) and only the rays inside some actor's conservative angular
    footprint (bounding circle in azimuth, height range over the nearest / farthest distance in
    elevation) are cast against it: the others can only meet the ground. The result is the same as
    casting every ray against ground + actors.
    """

    def __init__(self, sensor: SensorConfig | None = None, calib: Calib | None = None,
                 image_shape: tuple[int, int] = KITTI_IMAGE_SHAPE) -> None:
        self.sensor = s = sensor or SensorConfig()
        self.calib = calib or Calib.default()
        self.image_shape = image_shape
        self.dirs = _beam_directions(s)
        self.elevation = np.deg2rad(np.linspace(s.fov_up_deg, s.fov_down_deg, s.n_beams))  # rows, descending
        self.azimuth = np.linspace(np.pi, -np.pi, s.n_columns, endpoint=False)  # columns, descending
        self._rays = np.zeros((len(self.dirs), 6), np.float32)
        self._rays[:, 3:] = self.dirs
        with np.errstate(divide="ignore"):
            self._t_ground = np.where(self.dirs[:, 2] < 0, -s.height / self.dirs[:, 2], np.inf).astype(np.float32)
        self._probe_template = np.array([[u * 0.35, v * 0.35, zz - 0.5] for u in (-1, 0, 1) for v in (-1, 1)
                                         for zz in (0.3, 0.6, 0.85)])
        self._cos_ground = np.abs(self.dirs[:, 2]).astype(np.float32)
        self.threads = _threads()
        pool = np.random.default_rng(20240601)  # fixed: the per-scan offsets into the pools come from the scan's rng
        self._gauss = pool.standard_normal(2 * len(self.dirs) + 2**18, dtype=np.float32)
        self._uniform = pool.random(len(self.dirs) + 2**18, dtype=np.float32)

    def sensor_pose(self, scene: Scene, t: float) -> np.ndarray:
        """World pose ``(4, 4)`` of the LiDAR at time ``t`` (the ego pose lifted to the mounting height)."""
        E = scene.ego_pose(t).copy()
        E[2, 3] = self.sensor.height
        return E

    def _build(self, scene: Scene, t: float) -> tuple[object | None, np.ndarray, np.ndarray, np.ndarray]:
        """``(raycasting scene of the actors in the sensor frame or None, actor per triangle, sensor pose,
        indices of the rays that may meet an actor)``."""
        import open3d as o3d

        E = self.sensor_pose(scene, t)
        if not scene.actors:
            return None, np.zeros(0, np.int64), E, np.zeros(0, np.int64)
        verts, tris, vert_owner, tri_owner, starts = scene.merged_mesh()
        Einv = np.linalg.inv(E)
        poses = np.stack([Einv @ a.pose(t) for a in scene.actors])  # (A, 4, 4) actor -> sensor frame
        R, T = poses[vert_owner, :3, :3], poses[vert_owner, :3, 3]
        v = (np.einsum("vij,vj->vi", R, verts) + T).astype(np.float32)
        # conservative angular footprint of each actor: bounding circle (azimuth), height range (elevation)
        cnt = np.diff(np.append(starts, len(v)))
        cxy = np.add.reduceat(v[:, :2].astype(np.float64), starts) / cnt[:, None]
        rad = np.maximum.reduceat(np.hypot(v[:, 0] - cxy[vert_owner, 0], v[:, 1] - cxy[vert_owner, 1]), starts) + 1e-3
        z0, z1 = np.minimum.reduceat(v[:, 2], starts), np.maximum.reduceat(v[:, 2], starts)
        dc = np.hypot(cxy[:, 0], cxy[:, 1])
        r_min, r_max = np.maximum(dc - rad, 1e-3), dc + rad
        e_lo = np.arctan2(z0, np.where(z0 < 0, r_min, r_max))
        e_hi = np.arctan2(z1, np.where(z1 > 0, r_min, r_max))
        rows = (self.elevation[None] >= e_lo[:, None] - 1e-4) & (self.elevation[None] <= e_hi[:, None] + 1e-4)
        half = np.arcsin(np.clip(rad / np.maximum(dc, 1e-9), 0, 1)) + 2 * np.pi / len(self.azimuth)
        half = np.where(dc <= rad, 4 * np.pi, half)
        diff = (self.azimuth[None] - np.arctan2(cxy[:, 1], cxy[:, 0])[:, None] + np.pi) % (2 * np.pi) - np.pi
        cols = np.abs(diff) <= half[:, None]
        may_hit = (rows.T.astype(np.float32) @ cols.astype(np.float32)) > 0  # (rows, cols): any actor
        idx = np.flatnonzero(may_hit.reshape(-1))
        if len(idx) == 0:
            return None, tri_owner, E, idx
        rs = o3d.t.geometry.RaycastingScene()
        rs.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(tris))
        return rs, tri_owner, E, idx

    def raycast(self, scene: Scene, t: float) -> dict[str, np.ndarray]:
        """Only the geometry of one scan: ``t_hit`` and the actor of every ray (-1 ground), no noise or labels."""
        import open3d as o3d

        rs, owner, _, idx = self._build(scene, t)
        th = self._t_ground.copy()
        inst = np.where(np.isfinite(th), -1, -2)
        if rs is not None:
            ans = rs.cast_rays(o3d.core.Tensor(np.take(self._rays, idx, axis=0)), nthreads=self.threads)  # type: ignore[attr-defined]
            ta = ans["t_hit"].numpy()
            closer = ta < th[idx]
            th[idx[closer]] = ta[closer]
            inst[idx[closer]] = np.take(owner, ans["primitive_ids"].numpy()[closer].astype(np.int64))
        return {"t_hit": th, "instance": inst}

    def _pool(self, pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` consecutive values of a pre-drawn pool from a random offset (cheap per-ray noise)."""
        o = int(rng.integers(0, len(pool) - n + 1))
        return pool[o:o + n]

    def scan(self, scene: Scene, t: float, rng: np.random.Generator) -> Scan:
        """Ray-cast the scene at time ``t`` (s) from the ego pose; labels for Car / Pedestrian / Cyclist.

        Per-ray noise (range, intensity, dropout) is read from pools of pre-drawn values at random
        offsets (drawing 2 x 65k Gaussians per scan cost about as much as the ray casting).
        """
        import open3d as o3d

        s = self.sensor
        rs, owner, E, cast_idx = self._build(scene, t)
        th = self._t_ground.copy()
        inst = np.full(len(th), -1, np.int64)
        cos_inc = self._cos_ground.copy()
        if rs is not None:
            ans = rs.cast_rays(o3d.core.Tensor(np.take(self._rays, cast_idx, axis=0)), nthreads=self.threads)  # type: ignore[attr-defined]
            ta = ans["t_hit"].numpy()
            closer = np.flatnonzero(ta < np.take(th, cast_idx))
            hit = np.take(cast_idx, closer)
            th[hit] = np.take(ta, closer)
            inst[hit] = np.take(owner, np.take(ans["primitive_ids"].numpy(), closer).astype(np.int64))
            nh = np.take(ans["primitive_normals"].numpy(), closer, axis=0)
            dh = np.take(self.dirs, hit, axis=0)
            cos_inc[hit] = np.abs(nh[:, 0] * dh[:, 0] + nh[:, 1] * dh[:, 1] + nh[:, 2] * dh[:, 2])
        keep = th < s.max_range
        if s.dropout > 0:
            keep &= self._pool(self._uniform, len(th), rng) >= np.float32(s.dropout)
        idx = np.flatnonzero(keep)
        th, inst, cos_inc = np.take(th, idx), np.take(inst, idx), np.take(cos_inc, idx)
        d = np.take(self.dirs, idx, axis=0)
        n = len(idx)
        noise = self._pool(self._gauss, 2 * n, rng)
        r = th + np.float32(s.range_noise) * noise[:n]
        refl_table = np.array([REFLECTIVITY[a.kind] for a in scene.actors] + [REFLECTIVITY["ground"]], np.float32)
        refl = np.take(refl_table, inst)  # -1 (ground) reads the last entry
        inten = refl * (np.float32(0.3) + np.float32(0.7) * cos_inc) * np.exp(th * np.float32(-1 / 120.0))
        inten += np.float32(0.02) * noise[n:]
        points = np.empty((n, 4), np.float32)
        points[:, :3] = d * r[:, None]
        points[:, 3] = np.clip(inten, 0, 1)
        objects, actor_idx = self._labels(scene, t, E, points, inst, rs, owner)
        return Scan(points, inst, objects, actor_idx, [a.kind for a in scene.actors])

    def _labels(self, scene: Scene, t: float, E: np.ndarray, points: np.ndarray, inst: np.ndarray, rs: object,
                owner: np.ndarray) -> tuple[list[Object3D], list[int]]:
        """Labels as KITTI has them: objects in the camera image with >= ``min_points`` LiDAR points in the
        camera's field of view; truncation from the image, occlusion from probe rays."""
        import open3d as o3d

        labelled = np.array([a.kind in SIZES for a in scene.actors] + [False], bool)
        cand = np.flatnonzero(np.take(labelled, inst))
        seen = np.take(inst, cand)[fov_mask(np.take(points, cand, axis=0), self.calib, self.image_shape)]
        counts = np.bincount(seen, minlength=len(scene.actors))
        idxs = [i for i, a in enumerate(scene.actors) if a.kind in SIZES and counts[i] >= scene.cfg.min_points]
        if not idxs:
            return [], []
        Einv = np.linalg.inv(E)
        boxes = np.zeros((len(idxs), 7), np.float32)
        for k, i in enumerate(idxs):
            P = Einv @ scene.actors[i].pose(t)
            l, w, h = scene.actors[i].size
            boxes[k] = (P[0, 3], P[1, 3], P[2, 3] + h / 2, l, w, h, math.atan2(P[1, 0], P[0, 0]))
        bb, trunc = bboxes2d_of(boxes, self.calib, self.image_shape)
        ok = (boxes[:, 0] > 0.5) & (trunc < 0.95)  # outside the camera image: not labelled (as in KITTI)
        objs = [Object3D(scene.actors[i].kind, boxes[k], truncated=round(float(trunc[k]), 2), occluded=0,
                         bbox2d=tuple(float(v) for v in bb[k])) for k, i in enumerate(idxs) if ok[k]]
        idxs = [i for k, i in enumerate(idxs) if ok[k]]
        if objs:
            # occlusion probes: 3 x 3 points on the visible half of each box at 3 heights (sensor frame)
            b = np.stack([o.box for o in objs]).astype(np.float64)
            loc = self._probe_template[None] * b[:, None, 3:6]  # (K, 18, 3)
            c, s_ = np.cos(b[:, 6:7]), np.sin(b[:, 6:7])
            pts = np.stack([b[:, 0:1] + c * loc[..., 0] - s_ * loc[..., 1], b[:, 1:2] + s_ * loc[..., 0] + c * loc[..., 1],
                            b[:, 2:3] + loc[..., 2]], -1).reshape(-1, 3).astype(np.float32)
            per = self._probe_template.shape[0]
            dist = np.linalg.norm(pts, axis=1, keepdims=True)
            rays = o3d.core.Tensor(np.concatenate([np.zeros_like(pts), pts / dist], 1).astype(np.float32))
            ans = rs.cast_rays(rays, nthreads=self.threads)  # type: ignore[attr-defined]
            g = ans["geometry_ids"].numpy()
            prim = np.minimum(ans["primitive_ids"].numpy().astype(np.int64), len(owner) - 1)
            hit_actor = np.where(g == 0, np.take(owner, prim), -2)
            th = ans["t_hit"].numpy()
            seen_probe = (hit_actor == np.repeat(idxs, per)) | (th >= dist[:, 0] - 0.3)
            vis = seen_probe.reshape(len(objs), per).mean(1)
            for ob, v in zip(objs, vis):
                ob.occluded = 0 if v >= 0.7 else (1 if v >= 0.35 else 2)
        return objs, idxs

    def flow(self, scene: Scene, scan: Scan, t: float, t_next: float) -> np.ndarray:
        """Exact scene flow ``(N, 3)`` of ``scan``'s points (taken at ``t``) into the sensor frame at ``t_next``.

        A static point moves by ``E1^-1 E0``, a point of a moving actor by ``E1^-1 M E0`` with ``M`` the
        actor's motion ``O(t1) O(t0)^-1``.
        """
        E0, E1 = self.sensor_pose(scene, t), self.sensor_pose(scene, t_next)
        E1inv = np.linalg.inv(E1)
        p = scan.points[:, :3]
        A = (E1inv @ E0).astype(np.float32)
        moved = p @ A[:3, :3].T + A[:3, 3]
        for i in np.unique(scan.instance[scan.instance >= 0]):
            a = scene.actors[int(i)]
            if a.velocity == 0.0 and a.yaw_rate == 0.0:
                continue
            B = (E1inv @ a.pose(t_next) @ np.linalg.inv(a.pose(t)) @ E0).astype(np.float32)
            sel = scan.instance == i
            moved[sel] = p[sel] @ B[:3, :3].T + B[:3, 3]
        return (moved - p).astype(np.float32)


def simulator_rates(columns: int, n_scans: int = 20, seed: int = 0) -> dict[str, Any]:
    """Scans per second of the simulator at ``columns`` azimuth steps x 64 beams (one process).

    ``raycast``: the geometry alone (ray casting + ground); ``scan``: a whole labelled scan (noise,
    intensity, labels with truncation / occlusion) as the data generator makes it; ``scan_flow``: a
    sequence scan plus its exact scene flow. Wall-clock and CPU-time rates (this process's CPU
    seconds; on a shared machine the wall clock also counts the other processes).
    """
    sim = LidarSimulator(SensorConfig(n_columns=columns))
    rng = np.random.default_rng(seed)
    scenes = [Scene(np.random.default_rng(seed + i)) for i in range(n_scans)]
    for s in scenes[:2]:  # warm-up (meshes merged and cached per scene, open3d initialised)
        sim.scan(s, 0.0, rng)
    out: dict[str, Any] = {"name": f"simulator-{columns}x64", "rays_per_scan": 64 * columns, "device": "cpu (open3d)",
                           "ray_threads": sim.threads or "all"}
    for kind in ("raycast", "scan", "scan_flow"):
        w0, c0 = time.perf_counter(), time.process_time()
        for s in scenes:
            if kind == "raycast":
                sim.raycast(s, 0.1)
            elif kind == "scan":
                sim.scan(s, 0.1, rng)
            else:
                sim.flow(s, sim.scan(s, 0.1, rng), 0.1, 0.2)
        w, c = time.perf_counter() - w0, time.process_time() - c0
        out[f"{kind}_scans_per_s"] = n_scans / w
        out[f"{kind}_scans_per_cpu_s"] = n_scans / max(c, 1e-9)
    return out


# ---------------------------------------------------------------------------------- dataset writer

PROFILES = {  # labelled train / val frames, pre-training sequences x frames, azimuth columns
    "smoke": {"train": 8, "val": 4, "sequences": 1, "frames": 4, "columns": 512},
    # tiny: 5 % of 1000 = 50 labelled scans; pre-training sees 8 x 40 = 320 unlabelled scans; 200 val scans
    "tiny": {"train": 1000, "val": 200, "sequences": 8, "frames": 40, "columns": 1024},
    "full": {"train": 3712, "val": 3769, "sequences": 20, "frames": 200, "columns": 2048},  # KITTI split sizes
}


def blank_png(image_shape: tuple[int, int]) -> bytes:
    """A black 1-bit PNG of ``(H, W)``: the simulator renders no camera, only the image's size is used."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (image_shape[1], image_shape[0])).save(buf, format="PNG")
    return buf.getvalue()


SIZE_LIMITS = {"train": (1, 100_000), "val": (0, 100_000), "sequences": (0, 10_000), "frames": (2, 100_000),
               "columns": (16, 8192)}


def check_sizes(sizes: dict[str, int]) -> None:
    """ConfigError naming the size that is out of range (``--train``, ``--columns`` ...)."""
    from pretrainlab.core.config import ConfigError

    for k, v in sizes.items():
        lo, hi = SIZE_LIMITS[k]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ConfigError(f"--{k}: {v!r} is not allowed; expected an integer in [{lo}, {hi}]")


def generate(out: Path, profile: str = "tiny", seed: int = 0, **sizes: int) -> None:
    """Write a synthetic KITTI object set + odometry-style sequences with flow into ``out``.

    ``sizes`` override the profile's ``train``, ``val``, ``sequences``, ``frames`` or ``columns``.
    """
    from tqdm.auto import tqdm

    check_sizes(sizes)
    p = {**PROFILES[profile], **sizes}
    out = Path(out)
    rng = np.random.default_rng(seed)
    sim = LidarSimulator(SensorConfig(n_columns=p["columns"]))
    calib_text = sim.calib.to_text()
    png = blank_png(sim.image_shape)
    n_lab = p["train"] + p["val"]
    total = n_lab + p["sequences"] * p["frames"]
    bar = tqdm(total=total, desc="simulate", unit="scan", leave=False)
    n_obj = 0
    base = out / "training"
    for d in ("velodyne", "label_2", "calib", "image_2"):
        (base / d).mkdir(parents=True, exist_ok=True)
    for i in range(n_lab):
        scene = Scene(np.random.default_rng(rng.integers(2**63)))
        sc = sim.scan(scene, 0.0, rng)
        fid = f"{i:06d}"
        write_velodyne_bin(base / "velodyne" / f"{fid}.bin", sc.points)
        write_kitti_label(base / "label_2" / f"{fid}.txt", sc.objects, sim.calib, sim.image_shape)
        (base / "calib" / f"{fid}.txt").write_text(calib_text)
        (base / "image_2" / f"{fid}.png").write_bytes(png)
        n_obj += len(sc.objects)
        bar.update()
    (out / "ImageSets").mkdir(parents=True, exist_ok=True)
    (out / "ImageSets" / "train.txt").write_text("".join(f"{i:06d}\n" for i in range(p["train"])))
    (out / "ImageSets" / "val.txt").write_text("".join(f"{i:06d}\n" for i in range(p["train"], n_lab)))
    for s in range(p["sequences"]):
        scene = Scene(np.random.default_rng(rng.integers(2**63)))
        sd = out / "sequences" / f"{s:02d}"
        (sd / "velodyne").mkdir(parents=True, exist_ok=True)
        (sd / "flow").mkdir(parents=True, exist_ok=True)
        poses = []
        dt = scene.cfg.dt
        E0inv = np.linalg.inv(sim.sensor_pose(scene, 0.0))
        for f in range(p["frames"]):
            sc = sim.scan(scene, f * dt, rng)
            write_velodyne_bin(sd / "velodyne" / f"{f:06d}.bin", sc.points)
            if f + 1 < p["frames"]:
                np.save(sd / "flow" / f"{f:06d}.npy", sim.flow(scene, sc, f * dt, (f + 1) * dt))
            E = E0inv @ sim.sensor_pose(scene, f * dt)
            poses.append(" ".join(f"{v:.6e}" for v in E[:3].reshape(-1)))
            bar.update()
        (sd / "poses.txt").write_text("\n".join(poses) + "\n")
    bar.close()
    print(f"simulated {total} scans ({n_lab} labelled, {n_obj} objects; {p['sequences']} sequences) "
          f"[{profile}] to {out}")
