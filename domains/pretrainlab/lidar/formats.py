"""LiDAR dataset formats: readers and writers.

- KITTI object (Geiger et al. 2012): ``velodyne/NNNNNN.bin`` float32 ``(N, 4)`` x, y, z, intensity in
  the LiDAR frame; ``label_2/NNNNNN.txt`` (type, truncated, occluded, alpha, 2D bbox, h w l,
  x y z of the bottom centre in the rectified camera frame, rotation_y [, score]);
  ``calib/NNNNNN.txt`` (P0-P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo).
- KITTI raw / odometry sequences: ``sequences/SS/velodyne/NNNNNN.bin`` (+ ``poses.txt``); this
  project's simulator adds ``sequences/SS/flow/NNNNNN.npy``: ``(N_t, 3)`` float32 displacement of
  each point of frame ``t`` into the LiDAR frame of frame ``t + 1`` (exact scene flow).
- OpenPCDet custom format: ``points/NAME.npy`` ``(N, >=3)`` and ``labels/NAME.txt`` lines
  ``x y z dx dy dz heading class`` in the LiDAR frame (box centre), no calibration.
- ``.pcd`` / ``.ply`` point clouds through open3d (intensity 0 unless the file has colours).

Every reader raises :class:`~pretrainlab.core.data.DataError` naming the file and the problem.

Box convention everywhere in this package: LiDAR frame, ``(x, y, z, l, w, h, yaw)`` with
``(x, y, z)`` the box centre, ``l`` along the heading, ``yaw`` counter-clockwise from +x.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from pretrainlab.core.data import DataError

CLASSES: tuple[str, ...] = ("Car", "Pedestrian", "Cyclist")
# every type a KITTI label file may hold; those not in CLASSES are read and ignored (DontCare...)
KITTI_TYPES: tuple[str, ...] = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram",
                                "Misc", "DontCare")
POINT_SUFFIXES: tuple[str, ...] = (".bin", ".pcd", ".ply", ".npy")

# A KITTI calibration (the object benchmark's camera 2 / Velodyne set-up, training/calib/000000.txt).
KITTI_P2 = np.array([[721.5377, 0.0, 609.5593, 44.85728], [0.0, 721.5377, 172.854, 0.2163791],
                     [0.0, 0.0, 1.0, 0.002745884]])
KITTI_R0 = np.array([[0.9999239, 0.00983776, -0.007445048], [-0.009869795, 0.9999421, -0.004278459],
                     [0.007402527, 0.004351614, 0.9999631]])
KITTI_TR_VELO_TO_CAM = np.array([[0.007533745, -0.9999714, -0.000616602, -0.004069766],
                                 [0.01480249, 0.0007280733, -0.9998902, -0.07631618],
                                 [0.9998621, 0.00752379, 0.01480755, -0.2717806]])
IMAGE_SIZE: tuple[int, int] = (1242, 375)  # KITTI camera 2 (width, height)


@dataclasses.dataclass
class Calib:
    """KITTI calibration: ``P2 (3, 4)``, ``R0 (3, 3)``, ``Tr_velo_to_cam (3, 4)``."""

    P2: np.ndarray
    R0: np.ndarray
    Tr_velo_to_cam: np.ndarray

    @staticmethod
    def default() -> Calib:
        return Calib(KITTI_P2.copy(), KITTI_R0.copy(), KITTI_TR_VELO_TO_CAM.copy())

    def lidar_to_rect(self, pts: np.ndarray) -> np.ndarray:
        """``(N, 3)`` LiDAR -> ``(N, 3)`` rectified camera coordinates."""
        hom = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)
        return (self.R0 @ (self.Tr_velo_to_cam @ hom.T)).T

    def rect_to_lidar(self, pts: np.ndarray) -> np.ndarray:
        """``(N, 3)`` rectified camera -> ``(N, 3)`` LiDAR coordinates."""
        T = np.eye(4)
        T[:3, :4] = self.Tr_velo_to_cam
        R = np.eye(4)
        R[:3, :3] = self.R0
        hom = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)
        return (np.linalg.inv(R @ T) @ hom.T).T[:, :3]

    def rect_to_image(self, pts: np.ndarray) -> np.ndarray:
        """``(N, 3)`` rectified camera -> ``(N, 2)`` pixel coordinates (camera 2)."""
        hom = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)
        uvw = (self.P2 @ hom.T).T
        return uvw[:, :2] / np.maximum(uvw[:, 2:3], 1e-6)

    def to_text(self) -> str:
        def fmt(name: str, m: np.ndarray) -> str:
            return name + ": " + " ".join(f"{v:.12e}" for v in m.reshape(-1))

        P0 = self.P2.copy()
        P0[:, 3] = 0.0
        return "\n".join([fmt("P0", P0), fmt("P1", P0), fmt("P2", self.P2), fmt("P3", self.P2),
                          fmt("R0_rect", self.R0), fmt("Tr_velo_to_cam", self.Tr_velo_to_cam),
                          fmt("Tr_imu_to_velo", np.eye(4)[:3])]) + "\n"


@dataclasses.dataclass
class Object3D:
    """One labelled box: class name, LiDAR-frame box ``(7,)`` and KITTI flags."""

    cls: str
    box: np.ndarray  # (7,) x y z l w h yaw, LiDAR frame, centre
    truncated: float = 0.0
    occluded: int = 0
    bbox2d: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    score: float | None = None


# ---------------------------------------------------------------------------------- point files

def read_velodyne_bin(path: str | Path) -> np.ndarray:
    """KITTI ``.bin`` -> ``(N, 4)`` float32 x, y, z, intensity. DataError on a bad file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(path, f"cannot read point file ({e.strerror or e})") from e
    if len(raw) == 0:
        raise DataError(path, "empty scan (0 bytes)")
    if len(raw) % 16:
        raise DataError(path, f"size {len(raw)} bytes is not a multiple of 16 (KITTI .bin holds float32 x, y, z, intensity)")
    return check_points(np.frombuffer(raw, dtype=np.float32).reshape(-1, 4).copy(), path)


