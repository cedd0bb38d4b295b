"""Formula-level tests of the paper's components against the reference code, loss-goes-down tests,
one-step smoke per recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pretrainlab.isp import bayer
from pretrainlab.isp.conventional_isp import (
    conventional_isp,
    demosaic_bilinear,
    demosaic_menon2007,
    reference_render,
)
from pretrainlab.isp.feature_networks import gauss_kernel, gaussian_blur, rgb_to_lab_l
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
from pretrainlab.isp.metrics import delta_e2000, ms_ssim, ms_ssim_scales, psnr, quantize, ssim

RECIPES = sorted(p.stem for p in (Path(bayer.__file__).parent / "recipes").glob("*.yaml"))


def test_pack_order_planes_and_ntire_order() -> None:
    m = torch.arange(16.0).view(4, 4)
    p = bayer.pack(m)
    assert p.shape == (4, 2, 2)
    assert p[0, 0, 0] == m[1, 1] and p[1, 0, 0] == m[0, 1] and p[2, 0, 0] == m[0, 0] and p[3, 0, 0] == m[1, 0]
    assert torch.equal(bayer.unpack(p[None])[0, 0], m)
    planes = bayer.rgb_planes(p[None] / 100, "RGGB")[0]  # ref: ones where a colour has no sample
    assert planes[0, 0, 0] == m[0, 0] / 100 and planes[0, 0, 1] == 1 and planes[2, 1, 1] == m[1, 1] / 100
    assert planes[1, 0, 1] == m[0, 1] / 100 and planes[1, 0, 0] == 1
    ntire = torch.stack([m[0::2, 0::2], m[0::2, 1::2], m[1::2, 0::2], m[1::2, 1::2]])  # R, G, G, B
    assert torch.equal(bayer.ntire_to_packed(ntire), p) and torch.equal(bayer.packed_to_ntire(p), ntire)
    with pytest.raises(ValueError, match="unknown Bayer pattern"):
        bayer.check_pattern("RGBW")


def test_normalisation_presets_match_the_reference() -> None:
    x = torch.full((4, 2, 2), 1023.0)
    assert torch.allclose(bayer.normalise(x, "ntire"), torch.ones(4, 2, 2))
    f = bayer.normalise(torch.tensor([62.0, 60, 58, 61]).view(4, 1, 1), "fujifilm")
    assert torch.equal(f, torch.zeros(4, 1, 1))
    assert torch.equal(bayer.normalise(torch.full((4, 1, 1), 1023.0), "fujifilm"), torch.ones(4, 1, 1))
    assert torch.allclose(bayer.normalise(torch.full((4, 1, 1), 1020.0), "zurich"), torch.ones(4, 1, 1))
    assert torch.allclose(bayer.normalise(torch.full((4, 1, 1), 1086.0), "rmfanet"), torch.ones(4, 1, 1))  # (x-63)/1023


def test_generator_sizes_and_names_match_the_reference() -> None:
    sizes = {n: count_params(build_generator(n)) for n in GENERATORS}
    assert sizes == {"efficientisp": 3060, "robustisp": 1616, "rmfanet_tiny": 29223}
    assert set(build_generator("efficientisp").state_dict()) == {f"conv{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}
    keys = set(build_generator("rmfanet_tiny").state_dict())
    assert {"input_module.0.weight", "rmfa_blocks.1.channel_attention.fc.2.weight", "output_module.0.bias"} <= keys
    for n in GENERATORS:
        y = build_generator(n)(torch.rand(2, 4, 8, 12))
        assert y.shape == (2, 3, 16, 24)
    y = build_generator("rmfanet_tiny")(torch.rand(1, 4, 7, 9))  # planes not a multiple of 4: padded, cropped
    assert y.shape == (1, 3, 14, 18)
    g = build_generator("efficientisp")
    assert count_macs(g, (540, 960)) == pytest.approx(3060 * 540 * 960 - 12 * 3 * 540 * 960, rel=0.01)


def test_menon_matches_colour_demosaicing() -> None:
    """The reference renders its content target with colour_demosaicing's Menon 2007 (refining step on)."""
    cd = pytest.importorskip("colour_demosaicing")
    rng = np.random.default_rng(0)
    for pattern in ("RGGB", "GBRG"):
        cfa = rng.integers(0, 1024, (20, 28)).astype(np.float64)
        for refine in (True, False):
            ref = cd.demosaicing_CFA_Bayer_Menon2007(cfa, pattern, refining_step=refine)
            ours = demosaic_menon2007(torch.from_numpy(cfa)[None, None], pattern, refine)[0].permute(1, 2, 0).numpy()
            assert np.abs(ours - ref).max() < 1e-9


