from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def smoke_data() -> Path:
    """The smoke synthetic set (generated once per session into the session cache)."""
    from pretrainlab.clip.api import synthetic_data

    return synthetic_data("smoke")


@pytest.fixture(scope="session")
def smoke_run(smoke_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CLIP-rocket smoke run (2 steps) shared by the eval / zeroshot / embed / demo tests."""
    from pretrainlab.clip.api import load, pretrain

    run = tmp_path_factory.mktemp("cliprun") / "rocket"
    pretrain(load("rocket", "smoke", ["train.progress=false"]), smoke_data, run)
    return run
