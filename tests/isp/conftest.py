"""Session fixtures of the ISP tests: the smoke synthetic set and the smoke feature networks, built once."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smoke_data() -> Path:
    from pretrainlab.isp import api

    return api.synthetic_data("smoke")


@pytest.fixture(scope="session")
def smoke_cfg():  # -> ISPConfig
    from pretrainlab.isp import api

    return api.load("efficientisp_unpaired", "smoke", ["train.progress=false"])


@pytest.fixture(scope="session")
def smoke_nets(smoke_data, smoke_cfg):  # -> FeatureNets
    from pretrainlab.isp.feature_networks import load_feature_nets

    return load_feature_nets(smoke_cfg.features, smoke_data, seed=0, device="cpu", progress=False)


@pytest.fixture(scope="session")
def smoke_run(smoke_data, smoke_nets, tmp_path_factory) -> Path:
    """A 3-step unpaired EfficientISP run (checkpoint for eval / render / demo tests)."""
    from pretrainlab.isp import api
    from pretrainlab.isp.unpaired_training import pretrain

    cfg = api.load("efficientisp_unpaired", "smoke", ["train.progress=false"])
    run = tmp_path_factory.mktemp("isp-run")
    pretrain(cfg, smoke_data, run, nets=smoke_nets)
    return run
