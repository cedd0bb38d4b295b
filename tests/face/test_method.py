"""Formula-level tests of the paper's equations and of the method's wiring."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pretrainlab.core.config import ConfigError
from pretrainlab.face.config import FaceConfig, QualityConfig, SwinConfig
from pretrainlab.face.margin_loss import MarginHead, margin_logits
from pretrainlab.face.quality import QualityScorer, quality_weight, sharpness_score

SMALL = SwinConfig(image_size=24, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=3,
                   embedding_dim=32)
SHARP = QualityConfig(scorer="sharpness")


def _cfg(method: str, **kw: object) -> FaceConfig:
    return FaceConfig(method=method, model=SMALL, quality=SHARP, **kw)  # type: ignore[arg-type]


def test_quality_weight_formula() -> None:
    s = torch.tensor([-0.2, 0.3, 0.9, 1.5, 37.0])
    a = quality_weight(s, threshold=0.4)
    assert torch.allclose(a, 0.5 + (s - 0.4))  # a = 0.5 + (score - threshold), unclamped, raw score (no 1 - s/100)
    assert a.min() < 0 and a.max() > 1
    assert torch.allclose(quality_weight(s, 0.4, clamp=True), (0.5 + s - 0.4).clamp(0, 1))
    scorer = QualityScorer(QualityConfig(scorer="sharpness", threshold=0.3))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(scorer(x), 0.5 + sharpness_score(x, 0.2, 32) - 0.3)


def test_sharpness_ranks_resolution() -> None:
    import numpy as np

    from pretrainlab.face.synthetic import degrade, identity_code, nuisance, render_face

    rng = np.random.default_rng(0)
    hr = [render_face(identity_code(rng), nuisance(rng), rng) for _ in range(6)]
    lr = [degrade(im, 16, rng) for im in hr]
    t = lambda ims: torch.stack([torch.from_numpy(np.asarray(i).copy()).permute(2, 0, 1) for i in ims]).float() / 127.5 - 1
    s_hr, s_lr = sharpness_score(t(hr)), sharpness_score(t(lr))
    assert (s_hr > s_lr).all() and ((0 <= s_lr) & (s_hr < 1)).all()
    x = t(hr)
    assert torch.allclose(sharpness_score(x), sharpness_score(0.5 * x + 0.1), atol=1e-4)


def test_margin_logits_cosface_and_arcface_as_the_reference() -> None:
    cos = torch.tensor([[0.6, 0.2, -0.1], [0.1, 0.8, 0.3]])
    y = torch.tensor([0, 2])
    cf = margin_logits(cos, y, s=64, m1=1, m2=0, m3=0.4)
    exp = cos.clone() * 64
    exp[0, 0] = 64 * (0.6 - 0.4)
    exp[1, 2] = 64 * (0.3 - 0.4)
    assert torch.allclose(cf, exp, atol=1e-4)
    c = cos.clone().requires_grad_(True)
    af = margin_logits(c, y, s=64, m1=1, m2=0.5, m3=0)
    assert math.isclose(float(af[0, 0].detach()), 64 * math.cos(math.acos(0.6) + 0.5), rel_tol=1e-5)
    assert math.isclose(float(af[1, 1].detach()), 64 * 0.8, rel_tol=1e-5)
    af.sum().backward()  # ref: the arccos / + m2 / cos run in place under no_grad: straight-through gradient
    assert torch.allclose(c.grad, torch.full_like(cos, 64.0))
    wide = margin_logits(torch.tensor([[-0.95, 0.0]]), torch.tensor([0]), 64, 1, 0.5, 0)  # theta + m2 > pi
    assert math.isclose(float(wide[0, 0]), 64 * math.cos(math.acos(-0.95) + 0.5), rel_tol=1e-5)  # no easy-margin fallback
    head = MarginHead(4, 3, s=64, m3=0.4)
    assert abs(float(head.weight.std()) - 0.01) < 0.01  # ref: partial_fc N(0, 0.01)
    loss, _acc = head(torch.randn(5, 4, dtype=torch.bfloat16), torch.tensor([0, 1, 2, 0, 1]))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_twin_lora_equation_and_placement() -> None:
    from pretrainlab.face.lora_layers import LoRALinear, LoRALinearTwo
    from pretrainlab.face.petalface import FaceTask

    torch.manual_seed(0)
    task = FaceTask(_cfg("petalface"), 5)
    twin = [n for n, m in task.backbone.named_modules() if isinstance(m, LoRALinearTwo)]
    single = [n for n, m in task.backbone.named_modules() if type(m) is LoRALinear]
    assert twin and all(n.endswith("attn.qkv") for n in twin)
    assert single == ["feature_layer.2"]
    layer = task.backbone.get_submodule(twin[0]).eval()
    x = torch.randn(3, 7, layer.in_features)
    a = torch.tensor([0.1, 0.5, 1.3]).view(-1, 1, 1)
    d1, u1 = layer.trainable_lora_down.weight, layer.trainable_lora_up.weight
    d2, u2 = layer.trainable_lora_down2.weight, layer.trainable_lora_up2.weight
    expected = F.linear(x, layer.weight, layer.bias) + ((1 - a) * x) @ d1.T @ u1.T + (a * x) @ d2.T @ u2.T
    assert torch.allclose(layer(x, a), expected, atol=1e-5)
    lora = FaceTask(_cfg("lora"), 5)
    assert not any(isinstance(m, LoRALinearTwo) for m in lora.backbone.modules())
    assert sum(type(m) is LoRALinear for m in lora.backbone.modules()) == len(twin) + 1


def test_trainable_sets_per_method() -> None:
    from pretrainlab.face.petalface import FaceTask, backbone_trainable

    for method in ("petalface", "lora"):
        t = FaceTask(_cfg(method), 5)
        names = [n for n, p in t.backbone.named_parameters() if p.requires_grad]
        assert names and all("trainable_lora" in n for n in names)  # ref: 'trainable_lora' in name
        assert t.margin.weight.requires_grad and 0 < backbone_trainable(t)["percent"] < 100
    full = FaceTask(_cfg("full"), 5)
    assert backbone_trainable(full)["percent"] == 100.0


def test_adapted_start_point_reference_vs_zero_up(pretrained_ckpt: Path) -> None:
    """The reference's adapters start non-zero (the adapted net is NOT the pre-trained function);
    ``lora.init=zero_up`` starts exactly at it."""
    from pretrainlab.face.api import load, load_model
    from pretrainlab.face.petalface import FaceTask, load_pretrained_backbone

    base, cfg, _, _ = load_model(pretrained_ckpt)
    x = torch.rand(4, 3, cfg.model.image_size, cfg.model.image_size) * 2 - 1
    ref = base.embed(x)
    for recipe in ("petalface", "lora", "full_finetune"):
        for init in ("reference", "zero_up"):
            t = FaceTask(load(recipe, "smoke", [f"init={pretrained_ckpt}", f"lora.init={init}"]), 3)
            load_pretrained_backbone(t, str(pretrained_ckpt))
            t.eval()
            same = torch.allclose(t.embed(x), ref, atol=1e-5)
            assert same == (recipe == "full_finetune" or init == "zero_up"), (recipe, init)


def test_cmc_ranks() -> None:
    from pretrainlab.face.evaluation import cmc

    sim = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8], [0.3, 0.1, 0.2]])
    gl = torch.tensor([1, 2, -100])
    pl = torch.tensor([1, 2, 2])
    assert cmc(sim, pl, gl, [1, 2, 3]) == pytest.approx({"rank-1": 1 / 3, "rank-2": 2 / 3, "rank-3": 1.0})


def test_ijb_template_pooling_and_tar() -> None:
    """eval_ijbc.py: media mean, template sum, L2; TAR at the ROC point nearest the FAR."""
    import numpy as np

    from pretrainlab.face.evaluation import ijb_scores_to_tar, template_features

    f = np.array([[1.0, 0], [0, 1], [1, 1], [3, 0]])
    tf, uniq = template_features(f, np.array([7, 7, 7, 9]), np.array([1, 1, 2, 5]))
    want = np.array([0.5, 0.5]) + np.array([1, 1])
    assert np.allclose(tf[0], want / np.linalg.norm(want)) and np.allclose(tf[1], [1, 0]) and list(uniq) == [7, 9]
    from pretrainlab.face.evaluation import ijb_tar_at_far

    score = np.array([0.9, 0.8, 0.3, 0.85, 0.2, 0.1, 0.05])
    label = np.array([1, 1, 1, 0, 0, 0, 0])
    res = ijb_tar_at_far(score, label, [1e-4, 0.25])
    assert res == pytest.approx({"ijbc_TAR@FAR=1e-04": 100 / 3, "ijbc_TAR@FAR=0.25": 100.0})
    pooled = ijb_scores_to_tar(np.eye(3)[[0, 0, 1, 2]], np.array([1, 1, 2, 3]), np.arange(4), np.array([1, 1]),
                               np.array([1, 2]), np.array([1, 0]), [0.5], "IJBB")
    assert pooled == {"ijbb_TAR@FAR=5e-01": 100.0}


def test_swin_windows_and_config_checks() -> None:
    from pretrainlab.face.swin_face import SwinFace, window_partition, window_reverse

    x = torch.randn(2, 6, 6, 4)
    w = window_partition(x, 3)
    assert w.shape == (8, 9, 4) and torch.equal(window_reverse(w, 3, 6, 6), x)
    assert torch.equal(w[:4], window_partition(x[:1], 3))  # batch is the outer index
    assert SwinFace(SMALL).eval()(torch.randn(3, 3, 24, 24)).shape == (3, 32)
    for bad, key in (({"image_size": 25}, "model.image_size"), ({"num_heads": [3, 2]}, "model.num_heads"),
                     ({"depths": [0, 1]}, "model.depths"), ({"drop_path": 1.5}, "model.drop_path")):
        with pytest.raises(ConfigError, match=key):
            FaceConfig(model=SwinConfig(**{**SMALL.__dict__, **bad}))  # type: ignore[arg-type]


def test_iqa_scorers_need_local_weights_and_cnniqa_port(tmp_path: Path) -> None:
    from pretrainlab.face.quality import CNNIQA

    with pytest.raises(ConfigError, match="quality.weights"):
        QualityScorer(QualityConfig(scorer="cnniqa"))
    with pytest.raises(ConfigError, match="quality.scorer"):
        FaceConfig(quality=QualityConfig(scorer="magic"))
    torch.manual_seed(0)
    net = CNNIQA()
    torch.save({"params": net.state_dict()}, tmp_path / "cnniqa.pth")  # pyiqa's checkpoint layout
    sc = QualityScorer(QualityConfig(scorer="cnniqa", weights=str(tmp_path / "cnniqa.pth"), threshold=0.2))
    x = torch.rand(2, 3, 40, 40) * 2 - 1  # the NORMALISED tensor, as the reference feeds pyiqa
    h = F.conv2d(x, net.conv1.weight, net.conv1.bias)
    h = torch.cat([h.flatten(2).max(-1).values, h.flatten(2).min(-1).values], 1)
    q = net.fc3(F.relu(net.fc2(F.relu(net.fc1(h))))).view(-1)
    assert torch.allclose(sc.score(x), q, atol=1e-5) and torch.allclose(sc(x), 0.5 + q - 0.2, atol=1e-5)


def test_losses_and_scores_stay_float32_under_bf16_autocast() -> None:
    from pretrainlab.face.petalface import FaceTask

    task = FaceTask(_cfg("petalface"), 4)
    batch = {"image": torch.rand(4, 3, 24, 24) * 2 - 1, "label": torch.tensor([0, 1, 2, 3])}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = task(batch)
        assert task.margin.cosine(torch.randn(2, 32)).dtype == torch.float32
        assert sharpness_score(torch.rand(2, 3, 24, 24)).dtype == torch.float32
    assert out["loss"].dtype == torch.float32 and torch.isfinite(out["loss"])
