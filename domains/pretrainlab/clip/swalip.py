"""SwALIP (Fini et al. 2023, Sec. 3 "baselines"; reference ``losses.SwALIPLoss``): SwAV's swapped
prediction (Caron et al. 2020, Eq. 1-3) ACROSS modalities on the augmented pairs. The scores of
augmented image ``a`` against the batch of augmented text ``b`` (cosines of the MLP projections)
are turned into codes by Sinkhorn-Knopp (epsilon 0.05, 3 iterations); the prediction of pair
``(a, b)`` (scaled by the MLP branch's ``t_h``) is trained on the codes of the swapped pair
``(1 - a, 1 - b)``; both directions; weight 0.2 on top of the CLIP-rocket loss (label smoothing 0).
Requires exactly two augmented pairs (the swap).

Deviation: the "prototypes" are the other modality's batch embeddings, as in the reference code
(not SwAV's 3000 learned prototypes); under DDP the other modality is gathered from every rank.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pretrainlab.core.distributed import all_gather_with_grad, is_distributed
from pretrainlab.core.losses import sinkhorn_knopp
from pretrainlab.core.losses._precision import float32_loss


@float32_loss
def swalip_loss(h_images: Sequence[Tensor], h_texts: Sequence[Tensor], h_logit_scale: Tensor | float,
                epsilon: float = 0.05, iterations: int = 3, gather: bool = True) -> Tensor:
    """Swapped cross-modal assignment loss over 2 augmented pairs of ``(B, D)`` MLP projections."""
    if len(h_images) != 2 or len(h_texts) != 2:
        raise ValueError("swalip_loss needs exactly two augmented images and two augmented texts")
    hi = [F.normalize(h.float(), dim=-1) for h in h_images]
    ht = [F.normalize(h.float(), dim=-1) for h in h_texts]
    if gather and is_distributed():
        hi_all = [all_gather_with_grad(h) for h in hi]
        ht_all = [all_gather_with_grad(h) for h in ht]
    else:
        hi_all, ht_all = hi, ht
    s_img = [[hi[a] @ ht_all[b].t() for b in range(2)] for a in range(2)]  # (B, B_total)
    s_txt = [[ht[a] @ hi_all[b].t() for b in range(2)] for a in range(2)]
    with torch.no_grad():
        q_img = [[sinkhorn_knopp(s, epsilon, iterations, gather=gather) for s in row] for row in s_img]
        q_txt = [[sinkhorn_knopp(s, epsilon, iterations, gather=gather) for s in row] for row in s_txt]
    loss = s_img[0][0].new_zeros(())
    for a in range(2):
        for b in range(2):
            ce_i = -(q_img[1 - a][1 - b] * F.log_softmax(s_img[a][b] * h_logit_scale, dim=1)).sum(1).mean()
            ce_t = -(q_txt[1 - a][1 - b] * F.log_softmax(s_txt[a][b] * h_logit_scale, dim=1)).sum(1).mean()
            loss = loss + (ce_i + ce_t) / 2
    return loss / 4
