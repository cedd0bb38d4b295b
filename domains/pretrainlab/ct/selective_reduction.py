"""Selective reduction of the pre-training CT slices, per volume (Wolf et al. 2024, Sec. Methods:
ALL, EveryN, SSIM, MI, DeepNet, Hash-k).

Generic strategies come from ``pretrainlab.core.reduction`` (EveryN, SSIM, MI, embedding
similarity); CT-specific here: Hash-k through the vectorised, imagehash-exact
``pretrainlab.ct.hash_k`` (batched dHash on CPU / GPU), and DeepNet, whose embeddings come from a
backbone pre-trained by this project (the paper used a pre-trained network; no downloaded
weights here: a local safetensors file via ``reduction.deepnet_weights``, or a SwAV backbone
pre-trained on ALL). Every strategy works on the 8-bit slices of the reference pipeline.

``write_reduction`` writes what the paper's pipeline feeds to pre-training: the kept slices as
PNG (``OUT/<volume>/<slice:04d>.png``) plus ``reduction.json`` (per volume: slices in, slices
kept, kept indices, seconds), atomically (temporary folder + rename).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pretrainlab.core import reduction as R
from pretrainlab.ct.config import PreprocessConfig, ReductionConfig
from pretrainlab.ct.hash_k import hash_k

STRATEGIES = ("all", "every_n", "ssim", "mi", "deepnet", "hash")
EmbedFn = Callable[[np.ndarray], np.ndarray]


class _ReadSlices:
    """MONAI-style deterministic transform: ``{"path"} -> {"path", "name", "slices (Z, H, W) uint8"}``."""

    def __init__(self, pre: PreprocessConfig | None) -> None:
        self.pre = pre

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        from pretrainlab.ct.readers import read_volume, volume_slices

        v = read_volume(item["path"], self.pre)
        return {"path": item["path"], "name": v.name, "slices": volume_slices(v, self.pre)}


def load_volumes(path: str | Path, pre: PreprocessConfig | None = None, progress: bool = True,
                 num_workers: int = 0) -> list[tuple[str, np.ndarray]]:
    """Every volume under ``path`` as ``(name, slices (Z, H, W) uint8)`` in file-name order.

    ``num_workers == 0``: a plain loop (importing MONAI costs ~8 s of CPU, more than reading a
    small set). ``num_workers > 0``: through ``monai.data.CacheDataset`` (RAM cache filled by that
    many reader threads), for large real datasets; a ``DataError`` raised inside MONAI's transform
    wrapper is re-raised as is (it names the file).
    """
    from tqdm.auto import tqdm

    from pretrainlab.core.data import DataError
    from pretrainlab.ct.readers import find_volumes

    paths = find_volumes(path)
    if num_workers <= 0:
        read = _ReadSlices(pre)
        items = [read({"path": str(p)}) for p in tqdm(paths, desc="reading volumes", unit="vol", disable=not progress,
                                                      leave=False)]
        return [(it["name"], it["slices"]) for it in items]
    from monai.data import CacheDataset

    try:
        ds = CacheDataset(data=[{"path": str(p)} for p in paths], transform=_ReadSlices(pre), cache_rate=1.0,
                          num_workers=num_workers, progress=progress, copy_cache=False)
        items = [ds[i] for i in range(len(ds))]
    except Exception as e:  # MONAI wraps transform errors in RuntimeError: surface the DataError naming the file
        cause: BaseException | None = e
        while cause is not None and not isinstance(cause, DataError):
            cause = cause.__cause__
        if isinstance(cause, DataError):
            raise cause from None
        raise
    return [(it["name"], it["slices"]) for it in items]


def _device(spec: str) -> str:
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return spec


def reduce_volume(slices: np.ndarray, cfg: ReductionConfig, embed_fn: EmbedFn | None = None) -> np.ndarray:
    """Kept slice indices of one volume ``(Z, H, W)`` uint8 under ``cfg.strategy``."""
    st = cfg.strategy
    if st == "all":
        return np.arange(len(slices), dtype=np.int64)
    if st == "every_n":
        return R.every_n_select(len(slices), cfg.every_n)
    if st == "ssim":
        return R.ssim_select(slices, cfg.ssim_threshold)
    if st == "mi":
        return R.mi_select(slices, cfg.mi_threshold, bins=cfg.mi_bins)
    if st == "hash":
        return hash_k(slices, cfg.hash_k, cfg.hash_size, device=_device(cfg.device))
    if st == "deepnet":
        if embed_fn is None:
            raise ValueError("the deepnet strategy needs an embedding network (reduction.deepnet_weights or a pre-trained backbone)")
        return R.embedding_select(embed_fn(slices), cfg.deepnet_threshold)
    raise ValueError(f"unknown reduction strategy {st!r}; choose one of {', '.join(STRATEGIES)}")


def reduce_all(volumes: Sequence[tuple[str, np.ndarray]], cfg: ReductionConfig, embed_fn: EmbedFn | None = None,
               progress: bool = True) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Reduce every volume; returns kept indices per volume and the ``reduction.json`` report."""
    from tqdm.auto import tqdm

    kept, per = [], []
    t0 = time.perf_counter()
    for name, sl in tqdm(volumes, desc=f"reduce ({cfg.strategy})", unit="vol", disable=not progress, leave=False):
        t = time.perf_counter()
        idx = reduce_volume(sl, cfg, embed_fn)
        dt = time.perf_counter() - t
        kept.append(idx)
        per.append({"volume": name, "slices_in": len(sl), "slices_kept": len(idx),
                    "kept_indices": [int(i) for i in idx], "seconds": dt})
    n_in = sum(p["slices_in"] for p in per)
    n_kept = sum(p["slices_kept"] for p in per)
    params = {"all": {}, "every_n": {"every_n": cfg.every_n}, "ssim": {"threshold": cfg.ssim_threshold},
              "mi": {"threshold": cfg.mi_threshold, "bins": cfg.mi_bins}, "deepnet": {"threshold": cfg.deepnet_threshold},
              "hash": {"k": cfg.hash_k, "hash_size": cfg.hash_size}}.get(cfg.strategy, {})
    report = {"strategy": cfg.strategy, "params": params, "slices_in": n_in, "slices_kept": n_kept,
              "kept_fraction": n_kept / n_in if n_in else 0.0, "seconds": time.perf_counter() - t0, "volumes": per}
    if progress:
        print(f"reduction {cfg.strategy}: kept {n_kept}/{n_in} slices ({100 * report['kept_fraction']:.1f} %) "
              f"of {len(volumes)} volumes in {report['seconds']:.2f} s")
    return kept, report


