"""SwAV contrastive pre-training on CT slices, with the CT paper's settings (Wolf et al. 2024,
Sec. Pre-training; reference: facebookresearch/swav ``main_swav.py`` as configured in
``Less_is_More``): ResNet-50, projection MLP 2048 -> 128, 500 prototypes, temperature 0.1,
Sinkhorn epsilon 0.05 with 3 iterations, codes from crops 0 and 1, no queue, multi-crop 2 x 224
(scale 0.9-1.0) + 6 x 96 (scale 0.1-0.33), ColorJitter(0.4, 0.4, 0.2, 0.2) p 0.8, grayscale
p 0.2, Gaussian blur p 0.5 (sigma 0.1-2), no flips, mean / std 0.1806 / 0.1907; LARS (pl_bolts),
batch 128, lr 0.15 with the reference's schedule and prototype freezing (``pretraining``).

Implementation notes: augmentations run batched on the device (``pretrainlab.core.augment``) on
the 1-channel slice, which is then stacked to 3 channels: saturation / hue jitter and grayscale
are no-ops on a gray image stacked to RGB, exactly as in the reference. Prototype weights are
L2-normalised before every forward pass (reference); while frozen, the scores use detached
prototypes so the prototypes get no gradient (the reference sets ``p.grad = None``).
Deviation: fp16 in the reference; bf16 autocast here (losses in float32).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pretrainlab.core.augment import color_jitter, gaussian_blur, random_resized_crop
from pretrainlab.core.losses import swav_loss
from pretrainlab.core.train import Task
from pretrainlab.ct.config import CTConfig, SwAVConfig
from pretrainlab.ct.resnet import build_backbone, to_input


def multi_crop(x: torch.Tensor, s: SwAVConfig) -> list[torch.Tensor]:
    """SwAV multi-crop of a batch of slices.

    Args:
        x: ``(B, 1, H, W)`` float in [0, 1].

    Returns:
        ``nmb_crops[0]`` global crops ``(B, 1, size_crops[0], size_crops[0])`` then ``nmb_crops[1]``
        local crops at ``size_crops[1]``, each augmented independently (no flips).
    """
    crops = []
    for i, (n, size) in enumerate(zip(s.nmb_crops, s.size_crops)):
        for _ in range(n):
            v = random_resized_crop(x, size, scale=(s.min_scale_crops[i], s.max_scale_crops[i]), hflip_p=0.0)
            v = color_jitter(v, s.jitter[0], s.jitter[1], s.jitter[2], s.jitter[3], p=s.jitter_p)
            v = gaussian_blur(v, p=s.blur_p, sigma=s.blur_sigma, kernel=max(3, (size // 10) | 1))
            crops.append(v)
    return crops


class ProjectionHead(nn.Module):
    """SwAV head: ``Linear(D, hidden) -> BN -> ReLU -> Linear(hidden, feat_dim)``, L2-normalised."""

    def __init__(self, dim: int, hidden: int, out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(h), dim=1)


class SwAVTask(Task):
    """batch ``{"image": (B, 1, H, W) uint8}`` -> ``{"loss", "swav"}``.

    ``freeze_prototypes_steps``: the prototypes get no gradient before this optimizer step (the
    reference's ``freeze_prototypes_epochs`` times the iterations per epoch); ``lr_fn(step) -> lr``
    is the reference schedule (``pretraining.swav_lr``), applied through ``lr_scale``.
    """

    def __init__(self, cfg: CTConfig, freeze_prototypes_steps: int = 0, lr_fn: Any = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone, dim = build_backbone(cfg.model)
        self.head = ProjectionHead(dim, cfg.model.hidden_mlp, cfg.model.feat_dim)
        self.prototypes = nn.Linear(cfg.model.feat_dim, cfg.ssl.nmb_prototypes, bias=False)
        self.freeze_prototypes_steps = freeze_prototypes_steps
        self.lr_fn = lr_fn

    def lr_scale(self, group: str, step: int) -> float:
        return 1.0 if self.lr_fn is None else float(self.lr_fn(step)) / self.cfg.train.lr

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        s = self.cfg.ssl
        x = batch["image"]
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        with torch.no_grad():
            crops = multi_crop(x, s)
            w = self.prototypes.weight
            w.copy_(F.normalize(w, dim=1))  # ref: normalise the prototypes before every step
        b = x.shape[0]
        feats = []
        start = 0
        for n in s.nmb_crops:  # crops of the same resolution through the backbone together (ref)
            if n == 0:
                continue
            group = torch.cat(crops[start:start + n])
            group = to_input(group, s.norm_mean, s.norm_std).contiguous(memory_format=torch.channels_last)
            feats.append(self.backbone(group))
            start += n
        z = self.head(torch.cat(feats))
        proto = self.prototypes.weight
        if self.step_index < self.freeze_prototypes_steps:
            proto = proto.detach()  # ref: on_after_backward sets the prototypes' grad to None
        scores = z @ proto.t()
        loss = swav_loss(list(scores.split(b)), assign_crops=tuple(s.assign_crops), temperature=s.temperature,
                         epsilon=s.epsilon, iterations=s.sinkhorn_iterations)
        return {"loss": loss, "swav": loss.detach()}
