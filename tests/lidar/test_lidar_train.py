"""Recipes load, one trainer step per recipe, losses go down, EMA target, backbone transfer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import default_collate

from pretrainlab.core.config import PROFILES
from pretrainlab.lidar import api

PRETRAIN_RECIPES = ("essl3d", "spatial", "temporal", "invariant")


@pytest.mark.parametrize("profile", PROFILES)
def test_every_recipe_loads_for_every_profile(profile: str) -> None:
    names = api.SPEC.recipe_names()
    assert set(names) == {*PRETRAIN_RECIPES, "detect"}
    for n in names:
        cfg = api.load(n, profile)
        assert cfg.train.max_steps > 0
        if n != "detect":
            assert cfg.method == n


@pytest.mark.parametrize("recipe", PRETRAIN_RECIPES)
def test_one_step_pretrain_per_recipe(recipe: str, lidar_smoke: Path, tmp_path: Path) -> None:
    from pretrainlab.lidar.api import pretrain

    cfg = api.load(recipe, "smoke", ["train.max_steps=1", "train.progress=false"])
    _, res = pretrain(cfg, lidar_smoke, tmp_path / recipe)
    assert res.step == 1 and res.checkpoint is not None
    assert torch.isfinite(torch.tensor(res.history[-1]["loss"]))


def test_finetune_starts_from_the_pretrained_backbone(lidar_smoke: Path, tmp_path: Path) -> None:
    from pretrainlab.lidar.api import finetune, pretrain

    pcfg = api.load("essl3d", "smoke", ["train.max_steps=1", "train.progress=false"])
    ptask, _ = pretrain(pcfg, lidar_smoke, tmp_path / "pre")
    w0 = ptask.backbone.state_dict()["block1.0.weight"].cpu()
    dcfg = api.load("detect", "smoke", ["train.max_steps=1", "train.progress=false", "label_fraction=0.05",
                                        "train.lr=1e-12", "train.weight_decay=0"])
    task, res = finetune(dcfg, lidar_smoke, tmp_path / "det", init=tmp_path / "pre")
    assert res.step == 1 and task.cfg.init == str(tmp_path / "pre")
    # lr ~ 0: the fine-tuned backbone still holds the pre-trained weights (a scratch init would not)
    assert torch.allclose(task.backbone.state_dict()["block1.0.weight"].cpu(), w0, atol=1e-6)
    scratch, _ = finetune(dcfg, lidar_smoke, tmp_path / "det0")
    assert not torch.allclose(scratch.backbone.state_dict()["block1.0.weight"].cpu(), w0, atol=1e-3)


def _steps(task: torch.nn.Module, batch: dict, n: int, lr: float) -> list[float]:
    opt = torch.optim.Adam([p for p in task.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(n):
        torch.manual_seed(0)  # the same views / sampled points every step
        out = task(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        task.on_step_end(1, n)
        losses.append(out["loss"].item())
    return losses


def test_spatial_loss_goes_down(lidar_smoke: Path) -> None:
    from pretrainlab.lidar.datasets import PretrainPairs
    from pretrainlab.lidar.essl3d import ESSL3DTask

    torch.manual_seed(0)
    cfg = api.load("spatial", "smoke")
    task = ESSL3DTask(cfg)
    ds = PretrainPairs(lidar_smoke, cfg.data, need_flow=False)
    losses = _steps(task, default_collate([ds[0], ds[1]]), 12, 3e-3)
    assert losses[-1] < losses[0]


def test_temporal_loss_goes_down_and_target_is_the_ema(lidar_smoke: Path) -> None:
    from pretrainlab.lidar.datasets import PretrainPairs
    from pretrainlab.lidar.essl3d import ESSL3DTask

    torch.manual_seed(0)
    cfg = api.load("temporal", "smoke", ["temporal.ema_decay=0.9"])
    task = ESSL3DTask(cfg)
    assert not task.target_backbone.block1[0].weight.requires_grad
    ds = PretrainPairs(lidar_smoke, cfg.data)
    batch = default_collate([ds[0], ds[1]])
    losses = _steps(task, batch, 12, 3e-3)
    assert losses[-1] < losses[0]
    # one more step: target' = 0.9 * target + 0.1 * online' (the EMA of the paper, decay from the config)
    before = {k: v.detach().clone() for k, v in task.target_backbone.named_parameters()}
    _steps(task, batch, 1, 3e-3)
    online = dict(task.backbone.named_parameters())
    for k, v in task.target_backbone.named_parameters():
        torch.testing.assert_close(v, 0.9 * before[k] + 0.1 * online[k].detach(), rtol=1e-5, atol=1e-6)
        assert not torch.equal(v, online[k])


def test_detection_loss_goes_down(lidar_smoke: Path) -> None:
    from pretrainlab.lidar.centerpoint_head import DetectorTask
    from pretrainlab.lidar.datasets import DetectionFrames

    torch.manual_seed(0)
    cfg = api.load("detect", "smoke", ["augment.flip_p=0.0", "augment.rotation=0.0"])
    task = DetectorTask(cfg)
    ds = DetectionFrames(api.open_split(cfg, lidar_smoke, "train").subset([0, 1]), cfg.data)
    losses = _steps(task, default_collate([ds[0], ds[1]]), 15, 3e-3)
    assert losses[-1] < 0.8 * losses[0]


def test_backbone_is_equivariant_to_grid_translations() -> None:
    """Shifting all points by a whole number of pillars shifts the BEV map (no absolute x, y input)."""
    from pretrainlab.lidar.pillar_backbone import BackboneConfig, PillarBEVBackbone

    torch.manual_seed(0)
    bb = PillarBEVBackbone(BackboneConfig(voxel_size=1.0, pillar_channels=4, channels=4, layers=(1, 1))).eval()
    rng = [-8.0, -8.0, -3.0, 8.0, 8.0, 1.0]
    pts = torch.cat([torch.rand(1, 200, 2) * 6 - 5, torch.rand(1, 200, 1) - 1, torch.rand(1, 200, 1)], -1)
    mask = torch.ones(1, 200, dtype=torch.bool)
    a = bb.scatter(pts, mask, rng)
    b = bb.scatter(pts + torch.tensor([2.0, 0, 0, 0]), mask, rng)
    assert torch.allclose(a[..., :, :-2], b[..., :, 2:], atol=1e-6)
