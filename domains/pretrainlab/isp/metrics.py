"""Image-quality metrics of the paper's tables: PSNR, SSIM, MS-SSIM, Delta-E 2000 (+ LPIPS n/a offline).

SSIM: 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, on [0, 1] RGB, averaged over channels.
MS-SSIM: the standard 5 scale weights, using as many scales as the image size allows (small
tiles get fewer scales; weights renormalised). Delta-E 2000: scikit-image CIEDE2000 on CIE Lab (D65).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of ``(B, 3, H, W)`` in [0, 1] -> ``(B,)``."""
    mse = ((x.float() - y.float()) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def _window(size: int = 11, sigma: float = 1.5, device: torch.device | None = None) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-0.5 * (r / sigma) ** 2)
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def _ssim_parts(x: torch.Tensor, y: torch.Tensor, win: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = x.shape[1]
    w = win.expand(c, 1, -1, -1)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = F.conv2d(x, w, groups=c), F.conv2d(y, w, groups=c)
    sxx = F.conv2d(x * x, w, groups=c) - mx * mx
    syy = F.conv2d(y * y, w, groups=c) - my * my
    sxy = F.conv2d(x * y, w, groups=c) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    ssim_map = ((2 * mx * my + c1) / (mx * mx + my * my + c1)) * cs
    return ssim_map.flatten(1).mean(1), cs.flatten(1).mean(1)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM ``(B,)``."""
    win = _window(min(11, x.shape[-1], x.shape[-2]), 1.5, x.device)
    return _ssim_parts(x.float(), y.float(), win)[0]


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image MS-SSIM ``(B,)`` with as many of the 5 scales as fit an 11x11 window."""
    x, y = x.float(), y.float()
    n = 1
    while n < 5 and min(x.shape[-2:]) // (2 ** n) >= 11:
        n += 1
    w = torch.tensor(MS_WEIGHTS[:n], device=x.device)
    w = w / w.sum()
    win = _window(min(11, x.shape[-1], x.shape[-2]), 1.5, x.device)
    vals = []
    for i in range(n):
        s, cs = _ssim_parts(x, y, win)
        vals.append(s if i == n - 1 else cs)
        if i < n - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    v = torch.stack(vals, dim=1).clamp_min(1e-6)
    return torch.prod(v ** w, dim=1)


def delta_e2000(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean CIEDE2000 per image ``(B,)`` (scikit-image, on CPU)."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    a = x.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    b = y.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    out = [float(np.mean(deltaE_ciede2000(rgb2lab(p), rgb2lab(q)))) for p, q in zip(a, b)]
    return torch.tensor(out)


def image_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Means over a batch: PSNR, SSIM, MS-SSIM, Delta-E 2000 (pred clamped to [0, 1])."""
    p = pred.float().clamp(0, 1)
    t = target.float()
    return {"PSNR": float(psnr(p, t).mean()), "SSIM": float(ssim(p, t).mean()),
            "MS-SSIM": float(ms_ssim(p, t).mean()), "DeltaE2000": float(delta_e2000(p, t).mean())}


@torch.no_grad()
def evaluate_generator(render: Any, pairs: Any, batch: int = 32, device: str = "cpu") -> dict[str, float]:
    """Metrics of ``render((B, 4, h, w)) -> (B, 3, 2h, 2w)`` over an ``ISPPairs`` test split."""
    preds, tgts = [], []
    for i in range(0, len(pairs), batch):
        items = [pairs[j] for j in range(i, min(len(pairs), i + batch))]
        raw = torch.stack([it["raw"] for it in items]).to(device)
        preds.append(render(raw).float().clamp(0, 1).cpu())
        tgts.append(torch.stack([it["target"] for it in items]))
    return image_metrics(torch.cat(preds), torch.cat(tgts))
