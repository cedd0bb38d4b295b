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
from pathlib import Path

import numpy as np

from pretrainlab.lidar.formats import (
    Calib,
    Object3D,
    bbox2d_of,
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


class LidarSimulator:
    """Ray-casts scenes; ``scan(scene, t)`` and ``flow(scene, scan, t, t_next)``."""

    def __init__(self, sensor: SensorConfig | None = None, calib: Calib | None = None) -> None:
        self.sensor = sensor or SensorConfig()
        self.calib = calib or Calib.default()
        self.dirs = _beam_directions(self.sensor)

    def _build(self, scene: Scene, t: float) -> tuple[object, np.ndarray]:
        import open3d as o3d

        rs = o3d.t.geometry.RaycastingScene()
        gid_to_actor = []
        E0 = scene.ego_pose(t)
        cx, cy = E0[0, 3], E0[1, 3]
        R = 250.0
        ground = np.array([[cx - R, cy - R, 0], [cx + R, cy - R, 0], [cx + R, cy + R, 0], [cx - R, cy + R, 0]], np.float32)
        rs.add_triangles(o3d.core.Tensor(ground), o3d.core.Tensor(np.array([[0, 1, 2], [0, 2, 3]], np.uint32)))
        gid_to_actor.append(-1)
        for i, a in enumerate(scene.actors):
            P = a.pose(t)
            v = (a.verts @ P[:3, :3].T + P[:3, 3]).astype(np.float32)
            rs.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(a.tris.astype(np.uint32)))
            gid_to_actor.append(i)
        return rs, np.array(gid_to_actor)

    def scan(self, scene: Scene, t: float, rng: np.random.Generator) -> Scan:
        """Ray-cast the scene at time ``t`` (s) from the ego pose; labels for Car / Pedestrian / Cyclist."""
        import open3d as o3d

        s = self.sensor
        rs, gmap = self._build(scene, t)
        E = scene.ego_pose(t).copy()
        E[2, 3] = s.height
        d_world = self.dirs @ E[:3, :3].T.astype(np.float32)
        rays = np.empty((len(d_world), 6), np.float32)
        rays[:, :3] = E[:3, 3]
        rays[:, 3:] = d_world
        rays = o3d.core.Tensor(rays)
        ans = rs.cast_rays(rays)
        th = ans["t_hit"].numpy()
        gid = ans["geometry_ids"].numpy().astype(np.int64)
        nrm = ans["primitive_normals"].numpy()
        keep = np.flatnonzero((th < s.max_range) & (rng.random(len(th), dtype=np.float32) >= s.dropout))
        th, gid, dirs = th[keep], gid[keep], self.dirs[keep]
        nrm = nrm[keep]
        rng_noisy = th + (s.range_noise * rng.standard_normal(len(th), dtype=np.float32))
        pts = dirs * rng_noisy[:, None]
        inst = gmap[gid]
        refl = np.array([REFLECTIVITY["ground"]] + [REFLECTIVITY[a.kind] for a in scene.actors], np.float32)[gid]
        cos_inc = np.abs(np.einsum("ij,ij->i", nrm, d_world[keep]))
        inten = refl * (0.3 + 0.7 * cos_inc) * np.exp(th * np.float32(-1 / 120.0))
        inten = np.clip(inten + 0.02 * rng.standard_normal(len(th), dtype=np.float32), 0, 1)
        points = np.concatenate([pts, inten[:, None]], 1).astype(np.float32)
        objects, actor_idx = self._labels(scene, t, E, inst, rs, gmap)
        return Scan(points, inst, objects, actor_idx)

    def _labels(self, scene: Scene, t: float, E: np.ndarray, inst: np.ndarray, rs: object,
                gmap: np.ndarray) -> tuple[list[Object3D], list[int]]:
        import open3d as o3d

        Einv = np.linalg.inv(E)
        counts = np.bincount(inst[inst >= 0], minlength=len(scene.actors))
        objs, idxs, samples = [], [], []
        for i, a in enumerate(scene.actors):
            if a.kind not in SIZES or counts[i] < scene.cfg.min_points:
                continue
            P = Einv @ a.pose(t)
            l, w, h = a.size
            yaw = math.atan2(P[1, 0], P[0, 0])
            box = np.array([P[0, 3], P[1, 3], P[2, 3] + h / 2, l, w, h, yaw], np.float32)
            if box[0] <= 0.5:
                continue
            bb, trunc = bbox2d_of(box, self.calib)
            if trunc >= 0.95:  # outside the camera's field of view: not labelled (as in KITTI)
                continue
            objs.append(Object3D(a.kind, box, truncated=round(trunc, 2), occluded=0, bbox2d=bb))
            idxs.append(i)
            # occlusion probes: 3 x 3 points on the visible half of the box at 3 heights
            loc = np.array([[u * l * 0.35, v * w * 0.35, z * h] for u in (-1, 0, 1) for v in (-1, 1) for z in (0.3, 0.6, 0.85)])
            samples.append((a.pose(t)[:3, :3] @ loc.T).T + a.pose(t)[:3, 3])
        if objs:
            pts = np.concatenate(samples).astype(np.float32)
            o = E[:3, 3].astype(np.float32)
            d = pts - o
            dist = np.linalg.norm(d, axis=1, keepdims=True)
            rays = o3d.core.Tensor(np.concatenate([np.broadcast_to(o, d.shape), d / dist], 1).astype(np.float32))
            ans = rs.cast_rays(rays)  # type: ignore[attr-defined]
            g = ans["geometry_ids"].numpy().astype(np.int64)
            hit_actor = np.where(g < len(gmap), gmap[np.minimum(g, len(gmap) - 1)], -2)
            th = ans["t_hit"].numpy()
            per = len(samples[0])
            for k, (ob, ai) in enumerate(zip(objs, idxs)):
                sl = slice(k * per, (k + 1) * per)
                vis = np.mean((hit_actor[sl] == ai) | (th[sl] >= dist[sl, 0] - 0.3))
                ob.occluded = 0 if vis >= 0.7 else (1 if vis >= 0.35 else 2)
        return objs, idxs

    def flow(self, scene: Scene, scan: Scan, t: float, t_next: float) -> np.ndarray:
        """Exact scene flow ``(N, 3)`` of ``scan``'s points (taken at ``t``) into the sensor frame at ``t_next``."""
        E0 = scene.ego_pose(t).copy()
        E1 = scene.ego_pose(t_next).copy()
        E0[2, 3] = E1[2, 3] = self.sensor.height
        pw = scan.points[:, :3].astype(np.float64) @ E0[:3, :3].T + E0[:3, 3]
        moved = pw.copy()
        for i in np.unique(scan.instance[scan.instance >= 0]):
            a = scene.actors[int(i)]
            if a.velocity == 0.0 and a.yaw_rate == 0.0:
                continue
            M = a.pose(t_next) @ np.linalg.inv(a.pose(t))
            sel = scan.instance == i
            moved[sel] = pw[sel] @ M[:3, :3].T + M[:3, 3]
        E1inv = np.linalg.inv(E1)
        p1 = moved @ E1inv[:3, :3].T + E1inv[:3, 3]
        return (p1 - scan.points[:, :3]).astype(np.float32)


