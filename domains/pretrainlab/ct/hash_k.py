"""Hash-k reduction (Wolf et al. 2024, "Less is More", Sec. Methods / reference script
``Wolfda95/Less_is_More``): a vectorised dHash that is bit-identical to ``imagehash.dhash`` and the
reference's greedy per-volume selection.

The reference hashes every 8-bit slice PNG with ``imagehash.dhash(Image.open(png), hash_size=8)``,
i.e. ``image.convert('L').resize((9, 8), LANCZOS)`` then ``pixels[:, 1:] > pixels[:, :-1]``.
Pillow's LANCZOS resize of an 8-bit image is a two-pass separable convolution (horizontal pass
first, result rounded and clipped to uint8, then the vertical pass) with fixed-point
coefficients (``Resample.c``: ``precompute_coeffs`` + ``normalize_coeffs_8bpc`` with 22 fractional
bits, rounding offset ``1 << 21``). :func:`dhash_batch` builds the same integer coefficient
matrices once per slice shape and applies them to a whole stack of slices as two float64 matrix
products. Every intermediate is an integer below 2**53, so float64 arithmetic is exact and the
bits equal Pillow's; it runs batched on a CPU (BLAS) or a GPU (``device="cuda"``).

Greedy selection as the reference: slices in file-name (= slice) order; the first remaining slice
is the reference and is kept; every remaining slice within Hamming distance ``<= k`` of it is
removed (the reference too); repeat. ``pretrainlab.core.reduction.hash_k_select`` implements it
on packed bits; :func:`reference_hash_k` is the straightforward per-slice imagehash loop used by
the equivalence test and the benchmark.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch

from pretrainlab.core.reduction import hash_k_select

PRECISION_BITS = 32 - 8 - 2  # Pillow Resample.c
LANCZOS_SUPPORT = 3.0  # Pillow's lanczos filter support (a = 3)


def _sinc(x: np.ndarray) -> np.ndarray:
    out = np.ones_like(x)
    nz = x != 0.0
    px = x[nz] * math.pi
    out[nz] = np.sin(px) / px
    return out


def _lanczos(x: np.ndarray) -> np.ndarray:
    """Pillow's ``lanczos_filter``: ``sinc(x) sinc(x / 3)`` on ``[-3, 3)``."""
    inside = (x >= -LANCZOS_SUPPORT) & (x < LANCZOS_SUPPORT)
    return np.where(inside, _sinc(x) * _sinc(x / 3.0), 0.0)


