"""SwAV / SimCLR / MoCo tasks, the reference's SwAV schedule and prototype freezing (against the reference
module itself under Lightning 1.6.5: fixture ``data/swav_schedule_pl165.json``), losses going down, one
trainer step per recipe, every recipe x profile loading, and the reduction strategies on phantoms."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pretrainlab.ct.api import SPEC, load
from pretrainlab.ct.config import CTConfig, DownstreamConfig

PROFILES = ("smoke", "tiny", "full")
PRETRAIN_RECIPES = [r for r in SPEC.recipe_names() if r not in ("finetune",) and not r.startswith("_")]
SWAV_FIXTURE = json.loads((Path(__file__).parent / "data" / "swav_schedule_pl165.json").read_text())


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("recipe", SPEC.recipe_names())
def test_every_recipe_loads(recipe: str, profile: str) -> None:
    cfg = load(recipe, profile, [])
    if recipe == "finetune":
        assert isinstance(cfg, DownstreamConfig)
        if profile == "full":  # the notebooks' settings
            assert cfg.finetune.epochs == 70 and cfg.finetune.unfreeze_epoch == 10 and cfg.train.optimizer == "adam"
            assert cfg.train.lr == 1e-4 and cfg.train.batch_size == 64 and cfg.train.weight_decay == 5e-4
            assert cfg.model.arch == "resnet50" and cfg.model.image_size == 224
        return
    assert isinstance(cfg, CTConfig)
    if profile == "full":  # the reference's settings
        assert cfg.model.arch == "resnet50" and cfg.ssl.nmb_prototypes == 500 and cfg.ssl.temperature == 0.1
        assert cfg.train.optimizer == "lars" and cfg.train.batch_size == 128 and cfg.train.lr == 0.15
        assert not cfg.train.lars_exclude_1d and cfg.train.lars_trust == "sum_of_norms"
        assert cfg.ssl.freeze_prototypes_epochs == 313 and cfg.ssl.warmup_epochs == 10
        assert cfg.ssl.scheduler_iters_per_epoch == 1


def test_unknown_and_bad_overrides_name_the_key() -> None:
    from pretrainlab.core.config import ConfigError

    with pytest.raises(ConfigError, match="did you mean"):
        load("hash6", "smoke", ["reduction.hash_kk=3"])
    for over, key in [("reduction.hash_k=-1", "reduction.hash_k"), ("reduction.every_n=0", "reduction.every_n"),
                      ("reduction.ssim_threshold=nan", "reduction.ssim_threshold"), ("ssl.nmb_crops=[1,2]", "ssl.nmb_crops"),
                      ("ssl.assign_crops=[0,9]", "ssl.assign_crops"), ("pretrain.epochs=0", "pretrain.epochs"),
                      ("model.blocks=[]", "model.blocks"), ("reduction.strategy=bogus", "reduction.strategy")]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load("hash6", "smoke", [over])
    with pytest.raises(ConfigError, match=r"finetune\.unfreeze_epoch"):
        load("finetune", "smoke", ["finetune.unfreeze_epoch=9"])
    with pytest.raises(ConfigError, match="task"):
        load("finetune", "smoke", ["task=lesion"])


def _slices(n: int = 8, size: int = 16) -> torch.Tensor:
    from pretrainlab.ct.preprocessing import minmax_uint8
    from pretrainlab.ct.pretraining import SliceDataset
    from pretrainlab.ct.synthetic import phantom_volume

    hu, _ = phantom_volume(np.random.default_rng(0), n, 32)
    return SliceDataset(minmax_uint8(hu), size).images


def _batch(n: int = 8, size: int = 16) -> dict[str, torch.Tensor]:
    return {"image": _slices(n, size)[:, None]}


def test_multi_crop_shapes() -> None:
    from pretrainlab.ct.swav import multi_crop

    cfg = load("hash6", "tiny", [])
    crops = multi_crop(torch.rand(4, 1, 32, 32), cfg.ssl)
    assert [c.shape[-1] for c in crops] == [32, 32] + [16] * 6
    assert all(c.shape[:2] == (4, 1) for c in crops)


def test_swav_lr_equals_the_reference_module_under_lightning_1_6() -> None:
    """warm-up over 10 STEPS from 0, then an unclamped cosine of period 2 (max_epochs - 10) steps: the
    reference module computes its schedule with train_iters_per_epoch = 1 (configure_optimizers runs
    before train_dataloader in Lightning 1.6)."""
    from pretrainlab.ct.pretraining import swav_lr, swav_schedule

    run = SWAV_FIXTURE["runs"][0]
    cfg = load("hash6", "full", [f"pretrain.epochs={run['max_epochs']}"])
    warm, total = swav_schedule(cfg, per_epoch=run["iters_per_epoch"])
    assert (warm, total) == (10, run["max_epochs"])
    ours = [swav_lr(s, cfg.train.lr, warm, total) for s in range(len(run["lr_per_step"]))]
    np.testing.assert_allclose(ours, run["lr_per_step"], rtol=1e-9, atol=1e-12)
    assert run["lr_per_step"][10] == pytest.approx(0.15) and run["lr_per_step"][25] == pytest.approx(0.0, abs=1e-12)
    assert run["lr_per_step"][40] == pytest.approx(0.15)  # the cosine comes back: it is periodic, not clamped
    real = swav_schedule(load("hash6", "full", ["ssl.scheduler_iters_per_epoch=0", "pretrain.epochs=25"]), 6)
    assert real == (60, 150)  # the intent: 10 epochs of warm-up, one cosine to the end


def test_prototypes_frozen_for_freeze_prototypes_epochs() -> None:
    """In the reference the prototypes never move while current_epoch < freeze_prototypes_epochs (313 in the
    README command); with 1 they move from the second epoch on (fixture runs)."""
    from pretrainlab.ct.swav import SwAVTask

    frozen_run, one_run = SWAV_FIXTURE["runs"]
    assert frozen_run["freeze_prototypes_epochs"] == 313 and not any(frozen_run["prototypes_moved_per_epoch"])
    assert one_run["prototypes_moved_per_epoch"] == [False, True, True, True]
    cfg = load("hash6", "smoke", [])
    per_epoch = 3
    task = SwAVTask(cfg, freeze_prototypes_steps=1 * per_epoch)
    for step, frozen in [(0, True), (2, True), (3, False), (7, False)]:
        task.zero_grad()
        task.begin_step(step, frozenset({"main"}))
        task(_batch())["loss"].backward()
        assert (task.prototypes.weight.grad is None) is frozen, step
        assert task.head.net[0].weight.grad is not None
    torch.testing.assert_close(task.prototypes.weight.norm(dim=1), torch.ones(cfg.ssl.nmb_prototypes))


def _loss_goes_down(task: torch.nn.Module, batch: dict[str, torch.Tensor], steps: int = 25, lr: float = 3e-3,
                    skip: int = 0) -> tuple[float, float]:
    torch.manual_seed(0)
    opt = torch.optim.Adam([p for p in task.parameters() if p.requires_grad], lr=lr)
    losses = []
    for i in range(steps):
        task.begin_step(i, frozenset({"main"}))
        out = task(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        task.on_step_end(i + 1, steps)
        losses.append(float(out["loss"].detach()))
    return float(np.mean(losses[skip:skip + 3])), float(np.mean(losses[-3:]))


@pytest.mark.parametrize("method", ["swav", "simclr", "moco"])
def test_pretraining_loss_goes_down(method: str) -> None:
    from pretrainlab.ct.contrastive import build_pretrain_task

    torch.manual_seed(0)
    cfg = load("hash6", "smoke", [f"ssl.method={method}", "ssl.moco_queue=16", "ssl.min_scale_crops=[0.95,0.25]"])
    task = build_pretrain_task(cfg, 0)
    # MoCo: the first step sees the random initial queue (easy negatives); compare once it holds real keys
    first, last = _loss_goes_down(task, _batch(16), steps=40 if method == "moco" else 25, skip=2 if method == "moco" else 0)
    assert last < first


@pytest.mark.parametrize("recipe", PRETRAIN_RECIPES)
def test_one_trainer_step_per_recipe(recipe: str, tmp_path: Path) -> None:
    """One optimizer step of the recipe's pre-training through the core trainer (the reference schedule on)."""
    from pretrainlab.ct.pretraining import pretrain

    cfg = load(recipe, "smoke", ["ssl.moco_queue=16", "train.tensorboard=false"])
    cfg = dataclasses.replace(cfg, pretrain=dataclasses.replace(cfg.pretrain, epochs=1.0))
    task, res = pretrain(cfg, _slices(8), tmp_path)
    assert res.step == 1 and res.checkpoint is not None and np.isfinite(res.history[-1]["loss"])
    assert hasattr(task, "backbone")


