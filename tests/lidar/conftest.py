"""Fixtures of the LiDAR tests: the smoke dataset (generated once) and a smoke detection checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def lidar_smoke() -> Path:
    from pretrainlab.lidar import api

    return api.synthetic_data("smoke")


@pytest.fixture(scope="session")
def lidar_detector_ckpt(lidar_smoke: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pretrainlab.lidar import api

    run = tmp_path_factory.mktemp("lidar_det") / "run"
    api.finetune(api.load("detect", "smoke", ["train.progress=false"]), lidar_smoke, run)
    return run