def test_reference_render_pipeline() -> None:
    """ref load_dataset.raw_to_rgb_transform: counts / 65535 -> Menon -> WB -> clip -> min-max -> gamma."""
    cd = pytest.importorskip("colour_demosaicing")
    rng = np.random.default_rng(1)
    raw = rng.integers(58, 1023, (16, 24)).astype(np.uint16)
    rgb = cd.demosaicing_CFA_Bayer_Menon2007(((raw / 65535.0) * 65535).astype(np.uint16), pattern="RGGB")
    rgb = rgb.astype(np.float32) / 65535.0
    rgb = np.clip(rgb * np.array([1.6, 1.2, 1.4], dtype=np.float32), 0, 1)
    rgb = (rgb - rgb.min()) / (rgb.max() - rgb.min())
    expected = np.power(rgb, 1.0 / 2.2)
    counts = bayer.pack(torch.from_numpy(raw.astype(np.float32)))[None]
    ours = reference_render(counts)[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - expected).max() < 2e-4


def test_demosaic_recovers_smooth_colour_and_stretch() -> None:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    rgb = torch.stack([0.2 + 0.5 * xx, 0.3 + 0.4 * yy, 0.6 - 0.3 * xx * yy])[None]
    mosaic = (rgb * bayer.color_masks("RGGB", 32, 32)).sum(1, keepdim=True)
    for out in (demosaic_bilinear(mosaic), demosaic_menon2007(mosaic)):
        assert float(psnr(out[..., 2:-2, 2:-2], rgb[..., 2:-2, 2:-2])) > 35
    out = conventional_isp(torch.rand(2, 4, 8, 8) * 0.5)
    assert torch.allclose(out.amin(dim=(1, 2, 3)), torch.zeros(2), atol=1e-6)
    assert torch.allclose(out.amax(dim=(1, 2, 3)), torch.ones(2), atol=1e-6)


def test_content_and_tv_match_the_reference_formulas() -> None:
    a, b = torch.rand(2, 3, 4, 5), torch.rand(2, 3, 4, 5)
    # ref vgg_loss: content_size = numel / batch; 2 * mse_sum / content_size
    assert torch.allclose(content_loss(a, b), 2 * ((a - b) ** 2).sum() / (a.numel() / 2))
    x = torch.rand(2, 3, 6, 7)
    # ref tv_loss: l2_loss = sum / 2; 2 * (x_tv / tv_x_size + y_tv / tv_y_size) / B
    y_tv = ((x[:, :, 1:] - x[:, :, :-1]) ** 2).sum() / 2
    x_tv = ((x[..., 1:] - x[..., :-1]) ** 2).sum() / 2
    assert torch.allclose(tv_loss(x), 2 * (x_tv / (6 * 6 * 3) + y_tv / (5 * 7 * 3)) / 2)
    assert float(tv_loss(torch.ones(1, 3, 5, 5))) == 0.0


def test_relativistic_gan_and_penalties_match_the_reference() -> None:
    f, r = torch.tensor([0.0, 1.0]), torch.tensor([2.0, -1.0])
    assert torch.allclose(relativistic_g_loss(f, r), torch.nn.functional.softplus(-(f - r)).mean())
    assert torch.allclose(relativistic_d_loss(f, r), torch.nn.functional.softplus(-(r - f)).mean())
    lin = nn.Linear(3, 1, bias=False)
    x = torch.rand(4, 3, requires_grad=True)
    assert torch.allclose(zero_centred_penalty(lin(x).squeeze(1), x), (lin.weight ** 2).sum())
    real, fake = torch.rand(4, 3), torch.rand(4, 3)
    d = discriminator_loss(lambda t: lin(t), real, fake, 10.0, 10.0)
    # ref gan_loss: per sample softplus(-(real - fake)) + gamma / 2 * (100 * R1 + 100 * R2), then the mean
    w2 = (lin.weight ** 2).sum()
    expected = (torch.nn.functional.softplus(-(lin(real) - lin(fake))) + 5.0 * (100 * w2 + 100 * w2)).mean()
    assert torch.allclose(d["total"], expected)
    assert torch.allclose(d["total"], d["adv"] + 500 * d["r1"] + 500 * d["r2"])


