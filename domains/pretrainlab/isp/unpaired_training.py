"""Training of the lightweight ISP: paired, paired without adversarial terms, unpaired (paper Sec. 3).

:class:`ISPTask` is a core ``Task`` with one optimizer group per network, as the reference (ref:
fit.py, helper.py): the generator (Adam lr 5e-4, betas (0.5, 0.9), unclipped; loss key ``"loss"``)
and one Adam per discriminator (lr 1e-5, betas (0.5, 0.9), gradient norm clipped at 1 on its own,
stepped once every ``loss.d_every`` = 10 generator steps; loss keys ``"d_loss_<name>"``). The core
Trainer runs the loop and tells the task which groups are due (``begin_step`` / ``is_due``).

Generator loss (balanced: each term / (||grad_theta term|| + 1e-8), times its weight)::

    content(VGG relu5_4 of Lab L; vs conventional render (unpaired) or target (paired))
    + TV + texture_relu1 + texture_relu4 + colour          (adversarial terms: not in paired_noadv)

Discriminators: relativistic softplus + gamma / 2 * 100 * (R1 + R2), on the SAME generated batch
as the generator step. Real images: random target-camera images (unpaired) or the paired targets.
Deviation: the final checkpoint is evaluated (the reference picks the best by PSNR on a paired
validation set, which unpaired training does not have).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pretrainlab.core.train import OptimGroup, Task
from pretrainlab.isp.config import MODES, ISPConfig
from pretrainlab.isp.discriminators import ColourDiscriminator, TextureDiscriminator
from pretrainlab.isp.feature_networks import FeatureNets
from pretrainlab.isp.generators import build_generator
from pretrainlab.isp.losses import balance, content_loss, discriminator_loss, relativistic_g_loss, tv_loss

D_NAMES = ("texture1", "texture4", "colour")  # ref config.discriminators "0" (relu1), "3" (relu4), "5" (ViT)


class ISPTask(Task):
    """batch ``{"raw": (B, 4, h, w), "ref" | "target": (B, 3, 2h, 2w), "real": (B, 3, 2h, 2w)}``.

    ``out_hw``: the generator's output size in training (the texture discriminators' ``fc1`` is
    sized for it, as the reference's lazily built layer).
    """

    def __init__(self, cfg: ISPConfig, nets: FeatureNets | None, pattern: str = "RGGB",
                 out_hw: tuple[int, int] = (256, 256)) -> None:
        super().__init__()
        if cfg.loss.mode not in MODES:
            raise ValueError(f"unknown loss.mode '{cfg.loss.mode}'; use one of {', '.join(MODES)}")
        self.cfg = cfg
        self.mode = cfg.loss.mode
        self.adversarial = self.mode in ("unpaired", "paired")
        self.generator = build_generator(cfg.model.generator, pattern)
        object.__setattr__(self, "nets", nets)  # frozen, not part of the checkpoint
        if nets is None and self.mode != "warmstart":
            raise ValueError("the losses need the feature networks")
        if self.adversarial:
            lc = cfg.loss
            assert nets is not None
            with torch.no_grad():
                f1, f4 = nets.texture(torch.zeros(1, 3, *out_hw))
            self.d_texture1 = TextureDiscriminator(f1.shape[1], tuple(f1.shape[-2:]), lc.disc_widths, lc.disc_fc,
                                                   lc.d_train_fc1)
            self.d_texture4 = TextureDiscriminator(f4.shape[1], tuple(f4.shape[-2:]), lc.disc_widths, lc.disc_fc,
                                                   lc.d_train_fc1)
            self.d_colour = ColourDiscriminator(nets.token_dim, lc.colour_hidden)
        self._norms: dict[str, torch.Tensor] | None = None

    def _apply(self, fn: Any, recurse: bool = True) -> ISPTask:  # move the frozen nets with the task
        super()._apply(fn, recurse)
        if self.nets is not None:
            self.nets._apply(fn)
        return self

    def generator_params(self) -> list[nn.Parameter]:
        return [p for p in self.generator.parameters() if p.requires_grad]

    def discriminator(self, name: str) -> nn.Module:
        return getattr(self, f"d_{name}")

    def optim_groups(self) -> list[OptimGroup]:
        groups = [OptimGroup("generator", "loss", self.generator_params())]
        if self.adversarial:
            lc = self.cfg.loss
            for name in D_NAMES:
                params = [p for p in self.discriminator(name).parameters() if p.requires_grad]
                groups.append(OptimGroup(f"d_{name}", f"d_loss_{name}", params, lr=lc.d_lr, every=lc.d_every,
                                         clip_grad=lc.d_clip_grad, weight_decay=0.0))
        return groups

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        lc = self.cfg.loss
        nets = self.nets
        raw = batch["raw"]
        fake = self.generator(raw)
        if self.mode == "warmstart":  # fit the conventional render (no targets, no feature networks)
            mse = torch.nn.functional.mse_loss(fake.float(), batch["ref"].float())
            return {"loss": mse, "mse": mse.detach()}
        assert nets is not None
        ref = batch["ref"] if self.mode == "unpaired" else batch["target"]
        terms: dict[str, torch.Tensor] = {}
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
            feats = {"texture1": (f1, r1), "texture4": (f4, r4), "colour": (ft, rt)}
            for k, (f, r) in feats.items():
                d = self.discriminator(k)
                terms[k] = relativistic_g_loss(d(f), d(r))
            for k, (f, r) in feats.items():
                if self.is_due(f"d_{k}"):
                    dl = discriminator_loss(self.discriminator(k), r, f, lc.r1_gamma, lc.r2_gamma, lc.r_scale)
                    out[f"d_loss_{k}"] = dl["total"]
                    out[f"d_adv_{k}"] = dl["adv"].detach()
                    out[f"r1_{k}"] = dl["r1"].detach()
        reuse = None
        if lc.balance_every > 1 and self._norms is not None and self.step_index % lc.balance_every != 0:
            reuse = self._norms
        total, norms = balance(terms, weights, self.generator_params(), lc.balance, lc.balance_eps, reuse)
        self._norms = norms
        out["loss"] = total
        for k, v in terms.items():
            out[k] = v.detach()
        return out


def build_datasets(cfg: ISPConfig, data_root: Path) -> tuple[Any, Any]:
    """``(training dataset, paired test split or None)`` for the configured mode.

    Unpaired training reads the train split's RAW folder and a separate RGB folder (no stem
    matching); paired modes read same-stem pairs. The test split (when present) is only evaluated.
    """
    from pretrainlab.core.data import DataError
    from pretrainlab.isp.formats import PairedISP, UnpairedISP

    d = cfg.data
    p = d.patch // 2
    if cfg.loss.mode in ("unpaired", "warmstart"):
        train: Any = UnpairedISP(data_root, "train", d.norm, d.bayer_pattern, d.unpaired_source, d.unpaired_rgb_dir,
                                 cfg.conventional, p, d.max_train, d.cache_mb, with_real=cfg.loss.mode == "unpaired")
    else:
        train = PairedISP(data_root, "train", d.norm, d.bayer_pattern, d.max_train, False, cfg.conventional, p,
                          d.cache_mb)
    try:
        test = PairedISP(data_root, "test", train.norm, train.pattern, d.max_test, cache_mb=d.cache_mb)
    except DataError:
        test = None
    return train, test


def resolve_data(cfg: ISPConfig, train: Any) -> ISPConfig:
    """The config with ``data.norm`` / ``data.bayer_pattern`` resolved from the dataset (saved with the run)."""
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, norm=train.norm, bayer_pattern=train.pattern))


def output_size(train: Any) -> tuple[int, int]:
    """The generator's output size on the training set (RGB pixels)."""
    if train.patch:
        return 2 * train.patch, 2 * train.patch
    h, w = train[0]["raw"].shape[-2:]
    return 2 * h, 2 * w


