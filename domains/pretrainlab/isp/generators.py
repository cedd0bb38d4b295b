"""The paper's lightweight RAW-to-RGB generators (Sec. 3.1; sizes as the reference code).

- EfficientISP (~3.1k params): conv 4->12, 12->12, 12->12 (3x3) with tanh / ReLU / ReLU, then
  pixel_shuffle x2: ``(B, 4, h, w)`` packed RAW -> ``(B, 3, 2h, 2w)``.
- RobustISP (~1.6k params): conv 4->16->4->12 (3x3), pixel_shuffle x2. Activations between the
  convs are ReLU (assumption: the reference's activations were not retrieved).
- RMFA-Net tiny (~28.5k params): full-resolution R / G / B split of the mosaic, 2 residual
  multi-scale feature-attention blocks of width 16, sigmoid output. Deviation: the exact
  RMFA-Net layer list was not retrieved; this block (dilated 3x3 branches, 1x1 fusion, channel
  and spatial attention, residual) matches its description and parameter budget.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pretrainlab.isp.bayer import rgb_split


class EfficientISP(nn.Module):
    """``(B, 4, h, w)`` -> ``(B, 3, 2h, 2w)``; 3,060 parameters."""

    def __init__(self, width: int = 12) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(4, width, 3, padding=1)
        self.c2 = nn.Conv2d(width, width, 3, padding=1)
        self.c3 = nn.Conv2d(width, 12, 3, padding=1)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.c1(raw))
        x = F.relu(self.c2(x))
        x = F.relu(self.c3(x))
        return F.pixel_shuffle(x, 2)


class RobustISP(nn.Module):
    """``(B, 4, h, w)`` -> ``(B, 3, 2h, 2w)``; 1,616 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(4, 16, 3, padding=1)
        self.c2 = nn.Conv2d(16, 4, 3, padding=1)
        self.c3 = nn.Conv2d(4, 12, 3, padding=1)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.c1(raw))
        x = F.relu(self.c2(x))
        return F.pixel_shuffle(self.c3(x), 2)


class MultiScaleFeatureAttention(nn.Module):
    """One RMFA block: conv, dilated branches (1, 2, 4), 1x1 fusion, channel + spatial attention, conv, residual."""

    def __init__(self, c: int = 16, reduction: int = 4) -> None:
        super().__init__()
        self.inp = nn.Conv2d(c, c, 3, padding=1)
        self.branches = nn.ModuleList([nn.Conv2d(c, c, 3, padding=d, dilation=d) for d in (1, 2, 4)])
        self.fuse = nn.Conv2d(3 * c, c, 1)
        self.ca = nn.Sequential(nn.Conv2d(c, c // reduction, 1), nn.ReLU(inplace=True), nn.Conv2d(c // reduction, c, 1))
        self.sa = nn.Conv2d(2, 1, 7, padding=3)
        self.out = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.inp(x))
        y = self.fuse(torch.cat([F.relu(b(y)) for b in self.branches], dim=1))
        y = y * torch.sigmoid(self.ca(y.mean(dim=(2, 3), keepdim=True)))
        y = y * torch.sigmoid(self.sa(torch.cat([y.mean(1, keepdim=True), y.amax(1, keepdim=True)], dim=1)))
        return x + self.out(F.relu(y))


class RMFANetTiny(nn.Module):
    """``(B, 4, h, w)`` packed -> R/G/B split ``(B, 3, 2h, 2w)`` -> ``(B, 3, 2h, 2w)`` in (0, 1)."""

    def __init__(self, width: int = 16, blocks: int = 2, pattern: str = "RGGB") -> None:
        super().__init__()
        self.pattern = pattern
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.blocks = nn.Sequential(*[MultiScaleFeatureAttention(width) for _ in range(blocks)])
        self.refine = nn.Conv2d(width, width, 3, padding=1)
        self.tail = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        x = self.head(rgb_split(raw, self.pattern))
        x = F.relu(self.refine(self.blocks(x))) + x
        return torch.sigmoid(self.tail(x))


GENERATORS = {"efficientisp": EfficientISP, "robustisp": RobustISP, "rmfanet_tiny": RMFANetTiny}
DISPLAY = {"efficientisp": "EfficientISP", "robustisp": "RobustISP", "rmfanet_tiny": "RMFA-Net tiny"}


def build_generator(name: str, pattern: str = "RGGB") -> nn.Module:
    if name not in GENERATORS:
        raise ValueError(f"unknown generator '{name}'; use one of {', '.join(GENERATORS)}")
    return RMFANetTiny(pattern=pattern) if name == "rmfanet_tiny" else GENERATORS[name]()


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def count_macs(model: nn.Module, raw_hw: tuple[int, int], probe_div: int = 10) -> int:
    """Multiply-accumulates of conv / linear layers for one ``(1, 4, *raw_hw)`` input (forward hooks).

    Fully convolutional: counted on a ``probe_div`` times smaller input and scaled by the area ratio.
    """
    ph, pw = max(8, raw_hw[0] // probe_div), max(8, raw_hw[1] // probe_div)
    scale = raw_hw[0] * raw_hw[1] / (ph * pw)
    macs = [0]

    def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            macs[0] += int(out.numel() * k)
        elif isinstance(mod, nn.Linear):
            macs[0] += int(out.numel() * mod.in_features)

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            p = next(model.parameters())
            model(torch.zeros(1, 4, ph, pw, device=p.device, dtype=p.dtype))
    finally:
        for h in hs:
            h.remove()
    return round(macs[0] * scale)
