"""Conventional ISP: the content reference of unpaired training and the baseline row (paper Sec. 3.2).

The reference pipeline (ref: load_dataset.py ``raw_to_rgb_transform``), batched in torch:

1. the RAW counts, divided by 65535 (the reference reads the 10-bit PNG as 16-bit values and
   never subtracts the black level);
2. Menon 2007 DDFAPD demosaicing, RGGB, WITH its refining step (``colour_demosaicing``'s default,
   which the reference uses);
3. white balance with fixed gains ``[1.6, 1.2, 1.4]``, clip to [0, 1] (a no-op at the 1/65535
   scale of 10-bit counts: values stay below 0.026);
4. per-image min-max stretch over all channels, gamma ``1 / 2.2``.

The reference then resizes to 256x256 (an identity on its 256-pixel UltraISP patches); we keep the
RAW's size. The Menon port follows ``colour_demosaicing.demosaicing_CFA_Bayer_Menon2007`` step by
step (scipy ``mirror`` borders = torch ``reflect``; the 5x5 classifier with zero borders) and is
checked against it in the tests. Bilinear demosaicing is also provided.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from pretrainlab.isp.bayer import color_masks, unpack

REFERENCE_SCALE = 65535.0  # ref: raw_array / 65535.0


def _conv(x: torch.Tensor, k: torch.Tensor, mode: str = "reflect") -> torch.Tensor:
    """Same-size 2-D convolution (scipy ``convolve`` semantics: flipped kernel)."""
    kh, kw = k.shape
    pad = (kw // 2, kw // 2, kh // 2, kh // 2)
    xp = F.pad(x, pad, mode=mode) if mode == "reflect" else F.pad(x, pad)
    return F.conv2d(xp, k.flip(0, 1).to(x)[None, None])


def _cnv_h(x: torch.Tensor, k: list[float]) -> torch.Tensor:
    return _conv(x, torch.tensor([k], dtype=x.dtype))


def _cnv_v(x: torch.Tensor, k: list[float]) -> torch.Tensor:
    return _conv(x, torch.tensor([k], dtype=x.dtype).T)


def demosaic_bilinear(mosaic: torch.Tensor, pattern: str = "RGGB") -> torch.Tensor:
    """``(B, 1, H, W)`` mosaic -> ``(B, 3, H, W)`` by bilinear interpolation of each colour plane."""
    m = color_masks(pattern, mosaic.shape[-2], mosaic.shape[-1], mosaic.device).to(mosaic.dtype)
    k_g = torch.tensor([[0, 1, 0], [1, 4, 1], [0, 1, 0]], dtype=mosaic.dtype) / 4
    k_rb = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=mosaic.dtype) / 4
    planes = [_conv(mosaic * m[c], k_g if c == 1 else k_rb) for c in range(3)]
    return torch.cat(planes, dim=1)


def _rows_cols(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows / columns (``(H, W)`` 0/1) that hold any site of ``mask``."""
    h, w = mask.shape
    rows = (mask.amax(dim=1, keepdim=True) > 0).to(mask.dtype).expand(h, w)
    cols = (mask.amax(dim=0, keepdim=True) > 0).to(mask.dtype).expand(h, w)
    return rows, cols


