"""Recipes, loss-goes-down, and a one-step trainer smoke per recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pretrainlab.core.config import PROFILES
from pretrainlab.face.api import SPEC, load

RECIPES = SPEC.recipes

RECIPE_NAMES = sorted(p.stem for p in RECIPES.glob("*.yaml"))


def test_every_recipe_loads_for_every_profile() -> None:
    assert set(RECIPE_NAMES) == {"pretrain", "full_finetune", "lora", "petalface"}
    for name in RECIPE_NAMES:
        for prof in PROFILES:
            cfg = load(name, prof)
            assert cfg.model.image_size % cfg.model.patch_size == 0
            assert cfg.train.max_steps > 0
    full = load("petalface", "full")
    assert (full.model.image_size, full.model.depths, full.loss.s, full.loss.m3) == (120, [2, 18, 2], 64.0, 0.4)
    assert (full.lora.rank, full.lora.scale, full.lora.dropout, full.quality.clamp) == (8, 1.0, 0.1, False)


@pytest.mark.parametrize("method", ["pretrain", "petalface"])
def test_loss_goes_down(smoke_data: Path, method: str) -> None:
    from pretrainlab.face.formats import FaceTrainDataset, FaceTrainSet
    from pretrainlab.face.petalface import FaceTask

    torch.manual_seed(0)
    cfg = load("pretrain" if method == "pretrain" else "petalface", "smoke", ["model.drop_path=0.0", "model.head_dropout=0.0"])
    ds = FaceTrainDataset(FaceTrainSet.open(smoke_data / ("train_hr" if method == "pretrain" else "train_lr")),
                          cfg.model.image_size)
    task = FaceTask(cfg, ds.num_classes)
    items = [ds[i] for i in range(32)]
    batch = {"image": torch.stack([it["image"] for it in items]), "label": torch.stack([it["label"] for it in items])}
    opt = torch.optim.AdamW([p for p in task.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(25):
        out = task(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses


@pytest.mark.parametrize("recipe", ["pretrain", "full_finetune", "lora", "petalface"])
def test_one_step_trainer_smoke(smoke_data: Path, pretrained_ckpt: Path, tmp_path: Path, recipe: str) -> None:
    from pretrainlab.face.pipeline import train

    ov = ["train.progress=false", "train.max_steps=1"] + ([] if recipe == "pretrain" else [f"init={pretrained_ckpt}"])
    _task, res = train(load(recipe, "smoke", ov), smoke_data, tmp_path / recipe)
    assert res.step == 1 and (tmp_path / recipe / "checkpoints").exists()
    assert torch.isfinite(torch.tensor(res.history[-1]["loss"]))
    assert (tmp_path / recipe / "face_threshold.json").exists()


def test_finetune_needs_init(smoke_data: Path, tmp_path: Path) -> None:
    from pretrainlab.core.config import ConfigError
    from pretrainlab.face.pipeline import train

    with pytest.raises(ConfigError, match="init: .*--init"):
        train(load("petalface", "smoke"), smoke_data, tmp_path / "x")


def test_adapted_checkpoint_is_refused_as_init(smoke_data: Path, petal_ckpt: Path, tmp_path: Path) -> None:
    from pretrainlab.core.checkpoint import CheckpointError
    from pretrainlab.face.pipeline import train

    with pytest.raises(CheckpointError, match="adapted model"):
        train(load("lora", "smoke", ["train.progress=false", f"init={petal_ckpt}"]), smoke_data, tmp_path / "y")
