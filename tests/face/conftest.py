"""Session fixtures of the face tests: the smoke dataset and smoke checkpoints, made once."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smoke_data() -> Path:
    from pretrainlab.face.api import synthetic_data

    return synthetic_data("smoke")


@pytest.fixture(scope="session")
def pretrained_ckpt(smoke_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pretrainlab.face.api import load
    from pretrainlab.face.pipeline import train

    run = tmp_path_factory.mktemp("face_pre")
    _, res = train(load("pretrain", "smoke", ["train.progress=false"]), smoke_data, run)
    return Path(res.checkpoint)


@pytest.fixture(scope="session")
def petal_ckpt(smoke_data: Path, pretrained_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pretrainlab.face.api import load
    from pretrainlab.face.pipeline import train

    run = tmp_path_factory.mktemp("face_petal")
    train(load("petalface", "smoke", ["train.progress=false", f"init={pretrained_ckpt}"]), smoke_data, run)
    return run
