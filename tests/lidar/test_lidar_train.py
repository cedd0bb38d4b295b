"""Recipes load, one trainer step per recipe, losses go down, EMA target, backbone transfer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import default_collate

from pretrainlab.core.config import PROFILES
from pretrainlab.lidar.domain import RECIPES, load_detect, load_pretrain

PRETRAIN_RECIPES = ("essl3d", "spatial", "temporal", "invariant")


@pytest.mark.parametrize("profile", PROFILES)
def test_every_recipe_loads_for_every_profile(profile: str) -> None:
    names = sorted(p.stem for p in RECIPES.glob("*.yaml"))
    assert set(names) == {*PRETRAIN_RECIPES, "detect"}
    for n in names:
        cfg = load_detect(n, profile, []) if n == "detect" else load_pretrain(n, profile, [])
        assert cfg.train.max_steps > 0
        if n != "detect":
            assert cfg.method == n


@pytest.mark.parametrize("recipe", PRETRAIN_RECIPES)
def test_one_step_pretrain_per_recipe(recipe: str, lidar_smoke: Path, tmp_path: Path) -> None:
    from pretrainlab.lidar.pipeline import pretrain

    cfg = load_pretrain(recipe, "smoke", ["train.max_steps=1", "train.progress=false"])
    _, res = pretrain(cfg, lidar_smoke, tmp_path / recipe)
    assert res.step == 1 and res.checkpoint is not None
    assert torch.isfinite(torch.tensor(res.history[-1]["loss"]))


def test_one_step_finetune_from_pretrained(lidar_smoke: Path, tmp_path: Path) -> None:
    from pretrainlab.lidar.pipeline import finetune, pretrain

    pcfg = load_pretrain("essl3d", "smoke", ["train.max_steps=1", "train.progress=false"])
    ptask, _ = pretrain(pcfg, lidar_smoke, tmp_path / "pre")
    dcfg = load_detect(None, "smoke", ["train.max_steps=1", "train.progress=false", f"init={tmp_path / 'pre'}",
                                       "label_fraction=0.05", "train.lr=0.0"])
    task, res = finetune(dcfg, lidar_smoke, tmp_path / "det")
    assert res.step == 1
    # lr 0: the fine-tuned backbone still holds the pre-trained weights
    w0 = ptask.backbone.state_dict()["block1.0.weight"].cpu()
    assert torch.allclose(task.backbone.state_dict()["block1.0.weight"].cpu(), w0)


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
    cfg = load_pretrain("spatial", "smoke", [])
    task = ESSL3DTask(cfg)
    ds = PretrainPairs(lidar_smoke, cfg.data, need_flow=False)
    losses = _steps(task, default_collate([ds[0], ds[1]]), 12, 3e-3)
    assert losses[-1] < losses[0]


def test_temporal_loss_goes_down_and_target_follows(lidar_smoke: Path) -> None:
    from pretrainlab.lidar.datasets import PretrainPairs
    from pretrainlab.lidar.essl3d import ESSL3DTask

    torch.manual_seed(0)
    cfg = load_pretrain("temporal", "smoke", ["temporal.ema_decay=0.9"])
    task = ESSL3DTask(cfg)
    before = task.target_backbone.block1[0].weight.clone()
    assert not task.target_backbone.block1[0].weight.requires_grad
    ds = PretrainPairs(lidar_smoke, cfg.data)
    losses = _steps(task, default_collate([ds[0], ds[1]]), 12, 3e-3)
    assert losses[-1] < losses[0]
    after = task.target_backbone.block1[0].weight
    online = task.backbone.block1[0].weight
    assert not torch.equal(before, after)  # the EMA moved the target ...
    assert (after - online).abs().mean() > 0  # ... but it is not a copy of the online network


def test_detection_loss_goes_down(lidar_smoke: Path) -> None:
    from pretrainlab.lidar.centerpoint_head import DetectorTask
    from pretrainlab.lidar.datasets import DetectionFrames
    from pretrainlab.lidar.formats import load_frames

    torch.manual_seed(0)
    cfg = load_detect(None, "smoke", ["augment.flip_p=0.0", "augment.rotation=0.0"])
    task = DetectorTask(cfg)
    ds = DetectionFrames(load_frames(lidar_smoke, "train")[:2], cfg.data)
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
