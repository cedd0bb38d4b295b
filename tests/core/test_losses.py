"""Formula-level tests of pretrainlab.core.losses against naive loops / closed forms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pretrainlab.core import losses as L
from pretrainlab.core.losses import clip as clip_mod
from pretrainlab.core.losses import infonce as infonce_mod


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ---------------------------------------------------------------- InfoNCE / NT-Xent
def test_info_nce_matches_loop() -> None:
    q, k = torch.randn(5, 7), torch.randn(9, 7)
    pos = torch.tensor([0, 3, 8, 2, 2])
    t = 0.2
    ref = 0.0
    for i in range(5):
        sims = torch.stack([F.cosine_similarity(q[i], k[j], dim=0) for j in range(9)]) / t
        ref += -(sims[pos[i]] - torch.logsumexp(sims, 0))
    assert torch.allclose(L.info_nce(q, k, pos, temperature=t), ref / 5, atol=1e-5)
    # without normalisation: raw dot products
    logits = q @ k.t() / t
    assert torch.allclose(L.info_nce(q, k, pos, temperature=t, normalize=False), F.cross_entropy(logits, pos), atol=1e-5)


def _nt_xent_loop(z1: torch.Tensor, z2: torch.Tensor, t: float) -> torch.Tensor:
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z.shape[0]
    b = n // 2
    total = torch.zeros(())
    for i in range(n):
        j = (i + b) % n
        num = torch.exp(z[i] @ z[j] / t)
        den = sum(torch.exp(z[i] @ z[kk] / t) for kk in range(n) if kk != i)
        total = total - torch.log(num / den)
    return total / n


def test_nt_xent_matches_per_pair_loop() -> None:
    z1, z2 = torch.randn(6, 5), torch.randn(6, 5)
    for t in (0.1, 0.5):
        assert torch.allclose(L.nt_xent(z1, z2, temperature=t), _nt_xent_loop(z1, z2, t), atol=1e-4)


def test_nt_xent_symmetric_and_bf16_safe() -> None:
    z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
    assert torch.allclose(L.nt_xent(z1, z2), L.nt_xent(z2, z1), atol=1e-5)
    out = L.nt_xent(z1.bfloat16(), z2.bfloat16())
    assert out.dtype == torch.float32 and torch.isfinite(out)


def _fake_world(monkeypatch: pytest.MonkeyPatch, module: object, r: int, fulls: list[torch.Tensor], b: int) -> None:
    """Pretend to be rank ``r`` of a world whose gathered tensors are ``fulls`` (in call order)."""
    calls = {"n": 0}

    def gather(x: torch.Tensor) -> torch.Tensor:
        full = fulls[calls["n"]].clone()
        calls["n"] += 1
        return torch.cat([full[: r * b], x, full[(r + 1) * b:]])

    monkeypatch.setattr(module, "is_distributed", lambda: True)
    monkeypatch.setattr(module, "rank", lambda: r)
    monkeypatch.setattr(module, "all_gather_with_grad", gather)


def test_nt_xent_gathered_mean_equals_global(monkeypatch: pytest.MonkeyPatch) -> None:
    w, b = 3, 4
    z1, z2 = torch.randn(w * b, 6), torch.randn(w * b, 6)
    glob = L.nt_xent(z1, z2, gather=False)
    n1, n2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    per_rank = []
    for r in range(w):
        with monkeypatch.context() as m:
            _fake_world(m, infonce_mod, r, [n1, n2], b)
            per_rank.append(L.nt_xent(z1[r * b:(r + 1) * b], z2[r * b:(r + 1) * b]))
    assert torch.allclose(torch.stack(per_rank).mean(), glob, atol=1e-5)


# ---------------------------------------------------------------- CLIP
def test_clip_loss_matches_cross_entropy_with_smoothing() -> None:
    img, txt = torch.randn(6, 8), torch.randn(6, 8)
    scale = torch.tensor(1 / 0.07)
    logits = scale * F.normalize(img, dim=1) @ F.normalize(txt, dim=1).t()
    labels = torch.arange(6)
    for ls in (0.0, 0.1):
        ref = (F.cross_entropy(logits, labels, label_smoothing=ls) + F.cross_entropy(logits.t(), labels, label_smoothing=ls)) / 2
        assert torch.allclose(L.clip_loss(img, txt, scale, label_smoothing=ls), ref, atol=1e-5)
    # float scale, explicit smoothing formula for one row
    eps, c = 0.1, 6
    logp = F.log_softmax(logits, dim=1)
    manual = -((1 - eps) * logp.diagonal() + eps / c * logp.sum(1)).mean()
    assert torch.allclose(F.cross_entropy(logits, labels, label_smoothing=eps), manual, atol=1e-5)
    assert torch.allclose(L.clip_loss(img, txt, float(scale)), L.clip_loss(img, txt, scale), atol=1e-6)


def test_clip_loss_gathered_mean_equals_global(monkeypatch: pytest.MonkeyPatch) -> None:
    w, b = 2, 5
    img, txt = torch.randn(w * b, 4), torch.randn(w * b, 4)
    glob = L.clip_loss(img, txt, 10.0, gather=False)
    ni, nt = F.normalize(img, dim=1), F.normalize(txt, dim=1)
    per_rank = []
    for r in range(w):
        with monkeypatch.context() as m:
            _fake_world(m, clip_mod, r, [ni, nt], b)
            per_rank.append(L.clip_loss(img[r * b:(r + 1) * b], txt[r * b:(r + 1) * b], 10.0))
    assert torch.allclose(torch.stack(per_rank).mean(), glob, atol=1e-5)


def test_clip_loss_scale_gets_gradient() -> None:
    s = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    L.clip_loss(torch.randn(4, 3), torch.randn(4, 3), s.exp()).backward()
    assert s.grad is not None and torch.isfinite(s.grad)


# ---------------------------------------------------------------- BYOL
def test_byol_closed_form_and_stop_gradient() -> None:
    p = torch.randn(5, 4, requires_grad=True)
    z = torch.randn(5, 4, requires_grad=True)
    ref = ((F.normalize(p, dim=1) - F.normalize(z, dim=1)) ** 2).sum(1).mean()
    out = L.byol_loss(p, z)
    assert torch.allclose(out, ref, atol=1e-5)
    out.backward()
    assert p.grad is not None and z.grad is None
    assert torch.allclose(L.byol_loss(z.detach(), z.detach() * 3), torch.zeros(()), atol=1e-6)
    assert torch.allclose(L.byol_loss(z.detach(), -z.detach()), torch.full((), 4.0), atol=1e-5)


# ---------------------------------------------------------------- Barlow Twins
def test_barlow_identical_inputs_on_diagonal_zero() -> None:
    z = torch.randn(64, 8)
    lam = 5.1e-3
    out = L.barlow_twins_loss(z, z, lambd=lam)
    zn = (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5)
    c = zn.t() @ zn / 64
    assert torch.allclose(torch.diagonal(c), torch.ones(8), atol=1e-3)  # on-diagonal ~ 0 loss
    off = (c ** 2).sum() - (torch.diagonal(c) ** 2).sum()
    assert torch.allclose(out, lam * off, atol=1e-3)


def test_barlow_matches_loop() -> None:
    z1, z2 = torch.randn(16, 5), torch.randn(16, 5)
    bn = torch.nn.BatchNorm1d(5, affine=False)
    c = bn(z1).t() @ bn(z2) / 16
    ref = 0.0
    for i in range(5):
        for j in range(5):
            ref += (1 - c[i, j]) ** 2 if i == j else 0.01 * c[i, j] ** 2
    assert torch.allclose(L.barlow_twins_loss(z1, z2, lambd=0.01, scale=2.0), 2.0 * ref, atol=1e-4)


# ---------------------------------------------------------------- SwAV
def _sinkhorn_ref(out: torch.Tensor, eps: float, iters: int) -> torch.Tensor:
    q = torch.exp(out / eps).t()
    b, k = q.shape[1], q.shape[0]
    q /= q.sum()
    for _ in range(iters):
        q /= q.sum(dim=1, keepdim=True)
        q /= k
        q /= q.sum(dim=0, keepdim=True)
        q /= b
    return (q * b).t()


def test_sinkhorn_matches_reference_and_marginals() -> None:
    scores = F.normalize(torch.randn(32, 8), dim=1) @ F.normalize(torch.randn(8, 8), dim=0)
    q = L.sinkhorn_knopp(scores, epsilon=0.05, iterations=3)
    assert torch.allclose(q, _sinkhorn_ref(scores.double(), 0.05, 3).float(), atol=1e-5)
    assert torch.allclose(q.sum(1), torch.ones(32), atol=1e-5)  # each sample is an assignment
    q50 = L.sinkhorn_knopp(scores, epsilon=0.05, iterations=200)
    assert torch.allclose(q50.sum(0), torch.full((8,), 32 / 8), atol=1e-2)  # equipartition
    assert not q.requires_grad


def test_swav_loss_matches_reference_averaging() -> None:
    crops = [torch.randn(6, 5, requires_grad=True) for _ in range(4)]
    t = 0.1
    ref = 0.0
    for c in (0, 1):
        q = _sinkhorn_ref(crops[c].detach(), 0.05, 3)
        sub = 0.0
        for v in range(4):
            if v != c:
                sub -= torch.mean(torch.sum(q * F.log_softmax(crops[v] / t, dim=1), dim=1))
        ref += sub / 3
    ref /= 2
    out = L.swav_loss(crops, assign_crops=(0, 1), temperature=t)
    assert torch.allclose(out, ref, atol=1e-5)
    out.backward()
    assert all(c.grad is not None for c in crops)


# ---------------------------------------------------------------- PointInfoNCE
def test_point_info_nce_equals_info_nce() -> None:
    f1, f2 = torch.randn(10, 6), torch.randn(10, 6)
    ref = L.info_nce(f1, f2, torch.arange(10), temperature=0.07)
    assert torch.allclose(L.point_info_nce(f1, f2), ref)
    logits = F.normalize(f1, dim=1) @ F.normalize(f2, dim=1).t() / 0.07
    assert torch.allclose(L.point_info_nce(f1, f2), F.cross_entropy(logits, torch.arange(10)), atol=1e-5)


# ---------------------------------------------------------------- equivariance
def test_rotation_bins() -> None:
    pi = math.pi
    a = torch.tensor([-pi, -pi + 1e-6, 0.0, pi - 1e-6, pi, 3 * pi, -3 * pi + 0.1, 2 * pi / 10 - pi + 1e-5])
    assert L.rotation_bins(torch.tensor([-pi, 0.0, pi], dtype=torch.float64), 4).tolist() == [0, 2, 0]
    assert L.rotation_bins(a, 10).tolist() == [0, 0, 5, 9, 0, 0, 0, 1]
    assert L.rotation_bins(torch.tensor([0.1, -0.1]), 2).tolist() == [1, 0]
    logits = torch.randn(4, 10)
    y = torch.tensor([0, 3, 9, 5])
    assert torch.allclose(L.equivariance_classification_loss(logits, y), F.cross_entropy(logits, y))


# ---------------------------------------------------------------- masked L1
def test_masked_l1() -> None:
    pred, target = torch.randn(2, 5, 3, requires_grad=True), torch.randn(2, 5, 3)
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, 1] = mask[1, 4] = True
    ref = torch.cat([(pred[0, 1] - target[0, 1]).abs(), (pred[1, 4] - target[1, 4]).abs()]).mean()
    assert torch.allclose(L.masked_l1(pred, target, mask), ref)
    # unmasked elements are ignored entirely
    t2 = target.clone()
    t2[~mask] = 1000.0
    assert torch.allclose(L.masked_l1(pred, t2, mask), ref)
    # element mask
    emask = torch.zeros(2, 5, 3, dtype=torch.bool)
    emask[0, 0, 2] = True
    assert torch.allclose(L.masked_l1(pred, target, emask), (pred[0, 0, 2] - target[0, 0, 2]).abs())
    # empty mask: zero, finite gradient
    out = L.masked_l1(pred, target, torch.zeros(2, 5, dtype=torch.bool))
    out.backward()
    assert out.item() == 0.0 and torch.isfinite(pred.grad).all()


# ---------------------------------------------------------------- loss goes down
def _two_views(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x + 0.1 * torch.randn_like(x), x + 0.1 * torch.randn_like(x)


@pytest.mark.parametrize("name", ["nt_xent", "byol", "barlow", "swav"])
def test_loss_goes_down(name: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 16)
    enc = torch.nn.Linear(16, 8)
    pred = torch.nn.Linear(8, 8)
    protos = torch.nn.Linear(8, 6, bias=False)
    opt = torch.optim.SGD([*enc.parameters(), *pred.parameters(), *protos.parameters()], lr=0.05, momentum=0.9)
    target = torch.nn.Linear(16, 8)  # fixed random target network for BYOL

    def loss_fn() -> torch.Tensor:
        g = torch.Generator().manual_seed(1)  # fixed views: a deterministic objective
        v1 = x + 0.1 * torch.randn(x.shape, generator=g)
        v2 = x + 0.1 * torch.randn(x.shape, generator=g)
        if name == "nt_xent":
            return L.nt_xent(enc(v1), enc(v2), temperature=0.5)
        if name == "byol":
            return L.byol_loss(pred(enc(v1)), target(v2)) + L.byol_loss(pred(enc(v2)), target(v1))
        if name == "barlow":
            return L.barlow_twins_loss(enc(v1), enc(v2))
        with torch.no_grad():
            protos.weight.copy_(F.normalize(protos.weight, dim=1))
        s = [protos(F.normalize(enc(v), dim=1)) for v in (v1, v2)]
        return L.swav_loss(s)

    first = loss_fn().item()
    for _ in range(50):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    assert loss_fn().item() < first - 1e-3


def test_losses_run_in_float32_under_autocast() -> None:
    z1, z2 = torch.randn(16, 32), torch.randn(16, 32)
    cases = {
        "nt_xent": lambda: L.nt_xent(z1, z2),
        "clip": lambda: L.clip_loss(z1, z2, 100.0),
        "barlow": lambda: L.barlow_twins_loss(z1, z2),
        "swav": lambda: L.swav_loss([z1[:, :8], z2[:, :8]]),
        "info_nce": lambda: L.info_nce(z1, z2, torch.arange(16)),
    }
    for name, fn in cases.items():
        ref = fn()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fn()
        assert out.dtype == torch.float32, name
        assert torch.allclose(out, ref, rtol=1e-5, atol=1e-5), name


def _ddp_worker(r: int, w: int, port: int, out: dict[str, bool]) -> None:  # pragma: no cover - subprocess
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=r, world_size=w)
    torch.manual_seed(0)
    b = 4
    z1f, z2f = torch.randn(w * b, 6), torch.randn(w * b, 6)
    fns = {
        "nt_xent": lambda a, c, g: L.nt_xent(a, c, gather=g),
        "clip": lambda a, c, g: L.clip_loss(a, c, 5.0, gather=g),
        "barlow": lambda a, c, g: L.barlow_twins_loss(a, c, gather=g),
    }
    for name, fn in fns.items():
        a = z1f[r * b:(r + 1) * b].clone().requires_grad_()
        c = z2f[r * b:(r + 1) * b].clone().requires_grad_()
        loss = fn(a, c, True)
        loss.backward()
        full_a, full_c = z1f.clone().requires_grad_(), z2f.clone().requires_grad_()
        glob = fn(full_a, full_c, False)
        glob.backward()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        # the objective is the mean of the rank losses; DDP divides the summed gradient by w
        out[f"{name}{r}"] = bool(
            torch.allclose(mean / w, glob.detach(), atol=1e-5)
            and torch.allclose(a.grad / w, full_a.grad[r * b:(r + 1) * b], atol=1e-5)
        )
    q = L.sinkhorn_knopp(z1f[r * b:(r + 1) * b])
    out[f"sinkhorn{r}"] = bool(torch.allclose(q, L.sinkhorn_knopp(z1f, gather=False)[r * b:(r + 1) * b], atol=1e-5))
    dist.destroy_process_group()


@pytest.mark.ddp
def test_gathered_losses_under_real_gloo_ddp() -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_ddp_worker, args=(2, port, out), nprocs=2)
        result = dict(out)
    assert len(result) == 8 and all(result.values()), result
