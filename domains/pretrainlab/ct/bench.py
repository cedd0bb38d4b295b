"""``pretrainlab ct bench``: (1) Hash-k reduction throughput, the vectorised imagehash-exact
implementation against the reference-style loop (one ``imagehash.dhash`` per slice, greedy
deletion over ``ImageHash`` objects) on the same volumes, checking they keep identical slices;
(2) SwAV training-step throughput and peak memory (``core.bench.bench_task``; the full profile is
the paper's ResNet-50 with 2 x 224 + 6 x 96 crops).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np


def bench_volumes(n_volumes: int, n_slices: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Phantom volumes ``(n_slices, size, size)`` uint8 (rendered at <= 128 px, upsampled, with noise)."""
    from pretrainlab.ct.phantom import phantom_volume
    from pretrainlab.ct.preprocessing import minmax_uint8

    rng = np.random.default_rng(seed)
    base = min(size, 128)
    out = []
    for _ in range(n_volumes):
        hu, _ = phantom_volume(rng, n_slices, base, n_lesions=3)
        u8 = minmax_uint8(hu)
        rep = -(-size // base)
        big = np.repeat(np.repeat(u8, rep, axis=1), rep, axis=2)[:, :size, :size]
        noise = rng.integers(-6, 7, big.shape)
        out.append(np.clip(big.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return out


def bench_hash(volumes: list[np.ndarray], k: int = 6, device: str = "cpu") -> dict[str, Any]:
    """Slices/s of the reference loop vs the vectorised Hash-k (per volume, and all volumes in one batch)."""
    import torch

    from pretrainlab.core.reduction import hash_k_select
    from pretrainlab.ct.hash_k import dhash_batch, hash_k, reference_hash_k

    n = sum(len(v) for v in volumes)
    t = time.perf_counter()
    ref = [reference_hash_k(v, k) for v in volumes]
    t_ref = time.perf_counter() - t
    hash_k(volumes[0][:4], k, device=device)  # warm-up (CUDA context, coefficient cache)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    vec = [hash_k(v, k, device=device) for v in volumes]
    t_vec = time.perf_counter() - t
    batched, t_batch = vec, t_vec
    if device != "cpu":  # on a GPU, hash every volume's slices in large batches (one transfer per chunk)
        t = time.perf_counter()
        bits = dhash_batch(np.concatenate(volumes), device=device, chunk=2048)
        offs = np.cumsum([0] + [len(v) for v in volumes])
        batched = [hash_k_select(bits[offs[i]:offs[i + 1]], k) for i in range(len(volumes))]
        t_batch = time.perf_counter() - t
    same = all(np.array_equal(a, b) for a, b in zip(ref, vec)) and all(np.array_equal(a, b) for a, b in zip(ref, batched))
    kept = sum(len(r) for r in ref)
    return {"name": f"hash-{k} reduction", "device": device, "volumes": len(volumes), "slices": n,
            "slice_shape": list(volumes[0].shape[1:]), "kept_slices": kept, "identical_selection": bool(same),
            "reference_imagehash_loop_slices_per_s": n / t_ref, "vectorised_per_volume_slices_per_s": n / t_vec,
            "vectorised_batched_slices_per_s": n / t_batch, "speedup_per_volume": t_ref / t_vec,
            "speedup_batched": t_ref / t_batch}


def run_bench(a: argparse.Namespace) -> dict[str, Any]:
    import torch

    from pretrainlab.core.bench import bench_task
    from pretrainlab.core.train import select_device
    from pretrainlab.ct.domain import load
    from pretrainlab.ct.swav import SwAVTask

    dev = select_device(a.device)
    profile = a.profile if a.profile != "auto" else ("full" if dev.type == "cuda" else "tiny")
    vols = bench_volumes(a.volumes, a.slices, a.size)
    res: dict[str, Any] = {"hash_k": bench_hash(vols, 6, "cpu")}
    if dev.type == "cuda":
        res["hash_k_cuda"] = bench_hash(vols, 6, str(dev))
    cfg = load("hash6", profile, [])
    bs = a.batch_size or cfg.pretrain.train.batch_size
    s = cfg.model.image_size
    task = SwAVTask(cfg, freeze_prototypes_steps=0)
    if dev.type == "cuda":
        task = task.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    res["swav"] = bench_task(task, lambda: {"image": torch.randint(0, 256, (bs, 1, s, s), dtype=torch.uint8)},
                             steps=a.steps, warmup=a.warmup, device=str(dev), precision=a.precision, compile=a.compile,
                             name=f"swav-{cfg.model.arch}-{profile}",
                             extra={"crops": f"{cfg.ssl.nmb_crops[0]}x{cfg.ssl.size_crops[0]} + "
                                             f"{cfg.ssl.nmb_crops[1]}x{cfg.ssl.size_crops[1]}",
                                    "prototypes": cfg.ssl.nmb_prototypes})
    for key in ("hash_k", "hash_k_cuda"):
        if key in res:
            h = res[key]
            print(f"hash-6 on {h['slices']} slices {h['slice_shape']} ({h['device']}): reference imagehash loop "
                  f"{h['reference_imagehash_loop_slices_per_s']:.0f} slices/s, vectorised "
                  f"{max(h['vectorised_per_volume_slices_per_s'], h['vectorised_batched_slices_per_s']):.0f} slices/s "
                  f"(x{max(h['speedup_per_volume'], h['speedup_batched']):.1f}), identical selection: {h['identical_selection']}")
    print(f"swav ({res['swav']['name']}): {res['swav']['samples_per_s']:.1f} samples/s, peak {res['swav']['peak_mem_mb']:.0f} MB")
    return res
