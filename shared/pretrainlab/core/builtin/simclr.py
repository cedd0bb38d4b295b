"""SimCLR (Chen et al., 2020, "A Simple Framework for Contrastive Learning of Visual
Representations") on generated shapes: the core's built-in recipe.

Two views per image (random resized crop + flip, colour jitter, grayscale, blur; Sec. 3 and
Appendix A), a small CNN encoder, a 2-layer MLP projector and NT-Xent (Eq. 1) with temperature
0.5 (the paper's CIFAR-10 setting, Appendix B.9). Deviation: a 4-block CNN on 32x32 images
instead of ResNet-50, and the LARS batch-4096 schedule replaced by AdamW at toy scale.
"""

from __future__ import annotations

import torch
from torch import nn

from pretrainlab.core.augment import random_resized_crop, simclr_view
from pretrainlab.core.builtin.config import SimCLRConfig
from pretrainlab.core.losses import nt_xent
from pretrainlab.core.train import Task


class SmallConvNet(nn.Module):
    """4 conv blocks (conv-BN-ReLU, stride 2 from the second) + global average pool: (B,3,H,W) -> (B,feat_dim)."""

    def __init__(self, width: int = 32, feat_dim: int = 128) -> None:
        super().__init__()
        chans = [3, width, width * 2, width * 4, width * 4]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                       nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(chans[-1], feat_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).mean(dim=(2, 3)))


class SimCLRTask(Task):
    """batch ``{"image": (B,3,H,W)}`` -> ``{"loss"}``: two augmented views, NT-Xent on the projections."""

    def __init__(self, cfg: SimCLRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        m = cfg.model
        self.encoder = SmallConvNet(m.width, m.feat_dim)
        self.projector = nn.Sequential(nn.Linear(m.feat_dim, m.feat_dim), nn.ReLU(inplace=True), nn.Linear(m.feat_dim, m.proj_dim))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["image"]
        lc = self.cfg.loss
        size = self.cfg.data.image_size
        with torch.no_grad():
            v1 = simclr_view(x, size, (lc.crop_scale_min, 1.0), lc.jitter, lc.blur_p)
            v2 = simclr_view(x, size, (lc.crop_scale_min, 1.0), lc.jitter, lc.blur_p)
        z = self.projector(self.encoder(torch.cat([v1, v2])))
        z1, z2 = z.chunk(2)
        loss = nt_xent(z1, z2, temperature=lc.temperature)
        return {"loss": loss}


class ClassifierTask(Task):
    """Fine-tuning: the encoder plus a linear classifier, cross-entropy on labelled images
    ``{"image", "label"}`` with the same random crop + flip as pre-training (no colour jitter)."""

    def __init__(self, cfg: SimCLRConfig, n_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = SmallConvNet(cfg.model.width, cfg.model.feat_dim)
        self.head = nn.Linear(cfg.model.feat_dim, n_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            x = random_resized_crop(batch["image"], self.cfg.data.image_size, scale=(0.5, 1.0), hflip_p=0.5)
        logits = self.head(self.encoder(x))
        loss = nn.functional.cross_entropy(logits, batch["label"])
        return {"loss": loss, "acc": (logits.argmax(-1) == batch["label"]).float().mean()}