def check_points(pts: np.ndarray, path: str | Path) -> np.ndarray:
    """Reject empty scans and non-finite values (naming the file and the count)."""
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise DataError(path, f"expected an (N, >=3) point array, got shape {tuple(pts.shape)}")
    if len(pts) == 0:
        raise DataError(path, "empty scan (no points)")
    bad = ~np.isfinite(pts).all(axis=1)
    if bad.any():
        raise DataError(path, f"{int(bad.sum())} of {len(pts)} points hold NaN / inf values")
    return pts


def read_npy_points(path: str | Path) -> np.ndarray:
    """OpenPCDet custom ``.npy`` ``(N, >=3)`` -> ``(N, 4)`` (intensity 0 when absent)."""
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(path, f"not a readable .npy array ({e})") from e
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fiu":
        raise DataError(path, f"expected a numeric array, got dtype {arr.dtype}")
    arr = check_points(arr.astype(np.float32), path)
    if arr.shape[1] == 3:
        arr = np.concatenate([arr, np.zeros((len(arr), 1), np.float32)], axis=1)
    return np.ascontiguousarray(arr[:, :4])


def read_open3d_points(path: str | Path) -> np.ndarray:
    """``.pcd`` / ``.ply`` through open3d -> ``(N, 4)`` (intensity = mean colour, else 0)."""
    import open3d as o3d

    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    pcd = o3d.io.read_point_cloud(str(path))
    pts = np.asarray(pcd.points, dtype=np.float32)
    if len(pts) == 0:
        raise DataError(path, "empty scan, or not a point cloud open3d can read")
    inten = np.asarray(pcd.colors, dtype=np.float32).mean(axis=1, keepdims=True) if pcd.has_colors() \
        else np.zeros((len(pts), 1), np.float32)
    return check_points(np.concatenate([pts, inten], axis=1), path)


def read_points(path: str | Path) -> np.ndarray:
    """Any supported point file (``.bin`` / ``.npy`` / ``.pcd`` / ``.ply``) -> ``(N, 4)`` float32."""
    path = Path(path)
    suf = path.suffix.lower()
    if suf == ".bin":
        return read_velodyne_bin(path)
    if suf == ".npy":
        return read_npy_points(path)
    if suf in (".pcd", ".ply"):
        return read_open3d_points(path)
    raise DataError(path, f"unsupported point file type '{suf}'; expected one of {', '.join(POINT_SUFFIXES)}")