def test_gradient_norm_balancing() -> None:
    """ref helper.normalize_loss: each term times 1 / (||grad L_i|| + 1e-8), then its weight."""
    p = nn.Parameter(torch.tensor([1.0, 2.0]))
    terms = {"a": 100 * (p ** 2).sum(), "b": 0.01 * p.sum()}
    total, norms = balance(terms, {"a": 1.0, "b": 2.0}, [p])
    assert torch.allclose(total, terms["a"] + 2 * terms["b"])
    (g,) = torch.autograd.grad(total, [p])
    ga, gb = torch.tensor([200.0, 400.0]), torch.tensor([0.01, 0.01])
    assert torch.allclose(g, ga / ga.norm() + 2 * gb / gb.norm(), atol=1e-5)
    assert torch.allclose(norms["a"], ga.norm())


def test_discriminators_as_the_reference() -> None:
    from pretrainlab.isp.discriminators import ColourDiscriminator, TextureDiscriminator

    d = TextureDiscriminator(64, (63, 63))  # AlexNet relu1 of a 256x256 image
    convs = [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0]) for m in
             (d.conv1, d.conv2, d.conv3, d.conv4, d.conv5)]
    assert convs == [(64, 48, 5, 2), (48, 128, 3, 2), (128, 192, 3, 1), (192, 192, 3, 1), (192, 128, 3, 2)]
    assert d.fc1.in_features == 128 * 8 * 8 and d.fc2.out_features == 1
    assert not d.fc1.weight.requires_grad  # ref: fc1 is built after the optimizer, never trained
    assert d(torch.rand(2, 64, 63, 63)).shape == (2, 1)
    assert TextureDiscriminator(256, (15, 15)).fc1.in_features == 128 * 2 * 2
    assert TextureDiscriminator(64, (63, 63), train_fc1=True).fc1.weight.requires_grad
    c = ColourDiscriminator(768)
    assert [type(m).__name__ for m in c.layers] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert c(torch.rand(2, 196, 768)).shape == (2, 1)


def test_blur_kernel_lab_and_metrics() -> None:
    from scipy.stats import norm

    # ref utils.gauss_kernel(21, 3)
    interval = 7.0 / 21
    k1 = np.diff(norm.cdf(np.linspace(-3 - interval / 2, 3 + interval / 2, 22)))
    kern = np.sqrt(np.outer(k1, k1))
    assert np.allclose(gauss_kernel(21, 3.0).numpy(), kern / kern.sum(), atol=1e-7)
    c = torch.full((1, 3, 40, 40), 0.3)
    assert torch.allclose(gaussian_blur(c)[..., 10:-10, 10:-10], c[..., 10:-10, 10:-10], atol=1e-6)
    assert float(gaussian_blur(c)[0, 0, 0, 0]) < 0.3  # zero padding at the border (ref F.conv2d padding)
    assert torch.allclose(rgb_to_lab_l(torch.ones(1, 3, 2, 2)), torch.full((1, 1, 2, 2), 100.0), atol=1e-3)
    assert torch.allclose(rgb_to_lab_l(torch.zeros(1, 3, 2, 2)), torch.zeros(1, 1, 2, 2), atol=1e-3)
    assert float(rgb_to_lab_l(torch.full((1, 3, 1, 1), 1.2))) > 100  # kornia does not clamp
    x = torch.rand(2, 3, 48, 48)
    assert float(ssim(x, x).min()) == pytest.approx(1.0, abs=1e-4)
    assert float(ms_ssim(x, x).min()) == pytest.approx(1.0, abs=1e-4)
    assert ms_ssim_scales(48, 48) == 3 and ms_ssim_scales(256, 256) == 5
    assert float(delta_e2000(x, x).max()) == pytest.approx(0.0, abs=1e-6)
    y = (x + 0.1).clamp(0, 1)
    assert float(psnr(x, x).min()) > 90 and float(psnr(x, y).mean()) < 25
    assert torch.equal(quantize(torch.tensor([0.999, 1.5, -1.0, 0.5])) * 255, torch.tensor([254.0, 255.0, 0.0, 127.0]))


