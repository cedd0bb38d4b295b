"""The CLIP-rocket loss ("CL2L" in the reference code): one global pair + augmented pairs.

Fini et al. 2023, Sec. 4 (improved recipe); a line-by-line port of the reference ``losses.CL2LLoss``
(and of ``losses.CLIPLoss``, which is the same without augmented pairs):

* every embedding is L2-normalised; under DDP the other ranks' embeddings are gathered with
  ``utils.all_gather_batch`` (NO gradient; ``gather_with_grad=True`` uses open_clip's
  ``--gather-with-grad`` instead) and each rank scores its local rows against all columns with labels
  ``arange(B) + rank * B``;
* global pair: ``CE(t * z_i @ z_t_all.T)`` and ``CE(t * z_t @ z_i_all.T)`` on the LINEAR projections
  with the learnable temperature ``t`` (init 1/0.07), no label smoothing;
* augmented pairs: for every (augmented image ``a``, augmented text ``b``) the same two
  cross-entropies on the MLP projections with their own temperature ``t_h`` (init 1/0.1) and label
  smoothing 0.1, averaged over the ``A x A`` pairs per direction;
* per direction ``(L_global + A * L_aug) / (1 + A)``, the two directions averaged, times 2 when
  ``loss_avg_or_sum == "sum"`` (ref ``--loss-avg-or-sum``; CC12M / YFCC15M runs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from pretrainlab.core.distributed import all_gather_with_grad, is_distributed, rank, world_size
from pretrainlab.core.losses._precision import float32_loss


def all_gather_batch(x: Tensor) -> Tensor:
    """ref ``utils.all_gather_batch``: ``(B, D)`` -> ``(world * B, D)`` without gradient (identity, with
    its gradient, in a single process, as the reference)."""
    if not is_distributed() or world_size() == 1:
        return x
    out = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(out, x.detach().contiguous())
    return torch.cat(out, dim=0)


def gather(x: Tensor, with_grad: bool) -> Tensor:
    return all_gather_with_grad(x) if with_grad else all_gather_batch(x)


@float32_loss
def rocket_loss(z_image: Tensor, z_text: Tensor, h_images: Sequence[Tensor] = (), h_texts: Sequence[Tensor] = (),
                logit_scale: Tensor | float = 1 / 0.07, h_logit_scale: Tensor | float = 10.0,
                label_smoothing: float = 0.1, loss_avg_or_sum: str = "avg",
                gather_with_grad: bool = False) -> dict[str, Tensor]:
    """CLIP-rocket objective (CLIP's when ``h_images`` is empty).

    Args:
        z_image, z_text: ``(B, D)`` linear projections of the global pair.
        h_images, h_texts: ``A`` tensors ``(B, D)`` each, MLP projections of the augmented pairs.
        logit_scale, h_logit_scale: exponentiated temperatures of the two branches.
        label_smoothing: on the augmented terms (CLIP-rocket: 0.1).
        loss_avg_or_sum: ``"sum"`` doubles the loss (ref ``--loss-avg-or-sum``).
        gather_with_grad: gather the other ranks' embeddings with gradient (open_clip) instead of without (ref).

    Returns:
        ``{"loss", "loss_global", "loss_aug"?}`` scalars (float32).
    """
    a = len(h_images)
    if len(h_texts) != a:
        raise ValueError(f"rocket_loss needs as many augmented texts as images, got {len(h_texts)} and {a}")
    b = z_image.shape[0]
    labels = torch.arange(b, device=z_image.device) + (rank() * b if is_distributed() else 0)
    zi, zt = F.normalize(z_image.float(), dim=-1), F.normalize(z_text.float(), dim=-1)
    zi_all, zt_all = gather(zi, gather_with_grad), gather(zt, gather_with_grad)
    li_g = F.cross_entropy(logit_scale * zi @ zt_all.t(), labels)
    lt_g = F.cross_entropy(logit_scale * zt @ zi_all.t(), labels)
    out: dict[str, Tensor] = {"loss_global": (li_g + lt_g) / 2}
    li_l = lt_l = zi.new_zeros(())
    if a:
        hi = [F.normalize(h.float(), dim=-1) for h in h_images]
        ht = [F.normalize(h.float(), dim=-1) for h in h_texts]
        hi_all = [gather(h, gather_with_grad) for h in hi]
        ht_all = [gather(h, gather_with_grad) for h in ht]
        img_logits = [h_logit_scale * h @ ht_all[j].t() for j in range(a) for h in hi]
        txt_logits = [h_logit_scale * h @ hi_all[j].t() for j in range(a) for h in ht]
        li_l = sum(F.cross_entropy(x, labels, label_smoothing=label_smoothing) for x in img_logits) / len(img_logits)
        lt_l = sum(F.cross_entropy(x, labels, label_smoothing=label_smoothing) for x in txt_logits) / len(txt_logits)
        out["loss_aug"] = (li_l + lt_l) / 2
    loss = ((li_g + a * li_l) / (1 + a) + (lt_g + a * lt_l) / (1 + a)) / 2
    out["loss"] = loss * (2 if loss_avg_or_sum == "sum" else 1)
    return out
