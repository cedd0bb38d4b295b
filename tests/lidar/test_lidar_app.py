"""The demo's pure functions (no browser) and one end-to-end browser test (+ a bad upload)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pretrainlab.core.data import DataError
from pretrainlab.core.demo import load_app_module
from pretrainlab.core.testing import check_load_test_calls, upload


@pytest.fixture(scope="module")
def app(lidar_detector_ckpt: Path):
    mod = load_app_module("lidar")
    return mod


def test_predict_on_simulated_scan(app, lidar_detector_ckpt: Path) -> None:
    table, bev, fig, status = app.predict(None, 1, lidar_detector_ckpt)
    assert "simulated scan" in status and "detections" in status
    assert bev.size[0] > 100
    assert all(len(r) == 9 for r in table)
    assert fig.data[0].name == "points"


def test_predict_on_uploads(app, lidar_detector_ckpt: Path, lidar_smoke: Path, tmp_path: Path) -> None:
    from pretrainlab.lidar.formats import read_velodyne_bin, write_pcd, write_ply

    pts = read_velodyne_bin(lidar_smoke / "training" / "velodyne" / "000000.bin")
    np.save(tmp_path / "s.npy", pts)
    write_pcd(tmp_path / "s.pcd", pts)
    write_ply(tmp_path / "s.ply", pts)
    for f in (lidar_smoke / "training" / "velodyne" / "000000.bin", tmp_path / "s.npy", tmp_path / "s.pcd",
              tmp_path / "s.ply"):
        _table, _, _, status = app.predict(str(f), 0, lidar_detector_ckpt)
        assert f.name in status and "smoke profile" in status and "NOT meaningful" in status
    # the field-of-view option: without it the detector sees more of a 360-degree scan
    _, _, _, with_fov = app.predict(str(tmp_path / "s.npy"), 0, lidar_detector_ckpt, True)
    _, _, _, without = app.predict(str(tmp_path / "s.npy"), 0, lidar_detector_ckpt, False)
    unseen = [int(s.split(" points, ")[1].split(" not seen")[0]) for s in (with_fov, without)]
    assert unseen[0] > unseen[1]


def test_bad_uploads(app, lidar_detector_ckpt: Path, tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DataError, match="unsupported file type"):
        app.predict(str(tmp_path / "x.txt"), 0, lidar_detector_ckpt)
    (tmp_path / "x.bin").write_bytes(b"\1" * 17)
    with pytest.raises(DataError, match="multiple of 16"):
        app.predict(str(tmp_path / "x.bin"), 0, lidar_detector_ckpt)
    far = np.array([[500, 500, 0, 0]], np.float32)
    np.save(tmp_path / "far.npy", far)
    with pytest.raises(DataError, match="no points inside the camera field of view and the detection range"):
        app.predict(str(tmp_path / "far.npy"), 0, lidar_detector_ckpt)


def test_load_test_calls_check_their_own_answers(app, lidar_detector_ckpt: Path, tmp_path: Path) -> None:
    """The hub load test's calls: run each through the pure function the endpoint serves; its check
    accepts its own answer and rejects every other call's answer (the status names the scan)."""
    calls = app.load_test_calls(tmp_path)
    assert {c[0] for c in calls} == {"lidar_detect"} and len(calls) >= 3
    fns = {"lidar_detect": lambda f, s, v: app.predict(f, s, lidar_detector_ckpt, v)}
    check_load_test_calls(calls, fns, tmp_path)


def test_build_demo_is_fast_and_lazy(app) -> None:
    demo = app.build_demo()
    assert demo is not None


@pytest.mark.e2e
def test_browser_upload_detect_and_bad_upload(app, lidar_detector_ckpt: Path, lidar_smoke: Path, tmp_path: Path,
                                              gradio_page) -> None:
    page, _url = gradio_page(app.build_demo(ckpt=lidar_detector_ckpt))
    scan = lidar_smoke / "training" / "velodyne" / "000001.bin"
    upload(page, scan, "#lidar-upload")
    page.get_by_role("button", name="Detect").click()
    page.wait_for_selector("#lidar-status:has-text('detections')", timeout=60_000)
    assert "000001.bin" in page.locator("#lidar-status").inner_text()
    page.wait_for_selector("#lidar-bev img", timeout=30_000)  # the bird's-eye-view picture is shown
    assert page.locator("#lidar-table").inner_text().strip()
    # a bad upload shows the error and the app keeps serving
    bad = tmp_path / "broken.bin"
    bad.write_bytes(b"\0" * 10)
    upload(page, bad, "#lidar-upload")
    page.get_by_role("button", name="Detect").click()
    page.wait_for_selector("text=multiple of 16", timeout=30_000)
    upload(page, scan, "#lidar-upload")
    page.get_by_role("button", name="Detect").click()
    page.wait_for_selector("#lidar-status:has-text('000001.bin')", timeout=60_000)