@functools.lru_cache(maxsize=32)
def pillow_lanczos_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's fixed-point LANCZOS coefficients as a dense ``(out_size, in_size)`` int64 matrix.

    Mirrors ``precompute_coeffs`` (box ``0..in_size``) and ``normalize_coeffs_8bpc``.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = LANCZOS_SUPPORT * filterscale
    mat = np.zeros((out_size, in_size), dtype=np.int64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        x = np.arange(xmax, dtype=np.float64)
        w = _lanczos((x + xmin - center + 0.5) * (1.0 / filterscale))
        ww = w.sum()
        if ww != 0.0:
            w = w / ww
        fixed = np.where(w < 0, (-0.5 + w * (1 << PRECISION_BITS)), (0.5 + w * (1 << PRECISION_BITS)))
        mat[xx, xmin:xmin + xmax] = np.trunc(fixed).astype(np.int64)  # C (int) cast truncates
    return mat


def _clip8(acc: torch.Tensor) -> torch.Tensor:
    """Pillow's ``clip8``: ``acc >> 22`` clamped to 0..255 (acc holds exact integers)."""
    return torch.floor(acc / float(1 << PRECISION_BITS)).clamp_(0, 255)


def dhash_batch(slices: np.ndarray | torch.Tensor, hash_size: int = 8,  # 8: imagehash default, the reference's
                device: str | torch.device = "cpu", chunk: int = 256, method: str = "auto") -> np.ndarray:
    """dHash of a stack of 8-bit slices, bit-identical to ``imagehash.dhash`` per slice.

    Args:
        slices: ``(N, H, W)`` uint8 (numpy or torch).
        hash_size: the hash has ``hash_size * hash_size`` bits.
        device: where the matrix products run ("cpu", "cuda").
        chunk: slices per batched product (bounds memory: ``chunk * H * W`` float64).
        method: ``"gemm"`` (both passes as float64 matrix products, any device), ``"mosaic"``
            (CPU: the horizontal pass is ONE Pillow resize of the slices stacked into a tall
            image, which is row-wise and so identical per slice; the vertical pass a float64
            product) or ``"auto"`` (gemm on CUDA, mosaic on the CPU).

    Returns:
        ``(N, hash_size * hash_size)`` bool, row-major as ``ImageHash.hash.flatten()``.
    """
    x = torch.as_tensor(slices)
    if x.dtype != torch.uint8:
        raise TypeError(f"dhash_batch expects uint8 slices (the reference hashes 8-bit PNGs), got {x.dtype}")
    if x.ndim != 3:
        raise ValueError(f"dhash_batch expects (N, H, W), got shape {tuple(x.shape)}")
    if hash_size < 2:
        raise ValueError("hash_size must be >= 2 (as imagehash)")
    n, h, w = x.shape
    dev = torch.device(device)
    out_w, out_h = hash_size + 1, hash_size
    need_h, need_v = w != out_w, h != out_h
    kh = torch.from_numpy(pillow_lanczos_matrix(w, out_w)).to(dev, torch.float64).t()  # (W, out_w)
    kv = torch.from_numpy(pillow_lanczos_matrix(h, out_h)).to(dev, torch.float64)  # (out_h, H)
    half = float(1 << (PRECISION_BITS - 1))
    if method == "auto":
        method = "gemm" if dev.type == "cuda" else "mosaic"
    if method not in ("gemm", "mosaic"):
        raise ValueError(f"unknown dhash method {method!r} (gemm | mosaic | auto)")
    if method == "mosaic" and need_h and n:
        from PIL import Image

        arr = x.cpu().numpy().reshape(n * h, w)
        tall = Image.fromarray(np.ascontiguousarray(arr)).resize((out_w, n * h), Image.Resampling.LANCZOS)
        x = torch.from_numpy(np.asarray(tall).reshape(n, h, out_w).copy())
        need_h = False
    res = np.zeros((n, hash_size * hash_size), dtype=bool)
    for s in range(0, n, chunk):
        px = x[s:s + chunk].to(dev, non_blocking=True).to(torch.float64)  # (b, H, W)
        if need_h:
            px = _clip8(px @ kh + half)  # (b, H, out_w)
        if need_v:
            px = _clip8(torch.matmul(kv, px) + half)  # (b, out_h, out_w)
        bits = px[:, :, 1:] > px[:, :, :-1]
        res[s:s + chunk] = bits.reshape(bits.shape[0], -1).cpu().numpy()
    return res


def hash_k(slices: np.ndarray | torch.Tensor, k: int = 6, hash_size: int = 8,  # k = 6: "Hash-6", the paper's best
           device: str | torch.device = "cpu") -> np.ndarray:
    """Kept slice indices of one volume ``(N, H, W)`` uint8 by the reference greedy Hash-k."""
    if len(slices) == 0:
        return np.zeros(0, dtype=np.int64)
    return hash_k_select(dhash_batch(slices, hash_size, device), k)


def reference_hash_k(slices: Sequence[np.ndarray] | np.ndarray, k: int = 6, hash_size: int = 8) -> np.ndarray:
    """The reference loop, straightforwardly: imagehash per slice, then greedy deletion.

    ``hashes`` is a list of ``imagehash.ImageHash``; while any remain, the first is kept and
    every hash with ``ref - h <= k`` (Hamming distance) is removed.
    """
    import imagehash
    from PIL import Image

    hashes = [(i, imagehash.dhash(Image.fromarray(np.asarray(s)), hash_size=hash_size)) for i, s in enumerate(slices)]
    kept: list[int] = []
    while hashes:
        ref_i, ref = hashes[0]
        kept.append(ref_i)
        hashes = [(i, h) for i, h in hashes if ref - h > k]
    return np.asarray(kept, dtype=np.int64)
