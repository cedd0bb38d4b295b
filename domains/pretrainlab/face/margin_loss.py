"""Combined margin loss (insightface ``CombinedMarginLoss``; PETALface Sec. 4.1 trains with CosFace
m3 = 0.4 or ArcFace m2 = 0.5, scale s = 64).

For the target class ``y`` the logit ``cos(theta_y)`` becomes ``cos(m1 * theta_y + m2) - m3``,
every logit is scaled by ``s`` and the loss is softmax cross-entropy:
``L = -log( e^{s f(theta_y)} / (e^{s f(theta_y)} + sum_{j != y} e^{s cos theta_j}) )``.
SphereFace (m1), ArcFace (m2) and CosFace (m3) are special cases. As in insightface, ArcFace
falls back to ``cos(theta) - m2 * sin(m2)`` (the "easy margin" off) where ``theta + m2 > pi``.
Computed in float32 (bf16-safe).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def margin_logits(cos: Tensor, labels: Tensor, s: float, m1: float, m2: float, m3: float) -> Tensor:
    """``(B, C)`` cosines + ``(B,)`` labels -> ``(B, C)`` scaled logits with the margin on the target."""
    cos = cos.float().clamp(-1 + 1e-7, 1 - 1e-7)
    target = cos.gather(1, labels[:, None])  # (B, 1)
    if m1 != 1.0 or m2 != 0.0:
        theta = torch.acos(target)
        new = torch.cos(m1 * theta + m2)
        if m2 > 0:  # insightface: keep monotonic where theta + m2 > pi
            th, mm = math.cos(math.pi - m2), math.sin(math.pi - m2) * m2
            new = torch.where(target > th, new, target - mm)
        target_new = new - m3
    else:
        target_new = target - m3
    logits = cos.scatter(1, labels[:, None], target_new)
    return logits * s


class MarginHead(nn.Module):
    """The classifier of the margin loss: ``W`` ``(C, E)``; ``forward(emb (B,E), labels (B,))`` -> loss."""

    def __init__(self, emb_dim: int, num_classes: int, s: float = 64.0, m1: float = 1.0, m2: float = 0.0,
                 m3: float = 0.4) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, emb_dim) * 0.01)
        self.s, self.m1, self.m2, self.m3 = s, m1, m2, m3

    def cosine(self, emb: Tensor) -> Tensor:
        """``(B, E)`` -> ``(B, C)`` cosines, in float32 even under autocast."""
        with torch.autocast(emb.device.type, enabled=False):
            return F.linear(F.normalize(emb.float(), dim=1), F.normalize(self.weight.float(), dim=1))

    def forward(self, emb: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Returns ``(loss, accuracy)`` (0-d, float32)."""
        cos = self.cosine(emb)
        logits = margin_logits(cos, labels, self.s, self.m1, self.m2, self.m3)
        loss = F.cross_entropy(logits, labels)
        acc = (cos.argmax(1) == labels).float().mean()
        return loss, acc