def write_reduction(out: str | Path, volumes: Sequence[tuple[str, np.ndarray]], kept: Sequence[np.ndarray],
                    report: dict[str, Any], overwrite: bool = False) -> Path:
    """Kept slices as ``OUT/<volume>/<slice:04d>.png`` + ``OUT/reduction.json``, written atomically."""
    from PIL import Image

    from pretrainlab.core.io import atomic_dir, atomic_write_json

    out = Path(out)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for (name, sl), idx in zip(volumes, kept):
            d = tmp / name
            d.mkdir(parents=True, exist_ok=True)
            for i in idx:
                Image.fromarray(sl[int(i)]).save(d / f"{int(i):04d}.png")
        atomic_write_json(tmp / "reduction.json", report)
    return out


def reduce_and_gather(path: str | Path, pre: PreprocessConfig | None, cfg: ReductionConfig, size: int,
                      embed_fn: EmbedFn | None = None, skip_bad: bool = False,
                      progress: bool = True) -> tuple[torch.Tensor, dict[str, Any]]:
    """Streaming reduction for large datasets: read one volume at a time, keep only its selected
    slices resized to ``size``; full-resolution slices are never all in memory (LIDC-IDRI at 512 px
    would need ~60 GB). Returns kept slices ``(N, size, size)`` uint8 and the ``reduction.json`` report.

    ``skip_bad``: a volume that raises ``DataError`` (non-CT series, corrupt file...) is skipped with a
    warning and listed under ``"skipped"`` in the report, instead of stopping the run.
    """
    import warnings

    from tqdm.auto import tqdm

    from pretrainlab.core.data import DataError
    from pretrainlab.ct.pretraining import gather_slices
    from pretrainlab.ct.readers import find_volumes

    read = _ReadSlices(pre)
    parts, per, skipped = [], [], []
    t0 = time.perf_counter()
    for p in tqdm(find_volumes(path), desc=f"reduce ({cfg.strategy})", unit="vol", disable=not progress):
        try:
            item = read({"path": str(p)})
        except DataError as e:
            if not skip_bad:
                raise
            warnings.warn(f"skipped: {e}", stacklevel=2)
            skipped.append(str(e))
            continue
        t = time.perf_counter()
        idx = reduce_volume(item["slices"], cfg, embed_fn)
        per.append({"volume": item["name"], "slices_in": len(item["slices"]), "slices_kept": len(idx),
                    "kept_indices": [int(i) for i in idx], "seconds": time.perf_counter() - t})
        if len(idx):
            parts.append(gather_slices([(item["name"], item["slices"])], [idx], size))
    if not parts:
        raise DataError(path, "the reduction kept no slices (or every volume was skipped)")
    n_in = sum(v["slices_in"] for v in per)
    n_kept = sum(v["slices_kept"] for v in per)
    report = {"strategy": cfg.strategy, "slices_in": n_in, "slices_kept": n_kept, "kept_fraction": n_kept / max(1, n_in),
              "seconds": time.perf_counter() - t0, "volumes": per, "skipped": skipped}
    if progress:
        print(f"reduction {cfg.strategy}: kept {n_kept}/{n_in} slices ({100 * n_kept / max(1, n_in):.1f} %) of {len(per)} "
              f"volumes in {report['seconds']:.1f} s" + (f"; skipped {len(skipped)} bad volume(s)" if skipped else ""))
    return torch.cat(parts), report


def make_embedder(backbone: torch.nn.Module, image_size: int, mean: float, std: float,
                  device: str | torch.device = "cpu", batch: int = 256) -> EmbedFn:
    """DeepNet embeddings: ``(Z, H, W)`` uint8 slices -> ``(Z, D)`` pooled backbone features."""
    import torch.nn.functional as F

    from pretrainlab.ct.resnet import to_input

    dev = torch.device(device)
    net = backbone.to(dev).eval()

    @torch.no_grad()
    def fn(slices: np.ndarray) -> np.ndarray:
        outs = []
        for s in range(0, len(slices), batch):
            x = torch.from_numpy(np.ascontiguousarray(slices[s:s + batch]))[:, None].to(dev).float() / 255.0
            x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
            outs.append(net(to_input(x, mean, std)).float().cpu())
        return torch.cat(outs).numpy()

    return fn
