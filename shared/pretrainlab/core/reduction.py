"""Pre-training dataset reduction of image sets (slices of a volume, frames of a video...).

Wolf et al. 2024, "Less is More: Selective Reduction of CT Data for Self-Supervised
Pre-Training of Deep Learning Models with Contrastive Learning Improves Downstream
Classification Performance" (reference code: Wolfda95/Less_is_More). Strategies compared in the
paper: ALL, EveryN, SSIM, MI (mutual information), DeepNet (embedding similarity) and Hash;
Hash-6 (dHash, Hamming distance <= 6) is the one the repository names best.

Hash-k, as the reference script: per volume, slices in file-name order, ``imagehash.dhash`` of
the 8-bit slice image (hash_size 8 -> 64 bits); greedy: the first remaining slice is the
reference and is kept, every remaining slice (the reference included) within Hamming distance
``<= k`` of it is deleted, repeat until none remain. This is not a consecutive-slice comparison:
a slice far down the volume that looks like an early one is dropped too.

``dhash`` reproduces ``imagehash.dhash(PIL.Image.fromarray(img), hash_size)`` bit for bit by
doing exactly what imagehash does, with Pillow: ``convert('L')``, ``resize((hash_size + 1,
hash_size), Image.LANCZOS)`` (imagehash's ``ANTIALIAS``), then ``pixels[:, 1:] > pixels[:, :-1]``
flattened row-major (the order of ``ImageHash.hash.flatten()``; ``h1 - h2`` is the number of
differing bits). Inputs must be uint8 slices, as the reference reads 8-bit PNGs (each slice
min-max scaled to 0-255; see ``to_uint8``): ``Image.fromarray`` of a float array gives a mode
'F' image whose conversion to 'L' clips to [0, 255], so float data in [0, 1] would hash as a
nearly black image. Other dtypes raise unless ``strict=False`` (then the result is still
imagehash's on ``Image.fromarray(img)``).

The SSIM, MI and embedding strategies were not specified in the retrieved material; here they
are greedy and consecutive: the first slice is kept, and a slice is kept when its similarity to
the LAST KEPT slice is below ``threshold`` (so a run of near-identical slices collapses to its
first one). SSIM: ``skimage.metrics.structural_similarity`` (default 7x7 window; data range 255
for uint8, else the stack's max - min unless given). MI: normalised mutual information
``2 I(X; Y) / (H(X) + H(Y))`` in [0, 1] from a joint histogram of ``bins`` equal-width intensity
bins over the whole stack's range (identical slices -> 1; two constant slices -> 1).
Embedding: cosine similarity of the embeddings (the paper's DeepNet strategy uses a pre-trained
network's features; the caller supplies them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ImageStack = np.ndarray | Sequence[np.ndarray]


# ---------------------------------------------------------------- helpers
def to_uint8(image: np.ndarray) -> np.ndarray:
    """Min-max scale one slice to 0-255 uint8 (the reference's PNG export; no windowing).

    Constant slices become 0. Values are truncated by ``astype(np.uint8)`` after scaling to
    [0, 255] (the reference's exact rounding was not verified).
    """
    x = np.asarray(image, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros(x.shape, dtype=np.uint8)
    return ((x - lo) / (hi - lo) * 255.0).astype(np.uint8)


def _as_list(images: ImageStack) -> list[np.ndarray]:
    if isinstance(images, np.ndarray):
        if images.ndim < 3:
            raise ValueError(f"expected a stack of images (N, H, W), got an array of shape {images.shape}")
        return list(images)
    return [np.asarray(im) for im in images]


# ---------------------------------------------------------------- dHash
def dhash(images: ImageStack, hash_size: int = 8, strict: bool = True) -> np.ndarray:  # hash_size 8: Wolf et al. 2024 / imagehash default
    """Difference hashes, bit-identical to ``imagehash.dhash(Image.fromarray(img), hash_size)``.

    Args:
        images: ``(N, H, W)`` uint8 array, or a list of 2-D (or ``(H, W, 3)`` RGB) uint8 arrays.
        hash_size: the hash is ``hash_size x hash_size`` bits.
        strict: require uint8 input (see the module docstring).

    Returns:
        ``(N, hash_size * hash_size)`` bool, row-major as ``ImageHash.hash.flatten()``.
    """
    from PIL import Image

    if hash_size < 2:
        raise ValueError("hash_size must be >= 2 (as imagehash)")
    lanczos = Image.Resampling.LANCZOS
    slices = _as_list(images)
    out = np.zeros((len(slices), hash_size * hash_size), dtype=bool)
    for i, im in enumerate(slices):
        if strict and im.dtype != np.uint8:
            raise TypeError(
                f"dhash: slice {i} has dtype {im.dtype}; the Hash-k reference hashes 8-bit images. "
                "Convert each slice with pretrainlab.core.reduction.to_uint8 (min-max to 0-255) or pass strict=False"
            )
        small = Image.fromarray(im).convert("L").resize((hash_size + 1, hash_size), lanczos)
        px = np.asarray(small)
        out[i] = (px[:, 1:] > px[:, :-1]).reshape(-1)
    return out


def hamming_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, B)`` bool x ``(M, B)`` bool -> ``(N, M)`` int Hamming distances."""
    pa = np.packbits(np.asarray(a, dtype=bool), axis=1)
    pb = np.packbits(np.asarray(b, dtype=bool), axis=1)
    return np.bitwise_count(pa[:, None, :] ^ pb[None, :, :]).sum(axis=-1, dtype=np.int64)


def hash_k_select(hashes: np.ndarray, k: int = 6) -> np.ndarray:  # k = 6: "Hash-6", Wolf et al. 2024 / reference repo
    """The reference greedy Hash-k selection (vectorised over the remaining slices).

    Args:
        hashes: ``(N, B)`` bool hashes in slice order.
        k: maximum Hamming distance that counts as a duplicate.

    Returns:
        Sorted int64 indices of the kept slices (the successive references).
    """
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


# ---------------------------------------------------------------- other strategies
def every_n_select(n: int, step: int) -> np.ndarray:
    """Indices ``0, step, 2 step, ...`` below ``n`` (the paper's EveryN)."""
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    return np.arange(0, n, step, dtype=np.int64)


def _greedy_consecutive(n: int, similarity: Callable[[int, int], float], threshold: float) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    kept = [0]
    for i in range(1, n):
        if similarity(kept[-1], i) < threshold:
            kept.append(i)
    return np.asarray(kept, dtype=np.int64)


def ssim_select(images: ImageStack, threshold: float, data_range: float | None = None) -> np.ndarray:
    """Keep a slice when its SSIM to the last kept slice is below ``threshold``.

    Args:
        images: ``(N, H, W)`` (or a list of 2-D arrays of one shape), at least 7 px per side.
        threshold: SSIM in [-1, 1]; higher keeps more.
        data_range: passed to ``structural_similarity``; default 255 for uint8 input, else the
            stack's ``max - min``.

    Returns:
        Kept indices (the first slice always).
    """
    from skimage.metrics import structural_similarity

    slices = _as_list(images)
    if not slices:
        return np.zeros(0, dtype=np.int64)
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
        return 1.0  # two constant slices
    return 2.0 * (hx + hy - hxy) / (hx + hy)


def mi_select(images: ImageStack, threshold: float, bins: int = 32) -> np.ndarray:
    """Keep a slice when its normalised MI to the last kept slice is below ``threshold``.

    Args:
        images: ``(N, H, W)`` (or a list of equally shaped 2-D arrays).
        threshold: normalised MI in [0, 1]; higher keeps more.
        bins: equal-width intensity bins over the whole stack's [min, max].

    Returns:
        Kept indices (the first slice always).
    """
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
    """Keep a row when its cosine similarity to the last kept row is below ``threshold``.

    Args:
        emb: ``(N, D)`` embeddings (numpy or torch).
        threshold: cosine in [-1, 1]; higher keeps more.

    Returns:
        Kept indices (the first row always).
    """
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
    """What a reduction kept: ``kept`` of ``total`` slices (``ratio = kept / total``) in ``time_s``."""

    kept: int
    total: int
    ratio: float
    time_s: float
    strategy: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reduce(images: ImageStack | Any, strategy: str, **params: Any) -> np.ndarray:
    """Select the slices to keep with one strategy.

    Args:
        images: ``(N, H, W)`` stack or list of 2-D slices, in slice order. For ``"embedding"`` it
            may be the ``(N, D)`` embeddings themselves.
        strategy: ``"all"`` | ``"every_n"`` (``step``) | ``"ssim"`` (``threshold``,
            ``data_range``) | ``"mi"`` (``threshold``, ``bins``) | ``"embedding"``
            (``threshold``; ``embeddings=(N, D)`` or ``embed_fn=images -> (N, D)``, else
            ``images`` is used as the embeddings) | ``"hash"`` (``k`` = 6, ``hash_size`` = 8,
            ``strict``).

    Returns:
        Sorted int64 indices of the kept slices.
    """
    p = dict(params)
    if strategy == "all":
        return np.arange(len(images), dtype=np.int64)
    if strategy == "every_n":
        step = p.get("step", p.get("n"))
        if step is None:
            raise ValueError("reduction strategy 'every_n' needs step=...")
        return every_n_select(len(images), int(step))
    if strategy == "ssim":
        return ssim_select(images, float(_need(p, "threshold", strategy)), data_range=p.get("data_range"))
    if strategy == "mi":
        return mi_select(images, float(_need(p, "threshold", strategy)), bins=int(p.get("bins", 32)))
    if strategy == "embedding":
        if p.get("embeddings") is not None:
            emb = p["embeddings"]
        elif p.get("embed_fn") is not None:
            emb = p["embed_fn"](images)
        else:
            emb = images
        return embedding_select(emb, float(_need(p, "threshold", strategy)))
    if strategy == "hash":
        hashes = dhash(images, hash_size=int(p.get("hash_size", 8)), strict=bool(p.get("strict", True)))
        return hash_k_select(hashes, k=int(p.get("k", 6)))
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
