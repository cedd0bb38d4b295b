"""The pre-trained feature networks of the losses (paper Sec. 3.2) and their offline substitutes.

Inputs exactly as the reference feeds them:

- content (ref: losses/vgg_loss.py): VGG-19 ``relu5_4`` of the Lab L channel (kornia ``rgb_to_lab``,
  no clamp), ``L / 100`` repeated to 3 channels. With MatConvNet weights (``imagenet-vgg-verydeep-19.mat``,
  the paper's) the input is ``x * 255 - [123.68, 116.779, 103.939]`` (ref ``preprocess``); with
  torchvision weights and the project's own VGG it is ``(x - mean) / std`` (ImageNet; the NTIRE 2026
  baseline's torchvision variant).
- texture (ref: losses/gan_loss.py): grayscale ``0.299 R + 0.587 G + 0.114 B`` repeated to 3
  channels, straight into the LPIPS AlexNet trunk (``lpips_net.net``: NO scaling layer, NO ImageNet
  normalisation), outputs ``relu1`` (64 ch) and ``relu4`` (256 ch).
- colour (ref: utils.py ``gauss_kernel`` / ``blur``, gan_loss.py ``extract_vit_features``): 21x21
  Gaussian (``nsig`` 3, the DPED kernel) with zero padding, bilinear resize to the ViT input, NO
  normalisation, the ViT's last hidden state without the class token (``(B, 196, 768)`` for
  ViT-B/16 at 224).

Weights cannot be downloaded here. Local files: ``features.vgg_weights`` (a torchvision ``vgg19``
state dict as .safetensors, or the MatConvNet ``.mat``), ``features.alexnet_weights`` (torchvision
``alexnet``), ``features.vit_weights`` (torchvision ``vit_b_16`` or the Hugging Face
``google/vit-base-patch16-224`` ``ViTModel`` that the reference uses; its LayerNorm eps 1e-12 is kept).
Otherwise the project's own networks are used: the same layer lists with ``width_div`` times fewer
channels and a small ViT, pre-trained with SimCLR (NT-Xent of the core) on the unlabelled RGB
target images, each fed the same input preprocessing as in the losses, and cached
(``$PRETRAINLAB_CACHE/data/isp-features``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pretrainlab.core.train import Task
from pretrainlab.isp.config import FeatureNetConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MATCONVNET_MEAN = (123.68, 116.779, 103.939)  # ref: losses/vgg_loss.py IMAGE_MEAN (0-255 scale)
VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]


def _torchvision_init(net: nn.Sequential) -> nn.Sequential:
    """torchvision's VGG / AlexNet conv init (kaiming normal, fan_out): keeps a deep plain stack alive."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net