def write_velodyne_bin(path: Path, pts: np.ndarray) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.ascontiguousarray(pts[:, :4], dtype=np.float32).tofile(path)


def write_open3d_points(path: Path, pts: np.ndarray) -> None:
    """Write ``.pcd`` / ``.ply`` (intensity as a grey colour)."""
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts[:, :3].astype(np.float64)))
    g = np.clip(pts[:, 3:4], 0, 1).astype(np.float64)
    pcd.colors = o3d.utility.Vector3dVector(np.repeat(g, 3, axis=1))
    if not o3d.io.write_point_cloud(str(path), pcd):
        raise OSError(f"{path}: open3d could not write the point cloud")


def crop_to_range(pts: np.ndarray, pc_range: tuple[float, ...] | list[float]) -> tuple[np.ndarray, int]:
    """Keep points inside ``[x0, y0, z0, x1, y1, z1]``; returns ``(kept (M, 4), n_dropped)``."""
    r = pc_range
    keep = ((pts[:, 0] >= r[0]) & (pts[:, 0] < r[3]) & (pts[:, 1] >= r[1]) & (pts[:, 1] < r[4])
            & (pts[:, 2] >= r[2]) & (pts[:, 2] < r[5]))
    return pts[keep], int((~keep).sum())


# ---------------------------------------------------------------------------------- calibration

def read_calib(path: str | Path) -> Calib:
    """KITTI ``calib/NNNNNN.txt``; needs ``P2``, ``R0_rect`` and ``Tr_velo_to_cam``."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "calibration file missing (KITTI needs calib/NNNNNN.txt for every label file)")
    vals: dict[str, np.ndarray] = {}
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        if ":" not in line:
            raise DataError(path, f"line {i}: expected 'KEY: v1 v2 ...'")
        key, rest = line.split(":", 1)
        try:
            vals[key.strip()] = np.array([float(v) for v in rest.split()])
        except ValueError as e:
            raise DataError(path, f"line {i}: non-numeric value ({e})") from e
    need = {"P2": 12, "R0_rect": 9, "Tr_velo_to_cam": 12}
    for k, n in need.items():
        if k not in vals:
            raise DataError(path, f"calibration lacks '{k}'")
        if vals[k].size != n:
            raise DataError(path, f"'{k}' has {vals[k].size} values, expected {n}")
    return Calib(vals["P2"].reshape(3, 4), vals["R0_rect"].reshape(3, 3), vals["Tr_velo_to_cam"].reshape(3, 4))


# ---------------------------------------------------------------------------------- labels

def box_lidar_to_camera(box: np.ndarray, calib: Calib) -> tuple[np.ndarray, float, tuple[float, float, float]]:
    """LiDAR box ``(7,)`` -> (bottom-centre location in rect camera ``(3,)``, rotation_y, (h, w, l))."""
    x, y, z, l, w, h, yaw = (float(v) for v in box)
    loc = calib.lidar_to_rect(np.array([[x, y, z - h / 2]]))[0]
    ry = -yaw - np.pi / 2
    ry = (ry + np.pi) % (2 * np.pi) - np.pi
    return loc, float(ry), (h, w, l)


def box_camera_to_lidar(loc: np.ndarray, ry: float, hwl: tuple[float, float, float], calib: Calib) -> np.ndarray:
    h, w, l = hwl
    p = calib.rect_to_lidar(np.asarray(loc, dtype=np.float64).reshape(1, 3))[0]
    yaw = -ry - np.pi / 2
    yaw = (yaw + np.pi) % (2 * np.pi) - np.pi
    return np.array([p[0], p[1], p[2] + h / 2, l, w, h, yaw], dtype=np.float32)


def read_kitti_label(path: str | Path, calib: Calib, classes: tuple[str, ...] = CLASSES) -> list[Object3D]:
    """KITTI ``label_2`` file -> objects of ``classes`` (other KITTI types are skipped).

    15 fields per line (16 with a detection score). DataError on a wrong field count, an unknown
    type or non-numeric values.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise DataError(path, f"cannot read label file ({e.strerror or e})") from e
    out: list[Object3D] = []
    for i, line in enumerate(text.splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) not in (15, 16):
            raise DataError(path, f"line {i}: {len(f)} fields, expected 15 (or 16 with a score)")
        if f[0] not in KITTI_TYPES:
            raise DataError(path, f"line {i}: unknown class '{f[0]}' (KITTI types: {', '.join(KITTI_TYPES)})")
        try:
            v = [float(x) for x in f[1:]]
        except ValueError as e:
            raise DataError(path, f"line {i}: non-numeric field ({e})") from e
        if f[0] not in classes:
            continue
        h, w, l_ = v[7], v[8], v[9]
        box = box_camera_to_lidar(np.array(v[10:13]), v[13], (h, w, l_), calib)
        out.append(Object3D(f[0], box, truncated=v[0], occluded=int(v[1]), bbox2d=(v[3], v[4], v[5], v[6]),
                            score=v[14] if len(v) == 15 else None))
    return out


