"""Pre-training dataset reduction of image sets (slices of a volume, frames of a video...).

Wolf et al. 2024, "Less is More: Selective Reduction of CT Data for Self-Supervised
Pre-Training of Deep Learning Models with Contrastive Learning Improves Downstream
Classification Performance" (reference code: Wolfda95/Less_is_More). Strategies compared in the
paper: ALL, EveryN, SSIM, MI (mutual information), DeepNet (embedding similarity) and Hash;
Hash-6 (dHash, Hamming distance <= 6) is the one the repository names best. This module is the
ONE implementation of the reduction in pretrainlab: domain-neutral (any stack of 2-D 8-bit
images); a domain adds only what is specific to its data (the CT domain: reading DICOM / NIfTI /
the reference's flat PNG layout, and its DeepNet embedder).

8-bit images, as the reference writes them (``LIDC_3DDICOM_to_2Dpng.py``): each image is
min-max scaled to 0-255 in float64 and written with ``cv2.imwrite``, whose float -> uint8
conversion (``saturate_cast``) rounds half to even and maps NaN (a constant image gives 0 / 0)
to 0. :func:`to_uint8` / :func:`to_uint8_slices` do exactly that (``np.rint``; truncation would
change about half the pixels, and with them most dHashes).

Hash-k, as the reference (``Hash_LIDC_Volume.py``): per volume, images in file-name order,
``imagehash.dhash(Image.open(png), hash_size=8)`` -> 64 bits; greedy: the first remaining image
is the reference and is kept, every remaining image (the reference included) within Hamming
distance ``<= k`` of it is deleted, repeat until none remain. This is not a consecutive-slice
comparison: an image far down the volume that looks like an early one is dropped too.

:func:`dhash` is bit-identical to ``imagehash.dhash(Image.fromarray(img), hash_size)``, i.e.
``convert('L').resize((hash_size + 1, hash_size), LANCZOS)`` then ``px[:, 1:] > px[:, :-1]``
flattened row-major (the order of ``ImageHash.hash.flatten()``). Pillow's LANCZOS resize of an
8-bit image is a two-pass separable convolution (horizontal first, each pass rounded and clipped
to uint8) with fixed-point coefficients (``Resample.c``: ``precompute_coeffs`` +
``normalize_coeffs_8bpc``, 22 fractional bits, rounding offset ``1 << 21``). For stacks of
equally sized uint8 images the same integer coefficient matrices are applied to the whole stack
as float64 matrix products (every intermediate is an integer below 2**53, so the arithmetic is
exact): batched on a CPU or a GPU. Other inputs (RGB, other dtypes with ``strict=False``) go
through Pillow image by image, which is imagehash's own computation.

The SSIM, MI and embedding ("DeepNet") strategies have no code and no thresholds in the
reference repository: they are this project's extensions, greedy and consecutive: the first
image is kept, and an image is kept when its similarity to the LAST KEPT image is below
``threshold``. SSIM: ``skimage.metrics.structural_similarity`` (7x7 window; data range 255 for
uint8, else the stack's max - min unless given). MI: normalised mutual information
``2 I(X; Y) / (H(X) + H(Y))`` in [0, 1] from a joint histogram of ``bins`` equal-width intensity
bins over the whole stack's range. Embedding: cosine similarity of the caller's embeddings.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ImageStack = np.ndarray | Sequence[np.ndarray]

HASH_SIZE = 8  # imagehash.dhash default, used by the reference (8 x 8 = 64 bits)
HASH_K = 6  # "Hash-6": the reference repository's best threshold
PRECISION_BITS = 32 - 8 - 2  # Pillow Resample.c (8 bpc)
LANCZOS_SUPPORT = 3.0  # Pillow's lanczos filter support (a = 3)


# ---------------------------------------------------------------- 8-bit images
def to_uint8_slices(stack: np.ndarray) -> np.ndarray:
    """Per-image min-max to 0-255 uint8 of ``(N, H, W)`` (or one ``(H, W)`` image -> ``(1, H, W)``).

    float64 ``(x - min) / (max - min) * 255`` then rounded half to even, as ``cv2.imwrite`` of the
    reference's float64 array; a constant image (0 / 0 = NaN in the reference) becomes 0.
    """
    v = np.asarray(stack, dtype=np.float64)
    if v.ndim == 2:
        v = v[None]
    if v.ndim != 3:
        raise ValueError(f"expected (N, H, W) images, got shape {v.shape}")
    if v.size == 0:
        return np.zeros(v.shape, dtype=np.uint8)
    lo = v.min(axis=(1, 2), keepdims=True)
    hi = v.max(axis=(1, 2), keepdims=True)
    span = hi - lo
    out = (v - lo) / np.where(span > 0, span, 1.0) * 255.0
    out = np.rint(out)
    out[np.broadcast_to(span <= 0, out.shape)] = 0.0
    return np.clip(out, 0, 255).astype(np.uint8)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Min-max scale one image to 0-255 uint8, rounded half to even as the reference's PNG export
    (``cv2.imwrite`` of a float64 array); a constant image becomes 0."""
    return to_uint8_slices(np.asarray(image))[0]


