"""Combined margin loss of the reference code (PETALface ``losses.py`` / ``heads/partial_fc.py`` =
insightface arcface_torch ``CombinedMarginLoss`` + ``PartialFC`` with ``sample_rate=1``).

Cosines ``cos(theta_j) = <e / |e|, w_j / |w_j|>`` clamped to [-1, 1]; for the target class ``y``:

- CosFace (``m3 > 0``): ``s * (cos(theta_y) - m3)``, every other logit ``s * cos(theta_j)``;
- ArcFace (``m1 = 1, m3 = 0``): ``s * cos(theta_y + m2)``, computed as the reference does: the
  ``arccos`` / ``+ m2`` / ``cos`` happen in place under ``no_grad``, so the value carries the margin
  and the GRADIENT is that of ``s * cos(theta)`` (straight through); no "easy margin" fall-back.

Loss: softmax cross-entropy of the scaled logits. Classifier weights ``W`` ``(C, E)`` start at
``N(0, 0.01)`` (ref: partial_fc.py). Computed in float32 (autocast-safe).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def margin_logits(cos: Tensor, labels: Tensor, s: float, m1: float, m2: float, m3: float) -> Tensor:
    """``(B, C)`` cosines + ``(B,)`` labels -> ``(B, C)`` scaled logits with the margin on the target."""
    cos = cos.float().clamp(-1, 1)
    idx = labels.view(-1, 1)
    if m3 > 0:  # ref: elif self.m3 > 0 (CosFace)
        target = cos.gather(1, idx) - m3
        return cos.scatter(1, idx, target) * s
    if m1 != 1.0:
        raise ValueError("the reference CombinedMarginLoss supports m1 = 1 only (ArcFace or CosFace)")
    with torch.no_grad():  # ref: ArcFace margin under no_grad (straight-through gradient)
        theta = cos.detach().acos()
        delta = torch.cos(theta.scatter(1, idx, theta.gather(1, idx) + m2)) - cos.detach()
    return (cos + delta) * s


class MarginHead(nn.Module):
    """The margin-softmax classifier: ``W`` ``(C, E)``; ``forward(emb (B,E), labels (B,))`` -> (loss, acc)."""

    def __init__(self, emb_dim: int, num_classes: int, s: float = 64.0, m1: float = 1.0, m2: float = 0.0,
                 m3: float = 0.4) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.normal(0, 0.01, (num_classes, emb_dim)))  # ref: partial_fc.py
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
        acc = (cos.detach().argmax(1) == labels).float().mean()
        return loss, acc
