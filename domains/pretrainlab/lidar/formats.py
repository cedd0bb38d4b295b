"""LiDAR dataset formats: readers and writers, streamed (a split is an index; files are read per item).

- KITTI object (Geiger et al. 2012): ``training/velodyne/NNNNNN.bin`` float32 ``(N, 4)`` x, y, z,
  intensity in the LiDAR frame; ``training/label_2/NNNNNN.txt`` (type, truncated, occluded, alpha,
  2D bbox, h w l, x y z of the bottom centre in the rectified camera frame, rotation_y [, score]);
  ``training/calib/NNNNNN.txt`` (P0-P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo);
  ``training/image_2/NNNNNN.png`` (only its size is read: the camera field of view);
  ``ImageSets/{train,val}.txt``.
- Scan sequences for pre-training (:func:`list_sequences`): KITTI odometry / SemanticKITTI
  ``sequences/SS/velodyne/NNNNNN.bin``; KITTI raw
  ``YYYY_MM_DD/YYYY_MM_DD_drive_NNNN_sync/velodyne_points/data/NNNNNNNNNN.bin``; KITTI-360
  ``data_3d_raw/<seq>/velodyne_points/data/NNNNNNNNNN.bin``. Scene flow of scan ``t`` into the frame
  of scan ``t + 1`` (optional): ``flow/<stem>.npy`` beside the scan folder (see ``temporal_flow``).
- OpenPCDet custom format: ``points/NAME.npy`` ``(N, >=3)`` and ``labels/NAME.txt`` lines
  ``x y z dx dy dz heading class`` in the LiDAR frame (box centre), no calibration.
- ``.pcd`` (ascii / binary / binary_compressed) and ``.ply`` (ascii / binary) point clouds: the
  header is parsed here and its declared point count checked against the file size and the decode
  limit before anything is allocated; a file that holds fewer points than it declares is an error.

Every reader raises :class:`~pretrainlab.core.data.DataError` naming the file and the problem.

Box convention for training (``Object3D.box``): LiDAR frame, ``(x, y, z, l, w, h, yaw)`` with
``(x, y, z)`` the box centre, ``l`` along the heading, ``yaw`` counter-clockwise from +x. The
evaluation works on :class:`KittiAnnos` in the camera frame, as the KITTI devkit does.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pretrainlab.core.data import DataError

CLASSES: tuple[str, ...] = ("Car", "Pedestrian", "Cyclist")
# every type a KITTI label file may hold (the object benchmark's devkit, readme.txt)
KITTI_TYPES: tuple[str, ...] = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram",
                                "Misc", "DontCare")
POINT_SUFFIXES: tuple[str, ...] = (".bin", ".pcd", ".ply", ".npy")
MAX_TEXT_BYTES = 64 * 2**20  # a label / calib / split / pose file larger than this is not one

# A KITTI calibration (the object benchmark's camera 2 / Velodyne set-up, training/calib/000000.txt).
KITTI_P2 = np.array([[721.5377, 0.0, 609.5593, 44.85728], [0.0, 721.5377, 172.854, 0.2163791],
                     [0.0, 0.0, 1.0, 0.002745884]])
KITTI_R0 = np.array([[0.9999239, 0.00983776, -0.007445048], [-0.009869795, 0.9999421, -0.004278459],
                     [0.007402527, 0.004351614, 0.9999631]])
KITTI_TR_VELO_TO_CAM = np.array([[0.007533745, -0.9999714, -0.000616602, -0.004069766],
                                 [0.01480249, 0.0007280733, -0.9998902, -0.07631618],
                                 [0.9998621, 0.00752379, 0.01480755, -0.2717806]])
KITTI_IMAGE_SHAPE: tuple[int, int] = (375, 1242)  # (height, width) of camera 2 in the object benchmark


def read_text(path: str | Path, what: str) -> str:
    """A small UTF-8 text file (label, calibration, split list, poses) or DataError."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError as e:
        raise DataError(path, f"{what} not found") from e
    except OSError as e:
        raise DataError(path, f"cannot read {what} ({e.strerror or e})") from e
    if path.is_dir():
        raise DataError(path, f"is a folder, expected a {what}")
    if size > MAX_TEXT_BYTES:
        raise DataError(path, f"{size} bytes: too large for a {what} (limit {MAX_TEXT_BYTES})")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(path, f"cannot read {what} ({e.strerror or e})") from e
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(path, f"{what} is not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r})") from e


def _floats(path: Path, line_no: int, fields: Sequence[str]) -> list[float]:
    try:
        vals = [float(x) for x in fields]
    except ValueError as e:
        raise DataError(path, f"line {line_no}: non-numeric field ({e})") from e
    if not all(np.isfinite(vals)):
        raise DataError(path, f"line {line_no}: NaN / inf value")
    return vals


