"""Fixtures of the speech tests: the smoke eSpeak NG corpus, generated once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smoke_data() -> Path:
    from pretrainlab.speech.domain import synthetic_data

    return synthetic_data("smoke")


@pytest.fixture(scope="session")
def smoke_run(smoke_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TERA run trained on the smoke profile (3 steps)."""
    from pretrainlab.speech.domain import load
    from pretrainlab.speech.tera import pretrain

    run = tmp_path_factory.mktemp("speech_run")
    pretrain(load("tera", "smoke", ["train.progress=false"]), smoke_data, run)
    return run
