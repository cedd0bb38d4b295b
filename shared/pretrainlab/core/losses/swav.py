"""SwAV swapped-prediction loss with Sinkhorn-Knopp codes.

Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments",
Sec. 3.1: codes ``Q`` are computed online by the Sinkhorn-Knopp algorithm (Eq. 3, Appendix A.1)
from the prototype scores ``z^T C``, and the loss (Eq. 1-2) predicts the code of one view from the
scores of another: ``l(z_t, q_s) = - sum_k q_s^(k) log softmax(z_t^T c_k / tau)``. Multi-crop
(Sec. 3.2): codes are computed only for the ``assign_crops`` (the two high-resolution crops) and
predicted from every other crop.

This follows the reference code (facebookresearch/swav ``main_swav.py``): ``distributed_sinkhorn``
and the averaging ``loss = mean_{assign crop} [ mean_{other crops} subloss ]``.

Caller's responsibilities (as in the reference code, not done here):
  * L2-normalise the prototype weights before each forward pass
    (``w.data = F.normalize(w.data, dim=1)``) and the embeddings, so the scores are cosines;
  * freeze the prototypes (zero their gradient) for the first iterations
    (``freeze_prototypes_niters``, one epoch in the CT paper's setup);
  * the optional feature queue (not implemented here; the CT paper uses none).

Deviations: the exponent is shifted by the global maximum score before ``exp`` (mathematically
identical after the global normalisation, avoids overflow with small ``epsilon``); float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from pretrainlab.core.distributed import is_distributed, world_size
from pretrainlab.core.losses._precision import float32_loss


@torch.no_grad()
@float32_loss
def sinkhorn_knopp(
    scores: Tensor,
    epsilon: float = 0.05,  # SwAV Sec. 4 / reference code default epsilon = 0.05
    iterations: int = 3,  # SwAV Sec. 3.1: "3 iterations"
    gather: bool = True,
) -> Tensor:
    """Sinkhorn-Knopp equipartition of prototype scores (no gradient).

    Args:
        scores: ``(B, K)`` prototype scores of the samples on this rank.
        epsilon: entropy regularisation (the exponent is ``scores / epsilon``).
        iterations: number of row / column normalisation rounds.
        gather: under torch.distributed, the sums run over every rank's samples (the
            reference's ``distributed_sinkhorn``): the equipartition is over the global batch.

    Returns:
        ``(B, K)`` soft codes; each row sums to 1, each prototype column sums to ``B_total / K``
        over the (global) batch after the last row step, up to the final column normalisation.
    """
    distributed = gather and is_distributed()
    s = scores.detach().float() / epsilon
    m = s.max()
    if distributed:
        dist.all_reduce(m, op=dist.ReduceOp.MAX)
    q = torch.exp(s - m).t()  # (K, B)
    b_total = q.shape[1] * (world_size() if distributed else 1)
    k = q.shape[0]
    sum_q = q.sum()
    if distributed:
        dist.all_reduce(sum_q)
    q = q / sum_q
    for _ in range(iterations):
        # each prototype row must total 1/K
        sum_rows = q.sum(dim=1, keepdim=True)
        if distributed:
            dist.all_reduce(sum_rows)
        q = q / sum_rows / k
        # each sample column must total 1/B
        q = q / q.sum(dim=0, keepdim=True) / b_total
    q = q * b_total  # columns sum to 1: an assignment
    return q.t()


@float32_loss
def swav_loss(
    scores: Sequence[Tensor],
    assign_crops: tuple[int, ...] = (0, 1),  # SwAV: codes from the two 224 px crops
    temperature: float = 0.1,  # SwAV Sec. 4 / CT paper: tau = 0.1
    epsilon: float = 0.05,  # SwAV reference code default
    iterations: int = 3,  # SwAV Sec. 3.1
) -> Tensor:
    """Swapped prediction over multi-crop prototype scores.

    Args:
        scores: one ``(B, K)`` tensor per crop (same ``B`` for all): cosine scores between the
            normalised embeddings and the normalised prototypes.
        assign_crops: indices of the crops whose Sinkhorn codes are the targets.
        temperature: softmax temperature of the prediction.
        epsilon: Sinkhorn entropy regularisation.
        iterations: Sinkhorn iterations.

    Returns:
        Scalar ``mean_{s in assign_crops} mean_{t != s} -mean_b sum_k q_s log softmax(z_t / tau)``.
    """
    n_crops = len(scores)
    if n_crops < 2:
        raise ValueError(f"swav_loss needs at least 2 crops, got {n_crops}")
    for c in assign_crops:
        if not 0 <= c < n_crops:
            raise ValueError(f"assign crop {c} out of range for {n_crops} crops")
    log_p = [F.log_softmax(s.float() / temperature, dim=1) for s in scores]
    loss = scores[0].new_zeros((), dtype=torch.float32)
    for c in assign_crops:
        q = sinkhorn_knopp(scores[c], epsilon=epsilon, iterations=iterations)
        sub = scores[0].new_zeros((), dtype=torch.float32)
        for v in range(n_crops):
            if v == c:
                continue
            sub = sub - (q * log_p[v]).sum(dim=1).mean()
        loss = loss + sub / (n_crops - 1)
    return loss / len(assign_crops)
