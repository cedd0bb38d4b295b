"""The pre-training Task of the CLIP domain: CLIP, its SSL "baselines" and the CLIP-rocket recipe
(Fini et al. 2023, "Improved baselines for vision-language pre-training", TMLR).

``method.objective``:

* ``clip``   CLIP (Radford et al. 2021): symmetric InfoNCE on the global pair, learnable temperature.
* ``slip``   CLIP + SimCLR on two image views (:mod:`pretrainlab.clip.slip`).
* ``rocket`` the improved recipe: global pair + ``num_augs`` augmented pairs, separate MLP projectors
  with their own temperature, label smoothing, text augmentation (:mod:`pretrainlab.clip.rocket`).
* ``barlip`` / ``byolip`` / ``swalip``: the CLIP-rocket loss + a cross-modal Barlow Twins / BYOL /
  SwAV term (as the reference code builds them on ``CL2L``).

Batch: ``{"image": (B, 3, S, S) uint8, "text": (B, T, L) long}`` with ``T = 1`` (clip / slip) or
``1 + num_augs`` (global caption first). Image views are made here, batched, on the device.
The open_clip model sits at ``self.clip`` so ``clip.*`` weights load into plain open_clip.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pretrainlab.clip.barlip import barlip_loss
from pretrainlab.clip.byolip import byolip_loss
from pretrainlab.clip.config import ClipConfig, ImageAugConfig
from pretrainlab.clip.projectors import (
    image_features,
    image_width,
    mlp_projector,
    project_image,
    project_text,
    text_features,
    text_width,
)
from pretrainlab.clip.rocket import rocket_loss
from pretrainlab.clip.slip import slip_ssl_loss
from pretrainlab.clip.swalip import swalip_loss
from pretrainlab.core import augment
from pretrainlab.core.ema import ema_update, frozen_copy
from pretrainlab.core.schedules import cosine_momentum
from pretrainlab.core.train import Task

AUG_PAIR_OBJECTIVES = ("rocket", "barlip", "byolip", "swalip")


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` -> float in [0, 1] (float inputs pass through)."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


@torch.no_grad()
def global_view(x: torch.Tensor, size: int, a: ImageAugConfig) -> torch.Tensor:
    """The global image: RandomResizedCrop(scale ``a.global_scale``) only. ``(B,3,S,S)`` in [0, 1]."""
    return augment.random_resized_crop(x, size, scale=a.global_scale)


@torch.no_grad()
def augmented_view(x: torch.Tensor, size: int, a: ImageAugConfig) -> torch.Tensor:
    """An augmented image: crop (0.08-1) + flip, colour jitter (p 0.8), grayscale (p 0.2), blur (p 0.5)."""
    v = augment.random_resized_crop(x, size, scale=a.aug_scale, hflip_p=a.hflip_p)
    v = augment.color_jitter(v, *a.jitter, p=a.jitter_p)
    v = augment.random_grayscale(v, a.grayscale_p)
    if a.blur_p > 0:
        v = augment.gaussian_blur(v, a.blur_p, a.blur_sigma, kernel=max(3, (size // 10) | 1))
    return v


class CLIPRocketTask(Task):
    """CLIP / SLIP / BarLIP / BYOLIP / SwALIP / CLIP-rocket on an open_clip model."""

    def __init__(self, cfg: ClipConfig) -> None:
        super().__init__()
        from pretrainlab.clip.models import register_domain_configs
        from pretrainlab.core.openclip import create_clip, image_size, load_clip_weights

        register_domain_configs()

        self.cfg = cfg
        m, meth = cfg.model, cfg.method
        self.clip, self.tokenizer = create_clip(m.name)
        if m.init:
            load_clip_weights(self.clip, m.init)
        self.image_size = image_size(self.clip)
        a = cfg.image_aug  # normalisation constants as (non-persistent) buffers: no host copy per step
        self.register_buffer("img_mean", torch.tensor(a.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("img_std", torch.tensor(a.std).view(1, -1, 1, 1), persistent=False)
        self.objective = meth.objective
        self.uses_aug_pairs = meth.objective in AUG_PAIR_OBJECTIVES
        wi, wt = image_width(self.clip), text_width(self.clip)
        d = int(project_text(self.clip, torch.zeros(1, wt)).shape[-1])
        self.embed_dim = d
        if meth.objective == "swalip" and meth.num_augs != 2:
            raise ValueError("SwALIP needs method.num_augs = 2 (the swapped pairs)")
        if self.uses_aug_pairs:
            self.mlp_image = mlp_projector(wi, m.mlp_hidden, d)
            self.mlp_text = mlp_projector(wt, m.mlp_hidden, d)
            self.mlp_logit_scale = nn.Parameter(torch.tensor(math.log(m.mlp_logit_scale_init)))
        if meth.objective == "slip":
            self.slip_mlp = mlp_projector(wi, m.mlp_hidden, meth.slip_out_dim)
        if meth.objective == "barlip":
            self.bt_image = mlp_projector(wi, meth.barlip_dim, meth.barlip_dim, last_bn=True)
            self.bt_text = mlp_projector(wt, meth.barlip_dim, meth.barlip_dim, last_bn=True)
        if meth.objective == "byolip":
            self.byol_proj_image = mlp_projector(wi, meth.byolip_hidden, meth.byolip_dim, layers=2)
            self.byol_proj_text = mlp_projector(wt, meth.byolip_hidden, meth.byolip_dim, layers=2)
            self.byol_pred_image = mlp_projector(meth.byolip_dim, meth.byolip_hidden, meth.byolip_dim, layers=2)
            self.byol_pred_text = mlp_projector(meth.byolip_dim, meth.byolip_hidden, meth.byolip_dim, layers=2)
            self.target = frozen_copy(self._online())

    # ------------------------------------------------------------------ helpers
    def _online(self) -> nn.ModuleDict:
        return nn.ModuleDict({"clip": self.clip, "proj_image": self.byol_proj_image, "proj_text": self.byol_proj_text})

    @property
    def num_texts(self) -> int:
        return 1 + self.cfg.method.num_augs if self.uses_aug_pairs else 1

    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale.exp().clamp(max=self.cfg.model.logit_scale_max)

    def h_logit_scale(self) -> torch.Tensor:
        return self.mlp_logit_scale.exp().clamp(max=self.cfg.model.logit_scale_max)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Evaluation preprocessing: uint8 / [0, 1] ``(B, 3, S, S)`` -> normalised model input."""
        x = to_unit(images)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False).clamp(0, 1)
        return (x - self.img_mean) / self.img_std

    # ------------------------------------------------------------------ encoders (evaluation)
    def encode_image(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(B, 3, S, S)`` -> ``{"z": linear projection, "h": MLP projection (rocket family), "feats"}``."""
        f = image_features(self.clip, self.prepare(images))
        out = {"feats": f, "z": project_image(self.clip, f)}
        if self.uses_aug_pairs:
            out["h"] = self.mlp_image(f)
        return out

    def encode_text(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        f = text_features(self.clip, tokens)
        out = {"feats": f, "z": project_text(self.clip, f)}
        if self.uses_aug_pairs:
            out["h"] = self.mlp_text(f)
        return out

    # ------------------------------------------------------------------ training
    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        meth, a = self.cfg.method, self.cfg.image_aug
        x = to_unit(batch["image"])
        tokens = batch["text"]
        if tokens.dim() == 2:
            tokens = tokens[:, None]
        b, s = x.shape[0], self.image_size
        n_aug = meth.num_augs if self.uses_aug_pairs else (2 if self.objective == "slip" else 0)
        with torch.no_grad():
            views = [global_view(x, s, a)] + [augmented_view(x, s, a) for _ in range(n_aug)]
            imgs = (torch.cat(views) - self.img_mean) / self.img_std
        fi = image_features(self.clip, imgs).split(b)  # 1 + n_aug tensors (B, Wi)
        n_txt = 1 + (meth.num_augs if self.uses_aug_pairs else 0)
        if tokens.shape[1] < n_txt:
            raise ValueError(f"batch has {tokens.shape[1]} caption(s) per sample, {self.objective} needs {n_txt}")
        ft = text_features(self.clip, tokens[:, :n_txt].transpose(0, 1).reshape(n_txt * b, -1)).split(b)
        z_img, z_txt = project_image(self.clip, fi[0]), project_text(self.clip, ft[0])
        scale = self.logit_scale()
        out: dict[str, torch.Tensor] = {}
        if self.uses_aug_pairs:
            h_img = [self.mlp_image(f) for f in fi[1:]]  # BN statistics per view, as the reference
            h_txt = [self.mlp_text(f) for f in ft[1:]]
            h_scale = self.h_logit_scale()
            r = rocket_loss(z_img, z_txt, h_img, h_txt, scale, h_scale, meth.label_smoothing)
            out.update(loss_clip=r["loss"], loss_global=r["loss_global"], loss_aug=r["loss_aug"])
            total = r["loss"]
            out["h_logit_scale"] = h_scale.detach()
        else:
            from pretrainlab.core.losses import clip_loss

            total = clip_loss(z_img, z_txt, scale)
            out["loss_clip"] = total
        if self.objective == "slip":
            ssl = slip_ssl_loss(self.slip_mlp(fi[1]), self.slip_mlp(fi[2]), meth.slip_temperature)
            out["loss_simclr"] = ssl
            total = total + meth.slip_scale * ssl
        elif self.objective == "barlip":
            ssl = barlip_loss(self.bt_image(fi[0]), self.bt_text(ft[0]), [self.bt_image(f) for f in fi[1:]],
                              [self.bt_text(f) for f in ft[1:]], meth.barlip_lambda, meth.barlip_scale)
            out["loss_barlip"] = ssl
            total = total + ssl
        elif self.objective == "byolip":
            with torch.no_grad():
                tgt = self.target
                ti = image_features(tgt["clip"], imgs).split(b)
                tt = text_features(tgt["clip"], tokens[:, :n_txt].transpose(0, 1).reshape(n_txt * b, -1)).split(b)
                ti = [tgt["proj_image"](f) for f in ti]
                tt = [tgt["proj_text"](f) for f in tt]
            pi = [self.byol_pred_image(self.byol_proj_image(f)) for f in fi]
            pt = [self.byol_pred_text(self.byol_proj_text(f)) for f in ft]
            ssl = byolip_loss(pi[0], pt[0], ti[0], tt[0], pi[1:], pt[1:], ti[1:], tt[1:])
            out["loss_byolip"] = ssl
            total = total + ssl
        elif self.objective == "swalip":
            ssl = swalip_loss(h_img, h_txt, h_scale, meth.swalip_epsilon, meth.swalip_iterations)
            out["loss_swalip"] = ssl
            total = total + meth.swalip_weight * ssl
        out["loss"] = total
        out["logit_scale"] = scale.detach()
        return out

    def on_step_end(self, step: int, max_steps: int) -> None:
        if self.objective == "byolip":
            m = cosine_momentum(step, max_steps, self.cfg.method.byolip_momentum, 1.0)
            ema_update(self.target, self._online(), m)
