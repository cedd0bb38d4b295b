"""Backbones: torchvision ResNet-50 (the paper's) and a small ResNet for CPU-scale profiles.

Both take ``(B, 3, H, W)`` (the gray slice stacked to 3 channels, as the paper) and return
``(B, D)`` pooled features (``fc`` removed, as the reference loads pre-trained weights "with the
fc head missing"). No ImageNet weights: weights come from this project's own pre-training or a
local safetensors file.
"""

from __future__ import annotations

import torch
from torch import nn

from pretrainlab.ct.config import ModelConfig


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016): 3x3-BN-ReLU-3x3-BN + shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.short(x))


class SmallResNet(nn.Module):
    """``(B, 3, H, W) -> (B, width * 2**(stages-1))``: 3x3 stem, one stage per entry of ``blocks``
    (stride 2 from the second stage), global average pooling."""

    def __init__(self, width: int = 16, blocks: tuple[int, ...] = (1, 1, 1)) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        cin = width
        for i, n in enumerate(blocks):
            cout = width * 2 ** i
            for j in range(n):
                layers.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.out_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x)).mean(dim=(2, 3))


def build_backbone(cfg: ModelConfig) -> tuple[nn.Module, int]:
    """The configured backbone and its feature dimension."""
    if cfg.arch == "resnet50":
        from torchvision.models import resnet50

        net = resnet50(weights=None)
        dim = net.fc.in_features
        net.fc = nn.Identity()  # type: ignore[assignment]
        return net, dim
    if cfg.arch == "small":
        net = SmallResNet(cfg.width, tuple(cfg.blocks))
        return net, net.out_dim
    raise ValueError(f"unknown model.arch {cfg.arch!r} (resnet50 | small)")


def to_input(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 or [0, 1] float ``(B, 1, H, W)`` -> normalised ``(B, 3, H, W)`` (gray stacked to 3 channels)."""
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    x = (x - mean) / std
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