def _as_list(images: ImageStack) -> list[np.ndarray]:
    if isinstance(images, np.ndarray):
        if images.ndim < 3:
            raise ValueError(f"expected a stack of images (N, H, W), got an array of shape {images.shape}")
        return list(images)
    return [np.asarray(im) for im in images]


# ---------------------------------------------------------------- dHash
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


@functools.lru_cache(maxsize=64)
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


def _dhash_uint8_stack(x: np.ndarray, hash_size: int, device: Any, chunk: int, method: str) -> np.ndarray:
    """The vectorised dHash of ``(N, H, W)`` uint8 (see the module docstring)."""
    import torch

    n, h, w = x.shape
    dev = torch.device(device)
    out_w, out_h = hash_size + 1, hash_size
    need_h, need_v = w != out_w, h != out_h
    if method == "auto":
        method = "gemm" if dev.type == "cuda" else "mosaic"
    if method not in ("gemm", "mosaic"):
        raise ValueError(f"unknown dhash method {method!r} (gemm | mosaic | auto)")
    half = float(1 << (PRECISION_BITS - 1))
    scale = float(1 << PRECISION_BITS)
    kh = torch.from_numpy(pillow_lanczos_matrix(w, out_w)).to(dev, torch.float64).t()  # (W, out_w)
    kv = torch.from_numpy(pillow_lanczos_matrix(h, out_h)).to(dev, torch.float64)  # (out_h, H)
    res = np.zeros((n, hash_size * hash_size), dtype=bool)
    for s in range(0, n, chunk):
        part = np.ascontiguousarray(x[s:s + chunk])
        b = part.shape[0]
        hor = need_h
        if method == "mosaic" and need_h:
            # the horizontal pass is row-wise: ONE Pillow resize of the images stacked into a tall
            # image equals the per-image passes (Pillow's own C code, no float emulation needed)
            from PIL import Image

            tall = Image.fromarray(part.reshape(b * h, w)).resize((out_w, b * h), Image.Resampling.LANCZOS)
            px = torch.from_numpy(np.asarray(tall).reshape(b, h, out_w).copy()).to(dev).to(torch.float64)
            hor = False
        else:
            px = torch.from_numpy(part).to(dev, non_blocking=True).to(torch.float64)  # (b, H, W)
        if hor:
            px = torch.floor((px @ kh + half) / scale).clamp_(0, 255)  # Pillow's clip8(acc >> 22)
        if need_v:
            px = torch.floor((torch.matmul(kv, px) + half) / scale).clamp_(0, 255)  # (b, out_h, out_w)
        bits = px[:, :, 1:] > px[:, :, :-1]
        res[s:s + b] = bits.reshape(b, -1).cpu().numpy()
    return res


