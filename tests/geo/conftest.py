"""Session fixtures of the geo tests: the smoke synthetic world (CSV + shards) and one trained smoke run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def geo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke world with CSVs, images and webdataset shards."""
    from pretrainlab.core.data import generate_dataset
    from pretrainlab.geo import synthetic as world

    out = tmp_path_factory.mktemp("geo") / "world"
    generate_dataset(lambda o, p, s: world.generate(o, p, s, shards=True, shard_size=100), out, "smoke", 0)
    return out


@pytest.fixture(scope="session")
def geo_run(geo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of the full PIGEON recipe at smoke scale (checkpoint, geocells, refinement index)."""
    from pretrainlab.geo.api import load
    from pretrainlab.geo.pipeline import run_recipe

    cfg = load("pigeon", "smoke", ["train.progress=false", "contrastive.train.progress=false",
                                   "train.tensorboard=false", "contrastive.train.tensorboard=false"])
    run = tmp_path_factory.mktemp("georun") / "pigeon"
    run_recipe(cfg, geo_data, run)
    return run
