"""Optimizers built from ``TrainConfig``: AdamW / Adam / SGD / LARS, no decay on biases and norms."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from pretrainlab.core.config import TrainConfig


class LARS(torch.optim.Optimizer):
    """LARS (You et al., 2017): SGD with a layer-wise trust ratio.

    ``exclude_1d=True`` (SimCLR's variant): parameters with ``ndim <= 1`` (biases, norms) skip the trust
    ratio and weight decay. ``trust="norm_of_sum"``: ``q = eta |p| / |g + wd p|``; ``"sum_of_norms"``:
    ``q = eta |p| / (|g| + wd |p| + eps)`` as pl_bolts' LARS (used by the SwAV reference with
    ``exclude_1d=False``; like pl_bolts it scales and decays only when ``wd != 0`` and both norms are
    non-zero). The update is ``(g + wd p) * q`` with momentum.
    """

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.001, exclude_1d: bool = True, trust: str = "norm_of_sum", eps: float = 1e-8) -> None:
        if trust not in ("norm_of_sum", "sum_of_norms"):
            raise ValueError(f"unknown LARS trust rule '{trust}'")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eta": eta,
                                  "exclude_1d": exclude_1d, "trust": trust, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if p.ndim > 1 or not g["exclude_1d"]:
                    wd = g["weight_decay"]
                    if g["trust"] == "sum_of_norms":  # pl_bolts: scaled (and decayed) only when wd != 0
                        if not wd:
                            q = torch.ones((), device=p.device, dtype=p.dtype)
                        else:
                            pn, gn = torch.norm(p), torch.norm(d)
                            ok = (pn > 0) & (gn > 0)
                            q = torch.where(ok, g["eta"] * pn / (gn + wd * pn + g["eps"]), torch.ones_like(pn))
                            d = torch.where(ok, d.add(p, alpha=wd), d)
                    else:
                        if wd:
                            d = d.add(p, alpha=wd)
                        pn, dn = torch.norm(p), torch.norm(d)
                        q = torch.where((pn > 0) & (dn > 0), g["eta"] * pn / dn, torch.ones_like(pn))
                    d = d.mul(q)
                st = self.state[p]
                if "mu" not in st:
                    st["mu"] = torch.zeros_like(p)
                mu = st["mu"].mul_(g["momentum"]).add_(d)
                p.add_(mu, alpha=-g["lr"])
        return None


def param_groups(params: Iterable[nn.Parameter], weight_decay: float, lr: float,
                 decay_1d: bool = False) -> list[dict[str, Any]]:
    """Two groups: weights with ``weight_decay``, and biases / norms (``ndim <= 1``) without, unless
    ``decay_1d`` (every parameter decays, as pl_bolts' LARS with ``exclude_bn_bias=False``)."""
    decay, no_decay = [], []
    for p in params:
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 and not decay_1d else decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay, "lr": lr, "base_lr": lr})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "lr": lr, "base_lr": lr})
    return groups


def _fused_supported(groups: list[dict[str, Any]]) -> bool:
    """Whether torch has a fused Adam(W) kernel for every parameter: floating point (not complex) on a
    device with fused kernels. torch only checks this at the first ``step()``, so it is checked here."""
    try:
        from torch.optim.optimizer import _get_fused_kernels_supported_devices  # torch >= 2.0 (private)

        devices = set(_get_fused_kernels_supported_devices())
    except ImportError:
        devices = {"cpu", "cuda", "mps", "xpu"}
    return all(p.is_floating_point() and p.device.type in devices for g in groups for p in g["params"])


def build_optimizer(params: Iterable[nn.Parameter], cfg: TrainConfig, lr: float | None = None,
                    weight_decay: float | None = None) -> torch.optim.Optimizer:
    lr = cfg.lr if lr is None else lr
    wd = cfg.weight_decay if weight_decay is None else weight_decay
    groups = param_groups(params, wd, lr,
                          decay_1d=cfg.decay_1d or (cfg.optimizer.lower() == "lars" and not cfg.lars_exclude_1d))
    if not groups:
        raise ValueError("no trainable parameters for the optimizer")
    name = cfg.optimizer.lower()
    if name in ("adamw", "adam"):
        cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
        if cfg.fused_optimizer and _fused_supported(groups):
            return cls(groups, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=True)  # type: ignore[arg-type]
        return cls(groups, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps, foreach=True)  # type: ignore[arg-type]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, foreach=True)
    if name == "lars":
        return LARS(groups, lr=lr, momentum=cfg.momentum, eta=cfg.lars_eta, exclude_1d=cfg.lars_exclude_1d,
                    trust=cfg.lars_trust)
    raise ValueError(f"unknown optimizer '{cfg.optimizer}' (use adamw, adam, sgd or lars)")
