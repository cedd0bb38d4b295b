"""The pre-trained feature networks of the losses (paper Sec. 3.2) and their offline substitutes.

- content: VGG-19 ``relu5_4`` features of the Lab L channel (L/100 repeated to 3 channels, minus
  the ImageNet mean), as in the reference code;
- texture: LPIPS AlexNet feature maps at ``relu1`` (64 ch) and ``relu4`` (256 ch) of grayscale images;
- colour: ViT-B/16 patch tokens (196 x 768) of 21x21-Gaussian-blurred images.

Weights cannot be downloaded here. Local torchvision state dicts (``.safetensors``) given in
``features.{vgg,alexnet,vit}_weights`` are loaded into the torchvision architectures. Otherwise
the project's own networks are used: the same layer lists with ``width_div`` times fewer channels
(VGG-19, AlexNet) and a small ViT, pre-trained with SimCLR (NT-Xent of the core) on the
unlabelled RGB target images of the dataset, and cached (``$PRETRAINLAB_CACHE/data/isp-features``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pretrainlab.core.train import Task
from pretrainlab.isp.config import FeatureNetConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]


def _torchvision_init(net: nn.Sequential) -> nn.Sequential:
    """torchvision's VGG / AlexNet conv init (kaiming normal, fan_out): keeps a deep plain stack alive."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net