def box_corners(box: np.ndarray) -> np.ndarray:
    """``(7,)`` box -> ``(8, 3)`` corners (bottom 4 then top 4, counter-clockwise)."""
    x, y, z, l, w, h, yaw = box[:7]
    c, s = np.cos(yaw), np.sin(yaw)
    dx = np.array([l, l, -l, -l]) / 2
    dy = np.array([w, -w, -w, w]) / 2
    xs, ys = x + c * dx - s * dy, y + s * dx + c * dy
    bottom = np.stack([xs, ys, np.full(4, z - h / 2)], 1)
    top = np.stack([xs, ys, np.full(4, z + h / 2)], 1)
    return np.concatenate([bottom, top])


def bbox2d_of(box: np.ndarray, calib: Calib) -> tuple[tuple[float, float, float, float], float]:
    """2D image box of a LiDAR box (clipped to the image) and its truncation fraction."""
    rect = calib.lidar_to_rect(box_corners(box))
    if (rect[:, 2] <= 0.1).any():
        return (0.0, 0.0, 0.0, 0.0), 1.0
    uv = calib.rect_to_image(rect)
    x0, y0 = uv.min(0)
    x1, y1 = uv.max(0)
    W, H = IMAGE_SIZE
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, W - 1), min(y1, H - 1)
    full = max((x1 - x0) * (y1 - y0), 1e-6)
    vis = max(cx1 - cx0, 0) * max(cy1 - cy0, 0)
    return (float(cx0), float(cy0), float(cx1), float(cy1)), float(np.clip(1 - vis / full, 0, 1))


def format_kitti_label(obj: Object3D, calib: Calib) -> str:
    """One KITTI ``label_2`` line (with the score as a 16th field when set)."""
    loc, ry, (h, w, l_) = box_lidar_to_camera(obj.box, calib)
    alpha = ry - np.arctan2(loc[0], loc[2])
    alpha = (alpha + np.pi) % (2 * np.pi) - np.pi
    b = obj.bbox2d
    s = (f"{obj.cls} {obj.truncated:.2f} {int(obj.occluded)} {alpha:.2f} {b[0]:.2f} {b[1]:.2f} {b[2]:.2f} {b[3]:.2f} "
         f"{h:.2f} {w:.2f} {l_:.2f} {loc[0]:.2f} {loc[1]:.2f} {loc[2]:.2f} {ry:.2f}")
    if obj.score is not None:
        s += f" {obj.score:.4f}"
    return s


def write_kitti_label(path: Path, objs: list[Object3D], calib: Calib) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(format_kitti_label(o, calib) + "\n" for o in objs))