def test_reduction_strategies_on_phantoms(ct_smoke: Path) -> None:
    from pretrainlab.ct.selective_reduction import load_volumes, reduce_all

    vols = load_volumes(ct_smoke / "pretrain", progress=False)
    n = sum(len(s) for _, s in vols)
    fracs = {}
    for st in ("all", "every_n", "ssim", "mi", "hash"):
        cfg = load("hash6", "smoke", [f"reduction.strategy={st}"]).reduction
        kept, rep = reduce_all(vols, cfg, progress=False)
        assert rep["slices_in"] == n and rep["slices_kept"] == sum(len(k) for k in kept)
        assert all(k[0] == 0 and np.all(np.diff(k) > 0) for k in kept)  # first slice kept, sorted, unique
        fracs[st] = rep["kept_fraction"]
        assert ("extension" in rep["origin"]) == (st not in ("all", "hash"))
    assert fracs["all"] == 1.0 and all(0 < f < 1 for s, f in fracs.items() if s != "all")
    cfg = load("deepnet", "smoke", []).reduction
    embed = lambda s: np.asarray(s).reshape(len(s), -1).astype(np.float32)
    kept, rep = reduce_all(vols, cfg, embed, progress=False)
    assert 0 < rep["kept_fraction"] <= 1


@pytest.mark.parametrize("k", [0, 2, 4, 6, 8, 12])
def test_hash_k_on_phantoms_keeps_the_imagehash_loop_slices(ct_phantom, ct_smoke: Path, k: int) -> None:
    from pretrainlab.core.reduction import hash_k, reference_hash_k
    from pretrainlab.ct.preprocessing import minmax_uint8
    from pretrainlab.ct.selective_reduction import load_volumes

    vols = [minmax_uint8(ct_phantom[0])] + [s for _, s in load_volumes(ct_smoke / "pretrain", progress=False)]
    for sl in vols:
        np.testing.assert_array_equal(hash_k(sl, k), reference_hash_k(sl, k))
