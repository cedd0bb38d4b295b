"""Tests of pretrainlab.core.reduction against the imagehash reference loop."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from PIL import Image

from pretrainlab.core import reduction as R


def _reference_hash_k(volume: np.ndarray, k: int, hash_size: int = 8) -> list[int]:
    """The Less-is-More script, literally: imagehash objects and ``h1 - h2``."""
    hashes = [imagehash.dhash(Image.fromarray(s), hash_size=hash_size) for s in volume]
    remaining = list(range(len(hashes)))
    kept = []
    while remaining:
        ref = remaining[0]
        kept.append(ref)
        remaining = [i for i in remaining if hashes[ref] - hashes[i] > k]
    return kept


def _random_volume(rng: np.random.Generator, n: int = 40, size: int = 48) -> np.ndarray:
    """Blocks of near-duplicate noise slices (small perturbations) plus fresh slices."""
    vol = []
    base = rng.integers(0, 256, (size, size))
    for i in range(n):
        if i % 5 == 0:
            base = rng.integers(0, 256, (size, size))
        noisy = base + rng.normal(0, 6 + 4 * (i % 5), base.shape)
        vol.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return np.stack(vol)


def _structured_volume(n: int = 60, size: int = 64) -> np.ndarray:
    """A CT-like phantom varying along z: body ellipse, moving 'ribs' and a few spheres."""
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    vol = np.zeros((n, size, size))
    rng = np.random.default_rng(3)
    spheres = rng.uniform(-0.3, 0.3, (8, 3))
    for z in range(n):
        zc = z / n - 0.5
        img = 0.3 * ((xx / 0.45) ** 2 + (yy / 0.35) ** 2 < 1)
        for j in range(6):  # ribs appear / disappear along z
            if (z // 7 + j) % 3 == 0:
                ang = j * np.pi / 3 + 0.05 * z
                cx, cy = 0.38 * np.cos(ang), 0.3 * np.sin(ang)
                img += 0.6 * ((xx - cx) ** 2 + (yy - cy) ** 2 < 0.003)
        for sx, sy, sz in spheres:
            r2 = 0.01 - (zc - sz) ** 2
            if r2 > 0:
                img += 0.4 * ((xx - sx) ** 2 + (yy - sy) ** 2 < r2)
        vol[z] = img
    return np.stack([R.to_uint8(s) for s in vol])


def test_dhash_bit_identical_to_imagehash() -> None:
    rng = np.random.default_rng(0)
    vol = np.concatenate([_random_volume(rng, 10, size=64), _structured_volume(10)])
    for hs in (8, 16):
        ours = R.dhash(vol, hash_size=hs)
        ref = np.stack([imagehash.dhash(Image.fromarray(s), hash_size=hs).hash.flatten() for s in vol])
        assert ours.shape == (20, hs * hs) and ours.dtype == bool
        np.testing.assert_array_equal(ours, ref)
    # list input, non-square and RGB slices
    odd = [rng.integers(0, 256, (37, 53), dtype=np.uint8), rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)]
    ref = np.stack([imagehash.dhash(Image.fromarray(s)).hash.flatten() for s in odd])
    np.testing.assert_array_equal(R.dhash(odd), ref)


def test_dhash_rejects_float_unless_not_strict() -> None:
    x = np.random.default_rng(0).random((2, 16, 16)).astype(np.float32)
    with pytest.raises(TypeError, match="to_uint8"):
        R.dhash(x)
    ref = np.stack([imagehash.dhash(Image.fromarray(s)).hash.flatten() for s in x])
    np.testing.assert_array_equal(R.dhash(x, strict=False), ref)


@pytest.mark.parametrize("seed", [0, 1])
def test_hash_k_matches_reference_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for vol in (_random_volume(rng), _structured_volume()):
        hashes = R.dhash(vol)
        kept_per_k = []
        for k in (0, 2, 4, 6, 8):
            ours = R.hash_k_select(hashes, k=k).tolist()
            assert ours == _reference_hash_k(vol, k), f"k={k}"
            assert ours == R.reduce(vol, "hash", k=k).tolist()
            kept_per_k.append(len(ours))
        assert kept_per_k == sorted(kept_per_k, reverse=True)  # higher k keeps fewer (or equal)
        assert kept_per_k[0] > kept_per_k[-1]


def test_hash_k_non_consecutive_and_hamming() -> None:
    h = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1], [1, 1, 1, 0]], dtype=bool)
    assert R.hash_k_select(h, k=1).tolist() == [0, 1]  # slice 2 dropped by 0, slice 3 by 1
    assert R.hash_k_select(h, k=0).tolist() == [0, 1, 2, 3]
    assert R.hash_k_select(h, k=4).tolist() == [0]
    np.testing.assert_array_equal(R.hamming_matrix(h, h)[0], [0, 4, 1, 3])
    assert R.hash_k_select(np.zeros((0, 64), dtype=bool)).tolist() == []


def test_every_n() -> None:
    assert R.every_n_select(10, 3).tolist() == [0, 3, 6, 9]
    assert R.every_n_select(3, 5).tolist() == [0]
    assert R.reduce(np.zeros((7, 8, 8), np.uint8), "every_n", step=2).tolist() == [0, 2, 4, 6]
    assert R.reduce(np.zeros((4, 8, 8), np.uint8), "all").tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        R.every_n_select(5, 0)


def _dup_stack() -> np.ndarray:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    b = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    return np.stack([a, a, a, b, b, a])


def test_ssim_mi_embedding_keep_first_and_drop_duplicates() -> None:
    stack = _dup_stack()
    # consecutive greedy: duplicates of the last kept are dropped; a returns after b, so it is kept
    assert R.ssim_select(stack, threshold=0.99).tolist() == [0, 3, 5]
    assert R.mi_select(stack, threshold=0.99).tolist() == [0, 3, 5]
    emb = np.array([[1.0, 0], [1, 0], [2, 0], [0, 1], [0, 3], [1, 0]])
    assert R.embedding_select(emb, threshold=0.99).tolist() == [0, 3, 5]
    assert R.reduce(stack, "embedding", embeddings=emb, threshold=0.99).tolist() == [0, 3, 5]
    assert R.reduce(stack, "ssim", threshold=0.99).tolist() == [0, 3, 5]
    assert R.reduce(stack, "mi", threshold=0.99, bins=16).tolist() == [0, 3, 5]
    # threshold <= min similarity keeps only the first slice; above the max similarity keeps all
    assert R.embedding_select(emb, threshold=-1.0).tolist() == [0]
    assert R.embedding_select(emb, threshold=1.01).tolist() == list(range(6))


def test_mi_values() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 8, (20, 20))
    assert R.normalized_mutual_information(x, x, 8) == pytest.approx(1.0)
    assert R.normalized_mutual_information(x, 7 - x, 8) == pytest.approx(1.0)  # MI is invariant to relabelling
    y = rng.integers(0, 8, (200, 200))
    z = rng.integers(0, 8, (200, 200))
    assert R.normalized_mutual_information(y, z, 8) < 0.01
    assert R.normalized_mutual_information(np.zeros((4, 4), int), np.zeros((4, 4), int), 8) == 1.0


def test_report_and_volumes() -> None:
    stack = _dup_stack()
    idx, rep = R.reduce_with_report(stack, "hash", k=6)
    assert idx.tolist() == [0, 3] and rep.kept == 2 and rep.total == 6
    assert rep.ratio == pytest.approx(2 / 6) and rep.time_s >= 0 and rep.to_dict()["strategy"] == "hash"
    out, rep2 = R.reduce_volumes([stack, stack[:2]], "hash")
    assert [o.tolist() for o in out] == [[0, 3], [0]] and rep2.kept == 3 and rep2.total == 8
    with pytest.raises(ValueError, match="unknown reduction strategy"):
        R.reduce(stack, "nope")
    with pytest.raises(ValueError, match="threshold"):
        R.reduce(stack, "ssim")


def test_to_uint8() -> None:
    x = np.array([[-1000.0, 0.0], [500.0, 2000.0]])
    u = R.to_uint8(x)
    assert u.dtype == np.uint8 and u.min() == 0 and u.max() == 255
    assert R.to_uint8(np.full((3, 3), 7.0)).max() == 0
