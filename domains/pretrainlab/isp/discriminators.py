"""The discriminators of unpaired training (paper Sec. 3.2).

- TextureDiscriminator: 5 convs (LeakyReLU) + FC 1024 + FC 1 on one AlexNet feature map of a
  grayscale image (one instance reads relu1, one relu4). DPED-style widths scaled by ``width``;
  an adaptive average pool to 4x4 before the FC makes it size-agnostic (assumption: the
  reference flattens a fixed-size map).
- ColourDiscriminator: MLP ``D -> 512 -> 512 -> 1`` on every ViT patch token of a blurred image,
  averaged over tokens.
Shapes: texture ``(B, C, h, w) -> (B,)``; colour ``(B, N, D) -> (B,)``.
"""

from __future__ import annotations

import torch
from torch import nn


class TextureDiscriminator(nn.Module):
    def __init__(self, in_ch: int, width: int = 48, fc: int = 1024) -> None:
        super().__init__()
        w = width
        chans = [in_ch, w, 2 * w, 4 * w, 4 * w, 2 * w]
        strides = [1, 2, 1, 2, 1]
        layers: list[nn.Module] = []
        for i in range(5):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 3, strides[i], 1), nn.LeakyReLU(0.2)]
        self.convs = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(chans[-1] * 16, fc), nn.LeakyReLU(0.2), nn.Linear(fc, 1))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.convs(f))).squeeze(1)


class ColourDiscriminator(nn.Module):
    def __init__(self, dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.mlp(tokens).squeeze(-1).mean(dim=1)
