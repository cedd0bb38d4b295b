"""Formula-level tests of the paper's equations and of the method's wiring."""

from __future__ import annotations

import math

import pytest
import torch

from pretrainlab.core.peft import LoRALinear, lora_modules
from pretrainlab.face.config import FaceConfig, QualityConfig, SwinConfig
from pretrainlab.face.margin_loss import MarginHead, margin_logits
from pretrainlab.face.quality import QualityScorer, mixing_from_quality, quality_weight, sharpness_score

SMALL = SwinConfig(image_size=24, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=3,
                   embedding_dim=32)


def _cfg(method: str) -> FaceConfig:
    return FaceConfig(method=method, model=SMALL)


def test_quality_weight_formula() -> None:
    s = torch.tensor([-0.2, 0.3, 0.9, 1.5])
    a = quality_weight(s, threshold=0.4)
    assert torch.allclose(a, 0.5 + (s - 0.4))  # a = 0.5 + (score - threshold), unclamped by default
    assert a.min() < 0 and a.max() > 1
    assert torch.allclose(quality_weight(s, 0.4, clamp=True), (0.5 + s - 0.4).clamp(0, 1))
    w = mixing_from_quality(torch.tensor([0.2, 0.9]))
    assert torch.allclose(w, torch.tensor([[0.8, 0.2], [0.1, 0.9]]))
    scorer = QualityScorer(QualityConfig(threshold=0.3))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(scorer(x), 0.5 + sharpness_score(x, 0.2, 32) - 0.3)


def test_sharpness_ranks_resolution() -> None:
    import numpy as np

    from pretrainlab.face.synthetic_faces import degrade, identity_code, nuisance, render_face

    rng = np.random.default_rng(0)
    hr = [render_face(identity_code(rng), nuisance(rng), rng) for _ in range(6)]
    lr = [degrade(im, 16, rng) for im in hr]
    t = lambda ims: torch.stack([torch.from_numpy(np.asarray(i).copy()).permute(2, 0, 1) for i in ims]).float() / 127.5 - 1
    s_hr, s_lr = sharpness_score(t(hr)), sharpness_score(t(lr))
    assert (s_hr > s_lr).all() and ((0 <= s_lr) & (s_hr < 1)).all()
    # contrast / brightness invariance
    x = t(hr)
    assert torch.allclose(sharpness_score(x), sharpness_score(0.5 * x + 0.1), atol=1e-4)


def test_margin_logits_cosface_and_arcface() -> None:
    cos = torch.tensor([[0.6, 0.2, -0.1], [0.1, 0.8, 0.3]])
    y = torch.tensor([0, 2])
    cf = margin_logits(cos, y, s=64, m1=1, m2=0, m3=0.4)
    exp = cos.clone() * 64
    exp[0, 0] = 64 * (0.6 - 0.4)
    exp[1, 2] = 64 * (0.3 - 0.4)
    assert torch.allclose(cf, exp, atol=1e-4)
    af = margin_logits(cos, y, s=64, m1=1, m2=0.5, m3=0)
    assert math.isclose(float(af[0, 0]), 64 * math.cos(math.acos(0.6) + 0.5), rel_tol=1e-4)
    assert math.isclose(float(af[1, 1]), 64 * 0.8, rel_tol=1e-5)
    head = MarginHead(4, 3, s=64, m3=0.4)
    loss, _acc = head(torch.randn(5, 4, dtype=torch.bfloat16), torch.tensor([0, 1, 2, 0, 1]))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_twin_lora_equation_and_placement() -> None:
    from pretrainlab.face.petalface import FaceTask

    torch.manual_seed(0)
    task = FaceTask(_cfg("petalface"), 5)
    mods = dict(lora_modules(task.backbone))
    twin = {n for n, m in mods.items() if m.n_adapters == 2}
    single = {n for n, m in mods.items() if m.n_adapters == 1}
    assert twin and all(n.endswith("attn.qkv") for n in twin)
    assert single == {"head.fc"}
    layer: LoRALinear = mods[min(twin)]
    layer.eval()
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(3, 7, layer.in_features)
    a = torch.tensor([0.1, 0.5, 1.3])
    layer.mixing = mixing_from_quality(a)
    s = layer.scaling
    up1, down1, up2, down2 = layer.lora_B[0], layer.lora_A[0], layer.lora_B[1], layer.lora_A[1]
    ax = a[:, None, None]
    expected = layer.base(x) + s * ((1 - ax) * x) @ down1.T @ up1.T + s * (ax * x) @ down2.T @ up2.T
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert math.isclose(s, 1.0)  # scale 1 (alpha = rank)
    # init: down ~ N(0, 1/r) (std 1/r), up = 0
    fresh = FaceTask(_cfg("petalface"), 5)
    lay = dict(lora_modules(fresh.backbone))["head.fc"]
    assert float(lay.lora_B.detach().abs().max()) == 0.0