def vgg19_relu5_4(div: int = 1) -> nn.Sequential:
    """torchvision ``vgg19().features[:36]`` (up to relu5_4) with channels divided by ``div``."""
    layers: list[nn.Module] = []
    c = 3
    for v in VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            o = max(4, int(v) // div)
            layers += [nn.Conv2d(c, o, 3, padding=1), nn.ReLU(inplace=False)]
            c = o
    return _torchvision_init(nn.Sequential(*layers))


def alexnet_to_relu4(div: int = 1) -> nn.Sequential:
    """torchvision ``alexnet().features[:10]`` (LPIPS slices relu1 = [:2], relu4 = [:10])."""
    c = [max(4, x // div) for x in (64, 192, 384, 256)]
    return _torchvision_init(nn.Sequential(
        nn.Conv2d(3, c[0], 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(),
        nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU()))


def build_vit(cfg: FeatureNetConfig, paper_size: bool) -> nn.Module:
    from torchvision.models import VisionTransformer

    if paper_size:  # ViT-B/16
        return VisionTransformer(224, 16, 12, 12, 768, 3072)
    return VisionTransformer(cfg.vit_image_size, cfg.vit_patch, cfg.vit_depth, cfg.vit_heads, cfg.vit_dim, 2 * cfg.vit_dim)


def vit_tokens(vit: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Patch tokens ``(B, N, D)`` of a torchvision ViT (class token dropped)."""
    t = vit._process_input(x)  # type: ignore[operator]
    cls = vit.class_token.expand(t.shape[0], -1, -1)  # type: ignore[union-attr]
    t = vit.encoder(torch.cat([cls, t], dim=1))  # type: ignore[operator]
    return t[:, 1:]


def gaussian_blur(x: torch.Tensor, k: int = 21, sigma: float = 3.0) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding: ``(B, C, H, W)`` -> same."""
    r = torch.arange(k, dtype=torch.float32, device=x.device) - (k - 1) / 2
    g = torch.exp(-0.5 * (r / sigma) ** 2)
    g = (g / g.sum()).to(x.dtype)
    c = x.shape[1]
    pad = min(k // 2, x.shape[-1] - 1, x.shape[-2] - 1)
    if pad < k // 2:  # small images: shrink the kernel to fit a reflect pad
        kk = 2 * pad + 1
        g = g[(k - kk) // 2:(k - kk) // 2 + kk]
        g = g / g.sum()
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def rgb_to_lab_l(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``(B, 3, H, W)`` in [0, 1] -> CIE Lab L ``(B, 1, H, W)`` in [0, 100] (D65), float32."""
    x = rgb.float().clamp(0, 1)
    lin = torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).clamp_min(1e-8) ** 2.4)
    y = 0.2126729 * lin[:, 0:1] + 0.7151522 * lin[:, 1:2] + 0.0721750 * lin[:, 2:3]
    f = torch.where(y > (6 / 29) ** 3, y.clamp_min(1e-8) ** (1 / 3), y / (3 * (6 / 29) ** 2) + 4 / 29)
    return 116 * f - 16


def grayscale(rgb: torch.Tensor) -> torch.Tensor:
    """0.299 R + 0.587 G + 0.114 B, ``(B, 1, H, W)``."""
    return 0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]


class FeatureNets(nn.Module):
    """The three frozen feature extractors of the losses."""

    def __init__(self, cfg: FeatureNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vgg = vgg19_relu5_4(1 if cfg.vgg_weights else cfg.width_div)
        self.alex = alexnet_to_relu4(1 if cfg.alexnet_weights else cfg.width_div)
        self.vit = build_vit(cfg, bool(cfg.vit_weights))
        self.vit_size = 224 if cfg.vit_weights else cfg.vit_image_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
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

    def content(self, rgb: torch.Tensor) -> torch.Tensor:
        """Ref code content input: L/100 repeated to 3 channels minus the ImageNet mean -> relu5_4."""
        lum = (rgb_to_lab_l(rgb) / 100.0).expand(-1, 3, -1, -1)
        return self.vgg(lum - self.mean)

    def texture(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Grayscale -> AlexNet relu1 ``(B, c1, H/4, W/4)`` and relu4 ``(B, c4, h, w)``."""
        g = grayscale(rgb.float().clamp(0, 1)).expand(-1, 3, -1, -1)
        x = (g - self.mean) / self.std
        r1 = self.alex[:2](x)
        return r1, self.alex[2:](r1)

    def colour(self, rgb: torch.Tensor, k: int = 21, sigma: float = 3.0) -> torch.Tensor:
        """Blur (k x k Gaussian) -> resize to the ViT input -> patch tokens ``(B, N, D)``."""
        x = gaussian_blur(rgb.float().clamp(0, 1), k, sigma)
        if x.shape[-1] != self.vit_size or x.shape[-2] != self.vit_size:
            x = F.interpolate(x, size=(self.vit_size, self.vit_size), mode="bilinear", align_corners=False)
        return vit_tokens(self.vit, (x - self.mean) / self.std)


# ------------------------------------------------------------------------- SSL pre-training


class FeatureSSLTask(Task):
    """SimCLR on unlabelled RGB images for the project feature nets: ``{"image": (B, 3, S, S)}``.

    One NT-Xent term per network (VGG relu5_4, AlexNet relu4, ViT mean patch token), each with its
    own 2-layer projector.
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
        feats = {"vgg": n.vgg((v - n.mean) / n.std).mean(dim=(2, 3)),
                 "alex": n.alex((v - n.mean) / n.std).mean(dim=(2, 3)),
                 "vit": vit_tokens(n.vit, (vs - n.mean) / n.std).mean(dim=1)}
        out: dict[str, torch.Tensor] = {}
        for k, f in feats.items():
            z1, z2 = self.proj[k](f).float().chunk(2)
            out[f"nce_{k}"] = nt_xent(z1, z2, temperature=self.cfg.ssl_temperature)
        out["loss"] = sum(out.values())  # type: ignore[assignment]
        return out


class _Images(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i]}


def rgb_images(root: Path, size: int) -> torch.Tensor:
    """Unlabelled RGB images of a dataset (train targets + unpaired targets), ``(N, 3, S, S)``."""
    from pretrainlab.core.data import DataError
    from pretrainlab.isp.formats import RGB_FOLDERS, RGB_SUFFIXES, read_rgb

    files = []
    for sub in ("train",):
        for name in RGB_FOLDERS:
            for folder in (Path(root) / sub / name, Path(root) / sub / f"{name}_unpaired"):
                if folder.is_dir():
                    files += sorted(p for p in folder.iterdir() if p.suffix.lower() in RGB_SUFFIXES)
    if not files:
        raise DataError(root, "no RGB images found for the feature-network pre-training")
    files = files[:20000]
    imgs = []
    for p in files:
        x = read_rgb(p)
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
        imgs.append(x)
    return torch.stack(imgs)


def _key(cfg: FeatureNetConfig, data_root: Path, seed: int) -> str:
    d = dataclasses.asdict(cfg)
    man = Path(data_root) / "manifest.json"
    tag = hashlib.sha256(man.read_bytes()).hexdigest()[:12] if man.exists() else str(Path(data_root).resolve())
    return hashlib.sha256(json.dumps([d, tag, seed], sort_keys=True).encode()).hexdigest()[:16]


def load_feature_nets(cfg: FeatureNetConfig, data_root: Path | None, seed: int = 0, device: str = "auto",
                      progress: bool = True) -> FeatureNets:
    """User weights when given; otherwise the project's SimCLR-pre-trained nets (trained once, cached)."""
    from pretrainlab.core.checkpoint import CheckpointError, find_checkpoint, load_tensors
    from pretrainlab.core.config import TrainConfig
    from pretrainlab.core.data import cache_root
    from pretrainlab.core.train import Trainer, seed_everything

    seed_everything(seed)
    nets = FeatureNets(cfg)
    need_ssl = not (cfg.vgg_weights and cfg.alexnet_weights and cfg.vit_weights)
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
            tmp = folder.with_name(folder.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            task = FeatureSSLTask(nets, cfg)
            images = rgb_images(Path(data_root), max(cfg.ssl_crop, 32))
            bs = min(cfg.ssl_batch, len(images))
            tc = TrainConfig(max_steps=cfg.ssl_steps, batch_size=bs, lr=cfg.ssl_lr, weight_decay=1e-4,
                             warmup_steps=min(10, cfg.ssl_steps // 10), seed=seed, device=device,
                             log_every=max(1, cfg.ssl_steps // 5), progress=progress, tensorboard=False)
            Trainer(tc, tmp, full_config={"features": dataclasses.asdict(cfg), "train": dataclasses.asdict(tc)}).fit(
                task, _Images(images))
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
            ckpt = find_checkpoint(folder)
        sd, _ = load_tensors(ckpt / "model.safetensors")
        nets.load_state_dict({k[len("nets."):]: v for k, v in sd.items() if k.startswith("nets.")}, strict=False)
    for name, path, mod, prefix in (("vgg", cfg.vgg_weights, nets.vgg, "features."),
                                    ("alexnet", cfg.alexnet_weights, nets.alex, "features."),
                                    ("vit", cfg.vit_weights, nets.vit, "")):
        if path:
            sd, _ = load_tensors(Path(path))
            sub = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)} if prefix else sd
            own = mod.state_dict()
            mod.load_state_dict({k: v for k, v in sub.items() if k in own}, strict=True)
            nets.source[name] = f"user weights {path}"
    return nets.freeze()


def describe(nets: FeatureNets) -> dict[str, Any]:
    return dict(nets.source)
