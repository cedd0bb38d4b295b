"""Batched image augmentations that run on the batch's device (GPU-friendly, no per-sample Python).

They draw from torch's global RNG, whose state the trainer checkpoints, so a resumed run applies
the same augmentations as an uninterrupted one. Shapes: images ``(B, C, H, W)`` float in [0, 1].
These are the SimCLR-family augmentations (Chen et al. 2020, Appendix A) used by several domains.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_resized_crop(x: torch.Tensor, size: int | tuple[int, int], scale: tuple[float, float] = (0.2, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3), hflip_p: float = 0.0) -> torch.Tensor:
    """Per-sample random crop (area fraction in ``scale``, aspect in ``ratio``) resized to ``size``.

    Implemented with one ``affine_grid`` + ``grid_sample`` (bilinear) for the whole batch; an
    optional horizontal flip is folded into the same affine map.
    """
    b = x.shape[0]
    out_h, out_w = (size, size) if isinstance(size, int) else size
    dev = x.device
    area = torch.empty(b, device=dev).uniform_(*scale)
    logr = torch.empty(b, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    r = torch.exp(logr)
    w = torch.sqrt(area * r).clamp(max=1.0)
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (torch.rand(b, device=dev) * 2 - 1) * (1 - w)
    cy = (torch.rand(b, device=dev) * 2 - 1) * (1 - h)
    flip = torch.where(torch.rand(b, device=dev) < hflip_p, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, [b, x.shape[1], out_h, out_w], align_corners=False)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def color_jitter(x: torch.Tensor, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4,
                 hue: float = 0.1, p: float = 0.8) -> torch.Tensor:
    """Random brightness / contrast / saturation / hue shift per sample, applied with probability ``p``."""
    b = x.shape[0]
    dev = x.device
    apply = (torch.rand(b, 1, 1, 1, device=dev) < p).float()
    y = x
    if brightness:
        y = y * torch.empty(b, 1, 1, 1, device=dev).uniform_(1 - brightness, 1 + brightness)
    if contrast:
        mean = y.mean(dim=(1, 2, 3), keepdim=True)
        y = (y - mean) * torch.empty(b, 1, 1, 1, device=dev).uniform_(1 - contrast, 1 + contrast) + mean
    if x.shape[1] == 3 and saturation:
        gray = (0.299 * y[:, 0:1] + 0.587 * y[:, 1:2] + 0.114 * y[:, 2:3])
        y = (y - gray) * torch.empty(b, 1, 1, 1, device=dev).uniform_(1 - saturation, 1 + saturation) + gray
    if x.shape[1] == 3 and hue:
        # rotate chroma around the gray axis (YIQ hue rotation)
        ang = torch.empty(b, device=dev).uniform_(-hue, hue) * 2 * math.pi
        c, s = torch.cos(ang), torch.sin(ang)
        to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=dev)
        from_yiq = torch.linalg.inv(to_yiq)
        rot = torch.zeros(b, 3, 3, device=dev)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = c, -s, s, c
        m = from_yiq @ rot @ to_yiq
        y = torch.einsum("bij,bjhw->bihw", m, y)
    y = y.clamp(0, 1)
    return apply * y + (1 - apply) * x


def random_grayscale(x: torch.Tensor, p: float = 0.2) -> torch.Tensor:
    if x.shape[1] != 3:
        return x
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
    m = (torch.rand(x.shape[0], 1, 1, 1, device=x.device) < p).float()
    return m * gray + (1 - m) * x


def gaussian_blur(x: torch.Tensor, p: float = 0.5, sigma: tuple[float, float] = (0.1, 2.0), kernel: int = 9) -> torch.Tensor:
    """Per-sample Gaussian blur with sigma ~ U(sigma), applied with probability ``p`` (separable)."""
    b, c = x.shape[:2]
    dev = x.device
    sig = torch.empty(b, device=dev).uniform_(*sigma)
    half = kernel // 2
    t = torch.arange(-half, half + 1, device=dev, dtype=torch.float32)
    k = torch.exp(-(t[None] ** 2) / (2 * sig[:, None] ** 2))
    k = k / k.sum(1, keepdim=True)  # (B, K)
    kx = k[:, None, None, :].repeat(1, c, 1, 1).reshape(b * c, 1, 1, kernel)
    ky = k[:, None, :, None].repeat(1, c, 1, 1).reshape(b * c, 1, kernel, 1)
    y = x.float().reshape(1, b * c, *x.shape[2:])
    y = F.conv2d(F.pad(y, (half, half, 0, 0), mode="reflect"), kx, groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, half, half), mode="reflect"), ky, groups=b * c)
    y = y.reshape_as(x)
    m = (torch.rand(b, 1, 1, 1, device=dev) < p).float()
    return m * y + (1 - m) * x


def simclr_view(x: torch.Tensor, size: int, scale: tuple[float, float] = (0.2, 1.0), jitter: float = 0.4,
                blur_p: float = 0.5) -> torch.Tensor:
    """One SimCLR view: crop + flip, colour jitter (p 0.8), grayscale (p 0.2), blur."""
    v = random_resized_crop(x, size, scale=scale, hflip_p=0.5)
    v = color_jitter(v, jitter, jitter, jitter, min(0.1, jitter / 4))
    v = random_grayscale(v, 0.2)
    if blur_p > 0:
        v = gaussian_blur(v, blur_p, kernel=max(3, (size // 10) | 1))
    return v
