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


def test_to_uint8_rounds_half_to_even_as_cv2_imwrite() -> None:
    """The reference writes float64 min-max images with ``cv2.imwrite``; OpenCV 4.5.5 (the
    reference's version) wrote the float64 row [0.5, 1.5, 2.5, 3.5, 127.5, 128.5, 254.5, 255.4, NaN]
    as [0, 2, 2, 4, 128, 128, 254, 255, 0] (run in a scratch venv: saturate_cast rounds half to even,
    NaN -> 0). ``to_uint8`` must give the same bytes for inputs that scale to those values."""
    written_by_cv2 = {0.5: 0, 1.5: 2, 2.5: 2, 3.5: 4, 127.5: 128, 128.5: 128, 254.5: 254}
    for value, expected in written_by_cv2.items():
        # min 0, max 510: x * 255 / 510 = x / 2, so x = 2 * value scales exactly to value
        img = np.array([[0.0, 2 * value, 510.0]])
        assert R.to_uint8(img)[0, 1] == expected, value
    img = np.array([[0.0, 1.0], [2.0, 3.0], [509.0, 510.0]])  # 0, 0.5, 1, 1.5, 254.5, 255
    np.testing.assert_array_equal(R.to_uint8(img), [[0, 0], [1, 2], [254, 255]])
    assert not (R.to_uint8(img) == (img / 2).astype(np.uint8)).all()  # truncation would differ
    np.testing.assert_array_equal(R.to_uint8(np.full((2, 2), 3.0)), 0)  # constant: 0 / 0 = NaN -> 0 (cv2)
    stack = np.stack([img, img * 3 - 7, np.zeros_like(img)])
    np.testing.assert_array_equal(R.to_uint8_slices(stack), np.stack([R.to_uint8(s) for s in stack]))


@pytest.mark.parametrize("shape", [(64, 64), (512, 512), (37, 100), (9, 8), (8, 9), (5, 5), (200, 300)])
@pytest.mark.parametrize("method", ["gemm", "mosaic"])
def test_vectorised_dhash_bit_identical_to_imagehash(shape: tuple[int, int], method: str) -> None:
    """The batched float64 emulation of Pillow's fixed-point LANCZOS (gemm) and the tall-mosaic
    resize equal imagehash on noise, smooth gradients and constant images (ties)."""
    rng = np.random.default_rng(sum(shape))
    noise = rng.integers(0, 256, (6, *shape), dtype=np.uint8)
    smooth = np.clip(np.cumsum(rng.normal(0, 6, (6, *shape)), axis=2) + 128, 0, 255).astype(np.uint8)
    flat = np.full((2, *shape), 77, dtype=np.uint8)
    stack = np.concatenate([noise, smooth, flat])
    ref = np.stack([imagehash.dhash(Image.fromarray(s)).hash.flatten() for s in stack])
    np.testing.assert_array_equal(R.dhash(stack, method=method), ref)
    np.testing.assert_array_equal(R.dhash(stack, method=method, chunk=5), ref)


def test_pillow_coefficients_are_normalised() -> None:
    m = R.pillow_lanczos_matrix(512, 9)
    assert m.shape == (9, 512)
    # each output pixel's integer weights sum to 1.0 in 22-bit fixed point (up to rounding of each tap)
    assert np.all(np.abs(m.sum(1) - (1 << 22)) <= m.shape[1])


def test_hash_k_and_reference_loop() -> None:
    vol = _structured_volume(40)
    for k in (0, 3, 6, 9):
        assert R.hash_k(vol, k).tolist() == R.reference_hash_k(vol, k).tolist() == _reference_hash_k(vol, k)
    assert R.hash_k(vol[:0], 6).tolist() == []


@pytest.mark.parametrize("bad", [-1, -3, 2.5, float("nan"), float("inf"), True, "6"])
def test_negative_or_fractional_k_is_refused_not_a_hang(bad: object) -> None:
    """k < 0 never removes the reference itself (distance 0 > k): the greedy loop would not end."""
    h = np.zeros((3, 64), dtype=bool)
    with pytest.raises(ValueError, match="whole number >= 0"):
        R.hash_k_select(h, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="whole number >= 0"):
        R.reduce(np.zeros((3, 8, 8), np.uint8), "hash", k=bad)


def test_bad_parameters_are_refused() -> None:
    stack = _dup_stack()
    for strategy, params, match in [("every_n", {"step": 0}, "step"), ("ssim", {"threshold": float("nan")}, "ssim"),
                                    ("mi", {"threshold": 0.5, "bins": 1}, "bins"), ("mi", {"threshold": 2.0}, "mi"),
                                    ("embedding", {"threshold": -3.0}, "embedding")]:
        with pytest.raises(ValueError, match=match):
            R.reduce(stack, strategy, **params)
    with pytest.raises(ValueError, match="hash_size"):
        R.dhash(stack, hash_size=1)
    with pytest.raises(ValueError, match="7 x 7"):
        R.ssim_select(np.zeros((3, 5, 5), np.uint8), 0.5)
