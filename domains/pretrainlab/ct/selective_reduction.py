"""Selective reduction of the pre-training CT slices, per volume (Wolf et al. 2024: ALL, EveryN,
SSIM, MI, DeepNet, Hash-k).

Every strategy is ``pretrainlab.core.reduction`` (the one implementation; Hash-k there is the
reference's greedy with an imagehash-exact, batched dHash). This module adds what is CT-specific:
reading volumes (``readers`` / ``lidc``), the DeepNet embedder (a backbone pre-trained by this
project: no downloaded weights), and the reduce verb's output: the reference's flat folder.

Only Hash-k (``Hash_LIDC_Volume.py``) and ALL exist in the reference code. EveryN, SSIM, MI and
DeepNet are in the paper's text without code or thresholds: here they are this project's
extensions (SSIM / MI / DeepNet: keep a slice when its similarity to the LAST KEPT slice is
below the threshold), labelled so in ``reduction.json``.

:func:`reduce_to_folder` (``pretrainlab ct reduce``) streams: one volume is read, reduced and its
kept slices written before the next is read, so a whole archive (LIDC-IDRI: ~1,000 series,
~250k slices) runs in the memory of one volume. Output (written to a temporary folder, renamed at
the end): ``OUT/<kept>.png`` flat, as the reference's ``shutil.copy2(kept, save_folder)`` (slices of
a flat PNG input are copied byte for byte under their own names; slices of NIfTI / DICOM volumes
are written as ``<volume>_<z>.png``), and ``OUT/reduction.json``: per volume ``{"volume",
"kept_files", "kept_indices", "slices_in", "slices_kept", "seconds", ...}``.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pretrainlab.core import reduction as R
from pretrainlab.core.data import DataError
from pretrainlab.ct.config import STRATEGIES, PreprocessConfig, ReductionConfig

EmbedFn = Callable[[Any], np.ndarray]
REFERENCE_STRATEGIES = ("all", "hash")  # the only ones with code in Wolfda95/Less_is_More
Slices = np.ndarray | list[np.ndarray]


def _device(spec: str) -> str:
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return spec


def strategy_params(cfg: ReductionConfig) -> dict[str, Any]:
    """The parameters of ``cfg.strategy`` as written to ``reduction.json``."""
    return {"all": {}, "every_n": {"every_n": cfg.every_n}, "ssim": {"threshold": cfg.ssim_threshold},
            "mi": {"threshold": cfg.mi_threshold, "bins": cfg.mi_bins}, "deepnet": {"threshold": cfg.deepnet_threshold},
            "hash": {"k": cfg.hash_k, "hash_size": cfg.hash_size}}.get(cfg.strategy, {})


def reduce_volume(slices: Slices, cfg: ReductionConfig, embed_fn: EmbedFn | None = None) -> np.ndarray:
    """Kept slice indices of one volume (``(Z, H, W)`` uint8, or a list of 2-D uint8 slices)."""
    st = cfg.strategy
    if st not in STRATEGIES:
        raise ValueError(f"unknown reduction strategy {st!r}; choose one of {', '.join(STRATEGIES)}")
    equal = isinstance(slices, np.ndarray) or all(s.shape == slices[0].shape for s in slices)
    if st in ("ssim", "mi") and not equal:
        raise ValueError(f"the {st} strategy compares slices pixel by pixel: the volume's slices differ in size")
    if st == "all":
        return R.reduce(slices, "all")
    if st == "every_n":
        return R.reduce(slices, "every_n", step=cfg.every_n)
    if st == "ssim":
        return R.reduce(slices, "ssim", threshold=cfg.ssim_threshold)
    if st == "mi":
        return R.reduce(slices, "mi", threshold=cfg.mi_threshold, bins=cfg.mi_bins)
    if st == "hash":
        return R.reduce(slices, "hash", k=cfg.hash_k, hash_size=cfg.hash_size, device=_device(cfg.device))
    if embed_fn is None:
        raise ValueError("the deepnet strategy needs an embedding network (reduction.deepnet_weights or a pre-trained backbone)")
    return R.reduce(slices, "embedding", embed_fn=embed_fn, threshold=cfg.deepnet_threshold)


def _report(cfg: ReductionConfig, per: list[dict[str, Any]], seconds: float, skipped: list[dict[str, str]] | None = None,
            **extra: Any) -> dict[str, Any]:
    n_in = sum(p["slices_in"] for p in per)
    n_kept = sum(p["slices_kept"] for p in per)
    rep = {"strategy": cfg.strategy, "params": strategy_params(cfg),
           "origin": ("reference (Wolfda95/Less_is_More Hash_LIDC_Volume.py)" if cfg.strategy == "hash" else
                      "reference (no reduction)" if cfg.strategy == "all" else
                      "this project's extension (no code or threshold in the reference)"),
           "slices_in": n_in, "slices_kept": n_kept, "kept_fraction": n_kept / n_in if n_in else 0.0,
           "seconds": seconds, "slices_per_s": n_in / seconds if seconds > 0 else 0.0, **extra, "volumes": per}
    if skipped is not None:
        rep["skipped"] = skipped
    return rep


# ------------------------------------------------------------------------------------------ volumes
def discover(path: str | Path, pre: PreprocessConfig | None = None) -> tuple[list[Any], list[dict[str, str]]]:
    """The volumes to reduce: :func:`pretrainlab.ct.formats.find_sources`, or with
    ``preprocess.reference_png`` the reference's LIDC export (:func:`pretrainlab.ct.lidc.reference_sources`)."""
    from pretrainlab.ct.formats import find_sources
    from pretrainlab.ct.lidc import reference_sources

    pc = pre or PreprocessConfig()
    if pc.reference_png:
        if not Path(path).exists():
            raise DataError(path, "no such file or folder")
        return reference_sources(path, pc.reference_min_files), []
    return find_sources(path, pc)


