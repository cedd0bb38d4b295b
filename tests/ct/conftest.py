"""Fixtures of the CT tests: the smoke phantoms, generated once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def ct_smoke() -> Path:
    from pretrainlab.ct.domain import synthetic_data

    return synthetic_data("smoke")


@pytest.fixture(scope="session")
def ct_phantom():
    """One small phantom volume in HU and its meta."""
    import numpy as np

    from pretrainlab.ct.phantom import phantom_volume

    return phantom_volume(np.random.default_rng(3), 40, 48, n_lesions=3)