# ---------------------------------------------------------------------------------- calibration

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
        M = self.R0 @ self.Tr_velo_to_cam
        return pts[:, :3] @ M[:, :3].T + M[:, 3]

    def rect_to_lidar(self, pts: np.ndarray) -> np.ndarray:
        """``(N, 3)`` rectified camera -> ``(N, 3)`` LiDAR coordinates."""
        T = np.eye(4)
        T[:3, :4] = self.Tr_velo_to_cam
        R = np.eye(4)
        R[:3, :3] = self.R0
        hom = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)
        return (np.linalg.inv(R @ T) @ hom.T).T[:, :3]

    def rect_to_image(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N, 3)`` rectified camera -> ``(N, 2)`` pixels of camera 2 and ``(N,)`` depth.

        As OpenPCDet's ``calibration_kitti.rect_to_img``: ``P2 @ [p, 1]`` divided by the point's
        rectified z (not by the projected w), depth ``= w - P2[2, 3]``.
        """
        uvw = pts @ self.P2[:, :3].T + self.P2[:, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = uvw[:, :2] / pts[:, 2:3]
        return uv, uvw[:, 2] - self.P2[2, 3]

    def to_text(self) -> str:
        def fmt(name: str, m: np.ndarray) -> str:
            return name + ": " + " ".join(f"{v:.12e}" for v in m.reshape(-1))

        P0 = self.P2.copy()
        P0[:, 3] = 0.0
        return "\n".join([fmt("P0", P0), fmt("P1", P0), fmt("P2", self.P2), fmt("P3", self.P2),
                          fmt("R0_rect", self.R0), fmt("Tr_velo_to_cam", self.Tr_velo_to_cam),
                          fmt("Tr_imu_to_velo", np.eye(4)[:3])]) + "\n"


def read_calib(path: str | Path) -> Calib:
    """KITTI ``calib/NNNNNN.txt``; needs ``P2``, ``R0_rect`` and ``Tr_velo_to_cam``."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "calibration file missing (KITTI needs calib/NNNNNN.txt for every frame)")
    vals: dict[str, np.ndarray] = {}
    for i, line in enumerate(read_text(path, "calibration file").splitlines(), 1):
        if not line.strip():
            continue
        if ":" not in line:
            raise DataError(path, f"line {i}: expected 'KEY: v1 v2 ...'")
        key, rest = line.split(":", 1)
        vals[key.strip()] = np.array(_floats(path, i, rest.split()))
    need = {"P2": 12, "R0_rect": 9, "Tr_velo_to_cam": 12}
    for k, n in need.items():
        if k not in vals:
            raise DataError(path, f"calibration lacks '{k}'")
        if vals[k].size != n:
            raise DataError(path, f"'{k}' has {vals[k].size} values, expected {n}")
    return Calib(vals["P2"].reshape(3, 4), vals["R0_rect"].reshape(3, 3), vals["Tr_velo_to_cam"].reshape(3, 4))


