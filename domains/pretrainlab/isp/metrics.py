"""Image-quality metrics of the paper's tables: PSNR, SSIM, MS-SSIM, Delta-E 2000, LPIPS-Alex (optional).

As the reference's scoring (ref: pretrained/get_inference.py): predictions are first saved-and-read
8-bit PNGs (``x * 255`` truncated; :func:`quantize`), PSNR is per image and averaged, SSIM uses an
11x11 Gaussian window (sigma 1.5, K1 0.01, K2 0.03) on [0, 1] RGB (as ``tf.image.ssim``), MS-SSIM
the standard 5 scale weights. MS-SSIM needs images of at least 176 pixels for its 5 scales; smaller
images get fewer scales (weights renormalised) and the count is reported (``MS-SSIM_scales``; the
reference's TensorFlow call would fail there). Delta-E 2000: scikit-image CIEDE2000 on CIE Lab
(D65), the NTIRE 2026 metric. LPIPS-Alex (v0.1, inputs scaled to [-1, 1]) only with local weights:
the torchvision AlexNet trunk (``features.alexnet_weights``) and the LPIPS linear layers
(``eval.lpips_weights``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """What an 8-bit PNG of ``x`` reads back as: ``floor(clamp(x, 0, 1) * 255) / 255``."""
    return torch.floor(x.float().clamp(0, 1) * 255) / 255


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


def ms_ssim_scales(h: int, w: int) -> int:
    """How many of the 5 MS-SSIM scales an ``h x w`` image allows (the coarsest must fit the 11x11 window)."""
    n = 1
    while n < 5 and min(h, w) // (2 ** n) >= 11:
        n += 1
    return n


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image MS-SSIM ``(B,)`` with :func:`ms_ssim_scales` scales (weights renormalised when < 5)."""
    x, y = x.float(), y.float()
    n = ms_ssim_scales(*x.shape[-2:])
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


class LPIPSAlex(nn.Module):
    """LPIPS v0.1 with the AlexNet trunk (Zhang et al. 2018): ``(B, 3, H, W)`` in [0, 1] x2 -> ``(B,)``."""

    SLICES = ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12))
    CHANNELS = (64, 192, 384, 256, 256)

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import alexnet

        self.trunk = alexnet().features[:12]
        self.lins = nn.ModuleList([nn.Conv2d(c, 1, 1, bias=False) for c in self.CHANNELS])
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    @staticmethod
    def _unit(f: torch.Tensor) -> torch.Tensor:
        return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a, b = (2 * x.float() - 1 - self.shift) / self.scale, (2 * y.float() - 1 - self.shift) / self.scale
        total = x.new_zeros(x.shape[0])
        for (s, e), lin in zip(self.SLICES, self.lins):
            a, b = self.trunk[s:e](a), self.trunk[s:e](b)
            total = total + lin((self._unit(a) - self._unit(b)) ** 2).mean(dim=(1, 2, 3))
        return total


def load_lpips(alexnet_weights: str, lpips_weights: str) -> LPIPSAlex:
    """LPIPS-Alex from local files: a torchvision AlexNet state dict and the LPIPS ``lin*`` layers."""
    from pretrainlab.core.checkpoint import CheckpointError, load_tensors, load_torch_file

    def read(path: str) -> dict[str, torch.Tensor]:
        p = Path(path)
        sd = load_tensors(p)[0] if p.suffix == ".safetensors" else load_torch_file(p, what="weights file")
        if not isinstance(sd, dict):
            raise CheckpointError(f"{p}: expected a state dict")
        return sd

    if not alexnet_weights:
        raise CheckpointError(f"{lpips_weights}: LPIPS needs the AlexNet trunk too; set features.alexnet_weights")
    m = LPIPSAlex()
    trunk = {k[len("features."):]: v for k, v in read(alexnet_weights).items() if k.startswith("features.")}
    lin_sd = read(lpips_weights)
    lins = {}
    for i in range(5):
        key = next((k for k in (f"lin{i}.model.1.weight", f"lins.{i}.model.1.weight", f"lin{i}.model.0.weight")
                    if k in lin_sd), None)
        if key is None:
            raise CheckpointError(f"{lpips_weights}: no LPIPS linear layer lin{i} (expected 'lin{i}.model.1.weight')")
        lins[f"{i}.weight"] = lin_sd[key]
    try:
        m.trunk.load_state_dict({k: v for k, v in trunk.items() if k in m.trunk.state_dict()}, strict=True)
        m.lins.load_state_dict(lins, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{lpips_weights}: LPIPS weights do not fit: {str(e).splitlines()[-1].strip()}") from None
    return m.eval()


def image_metrics(pred: torch.Tensor, target: torch.Tensor, lpips: LPIPSAlex | None = None) -> dict[str, float]:
    """Means over a batch: PSNR, SSIM, MS-SSIM, Delta-E 2000 (+ LPIPS); ``pred`` clamped to [0, 1]."""
    p = pred.float().clamp(0, 1)
    t = target.float()
    out = {"PSNR": float(psnr(p, t).mean()), "SSIM": float(ssim(p, t).mean()),
           "MS-SSIM": float(ms_ssim(p, t).mean()), "DeltaE2000": float(delta_e2000(p, t).mean())}
    if lpips is not None:
        with torch.no_grad():
            out["LPIPS"] = float(lpips(p, t).mean())
    return out


@torch.no_grad()
def evaluate_generator(render: Any, pairs: Any, batch: int = 32, device: str = "cpu", quantized: bool = True,
                       lpips: LPIPSAlex | None = None) -> dict[str, float]:
    """Metrics of ``render((B, 4, h, w)) -> (B, 3, 2h, 2w)`` over a paired test split (per-image means).

    ``quantized``: score the 8-bit image the reference saves (:func:`quantize`). Adds
    ``MS-SSIM_scales`` (how many of the 5 scales the image size allowed).
    """
    sums: dict[str, float] = {}
    n = 0
    scales = 5
    for i in range(0, len(pairs), batch):
        items = [pairs[j] for j in range(i, min(len(pairs), i + batch))]
        raw = torch.stack([it["raw"] for it in items]).to(device)
        pred = render(raw).float().clamp(0, 1).cpu()
        pred = quantize(pred) if quantized else pred
        tgt = torch.stack([it["target"] for it in items])
        scales = ms_ssim_scales(*tgt.shape[-2:])
        for k, v in image_metrics(pred, tgt, lpips).items():
            sums[k] = sums.get(k, 0.0) + v * len(items)
        n += len(items)
    if scales < 5:
        warnings.warn(f"MS-SSIM on {tuple(tgt.shape[-2:])} images uses {scales} of its 5 scales "
                      "(176 pixels are needed for all 5)", stacklevel=2)
    out = {k: v / n for k, v in sums.items()}
    out["MS-SSIM_scales"] = float(scales)
    return out