def init_generator(gen: nn.Module, init: str, arch: str) -> str:
    """Warm start (``model.init``): a reference ``.pth`` state dict or a project run / checkpoint."""
    from pretrainlab.core.checkpoint import find_checkpoint, load_weights
    from pretrainlab.isp.generators import load_reference_weights

    path = Path(init)
    if path.suffix == ".pth" or path.suffix == ".pt":
        load_reference_weights(path, arch, gen)
        return f"reference weights {path}"
    load_weights(gen, find_checkpoint(path) / "model.safetensors", prefix="generator.")
    return f"project checkpoint {path}"


def pretrain(cfg: ISPConfig, data_root: Path, run_dir: Path, resume: bool = False,
             nets: FeatureNets | None = None, datasets: tuple[Any, Any] | None = None) -> tuple[ISPTask, Any]:
    """Train one generator in ``cfg.loss.mode`` with the core Trainer; returns ``(task, TrainResult)``."""
    from pretrainlab.core.train import Trainer, seed_everything
    from pretrainlab.isp.feature_networks import load_feature_nets

    if cfg.model.init and not resume and not Path(cfg.model.init).exists():  # fail before any heavy work
        from pretrainlab.core.checkpoint import CheckpointError

        raise CheckpointError(f"{cfg.model.init}: model.init: file not found (a reference .pth or a run folder)")
    train, _ = datasets or build_datasets(cfg, data_root)
    cfg = resolve_data(cfg, train)
    if nets is None and cfg.loss.mode != "warmstart":
        from pretrainlab.core.distributed import rank_zero_first

        with rank_zero_first():  # one-time SimCLR pre-training of the project nets (cached)
            nets = load_feature_nets(cfg.features, data_root, seed=0, device=cfg.train.device,
                                     progress=cfg.train.progress)
    seed_everything(cfg.train.seed)
    task = ISPTask(cfg, nets, train.pattern, output_size(train) if cfg.loss.mode in ("unpaired", "paired") else (0, 0))
    if cfg.model.init and not resume:
        init_generator(task.generator, cfg.model.init, cfg.model.generator)
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