def test_trainable_sets_per_method() -> None:
    from pretrainlab.face.petalface import FaceTask, backbone_trainable

    pet = FaceTask(_cfg("petalface"), 5)
    names = [n for n, p in pet.backbone.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or n.startswith(("head.bn1", "head.bn2")) for n in names)
    assert pet.margin.weight.requires_grad
    lora = FaceTask(_cfg("lora"), 5)
    lnames = [n for n, p in lora.backbone.named_parameters() if p.requires_grad]
    assert any("lora_A.default" in n for n in lnames) and any("head.fc" in n for n in lnames)
    full = FaceTask(_cfg("full"), 5)
    assert backbone_trainable(full)["percent"] == 100.0
    assert 0 < backbone_trainable(pet)["percent"] < 100 and 0 < backbone_trainable(lora)["percent"] < 100


def test_adapters_start_at_the_pretrained_function(pretrained_ckpt) -> None:
    from pretrainlab.face.petalface import load_pretrained_backbone
    from pretrainlab.face.pipeline import load, load_task

    base, cfg, _ = load_task(pretrained_ckpt)
    x = torch.rand(4, 3, cfg.model.image_size, cfg.model.image_size)
    ref = base.embed(x)
    from pretrainlab.face.petalface import FaceTask

    for recipe in ("petalface", "lora", "full_finetune"):
        c = load(recipe, "smoke", [f"init={pretrained_ckpt}"])
        t = FaceTask(c, 3)
        load_pretrained_backbone(t, str(pretrained_ckpt))
        t.eval()
        assert torch.allclose(t.embed(x), ref, atol=1e-5), recipe


def test_cmc_ranks() -> None:
    from pretrainlab.face.evaluation import cmc

    sim = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8], [0.3, 0.1, 0.2]])
    gl = torch.tensor([1, 2, -1])
    pl = torch.tensor([1, 2, 2])
    r = cmc(sim, pl, gl, [1, 2, 3])
    assert r == pytest.approx({"rank-1": 1 / 3, "rank-2": 2 / 3, "rank-3": 1.0})


def test_swin_windows_and_shapes() -> None:
    from pretrainlab.face.swin_face import SwinFace, window_partition, window_reverse

    x = torch.randn(2, 6, 6, 4)
    w = window_partition(x, 3)
    assert w.shape == (8, 9, 4) and torch.equal(window_reverse(w, 3, 6, 6), x)
    assert torch.equal(w[:4], window_partition(x[:1], 3))  # batch is the outer index
    net = SwinFace(SMALL).eval()
    assert net(torch.randn(3, 3, 24, 24)).shape == (3, 32)
    with pytest.raises(ValueError, match="multiple"):
        SwinFace(SwinConfig(image_size=25, patch_size=4))


def test_pyiqa_scorer_needs_local_weights() -> None:
    with pytest.raises(ValueError, match="pyiqa"):
        QualityScorer(QualityConfig(scorer="pyiqa:cnniqa"))
    with pytest.raises(ValueError, match="unknown quality.scorer"):
        QualityScorer(QualityConfig(scorer="magic"))


def test_losses_and_scores_stay_float32_under_bf16_autocast() -> None:
    from pretrainlab.face.petalface import FaceTask

    task = FaceTask(_cfg("petalface"), 4)
    batch = {"image": torch.rand(4, 3, 24, 24), "label": torch.tensor([0, 1, 2, 3])}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = task(batch)
        assert task.margin.cosine(torch.randn(2, 32)).dtype == torch.float32
        assert sharpness_score(torch.rand(2, 3, 24, 24)).dtype == torch.float32
    assert out["loss"].dtype == torch.float32 and torch.isfinite(out["loss"])