def read_custom_label(path: str | Path, classes: tuple[str, ...] = CLASSES) -> list[Object3D]:
    """OpenPCDet custom label: ``x y z dx dy dz heading class`` per line (LiDAR frame)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise DataError(path, f"cannot read label file ({e.strerror or e})") from e
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) != 8:
            raise DataError(path, f"line {i}: {len(f)} fields, expected 8 (x y z dx dy dz heading class)")
        if f[7] not in classes:
            raise DataError(path, f"line {i}: unknown class '{f[7]}' (expected one of {', '.join(classes)})")
        try:
            box = np.array([float(x) for x in f[:7]], dtype=np.float32)
        except ValueError as e:
            raise DataError(path, f"line {i}: non-numeric field ({e})") from e
        out.append(Object3D(f[7], box))
    return out


def write_custom_label(path: Path, objs: list[Object3D]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(" ".join(f"{v:.4f}" for v in o.box[:7]) + f" {o.cls}\n" for o in objs))


# ---------------------------------------------------------------------------------- difficulty

def kitti_difficulty(obj: Object3D) -> int:
    """KITTI difficulty: 0 easy, 1 moderate, 2 hard, -1 none (2D height in pixels, occlusion, truncation).

    easy: height >= 40 px, occluded <= 0, truncated <= 0.15; moderate: >= 25 px, <= 1, <= 0.30;
    hard: >= 25 px, <= 2, <= 0.50 (the KITTI object benchmark's definition). The 2D height falls
    with distance, so the levels are set by distance and occlusion.
    """
    h = obj.bbox2d[3] - obj.bbox2d[1]
    for lvl, (mh, mo, mt) in enumerate(((40, 0, 0.15), (25, 1, 0.30), (25, 2, 0.50))):
        if h >= mh and obj.occluded <= mo and obj.truncated <= mt:
            return lvl
    return -1


# ---------------------------------------------------------------------------------- datasets on disk

def read_split(root: Path, split: str) -> list[str]:
    """``ImageSets/<split>.txt`` (frame ids) or, when absent, every velodyne file's stem."""
    f = Path(root) / "ImageSets" / f"{split}.txt"
    if f.exists():
        return [s.strip() for s in f.read_text().split() if s.strip()]
    raise DataError(f, f"split file missing (expected ImageSets/{split}.txt listing frame ids)")


@dataclasses.dataclass
class Frame:
    """One labelled scan: points ``(N, 4)``, objects, calibration and the source file."""

    points: np.ndarray
    objects: list[Object3D]
    calib: Calib | None
    path: Path
    n_cropped: int = 0


def load_kitti_frame(root: Path, fid: str) -> Frame:
    """``root/training/{velodyne,label_2,calib}/<fid>`` (KITTI object layout)."""
    base = Path(root) / "training"
    pts = read_velodyne_bin(base / "velodyne" / f"{fid}.bin")
    lab = base / "label_2" / f"{fid}.txt"
    calib = read_calib(base / "calib" / f"{fid}.txt")
    objs = read_kitti_label(lab, calib) if lab.exists() else []
    return Frame(pts, objs, calib, base / "velodyne" / f"{fid}.bin")


def load_custom_frame(root: Path, name: str) -> Frame:
    """``root/points/<name>.npy`` + ``root/labels/<name>.txt`` (OpenPCDet custom layout)."""
    pts = read_npy_points(Path(root) / "points" / f"{name}.npy")
    lab = Path(root) / "labels" / f"{name}.txt"
    return Frame(pts, read_custom_label(lab) if lab.exists() else [], None, Path(root) / "points" / f"{name}.npy")


def detect_layout(root: Path) -> str:
    """``kitti`` (training/velodyne), ``custom`` (points/*.npy) or DataError."""
    root = Path(root)
    if (root / "training" / "velodyne").is_dir():
        return "kitti"
    if (root / "points").is_dir():
        return "custom"
    raise DataError(root, "not a KITTI object folder (training/velodyne/) nor an OpenPCDet custom folder (points/)")


def load_frames(root: Path, split: str) -> list[Frame]:
    """Every frame of ``split`` in a KITTI object or OpenPCDet custom dataset folder."""
    layout = detect_layout(root)
    ids = read_split(root, split)
    fn = load_kitti_frame if layout == "kitti" else load_custom_frame
    return [fn(root, i) for i in ids]


def read_poses(path: Path) -> np.ndarray:
    """KITTI odometry ``poses.txt`` -> ``(T, 4, 4)`` (12 values per line)."""
    rows = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        v = line.split()
        if len(v) != 12:
            raise DataError(path, f"line {i}: {len(v)} values, expected 12 (a 3x4 pose)")
        m = np.eye(4)
        m[:3] = np.array([float(x) for x in v]).reshape(3, 4)
        rows.append(m)
    return np.stack(rows) if rows else np.zeros((0, 4, 4))


def list_sequences(root: Path) -> list[Path]:
    """``root/sequences/*/velodyne`` folders (KITTI raw / odometry layout)."""
    seqs = sorted(p.parent for p in (Path(root) / "sequences").glob("*/velodyne") if p.is_dir())
    return seqs
