"""Formula-level tests of the paper's equations, text augmentation, loss-goes-down, recipes."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from pretrainlab.clip import text_augmentation as ta
from pretrainlab.clip.barlip import barlip_loss
from pretrainlab.clip.byolip import byolip_loss
from pretrainlab.clip.rocket import rocket_loss
from pretrainlab.clip.swalip import swalip_loss


def _reference_cl2l(zi, zt, hi, ht, scale, h_scale, ls):
    """Direct port of the reference ``CL2LLoss`` arithmetic (single process)."""
    labels = torch.arange(zi.shape[0])
    zi, zt = F.normalize(zi), F.normalize(zt)
    hi, ht = [F.normalize(h) for h in hi], [F.normalize(h) for h in ht]
    lig = F.cross_entropy(scale * zi @ zt.t(), labels)
    ltg = F.cross_entropy(scale * zt @ zi.t(), labels)
    il, tl = [], []
    for i in range(len(hi)):
        il += [h_scale * h @ ht[i].t() for h in hi]
        tl += [h_scale * h @ hi[i].t() for h in ht]
    lil = sum(F.cross_entropy(x, labels, label_smoothing=ls) for x in il) / len(il)
    ltl = sum(F.cross_entropy(x, labels, label_smoothing=ls) for x in tl) / len(tl)
    a = len(hi)
    return ((lig + a * lil) / (1 + a) + (ltg + a * ltl) / (1 + a)) / 2


def test_rocket_loss_matches_reference_cl2l() -> None:
    g = torch.Generator().manual_seed(0)
    zi, zt = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    hi = [torch.randn(8, 16, generator=g) for _ in range(2)]
    ht = [torch.randn(8, 16, generator=g) for _ in range(2)]
    ours = rocket_loss(zi, zt, hi, ht, 14.3, 10.0, 0.1)
    ref = _reference_cl2l(zi, zt, hi, ht, 14.3, 10.0, 0.1)
    assert torch.allclose(ours["loss"], ref, atol=1e-5)
    only_global = rocket_loss(zi, zt, [], [], 14.3, 10.0)
    assert torch.allclose(only_global["loss"], only_global["loss_global"])


def test_barlip_is_mean_of_cross_modal_barlow_twins() -> None:
    g = torch.Generator().manual_seed(1)
    v = [torch.randn(32, 6, generator=g) for _ in range(6)]

    def bt(a, b, lambd=5e-3, scale=0.025):  # reference BarLIPLoss.barlip_loss on standardised inputs
        a = (a - a.mean(0)) / torch.sqrt(a.var(0, unbiased=False) + 1e-5)
        b = (b - b.mean(0)) / torch.sqrt(b.var(0, unbiased=False) + 1e-5)
        c = a.t() @ b / a.shape[0]
        d = torch.eye(c.shape[0])
        cdif = (c - d).pow(2)
        cdif[~d.bool()] *= lambd
        return scale * cdif.sum()

    ref = (bt(v[0], v[1]) + sum(bt(i, t) for i in v[2:4] for t in v[4:6])) / 5
    assert torch.allclose(barlip_loss(v[0], v[1], v[2:4], v[4:6]), ref, atol=1e-5)


def test_byolip_zero_when_predictions_hit_targets() -> None:
    t = torch.randn(4, 8)
    zero = byolip_loss(t, t, t, t, [t], [t], [t], [t])
    assert torch.allclose(zero, torch.zeros(()), atol=1e-6)
    far = byolip_loss(t, t, -t, -t, [], [], [], [])
    assert torch.allclose(far, torch.full((), 4.0), atol=1e-5)


def test_swalip_targets_are_swapped_sinkhorn_codes() -> None:
    g = torch.Generator().manual_seed(2)
    hi = [torch.randn(6, 5, generator=g) for _ in range(2)]
    ht = [torch.randn(6, 5, generator=g) for _ in range(2)]
    from pretrainlab.core.losses import sinkhorn_knopp

    n = lambda x: F.normalize(x, dim=-1)
    s_i = [[n(hi[a]) @ n(ht[b]).t() for b in range(2)] for a in range(2)]
    s_t = [[n(ht[a]) @ n(hi[b]).t() for b in range(2)] for a in range(2)]
    ref = 0
    for a in range(2):
        for b in range(2):
            qi, qt = sinkhorn_knopp(s_i[1 - a][1 - b], 0.05, 3), sinkhorn_knopp(s_t[1 - a][1 - b], 0.05, 3)
            ref += (-(qi * F.log_softmax(s_i[a][b] * 10, 1)).sum(1).mean()
                    - (qt * F.log_softmax(s_t[a][b] * 10, 1)).sum(1).mean()) / 2
    assert torch.allclose(swalip_loss(hi, ht, 10.0), ref / 4, atol=1e-5)
    with pytest.raises(ValueError):
        swalip_loss(hi[:1], ht[:1], 10.0)


def test_text_augmentation_ops() -> None:
    rng = random.Random(0)
    words = ["a", "photo", "of", "two", "big", "red", "circles", "on", "the", "left"]
    assert ta.remove_stopwords(words) == ["photo", "two", "big", "red", "circles", "left"]
    assert ta.clean("  A Photo, of the RED circle! ") == "a photo of the red circle"
    sw = ta.random_swap(words, 3, rng)
    assert sorted(sw) == sorted(words)
    rd = ta.random_deletion(words, 0.5, rng)
    assert set(rd) <= set(words) and rd
    sr = ta.synonym_replacement(["big", "red", "xyz"], 2, random.Random(1))
    assert sr[-1] == "xyz" and (sr[0] in ta.synonyms()["big"] or sr[1] in ta.synonyms()["red"])
    assert ta.global_caption("A photo of the cat", rng, stopword_p=1.0) == "photo cat"
    assert ta.global_caption("A photo of the cat", rng, stopword_p=0.0) == "a photo of the cat"
    # one EDA op with weights 0.4 / 0.4 / 0.2: frequencies follow the weights
    counts = {"sr": 0, "rs": 0, "rd": 0}
    r = random.Random(3)
    for _ in range(3000):
        counts[r.choices(("sr", "rs", "rd"), weights=(0.4, 0.4, 0.2))[0]] += 1
    assert abs(counts["rd"] / 3000 - 0.2) < 0.03
    assert ta.augmented_caption("the big red circle", random.Random(0))


def test_every_recipe_loads_for_every_profile() -> None:
    from pretrainlab.clip.pipeline import RECIPES, ROWS, load
    from pretrainlab.core.config import PROFILES, recipe_description

    assert sorted(p.stem for p in RECIPES.glob("*.yaml")) == sorted(ROWS)
    for row in ROWS:
        for prof in PROFILES:
            cfg = load(row, prof)
            assert cfg.method.objective == row
        assert recipe_description(RECIPES / f"{row}.yaml")
    assert load("swalip", "tiny").method.label_smoothing == 0.0
    assert load("rocket", "full").model.mlp_hidden == 4096


def test_rocket_loss_goes_down(smoke_data) -> None:
    from torch.utils.data import default_collate

    from pretrainlab.clip.pipeline import build_dataset, load
    from pretrainlab.clip.task import CLIPRocketTask

    torch.manual_seed(0)
    cfg = load("rocket", "smoke")
    task = CLIPRocketTask(cfg)
    ds = build_dataset(cfg, smoke_data, task, progress=False)
    batch = default_collate([ds[i] for i in range(32)])
    opt = torch.optim.AdamW([p for p in task.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(25):
        out = task(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


@pytest.mark.parametrize("row", ["clip", "slip", "barlip", "byolip", "swalip", "rocket"])
def test_one_step_trainer_smoke_per_recipe(row: str, smoke_data, tmp_path) -> None:
    from pretrainlab.clip.pipeline import load, pretrain

    cfg = load(row, "smoke", ["train.max_steps=1", "train.progress=false", "train.tensorboard=false"])
    task, res = pretrain(cfg, smoke_data, tmp_path / row)
    assert res.step == 1 and res.checkpoint is not None
    assert torch.isfinite(torch.tensor(res.history[-1]["loss"]))
    if row == "byolip":  # the momentum target moved towards the online network
        assert not torch.equal(task.target["clip"].logit_scale, torch.zeros(()))


def test_exported_weights_load_into_plain_open_clip(smoke_run) -> None:
    import open_clip
    from safetensors.torch import load_file

    from pretrainlab.clip.models import register_domain_configs

    register_domain_configs()
    model = open_clip.create_model("clip-nano", pretrained=None)
    model.load_state_dict(load_file(str(smoke_run / "open_clip_model.safetensors")))