def _dhash_pil(im: np.ndarray, hash_size: int) -> np.ndarray:
    from PIL import Image

    small = Image.fromarray(im).convert("L").resize((hash_size + 1, hash_size), Image.Resampling.LANCZOS)
    px = np.asarray(small)
    return (px[:, 1:] > px[:, :-1]).reshape(-1)


def dhash(images: ImageStack, hash_size: int = HASH_SIZE, strict: bool = True, device: Any = "cpu",
          chunk: int = 256, method: str = "auto") -> np.ndarray:
    """Difference hashes, bit-identical to ``imagehash.dhash(Image.fromarray(img), hash_size)``.

    Args:
        images: ``(N, H, W)`` uint8 array, or a list of 2-D (or ``(H, W, 3)`` RGB) uint8 arrays
            (of any sizes: equally sized 2-D images are hashed together).
        hash_size: the hash is ``hash_size x hash_size`` bits (>= 2, as imagehash).
        strict: require uint8 input: the reference hashes 8-bit PNGs; ``Image.fromarray`` of a
            float array gives a mode 'F' image whose conversion to 'L' clips to [0, 255], so data in
            [0, 1] would hash as a nearly black image. ``strict=False`` hashes anything the way
            imagehash would.
        device: where the batched matrix products run ("cpu", "cuda").
        chunk: images per batched product (bounds memory: ``chunk * H * W`` float64).
        method: ``"gemm"`` (both passes as float64 matrix products, any device), ``"mosaic"``
            (the horizontal pass as one Pillow resize of the stacked images) or ``"auto"`` (gemm on
            CUDA, mosaic on the CPU).

    Returns:
        ``(N, hash_size * hash_size)`` bool, row-major as ``ImageHash.hash.flatten()``.
    """
    if isinstance(hash_size, bool) or int(hash_size) != hash_size or hash_size < 2:
        raise ValueError(f"hash_size must be a whole number >= 2 (as imagehash), got {hash_size!r}")
    hash_size = int(hash_size)
    if isinstance(images, np.ndarray) or (hasattr(images, "ndim") and hasattr(images, "shape")):
        arr = np.asarray(images.cpu() if hasattr(images, "cpu") else images)
        if arr.ndim != 3 or (strict and arr.dtype != np.uint8):
            slices = _as_list(arr)
        else:
            if arr.dtype == np.uint8:
                return _dhash_uint8_stack(arr, hash_size, device, chunk, method)
            slices = list(arr)
    else:
        slices = _as_list(images)
    out = np.zeros((len(slices), hash_size * hash_size), dtype=bool)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(slices):
        if strict and im.dtype != np.uint8:
            raise TypeError(
                f"dhash: image {i} has dtype {im.dtype}; the Hash-k reference hashes 8-bit images. "
                "Convert each image with pretrainlab.core.reduction.to_uint8 (min-max to 0-255) or pass strict=False"
            )
        if im.dtype == np.uint8 and im.ndim == 2:
            groups.setdefault(im.shape, []).append(i)
        else:
            out[i] = _dhash_pil(im, hash_size)
    for idx in groups.values():
        out[idx] = _dhash_uint8_stack(np.stack([slices[i] for i in idx]), hash_size, device, chunk, method)
    return out