def _refine(r: torch.Tensor, g: torch.Tensor, b: torch.Tensor, r_m: torch.Tensor, g_m: torch.Tensor,
            b_m: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Menon 2007 refining step (``colour_demosaicing.refining_step_Menon2007``)."""
    fir = [1 / 3, 1 / 3, 1 / 3]
    kb = [0.5, 0.0, 0.5]
    zero = torch.zeros_like(r)
    r_g, b_g = r - g, b - g
    b_g_m = torch.where(b_m == 1, torch.where(m, _cnv_h(b_g, fir), _cnv_v(b_g, fir)), zero)
    r_g_m = torch.where(r_m == 1, torch.where(m, _cnv_h(r_g, fir), _cnv_v(r_g, fir)), zero)
    g = torch.where(r_m == 1, r - r_g_m, g)
    g = torch.where(b_m == 1, b - b_g_m, g)
    r_r, r_c = _rows_cols(r_m)
    b_r, b_c = _rows_cols(b_m)
    r_g, b_g = r - g, b - g
    at = (g_m == 1) & (b_r == 1)
    r_g_m = torch.where(at, _cnv_v(r_g, kb), r_g_m)
    r = torch.where(at, g + r_g_m, r)
    at = (g_m == 1) & (b_c == 1)
    r_g_m = torch.where(at, _cnv_h(r_g, kb), r_g_m)
    r = torch.where(at, g + r_g_m, r)
    at = (g_m == 1) & (r_r == 1)
    b_g_m = torch.where(at, _cnv_v(b_g, kb), b_g_m)
    b = torch.where(at, g + b_g_m, b)
    at = (g_m == 1) & (r_c == 1)
    b_g_m = torch.where(at, _cnv_h(b_g, kb), b_g_m)
    b = torch.where(at, g + b_g_m, b)
    r_b = r - b
    r_b_m = torch.where(b_m == 1, torch.where(m, _cnv_h(r_b, fir), _cnv_v(r_b, fir)), zero)
    r = torch.where(b_m == 1, b + r_b_m, r)
    r_b_m = torch.where(r_m == 1, torch.where(m, _cnv_h(r_b, fir), _cnv_v(r_b, fir)), zero)
    b = torch.where(r_m == 1, r - r_b_m, b)
    return r, g, b


def demosaic_menon2007(mosaic: torch.Tensor, pattern: str = "RGGB", refining_step: bool = True) -> torch.Tensor:
    """DDFAPD demosaicing (Menon, Andriani & Calvagno 2007): ``(B, 1, H, W)`` -> ``(B, 3, H, W)``."""
    cfa = mosaic
    h, w = cfa.shape[-2:]
    msk = color_masks(pattern, h, w, cfa.device).to(cfa.dtype)
    r_m, g_m, b_m = msk[0], msk[1], msk[2]
    h0, h1 = [0.0, 0.5, 0.0, 0.5, 0.0], [-0.25, 0.0, 0.5, 0.0, -0.25]
    r, g, b = cfa * r_m, cfa * g_m, cfa * b_m
    zero = torch.zeros_like(r)
    g_h = torch.where(g_m == 0, _cnv_h(cfa, h0) + _cnv_h(cfa, h1), g)
    g_v = torch.where(g_m == 0, _cnv_v(cfa, h0) + _cnv_v(cfa, h1), g)
    c_h = torch.where(b_m == 1, b - g_h, torch.where(r_m == 1, r - g_h, zero))
    c_v = torch.where(b_m == 1, b - g_v, torch.where(r_m == 1, r - g_v, zero))
    d_h = (c_h - F.pad(c_h, (0, 2, 0, 0), mode="reflect")[..., :, 2:]).abs()
    d_v = (c_v - F.pad(c_v, (0, 0, 0, 2), mode="reflect")[..., 2:, :]).abs()
    k = torch.tensor([[0, 0, 1, 0, 1], [0, 0, 0, 1, 0], [0, 0, 3, 0, 3], [0, 0, 0, 1, 0], [0, 0, 1, 0, 1]],
                     dtype=cfa.dtype)
    dd_h = _conv(d_h, k, mode="constant")
    dd_v = _conv(d_v, k.T, mode="constant")
    m = dd_v >= dd_h
    g = torch.where(m, g_h, g_v)
    r_r, _ = _rows_cols(r_m)
    b_r, _ = _rows_cols(b_m)
    kb = [0.5, 0.0, 0.5]
    gr, gb = (g_m == 1) & (r_r == 1), (g_m == 1) & (b_r == 1)
    r = torch.where(gr, g + _cnv_h(r, kb) - _cnv_h(g, kb), r)
    r = torch.where(gb, g + _cnv_v(r, kb) - _cnv_v(g, kb), r)
    b = torch.where(gb, g + _cnv_h(b, kb) - _cnv_h(g, kb), b)
    b = torch.where(gr, g + _cnv_v(b, kb) - _cnv_v(g, kb), b)
    at_b = (b_r == 1) & (b_m == 1)
    r = torch.where(at_b, torch.where(m, b + _cnv_h(r, kb) - _cnv_h(b, kb), b + _cnv_v(r, kb) - _cnv_v(b, kb)), r)
    at_r = (r_r == 1) & (r_m == 1)
    b = torch.where(at_r, torch.where(m, r + _cnv_h(b, kb) - _cnv_h(r, kb), r + _cnv_v(b, kb) - _cnv_v(r, kb)), b)
    if refining_step:
        r, g, b = _refine(r, g, b, r_m, g_m, b_m, m)
    return torch.cat([r, g, b], dim=1)


DEMOSAIC = ("menon2007", "bilinear")


def demosaic(mosaic: torch.Tensor, pattern: str = "RGGB", method: str = "menon2007",
             refining_step: bool = True) -> torch.Tensor:
    if method == "menon2007":
        return demosaic_menon2007(mosaic, pattern, refining_step)
    if method == "bilinear":
        return demosaic_bilinear(mosaic, pattern)
    raise ValueError(f"unknown demosaic '{method}'; use one of {', '.join(DEMOSAIC)}")


@torch.no_grad()
def conventional_isp(packed: torch.Tensor, pattern: str = "RGGB", demosaic_method: str = "menon2007",
                     wb_gains: tuple[float, float, float] = (1.6, 1.2, 1.4), gamma: float = 2.2,
                     refining_step: bool = True) -> torch.Tensor:
    """``(B, 4, h, w)`` packed linear RAW (any scale) -> ``(B, 3, 2h, 2w)`` sRGB in [0, 1].

    demosaic -> white balance -> clip [0, 1] -> per-image min-max stretch -> gamma (ref pipeline).
    """
    x = packed.float()
    rgb = demosaic(unpack(x), pattern, demosaic_method, refining_step)
    rgb = rgb * torch.tensor(wb_gains, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    rgb = rgb.clamp(0, 1)
    lo = rgb.amin(dim=(1, 2, 3), keepdim=True)
    hi = rgb.amax(dim=(1, 2, 3), keepdim=True)
    rng = hi - lo
    rgb = torch.where(rng > 0, (rgb - lo) / torch.where(rng > 0, rng, torch.ones_like(rng)), rgb)
    return rgb.clamp(0, 1) ** (1.0 / gamma)


def reference_render(counts: torch.Tensor, pattern: str = "RGGB", cfg: Any = None) -> torch.Tensor:
    """The reference's content render of ``(B, 4, h, w)`` packed sensor COUNTS: counts / 65535 -> pipeline."""
    kw: dict[str, Any] = {}
    if cfg is not None:
        kw = {"demosaic_method": cfg.demosaic, "wb_gains": tuple(cfg.wb_gains), "gamma": cfg.gamma,
              "refining_step": cfg.menon_refining}
    return conventional_isp(counts.float() / REFERENCE_SCALE, pattern, **kw)