def read_image_shape(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of a camera image from its header (the pixels are not decoded)."""
    from pretrainlab.core.guards import image_size

    w, h, _mode = image_size(path)
    if w < 1 or h < 1:
        raise DataError(path, f"image of size {w} x {h}")
    return h, w


def fov_mask(points: np.ndarray, calib: Calib, image_shape: tuple[int, int]) -> np.ndarray:
    """Points inside camera 2's field of view: OpenPCDet ``get_fov_flag`` (``FOV_POINTS_ONLY``).

    ``0 <= u < W``, ``0 <= v < H`` and depth ``>= 0`` with ``image_shape = (H, W)`` of the frame's image.
    """
    uv, depth = calib.rect_to_image(calib.lidar_to_rect(points[:, :3].astype(np.float64)))
    H, W = image_shape
    with np.errstate(invalid="ignore"):
        return (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H) & (depth >= 0)


# ---------------------------------------------------------------------------------- point files

def read_velodyne_bin(path: str | Path) -> np.ndarray:
    """KITTI ``.bin`` -> ``(N, 4)`` float32 x, y, z, intensity. DataError on a bad file."""
    from pretrainlab.core.guards import check_decode_size

    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError as e:
        raise DataError(path, "point file not found") from e
    except OSError as e:
        raise DataError(path, f"cannot read point file ({e.strerror or e})") from e
    if path.is_dir():
        raise DataError(path, "is a folder, expected a .bin point file")
    if size == 0:
        raise DataError(path, "empty scan (0 bytes)")
    if size % 16:
        raise DataError(path, f"size {size} bytes is not a multiple of 16 (KITTI .bin holds float32 x, y, z, intensity)")
    check_decode_size(path, (size // 16, 4), 4, "points")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(path, f"cannot read point file ({e.strerror or e})") from e
    if len(raw) != size:
        raise DataError(path, f"read {len(raw)} of {size} bytes (the file changed while reading)")
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
    from pretrainlab.core.guards import load_npy

    path = Path(path)
    arr = np.asarray(load_npy(path))
    if arr.dtype.kind not in "fiu":
        raise DataError(path, f"expected a numeric array, got dtype {arr.dtype}")
    arr = check_points(arr.astype(np.float32), path)
    if arr.shape[1] == 3:
        arr = np.concatenate([arr, np.zeros((len(arr), 1), np.float32)], axis=1)
    return np.ascontiguousarray(arr[:, :4])


_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
              "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
              "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}
_PCD_TYPES = {("F", 4): "f4", ("F", 8): "f8", ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8",
              ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8"}
_MIN_ASCII_BYTES_PER_POINT = 6  # "0 0 0\n": the shortest text line of three coordinates


def _intensity(path: Path, cols: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Intensity from an ``intensity`` / ``reflectance`` / ``scalar_*`` field, else grey colour / 255, else 0."""
    for k in ("intensity", "reflectance", "remission", "scalar_intensity"):
        if k in cols:
            return cols[k].astype(np.float32)
    if all(c in cols for c in ("red", "green", "blue")):
        rgb = np.stack([cols[c].astype(np.float32) for c in ("red", "green", "blue")], 1)
        scale = 255.0 if any(cols[c].dtype.kind in "iu" for c in ("red", "green", "blue")) else 1.0
        return rgb.mean(1) / scale
    if "rgb" in cols:  # PCD packs colour in one float
        packed = np.ascontiguousarray(cols["rgb"].astype(np.float32)).view(np.uint32)
        rgb = np.stack([(packed >> s) & 255 for s in (16, 8, 0)], 1).astype(np.float32)
        return rgb.mean(1) / 255.0
    return np.zeros(n, np.float32)


def _xyzi(path: Path, cols: dict[str, np.ndarray], n: int) -> np.ndarray:
    for c in ("x", "y", "z"):
        if c not in cols:
            raise DataError(path, f"no '{c}' field (fields: {', '.join(cols) or 'none'})")
    pts = np.stack([cols["x"], cols["y"], cols["z"]], 1).astype(np.float32)
    return check_points(np.concatenate([pts, _intensity(path, cols, n)[:, None]], 1), path)


def _ascii_table(path: Path, body: bytes, n: int, n_cols: int, what: str) -> np.ndarray:
    """``n`` lines of ``n_cols`` numbers from ``body`` (exactly; fewer is an error)."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as e:
        raise DataError(path, f"ascii {what} holds a non-ASCII byte at offset {e.start}") from e
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < n:
        raise DataError(path, f"header declares {n} points but the file holds {len(lines)} data lines: truncated")
    rows = lines[:n]
    try:
        arr = np.array([[float(v) for v in ln.split()[:n_cols]] for ln in rows], np.float64)
    except ValueError as e:
        raise DataError(path, f"non-numeric value in the {what} data ({e})") from e
    if n and arr.shape != (n, n_cols):
        raise DataError(path, f"a data line has fewer than the {n_cols} values the header declares")
    return arr.reshape(n, n_cols)


def read_ply_points(path: str | Path) -> np.ndarray:
    """``.ply`` (ascii, binary_little_endian, binary_big_endian) vertex x, y, z (+ intensity / colour) -> ``(N, 4)``."""
    from pretrainlab.core.guards import check_decode_size, check_payload

    path = Path(path)
    raw = _read_head(path, "PLY")
    if not raw.startswith(b"ply"):
        raise DataError(path, "not a PLY file (no 'ply' magic)")
    end = raw.find(b"end_header")
    if end < 0:
        raise DataError(path, "PLY header has no 'end_header' within its first 64 KiB")
    nl = raw.find(b"\n", end)
    offset = len(raw) if nl < 0 else nl + 1
    try:
        header = raw[:end].decode("ascii").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(path, "PLY header is not ASCII") from e
    fmt, elements = None, []  # [name, count, [(prop, dtype)]]
    for ln in header[1:]:
        f = ln.split()
        if not f or f[0] in ("comment", "obj_info"):
            continue
        if f[0] == "format" and len(f) >= 2:
            fmt = f[1]
        elif f[0] == "element" and len(f) == 3:
            try:
                count = int(f[2])
            except ValueError as e:
                raise DataError(path, f"PLY element '{f[1]}' has a non-integer count {f[2]!r}") from e
            if count < 0:
                raise DataError(path, f"PLY element '{f[1]}' declares a negative count {count}")
            elements.append([f[1], count, []])
        elif f[0] == "property" and elements:
            if f[1] == "list":
                elements[-1][2].append((f[-1], None))
            elif f[1] in _PLY_TYPES and len(f) == 3:
                elements[-1][2].append((f[2], _PLY_TYPES[f[1]]))
            else:
                raise DataError(path, f"PLY property of unknown type: {ln.strip()!r}")
        else:
            raise DataError(path, f"unexpected PLY header line {ln.strip()!r}")
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise DataError(path, f"unsupported PLY format {fmt!r}")
    if not elements or elements[0][0] != "vertex":
        raise DataError(path, "the PLY file's first element is not 'vertex'")
    _, n, props = elements[0]
    if any(t is None for _, t in props):
        raise DataError(path, "PLY vertex element has a list property (not a point cloud)")
    if fmt == "ascii":
        size = path.stat().st_size - offset
        if n * _MIN_ASCII_BYTES_PER_POINT > size:
            raise DataError(path, f"header declares {n} vertices but the file holds only {size} bytes of data: "
                                  "truncated or corrupt")
        check_decode_size(path, (n, len(props)), 8, "vertices")
        table = _ascii_table(path, _read_all(path)[offset:], n, len(props), "PLY")
        cols = {name: table[:, i] for i, (name, _) in enumerate(props)}
    else:
        end_char = "<" if fmt == "binary_little_endian" else ">"
        dt = np.dtype([(name, end_char + t) for name, t in props])
        check_payload(path, (n,), dt.itemsize, offset, what="PLY vertices")
        data = np.fromfile(path, dtype=dt, count=n, offset=offset)
        if len(data) != n:
            raise DataError(path, f"read {len(data)} of the {n} vertices the header declares")
        cols = {name: data[name] for name, _ in props}
    return _xyzi(path, cols, n)


def _read_head(path: Path, what: str, n: int = 65536) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except FileNotFoundError as e:
        raise DataError(path, "point file not found") from e
    except IsADirectoryError as e:
        raise DataError(path, f"is a folder, expected a {what} file") from e
    except OSError as e:
        raise DataError(path, f"cannot read {what} file ({e.strerror or e})") from e


def _read_all(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(path, f"cannot read point file ({e.strerror or e})") from e


def read_pcd_points(path: str | Path) -> np.ndarray:
    """``.pcd`` v0.7 (ascii, binary, binary_compressed) fields x, y, z (+ intensity / rgb) -> ``(N, 4)``."""
    from pretrainlab.core.guards import check_decode_size, check_payload

    path = Path(path)
    raw = _read_head(path, "PCD")
    hdr: dict[str, list[str]] = {}
    offset = 0
    for line in raw.split(b"\n"):
        offset += len(line) + 1
        s = line.strip()
        if not s or s.startswith(b"#"):
            continue
        try:
            key, *vals = s.decode("ascii").split()
        except UnicodeDecodeError as e:
            raise DataError(path, "PCD header is not ASCII (not a PCD file?)") from e
        hdr[key.upper()] = vals
        if key.upper() == "DATA":
            break
    else:
        raise DataError(path, "not a PCD file (no DATA line in its header)")
    for k in ("FIELDS", "SIZE", "TYPE", "DATA"):
        if k not in hdr:
            raise DataError(path, f"PCD header lacks {k}")
    fields = hdr["FIELDS"]
    counts = hdr.get("COUNT", ["1"] * len(fields))
    if not (len(hdr["SIZE"]) == len(hdr["TYPE"]) == len(counts) == len(fields)):
        raise DataError(path, "PCD header: FIELDS, SIZE, TYPE and COUNT differ in length")
    try:
        n = int(hdr["POINTS"][0]) if "POINTS" in hdr else int(hdr["WIDTH"][0]) * int(hdr.get("HEIGHT", ["1"])[0])
        sizes, cnts = [int(v) for v in hdr["SIZE"]], [int(v) for v in counts]
    except (ValueError, IndexError) as e:
        raise DataError(path, f"PCD header holds a non-integer POINTS / SIZE / COUNT ({e})") from e
    if n < 0 or any(c < 1 for c in cnts):
        raise DataError(path, f"PCD header declares a negative point count {n} or a zero COUNT")
    try:
        types = [np.dtype(_PCD_TYPES[(t, s)]) for t, s in zip(hdr["TYPE"], sizes)]
    except KeyError as e:
        raise DataError(path, f"unsupported PCD field type / size {e.args[0]}") from e
    dt = np.dtype([(f if c == 1 else f"{f}", t if c == 1 else (t, (c,))) for f, t, c in zip(fields, types, cnts)])
    mode = hdr["DATA"][0].lower() if hdr["DATA"] else ""
    if mode == "ascii":
        size = path.stat().st_size - offset
        if n * _MIN_ASCII_BYTES_PER_POINT > size:
            raise DataError(path, f"header declares {n} points but the file holds only {size} bytes of data: "
                                  "truncated or corrupt")
        check_decode_size(path, (n, sum(cnts)), 8, "points")
        table = _ascii_table(path, _read_all(path)[offset:], n, sum(cnts), "PCD")
        starts = np.cumsum([0, *cnts[:-1]])
        cols = {f: table[:, s] for f, s in zip(fields, starts)}
    elif mode == "binary":
        check_payload(path, (n,), dt.itemsize, offset, what="PCD points")
        data = np.fromfile(path, dtype=dt, count=n, offset=offset)
        if len(data) != n:
            raise DataError(path, f"read {len(data)} of the {n} points the header declares")
        cols = {f: data[f] if data[f].ndim == 1 else data[f][:, 0] for f in fields}
    elif mode == "binary_compressed":
        check_decode_size(path, (n,), dt.itemsize, "PCD points")
        body = _read_all(path)[offset:]
        if len(body) < 8:
            raise DataError(path, "binary_compressed PCD is truncated (no size words)")
        csize, usize = (int(v) for v in np.frombuffer(body[:8], "<u4"))
        if usize != n * dt.itemsize:
            raise DataError(path, f"binary_compressed PCD: {usize} uncompressed bytes for {n} points of "
                                  f"{dt.itemsize} bytes")
        if csize > len(body) - 8:
            raise DataError(path, f"binary_compressed PCD declares {csize} compressed bytes, holds {len(body) - 8}")
        flat = lzf_decompress(path, body[8:8 + csize], usize)
        cols, pos = {}, 0
        for f, t, c in zip(fields, types, cnts):  # column-major: each field's n values in turn
            k = n * t.itemsize * c
            cols[f] = np.frombuffer(flat[pos:pos + k], t).reshape(n, c)[:, 0]
            pos += k
    else:
        raise DataError(path, f"unsupported PCD DATA mode {mode!r} (ascii, binary, binary_compressed)")
    return _xyzi(path, cols, n)


def lzf_decompress(path: Path, src: bytes, out_size: int) -> bytes:
    """LZF (liblzf, as PCL's binary_compressed) -> exactly ``out_size`` bytes, or DataError."""
    out = bytearray(out_size)
    i = o = 0
    n = len(src)
    while i < n:
        ctrl = src[i]
        i += 1
        if ctrl < 32:  # literal run of ctrl + 1 bytes
            k = ctrl + 1
            if i + k > n or o + k > out_size:
                raise DataError(path, "corrupt binary_compressed PCD data (literal run past the end)")
            out[o:o + k] = src[i:i + k]
            i += k
            o += k
        else:  # back reference
            k = ctrl >> 5
            if k == 7:
                if i >= n:
                    raise DataError(path, "corrupt binary_compressed PCD data (truncated back reference)")
                k += src[i]
                i += 1
            if i >= n:
                raise DataError(path, "corrupt binary_compressed PCD data (truncated back reference)")
            ref = o - ((ctrl & 31) << 8) - src[i] - 1
            i += 1
            k += 2
            if ref < 0 or o + k > out_size:
                raise DataError(path, "corrupt binary_compressed PCD data (back reference out of range)")
            for _ in range(k):  # may overlap: byte by byte
                out[o] = out[ref]
                o += 1
                ref += 1
    if o != out_size:
        raise DataError(path, f"binary_compressed PCD decompressed to {o} bytes, expected {out_size}")
    return bytes(out)


def read_points(path: str | Path) -> np.ndarray:
    """Any supported point file (``.bin`` / ``.npy`` / ``.pcd`` / ``.ply``) -> ``(N, 4)`` float32."""
    path = Path(path)
    suf = path.suffix.lower()
    if suf == ".bin":
        return read_velodyne_bin(path)
    if suf == ".npy":
        return read_npy_points(path)
    if suf == ".pcd":
        return read_pcd_points(path)
    if suf == ".ply":
        return read_ply_points(path)
    raise DataError(path, f"unsupported point file type '{suf}'; expected one of {', '.join(POINT_SUFFIXES)}")


def write_velodyne_bin(path: Path, pts: np.ndarray) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.ascontiguousarray(pts[:, :4], dtype=np.float32).tofile(path)


def write_pcd(path: Path, pts: np.ndarray, binary: bool = True) -> None:
    """``.pcd`` v0.7 with fields x y z intensity (binary or ascii)."""
    p = np.ascontiguousarray(pts[:, :4], dtype=np.float32)
    head = ("# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z intensity\nSIZE 4 4 4 4\n"
            f"TYPE F F F F\nCOUNT 1 1 1 1\nWIDTH {len(p)}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {len(p)}\n"
            f"DATA {'binary' if binary else 'ascii'}\n")
    body = p.tobytes() if binary else "".join(" ".join(f"{v:.6g}" for v in r) + "\n" for r in p).encode()
    Path(path).write_bytes(head.encode() + body)


def write_ply(path: Path, pts: np.ndarray, binary: bool = True) -> None:
    """``.ply`` with vertex properties x y z intensity (binary little-endian or ascii)."""
    p = np.ascontiguousarray(pts[:, :4], dtype=np.float32)
    head = (f"ply\nformat {'binary_little_endian' if binary else 'ascii'} 1.0\nelement vertex {len(p)}\n"
            "property float x\nproperty float y\nproperty float z\nproperty float intensity\nend_header\n")
    body = p.astype("<f4").tobytes() if binary else "".join(" ".join(f"{v:.6g}" for v in r) + "\n" for r in p).encode()
    Path(path).write_bytes(head.encode() + body)


def crop_to_range(pts: np.ndarray, pc_range: Sequence[float]) -> tuple[np.ndarray, int]:
    """Keep points inside ``[x0, y0, z0, x1, y1, z1]``; returns ``(kept (M, 4), n_dropped)``."""
    r = pc_range
    keep = ((pts[:, 0] >= r[0]) & (pts[:, 0] < r[3]) & (pts[:, 1] >= r[1]) & (pts[:, 1] < r[4])
            & (pts[:, 2] >= r[2]) & (pts[:, 2] < r[5]))
    return pts[keep], int((~keep).sum())


# ---------------------------------------------------------------------------------- boxes

@dataclasses.dataclass
class Object3D:
    """One box in the LiDAR frame: class name, box ``(7,)``, KITTI flags and an optional score."""

    cls: str
    box: np.ndarray  # (7,) x y z l w h yaw, LiDAR frame, centre
    truncated: float = 0.0
    occluded: int = 0
    bbox2d: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    score: float | None = None


def wrap_angle(a: np.ndarray | float) -> np.ndarray | float:
    """Angle(s) in ``[-pi, pi)``."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def boxes_lidar_to_camera(boxes: np.ndarray, calib: Calib) -> np.ndarray:
    """``(N, 7)`` LiDAR boxes -> ``(N, 7)`` camera boxes ``(x, y, z, l, h, w, ry)``, bottom centre.

    OpenPCDet ``box_utils.boxes3d_lidar_to_kitti_camera``; ``ry = -yaw - pi/2`` (wrapped to ``[-pi, pi)``).
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 7)
    bottom = b[:, :3].copy()
    bottom[:, 2] -= b[:, 5] / 2
    loc = calib.lidar_to_rect(bottom) if len(b) else np.zeros((0, 3))
    return np.c_[loc, b[:, 3], b[:, 5], b[:, 4], wrap_angle(-b[:, 6] - np.pi / 2)]


def boxes_camera_to_lidar(cam: np.ndarray, calib: Calib) -> np.ndarray:
    """``(N, 7)`` camera boxes ``(x, y, z, l, h, w, ry)`` -> LiDAR boxes ``(x, y, z, l, w, h, yaw)``."""
    c = np.asarray(cam, np.float64).reshape(-1, 7)
    xyz = calib.rect_to_lidar(c[:, :3]) if len(c) else np.zeros((0, 3))
    xyz[:, 2] += c[:, 4] / 2
    return np.c_[xyz, c[:, 3], c[:, 5], c[:, 4], wrap_angle(-c[:, 6] - np.pi / 2)].astype(np.float32)


def camera_box_corners(cam: np.ndarray) -> np.ndarray:
    """``(N, 7)`` camera boxes -> ``(N, 8, 3)`` corners (OpenPCDet ``boxes3d_to_corners3d_kitti_camera``)."""
    c = np.asarray(cam, np.float64).reshape(-1, 7)
    l, h, w, ry = c[:, 3:4], c[:, 4:5], c[:, 5:6], c[:, 6]
    xc = np.concatenate([l, l, -l, -l, l, l, -l, -l], 1) / 2
    zc = np.concatenate([w, -w, -w, w, w, -w, -w, w], 1) / 2
    yc = np.concatenate([np.zeros((len(c), 4)), -np.repeat(h, 4, 1)], 1)
    cos, sin = np.cos(ry)[:, None], np.sin(ry)[:, None]
    x = xc * cos + zc * sin  # rows of R^T: [cos, 0, -sin; 0, 1, 0; sin, 0, cos] applied as p @ R
    z = -xc * sin + zc * cos
    return np.stack([x + c[:, 0:1], yc + c[:, 1:2], z + c[:, 2:3]], -1)


def camera_boxes_to_image(cam: np.ndarray, calib: Calib, image_shape: tuple[int, int] | None) -> np.ndarray:
    """``(N, 4)`` 2D boxes ``x1 y1 x2 y2`` of camera boxes, clipped to the image (OpenPCDet
    ``boxes3d_kitti_camera_to_imageboxes``)."""
    if len(cam) == 0:
        return np.zeros((0, 4))
    corners = camera_box_corners(cam)
    uv, _ = calib.rect_to_image(corners.reshape(-1, 3))
    uv = uv.reshape(-1, 8, 2)
    box = np.concatenate([uv.min(1), uv.max(1)], 1)
    if image_shape is not None:
        H, W = image_shape
        box[:, [0, 2]] = np.clip(box[:, [0, 2]], 0, W - 1)
        box[:, [1, 3]] = np.clip(box[:, [1, 3]], 0, H - 1)
    return box


def box_corners(box: np.ndarray) -> np.ndarray:
    """``(7,)`` LiDAR box -> ``(8, 3)`` corners (bottom 4 then top 4, counter-clockwise)."""
    x, y, z, l, w, h, yaw = box[:7]
    c, s = np.cos(yaw), np.sin(yaw)
    dx = np.array([l, l, -l, -l]) / 2
    dy = np.array([w, -w, -w, w]) / 2
    xs, ys = x + c * dx - s * dy, y + s * dx + c * dy
    bottom = np.stack([xs, ys, np.full(4, z - h / 2)], 1)
    top = np.stack([xs, ys, np.full(4, z + h / 2)], 1)
    return np.concatenate([bottom, top])


def bboxes2d_of(boxes: np.ndarray, calib: Calib, image_shape: tuple[int, int] = KITTI_IMAGE_SHAPE
                ) -> tuple[np.ndarray, np.ndarray]:
    """2D image boxes ``(K, 4)`` of LiDAR boxes ``(K, 7)`` (clipped to the image) and their truncation
    ``(K,)``: the fraction of the unclipped box outside the image (1 for a box reaching behind the camera)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 7)
    if len(b) == 0:
        return np.zeros((0, 4)), np.zeros(0)
    corners = camera_box_corners(boxes_lidar_to_camera(b, calib))  # (K, 8, 3)
    behind = (corners[..., 2] <= 0.1).any(1)
    uv, _ = calib.rect_to_image(np.where(behind[:, None, None], 1.0, corners).reshape(-1, 3))
    uv = uv.reshape(-1, 8, 2)
    lo, hi = uv.min(1), uv.max(1)
    H, W = image_shape
    clo = np.maximum(lo, 0)
    chi = np.minimum(hi, [W - 1, H - 1])
    full = np.maximum((hi - lo).prod(1), 1e-6)
    vis = np.clip(chi - clo, 0, None).prod(1)
    box = np.concatenate([clo, chi], 1)
    trunc = np.clip(1 - vis / full, 0, 1)
    box[behind] = 0.0
    trunc[behind] = 1.0
    return box, trunc


# ---------------------------------------------------------------------------------- KITTI label files

@dataclasses.dataclass
class KittiAnnos:
    """One KITTI label / detection file in the camera frame, as the devkit reads it (``get_label_anno``).

    ``name (N,)``, ``truncated (N,)``, ``occluded (N,)``, ``alpha (N,)``, ``bbox (N, 4)`` x1 y1 x2 y2,
    ``dimensions (N, 3)`` **l, h, w**, ``location (N, 3)`` bottom centre, ``rotation_y (N,)``,
    ``score (N,)`` (0 for labels).
    """

    name: list[str]
    truncated: np.ndarray
    occluded: np.ndarray
    alpha: np.ndarray
    bbox: np.ndarray
    dimensions: np.ndarray
    location: np.ndarray
    rotation_y: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.name)

    @staticmethod
    def empty() -> KittiAnnos:
        z = np.zeros(0)
        return KittiAnnos([], z, np.zeros(0, np.int64), z, np.zeros((0, 4)), np.zeros((0, 3)), np.zeros((0, 3)), z, z)

    def camera_boxes(self) -> np.ndarray:
        """``(N, 7)`` ``x y z l h w ry``."""
        return np.c_[self.location, self.dimensions, self.rotation_y].reshape(-1, 7)

    def select(self, keep: np.ndarray) -> KittiAnnos:
        idx = np.flatnonzero(keep)
        return KittiAnnos([self.name[i] for i in idx], self.truncated[idx], self.occluded[idx], self.alpha[idx],
                          self.bbox[idx], self.dimensions[idx], self.location[idx], self.rotation_y[idx],
                          self.score[idx])


def parse_kitti_annos(text: str, path: str | Path, detections: bool = False) -> KittiAnnos:
    """Lines of a KITTI ``label_2`` file (15 fields) or detection file (16 fields, score last).

    Every KITTI type is read (Van, Person_sitting, DontCare ...); blank lines are skipped; an empty
    file is no object. DataError names the line for a wrong field count, an unknown type, a
    non-numeric or non-finite value, or a non-integer occlusion level.
    """
    path = Path(path)
    rows, names = [], []
    for i, line in enumerate(text.splitlines(), 1):
        f = line.split()
        if not f:
            continue
        want = (16,) if detections else (15, 16)
        if len(f) not in want:
            expect = "16 (a detection: 15 label fields + score)" if detections else "15 (or 16 with a score)"
            raise DataError(path, f"line {i}: {len(f)} fields, expected {expect}")
        if f[0] not in KITTI_TYPES:
            raise DataError(path, f"line {i}: unknown type '{f[0]}' (KITTI types: {', '.join(KITTI_TYPES)})")
        v = _floats(path, i, f[1:])
        if v[1] != int(v[1]):
            raise DataError(path, f"line {i}: occlusion level {f[2]!r} is not an integer")
        names.append(f[0])
        rows.append(v + [0.0] * (15 - len(v)))
    a = np.array(rows, np.float64).reshape(-1, 15)
    return KittiAnnos(names, a[:, 0], a[:, 1].astype(np.int64), a[:, 2], a[:, 3:7], a[:, [9, 7, 8]],
                      a[:, 10:13], a[:, 13], a[:, 14])


def read_kitti_annos(path: str | Path, detections: bool = False) -> KittiAnnos:
    """A KITTI label file (``detections=False``) or a detection file (16 fields) -> :class:`KittiAnnos`."""
    what = "detection file" if detections else "label file"
    return parse_kitti_annos(read_text(path, what), path, detections)


def annos_to_objects(annos: KittiAnnos, calib: Calib, classes: Sequence[str] = CLASSES) -> list[Object3D]:
    """The boxes of ``classes`` as LiDAR-frame :class:`Object3D` (training targets; other types dropped)."""
    keep = np.array([n in classes for n in annos.name], bool)
    a = annos.select(keep)
    boxes = boxes_camera_to_lidar(a.camera_boxes(), calib)
    return [Object3D(n, boxes[i], truncated=float(a.truncated[i]), occluded=int(a.occluded[i]),
                     bbox2d=tuple(float(v) for v in a.bbox[i]), score=float(a.score[i]) if a.score[i] else None)
            for i, n in enumerate(a.name)]


def objects_to_annos(objs: Sequence[Object3D], calib: Calib, image_shape: tuple[int, int] | None,
                     detections: bool = True) -> KittiAnnos:
    """LiDAR-frame boxes -> camera-frame annotations as OpenPCDet's ``generate_prediction_dicts``.

    ``bbox`` = the projected 3D box clipped to the image, ``alpha = -arctan2(-y, x) + ry``; detections
    get truncation / occlusion ``-1 -1``; labels keep their flags (``bbox`` from the object when set).
    """
    if not objs:
        return KittiAnnos.empty()
    boxes = np.stack([np.asarray(o.box, np.float64) for o in objs])
    cam = boxes_lidar_to_camera(boxes, calib)
    bbox = camera_boxes_to_image(cam, calib, image_shape)
    if not detections:
        given = np.array([o.bbox2d for o in objs], np.float64)
        has = np.abs(given).sum(1) > 0
        bbox[has] = given[has]
    alpha = wrap_angle(-np.arctan2(-boxes[:, 1], boxes[:, 0]) + cam[:, 6])
    n = len(objs)
    tr = -np.ones(n) if detections else np.array([o.truncated for o in objs], np.float64)
    oc = -np.ones(n, np.int64) if detections else np.array([o.occluded for o in objs], np.int64)
    sc = np.array([o.score or 0.0 for o in objs], np.float64)
    return KittiAnnos([o.cls for o in objs], tr, oc, alpha, bbox, cam[:, 3:6], cam[:, :3], cam[:, 6], sc)


def custom_objects_to_annos(objs: Sequence[Object3D]) -> KittiAnnos:
    """OpenPCDet's ``transform_annotations_to_kitti_format`` for data without calibration (custom layout):
    pseudo-camera ``x = -y, y = -z_bottom, z = x``, 2D box ``[0, 0, 50, 50]`` (every box 'easy'),
    truncation / occlusion 0; the 2D bbox metric is meaningless there."""
    if not objs:
        return KittiAnnos.empty()
    b = np.stack([np.asarray(o.box, np.float64) for o in objs])
    loc = np.c_[-b[:, 1], -(b[:, 2] - b[:, 5] / 2), b[:, 0]]
    ry = -b[:, 6] - np.pi / 2
    alpha = -np.arctan2(-b[:, 1], b[:, 0]) + ry
    n = len(objs)
    bbox = np.zeros((n, 4))
    bbox[:, 2:] = 50
    return KittiAnnos([o.cls for o in objs], np.zeros(n), np.zeros(n, np.int64), alpha, bbox, b[:, [3, 5, 4]], loc,
                      ry, np.array([o.score or 0.0 for o in objs], np.float64))


def format_annos(annos: KittiAnnos, detections: bool = True) -> str:
    """KITTI text: detections as OpenPCDet writes them (``%s -1 -1`` then 13 ``%.4f`` incl. the score);
    labels with 15 fields (2 decimals, as the KITTI label files)."""
    out = []
    for i, n in enumerate(annos.name):
        l, h, w = annos.dimensions[i]
        v = [annos.alpha[i], *annos.bbox[i], h, w, l, *annos.location[i], annos.rotation_y[i]]
        if detections:
            out.append(f"{n} -1 -1 " + " ".join(f"{x:.4f}" for x in v) + f" {annos.score[i]:.4f}\n")
        else:
            out.append(f"{n} {annos.truncated[i]:.2f} {int(annos.occluded[i])} " + " ".join(f"{x:.2f}" for x in v) + "\n")
    return "".join(out)


def write_kitti_label(path: Path, objs: list[Object3D], calib: Calib,
                      image_shape: tuple[int, int] | None = KITTI_IMAGE_SHAPE) -> None:
    """KITTI ``label_2`` file of LiDAR-frame objects (15 fields; their own 2D box / flags)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(format_annos(objects_to_annos(objs, calib, image_shape, detections=False), detections=False))


def read_custom_label(path: str | Path, classes: tuple[str, ...] = CLASSES) -> list[Object3D]:
    """OpenPCDet custom label: ``x y z dx dy dz heading class`` per line (LiDAR frame)."""
    path = Path(path)
    out = []
    for i, line in enumerate(read_text(path, "label file").splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) != 8:
            raise DataError(path, f"line {i}: {len(f)} fields, expected 8 (x y z dx dy dz heading class)")
        if f[7] not in classes:
            raise DataError(path, f"line {i}: unknown class '{f[7]}' (expected one of {', '.join(classes)})")
        box = np.array(_floats(path, i, f[:7]), dtype=np.float32)
        if (box[3:6] <= 0).any():
            raise DataError(path, f"line {i}: box sizes must be > 0, got {box[3:6].tolist()}")
        out.append(Object3D(f[7], box))
    return out


def write_custom_label(path: Path, objs: list[Object3D]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(" ".join(f"{v:.4f}" for v in o.box[:7]) + f" {o.cls}\n" for o in objs))


# ---------------------------------------------------------------------------------- labelled splits

@dataclasses.dataclass
class Frame:
    """One labelled scan: points ``(N, 4)``, training objects (LiDAR frame), the label file as the devkit
    reads it (``annos``, camera frame; None in the custom layout), calibration, image shape ``(H, W)``."""

    points: np.ndarray
    objects: list[Object3D]
    calib: Calib | None
    path: Path
    annos: KittiAnnos | None = None
    image_shape: tuple[int, int] | None = None

    def eval_annos(self) -> KittiAnnos:
        """The ground truth as the KITTI evaluation sees it."""
        if self.annos is not None:
            return self.annos
        return custom_objects_to_annos(self.objects)


def read_split(root: Path, split: str) -> list[str]:
    """``ImageSets/<split>.txt`` (one frame id per line)."""
    f = Path(root) / "ImageSets" / f"{split}.txt"
    if not f.exists():
        raise DataError(f, f"split file missing (expected ImageSets/{split}.txt listing frame ids)")
    ids = [s.strip() for s in read_text(f, "split file").split() if s.strip()]
    bad = [i for i in ids if not re.fullmatch(r"[\w.-]+", i)]
    if bad:
        raise DataError(f, f"frame id {bad[0]!r} is not a file name")
    if not ids:
        raise DataError(f, "split file lists no frame")
    return ids


def detect_layout(root: Path) -> str:
    """``kitti`` (training/velodyne), ``custom`` (points/*.npy) or DataError."""
    root = Path(root)
    if not root.exists():
        raise DataError(root, "dataset folder not found")
    if (root / "training" / "velodyne").is_dir():
        return "kitti"
    if (root / "points").is_dir():
        return "custom"
    raise DataError(root, "not a KITTI object folder (training/velodyne/) nor an OpenPCDet custom folder (points/)")


class LabelledSplit:
    """A split of a KITTI object or OpenPCDet custom folder, read lazily: ``len(split)``, ``split[i]`` a
    :class:`Frame`, ``split.annos(i)`` the ground truth alone (no points read).

    ``image_shape``: a fixed ``(H, W)`` for every frame; None (default) reads each frame's
    ``image_2/NNNNNN.png`` header, as OpenPCDet does.
    """

    def __init__(self, root: Path, split: str, image_shape: tuple[int, int] | None = None,
                 ids: Sequence[str] | None = None) -> None:
        self.root, self.split = Path(root), split
        self.layout = detect_layout(self.root)
        self.ids = list(ids) if ids is not None else read_split(self.root, split)
        self.image_shape = image_shape

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, idx: Sequence[int]) -> LabelledSplit:
        return LabelledSplit(self.root, self.split, self.image_shape, [self.ids[i] for i in idx])

    def _base(self) -> Path:
        return self.root / "training"

    def calib(self, i: int) -> Calib | None:
        return read_calib(self._base() / "calib" / f"{self.ids[i]}.txt") if self.layout == "kitti" else None

    def image_shape_of(self, i: int) -> tuple[int, int] | None:
        if self.layout != "kitti":
            return None
        if self.image_shape is not None:
            return tuple(self.image_shape)  # type: ignore[return-value]
        img = self._base() / "image_2" / f"{self.ids[i]}.png"
        if not img.exists():
            raise DataError(img, "camera image missing: its size bounds the camera field of view (OpenPCDet "
                                 "FOV_POINTS_ONLY); add image_2/, or set data.image_shape=[H,W] for every frame")
        return read_image_shape(img)

    def annos(self, i: int) -> KittiAnnos:
        """Ground truth of frame ``i`` as the evaluation sees it (camera frame)."""
        if self.layout == "kitti":
            lab = self._base() / "label_2" / f"{self.ids[i]}.txt"
            return read_kitti_annos(lab) if lab.exists() else KittiAnnos.empty()
        lab = self.root / "labels" / f"{self.ids[i]}.txt"
        return custom_objects_to_annos(read_custom_label(lab) if lab.exists() else [])

    def __getitem__(self, i: int) -> Frame:
        fid = self.ids[i]
        if self.layout == "custom":
            p = self.root / "points" / f"{fid}.npy"
            lab = self.root / "labels" / f"{fid}.txt"
            return Frame(read_npy_points(p), read_custom_label(lab) if lab.exists() else [], None, p)
        base = self._base()
        p = base / "velodyne" / f"{fid}.bin"
        pts = read_velodyne_bin(p)
        calib = self.calib(i)
        assert calib is not None
        lab = base / "label_2" / f"{fid}.txt"
        annos = read_kitti_annos(lab) if lab.exists() else KittiAnnos.empty()
        return Frame(pts, annos_to_objects(annos, calib), calib, p, annos, self.image_shape_of(i))


