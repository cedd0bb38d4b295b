"""Readers on generated data, the simulator's outputs, and one test per class of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pretrainlab.core.data import DataError
from pretrainlab.lidar import formats as F


def test_kitti_reader_on_generated_data(lidar_smoke: Path) -> None:
    split = F.LabelledSplit(lidar_smoke, "train")
    frames = [split[i] for i in range(len(split))]
    assert len(frames) == 8
    n_obj = sum(len(f.objects) for f in frames)
    assert n_obj > 0
    f = frames[0]
    assert f.points.dtype == np.float32 and f.points.shape[1] == 4
    assert {o.cls for fr in frames for o in fr.objects} <= set(F.CLASSES)
    # boxes stand on the ground (sensor 1.73 m above it) and objects have LiDAR points inside
    for o in f.objects:
        assert abs((o.box[2] - o.box[5] / 2) + 1.73) < 0.05
        assert o.bbox2d[3] > o.bbox2d[1] and 0 <= o.truncated < 0.95 and o.occluded in (0, 1, 2)


def test_label_camera_roundtrip(tmp_path: Path) -> None:
    calib = F.Calib.default()
    box = np.array([12.3, -4.5, -0.9, 4.1, 1.7, 1.5, 0.7], np.float32)
    obj = F.Object3D("Car", box, 0.1, 1, (10.0, 20.0, 50.0, 60.0), score=0.9)
    F.write_kitti_label(tmp_path / "000001.txt", [obj], calib)
    back = F.annos_to_objects(F.read_kitti_annos(tmp_path / "000001.txt"), calib)
    assert len(back) == 1 and back[0].bbox2d == (10.0, 20.0, 50.0, 60.0) and back[0].occluded == 1
    np.testing.assert_allclose(back[0].box, box, atol=0.02)
    det = F.objects_to_annos([obj], calib, F.KITTI_IMAGE_SHAPE, detections=True)
    (tmp_path / "d.txt").write_text(F.format_annos(det))
    d = F.read_kitti_annos(tmp_path / "d.txt", detections=True)
    assert d.score[0] == pytest.approx(0.9) and d.truncated[0] == -1 and d.occluded[0] == -1
    np.testing.assert_allclose(F.boxes_camera_to_lidar(d.camera_boxes(), calib)[0], box, atol=2e-3)
    (tmp_path / "c.txt").write_text(calib.to_text())
    c2 = F.read_calib(tmp_path / "c.txt")
    np.testing.assert_allclose(c2.P2, calib.P2, rtol=1e-9)


def test_custom_and_open3d_formats(tmp_path: Path) -> None:
    pts = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    np.save(tmp_path / "a.npy", pts)
    np.testing.assert_allclose(F.read_points(tmp_path / "a.npy"), pts)
    np.save(tmp_path / "b.npy", pts[:, :3])
    assert F.read_points(tmp_path / "b.npy").shape == (100, 4)
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts[:, :3].astype(np.float64)))
    assert o3d.io.write_point_cloud(str(tmp_path / "z.pcd"), pcd, compressed=True)
    assert b"binary_compressed" in (tmp_path / "z.pcd").read_bytes()[:400]
    np.testing.assert_allclose(F.read_points(tmp_path / "z.pcd")[:, :3], pts[:, :3], atol=1e-5)  # LZF decoded
    for binary in (True, False):
        F.write_pcd(tmp_path / "c.pcd", pts, binary=binary)
        F.write_ply(tmp_path / "c.ply", pts, binary=binary)
        for suf in (".pcd", ".ply"):
            np.testing.assert_allclose(F.read_points(tmp_path / f"c{suf}"), pts, atol=1e-5)
    o = F.Object3D("Pedestrian", np.array([1, 2, -1, 0.8, 0.6, 1.7, 0.3], np.float32))
    F.write_custom_label(tmp_path / "l.txt", [o])
    back = F.read_custom_label(tmp_path / "l.txt")
    assert back[0].cls == "Pedestrian"
    np.testing.assert_allclose(back[0].box, o.box, atol=1e-4)


def test_sequences_have_exact_flow(lidar_smoke: Path) -> None:
    seqs = F.list_sequences(lidar_smoke)
    assert seqs
    assert seqs[0].layout == "odometry"
    scans = seqs[0].files
    p0, p1 = F.read_velodyne_bin(scans[0]), F.read_velodyne_bin(scans[1])
    flow = np.load(seqs[0].flow_dir / f"{scans[0].stem}.npy")
    assert flow.shape == (len(p0), 3)
    poses = F.read_poses(seqs[0].scan_dir.parent / "poses.txt")
    assert poses.shape == (len(scans), 4, 4)
    assert np.isfinite(flow).all() and len(p1) > 0


def test_scene_flow_is_exact() -> None:
    """Warped points keep their coordinates in their object's frame (moving) or in the world (static)."""
    from pretrainlab.lidar.synthetic import LidarSimulator, Scene, SensorConfig

    sim = LidarSimulator(SensorConfig(n_columns=256))
    scene = Scene(np.random.default_rng(5))
    scan = sim.scan(scene, 0.0, np.random.default_rng(6))
    flow = sim.flow(scene, scan, 0.0, 0.1)

    def world(p: np.ndarray, t: float) -> np.ndarray:
        E = scene.ego_pose(t).copy()
        E[2, 3] = sim.sensor.height
        return p @ E[:3, :3].T + E[:3, 3]

    w0, w1 = world(scan.points[:, :3], 0.0), world(scan.points[:, :3] + flow, 0.1)
    moving = np.array([i >= 0 and (scene.actors[i].velocity != 0 or scene.actors[i].yaw_rate != 0) for i in scan.instance])
    np.testing.assert_allclose(w1[~moving], w0[~moving], atol=1e-3)
    assert moving.any()
    for i in np.unique(scan.instance[moving]):
        a = scene.actors[int(i)]
        sel = scan.instance == i
        l0 = (w0[sel] - a.pose(0.0)[:3, 3]) @ a.pose(0.0)[:3, :3]
        l1 = (w1[sel] - a.pose(0.1)[:3, 3]) @ a.pose(0.1)[:3, :3]
        np.testing.assert_allclose(l1, l0, atol=1e-3)


