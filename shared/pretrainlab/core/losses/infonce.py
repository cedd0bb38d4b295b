"""InfoNCE and NT-Xent contrastive losses.

* ``info_nce``: the InfoNCE objective of van den Oord et al. 2018, "Representation Learning with
  Contrastive Predictive Coding" (Eq. 4): cross-entropy over similarity logits where one key per
  query is the positive and every other key is a negative. Here the similarity is the cosine
  (when ``normalize``) divided by a temperature, as in MoCo (He et al. 2020, Eq. 1).
* ``nt_xent``: the "normalized temperature-scaled cross entropy" of SimCLR (Chen et al. 2020,
  "A Simple Framework for Contrastive Learning of Visual Representations", Sec. 2.1, Eq. 1 and
  Algorithm 1). A batch of B pairs gives 2B samples; each sample's positive is its other view and
  the remaining 2B - 2 samples are negatives; the loss is averaged over all 2B anchors (the
  symmetric ``l(2k-1, 2k) + l(2k, 2k-1)`` term of Algorithm 1).

Deviations: under torch.distributed (and ``gather=True``) the negatives are gathered from every
rank with ``all_gather_with_grad`` (as SimCLR does over TPU cores, Sec. 2.2 "Global BN" / large
batch), while the anchors stay the local ones; the loss is then this rank's mean. Computation is
in float32 so the losses are safe under bf16 autocast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pretrainlab.core.distributed import all_gather_with_grad, is_distributed, rank
from pretrainlab.core.losses._precision import float32_loss


@float32_loss
def info_nce(
    query: Tensor,
    keys: Tensor,
    positive_index: Tensor,
    temperature: float = 0.1,  # MoCo v2 / SimCLR-style temperature; callers pass their paper's value
    normalize: bool = True,
) -> Tensor:
    """InfoNCE: ``CE(sim(query, keys) / T, positive_index)``.

    Args:
        query: ``(N, D)`` anchors.
        keys: ``(M, D)`` candidate keys (positives and negatives).
        positive_index: ``(N,)`` long, index into ``keys`` of each query's positive.
        temperature: softmax temperature ``T``.
        normalize: L2-normalise both sides so the similarity is the cosine.

    Returns:
        Scalar mean loss over the N queries.
    """
    q = query.float()
    k = keys.float()
    if normalize:
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
    logits = q @ k.t() / temperature
    return F.cross_entropy(logits, positive_index.long())


@float32_loss
def nt_xent(
    z1: Tensor,
    z2: Tensor,
    temperature: float = 0.1,  # SimCLR Table 5 / Appendix B.9 uses 0.1 for large batches (0.5 also common)
    gather: bool = True,
) -> Tensor:
    """SimCLR NT-Xent over ``2B`` samples (each has 1 positive and ``2B - 2`` negatives).

    Args:
        z1: ``(B, D)`` projections of the first view.
        z2: ``(B, D)`` projections of the second view (row ``i`` pairs with ``z1[i]``).
        temperature: ``tau`` of Eq. 1.
        gather: under torch.distributed, use the samples of every rank as negatives (with
            gradient); identity when not distributed.

    Returns:
        Scalar mean of ``l(i, j)`` over all ``2B`` local anchors.
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"nt_xent expects two (B, D) tensors of the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    b = z1.shape[0]
    a1 = F.normalize(z1.float(), dim=-1)
    a2 = F.normalize(z2.float(), dim=-1)
    if gather and is_distributed():
        k1 = all_gather_with_grad(a1)
        k2 = all_gather_with_grad(a2)
        offset = rank() * b
    else:
        k1, k2 = a1, a2
        offset = 0
    n = k1.shape[0]  # world * B
    anchors = torch.cat([a1, a2], dim=0)  # (2B, D)
    keys = torch.cat([k1, k2], dim=0)  # (2n, D)
    logits = anchors @ keys.t() / temperature  # (2B, 2n)
    idx = torch.arange(b, device=z1.device) + offset
    self_index = torch.cat([idx, idx + n])
    pos_index = torch.cat([idx + n, idx])
    rows = torch.arange(2 * b, device=z1.device)
    self_mask = torch.zeros_like(logits, dtype=torch.bool)
    self_mask[rows, self_index] = True
    logits = logits.masked_fill(self_mask, float("-inf"))
    return F.cross_entropy(logits, pos_index)
