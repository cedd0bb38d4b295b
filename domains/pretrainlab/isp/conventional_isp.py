"""Conventional ISP: the content reference of unpaired training and the baseline row (paper Sec. 3.2).

Ref code pipeline: demosaic (Menon 2007, RGGB), white balance with fixed gains [1.6, 1.2, 1.4],
clip to [0, 1], per-image min-max stretch, gamma 1/2.2. Bilinear demosaicing is also provided.
Everything is batched torch (``(B, 4, h, w)`` packed, normalised RAW -> ``(B, 3, 2h, 2w)`` sRGB).

Deviation: Menon 2007 is implemented here in torch (the DDFAPD directional interpolation, the
decision on the 5x5 classifier and the R/B interpolation of ``colour_demosaicing``) without its
optional refining step, since ``colour_demosaicing`` is not a dependency.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pretrainlab.isp.bayer import color_masks, unpack


def _conv(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Same-size 2-D convolution (scipy ``convolve`` semantics: flipped kernel, reflect border)."""
    kh, kw = k.shape
    xp = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
    return F.conv2d(xp, k.flip(0, 1).to(x)[None, None])


def _cnv_h(x: torch.Tensor, k: list[float]) -> torch.Tensor:
    return _conv(x, torch.tensor([k]))


def _cnv_v(x: torch.Tensor, k: list[float]) -> torch.Tensor:
    return _conv(x, torch.tensor([k]).T)


def demosaic_bilinear(mosaic: torch.Tensor, pattern: str = "RGGB") -> torch.Tensor:
    """``(B, 1, H, W)`` mosaic -> ``(B, 3, H, W)`` by bilinear interpolation of each colour plane."""
    m = color_masks(pattern, mosaic.shape[-2], mosaic.shape[-1], mosaic.device).to(mosaic.dtype)
    k_g = torch.tensor([[0, 1, 0], [1, 4, 1], [0, 1, 0]], dtype=mosaic.dtype) / 4
    k_rb = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=mosaic.dtype) / 4
    planes = [_conv(mosaic * m[c], k_g if c == 1 else k_rb) for c in range(3)]
    return torch.cat(planes, dim=1)


def demosaic_menon2007(mosaic: torch.Tensor, pattern: str = "RGGB") -> torch.Tensor:
    """DDFAPD demosaicing (Menon, Andriani & Calvagno 2007): ``(B, 1, H, W)`` -> ``(B, 3, H, W)``."""
    cfa = mosaic
    h, w = cfa.shape[-2:]
    msk = color_masks(pattern, h, w, cfa.device).to(cfa.dtype)
    r_m, g_m, b_m = msk[0], msk[1], msk[2]
    h0, h1 = [0.0, 0.5, 0.0, 0.5, 0.0], [-0.25, 0.0, 0.5, 0.0, -0.25]
    r, g, b = cfa * r_m, cfa * g_m, cfa * b_m
    g_h = torch.where(g_m == 0, _cnv_h(cfa, h0) + _cnv_h(cfa, h1), g)
    g_v = torch.where(g_m == 0, _cnv_v(cfa, h0) + _cnv_v(cfa, h1), g)
    c_h = torch.where(r_m == 1, r - g_h, torch.zeros_like(r))
    c_h = torch.where(b_m == 1, b - g_h, c_h)
    c_v = torch.where(r_m == 1, r - g_v, torch.zeros_like(r))
    c_v = torch.where(b_m == 1, b - g_v, c_v)
    d_h = (c_h - F.pad(c_h, (0, 2, 0, 0), mode="reflect")[..., :, 2:]).abs()
    d_v = (c_v - F.pad(c_v, (0, 0, 0, 2), mode="reflect")[..., 2:, :]).abs()
    k = torch.tensor([[0, 0, 1, 0, 1], [0, 0, 0, 1, 0], [0, 0, 3, 0, 3], [0, 0, 0, 1, 0], [0, 0, 1, 0, 1]],
                     dtype=cfa.dtype)
    dd_h = F.conv2d(F.pad(d_h, (2, 2, 2, 2)), k.flip(0, 1)[None, None])
    dd_v = F.conv2d(F.pad(d_v, (2, 2, 2, 2)), k.T.flip(0, 1)[None, None])
    mask = dd_v >= dd_h
    g = torch.where(mask, g_h, g_v)
    r_rows = (r_m.amax(dim=1, keepdim=True) > 0).to(cfa.dtype).expand(h, w)
    b_rows = (b_m.amax(dim=1, keepdim=True) > 0).to(cfa.dtype).expand(h, w)
    kb = [0.5, 0.0, 0.5]
    gr, gb = (g_m == 1) & (r_rows == 1), (g_m == 1) & (b_rows == 1)
    r = torch.where(gr, g + _cnv_h(r, kb) - _cnv_h(g, kb), r)
    r = torch.where(gb, g + _cnv_v(r, kb) - _cnv_v(g, kb), r)
    b = torch.where(gb, g + _cnv_h(b, kb) - _cnv_h(g, kb), b)
    b = torch.where(gr, g + _cnv_v(b, kb) - _cnv_v(g, kb), b)
    at_b = (b_rows == 1) & (b_m == 1)
    r = torch.where(at_b, torch.where(mask, b + _cnv_h(r, kb) - _cnv_h(b, kb), b + _cnv_v(r, kb) - _cnv_v(b, kb)), r)
    at_r = (r_rows == 1) & (r_m == 1)
    b = torch.where(at_r, torch.where(mask, r + _cnv_h(b, kb) - _cnv_h(r, kb), r + _cnv_v(b, kb) - _cnv_v(r, kb)), b)
    return torch.cat([r, g, b], dim=1)


DEMOSAIC = {"menon2007": demosaic_menon2007, "bilinear": demosaic_bilinear}


@torch.no_grad()
def conventional_isp(packed: torch.Tensor, pattern: str = "RGGB", demosaic: str = "menon2007",
                     wb_gains: tuple[float, float, float] = (1.6, 1.2, 1.4), gamma: float = 2.2) -> torch.Tensor:
    """``(B, 4, h, w)`` normalised packed RAW -> ``(B, 3, 2h, 2w)`` sRGB in [0, 1] (ref code pipeline)."""
    if demosaic not in DEMOSAIC:
        raise ValueError(f"unknown demosaic '{demosaic}'; use one of {', '.join(DEMOSAIC)}")
    x = packed.float()
    rgb = DEMOSAIC[demosaic](unpack(x), pattern)
    rgb = rgb * torch.tensor(wb_gains, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    rgb = rgb.clamp(0, 1)
    lo = rgb.amin(dim=(1, 2, 3), keepdim=True)
    hi = rgb.amax(dim=(1, 2, 3), keepdim=True)
    rgb = (rgb - lo) / (hi - lo).clamp_min(1e-8)
    return rgb.clamp(0, 1) ** (1.0 / gamma)