def hamming_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, B)`` bool x ``(M, B)`` bool -> ``(N, M)`` int Hamming distances."""
    pa = np.packbits(np.asarray(a, dtype=bool), axis=1)
    pb = np.packbits(np.asarray(b, dtype=bool), axis=1)
    return np.bitwise_count(pa[:, None, :] ^ pb[None, :, :]).sum(axis=-1, dtype=np.int64)


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)) or not math.isfinite(k) \
            or k < 0 or int(k) != k:
        raise ValueError(f"hash k must be a whole number >= 0 (maximum Hamming distance of a duplicate), got {k!r}")
    return int(k)


def hash_k_select(hashes: np.ndarray, k: int = HASH_K) -> np.ndarray:
    """The reference greedy Hash-k selection (vectorised over the remaining images).

    Args:
        hashes: ``(N, B)`` bool hashes in the reference's order (file-name order).
        k: maximum Hamming distance that counts as a duplicate (>= 0; each round removes at least
            the reference itself, so the loop always ends).

    Returns:
        Sorted int64 indices of the kept images (the successive references).
    """
    k = _check_k(k)
    h = np.asarray(hashes, dtype=bool)
    if h.ndim != 2:
        raise ValueError(f"hashes must be (N, B) bool, got shape {h.shape}")
    packed = np.packbits(h, axis=1)
    remaining = np.arange(h.shape[0])
    kept: list[int] = []
    while remaining.size:
        ref = remaining[0]
        kept.append(int(ref))
        dist = np.bitwise_count(packed[remaining] ^ packed[ref]).sum(axis=1, dtype=np.int64)
        remaining = remaining[dist > k]  # the reference itself has distance 0 <= k
    return np.asarray(kept, dtype=np.int64)


def hash_k(images: ImageStack, k: int = HASH_K, hash_size: int = HASH_SIZE, device: Any = "cpu") -> np.ndarray:
    """Kept indices of one volume ``(N, H, W)`` uint8 by the reference greedy Hash-k."""
    k = _check_k(k)
    if len(images) == 0:
        return np.zeros(0, dtype=np.int64)
    return hash_k_select(dhash(images, hash_size, device=device), k)


def reference_hash_k(images: ImageStack, k: int = HASH_K, hash_size: int = HASH_SIZE) -> np.ndarray:
    """The reference loop, straightforwardly (equivalence tests and benchmarks): one
    ``imagehash.dhash`` per image, then the greedy deletion over ``ImageHash`` objects (``h1 - h2``
    is the Hamming distance). Needs ``imagehash``."""
    import imagehash
    from PIL import Image

    k = _check_k(k)
    hashes = [(i, imagehash.dhash(Image.fromarray(np.asarray(s)), hash_size=hash_size)) for i, s in enumerate(images)]
    kept: list[int] = []
    while hashes:
        ref_i, ref = hashes[0]
        kept.append(ref_i)
        hashes = [(i, h) for i, h in hashes if ref - h > k]
    return np.asarray(kept, dtype=np.int64)


# ---------------------------------------------------------------- other strategies
def every_n_select(n: int, step: int) -> np.ndarray:
    """Indices ``0, step, 2 step, ...`` below ``n`` (the paper's EveryN)."""
    if isinstance(step, bool) or int(step) != step or step < 1:
        raise ValueError(f"every_n step must be a whole number >= 1, got {step!r}")
    return np.arange(0, n, int(step), dtype=np.int64)


def _check_threshold(threshold: float, lo: float, hi: float, what: str) -> float:
    t = float(threshold)
    if not math.isfinite(t) or not lo <= t <= hi:
        raise ValueError(f"{what} threshold must be a number in [{lo:g}, {hi:g}], got {threshold!r}")
    return t


def _greedy_consecutive(n: int, similarity: Callable[[int, int], float], threshold: float) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    kept = [0]
    for i in range(1, n):
        if similarity(kept[-1], i) < threshold:
            kept.append(i)
    return np.asarray(kept, dtype=np.int64)


def ssim_select(images: ImageStack, threshold: float, data_range: float | None = None) -> np.ndarray:
    """Keep an image when its SSIM to the last kept image is below ``threshold`` (this project's
    extension; the reference has no SSIM code).

    Args:
        images: ``(N, H, W)`` (or a list of 2-D arrays of one shape), at least 7 px per side.
        threshold: SSIM in [-1, 1.01]; higher keeps more (above 1 keeps everything).
        data_range: passed to ``structural_similarity``; default 255 for uint8 input, else the
            stack's ``max - min``.

    Returns:
        Kept indices (the first image always).
    """
    from skimage.metrics import structural_similarity

    threshold = _check_threshold(threshold, -1.0, 1.01, "ssim")
    slices = _as_list(images)
    if not slices:
        return np.zeros(0, dtype=np.int64)
    if min(min(s.shape[:2]) for s in slices) < 7:
        raise ValueError(f"ssim needs images of at least 7 x 7 pixels, got {slices[0].shape}")
    if data_range is None:
        if all(s.dtype == np.uint8 for s in slices):
            data_range = 255.0
        else:
            lo = min(float(np.min(s)) for s in slices)
            hi = max(float(np.max(s)) for s in slices)
            data_range = hi - lo if hi > lo else 1.0
    floats = [s.astype(np.float64) for s in slices]

    def sim(i: int, j: int) -> float:
        return float(structural_similarity(floats[i], floats[j], data_range=data_range))

    return _greedy_consecutive(len(slices), sim, threshold)


def normalized_mutual_information(a_bins: np.ndarray, b_bins: np.ndarray, bins: int) -> float:
    """``2 I(X; Y) / (H(X) + H(Y))`` of two equally shaped arrays of bin indices in ``[0, bins)``."""
    joint = np.bincount((a_bins.ravel() * bins + b_bins.ravel()), minlength=bins * bins).astype(np.float64)
    p = joint.reshape(bins, bins) / joint.sum()
    px, py = p.sum(1), p.sum(0)

    def entropy(q: np.ndarray) -> float:
        q = q[q > 0]
        return float(-(q * np.log(q)).sum())

    hx, hy, hxy = entropy(px), entropy(py), entropy(p.ravel())
    if hx + hy <= 0:
        return 1.0  # two constant images
    return 2.0 * (hx + hy - hxy) / (hx + hy)


def mi_select(images: ImageStack, threshold: float, bins: int = 32) -> np.ndarray:
    """Keep an image when its normalised MI to the last kept image is below ``threshold`` (this
    project's extension; the reference has no MI code).

    Args:
        images: ``(N, H, W)`` (or a list of equally shaped 2-D arrays).
        threshold: normalised MI in [0, 1.01]; higher keeps more.
        bins: equal-width intensity bins (>= 2) over the whole stack's [min, max].

    Returns:
        Kept indices (the first image always).
    """
    threshold = _check_threshold(threshold, 0.0, 1.01, "mi")
    if isinstance(bins, bool) or int(bins) != bins or bins < 2:
        raise ValueError(f"mi bins must be a whole number >= 2, got {bins!r}")
    bins = int(bins)
    slices = _as_list(images)
    if not slices:
        return np.zeros(0, dtype=np.int64)
    lo = min(float(np.min(s)) for s in slices)
    hi = max(float(np.max(s)) for s in slices)
    width = (hi - lo) / bins if hi > lo else 1.0
    binned = [np.clip(((s.astype(np.float64) - lo) / width).astype(np.int64), 0, bins - 1) for s in slices]

    def sim(i: int, j: int) -> float:
        return normalized_mutual_information(binned[i], binned[j], bins)

    return _greedy_consecutive(len(slices), sim, threshold)


def embedding_select(emb: np.ndarray, threshold: float) -> np.ndarray:
    """Keep a row when its cosine similarity to the last kept row is below ``threshold`` (the
    paper's DeepNet idea; no code or threshold in the reference: this project's extension).

    Args:
        emb: ``(N, D)`` embeddings (numpy or torch).
        threshold: cosine in [-1, 1.01]; higher keeps more.

    Returns:
        Kept indices (the first row always).
    """
    threshold = _check_threshold(threshold, -1.0, 1.01, "embedding")
    e = _to_numpy(emb).astype(np.float64)
    if e.ndim != 2:
        raise ValueError(f"embeddings must be (N, D), got shape {e.shape}")
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return _greedy_consecutive(e.shape[0], lambda i, j: float(e[i] @ e[j]), threshold)


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


# ---------------------------------------------------------------- dispatch
STRATEGIES = ("all", "every_n", "ssim", "mi", "embedding", "hash")


@dataclass
class ReductionReport:
    """What a reduction kept: ``kept`` of ``total`` images (``ratio = kept / total``) in ``time_s``."""

    kept: int
    total: int
    ratio: float
    time_s: float
    strategy: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reduce(images: ImageStack | Any, strategy: str, **params: Any) -> np.ndarray:
    """Select the images to keep with one strategy.

    Args:
        images: ``(N, H, W)`` stack or list of 2-D images, in order. For ``"embedding"`` it may be
            the ``(N, D)`` embeddings themselves.
        strategy: ``"all"`` | ``"every_n"`` (``step``) | ``"ssim"`` (``threshold``,
            ``data_range``) | ``"mi"`` (``threshold``, ``bins``) | ``"embedding"``
            (``threshold``; ``embeddings=(N, D)`` or ``embed_fn=images -> (N, D)``, else
            ``images`` is used as the embeddings) | ``"hash"`` (``k`` = 6, ``hash_size`` = 8,
            ``strict``, ``device``).

    Returns:
        Sorted int64 indices of the kept images.
    """
    p = dict(params)
    if strategy == "all":
        return np.arange(len(images), dtype=np.int64)
    if strategy == "every_n":
        step = p.get("step", p.get("n"))
        if step is None:
            raise ValueError("reduction strategy 'every_n' needs step=...")
        return every_n_select(len(images), step)
    if strategy == "ssim":
        return ssim_select(images, float(_need(p, "threshold", strategy)), data_range=p.get("data_range"))
    if strategy == "mi":
        return mi_select(images, float(_need(p, "threshold", strategy)), bins=p.get("bins", 32))
    if strategy == "embedding":
        threshold = float(_need(p, "threshold", strategy))
        if p.get("embeddings") is not None:
            emb = p["embeddings"]
        elif p.get("embed_fn") is not None:
            if len(images) == 0:
                return np.zeros(0, dtype=np.int64)
            emb = p["embed_fn"](images)
        else:
            emb = images
        return embedding_select(emb, threshold)
    if strategy == "hash":
        k = _check_k(p.get("k", HASH_K))
        if len(images) == 0:
            return np.zeros(0, dtype=np.int64)
        hashes = dhash(images, hash_size=p.get("hash_size", HASH_SIZE), strict=bool(p.get("strict", True)),
                       device=p.get("device", "cpu"))
        return hash_k_select(hashes, k=k)
    raise ValueError(f"unknown reduction strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")


def _need(p: dict[str, Any], key: str, strategy: str) -> Any:
    if key not in p:
        raise ValueError(f"reduction strategy {strategy!r} needs {key}=...")
    return p[key]


def reduce_with_report(images: ImageStack | Any, strategy: str, **params: Any) -> tuple[np.ndarray, ReductionReport]:
    """``reduce`` plus a ``ReductionReport``."""
    t0 = time.perf_counter()
    idx = reduce(images, strategy, **params)
    total = len(images)
    return idx, ReductionReport(
        kept=int(idx.size), total=total, ratio=idx.size / total if total else 0.0, time_s=time.perf_counter() - t0, strategy=strategy
    )


def reduce_volumes(volumes: Sequence[ImageStack], strategy: str, **params: Any) -> tuple[list[np.ndarray], ReductionReport]:
    """Reduce every volume independently (the paper reduces per CT volume); one summed report."""
    t0 = time.perf_counter()
    out = [reduce(v, strategy, **params) for v in volumes]
    kept = sum(int(i.size) for i in out)
    total = sum(len(v) for v in volumes)
    return out, ReductionReport(kept=kept, total=total, ratio=kept / total if total else 0.0, time_s=time.perf_counter() - t0, strategy=strategy)