# ---------------------------------------------------------------------------------- dataset writer

PROFILES = {  # labelled train / val frames, pre-training sequences x frames, azimuth columns
    "smoke": {"train": 8, "val": 4, "sequences": 1, "frames": 4, "columns": 512},
    "tiny": {"train": 96, "val": 48, "sequences": 4, "frames": 16, "columns": 1024},
    "full": {"train": 3712, "val": 3769, "sequences": 20, "frames": 200, "columns": 2048},  # KITTI split sizes
}


def generate(out: Path, profile: str = "tiny", seed: int = 0) -> None:
    """Write a synthetic KITTI object set + odometry-style sequences with flow into ``out``."""
    from tqdm.auto import tqdm

    p = PROFILES[profile]
    out = Path(out)
    rng = np.random.default_rng(seed)
    sim = LidarSimulator(SensorConfig(n_columns=p["columns"]))
    calib_text = sim.calib.to_text()
    n_lab = p["train"] + p["val"]
    total = n_lab + p["sequences"] * p["frames"]
    bar = tqdm(total=total, desc="simulate", unit="scan", leave=False)
    n_obj = 0
    base = out / "training"
    for i in range(n_lab):
        scene = Scene(np.random.default_rng(rng.integers(2**63)))
        sc = sim.scan(scene, 0.0, rng)
        fid = f"{i:06d}"
        write_velodyne_bin(base / "velodyne" / f"{fid}.bin", sc.points)
        write_kitti_label(base / "label_2" / f"{fid}.txt", sc.objects, sim.calib)
        (base / "calib").mkdir(parents=True, exist_ok=True)
        (base / "calib" / f"{fid}.txt").write_text(calib_text)
        n_obj += len(sc.objects)
        bar.update()
    (out / "ImageSets").mkdir(parents=True, exist_ok=True)
    (out / "ImageSets" / "train.txt").write_text("".join(f"{i:06d}\n" for i in range(p["train"])))
    (out / "ImageSets" / "val.txt").write_text("".join(f"{i:06d}\n" for i in range(p["train"], n_lab)))
    for s in range(p["sequences"]):
        scene = Scene(np.random.default_rng(rng.integers(2**63)))
        sd = out / "sequences" / f"{s:02d}"
        poses = []
        dt = scene.cfg.dt
        for f in range(p["frames"]):
            sc = sim.scan(scene, f * dt, rng)
            write_velodyne_bin(sd / "velodyne" / f"{f:06d}.bin", sc.points)
            if f + 1 < p["frames"]:
                (sd / "flow").mkdir(parents=True, exist_ok=True)
                np.save(sd / "flow" / f"{f:06d}.npy", sim.flow(scene, sc, f * dt, (f + 1) * dt))
            E = np.linalg.inv(scene.ego_pose(0.0)) @ scene.ego_pose(f * dt)
            poses.append(" ".join(f"{v:.6e}" for v in E[:3].reshape(-1)))
            bar.update()
        (sd / "poses.txt").write_text("\n".join(poses) + "\n")
    bar.close()
    print(f"simulated {total} scans ({n_lab} labelled, {n_obj} objects; {p['sequences']} sequences) "
          f"[{profile}] to {out}")