def test_simulator_is_deterministic(tmp_path: Path) -> None:
    from pretrainlab.lidar.synthetic import LidarSimulator, Scene, SensorConfig

    sim = LidarSimulator(SensorConfig(n_columns=256))
    a = sim.scan(Scene(np.random.default_rng(3)), 0.0, np.random.default_rng(4))
    b = sim.scan(Scene(np.random.default_rng(3)), 0.0, np.random.default_rng(4))
    np.testing.assert_array_equal(a.points, b.points)
    assert a.points[:, 3].min() >= 0 and a.points[:, 3].max() <= 1


# ------------------------------------------------------------------------------ bad input

def test_bin_size_not_multiple_of_16(tmp_path: Path) -> None:
    p = tmp_path / "000000.bin"
    p.write_bytes(b"\0" * 18)
    with pytest.raises(DataError, match="multiple of 16") as e:
        F.read_velodyne_bin(p)
    assert str(p) in str(e.value)


def test_nan_inf_points(tmp_path: Path) -> None:
    pts = np.ones((10, 4), np.float32)
    pts[3, 1] = np.nan
    pts[5, 0] = np.inf
    F.write_velodyne_bin(tmp_path / "x.bin", pts)
    with pytest.raises(DataError, match="2 of 10 points hold NaN"):
        F.read_velodyne_bin(tmp_path / "x.bin")


def test_empty_scan(tmp_path: Path) -> None:
    (tmp_path / "e.bin").write_bytes(b"")
    with pytest.raises(DataError, match="empty scan"):
        F.read_points(tmp_path / "e.bin")
    np.save(tmp_path / "e.npy", np.zeros((0, 4), np.float32))
    with pytest.raises(DataError, match="empty scan"):
        F.read_points(tmp_path / "e.npy")