def test_hf_vit_weights_convert_to_torchvision() -> None:
    """The reference's colour features: Hugging Face ViTModel last_hidden_state[:, 1:]."""
    transformers = pytest.importorskip("transformers")
    from pretrainlab.isp.config import FeatureNetConfig
    from pretrainlab.isp.feature_networks import build_vit, hf_vit_to_torchvision, vit_tokens

    torch.manual_seed(0)
    hf_cfg = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=4, intermediate_size=64)
    hf = transformers.ViTModel(hf_cfg, add_pooling_layer=False).eval()
    cfg = FeatureNetConfig(vit_image_size=32, vit_patch=8, vit_dim=32, vit_depth=2, vit_heads=4)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        ref = hf(pixel_values=x).last_hidden_state[:, 1:]
    sd = hf.state_dict()
    v4 = {}  # the names of the Hub file (transformers 4), as the reference loaded it
    for k, v in sd.items():
        k4 = k
        for new, old in (("attention.q_proj", "attention.attention.query"), ("attention.k_proj", "attention.attention.key"),
                         ("attention.v_proj", "attention.attention.value"), ("attention.o_proj", "attention.output.dense"),
                         ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense")):
            k4 = k4.replace(new, old)
        v4["vit." + k4.replace("layers.", "encoder.layer.")] = v
    for state in (sd, v4):
        tv = build_vit(cfg, paper_size=False, eps=1e-12).eval()
        res = tv.load_state_dict(hf_vit_to_torchvision(state), strict=False)
        assert not res.missing_keys or all(k.startswith("heads.") for k in res.missing_keys)
        with torch.no_grad():
            assert torch.allclose(vit_tokens(tv, x), ref, atol=1e-5)


def test_matconvnet_vgg_file_loads(tmp_path: Path) -> None:
    """ref VGGFromMAT: kernels (kh, kw, in, out) of the MatConvNet .mat -> conv weights (out, in, kh, kw)."""
    import scipy.io

    from pretrainlab.isp.feature_networks import VGG19_CFG, load_matconvnet_vgg19

    widths = [max(4, int(v) // 16) for v in VGG19_CFG if v != "M"]
    rng = np.random.default_rng(0)
    layers, c, kernels = [], 3, []
    for i, o in enumerate(widths):
        k = rng.normal(size=(3, 3, c, o)).astype(np.float32)
        kernels.append(k)
        w = np.empty((1, 2), dtype=object)
        w[0, 0], w[0, 1] = k, np.arange(o, dtype=np.float32).reshape(o, 1)
        layers.append({"name": f"conv{i}", "type": "conv", "weights": w})
        layers.append({"name": f"relu{i}", "type": "relu"})
        c = o
    cell = np.empty((1, len(layers)), dtype=object)
    for i, layer in enumerate(layers):
        cell[0, i] = layer
    scipy.io.savemat(tmp_path / "vgg.mat", {"layers": cell})
    net = load_matconvnet_vgg19(tmp_path / "vgg.mat")
    convs = [m for m in net if isinstance(m, nn.Conv2d)]
    assert len(convs) == 16 and torch.equal(convs[3].weight, torch.from_numpy(kernels[3].transpose(3, 2, 0, 1)))
    assert torch.equal(convs[0].bias, torch.arange(widths[0], dtype=torch.float32))


def test_content_loss_goes_down_paired_noadv(smoke_data: Path, smoke_nets, tmp_path: Path) -> None:
    from pretrainlab.isp import api
    from pretrainlab.isp.unpaired_training import pretrain

    cfg = api.load("efficientisp_paired_noadv", "smoke", ["train.progress=false", "train.max_steps=40",
                                                           "train.batch_size=8", "train.log_every=10", "train.lr=5e-3"])
    _, res = pretrain(cfg, smoke_data, tmp_path / "run", nets=smoke_nets)
    assert res.history[-1]["content"] < 0.8 * res.history[0]["content"]


def test_discriminator_loss_goes_down() -> None:
    torch.manual_seed(0)
    from pretrainlab.isp.discriminators import ColourDiscriminator, TextureDiscriminator

    for d, shape in ((TextureDiscriminator(8, (6, 6), (8, 8, 8, 8, 8), 32, True), (8, 8, 6, 6)),
                     (ColourDiscriminator(16, 32), (8, 5, 16))):
        real, fake = torch.randn(*shape) + 1.0, torch.randn(*shape) - 1.0
        opt = torch.optim.Adam([p for p in d.parameters() if p.requires_grad], 1e-3)
        first = None
        for _ in range(30):
            loss = discriminator_loss(d, real, fake, 1.0, 1.0, 1.0)["total"]
            first = first if first is not None else float(loss.detach())
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert float(loss.detach()) < 0.7 * first


def test_task_one_adam_per_discriminator_and_due_groups(smoke_cfg, smoke_nets) -> None:
    from pretrainlab.core.config import merge
    from pretrainlab.isp.unpaired_training import ISPTask

    task = ISPTask(merge(smoke_cfg, {"loss.d_every": 3}), smoke_nets, out_hw=(32, 32))
    groups = task.optim_groups()
    assert [g.name for g in groups] == ["generator", "d_texture1", "d_texture4", "d_colour"]
    assert all(g.every == 3 and g.clip_grad == 1.0 and g.lr == smoke_cfg.loss.d_lr for g in groups[1:])
    assert not any(p is task.d_texture1.fc1.weight for p in groups[1].params)  # ref: fc1 never trains
    assert "nets.vgg.0.weight" not in task.state_dict() and "generator.conv1.weight" in task.state_dict()
    b = {"raw": torch.rand(2, 4, 16, 16), "ref": torch.rand(2, 3, 32, 32), "real": torch.rand(2, 3, 32, 32)}
    task.begin_step(0, frozenset({"generator", "d_texture1", "d_texture4", "d_colour"}))
    assert {"d_loss_texture1", "d_loss_texture4", "d_loss_colour"} <= set(task(b))
    task.begin_step(1, frozenset({"generator"}))
    out = task(b)
    assert not any(k.startswith("d_loss") for k in out) and {"content", "tv", "texture1", "texture4", "colour"} <= set(out)


def test_warm_start_from_reference_checkpoint(tmp_path: Path, smoke_data: Path, smoke_nets) -> None:
    """ref config.pretrained_path: the generator starts from a released .pth (model.init)."""
    from pretrainlab.isp import api
    from pretrainlab.isp.unpaired_training import pretrain

    torch.manual_seed(3)
    sd = build_generator("efficientisp").state_dict()
    torch.save(sd, tmp_path / "pretrained_20000.pth")
    cfg = api.load("efficientisp_paired_noadv", "smoke", ["train.progress=false", "train.max_steps=1", "train.lr=1e-12",
                                                           f"model.init={tmp_path / 'pretrained_20000.pth'}"])
    task, _ = pretrain(cfg, smoke_data, tmp_path / "run", nets=smoke_nets)
    assert torch.allclose(task.generator.conv1.weight, sd["conv1.weight"], atol=1e-6)


@pytest.mark.parametrize("recipe", RECIPES)
def test_one_step_per_recipe(recipe: str, smoke_data: Path, smoke_nets, tmp_path: Path) -> None:
    from pretrainlab.isp import api
    from pretrainlab.isp.unpaired_training import pretrain

    cfg = api.load(recipe, "smoke", ["train.progress=false", "train.max_steps=1", "train.batch_size=2"])
    _, res = pretrain(cfg, smoke_data, tmp_path / recipe, nets=smoke_nets)
    assert res.step == 1 and res.checkpoint is not None
    assert all(np.isfinite(v) for k, v in res.history[-1].items() if isinstance(v, float))


@pytest.mark.parametrize("profile", ["smoke", "tiny", "full"])
def test_every_recipe_loads(profile: str) -> None:
    from pretrainlab.isp import api

    assert len(RECIPES) == 10
    for r in RECIPES:
        cfg = api.load(r, profile, [])
        assert cfg.model.generator in GENERATORS and cfg.loss.mode in ("paired", "paired_noadv", "unpaired", "warmstart")
        assert cfg.train.betas == (0.5, 0.9) and cfg.loss.r1_gamma == 10.0 and cfg.loss.r_scale == 100.0
        assert r.startswith(cfg.model.generator) and r.endswith(cfg.loss.mode)


def test_lpips_alex_formula_and_local_weights(tmp_path: Path) -> None:
    """LPIPS v0.1 (Zhang et al.; pyiqa / torchmetrics 'alex'): scaling layer, unit-normalised features,
    squared differences, 1x1 linear layers, spatial mean, sum over the 5 AlexNet relus."""
    from safetensors.torch import save_file
    from torchvision.models import alexnet

    from pretrainlab.isp.metrics import load_lpips

    torch.manual_seed(0)
    trunk = alexnet().features
    save_file({f"features.{k}": v.contiguous() for k, v in trunk.state_dict().items()}, tmp_path / "alex.safetensors")
    lins = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}
    torch.save(lins, tmp_path / "lpips_lin.pth")
    m = load_lpips(str(tmp_path / "alex.safetensors"), str(tmp_path / "lpips_lin.pth"))
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    a, b = (2 * x - 1 - shift) / scale, (2 * y - 1 - shift) / scale
    expected = torch.zeros(2)
    with torch.no_grad():
        for i, (s, e) in enumerate(((0, 2), (2, 5), (5, 8), (8, 10), (10, 12))):
            a, b = trunk[s:e](a), trunk[s:e](b)
            na = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            expected += ((na - nb) ** 2 * lins[f"lin{i}.model.1.weight"]).sum(1).mean(dim=(1, 2))
        assert torch.allclose(m(x, y), expected, atol=1e-5)
        assert torch.allclose(m(x, x), torch.zeros(2), atol=1e-6)
