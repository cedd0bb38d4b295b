"""Hash-k: the vectorised dHash is bit-identical to imagehash, and the selection keeps exactly the
slices of the straightforward per-slice imagehash loop of the reference."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from PIL import Image

from pretrainlab.ct.hash_k import dhash_batch, hash_k, pillow_lanczos_matrix, reference_hash_k
from pretrainlab.ct.preprocessing import minmax_uint8


def _imagehash_bits(stack: np.ndarray, hash_size: int = 8) -> np.ndarray:
    return np.stack([imagehash.dhash(Image.fromarray(s), hash_size=hash_size).hash.flatten() for s in stack])


@pytest.mark.parametrize("shape", [(64, 64), (512, 512), (37, 100), (9, 8), (8, 9), (5, 5), (200, 300)])
@pytest.mark.parametrize("method", ["gemm", "mosaic"])
def test_dhash_bit_identical_to_imagehash(shape: tuple[int, int], method: str) -> None:
    rng = np.random.default_rng(sum(shape))
    noise = rng.integers(0, 256, (6, *shape), dtype=np.uint8)
    smooth = np.clip(np.cumsum(rng.normal(0, 6, (6, *shape)), axis=2) + 128, 0, 255).astype(np.uint8)
    flat = np.full((2, *shape), 77, dtype=np.uint8)  # ties: constant images hash to all zeros
    stack = np.concatenate([noise, smooth, flat])
    np.testing.assert_array_equal(dhash_batch(stack, method=method), _imagehash_bits(stack))


def test_dhash_other_hash_sizes(ct_phantom) -> None:
    sl = minmax_uint8(ct_phantom[0])
    for hs in (4, 16):
        np.testing.assert_array_equal(dhash_batch(sl, hs), _imagehash_bits(sl, hs))


def test_pillow_coefficients_are_normalised() -> None:
    m = pillow_lanczos_matrix(512, 9)
    assert m.shape == (9, 512)
    # each output pixel's integer weights sum to 1.0 in 22-bit fixed point (up to rounding of each tap)
    assert np.all(np.abs(m.sum(1) - (1 << 22)) <= m.shape[1])


@pytest.mark.parametrize("k", [0, 2, 4, 6, 8, 12])
def test_hash_k_keeps_the_reference_slices(ct_phantom, ct_smoke, k: int) -> None:
    from pretrainlab.ct.selective_reduction import load_volumes

    vols = [minmax_uint8(ct_phantom[0])] + [s for _, s in load_volumes(ct_smoke / "pretrain", progress=False)]
    for sl in vols:
        np.testing.assert_array_equal(hash_k(sl, k), reference_hash_k(sl, k))


def test_hash_k_greedy_is_not_consecutive() -> None:
    """A slice far down the volume that matches an earlier reference is dropped too (reference rule)."""
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (2, 32, 32), dtype=np.uint8)
    vol = np.stack([a, b, a, b, a])
    np.testing.assert_array_equal(hash_k(vol, 6), [0, 1])
    np.testing.assert_array_equal(reference_hash_k(vol, 6), [0, 1])


def test_dhash_rejects_non_uint8() -> None:
    with pytest.raises(TypeError, match="uint8"):
        dhash_batch(np.zeros((2, 8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="N, H, W"):
        dhash_batch(np.zeros((8, 8), dtype=np.uint8))
