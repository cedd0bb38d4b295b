"""The reference recipe, proven against compact ports of facebookresearch/clip-rocket (losses.py,
models.py, main.py, tokenizer.py) and textaugment's EDA written out in this file; loss-goes-down,
recipes, one trainer step per recipe."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from pretrainlab.clip import text_augmentation as ta
from pretrainlab.clip.barlip import barlip_loss
from pretrainlab.clip.byolip import byolip_loss
from pretrainlab.clip.rocket import rocket_loss
from pretrainlab.clip.swalip import swalip_loss


# ------------------------------------------------------------------ ports of the reference (single process)
def ref_cl2l(zi, zt, hi, ht, scale, h_scale, ls, avg_or_sum="avg"):
    """ref losses.CL2LLoss.forward (world size 1: all_gather_batch is the identity)."""
    labels = torch.arange(zi.shape[0])
    zi, zt = F.normalize(zi), F.normalize(zt)
    hi, ht = [F.normalize(h) for h in hi], [F.normalize(h) for h in ht]
    lig = F.cross_entropy(scale * zi @ zt.t(), labels)
    ltg = F.cross_entropy(scale * zt @ zi.t(), labels)
    lil = ltl = 0
    if hi:
        il, tl = [], []
        for i in range(len(hi)):
            il += [h_scale * h @ ht[i].t() for h in hi]
            tl += [h_scale * h @ hi[i].t() for h in ht]
        lil = sum(F.cross_entropy(x, labels, label_smoothing=ls) for x in il) / len(il)
        ltl = sum(F.cross_entropy(x, labels, label_smoothing=ls) for x in tl) / len(tl)
    a = len(hi)
    loss = ((lig + a * lil) / (1 + a) + (ltg + a * ltl) / (1 + a)) / 2
    return loss * (2 if avg_or_sum == "sum" else 1)


def ref_barlip(z1, z2, lamb=5e-3, scale=0.025):
    """ref losses.BarLIPLoss.barlip_loss (world size 1)."""
    n, d = z1.size()
    corr = torch.einsum("bi, bj -> ij", z1, z2) / n
    diag = torch.eye(d)
    cdif = (corr - diag).pow(2)
    cdif[~diag.bool()] *= lamb
    return scale * cdif.sum()


def ref_sinkhorn(q, eps=0.05, iters=3):
    """ref losses.SwALIPLoss.sinkhorn_knopp (world size 1)."""
    q = torch.exp(q / eps).t()
    b, k = q.shape[1], q.shape[0]
    q /= q.sum()
    for _ in range(iters):
        q /= q.sum(dim=1, keepdim=True)
        q /= k
        q /= q.sum(dim=0, keepdim=True)
        q /= b
    q *= b
    return q.t()


def test_rocket_loss_matches_reference_cl2l() -> None:
    g = torch.Generator().manual_seed(0)
    zi, zt = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    hi = [torch.randn(8, 16, generator=g) for _ in range(2)]
    ht = [torch.randn(8, 16, generator=g) for _ in range(2)]
    for mode in ("avg", "sum"):
        got = rocket_loss(zi, zt, hi, ht, 14.3, 10.0, 0.1, mode)["loss"]
        assert torch.allclose(got, ref_cl2l(zi, zt, hi, ht, 14.3, 10.0, 0.1, mode), atol=1e-5)
    clip_only = rocket_loss(zi, zt, [], [], 14.3)["loss"]
    assert torch.allclose(clip_only, ref_cl2l(zi, zt, [], [], 14.3, 0, 0), atol=1e-5)  # ref losses.CLIPLoss


def test_barlip_matches_reference_without_standardising() -> None:
    g = torch.Generator().manual_seed(1)
    v = [torch.randn(16, 12, generator=g) * 3 + 1 for _ in range(6)]  # not standardised: the ref does not either
    ref = (ref_barlip(v[0], v[1]) + sum(ref_barlip(i, t) for i in v[2:4] for t in v[4:6])) / 5
    assert torch.allclose(barlip_loss(v[0], v[1], v[2:4], v[4:6]), ref, atol=1e-5)


def test_siamlip_loss_matches_reference() -> None:
    g = torch.Generator().manual_seed(2)
    p = [torch.randn(6, 8, generator=g) for _ in range(6)]
    v = [torch.randn(6, 8, generator=g) for _ in range(6)]

    def ncos(a, b):
        return 2 - 2 * (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(dim=1).mean()

    ref = ncos(p[0], v[1]) + ncos(p[1], v[0])
    ref = ref + sum(ncos(a, b) for a in p[2:4] for b in v[4:6]) + sum(ncos(a, b) for a in p[4:6] for b in v[2:4])
    got = byolip_loss(p[0], p[1], v[0], v[1], p[2:4], p[4:6], v[2:4], v[4:6])
    assert torch.allclose(got, ref / 10, atol=1e-5)


def test_swalip_matches_reference_sinkhorn_and_swap() -> None:
    g = torch.Generator().manual_seed(3)
    hi = [torch.randn(6, 5, generator=g) for _ in range(2)]
    ht = [torch.randn(6, 5, generator=g) for _ in range(2)]
    n = [F.normalize(h) for h in hi], [F.normalize(h) for h in ht]
    li = [[h @ a.t() for a in n[1]] for h in n[0]]
    lt = [[h @ a.t() for a in n[0]] for h in n[1]]
    ti = [[ref_sinkhorn(t.clone()) for t in i] for i in li]
    tt = [[ref_sinkhorn(i.clone()) for i in t] for t in lt]
    ce = lambda lg, tg: -torch.mean(torch.sum(tg * torch.log_softmax(lg, dim=1), dim=1))
    ref = sum((ce(li[a][b] * 10, ti[1 - a][1 - b]) + ce(lt[a][b] * 10, tt[1 - a][1 - b])) / 2
              for a in range(2) for b in range(2)) / 4
    assert torch.allclose(swalip_loss(hi, ht, 10.0), ref, atol=1e-5)
    with pytest.raises(ValueError):
        swalip_loss(hi[:1], ht[:1], 10.0)


@pytest.mark.ddp
def test_all_gather_as_the_reference_does_it(tmp_path) -> None:
    """2 gloo processes under torchrun: rocket_loss gathers the other rank's rows without gradient (ref
    utils.all_gather_batch); BarLIP averages the correlation over ranks."""
    import json
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    worker = Path(__file__).with_name("_gather_worker.py")
    p = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", str(worker), str(tmp_path)], check=False,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    for r in (0, 1):
        res = json.loads((tmp_path / f"rank{r}.json").read_text())
        assert abs(res["loss"] - res["ref"]) < 1e-5 and res["grad_diff"] < 1e-6
        assert abs(res["bt"] - res["bt_ref"]) < 1e-6


# ------------------------------------------------------------------ text augmentation (ref tokenizer.py + textaugment EDA)
def test_stopwords_and_eda_ops_follow_the_reference() -> None:
    rng = random.Random(0)
    assert ta.remove_stopwords("A photo of the red circle, on the left!") == "photo red circle , left !"
    assert ta.remove_stopwords("the of a") == "the of a"  # would be empty: kept
    words = ["one", "two", "three", "four", "five", "six"]
    for _ in range(50):  # EDA random_swap n=1: exactly two positions swapped (or none after 3 failed draws)
        out = ta.random_swap(" ".join(words), 1, rng).split()
        assert sorted(out) == sorted(words) and sum(a != b for a, b in zip(out, words)) in (0, 2)
    assert ta.random_swap("single", 1, rng) == "single"
    assert ta.random_deletion("single", 0.9, rng) == "single"
    kept = [len(ta.random_deletion(" ".join(["w"] * 100), 0.1, rng).split()) for _ in range(30)]
    assert 85 <= sum(kept) / 30 <= 95  # p = 0.1 per word
    assert ta.random_deletion("a b", 1.0, rng) in ("a", "b")  # all deleted: one random word kept
    sr = ta.synonym_replacement("big red big circle", 1, random.Random(1)).split()
    syn = ta.synonyms()
    changed = {w for w, o in zip(sr, ["big", "red", "big", "circle"]) if w != o}
    assert len({o for w, o in zip(sr, ["big", "red", "big", "circle"]) if w != o}) == 1  # ONE distinct word
    if sr[0] != "big":  # every occurrence of the replaced word
        assert sr[0] == sr[2] and sr[0] in syn["big"]
    assert changed


def test_augmented_caption_draws_one_op_with_the_reference_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"sr": 0, "rs": 0, "rd": 0, "stop": 0}
    monkeypatch.setattr(ta, "synonym_replacement", lambda t, n, r: calls.__setitem__("sr", calls["sr"] + 1) or t)
    monkeypatch.setattr(ta, "random_swap", lambda t, n, r: calls.__setitem__("rs", calls["rs"] + 1) or t)
    monkeypatch.setattr(ta, "random_deletion", lambda t, p, r: calls.__setitem__("rd", calls["rd"] + 1) or t)
    real = ta.remove_stopwords
    monkeypatch.setattr(ta, "remove_stopwords", lambda t: calls.__setitem__("stop", calls["stop"] + 1) or real(t))
    rng = random.Random(3)
    for _ in range(4000):
        ta.augmented_caption("a photo of the red circle", rng, 0.8)
    assert abs(calls["sr"] / 4000 - 0.4) < 0.03 and abs(calls["rs"] / 4000 - 0.4) < 0.03
    assert abs(calls["rd"] / 4000 - 0.2) < 0.03
    assert abs(calls["stop"] / 4000 - 0.8) < 0.03  # ref strong_augment: stop words removed with p 0.8, not always
    calls["stop"] = 0
    for _ in range(2000):
        ta.global_caption("a photo of the red circle", rng, 0.8)
    assert abs(calls["stop"] / 2000 - 0.8) < 0.04


def test_clean_before_augment_is_open_clips_clean() -> None:
    assert ta.clean("  A &amp; B\tPhoto  ") == "a & b photo"
    assert ta.global_caption("The Cat", random.Random(0), 0.0, clean_first=True) == "the cat"


# ------------------------------------------------------------------ model pieces (ref models.py)
def _nano(obj: str = "rocket", *over: str):
    from pretrainlab.clip.api import load
    from pretrainlab.clip.task import CLIPRocketTask

    torch.manual_seed(0)
    return CLIPRocketTask(load(obj, "smoke", list(over)))


def test_features_are_open_clips_outputs_before_the_projection() -> None:
    from pretrainlab.clip.projectors import image_features, text_features

    task = _nano()
    m = task.clip.eval()
    x = torch.randn(3, 3, 32, 32)
    tok = task.tokenizer(["a red circle", "two blue stars", "x"])
    fi, zi = image_features(m, x)
    ft, zt = text_features(m, tok)
    assert torch.allclose(zi, m.encode_image(x), atol=1e-5) and torch.allclose(fi @ m.visual.proj, zi, atol=1e-5)
    assert torch.allclose(zt, m.encode_text(tok), atol=1e-5) and torch.allclose(ft @ m.text_projection, zt, atol=1e-5)
    assert m.visual.proj is not None and m.text_projection is not None  # never edited


def test_clip_step_is_open_clip_trains_forward_and_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    """Objective clip computes what open_clip_train computes (``model(images, texts)`` + ``ClipLoss``):
    the same loss and gradients, through the plain encoders (no intermediate-feature read-out)."""
    import copy

    import open_clip

    task = _nano("clip").train()
    peer = copy.deepcopy(task.clip)
    peer.output_dict = True  # as open_clip_train.main creates it
    g = torch.Generator().manual_seed(3)
    batch = {"image": torch.randint(0, 256, (6, 1, 3, 32, 32), dtype=torch.uint8, generator=g),
             "text": torch.randint(1, 400, (6, 1, task.context_length), generator=g)}

    def no_read_out(*a, **k):
        raise AssertionError("the clip objective must not read intermediate features")

    monkeypatch.setattr(type(task.clip.visual), "forward_intermediates", no_read_out)
    monkeypatch.setattr(type(task.clip), "forward_intermediates", no_read_out)
    out = task(batch)
    out["loss"].backward()
    monkeypatch.undo()
    images = task.normalize(batch["image"][:, 0].float() / 255)  # what open_clip's preprocess hands the model
    p = peer(images, batch["text"][:, 0])
    ref = open_clip.ClipLoss()(p["image_features"], p["text_features"], p["logit_scale"])
    ref.backward()
    assert torch.allclose(out["loss"], ref, rtol=0, atol=1e-6)
    ours = dict(task.clip.named_parameters())
    for name, q in peer.named_parameters():
        assert torch.allclose(ours[name].grad, q.grad, rtol=1e-5, atol=1e-7), name


def test_reference_r50_tower_reads_trunk_features() -> None:
    import open_clip

    from pretrainlab.clip.models import register_domain_configs
    from pretrainlab.clip.projectors import image_features

    register_domain_configs()
    m = open_clip.create_model("RN50-rocket-t6").eval()
    x = torch.randn(1, 3, 64, 64)
    f, z = image_features(m, x)
    assert f.shape == (1, 2048) and z.shape == (1, 256)  # ref CL2L_R50: vision_width 2048, embed_dim 256
    assert torch.allclose(z, m.encode_image(x), atol=1e-5)
    assert len(m.transformer.resblocks) == 6 and m.transformer.width == 512  # --transformer-layers 6, width 512


def test_text_dropout_only_on_augmented_captions_as_the_reference_blocks() -> None:
    task = _nano("rocket", "model.text_dropout=0.5")
    m = task.clip.train()
    tok = task.tokenizer(["a red circle", "blue star", "red circle", "star blue"])  # 2 global + 2 augmented rows
    torch.manual_seed(1)
    from pretrainlab.clip.projectors import text_features

    with task.text_dropout.active(keep=2):
        ours, _ = text_features(m, tok)
    plain, _ = text_features(m, tok)
    assert torch.allclose(ours[:2], plain[:2], atol=1e-6) and not torch.allclose(ours[2:], plain[2:])
    # ref ResidualAttentionBlock(mode='local'): dropout on the residual stream entering every block
    torch.manual_seed(1)
    x = m.token_embedding(tok) + m.positional_embedding
    for blk in m.transformer.resblocks:
        x = torch.cat([x[:2], F.dropout(x[2:], 0.5, True)])
        x = blk(x, attn_mask=m.attn_mask)
    x = m.ln_final(x)
    ref = x[torch.arange(4), tok.argmax(dim=-1)]
    assert torch.allclose(ours, ref, atol=1e-5)
    m.eval()
    with task.text_dropout.active(keep=2):
        assert torch.allclose(text_features(m, tok)[0], text_features(m, tok)[0])


def test_projector_architectures_follow_the_reference() -> None:
    task = _nano("byolip", "method.byolip_hidden=48", "method.byolip_dim=16")
    pi, qi = task.byol_proj_image, task.byol_pred_image
    kinds = [type(x).__name__ for x in pi]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"]  # ref SIAMLIP projector + last BN
    assert pi[0].bias is None and pi[3].bias is None and not pi[4].affine and pi[3].out_features == 16
    assert [type(x).__name__ for x in qi] == ["Linear", "BatchNorm1d", "ReLU", "Linear"] and qi[0].bias is None
    assert qi[3].bias is not None
    bt = _nano("barlip", "method.barlip_hidden=40", "method.barlip_dim=24").bt_image
    assert [type(x).__name__ for x in bt] == ["Linear", "BatchNorm1d", "ReLU"] * 2 + ["Linear", "BatchNorm1d"]
    assert bt[0].out_features == 40 and bt[6].out_features == 24 and bt[7].affine
    from pretrainlab.clip.api import load

    full = load("barlip", "full")
    assert (full.method.barlip_hidden, full.method.barlip_dim, full.method.byolip_hidden, full.method.byolip_dim) == \
        (3000, 8192, 2048, 128)


def test_logit_scales_are_clamped_after_each_step_and_momentum_is_constant() -> None:
    task = _nano("byolip")
    with torch.no_grad():
        task.clip.logit_scale.fill_(7.0)
        task.mlp_logit_scale.fill_(-1.0)
        for p in task.target.parameters():
            p.zero_()
    online = [p.detach().clone() for p in task._online().parameters()]
    task.on_step_end(1, 100)
    assert math.isclose(float(task.clip.logit_scale.detach()), math.log(100), rel_tol=1e-6)
    assert float(task.mlp_logit_scale.detach()) == 0.0
    for t, o in zip(task.target.parameters(), online):  # ref: p_mom = 0.99 p_mom + 0.01 p, at any step
        assert torch.allclose(t, 0.01 * o, atol=1e-7)
    task.on_step_end(99, 100)
    assert not torch.allclose(next(iter(task.target.parameters())), 0.01 * online[0])


def test_batchnorm_towers_see_each_view_in_its_own_forward() -> None:
    assert _nano("rocket", "model.name=test-rn-tiny").per_view
    assert not _nano("rocket").per_view


# ------------------------------------------------------------------ recipes and training
def test_every_recipe_loads_for_every_profile() -> None:
    from pretrainlab.clip.api import ROWS, SPEC, load
    from pretrainlab.core.config import PROFILES, recipe_description

    RECIPES = SPEC.recipes
    assert sorted(p.stem for p in RECIPES.glob("*.yaml")) == sorted(ROWS)
    for row in ROWS:
        for prof in PROFILES:
            cfg = load(row, prof)
            assert cfg.method.objective == row
        assert recipe_description(RECIPES / f"{row}.yaml")
    full = load("rocket", "full")
    assert full.model.name == "RN50-rocket-t6" and full.model.text_dropout == 0.2 and full.train.weight_decay == 0.5
    assert full.data.preload is False and full.method.label_smoothing == 0.1 and full.text_aug.stopword_p == 0.8
    assert load("swalip", "tiny").method.label_smoothing == 0.0 and load("clip", "full").text_aug.enabled is False


def test_rocket_loss_goes_down(smoke_data) -> None:
    from torch.utils.data import default_collate

    from pretrainlab.clip.api import build_dataset, load
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
    from pretrainlab.clip.api import load, pretrain

    cfg = load(row, "smoke", ["train.max_steps=1", "train.progress=false", "train.tensorboard=false"])
    _, res = pretrain(cfg, smoke_data, tmp_path / row)
    assert res.step == 1 and res.checkpoint is not None
    assert torch.isfinite(torch.tensor(res.history[-1]["loss"]))
    assert (tmp_path / row / "provenance.json").exists()


def test_exported_weights_load_into_plain_open_clip(smoke_run) -> None:
    import open_clip
    from safetensors.torch import load_file

    from pretrainlab.clip.models import register_domain_configs

    register_domain_configs()
    model = open_clip.create_model("clip-nano", pretrained=None)
    model.load_state_dict(load_file(str(smoke_run / "open_clip_model.safetensors")))

