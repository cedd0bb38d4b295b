"""SLIP (Mu et al. 2022, "SLIP: Self-supervision meets Language-Image Pre-training", Sec. 3):
CLIP on the global pair + SimCLR (NT-Xent, temperature 0.1) on two augmented image views through
a 3-layer MLP (hidden 4096, out 256); ``L = L_clip + ssl_scale * L_simclr`` with ssl_scale 1.
One of the "baselines" CLIP-rocket compares against (its Table 1).
"""

from __future__ import annotations

from torch import Tensor

from pretrainlab.core.losses import nt_xent


def slip_ssl_loss(e1: Tensor, e2: Tensor, temperature: float = 0.1, gather: bool = True) -> Tensor:
    """SimCLR term of SLIP on ``(B, D)`` MLP embeddings of the two image views (float32)."""
    return nt_xent(e1, e2, temperature=temperature, gather=gather)
