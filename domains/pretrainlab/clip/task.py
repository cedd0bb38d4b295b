"""The pre-training Task of the CLIP domain: CLIP, its SSL "baselines" and the CLIP-rocket recipe
(Fini et al. 2023, "Improved baselines for vision-language pre-training", TMLR; reference code
facebookresearch/clip-rocket, ``models.py`` / ``losses.py`` / ``main.py``).

``method.objective``:

* ``clip``   CLIP: the symmetric InfoNCE on the global pair (ref ``losses.CLIPLoss``).
* ``slip``   CLIP + SimCLR on two image views (:mod:`pretrainlab.clip.slip`).
* ``rocket`` the improved recipe: global pair + ``num_augs`` augmented pairs, separate MLP projectors
  with their own temperature, label smoothing, text augmentation and text dropout on the augmented
  captions (:mod:`pretrainlab.clip.rocket`; ref ``models.CL2L`` with ``--separate-proj``).
* ``barlip`` / ``byolip`` / ``swalip``: the CLIP-rocket loss + a cross-modal Barlow Twins / SiamLIP-BYOL /
  SwAV term (ref ``models.BARLIP`` / ``SIAMLIP``, ``losses.*Loss`` on ``CL2L``).

Batch: ``{"image": (B, V, 3, S, S) uint8, "text": (B, T, L) long}``: ``V`` views cropped from the
full-resolution image by the data loader (global view first; ``V = 1`` clip, 3 slip,
``1 + num_augs`` the rocket family) and ``T`` captions (global first). The photometric part of the
augmented views runs here, batched, unless ``image_aug.photometric`` is ``worker``. Towers with
BatchNorm (the reference's ResNet-50) see each view in its own forward, as the reference does
(``self.visual(l) for l in image_local``), so BN statistics are per view; other towers see all views
in one forward. Objective ``clip`` needs only the projected embeddings, so its towers run their
plain ``encode_image`` / ``encode_text`` (open_clip's training forward; the other objectives read the
pooled features as well, :mod:`pretrainlab.clip.projectors`). The open_clip model sits at ``self.clip``
so ``clip.*`` weights load into plain open_clip. After every optimizer step both log-temperatures are clamped to ``[0, ln 100]`` and the
BYOLIP momentum copy is updated (ref ``main.train``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pretrainlab.clip.barlip import barlip_loss
from pretrainlab.clip.byolip import byolip_loss
from pretrainlab.clip.config import ClipConfig
from pretrainlab.clip.projectors import (
    TextDropout,
    embed_dim,
    image_features,
    image_width,
    mlp_projector,
    siamlip_predictor,
    siamlip_projector,
    text_features,
    text_width,
)
from pretrainlab.clip.rocket import rocket_loss
from pretrainlab.clip.slip import slip_ssl_loss
from pretrainlab.clip.swalip import swalip_loss
from pretrainlab.clip.transforms import device_photometric, eval_transform, model_eval_transform
from pretrainlab.core.ema import ema_update, frozen_copy
from pretrainlab.core.train import Task

AUG_PAIR_OBJECTIVES = ("rocket", "barlip", "byolip", "swalip")


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [0, 1] (float inputs pass through)."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


class CLIPRocketTask(Task):
    """CLIP / SLIP / BarLIP / BYOLIP / SwALIP / CLIP-rocket on an open_clip model.

    ``preprocess``: ``"recipe"`` evaluates with the recipe's normalisation and ``eval.*`` resize rule;
    ``"open_clip"`` with the transform open_clip builds for the model (imported weights).
    """

    def __init__(self, cfg: ClipConfig, preprocess: str = "recipe") -> None:
        super().__init__()
        from pretrainlab.clip.models import register_domain_configs
        from pretrainlab.core.openclip import create_clip, image_size

        register_domain_configs()
        self.cfg = cfg
        m, meth, a = cfg.model, cfg.method, cfg.image_aug
        self.clip, self.tokenizer = create_clip(m.name, m.pretrained or None, setting="model.pretrained")
        self.image_size = image_size(self.clip)
        self.context_length = int(getattr(self.tokenizer, "context_length", 77))
        self.preprocess = (model_eval_transform(self.clip) if preprocess == "open_clip" else
                           eval_transform(self.image_size, a.mean, a.std, cfg.eval.interpolation, cfg.eval.resize_mode))
        self.register_buffer("img_mean", torch.tensor(a.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("img_std", torch.tensor(a.std).view(1, -1, 1, 1), persistent=False)
        self.objective = meth.objective
        self.uses_aug_pairs = meth.objective in AUG_PAIR_OBJECTIVES
        self.per_view = has_batchnorm(self.clip.visual)
        # the pooled features before the linear projectors feed the MLP / SSL heads; CLIP scores only the
        # projected embeddings, so its training forward skips the feature read-out
        self.needs_features = self.objective != "clip"
        if self.objective != "clip":
            wi, wt = image_width(self.clip, self.image_size), text_width(self.clip, self.context_length)
            d = embed_dim(self.clip, self.context_length)
        if self.uses_aug_pairs:
            self.mlp_image = mlp_projector(wi, m.mlp_hidden, d)
            self.mlp_text = mlp_projector(wt, m.mlp_hidden, d)
            self.mlp_logit_scale = nn.Parameter(torch.tensor(math.log(m.mlp_logit_scale_init)))
        if self.objective == "slip":
            self.slip_mlp = mlp_projector(wi, m.mlp_hidden, meth.slip_out_dim)
        if self.objective == "barlip":
            self.bt_image = mlp_projector(wi, meth.barlip_hidden, meth.barlip_dim, last_bn=True)
            self.bt_text = mlp_projector(wt, meth.barlip_hidden, meth.barlip_dim, last_bn=True)
        if self.objective == "byolip":
            self.byol_proj_image = siamlip_projector(wi, meth.byolip_hidden, meth.byolip_dim, meth.byolip_last_bn)
            self.byol_proj_text = siamlip_projector(wt, meth.byolip_hidden, meth.byolip_dim, meth.byolip_last_bn)
            self.byol_pred_image = siamlip_predictor(meth.byolip_dim, meth.byolip_hidden)
            self.byol_pred_text = siamlip_predictor(meth.byolip_dim, meth.byolip_hidden)
            if meth.momentum_target:  # ref --momentum: a momentum copy (of what the targets need)
                self.target = frozen_copy(self._online())
                self.target_dropout = TextDropout(self.target["clip"], m.text_dropout)
        self.text_dropout = TextDropout(self.clip, m.text_dropout)

    # ------------------------------------------------------------------ helpers
    def _online(self) -> nn.ModuleDict:
        return nn.ModuleDict({"clip": self.clip, "proj_image": self.byol_proj_image, "proj_text": self.byol_proj_text})

    @property
    def num_texts(self) -> int:
        return 1 + self.cfg.method.num_augs if self.uses_aug_pairs else 1

    @property
    def num_aug_views(self) -> int:
        """Augmented image views per sample beyond the global one."""
        return self.cfg.method.num_augs if self.uses_aug_pairs else (2 if self.objective == "slip" else 0)

    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale.exp()

    def h_logit_scale(self) -> torch.Tensor:
        return self.mlp_logit_scale.exp()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.img_mean) / self.img_std

    def _image_pass(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(feats, z)`` of one image batch; ``feats`` is None when the objective scores only the projected
        embeddings (``clip``): then the tower runs its plain ``encode_image`` (the same ops and values as
        open_clip's training forward, without the intermediate-feature read-out)."""
        if self.needs_features:
            return image_features(model, x)
        return None, model.encode_image(x)

    def _text_pass(self, model: nn.Module, tokens: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        if self.needs_features:
            return text_features(model, tokens)
        return None, model.encode_text(tokens)

    def _images(self, model: nn.Module, views: list[torch.Tensor]) -> list[tuple[torch.Tensor | None, torch.Tensor]]:
        if self.per_view or len(views) == 1:
            return [self._image_pass(model, v) for v in views]
        f, z = image_features(model, torch.cat(views))  # several views: only the feature objectives
        b = views[0].shape[0]
        return list(zip(f.split(b), z.split(b)))

    def _texts(self, model: nn.Module, tokens: torch.Tensor, n: int,
               dropout: TextDropout) -> list[tuple[torch.Tensor | None, torch.Tensor]]:
        b = tokens.shape[0]
        flat = tokens[:, :n].transpose(0, 1).reshape(n * b, -1)  # global captions first
        with dropout.active(keep=b):
            f, z = self._text_pass(model, flat)
        return list(zip(f.split(b) if f is not None else [None] * n, z.split(b)))

    # ------------------------------------------------------------------ encoders (evaluation)
    def encode_image(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Preprocessed ``(B, 3, S, S)`` float (``self.preprocess``) -> ``{"z": linear projection,
        "h": MLP projection (rocket family), "feats"}``."""
        f, z = image_features(self.clip, images)
        out = {"feats": f, "z": z}
        if self.uses_aug_pairs:
            out["h"] = self.mlp_image(f)
        return out

    def encode_text(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        f, z = text_features(self.clip, tokens)
        out = {"feats": f, "z": z}
        if self.uses_aug_pairs:
            out["h"] = self.mlp_text(f)
        return out

    # ------------------------------------------------------------------ training
    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        meth, a = self.cfg.method, self.cfg.image_aug
        images, tokens = batch["image"], batch["text"]
        if images.dim() == 4:
            images = images[:, None]
        if tokens.dim() == 2:
            tokens = tokens[:, None]
        n_views, n_txt = 1 + self.num_aug_views, self.num_texts
        if images.shape[1] < n_views or tokens.shape[1] < n_txt:
            raise ValueError(f"batch has {images.shape[1]} view(s) and {tokens.shape[1]} caption(s) per sample; "
                             f"objective '{self.objective}' needs {n_views} and {n_txt}")
        with torch.no_grad():
            views = [to_unit(images[:, 0])]
            for k in range(1, n_views):
                v = to_unit(images[:, k])
                views.append(device_photometric(v, a) if a.photometric == "device" else v)
            views = [self.normalize(v) for v in views]
        fi = self._images(self.clip, views)
        ft = self._texts(self.clip, tokens, n_txt, self.text_dropout)
        scale = self.logit_scale()
        out: dict[str, torch.Tensor] = {"logit_scale": scale.detach()}
        h_img: list[torch.Tensor] = []
        h_txt: list[torch.Tensor] = []
        h_scale: torch.Tensor | float = 1.0
        if self.uses_aug_pairs:
            h_img = [self.mlp_image(f) for f, _ in fi[1:]]  # BN statistics per view, as the reference
            h_txt = [self.mlp_text(f) for f, _ in ft[1:]]
            h_scale = self.h_logit_scale()
            out["h_logit_scale"] = h_scale.detach()
        r = rocket_loss(fi[0][1], ft[0][1], h_img, h_txt, scale, h_scale, meth.label_smoothing,
                        meth.loss_avg_or_sum if self.uses_aug_pairs else "avg", meth.gather_with_grad)
        total = r["loss"]
        out.update(loss_clip=r["loss"], loss_global=r["loss_global"])
        if "loss_aug" in r:
            out["loss_aug"] = r["loss_aug"]
        if self.objective == "slip":
            ssl = slip_ssl_loss(self.slip_mlp(fi[1][0]), self.slip_mlp(fi[2][0]), meth.slip_temperature)
            out["loss_simclr"] = ssl
            total = total + meth.slip_scale * ssl
        elif self.objective == "barlip":
            ssl = barlip_loss(self.bt_image(fi[0][0]), self.bt_text(ft[0][0]), [self.bt_image(f) for f, _ in fi[1:]],
                              [self.bt_text(f) for f, _ in ft[1:]], meth.barlip_lambda, meth.barlip_scale)
            out["loss_barlip"] = ssl
            total = total + ssl
        elif self.objective == "byolip":
            vi = [self.byol_proj_image(f) for f, _ in fi]
            vt = [self.byol_proj_text(f) for f, _ in ft]
            pi = [self.byol_pred_image(v) for v in vi]
            pt = [self.byol_pred_text(v) for v in vt]
            if meth.momentum_target:
                with torch.no_grad():
                    tgt = self.target
                    vi = [tgt["proj_image"](f) for f, _ in self._images(tgt["clip"], views)]
                    vt = [tgt["proj_text"](f) for f, _ in self._texts(tgt["clip"], tokens, n_txt, self.target_dropout)]
            ssl = byolip_loss(pi[0], pt[0], vi[0], vt[0], pi[1:], pt[1:], vi[1:], vt[1:])
            out["loss_byolip"] = ssl
            total = total + ssl
        elif self.objective == "swalip":
            ssl = swalip_loss(h_img, h_txt, h_scale, meth.swalip_epsilon, meth.swalip_iterations)
            out["loss_swalip"] = ssl
            total = total + meth.swalip_weight * ssl
        out["loss"] = total
        return out

    @torch.no_grad()
    def on_step_end(self, step: int, max_steps: int) -> None:
        # ref main.train: the momentum update, then the clamp of both log-temperatures to [0, ln 100]
        if self.objective == "byolip" and self.cfg.method.momentum_target:
            ema_update(self.target, self._online(), self.cfg.method.byolip_momentum)  # constant tau
        hi = math.log(self.cfg.model.logit_scale_max)
        self.clip.logit_scale.clamp_(0, hi)
        if self.uses_aug_pairs:
            self.mlp_logit_scale.clamp_(0, hi)

