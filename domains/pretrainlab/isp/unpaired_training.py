"""Training of the lightweight ISP: paired, paired without adversarial terms, unpaired (paper Sec. 3).

:class:`ISPTask` is a core ``Task`` with two optimizer groups (``OptimGroup``): the generator
(Adam lr 5e-4, betas (0.5, 0.9); loss key ``"loss"``) and the three discriminators (Adam lr 1e-5,
stepped once every ``loss.d_every`` = 10 generator steps; loss key ``"d_loss"``). The core Trainer
runs the loop.

Generator loss (balanced: each term / ||grad_theta term||, times its weight)::

    content(VGG relu5_4 of Lab L; vs conventional render (unpaired) or target (paired))
    + TV + texture_relu1 + texture_relu4 + colour          (adversarial terms: not in paired_noadv)

Discriminators: relativistic softplus + gamma/2 (R1 + R2). Real images: the shuffled / disjoint
targets (unpaired) or the paired targets (paired).

Optimisers as in the ref code: the discriminators' gradient norm is clipped at ``loss.d_clip_grad``
(1), the generator's at ``train.clip_grad`` (0: off). Deviation: the final checkpoint is evaluated
(the ref code picks the best by PSNR on a paired validation set).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pretrainlab.core.train import OptimGroup, Task
from pretrainlab.isp.config import ISPConfig
from pretrainlab.isp.discriminators import ColourDiscriminator, TextureDiscriminator
from pretrainlab.isp.feature_networks import FeatureNets
from pretrainlab.isp.generators import build_generator
from pretrainlab.isp.losses import balance, content_loss, discriminator_loss, relativistic_g_loss, tv_loss

MODES = ("unpaired", "paired", "paired_noadv")


class ISPTask(Task):
    """batch ``{"raw": (B, 4, h, w), "ref" | "target": (B, 3, 2h, 2w), "real": (B, 3, 2h, 2w)}``."""

    def __init__(self, cfg: ISPConfig, nets: FeatureNets | None, pattern: str = "RGGB") -> None:
        super().__init__()
        if cfg.loss.mode not in MODES:
            raise ValueError(f"unknown loss.mode '{cfg.loss.mode}'; use one of {', '.join(MODES)}")
        self.cfg = cfg
        self.mode = cfg.loss.mode
        self.adversarial = self.mode != "paired_noadv"
        self.generator = build_generator(cfg.model.generator, pattern)
        object.__setattr__(self, "nets", nets)  # frozen, not part of the checkpoint
        if self.adversarial:
            if nets is None:
                raise ValueError("adversarial modes need the feature networks")
            c1, c4 = nets.texture_channels
            lc = cfg.loss
            self.d_tex1 = TextureDiscriminator(c1, lc.disc_width, lc.disc_fc)
            self.d_tex4 = TextureDiscriminator(c4, lc.disc_width, lc.disc_fc)
            self.d_colour = ColourDiscriminator(nets.token_dim, lc.colour_hidden)
        self.register_buffer("step_count", torch.zeros((), dtype=torch.long))
        self._step: int | None = None
        self.always_d = False  # bench: compute the D loss on every step
        self._norms: dict[str, torch.Tensor] | None = None

    def _apply(self, fn: Any, recurse: bool = True) -> ISPTask:  # move the frozen nets with the task
        super()._apply(fn, recurse)
        if self.nets is not None:
            self.nets._apply(fn)
        return self

    def generator_params(self) -> list[nn.Parameter]:
        return [p for p in self.generator.parameters() if p.requires_grad]

    def discriminator_params(self) -> list[nn.Parameter]:
        return [p for m in (self.d_tex1, self.d_tex4, self.d_colour) for p in m.parameters()]

    def optim_groups(self) -> list[OptimGroup]:
        groups = [OptimGroup("generator", "loss", self.generator_params())]
        if self.adversarial:
            groups.append(OptimGroup("discriminators", "d_loss", self.discriminator_params(),
                                     lr=self.cfg.loss.d_lr, every=self.cfg.loss.d_every,
                                     clip_grad=self.cfg.loss.d_clip_grad))
        return groups

    def on_step_end(self, step: int, max_steps: int) -> None:
        self._step = step
        self.step_count.fill_(step)

    def _d_due(self) -> bool:
        if self.always_d:
            return True
        return self._step % self.cfg.loss.d_every == 0

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        lc = self.cfg.loss
        nets = self.nets
        if self._step is None:  # first forward (also after a resume): one host read
            self._step = int(self.step_count)
        raw = batch["raw"]
        fake = self.generator(raw)
        ref = batch["ref"] if self.mode == "unpaired" else batch["target"]
        terms: dict[str, torch.Tensor] = {}
        assert nets is not None
        with torch.no_grad():
            f_ref = nets.content(ref)
        terms["content"] = content_loss(nets.content(fake), f_ref)
        terms["tv"] = tv_loss(fake)
        weights = {"content": lc.w_content, "tv": lc.w_tv, "texture1": lc.w_texture, "texture4": lc.w_texture,
                   "colour": lc.w_colour}
        out: dict[str, torch.Tensor] = {}
        if self.adversarial:
            real = batch["real"] if self.mode == "unpaired" else batch["target"]
            with torch.no_grad():
                r1, r4 = nets.texture(real)
                rt = nets.colour(real, lc.blur_kernel, lc.blur_sigma)
            f1, f4 = nets.texture(fake)
            ft = nets.colour(fake, lc.blur_kernel, lc.blur_sigma)
            pairs = {"texture1": (self.d_tex1, f1, r1), "texture4": (self.d_tex4, f4, r4),
                     "colour": (self.d_colour, ft, rt)}
            for k, (d, f, r) in pairs.items():
                terms[k] = relativistic_g_loss(d(f), d(r))
            if self._d_due():
                d_total = torch.zeros((), device=raw.device)
                for k, (d, f, r) in pairs.items():
                    dl = discriminator_loss(d, r, f, lc.r1_gamma, lc.r2_gamma)
                    out[f"d_{k}"] = dl["adv"].detach()
                    out[f"r1_{k}"] = dl["r1"].detach()
                    d_total = d_total + dl["total"]
                out["d_loss"] = d_total
        reuse = None
        if lc.balance_every > 1 and self._norms is not None and (self._step or 0) % lc.balance_every != 0:
            reuse = self._norms
        total, norms = balance(terms, weights, self.generator_params(), lc.balance, lc.balance_eps, reuse)
        self._norms = norms
        out["loss"] = total
        for k, v in terms.items():
            out[k] = v.detach()
        return out


def build_datasets(cfg: ISPConfig, data_root: Path, progress: bool = True) -> tuple[Any, Any]:
    """``(training dataset, test pairs)`` for the configured mode."""
    from pretrainlab.isp.formats import ISPPairs, UnpairedISP

    unpaired = cfg.loss.mode == "unpaired"
    tr = ISPPairs(data_root, "train", cfg.data.norm, cfg.data.bayer_pattern, cfg.data.max_train, with_ref=unpaired,
                  conventional=cfg.conventional, progress=progress)
    train = UnpairedISP(tr, cfg.data.unpaired_source) if unpaired else tr
    return train, tr


def pretrain(cfg: ISPConfig, data_root: Path, run_dir: Path, resume: bool = False,
             nets: FeatureNets | None = None, datasets: tuple[Any, Any] | None = None) -> tuple[ISPTask, Any]:
    """Train one generator in ``cfg.loss.mode`` with the core Trainer; returns ``(task, TrainResult)``."""
    from pretrainlab.core.train import Trainer, seed_everything
    from pretrainlab.isp.feature_networks import load_feature_nets

    if nets is None:
        nets = load_feature_nets(cfg.features, data_root, seed=0, device=cfg.train.device, progress=cfg.train.progress)
    train, pairs = datasets or build_datasets(cfg, data_root, progress=cfg.train.progress)
    seed_everything(cfg.train.seed)
    task = ISPTask(cfg, nets, pairs.pattern)
    result = Trainer(cfg.train, run_dir, full_config=cfg).fit(task, train, resume=resume)
    return task, result


def load_generator(ckpt: Path, device: str = "cpu") -> tuple[nn.Module, ISPConfig, str]:
    """``(generator in eval mode, its config, the Bayer pattern)`` from a run / checkpoint folder."""
    from pretrainlab.core.checkpoint import find_checkpoint, load_weights, read_meta
    from pretrainlab.core.config import from_dict

    folder = find_checkpoint(Path(ckpt))
    cfg = from_dict(ISPConfig, read_meta(folder)["config"])
    pattern = cfg.data.bayer_pattern if cfg.data.bayer_pattern != "auto" else "RGGB"
    gen = build_generator(cfg.model.generator, pattern)
    load_weights(gen, folder / "model.safetensors", prefix="generator.")
    return gen.to(device).eval(), cfg, pattern