def read_source(src: Any, pre: PreprocessConfig | None = None) -> tuple[Slices, list[str], list[str]]:
    """A volume's 8-bit slices, their output names and the reader's warnings."""
    from pretrainlab.ct import formats
    from pretrainlab.ct.lidc import read_reference_slices

    pc = pre or PreprocessConfig()
    if src.kind == "lidc":
        sl, warn = read_reference_slices(src, pc)
        return sl, list(src.out_names), warn
    return formats.read_source(src, pc)


# ------------------------------------------------------------------------------------------ in memory
def load_volumes(path: str | Path, pre: PreprocessConfig | None = None, progress: bool = True,
                 num_workers: int = 0) -> list[tuple[str, np.ndarray]]:
    """Every volume under ``path`` as ``(name, slices (Z, H, W) uint8)`` (small sets: the table).

    ``num_workers > 0`` reads through ``monai.data.CacheDataset`` with that many threads (importing
    MONAI costs ~8 s of CPU, so the default is a plain loop); a ``DataError`` raised inside MONAI's
    transform wrapper is re-raised as is (it names the file).
    """
    from tqdm.auto import tqdm

    sources, _ = discover(path, pre)

    def read(src: Any) -> tuple[str, np.ndarray]:
        sl, _, _ = read_source(src, pre)
        if not isinstance(sl, np.ndarray):
            raise DataError(src.path, f"volume '{src.name}' has slices of differing sizes")
        return src.name, sl

    if num_workers <= 0:
        return [read(s) for s in tqdm(sources, desc="reading volumes", unit="vol", disable=not progress, leave=False,
                                      file=sys.stderr)]
    from monai.data import CacheDataset

    class _Read:  # MONAI-style deterministic transform
        def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
            name, sl = read(sources[item["i"]])
            return {"name": name, "slices": sl}

    try:
        ds = CacheDataset(data=[{"i": i} for i in range(len(sources))], transform=_Read(), cache_rate=1.0,
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


def reduce_all(volumes: Sequence[tuple[str, Slices]], cfg: ReductionConfig, embed_fn: EmbedFn | None = None,
               progress: bool = True) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Reduce in-memory volumes; returns kept indices per volume and the ``reduction.json`` report."""
    from tqdm.auto import tqdm

    kept, per = [], []
    t0 = time.perf_counter()
    for name, sl in tqdm(volumes, desc=f"reduce ({cfg.strategy})", unit="vol", disable=not progress, leave=False,
                         file=sys.stderr):
        t = time.perf_counter()
        idx = reduce_volume(sl, cfg, embed_fn)
        kept.append(idx)
        per.append({"volume": name, "slices_in": len(sl), "slices_kept": len(idx), "kept_indices": [int(i) for i in idx],
                    "seconds": time.perf_counter() - t})
    report = _report(cfg, per, time.perf_counter() - t0)
    if progress:
        print(summary_line(report, len(volumes)), file=sys.stderr)
    return kept, report


def summary_line(report: dict[str, Any], n_volumes: int) -> str:
    return (f"reduction {report['strategy']}: kept {report['slices_kept']}/{report['slices_in']} slices "
            f"({100 * report['kept_fraction']:.1f} %) of {n_volumes} volumes in {report['seconds']:.2f} s "
            f"({report['slices_per_s']:.0f} slices/s)")


# ------------------------------------------------------------------------------------------ streaming
def _out_name(src: Any, name: str) -> str:
    """Flat PNG inputs keep their names when they carry the volume (``<volume>_<index>.png``);
    slices named without ``_`` (one folder per volume) get the volume as a prefix."""
    if src.kind == "png" and "_" not in Path(name).stem:
        return f"{src.name}_{name}"
    return name


def reduce_sources(sources: Sequence[Any], pre: PreprocessConfig | None, cfg: ReductionConfig,
                   embed_fn: EmbedFn | None = None, sink: Callable[[Any, Slices, list[str], np.ndarray], list[str]] | None = None,
                   skip_bad: bool = False, progress: bool = True) -> tuple[list[dict[str, Any]], list[dict[str, str]], float]:
    """Read, reduce and hand to ``sink(source, slices, names, kept) -> written names`` one volume at a time."""
    from tqdm.auto import tqdm

    per: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    total = 0
    t0 = time.perf_counter()
    bar = tqdm(sources, desc=f"reduce ({cfg.strategy})", unit="vol", disable=not progress, file=sys.stderr)
    for src in bar:
        t = time.perf_counter()
        try:
            sl, names, warn = read_source(src, pre)
            idx = reduce_volume(sl, cfg, embed_fn)
        except (DataError, ValueError) as e:
            if not skip_bad:
                if isinstance(e, DataError):
                    raise
                raise DataError(src.path, str(e)) from e
            skipped.append({"volume": src.name, "path": str(src.path), "reason": str(e)})
            warnings.warn(f"skipped {src.path}: {e}", stacklevel=2)
            continue
        written = sink(src, sl, names, idx) if sink is not None else [names[int(i)] for i in idx]
        total += len(sl)
        per.append({"volume": src.name, "source": str(src.path), "kind": src.kind, "slices_in": len(sl),
                    "slices_kept": len(idx), "kept_indices": [int(i) for i in idx], "kept_files": written,
                    "seconds": time.perf_counter() - t, **({"warnings": warn} if warn else {})})
        bar.set_postfix_str(f"{total / max(time.perf_counter() - t0, 1e-9):.0f} slices/s")
        del sl
    bar.close()
    return per, skipped, time.perf_counter() - t0


def reduce_to_folder(path: str | Path, out: str | Path, pre: PreprocessConfig | None, cfg: ReductionConfig,
                     embed_fn: EmbedFn | None = None, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """``pretrainlab ct reduce``: stream every volume under ``path`` into the flat folder ``out``."""
    from PIL import Image

    from pretrainlab.core.io import atomic_dir, atomic_write_json
    from pretrainlab.ct.lidc import copy_file

    pc = pre or PreprocessConfig()
    path, out = Path(path), Path(out)
    if out.exists() and not overwrite:
        raise DataError(out, "already exists; pass --overwrite to replace it")
    if path.exists() and path.is_dir() and (out.resolve() == path.resolve() or path.resolve() in out.resolve().parents):
        raise DataError(out, f"is inside the input {path}; write the reduction elsewhere")
    sources, skipped = discover(path, pc)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        def sink(src: Any, sl: Slices, names: list[str], idx: np.ndarray) -> list[str]:
            written = []
            for i in idx:
                name = _out_name(src, names[int(i)])
                if src.kind == "png":
                    copy_file(src.files[int(i)], tmp / name)
                else:
                    Image.fromarray(np.asarray(sl[int(i)])).save(tmp / name)
                written.append(name)
            return written

        per, bad, seconds = reduce_sources(sources, pc, cfg, embed_fn, sink, pc.skip_bad_volumes, progress)
        if not per:
            raise DataError(path, f"every volume failed to read ({len(bad)} skipped); nothing to write")
        report = _report(cfg, per, seconds, skipped + bad, input=str(path), reference_png=pc.reference_png)
        atomic_write_json(tmp / "reduction.json", report)
    if progress:
        print(summary_line(report, len(per)), file=sys.stderr)
    return report


def reduce_and_gather(path: str | Path, pre: PreprocessConfig | None, cfg: ReductionConfig, size: int,
                      embed_fn: EmbedFn | None = None, skip_bad: bool = False,
                      progress: bool = True) -> tuple[torch.Tensor, dict[str, Any]]:
    """Streaming reduction for pre-training: read one volume at a time and keep only its selected
    slices, resized to ``size`` (``(N, size, size)`` uint8); full-resolution slices are never all in
    memory (the kept ones take N x size^2 bytes)."""
    from pretrainlab.ct.pretraining import resize_slices

    sources, skipped = discover(path, pre)
    parts: list[torch.Tensor] = []

    def sink(src: Any, sl: Slices, names: list[str], idx: np.ndarray) -> list[str]:
        if len(idx):
            parts.append(resize_slices([np.asarray(sl[int(i)]) for i in idx], size))
        return [_out_name(src, names[int(i)]) for i in idx]

    per, bad, seconds = reduce_sources(sources, pre, cfg, embed_fn, sink, skip_bad, progress)
    if not parts:
        raise DataError(path, "the reduction kept no slices (or every volume failed to read)")
    report = _report(cfg, per, seconds, skipped + bad, input=str(path))
    if progress:
        print(summary_line(report, len(per)), file=sys.stderr)
    return torch.cat(parts), report


def make_embedder(backbone: torch.nn.Module, image_size: int, mean: float, std: float,
                  device: str | torch.device = "cpu", batch: int = 256) -> EmbedFn:
    """DeepNet embeddings: slices (``(Z, H, W)`` uint8 or a list of 2-D) -> ``(Z, D)`` pooled backbone features."""
    from pretrainlab.ct.pretraining import resize_slices
    from pretrainlab.ct.resnet import to_input

    dev = torch.device(device)
    net = backbone.to(dev).eval()

    @torch.no_grad()
    def fn(slices: Slices) -> np.ndarray:
        x_all = resize_slices([np.asarray(s) for s in slices], image_size)
        outs = []
        for s in range(0, len(x_all), batch):
            x = x_all[s:s + batch][:, None].to(dev)
            outs.append(net(to_input(x, mean, std)).float().cpu())
        return torch.cat(outs).numpy()

    return fn


def calibrate(volumes: Sequence[tuple[str, Slices]], cfg: ReductionConfig, target: float,
              embed_fn: EmbedFn | None = None, steps: int = 30) -> tuple[float, float]:
    """The threshold of ``cfg.strategy`` (every_n: N; ssim / mi / deepnet: similarity) whose kept
    fraction on ``volumes`` is closest to ``target`` (bisection; kept fractions grow with SSIM / MI /
    cosine thresholds). Returns ``(threshold, kept fraction)``. Used to choose the thresholds of this
    project's extensions on phantoms the table does not use (see ``recipes/*.yaml``)."""
    n = sum(len(s) for _, s in volumes)
    if cfg.strategy == "every_n":
        best = min(range(1, 200), key=lambda k: abs(sum(len(range(0, len(s), k)) for _, s in volumes) / n - target))
        return float(best), sum(len(range(0, len(s), best)) for _, s in volumes) / n
    field = {"ssim": "ssim_threshold", "mi": "mi_threshold", "deepnet": "deepnet_threshold"}[cfg.strategy]
    import dataclasses

    cache: dict[Slices, Any] = {}
    if cfg.strategy == "deepnet" and embed_fn is not None:  # embed once, reduce on the embeddings
        emb = {name: embed_fn(s) for name, s in volumes}
        cache = emb  # type: ignore[assignment]

    def frac(t: float) -> float:
        c = dataclasses.replace(cfg, **{field: t})
        if cfg.strategy == "deepnet":
            kept = sum(len(R.embedding_select(cache[name], t)) for name, _ in volumes)
        else:
            kept = sum(len(reduce_volume(s, c)) for _, s in volumes)
        return kept / n

    lo, hi = (-1.0, 1.0) if cfg.strategy != "mi" else (0.0, 1.0)
    for _ in range(steps):
        mid = (lo + hi) / 2
        if frac(mid) < target:
            lo = mid
        else:
            hi = mid
    t = round(hi, 4)
    return t, frac(t)
