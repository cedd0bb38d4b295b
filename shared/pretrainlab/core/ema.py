"""EMA / momentum target networks (BYOL, MoCo, SiamLIP, the LiDAR temporal branch...)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy with ``requires_grad=False`` everywhere: the target network."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, decay: float) -> None:
    """``target <- decay * target + (1 - decay) * online`` for parameters; buffers are copied."""
    t_params = [p for p in target.parameters()]
    o_params = [p.detach() for p in online.parameters()]
    if len(t_params) != len(o_params):
        raise ValueError("target and online networks have different parameter lists")
    if t_params:
        torch._foreach_lerp_(t_params, o_params, 1.0 - decay)
    for tb, ob in zip(target.buffers(), online.buffers()):
        tb.copy_(ob)
