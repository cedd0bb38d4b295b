"""Formula-level tests of the paper's components, loss-goes-down tests, one-step smoke per recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from pretrainlab.isp import bayer
from pretrainlab.isp.conventional_isp import conventional_isp, demosaic_bilinear, demosaic_menon2007
from pretrainlab.isp.feature_networks import gaussian_blur, rgb_to_lab_l
from pretrainlab.isp.generators import GENERATORS, build_generator, count_macs, count_params
from pretrainlab.isp.losses import (
    balance,
    content_loss,
    discriminator_loss,
    relativistic_d_loss,
    relativistic_g_loss,
    tv_loss,
    zero_centred_penalty,
)
from pretrainlab.isp.metrics import delta_e2000, ms_ssim, psnr, ssim

RECIPES = sorted(p.stem for p in (Path(bayer.__file__).parent / "recipes").glob("*.yaml"))


def test_pack_order_and_roundtrip() -> None:
    m = torch.arange(16.0).view(4, 4)
    p = bayer.pack(m)
    assert p.shape == (4, 2, 2)
    assert p[0, 0, 0] == m[1, 1] and p[1, 0, 0] == m[0, 1] and p[2, 0, 0] == m[0, 0] and p[3, 0, 0] == m[1, 0]
    assert torch.equal(bayer.unpack(p[None])[0, 0], m)
    split = bayer.rgb_split(p[None], "RGGB")[0]
    assert split[0, 0, 0] == m[0, 0] and split[0, 0, 1] == 0 and split[2, 1, 1] == m[1, 1]
    with pytest.raises(ValueError, match="unknown Bayer pattern"):
        bayer.check_pattern("RGBW")


def test_normalisation_presets() -> None:
    x = torch.full((4, 2, 2), 1023.0)
    assert torch.allclose(bayer.normalise(x, "ntire"), torch.ones(4, 2, 2))
    f = bayer.normalise(torch.tensor([62.0, 60, 58, 61]).view(4, 1, 1), "fujifilm")
    assert torch.allclose(f, torch.zeros(4, 1, 1))
    assert torch.allclose(bayer.normalise(torch.full((4, 1, 1), 1020.0), "zurich"), torch.ones(4, 1, 1))


def test_generator_sizes_match_the_paper() -> None:
    sizes = {n: count_params(build_generator(n)) for n in GENERATORS}
    assert sizes["efficientisp"] == 3060  # ~3.1k
    assert sizes["robustisp"] == 1616  # ~1.6k
    assert 27_000 <= sizes["rmfanet_tiny"] <= 31_000  # ~29k
    for n in GENERATORS:
        y = build_generator(n)(torch.rand(2, 4, 8, 12))
        assert y.shape == (2, 3, 16, 24)
    g = build_generator("efficientisp")
    assert count_macs(g, (540, 960)) == pytest.approx(3060 * 540 * 960 - 12 * 3 * 540 * 960, rel=0.01)


def test_demosaic_recovers_smooth_colour() -> None:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    rgb = torch.stack([0.2 + 0.5 * xx, 0.3 + 0.4 * yy, 0.6 - 0.3 * xx * yy])[None]
    mosaic = (rgb * bayer.color_masks("RGGB", 32, 32)).sum(1, keepdim=True)
    for fn in (demosaic_bilinear, demosaic_menon2007):
        out = fn(mosaic, "RGGB")
        assert float(psnr(out[..., 2:-2, 2:-2], rgb[..., 2:-2, 2:-2])) > 35


def test_conventional_pipeline_stretch_and_gamma() -> None:
    packed = torch.rand(2, 4, 8, 8) * 0.5
    out = conventional_isp(packed)
    assert out.shape == (2, 3, 16, 16)
    assert torch.allclose(out.amin(dim=(1, 2, 3)), torch.zeros(2), atol=1e-6)
    assert torch.allclose(out.amax(dim=(1, 2, 3)), torch.ones(2), atol=1e-6)


def test_content_and_tv_formulas() -> None:
    a, b = torch.rand(2, 3, 4, 5), torch.rand(2, 3, 4, 5)
    assert torch.allclose(content_loss(a, b), 2 * ((a - b) ** 2).sum() / a.numel())
    x = torch.rand(2, 3, 6, 7)
    ty = ((x[:, :, 1:] - x[:, :, :-1]) ** 2).sum() / (3 * 5 * 7)
    tx = ((x[..., 1:] - x[..., :-1]) ** 2).sum() / (3 * 6 * 6)
    assert torch.allclose(tv_loss(x), 2 * (ty + tx) / 2)
    assert float(tv_loss(torch.ones(1, 3, 5, 5))) == 0.0


def test_relativistic_gan_and_r1() -> None:
    f, r = torch.tensor([0.0, 1.0]), torch.tensor([2.0, -1.0])
    assert torch.allclose(relativistic_g_loss(f, r), torch.nn.functional.softplus(r - f).mean())
    assert torch.allclose(relativistic_d_loss(f, r), torch.nn.functional.softplus(f - r).mean())
    lin = nn.Linear(3, 1, bias=False)
    x = torch.rand(4, 3, requires_grad=True)
    pen = zero_centred_penalty(lin(x).squeeze(1), x)
    assert torch.allclose(pen, (lin.weight ** 2).sum())  # grad of w.x is w for every sample
    d = discriminator_loss(lambda t: lin(t).squeeze(1), torch.rand(4, 3), torch.rand(4, 3), 10.0, 10.0)
    assert torch.allclose(d["total"], d["adv"] + 5 * d["r1"] + 5 * d["r2"])


def test_gradient_norm_balancing() -> None:
    """Each term contributes w * grad L / ||grad L||, and the value stays sum w * L."""
    p = nn.Parameter(torch.tensor([1.0, 2.0]))
    terms = {"a": 100 * (p ** 2).sum(), "b": 0.01 * p.sum()}
    total, norms = balance(terms, {"a": 1.0, "b": 2.0}, [p])
    assert torch.allclose(total, terms["a"] + 2 * terms["b"])
    (g,) = torch.autograd.grad(total, [p])
    ga = torch.tensor([200.0, 400.0])
    gb = torch.tensor([0.01, 0.01])
    assert torch.allclose(g, ga / ga.norm() + 2 * gb / gb.norm(), atol=1e-5)
    assert torch.allclose(norms["a"], ga.norm())


def test_lab_blur_and_metrics() -> None:
    assert torch.allclose(rgb_to_lab_l(torch.ones(1, 3, 2, 2)), torch.full((1, 1, 2, 2), 100.0), atol=1e-3)
    assert torch.allclose(rgb_to_lab_l(torch.zeros(1, 3, 2, 2)), torch.zeros(1, 1, 2, 2), atol=1e-3)
    c = torch.full((1, 3, 40, 40), 0.3)
    assert torch.allclose(gaussian_blur(c, 21, 3.0), c, atol=1e-6)
    x = torch.rand(2, 3, 48, 48)
    assert float(ssim(x, x).min()) == pytest.approx(1.0, abs=1e-4)
    assert float(ms_ssim(x, x).min()) == pytest.approx(1.0, abs=1e-4)
    assert float(delta_e2000(x, x).max()) == pytest.approx(0.0, abs=1e-6)
    y = (x + 0.1).clamp(0, 1)
    assert float(psnr(x, x).min()) > 90 and float(psnr(x, y).mean()) < 25
    assert float(delta_e2000(x, y).mean()) > 1


def test_content_loss_goes_down_paired_noadv(smoke_data: Path, smoke_nets, tmp_path: Path) -> None:
    from pretrainlab.isp.domain import load
    from pretrainlab.isp.unpaired_training import pretrain

    cfg = load("efficientisp_paired_noadv", "smoke", ["train.progress=false", "train.max_steps=40",
                                                         "train.batch_size=8", "train.log_every=10", "train.lr=5e-3"])
    _, res = pretrain(cfg, smoke_data, tmp_path / "run", nets=smoke_nets)
    assert res.history[-1]["content"] < 0.8 * res.history[0]["content"]


def test_discriminator_loss_goes_down() -> None:
    torch.manual_seed(0)
    from pretrainlab.isp.discriminators import ColourDiscriminator, TextureDiscriminator

    for d, shape in ((TextureDiscriminator(8, 8, 32), (8, 8, 6, 6)), (ColourDiscriminator(16, 32), (8, 5, 16))):
        real, fake = torch.randn(*shape) + 1.0, torch.randn(*shape) - 1.0
        opt = torch.optim.Adam(d.parameters(), 1e-3)
        first = None
        for _ in range(30):
            loss = discriminator_loss(d, real, fake, 1.0, 1.0)["total"]
            first = first if first is not None else float(loss.detach())
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert float(loss.detach()) < 0.7 * first


def test_task_optim_groups_and_d_schedule(smoke_cfg, smoke_nets) -> None:
    from pretrainlab.core.config import merge
    from pretrainlab.isp.unpaired_training import ISPTask

    task = ISPTask(merge(smoke_cfg, {"loss.d_every": 3}), smoke_nets)
    groups = task.optim_groups()
    assert [g.name for g in groups] == ["generator", "discriminators"]
    assert groups[1].every == 3 and groups[1].lr == smoke_cfg.loss.d_lr
    assert "nets.vgg.0.weight" not in task.state_dict() and "generator.c1.weight" in task.state_dict()
    b = {"raw": torch.rand(2, 4, 16, 16), "ref": torch.rand(2, 3, 32, 32), "real": torch.rand(2, 3, 32, 32)}
    assert "d_loss" in task(b)
    task.on_step_end(1, 10)
    out = task(b)
    assert "d_loss" not in out and {"content", "tv", "texture1", "texture4", "colour"} <= set(out)
    task.on_step_end(3, 10)
    assert "d_loss" in task(b)


@pytest.mark.parametrize("recipe", RECIPES)
def test_one_step_per_recipe(recipe: str, smoke_data: Path, smoke_nets, tmp_path: Path) -> None:
    from pretrainlab.isp.domain import load
    from pretrainlab.isp.unpaired_training import pretrain

    cfg = load(recipe, "smoke", ["train.progress=false", "train.max_steps=1", "train.batch_size=2"])
    _, res = pretrain(cfg, smoke_data, tmp_path / recipe, nets=smoke_nets)
    assert res.step == 1 and res.checkpoint is not None
    assert all(torch.isfinite(torch.tensor(v)) for k, v in res.history[-1].items() if isinstance(v, float))


@pytest.mark.parametrize("profile", ["smoke", "tiny", "full"])
def test_every_recipe_loads(profile: str) -> None:
    from pretrainlab.isp.domain import load

    assert len(RECIPES) == 9
    for r in RECIPES:
        cfg = load(r, profile, [])
        assert cfg.model.generator in GENERATORS and cfg.loss.mode in ("paired", "paired_noadv", "unpaired")
        assert cfg.train.betas == (0.5, 0.9) and cfg.loss.r1_gamma == 10.0
