"""Image transforms of the CLIP domain: training views cropped from the full-resolution image, and
open_clip's evaluation transform.

Training (ref ``datasets.get_train_dataset``):

* global view: ``RandomResizedCrop(S, scale=(0.5, 1), interpolation=BICUBIC)``, nothing else;
* augmented views: ``RandomResizedCrop(S, scale=(0.08, 1), BICUBIC)``, ``ColorJitter(0.4, 0.4, 0.4, 0.1)``
  with p 0.8, ``RandomGrayscale(0.2)``, Gaussian blur (sigma 0.1-2, PIL radius) with p 0.5, solarize
  with p 0 and a horizontal flip.

The crops (and flips) are always taken in the data loader from the decoded full-resolution PIL image
with torchvision's ``RandomResizedCrop`` algorithm and ``resized_crop`` (:class:`ViewMaker`), so nothing
is squashed to the model size first. The photometric part of the augmented views runs either there too (``image_aug.photometric:
worker``: the reference's torchvision / PIL ops, exact) or batched on the training device
(``device``, the default: :func:`device_photometric`). Remaining differences of ``device``: the jitter
factors are applied in a fixed order (brightness, contrast, saturation, hue) instead of a random
permutation, hue is a YIQ rotation instead of an HSV shift, and the blur is a separable Gaussian
kernel of radius ``ceil(3 sigma_max)`` instead of PIL's box-blur approximation.

Evaluation: open_clip's own ``image_transform(is_train=False)``: resize of the shorter side with the
model's interpolation, center crop, normalisation (:func:`eval_transform`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

from pretrainlab.clip.config import ImageAugConfig
from pretrainlab.core import augment


class PILGaussianBlur:
    """ref ``utils.GaussianBlur``: ``ImageFilter.GaussianBlur(radius=U(sigma))`` (Python's ``random``)."""

    def __init__(self, sigma: tuple[float, float]) -> None:
        self.sigma = sigma

    def __call__(self, img: Image.Image) -> Image.Image:
        return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))


class Solarize:
    """ref ``utils.Solarization``: ``ImageOps.solarize`` (threshold 128)."""

    def __call__(self, img: Image.Image) -> Image.Image:
        return ImageOps.solarize(img)


def rrc_params(width: int, height: int, scale: tuple[float, float], ratio: tuple[float, float],
               rng: random.Random) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` of a random resized crop: torchvision's ``RandomResizedCrop.get_params``
    algorithm (10 tries of area fraction ~ U(scale) and log-aspect ~ U(log ratio), then the central
    crop of the clamped aspect), drawn from ``rng``."""
    area = height * width
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(lo, hi))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        h, w = height, round(height * max(ratio))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


_PIL_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


class ViewMaker:
    """Data-loader side of the training views: ``PIL image -> (V, 3, S, S) uint8``.

    ``V = 1 + n_aug``: the global view first, then ``n_aug`` augmented views, each a random resized
    crop of the full-resolution image (:func:`rrc_params`; cropped, then resized, as torchvision's
    ``resized_crop`` does on a PIL image) and a horizontal flip for the augmented views.
    With ``photometric="worker"`` the reference's torchvision / PIL colour ops follow; with
    ``"device"`` they run batched in the task. One ``random.Random`` per sample, seeded from torch's
    RNG (checkpointed by the trainer; seeded per DataLoader worker)."""

    def __init__(self, size: int, a: ImageAugConfig, n_aug: int) -> None:
        from torchvision import transforms as T

        self.size, self.a, self.n_aug = size, a, n_aug
        self.resample = _PIL_RESAMPLE[a.interpolation]
        self.photometric = None
        if a.photometric == "worker":
            self.photometric = T.Compose([T.RandomApply([T.ColorJitter(*a.jitter)], p=a.jitter_p),
                                          T.RandomGrayscale(p=a.grayscale_p),
                                          T.RandomApply([PILGaussianBlur(tuple(a.blur_sigma))], p=a.blur_p),
                                          T.RandomApply([Solarize()], p=a.solarize_p)])

    @property
    def num_views(self) -> int:
        return 1 + self.n_aug

    def crop(self, img: Image.Image, scale: tuple[float, float], rng: random.Random) -> Image.Image:
        top, left, h, w = rrc_params(img.width, img.height, tuple(scale), tuple(self.a.ratio), rng)
        return img.crop((left, top, left + w, top + h)).resize((self.size, self.size), self.resample)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        rng = random.Random(int(torch.randint(0, 2**62, ()).item()))
        views = [self.crop(img, self.a.global_scale, rng)]
        for _ in range(self.n_aug):
            v = self.crop(img, self.a.aug_scale, rng)
            if self.photometric is not None:
                v = self.photometric(v)
            if rng.random() < self.a.hflip_p:
                v = v.transpose(Image.FLIP_LEFT_RIGHT)
            views.append(v)
        arr = np.stack([np.asarray(v, dtype=np.uint8) for v in views])  # (V, S, S, 3)
        return torch.from_numpy(arr).permute(0, 3, 1, 2)


def blur_kernel(sigma_max: float, size: int) -> int:
    """Odd kernel covering +-3 sigma_max (PIL's blur support), at most the image side allows (reflect pad)."""
    return max(3, min(2 * math.ceil(3 * sigma_max) + 1, 2 * size - 1))


@torch.no_grad()
def device_photometric(x: torch.Tensor, a: ImageAugConfig) -> torch.Tensor:
    """The photometric part of the augmented views, batched on the device: ``(B, 3, S, S)`` in [0, 1]."""
    v = augment.color_jitter(x, *a.jitter, p=a.jitter_p)
    v = augment.random_grayscale(v, a.grayscale_p)
    if a.blur_p > 0:
        v = augment.gaussian_blur(v, a.blur_p, tuple(a.blur_sigma), kernel=blur_kernel(a.blur_sigma[1], x.shape[-1]))
    if a.solarize_p > 0:
        m = (torch.rand(v.shape[0], 1, 1, 1, device=v.device) < a.solarize_p).float()
        v = m * torch.where(v >= 128 / 255, 1 - v, v) + (1 - m) * v
    return v


def eval_transform(size: int, mean: tuple[float, ...], std: tuple[float, ...], interpolation: str = "bicubic",
                   resize_mode: str = "shortest", fill_color: int = 0) -> Callable[[Image.Image], torch.Tensor]:
    """open_clip's evaluation transform (``open_clip.image_transform(..., is_train=False)``):
    ``PIL image -> (3, S, S)`` float, normalised."""
    import open_clip

    return open_clip.image_transform(size, is_train=False, mean=tuple(mean), std=tuple(std),
                                     resize_mode=resize_mode, interpolation=interpolation, fill_color=fill_color)


def model_eval_transform(model: torch.nn.Module) -> Callable[[Image.Image], torch.Tensor]:
    """The evaluation transform open_clip builds for ``model`` (``create_model_and_transforms``' second
    transform): its own size, mean / std, interpolation and resize mode."""
    import open_clip

    pp = dict(open_clip.get_model_preprocess_cfg(model))
    size = pp.get("size", 224)
    return eval_transform(size if isinstance(size, int) else tuple(size), pp.get("mean", open_clip.OPENAI_DATASET_MEAN),
                          pp.get("std", open_clip.OPENAI_DATASET_STD), pp.get("interpolation", "bicubic"),
                          pp.get("resize_mode", "shortest"), pp.get("fill_color", 0))
