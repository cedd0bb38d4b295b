"""The LoRA layers of the PETALface reference code (``backbones/lora_layers.py``), ported as they are.

Both are ``nn.Linear`` subclasses, so the frozen weight and bias keep the plain layer's state-dict
keys (``<name>.weight`` / ``<name>.bias``) and the adapters add ``<name>.trainable_lora_down.weight``
``(r, in)`` and ``<name>.trainable_lora_up.weight`` ``(out, r)`` (``...down2`` / ``...up2`` for the
second adapter): the released ``model.pt`` loads into them key for key.

- :class:`LoRALinear` (plain LoRA; PETALface's single adapter on the feature projection)::

      y = W x + b + s * dropout(up(down(x)))

- :class:`LoRALinearTwo` (PETALface's twin LoRA on the attention ``qkv``, Sec. 3.2)::

      y = W x + b + s * dropout1(up1(down1((1 - a) x))) + s * dropout2(up2(down2(a x)))

  with ``a`` the per-sample quality weight, broadcast as ``(B, 1, 1)`` over ``(B, N, C)``.

Reference behaviour kept on purpose (each is a named deviation from the paper's text):
- dropout (p = 0.1) acts on each adapter's OUTPUT, one ``nn.Dropout`` per adapter;
- the constructor draws ``down ~ N(0, 1/r)`` and ``up = 0``, but the backbone's ``_init_weights``
  runs afterwards over every ``nn.Linear`` (the adapters are ``nn.Linear`` too) and leaves BOTH
  matrices at ``trunc_normal(std=0.02)``: fine-tuning starts with non-zero up-matrices, i.e. not
  exactly at the pre-trained function (:func:`pretrainlab.face.swin_face.reference_init`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LoRALinear(nn.Linear):
    """``nn.Linear`` + one low-rank adapter (reference ``LoRALinear``). ``(..., in)`` -> ``(..., out)``."""

    def __init__(self, in_features: int, out_features: int, r: int, scale: float, bias: bool = True,
                 dropout: float = 0.1) -> None:
        super().__init__(in_features, out_features, bias)
        self.r = r
        self.scale = scale
        self.trainable_lora_down = nn.Linear(in_features, r, bias=False)
        self.trainable_lora_up = nn.Linear(r, out_features, bias=False)
        self.dropout = nn.Dropout(dropout)  # ref: lora_layers.py nn.Dropout(0.1)
        nn.init.normal_(self.trainable_lora_down.weight, std=1 / r)  # ref: then overwritten by _init_weights
        nn.init.zeros_(self.trainable_lora_up.weight)

    def forward(self, x: Tensor) -> Tensor:
        out = F.linear(x, self.weight, self.bias)
        return out + self.scale * self.dropout(self.trainable_lora_up(self.trainable_lora_down(x)))


class LoRALinearTwo(nn.Linear):
    """``nn.Linear`` + PETALface's twin adapters mixed by ``(1 - a, a)`` (reference ``LoRALinearTwo``).

    ``forward(x (B', N, in), alpha (B', 1, 1) or broadcastable)`` -> ``(B', N, out)``.
    """

    def __init__(self, in_features: int, out_features: int, r: int, scale: float, bias: bool = True,
                 dropout: float = 0.1) -> None:
        super().__init__(in_features, out_features, bias)
        self.r = r
        self.scale = scale
        self.scale2 = scale
        self.trainable_lora_down = nn.Linear(in_features, r, bias=False)
        self.trainable_lora_up = nn.Linear(r, out_features, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.trainable_lora_down2 = nn.Linear(in_features, r, bias=False)
        self.trainable_lora_up2 = nn.Linear(r, out_features, bias=False)
        self.dropout2 = nn.Dropout(dropout)
        for down, up in ((self.trainable_lora_down, self.trainable_lora_up),
                         (self.trainable_lora_down2, self.trainable_lora_up2)):
            nn.init.normal_(down.weight, std=1 / r)
            nn.init.zeros_(up.weight)

    def forward(self, x: Tensor, alpha: Tensor) -> Tensor:  # type: ignore[override]
        """``down((1 - a) x) = (1 - a) down(x)`` (``a`` is one scalar per sample and ``down`` is linear), so
        the weight is applied to the rank-``r`` projection instead of the full input: the same function
        with less memory traffic. Without dropout (eval) both ups run as one matmul."""
        out = F.linear(x, self.weight, self.bias)
        alpha = alpha.to(x.dtype)
        d1 = self.trainable_lora_down(x) * (1 - alpha)
        d2 = self.trainable_lora_down2(x) * alpha
        drop = self.training and (self.dropout.p > 0 or self.dropout2.p > 0)
        if not drop and self.scale == self.scale2:
            up = torch.cat([self.trainable_lora_up.weight, self.trainable_lora_up2.weight], 1)
            return out + self.scale * F.linear(torch.cat([d1, d2], -1), up)
        low = self.scale * self.dropout(self.trainable_lora_up(d1))
        high = self.scale2 * self.dropout2(self.trainable_lora_up2(d2))
        return out + low + high


def lora_parameter_names(model: nn.Module) -> list[str]:
    """Names of the adapter parameters (the reference trains exactly those: ``'trainable_lora' in name``)."""
    return [n for n, _ in model.named_parameters() if "trainable_lora" in n]
