"""Symmetric CLIP contrastive loss.

Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision",
Sec. 2.3 and Figure 3 (numpy-like pseudocode): ``logits = exp(t) * I_e @ T_e.T``;
``loss = (CE(logits, labels, axis=0) + CE(logits, labels, axis=1)) / 2``.

Distributed behaviour follows open_clip's ``ClipLoss`` with ``local_loss=True`` and
``gather_with_grad=True``: both sides are all-gathered with gradient, each rank scores its local
rows against the global columns, and the labels are ``arange(B) + rank * B``.

Deviations: optional label smoothing (``F.cross_entropy(label_smoothing=...)``; the paper uses
none, default 0); the loss is computed in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pretrainlab.core.distributed import all_gather_with_grad, is_distributed, rank
from pretrainlab.core.losses._precision import float32_loss


@float32_loss
def clip_loss(
    image: Tensor,
    text: Tensor,
    logit_scale: Tensor | float,
    label_smoothing: float = 0.0,  # CLIP uses no smoothing
    gather: bool = True,
    normalize: bool = True,
) -> Tensor:
    """Symmetric InfoNCE between paired image and text embeddings.

    Args:
        image: ``(B, D)`` image embeddings (row ``i`` pairs with ``text[i]``).
        text: ``(B, D)`` text embeddings.
        logit_scale: the multiplier ``exp(t)`` (already exponentiated), tensor or float. CLIP
            initialises ``t = log(1 / 0.07)`` and clips ``exp(t)`` at 100 (the caller's job).
        label_smoothing: label smoothing of both cross-entropies.
        gather: under torch.distributed, use every rank's pairs as negatives (with gradient).
        normalize: L2-normalise the embeddings so the logits are scaled cosines.

    Returns:
        Scalar ``(CE(image->text) + CE(text->image)) / 2``.
    """
    if image.shape != text.shape or image.dim() != 2:
        raise ValueError(f"clip_loss expects two (B, D) tensors of the same shape, got {tuple(image.shape)} and {tuple(text.shape)}")
    img = image.float()
    txt = text.float()
    if normalize:
        img = F.normalize(img, dim=-1)
        txt = F.normalize(txt, dim=-1)
    scale = logit_scale.float() if isinstance(logit_scale, Tensor) else float(logit_scale)
    b = img.shape[0]
    if gather and is_distributed():
        all_img = all_gather_with_grad(img)
        all_txt = all_gather_with_grad(txt)
        offset = rank() * b
    else:
        all_img, all_txt = img, txt
        offset = 0
    logits_per_image = scale * img @ all_txt.t()  # (B, world * B)
    logits_per_text = scale * txt @ all_img.t()  # (B, world * B)
    labels = torch.arange(b, device=img.device) + offset
    li = F.cross_entropy(logits_per_image, labels, label_smoothing=label_smoothing)
    lt = F.cross_entropy(logits_per_text, labels, label_smoothing=label_smoothing)
    return (li + lt) / 2