# ---------------------------------------------------------------------------------- scan sequences

@dataclasses.dataclass
class ScanSequence:
    """One sequence of scans: their folder, layout name, and the scan files in time order."""

    scan_dir: Path
    layout: str  # odometry | raw | kitti360
    files: list[Path]

    @property
    def flow_dir(self) -> Path:
        """Scene flow files of this sequence: ``flow/`` beside the scan folder."""
        return self.scan_dir.parent / "flow"


SEQUENCE_LAYOUTS: tuple[tuple[str, str], ...] = (
    ("odometry", "sequences/*/velodyne"),  # KITTI odometry / SemanticKITTI
    ("kitti360", "data_3d_raw/*/velodyne_points/data"),  # KITTI-360
    ("raw", "*/*_sync/velodyne_points/data"),  # KITTI raw: root = the folder holding the dates
    ("raw", "*_sync/velodyne_points/data"),  # KITTI raw: root = one date folder
)


def list_sequences(root: Path) -> list[ScanSequence]:
    """Every scan sequence under ``root`` in the KITTI odometry, KITTI raw or KITTI-360 layout.

    Only file names are listed (scans are read later, one by one); ``.bin`` files sorted by name.
    """
    root = Path(root)
    out: list[ScanSequence] = []
    seen: set[Path] = set()
    for layout, pattern in SEQUENCE_LAYOUTS:
        for d in sorted(root.glob(pattern)):
            if d.is_dir() and d.resolve() not in seen:
                seen.add(d.resolve())
                out.append(ScanSequence(d, layout, sorted(d.glob("*.bin"))))
    return out


def consecutive_pairs(seq: ScanSequence) -> list[tuple[Path, Path]]:
    """``(t-1, t)`` scan pairs whose numeric stems differ by exactly one (a gap in the numbering is no pair)."""
    pairs = []
    for a, b in zip(seq.files, seq.files[1:]):
        if a.stem.isdigit() and b.stem.isdigit() and int(b.stem) - int(a.stem) != 1:
            continue
        pairs.append((a, b))
    return pairs


def read_poses(path: Path) -> np.ndarray:
    """KITTI odometry ``poses.txt`` -> ``(T, 4, 4)`` (12 values per line)."""
    rows = []
    for i, line in enumerate(read_text(path, "poses file").splitlines(), 1):
        v = line.split()
        if not v:
            continue
        if len(v) != 12:
            raise DataError(path, f"line {i}: {len(v)} values, expected 12 (a 3x4 pose)")
        m = np.eye(4)
        m[:3] = np.array(_floats(Path(path), i, v)).reshape(3, 4)
        rows.append(m)
    return np.stack(rows) if rows else np.zeros((0, 4, 4))