def test_points_outside_range_are_cropped_and_counted() -> None:
    pts = np.array([[1, 0, 0, 0], [100, 0, 0, 0], [5, -50, 0, 0], [5, 5, -10, 0]], np.float32)
    kept, dropped = F.crop_to_range(pts, [0, -40, -3, 70.4, 40, 1])
    assert len(kept) == 1 and dropped == 3


def test_label_wrong_field_count_and_unknown_class(tmp_path: Path) -> None:
    p = tmp_path / "l.txt"
    p.write_text("Car 0 0 0 1 2 3\n")
    with pytest.raises(DataError, match="line 1: 7 fields"):
        F.read_kitti_annos(p)
    p.write_text("Spaceship 0.00 0 0 1 2 3 4 1.5 1.6 4.0 1 2 10 0\n")
    with pytest.raises(DataError, match="unknown type 'Spaceship'"):
        F.read_kitti_annos(p)
    p.write_text("1 2 3 4 5 6 0.1 Truck\n")
    with pytest.raises(DataError, match="unknown class 'Truck'"):
        F.read_custom_label(p)


def test_missing_calibration(lidar_smoke: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "kitti"
    shutil.copytree(lidar_smoke / "training", root / "training")
    shutil.copytree(lidar_smoke / "ImageSets", root / "ImageSets")
    (root / "training" / "calib" / "000000.txt").unlink()
    with pytest.raises(DataError, match="calibration file missing") as e:
        F.LabelledSplit(root, "train")[0]
    assert "000000.txt" in str(e.value)


def test_flow_file_mismatch(tmp_path: Path) -> None:
    from pretrainlab.lidar.temporal_flow import read_flow

    np.save(tmp_path / "f.npy", np.zeros((5, 3), np.float32))
    with pytest.raises(DataError, match=r"expected \(7, 3\)"):
        read_flow(tmp_path / "f.npy", 7)
    idx, flow = read_flow(tmp_path / "f.npy", 5)
    assert idx is None and flow.shape == (5, 3)


def test_failed_generation_leaves_nothing(tmp_path: Path) -> None:
    from pretrainlab.core.data import generate_dataset

    def broken(out: Path, profile: str, seed: int) -> None:
        (out / "training").mkdir()
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        generate_dataset(broken, tmp_path / "d", "smoke", 0)
    assert not (tmp_path / "d").exists()
    assert not [p for p in tmp_path.iterdir()]


def test_openpcdet_custom_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    (tmp_path / "ImageSets").mkdir()
    (tmp_path / "ImageSets" / "train.txt").write_text("a\nb\n")
    for n in ("a", "b"):
        (tmp_path / "points").mkdir(exist_ok=True)
        np.save(tmp_path / "points" / f"{n}.npy", rng.normal(size=(50, 4)).astype(np.float32))
        F.write_custom_label(tmp_path / "labels" / f"{n}.txt",
                             [F.Object3D("Car", np.array([5, 1, -1, 4, 2, 1.5, 0.1], np.float32))])
    split = F.LabelledSplit(tmp_path, "train")
    frames = [split[0], split[1]]
    assert len(split) == 2 and frames[0].calib is None and frames[1].objects[0].cls == "Car"


def test_icp_flow_recovers_ego_motion() -> None:
    from pretrainlab.lidar.temporal_flow import icp_transform

    rng = np.random.default_rng(0)
    prev = np.c_[rng.uniform(-20, 20, (3000, 2)), rng.uniform(-1, 3, 3000), np.zeros(3000)].astype(np.float32)
    shift = np.array([0.3, -0.1, 0.0], np.float32)
    cur = prev.copy()
    cur[:, :3] += shift
    T = icp_transform(prev, cur)
    np.testing.assert_allclose(T[:3, 3], shift, atol=0.02)
    np.testing.assert_allclose(T[:3, :3], np.eye(3), atol=1e-3)


# ------------------------------------------------------------------------------ sequence layouts

def _write_scans(folder: Path, stems: list[str], src: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for s in stems:
        (folder / f"{s}.bin").write_bytes(src.read_bytes())


@pytest.mark.parametrize("layout,folder", [
    ("odometry", "sequences/08/velodyne"),
    ("raw", "2011_09_26/2011_09_26_drive_0001_sync/velodyne_points/data"),
    ("kitti360", "data_3d_raw/2013_05_28_drive_0000_sync/velodyne_points/data"),
])
def test_sequence_layouts_are_found_and_paired(layout: str, folder: str, lidar_smoke: Path, tmp_path: Path) -> None:
    from pretrainlab.lidar import api
    from pretrainlab.lidar.datasets import PretrainPairs

    src = lidar_smoke / "training" / "velodyne" / "000000.bin"
    width = 6 if layout == "odometry" else 10
    stems = [f"{i:0{width}d}" for i in (0, 1, 2, 4, 5)]  # a gap between 2 and 4: no pair across it
    _write_scans(tmp_path / folder, stems, src)
    seqs = F.list_sequences(tmp_path)
    assert [s.layout for s in seqs] == [layout] and len(seqs[0].files) == 5
    pairs = F.consecutive_pairs(seqs[0])
    assert [(a.stem, b.stem) for a, b in pairs] == [(stems[0], stems[1]), (stems[1], stems[2]), (stems[3], stems[4])]
    cfg = api.load("temporal", "smoke", ["data.flow_source=icp"])
    ds = PretrainPairs(tmp_path, cfg.data)
    item = ds[0]
    assert len(ds) == 3 and item["prev_flow"].shape == (cfg.data.max_points, 3)
    assert item["prev_flow"].abs().max() < 0.05  # the same scan twice: ICP finds no motion
    # precomputed flow beside the scan folder: flow/<stem>.npy, and a .npz subset
    flow_dir = seqs[0].flow_dir
    flow_dir.mkdir()
    n = len(F.read_velodyne_bin(src))
    np.save(flow_dir / f"{stems[0]}.npy", np.full((n, 3), 0.5, np.float32))
    idx = np.arange(0, n, 7)
    np.savez(flow_dir / f"{stems[1]}.npz", index=idx, flow=np.full((len(idx), 3), -1.0, np.float32))
    ds = PretrainPairs(tmp_path, api.load("temporal", "smoke").data)
    assert torch_all_close(ds[0]["prev_flow"], 0.5) and torch_all_close(ds[1]["prev_flow"], -1.0)
    with pytest.raises(DataError, match="no scene-flow file"):
        ds[2]


def torch_all_close(t: object, v: float) -> bool:
    return bool(np.allclose(np.asarray(t), v))


def test_flow_root_mirrors_the_data_folder(lidar_smoke: Path, tmp_path: Path) -> None:
    from pretrainlab.lidar import api
    from pretrainlab.lidar.datasets import PretrainPairs

    src = lidar_smoke / "training" / "velodyne" / "000000.bin"
    _write_scans(tmp_path / "data" / "sequences" / "00" / "velodyne", ["000000", "000001"], src)
    flows = tmp_path / "flows" / "sequences" / "00" / "flow"
    flows.mkdir(parents=True)
    np.save(flows / "000000.npy", np.full((len(F.read_velodyne_bin(src)), 3), 0.25, np.float32))
    cfg = api.load("temporal", "smoke", [f"data.flow_root={tmp_path / 'flows'}"])
    assert torch_all_close(PretrainPairs(tmp_path / "data", cfg.data)[0]["prev_flow"], 0.25)


def test_npz_flow_is_checked(tmp_path: Path) -> None:
    from pretrainlab.lidar.temporal_flow import read_flow

    np.savez(tmp_path / "a.npz", index=np.array([0, 9]), flow=np.zeros((2, 3)))
    with pytest.raises(DataError, match="outside the scan"):
        read_flow(tmp_path / "a.npz", 5)
    np.savez(tmp_path / "b.npz", flow=np.zeros((2, 3)))
    with pytest.raises(DataError, match="needs arrays 'index' and 'flow'"):
        read_flow(tmp_path / "b.npz", 5)
    np.savez(tmp_path / "c.npz", index=np.array([0, 1]), flow=np.zeros((3, 3)))
    with pytest.raises(DataError, match="to match 'index'"):
        read_flow(tmp_path / "c.npz", 5)


def test_splits_are_streamed(lidar_smoke: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a split reads no scan; each item reads its own files."""
    reads: list[str] = []
    orig = F.read_velodyne_bin
    monkeypatch.setattr(F, "read_velodyne_bin", lambda p: (reads.append(Path(p).name), orig(p))[1])
    split = F.LabelledSplit(lidar_smoke, "train")
    assert len(split) == 8 and reads == []
    f = split[3]
    assert reads == [f"{split.ids[3]}.bin"] and f.image_shape == (375, 1242)
    assert split.annos(3).name == f.annos.name and reads == [f"{split.ids[3]}.bin"]


def test_fov_mask_is_openpcdets_rule() -> None:
    calib = F.Calib.default()
    rect = np.array([[0.0, 0.0, 10.0], [0.0, 0.0, -10.0], [20.0, 0.0, 10.0], [0.0, 3.0, 10.0]])
    pts = calib.rect_to_lidar(rect)
    # in front and in the image; behind the camera; left of the image; below it
    assert F.fov_mask(pts, calib, (375, 1242)).tolist() == [True, False, False, False]
    uv, depth = calib.rect_to_image(rect[:1])
    P = calib.P2
    np.testing.assert_allclose(uv[0], (P[:2, :3] @ rect[0] + P[:2, 3]) / rect[0, 2])  # divided by rect z
    assert depth[0] == pytest.approx(10.0)
    # the image size of each frame decides: a narrow image keeps fewer points
    wide = np.c_[np.full(200, 20.0), np.linspace(-15, 15, 200), np.zeros(200)]
    assert F.fov_mask(wide, calib, (375, 600)).sum() < F.fov_mask(wide, calib, (375, 1242)).sum()


def test_culled_ray_casting_equals_casting_every_ray() -> None:
    """The simulator casts only rays inside some actor's angular footprint and meets the ground analytically;
    casting every ray against ground + actors gives the same hits."""
    import open3d as o3d

    from pretrainlab.lidar.synthetic import LidarSimulator, Scene, SensorConfig

    sim = LidarSimulator(SensorConfig(n_columns=256))
    for seed in range(3):
        scene = Scene(np.random.default_rng(seed))
        fast = sim.raycast(scene, 0.3)
        _rs, owner, _E, idx = sim._build(scene, 0.3)
        assert 0 < len(idx) < len(sim.dirs)  # some rays are skipped
        verts, tris, vert_owner, _, _ = scene.merged_mesh()
        full = o3d.t.geometry.RaycastingScene()
        h = sim.sensor.height
        full.add_triangles(o3d.core.Tensor(np.array([[-300, -300, -h], [300, -300, -h], [300, 300, -h], [-300, 300, -h]],
                                                    np.float32)), o3d.core.Tensor(np.array([[0, 1, 2], [0, 2, 3]], np.uint32)))
        Einv = np.linalg.inv(sim.sensor_pose(scene, 0.3))
        poses = np.stack([Einv @ a.pose(0.3) for a in scene.actors])
        v = np.einsum("vij,vj->vi", poses[vert_owner, :3, :3], verts) + poses[vert_owner, :3, 3]
        full.add_triangles(o3d.core.Tensor(v.astype(np.float32)), o3d.core.Tensor(tris))
        ans = full.cast_rays(o3d.core.Tensor(sim._rays))
        th = ans["t_hit"].numpy()
        inst = np.where(ans["geometry_ids"].numpy() == 0, -1,
                        owner[np.minimum(ans["primitive_ids"].numpy(), len(owner) - 1).astype(np.int64)])
        inst[~np.isfinite(th)] = -2
        near, near_fast = th < 100, fast["t_hit"] < 100  # the test's ground square ends at 300 m
        both = near & near_fast
        assert (near == near_fast).mean() > 0.999
        np.testing.assert_allclose(fast["t_hit"][both], th[both], rtol=1e-4, atol=1e-3)
        assert (fast["instance"][both] == inst[both]).mean() > 0.999
