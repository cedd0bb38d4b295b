"""Geocell classification with haversine label smoothing and auxiliary heads (PIGEON Sec. 3.3-3.5).

``GeolocationTask`` holds the CLIP model, the heads and, as buffers, the geocell centroids
``(K, 2)`` and the regression standardisation, so a checkpoint alone can predict locations.
Batch: ``{"image": (B,3,S,S) or panoramas (B,V,3,S,S) uint8, "latlon": (B,2), "cell": (B,), "climate": (B,) (-1 = missing),
"month": (B,) (-1 = missing), "regression": (B,6) (NaN = missing)}``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pretrainlab.core.train import Task
from pretrainlab.geo.config import GeoConfig
from pretrainlab.geo.formats import REGRESSIONS
from pretrainlab.geo.haversine_smoothing import haversine_smoothing_loss
from pretrainlab.geo.model import GeoHeads, apply_freezing, build_clip, embed_dim, image_embedding


class GeolocationTask(Task):
    """``forward(batch) -> {"loss", "geocell", "climate", "month", "regression"}``."""

    def __init__(self, cfg: GeoConfig, n_cells: int | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        k = n_cells or cfg.n_cells
        if k <= 0:
            raise ValueError("GeolocationTask needs the number of geocells (cfg.n_cells)")
        self.clip, _ = build_clip(cfg.model)
        self.heads = GeoHeads(embed_dim(self.clip), k)
        self.register_buffer("centroids", torch.zeros(k, 2))
        self.register_buffer("reg_mean", torch.zeros(len(REGRESSIONS)))
        self.register_buffer("reg_std", torch.ones(len(REGRESSIONS)))
        apply_freezing(self.clip, cfg.model)
        # parameters the loss never reaches stay frozen (DDP requires every trainable one to get a gradient):
        # the token-mean embedding bypasses the CLIP projection; disabled auxiliary heads are unused
        v = self.clip.visual
        if hasattr(v, "transformer") and isinstance(getattr(v, "proj", None), torch.nn.Parameter):
            v.proj.requires_grad_(False)
        if not cfg.aux.enabled:
            for head in (self.heads.climate, self.heads.month, self.heads.regression):
                head.requires_grad_(False)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` -> ``(B, D)`` PIGEON embedding."""
        return image_embedding(self.clip, images)

    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        emb = self.embed(images)
        out = self.heads(emb)
        out["embedding"] = emb
        return out

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.predict(batch["image"])
        logits = out["geocell"]
        lc = self.cfg.loss
        if lc.haversine_smoothing:
            geo = haversine_smoothing_loss(logits, batch["latlon"], self.centroids, lc.tau_km, batch["cell"],
                                           lc.reference, lc.normalize)
        else:
            geo = F.cross_entropy(logits.float(), batch["cell"])
        losses = {"geocell": geo}
        total = geo
        if self.cfg.aux.enabled:
            a = self.cfg.aux
            clim = batch["climate"]
            mon = batch["month"]
            lcl = F.cross_entropy(out["climate"].float(), clim, ignore_index=-1)
            lmo = F.cross_entropy(out["month"].float(), mon, ignore_index=-1)
            # rows without any label give NaN in cross_entropy: replace by 0 (no host sync)
            lcl = torch.nan_to_num(lcl, nan=0.0)
            lmo = torch.nan_to_num(lmo, nan=0.0)
            target = (batch["regression"].float() - self.reg_mean) / self.reg_std
            mask = torch.isfinite(target)
            diff = torch.where(mask, out["regression"].float() - torch.nan_to_num(target), torch.zeros_like(target))
            lre = (diff ** 2).sum() / mask.sum().clamp(min=1)
            losses.update(climate=lcl, month=lmo, regression=lre)
            total = total + a.climate_weight * lcl + a.month_weight * lmo + a.regression_weight * lre
        losses["loss"] = total
        return losses