def vgg19_relu5_4(div: int = 1, widths: list[int] | None = None) -> nn.Sequential:
    """torchvision ``vgg19().features[:36]`` (up to relu5_4) with channels divided by ``div`` (or ``widths``)."""
    layers: list[nn.Module] = []
    c = 3
    it = iter(widths or [max(4, int(v) // div) for v in VGG19_CFG if v != "M"])
    for v in VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            o = next(it)
            layers += [nn.Conv2d(c, o, 3, padding=1), nn.ReLU(inplace=False)]
            c = o
    return _torchvision_init(nn.Sequential(*layers))


def alexnet_to_relu4(div: int = 1) -> nn.Sequential:
    """torchvision ``alexnet().features[:10]`` (LPIPS slices: relu1 = [:2], relu4 = [:10])."""
    c = [max(4, x // div) for x in (64, 192, 384, 256)]
    return _torchvision_init(nn.Sequential(
        nn.Conv2d(3, c[0], 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(),
        nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU()))


def build_vit(cfg: FeatureNetConfig, paper_size: bool, eps: float = 1e-6) -> nn.Module:
    from torchvision.models import VisionTransformer

    norm = functools.partial(nn.LayerNorm, eps=eps)
    if paper_size:  # ViT-B/16 at 224 (ref: google/vit-base-patch16-224)
        return VisionTransformer(224, 16, 12, 12, 768, 3072, norm_layer=norm)
    return VisionTransformer(cfg.vit_image_size, cfg.vit_patch, cfg.vit_depth, cfg.vit_heads, cfg.vit_dim,
                             2 * cfg.vit_dim, norm_layer=norm)


def vit_tokens(vit: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Patch tokens ``(B, N, D)`` of a torchvision ViT after its final LayerNorm (class token dropped)."""
    t = vit._process_input(x)  # type: ignore[operator]
    cls = vit.class_token.expand(t.shape[0], -1, -1)  # type: ignore[union-attr]
    t = vit.encoder(torch.cat([cls, t], dim=1))  # type: ignore[operator]
    return t[:, 1:]


def gauss_kernel(k: int = 21, nsig: float = 3.0) -> torch.Tensor:
    """The DPED / reference blur kernel ``(k, k)``: sqrt of the outer product of normal-CDF bin masses."""
    from scipy.stats import norm

    interval = (2 * nsig + 1.0) / k
    x = np.linspace(-nsig - interval / 2.0, nsig + interval / 2.0, k + 1)
    k1 = np.diff(norm.cdf(x))
    kern = np.sqrt(np.outer(k1, k1))
    return torch.tensor(kern / kern.sum(), dtype=torch.float32)


def gaussian_blur(x: torch.Tensor, k: int = 21, nsig: float = 3.0) -> torch.Tensor:
    """The reference ``blur``: depthwise conv with :func:`gauss_kernel`, zero padding ``k // 2``."""
    kern = gauss_kernel(k, nsig).to(x)
    c = x.shape[1]
    return F.conv2d(x, kern[None, None].expand(c, 1, k, k), padding=k // 2, groups=c)


def rgb_to_lab_l(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``(B, 3, H, W)`` -> CIE Lab L ``(B, 1, H, W)`` as kornia ``rgb_to_lab`` (D65; no clamp)."""
    x = rgb.float()
    lin = torch.where(x > 0.04045, ((x + 0.055) / 1.055).clamp_min(0) ** 2.4, x / 12.92)
    y = 0.212671 * lin[:, 0:1] + 0.715160 * lin[:, 1:2] + 0.072169 * lin[:, 2:3]
    f = torch.where(y > 0.008856, y.clamp(min=0.008856) ** (1 / 3.0), 7.787 * y + 4.0 / 29.0)
    return 116.0 * f - 16.0


def grayscale(rgb: torch.Tensor) -> torch.Tensor:
    """0.299 R + 0.587 G + 0.114 B, ``(B, 1, H, W)`` (ref: utils.preprocess_img_disc)."""
    return 0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]


class FeatureNets(nn.Module):
    """The three frozen feature extractors of the losses."""

    def __init__(self, cfg: FeatureNetConfig, vgg: nn.Sequential | None = None, vit_eps: float = 1e-6) -> None:
        super().__init__()
        self.cfg = cfg
        self.vgg = vgg if vgg is not None else vgg19_relu5_4(1 if cfg.vgg_weights else cfg.width_div)
        self.alex = alexnet_to_relu4(1 if cfg.alexnet_weights else cfg.width_div)
        self.vit = build_vit(cfg, bool(cfg.vit_weights), vit_eps)
        self.vit_size = 224 if cfg.vit_weights else cfg.vit_image_size
        self.vgg_input = "torchvision"  # | matconvnet (set by load_feature_nets for a .mat file)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("mean255", torch.tensor(MATCONVNET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.source = {"vgg": "project SimCLR", "alexnet": "project SimCLR", "vit": "project SimCLR"}

    @property
    def token_dim(self) -> int:
        return int(self.vit.hidden_dim)  # type: ignore[arg-type]

    @property
    def texture_channels(self) -> tuple[int, int]:
        return int(self.alex[0].out_channels), int(self.alex[8].out_channels)  # type: ignore[union-attr]

    def freeze(self) -> FeatureNets:
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> FeatureNets:  # frozen nets stay in eval mode
        return super().train(False)

    def vgg_in(self, x: torch.Tensor) -> torch.Tensor:
        """The VGG input scale of the loaded weights (MatConvNet: 0-255 minus mean; else ImageNet mean / std)."""
        if self.vgg_input == "matconvnet":
            return x * 255.0 - self.mean255
        return (x - self.mean) / self.std

    def content(self, rgb: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> VGG relu5_4 of the Lab L channel (L / 100 repeated to 3 channels)."""
        lum = (rgb_to_lab_l(rgb) / 100.0).expand(-1, 3, -1, -1)
        return self.vgg(self.vgg_in(lum))

    def texture(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Grayscale x3 -> AlexNet relu1 ``(B, c1, h1, w1)`` and relu4 ``(B, c4, h4, w4)`` (no normalisation)."""
        g = grayscale(rgb.float()).expand(-1, 3, -1, -1)
        r1 = self.alex[:2](g)
        return r1, self.alex[2:](r1)

    def colour(self, rgb: torch.Tensor, k: int = 21, nsig: float = 3.0) -> torch.Tensor:
        """Blur -> bilinear resize to the ViT input -> last-layer patch tokens ``(B, N, D)`` (no normalisation)."""
        x = gaussian_blur(rgb.float(), k, nsig)
        if x.shape[-1] != self.vit_size or x.shape[-2] != self.vit_size:
            x = F.interpolate(x, size=(self.vit_size, self.vit_size), mode="bilinear", align_corners=False)
        return vit_tokens(self.vit, x)


# ------------------------------------------------------------------------- local weights


def load_matconvnet_vgg19(path: Path) -> nn.Sequential:
    """The MatConvNet ``imagenet-vgg-verydeep-19.mat`` (the paper's VGG) -> ``vgg19().features[:36]``.

    Read with ``scipy.io.loadmat`` (no pickle); kernels ``(kh, kw, in, out)`` -> ``(out, in, kh, kw)``
    as the reference's ``VGGFromMAT``.
    """
    import scipy.io

    from pretrainlab.core.checkpoint import CheckpointError

    try:
        data = scipy.io.loadmat(str(path))
        layers = data["layers"][0]
    except Exception as e:  # noqa: BLE001 - scipy raises many types for a file that is not a MAT file
        raise CheckpointError(f"{path}: not a MatConvNet VGG .mat file ({type(e).__name__}: {e})") from None
    convs = []
    for layer in layers:
        rec = layer[0, 0]
        names = rec.dtype.names or ()
        if "weights" not in names:
            continue
        w = rec["weights"]
        if w.size < 2 and w.dtype == object:
            w = w[0]
        kernels, bias = w[0, 0], w[0, 1]
        convs.append((np.asarray(kernels, np.float32).transpose(3, 2, 0, 1), np.asarray(bias, np.float32).reshape(-1)))
        if len(convs) == 16:  # conv5_4: relu5_4 is the last layer used
            break
    if len(convs) != 16:
        raise CheckpointError(f"{path}: found {len(convs)} conv layers, VGG-19 up to conv5_4 has 16")
    net = vgg19_relu5_4(widths=[k.shape[0] for k, _ in convs])
    it = iter(convs)
    for m in net:
        if isinstance(m, nn.Conv2d):
            k, b = next(it)
            if tuple(k.shape) != tuple(m.weight.shape) or b.shape[0] != k.shape[0]:
                raise CheckpointError(f"{path}: conv kernel {k.shape} / bias {b.shape} does not fit VGG-19 "
                                      f"{tuple(m.weight.shape)}")
            m.weight.data.copy_(torch.from_numpy(k))
            m.bias.data.copy_(torch.from_numpy(b))
    return net


def hf_vit_to_torchvision(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Hugging Face ViT state dict (``google/vit-base-patch16-224``, the reference's) -> torchvision names.

    Reads the Hub file's names (``[vit.]encoder.layer.N.attention.attention.query``, transformers 4) and
    transformers 5's (``layers.N.attention.q_proj``); the classifier head is dropped.
    """
    sd = {k.removeprefix("vit."): v for k, v in sd.items()}
    out = {"class_token": sd["embeddings.cls_token"], "encoder.pos_embedding": sd["embeddings.position_embeddings"],
           "conv_proj.weight": sd["embeddings.patch_embeddings.projection.weight"],
           "conv_proj.bias": sd["embeddings.patch_embeddings.projection.bias"],
           "encoder.ln.weight": sd["layernorm.weight"], "encoder.ln.bias": sd["layernorm.bias"]}
    v4 = any(k.startswith("encoder.layer.") for k in sd)
    i = 0
    while f"{'encoder.layer' if v4 else 'layers'}.{i}.layernorm_before.weight" in sd:
        s, t = (f"encoder.layer.{i}." if v4 else f"layers.{i}."), f"encoder.layers.encoder_layer_{i}."
        if v4:
            qkv = [f"{s}attention.attention.{q}" for q in ("query", "key", "value")]
            o, fc1, fc2 = f"{s}attention.output.dense", f"{s}intermediate.dense", f"{s}output.dense"
        else:
            qkv = [f"{s}attention.{q}_proj" for q in "qkv"]
            o, fc1, fc2 = f"{s}attention.o_proj", f"{s}mlp.fc1", f"{s}mlp.fc2"
        for p in ("weight", "bias"):
            out[f"{t}ln_1.{p}"] = sd[f"{s}layernorm_before.{p}"]
            out[f"{t}ln_2.{p}"] = sd[f"{s}layernorm_after.{p}"]
            out[f"{t}self_attention.in_proj_{p}"] = torch.cat([sd[f"{q}.{p}"] for q in qkv])
            out[f"{t}self_attention.out_proj.{p}"] = sd[f"{o}.{p}"]
            out[f"{t}mlp.0.{p}"] = sd[f"{fc1}.{p}"]
            out[f"{t}mlp.3.{p}"] = sd[f"{fc2}.{p}"]
        i += 1
    return out


def _load_module(mod: nn.Module, sd: dict[str, torch.Tensor], path: str, what: str) -> None:
    from pretrainlab.core.checkpoint import CheckpointError

    own = mod.state_dict()
    sub = {k: v for k, v in sd.items() if k in own}
    missing = sorted(k for k in set(own) - set(sub) if not k.startswith("heads."))  # a ViT's classifier is unused
    if missing:
        raise CheckpointError(f"{path}: not a {what} state dict (missing {missing[:3]}{' ...' if len(missing) > 3 else ''})")
    try:
        mod.load_state_dict(sub, strict=False)
        for k, v in sub.items():
            if tuple(own[k].shape) != tuple(v.shape):
                raise RuntimeError(f"{k}: shape {tuple(v.shape)} in the file, {tuple(own[k].shape)} expected")
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit {what}: {str(e).splitlines()[-1].strip()}") from None


# ------------------------------------------------------------------------- SSL pre-training


class FeatureSSLTask(Task):
    """SimCLR on unlabelled RGB images for the project feature nets: ``{"image": (B, 3, S, S)}``.

    One NT-Xent term per network (VGG relu5_4, AlexNet relu4, ViT mean patch token), each with its
    own 2-layer projector; each network sees the input scale it gets in the losses.
    """

    def __init__(self, nets: FeatureNets, cfg: FeatureNetConfig) -> None:
        super().__init__()
        self.nets, self.cfg = nets, cfg
        dims = {"vgg": nets.vgg[-2].out_channels, "alex": nets.texture_channels[1], "vit": nets.token_dim}
        self.proj = nn.ModuleDict({k: nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 64)) for k, d in dims.items()})

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        from pretrainlab.core.augment import simclr_view
        from pretrainlab.core.losses import nt_xent

        x = batch["image"]
        s = self.cfg.ssl_crop
        with torch.no_grad():
            v = torch.cat([simclr_view(x, s, (0.3, 1.0), 0.4, 0.5), simclr_view(x, s, (0.3, 1.0), 0.4, 0.5)])
        n = self.nets
        vs = F.interpolate(v, size=(n.vit_size, n.vit_size), mode="bilinear", align_corners=False)
        feats = {"vgg": n.vgg(n.vgg_in(v)).mean(dim=(2, 3)), "alex": n.alex(v).mean(dim=(2, 3)),
                 "vit": vit_tokens(n.vit, vs).mean(dim=1)}
        out: dict[str, torch.Tensor] = {}
        for k, f in feats.items():
            z1, z2 = self.proj[k](f).float().chunk(2)
            out[f"nce_{k}"] = nt_xent(z1, z2, temperature=self.cfg.ssl_temperature)
        out["loss"] = sum(out.values())  # type: ignore[assignment]
        return out


class RGBImages(torch.utils.data.Dataset):
    """Unlabelled RGB images decoded lazily and resized to ``size x size``: ``{"image": (3, S, S)}``."""

    def __init__(self, files: list[Path], size: int) -> None:
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        from pretrainlab.isp.formats import read_rgb

        x = read_rgb(self.files[i])
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x[None], size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=True)[0]
        return {"image": x}


def rgb_files(root: Path) -> list[Path]:
    """The unlabelled RGB images of a dataset's train split (paired and disjoint target folders)."""
    from pretrainlab.core.data import DataError
    from pretrainlab.isp.formats import RGB_FOLDERS, RGB_SUFFIXES, list_files

    files: list[Path] = []
    for name in RGB_FOLDERS:
        for folder in (Path(root) / "train" / name, Path(root) / "train" / f"{name}_unpaired"):
            if folder.is_dir():
                files += list_files(folder, RGB_SUFFIXES)
    if not files:
        raise DataError(root, "no RGB images under train/ for the feature-network pre-training")
    return files


def _key(cfg: FeatureNetConfig, data_root: Path, seed: int) -> str:
    d = dataclasses.asdict(cfg)
    man = Path(data_root) / "manifest.json"
    tag = hashlib.sha256(man.read_bytes()).hexdigest()[:12] if man.exists() else str(Path(data_root).resolve())
    return hashlib.sha256(json.dumps([d, tag, seed, "v2"], sort_keys=True).encode()).hexdigest()[:16]


def load_feature_nets(cfg: FeatureNetConfig, data_root: Path | None, seed: int = 0, device: str = "auto",
                      progress: bool = True) -> FeatureNets:
    """User weights when given; otherwise the project's SimCLR-pre-trained nets (trained once, cached)."""
    from pretrainlab.core.checkpoint import CheckpointError, find_checkpoint, load_tensors, load_torch_file
    from pretrainlab.core.config import TrainConfig
    from pretrainlab.core.data import cache_root
    from pretrainlab.core.io import atomic_dir
    from pretrainlab.core.train import Trainer, seed_everything

    def read(path: str) -> dict[str, torch.Tensor]:
        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"{p}: file not found")
        if p.suffix == ".safetensors":
            return load_tensors(p)[0]
        sd = load_torch_file(p, what="weights file")
        if not isinstance(sd, dict):
            raise CheckpointError(f"{p}: expected a state dict, found {type(sd).__name__}")
        return sd

    vgg = None
    if cfg.vgg_weights.endswith(".mat"):
        if not Path(cfg.vgg_weights).is_file():
            raise CheckpointError(f"{cfg.vgg_weights}: file not found")
        vgg = load_matconvnet_vgg19(Path(cfg.vgg_weights))
    vit_sd = read(cfg.vit_weights) if cfg.vit_weights else None
    hf_vit = vit_sd is not None and any(k.endswith("embeddings.cls_token") for k in vit_sd)
    seed_everything(seed)
    nets = FeatureNets(cfg, vgg=vgg, vit_eps=1e-12 if hf_vit else 1e-6)
    if vgg is not None:
        nets.vgg_input = "matconvnet"
        nets.source["vgg"] = f"MatConvNet weights {cfg.vgg_weights}"
    need_ssl = cfg.pretrain and not (cfg.vgg_weights and cfg.alexnet_weights and cfg.vit_weights)
    if not cfg.pretrain:
        nets.source = {k: "random init (control)" for k in nets.source}
    if need_ssl:
        if data_root is None:
            raise ValueError("project feature nets need a dataset of RGB images to pre-train on")
        folder = cache_root() / "data" / "isp-features" / _key(cfg, data_root, seed)
        ckpt = None
        if folder.exists():
            try:
                ckpt = find_checkpoint(folder)
            except CheckpointError:
                ckpt = None
        if ckpt is None:
            files = rgb_files(Path(data_root))
            task = FeatureSSLTask(nets, cfg)
            images = RGBImages(files, max(cfg.ssl_crop, 32))
            bs = min(cfg.ssl_batch, len(images))
            tc = TrainConfig(max_steps=cfg.ssl_steps, batch_size=bs, lr=cfg.ssl_lr, weight_decay=1e-4,
                             warmup_steps=min(10, cfg.ssl_steps // 10), seed=seed, device=device,
                             log_every=max(1, cfg.ssl_steps // 5), progress=progress, tensorboard=False)
            with atomic_dir(folder, overwrite=True) as tmp:
                Trainer(tc, tmp, full_config={"features": dataclasses.asdict(cfg), "train": dataclasses.asdict(tc)}).fit(
                    task, images)
            ckpt = find_checkpoint(folder)
        sd, _ = load_tensors(ckpt / "model.safetensors")
        nets.load_state_dict({k[len("nets."):]: v for k, v in sd.items() if k.startswith("nets.")}, strict=False)
    if cfg.vgg_weights and vgg is None:
        sd = read(cfg.vgg_weights)
        _load_module(nets.vgg, {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")},
                     cfg.vgg_weights, "torchvision vgg19")
        nets.source["vgg"] = f"torchvision weights {cfg.vgg_weights}"
    if cfg.alexnet_weights:
        sd = read(cfg.alexnet_weights)
        _load_module(nets.alex, {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")},
                     cfg.alexnet_weights, "torchvision alexnet")
        nets.source["alexnet"] = f"torchvision weights {cfg.alexnet_weights}"
    if vit_sd is not None:
        _load_module(nets.vit, hf_vit_to_torchvision(vit_sd) if hf_vit else vit_sd, cfg.vit_weights,
                     "ViT-B/16 (torchvision vit_b_16 or Hugging Face ViTModel)")
        nets.source["vit"] = f"{'Hugging Face' if hf_vit else 'torchvision'} weights {cfg.vit_weights}"
    return nets.freeze()
