"""Fixtures of the LiDAR tests: the smoke dataset (generated once) and a smoke detection checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def lidar_smoke() -> Path:
    from pretrainlab.lidar.domain import synthetic_data

    return synthetic_data("smoke")


@pytest.fixture(scope="session")
def lidar_detector_ckpt(lidar_smoke: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pretrainlab.lidar.domain import load_detect
    from pretrainlab.lidar.pipeline import finetune

    run = tmp_path_factory.mktemp("lidar_det")
    cfg = load_detect(None, "smoke", ["train.progress=false"])
    finetune(cfg, lidar_smoke, run)
    return run
