"""The discriminators of unpaired training (paper Sec. 3.2; ref: models.py).

- :class:`TextureDiscriminator` (ref ``Discriminator_LPIPS_64`` / ``_256``): on one AlexNet feature map
  of a grayscale image. conv 5x5 stride 2 (-> 48), 3x3 s2 (-> 128), 3x3 s1 (-> 192), 3x3 s1
  (-> 192), 3x3 s2 (-> 128), LeakyReLU 0.2 after each; flatten; ``fc1`` (-> 1024, LeakyReLU 0.2);
  ``fc2`` (-> 1). The reference creates ``fc1`` lazily in the first forward, AFTER its Adam optimizer
  was built from ``parameters()``, so ``fc1`` keeps its random init for the whole training (a fixed
  random projection). We build ``fc1`` up front for the known input size and freeze it
  (``loss.d_train_fc1 = false``, the reference's behaviour; ``true`` trains it). One difference stays:
  in the reference, ``fc1``'s never-applied gradient accumulates (its ``zero_grad`` skips it) and is
  counted in the discriminator's gradient-norm clip; ours is not (Adam is nearly invariant to that
  global rescaling).
- :class:`ColourDiscriminator` (ref ``ViTDiscriminator``): ``Linear(D, 512), ReLU, Linear(512, 512),
  ReLU, Linear(512, 1)`` on every ViT patch token, averaged over tokens.

Shapes: texture ``(B, C, h, w) -> (B, 1)``; colour ``(B, N, D) -> (B, 1)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DISC_WIDTHS = (48, 128, 192, 192, 128)


class TextureDiscriminator(nn.Module):
    def __init__(self, in_ch: int, in_hw: tuple[int, int], widths: tuple[int, ...] = DISC_WIDTHS, fc: int = 1024,
                 train_fc1: bool = False) -> None:
        super().__init__()
        w = list(widths)
        self.conv1 = nn.Conv2d(in_ch, w[0], 5, 2, 2)
        self.conv2 = nn.Conv2d(w[0], w[1], 3, 2, 1)
        self.conv3 = nn.Conv2d(w[1], w[2], 3, 1, 1)
        self.conv4 = nn.Conv2d(w[2], w[3], 3, 1, 1)
        self.conv5 = nn.Conv2d(w[3], w[4], 3, 2, 1)
        h, ww = in_hw
        for _ in range(3):  # the three stride-2 convs: out = floor((n - 1) / 2) + 1
            h, ww = (h - 1) // 2 + 1, (ww - 1) // 2 + 1
        self.feature_map_size = w[4] * h * ww
        self.fc1 = nn.Linear(self.feature_map_size, fc)
        self.fc2 = nn.Linear(fc, 1)
        self.fc1.requires_grad_(train_fc1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        x = f
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
            x = F.leaky_relu(conv(x), 0.2)
        x = torch.flatten(x, 1)
        if x.shape[1] != self.feature_map_size:
            raise ValueError(f"texture discriminator built for {self.feature_map_size} features, got {x.shape[1]} "
                             "(feature maps of another image size)")
        return self.fc2(F.leaky_relu(self.fc1(x), 0.2))


class ColourDiscriminator(nn.Module):
    def __init__(self, dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 1)])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = tokens
        for layer in self.layers:
            x = layer(x)
        return x.mean(dim=1)
