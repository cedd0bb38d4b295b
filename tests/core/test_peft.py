"""Tests of pretrainlab.core.peft (LoRA / multi-LoRA)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pretrainlab.core import peft as P


class Block(nn.Module):
    def __init__(self, d: int = 12) -> None:
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(3 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.relu(self.qkv(x)))


class Tiny(nn.Module):
    def __init__(self, d: int = 12) -> None:
        super().__init__()
        self.blocks = nn.Sequential(Block(d), Block(d))
        self.head = nn.Linear(d, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _randomise_b(model: nn.Module) -> None:
    with torch.no_grad():
        for _, m in P.lora_modules(model):
            m.lora_B.normal_(0, 0.1)


def test_matches_peft_library() -> None:
    from peft import LoraConfig, inject_adapter_in_model

    base = Tiny()
    ours = copy.deepcopy(base)
    theirs = copy.deepcopy(base)
    names = P.inject_lora(ours, ["*.qkv"], r=4, alpha=8)
    assert names == ["blocks.0.qkv", "blocks.1.qkv"]
    theirs = inject_adapter_in_model(LoraConfig(r=4, lora_alpha=8, target_modules=["qkv"], lora_dropout=0.0), theirs)
    _randomise_b(ours)
    with torch.no_grad():
        for name, m in P.lora_modules(ours):
            pm = theirs.get_submodule(name)
            pm.lora_A["default"].weight.copy_(m.lora_A[0])
            pm.lora_B["default"].weight.copy_(m.lora_B[0])
    x = torch.randn(5, 7, 12)
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)


def test_init_like_peft() -> None:
    m = P.LoRALinear(nn.Linear(64, 32), r=8, n_adapters=2)
    assert torch.count_nonzero(m.lora_B) == 0
    bound = 1 / 64 ** 0.5  # kaiming_uniform(a=sqrt(5)) on (r, in): U(-1/sqrt(in), 1/sqrt(in))
    assert m.lora_A.abs().max() <= bound and m.lora_A.abs().max() > 0.8 * bound
    assert not torch.equal(m.lora_A[0], m.lora_A[1])
    x = torch.randn(3, 64)
    assert torch.allclose(m(x), m.base(x))  # B = 0: starts from the base function
    g = P.LoRALinear(nn.Linear(64, 32), r=8, init="gaussian")
    assert abs(g.lora_A.std().item() - 1 / 8) < 0.02


def test_merge_unmerge() -> None:
    model = Tiny()
    w0 = model.blocks[0].qkv.weight.detach().clone()
    P.inject_lora(model, ["qkv", "proj"], r=4, alpha=4)
    _randomise_b(model)
    x = torch.randn(4, 12)
    y = model(x)
    P.merge_lora(model)
    assert not torch.allclose(model.blocks[0].qkv.base.weight, w0)
    assert torch.allclose(model(x), y, atol=1e-5)
    P.unmerge_lora(model)
    assert torch.allclose(model.blocks[0].qkv.base.weight, w0, atol=1e-6)
    assert torch.allclose(model(x), y, atol=1e-6)


def test_merge_with_fixed_multi_weights_and_error_for_per_sample() -> None:
    model = Tiny()
    P.inject_lora(model, ["*.qkv"], r=2, n_adapters=2)
    _randomise_b(model)
    x = torch.randn(4, 12)
    w = torch.tensor([0.3, 0.7])
    with P.mixing_weights(model, w):
        y = model(x)
        P.merge_lora(model)
        assert torch.allclose(model(x), y, atol=1e-5)
        P.unmerge_lora(model)
    with P.mixing_weights(model, torch.rand(4, 2)), pytest.raises(RuntimeError, match="per-sample"):
        P.merge_lora(model)


def test_multi_lora_one_hot_equals_single_adapter() -> None:
    base = nn.Linear(10, 6)
    multi = P.LoRALinear(copy.deepcopy(base), r=3, alpha=6, n_adapters=3)
    with torch.no_grad():
        multi.lora_B.normal_()
    x = torch.randn(5, 4, 10)
    onehot = torch.tensor([0, 2, 1, 2, 0])
    P.set_mixing_weights(multi, nn.functional.one_hot(onehot, 3).float())
    y = multi(x)
    for k in range(3):
        single = P.LoRALinear(copy.deepcopy(base), r=3, alpha=6)
        with torch.no_grad():
            single.lora_A.copy_(multi.lora_A[k:k + 1])
            single.lora_B.copy_(multi.lora_B[k:k + 1])
        sel = onehot == k
        assert torch.allclose(y[sel], single(x[sel]), atol=1e-5)


def test_mixing_formula_petalface_and_defaults() -> None:
    lin = P.LoRALinear(nn.Linear(8, 5), r=2, alpha=2, n_adapters=2)
    with torch.no_grad():
        lin.lora_B.normal_()
    x = torch.randn(3, 8)
    a = torch.tensor([0.2, 0.9, 1.3])  # quality weight, unclamped as in the PETALface code
    down = [lambda v, k=k: v @ lin.lora_A[k].t() for k in range(2)]
    up = [lambda v, k=k: v @ lin.lora_B[k].t() for k in range(2)]
    ref = lin.base(x) + up[0](down[0]((1 - a)[:, None] * x)) + up[1](down[1](a[:, None] * x))
    with P.mixing_weights(lin, torch.stack([1 - a, a], dim=1)):
        assert torch.allclose(lin(x), ref, atol=1e-5)
    assert lin.mixing is None  # restored
    # None = equal weights 1/K
    with P.mixing_weights(lin, torch.full((3, 2), 0.5)):
        y_half = lin(x)
    assert torch.allclose(lin(x), y_half, atol=1e-6)
    # Swin-style windows: (B * nW, N, C) inputs repeat each weight row nW times
    xw = torch.randn(3 * 4, 6, 8)
    w = torch.rand(3, 2)
    with P.mixing_weights(lin, w):
        yw = lin(xw)
    with P.mixing_weights(lin, w.repeat_interleave(4, 0)):
        assert torch.allclose(yw, lin(xw), atol=1e-6)


def test_mixing_skips_single_adapter_layers_and_checks_k() -> None:
    model = Tiny()
    P.inject_lora(model, ["*.qkv"], r=2, n_adapters=2)
    P.inject_lora(model, ["head"], r=2)
    P.set_mixing_weights(model, torch.rand(4, 2))
    assert model.head.mixing is None and model.blocks[0].qkv.mixing is not None
    assert model(torch.randn(4, 12)).shape == (4, 3)
    with pytest.raises(ValueError, match="adapters"):
        P.set_mixing_weights(model, torch.rand(4, 3))


def test_only_lora_trainable_and_report() -> None:
    model = Tiny()
    P.inject_lora(model, ["*.qkv"], r=2)
    P.mark_only_lora_trainable(model, extra=["head"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"blocks.0.qkv.lora_A", "blocks.0.qkv.lora_B", "blocks.1.qkv.lora_A", "blocks.1.qkv.lora_B", "head.weight", "head.bias"}
    rep = P.trainable_report(model)
    n_lora = 2 * (2 * 12 + 36 * 2)
    assert rep["trainable"] == n_lora + 12 * 3 + 3
    assert rep["total"] == sum(p.numel() for p in model.parameters())
    assert rep["lora_layers"] == 2
    assert rep["per_module"]["head"] == {"total": 39, "trainable": 39}
    assert abs(rep["percent"] - 100 * rep["trainable"] / rep["total"]) < 1e-9
    text = P.format_report(rep)
    assert "LoRA layers" in text and "head" in text
    sd = P.lora_state_dict(model)
    assert set(sd) == {"blocks.0.qkv.lora_A", "blocks.0.qkv.lora_B", "blocks.1.qkv.lora_A", "blocks.1.qkv.lora_B"}


def test_training_moves_only_lora() -> None:
    model = Tiny()
    P.inject_lora(model, ["*.qkv", "*.proj"], r=2, dropout=0.1)
    P.mark_only_lora_trainable(model)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x, y = torch.randn(16, 12), torch.randint(0, 3, (16,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n])
    assert torch.count_nonzero(model.blocks[0].qkv.lora_B) > 0


def test_bad_target_raises() -> None:
    model = Tiny()
    with pytest.raises(ValueError, match="blocks.0.qkv"):
        P.inject_lora(model, ["*.nonexistent"])
    mha = nn.Sequential(nn.MultiheadAttention(8, 2))
    with pytest.raises(TypeError, match="MultiheadAttention"):
        P.inject_lora(mha, ["out_proj"])


def test_reinjection_does_not_wrap_base() -> None:
    model = Tiny()
    P.inject_lora(model, ["*.qkv"])
    with pytest.raises(ValueError):
        P.inject_lora(model, ["*.qkv"])  # already LoRA: nothing new matches
    assert P.inject_lora(model, ["*.qkv", "*.proj"]) == ["blocks.0.proj", "blocks.1.proj"]


def test_bf16_autocast_cpu() -> None:
    lin = P.LoRALinear(nn.Linear(8, 4), r=2, n_adapters=2)
    x = torch.randn(3, 8)
    with P.mixing_weights(lin, torch.rand(3, 2)), torch.autocast("cpu", dtype=torch.bfloat16):
        y = lin(x)
    assert y.shape == (3, 4) and torch.isfinite(y.float()).all()


def test_each_adapter_draws_its_own_dropout_mask() -> None:
    """Twin adapters with equal weights and mixing (1, -1): their outputs cancel unless the masks differ."""
    torch.manual_seed(0)
    lin = P.LoRALinear(nn.Linear(16, 8), r=4, alpha=4, n_adapters=2, dropout=0.5)
    with torch.no_grad():
        lin.lora_A[1].copy_(lin.lora_A[0])
        lin.lora_B.normal_()
        lin.lora_B[1].copy_(lin.lora_B[0])
    x = torch.randn(32, 16)
    with P.mixing_weights(lin, torch.tensor([1.0, -1.0])):
        lin.train()
        assert (lin(x) - lin.base(x)).abs().max() > 1e-3  # independent masks
        lin.eval()
        assert torch.allclose(lin(x), lin.base(x), atol=1e-6)  # no dropout: the twins cancel
    # the training path with per-adapter masks equals the fused path when no unit is dropped
    lin.dropout.p = 0.0
    lin.train()
    w = torch.rand(32, 2)
    with P.mixing_weights(lin, w):
        y_train = lin(x)
        lin.eval()
        assert torch.allclose(y_train, lin(x), atol=1e-5)
