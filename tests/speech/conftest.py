"""Fixtures of the speech tests: the smoke eSpeak NG corpus and a smoke TERA run (once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"  # s3prl fixtures (see data/make_s3prl_fixtures.py)


@pytest.fixture(scope="session")
def smoke_data() -> Path:
    from pretrainlab.speech import api

    return api.synthetic_data("smoke")


@pytest.fixture(scope="session")
def smoke_run(smoke_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TERA run trained on the smoke profile (3 steps)."""
    from pretrainlab.speech import api

    run = tmp_path_factory.mktemp("speech_run")
    api.pretrain(api.load("tera", "smoke", ["train.progress=false"]), smoke_data, run)
    return run


@pytest.fixture(scope="session")
def probe_run(smoke_data: Path, smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke probes (phone_linear + keyword) of ``smoke_run``, from ``finetune``."""
    from pretrainlab.speech import api

    run = tmp_path_factory.mktemp("speech_probes")
    cfg = api.load("tera", "smoke", ["train.progress=false", "probe.tasks=[phone_linear,keyword]"])
    api.finetune(cfg, smoke_data, run, init=smoke_run)
    return run
