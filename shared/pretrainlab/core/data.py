"""Data plumbing shared by every domain.

- ``DataError``: the one error type readers raise; its message always starts with the file.
- ``ResumableSampler``: seeded per-epoch shuffling, sharded across DDP ranks, that can start in the
  middle of an epoch (exact resume).
- ``item_generator``: a per-sample RNG derived from (seed, epoch, index), so augmentations are the
  same whatever the number of workers.
- ``ItemCache``: decoded items kept in memory up to a byte budget (least recently used out first), so
  a small labelled subset read for many epochs is decoded once while a full split still streams.
- Checksummed manifests (``manifest.json`` with sha256 per file) and a cache folder.
- The synthetic-generator protocol: ``generate(out, profile, seed)`` writes the domain's real
  format into a temporary folder that is renamed when complete (``cached_synthetic``); under
  torchrun rank 0 generates while the others wait (``rank_zero_first``).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Sampler

from pretrainlab.core.io import atomic_dir, atomic_write_json


class DataError(ValueError):
    """Malformed input data. ``str(err)`` reads ``"<path>: <problem>"``.

    Raised inside a DataLoader worker, it reaches the main process through torch's
    ``ExceptionWrapper``, which rebuilds it from one string: the worker's whole traceback. That
    one-argument form is parsed back into the original ``path`` and ``problem`` (the traceback's
    last line), so a corrupt file found while decoding lazily in a worker is still one clear line.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str | None = None) -> None:
        if problem is None:
            path, problem = _split_message(str(path))
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.problem))


def _split_message(msg: str) -> tuple[str, str]:
    """``"<path>: <problem>"`` (or a worker traceback ending in ``...DataError: <path>: <problem>``)."""
    import re

    if "Traceback" in msg:
        last = [ln for ln in msg.strip().splitlines() if ln.strip()][-1]
        m = re.search(r"DataError: (.*)$", last)
        msg = m.group(1) if m else last
    path, sep, problem = msg.partition(": ")
    return (path, problem) if sep else ("", msg)


def cache_root() -> Path:
    """``$PRETRAINLAB_CACHE`` or ``~/.cache/pretrainlab``."""
    return Path(os.environ.get("PRETRAINLAB_CACHE", Path.home() / ".cache" / "pretrainlab"))


def runs_root() -> Path:
    """``$PRETRAINLAB_RUNS`` or ``./runs``: where run folders and reproductions go."""
    return Path(os.environ.get("PRETRAINLAB_RUNS", "runs"))


class ResumableSampler(Sampler[int]):
    """Indices for one epoch: a permutation seeded by ``seed + epoch``, sharded by rank.

    ``set_epoch(epoch, start=k)`` skips the first ``k`` indices of this rank's share (used when
    resuming mid-epoch). Every rank gets ``len(dataset) // world`` indices (the tail is dropped so
    ranks stay in step).
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world: int = 1) -> None:
        if n <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.n, self.seed, self.shuffle, self.rank, self.world = n, seed, shuffle, rank, world
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            idx = torch.randperm(self.n, generator=g).tolist()
        else:
            idx = list(range(self.n))
        per = self.n // self.world
        if per == 0:
            raise ValueError(f"dataset of {self.n} samples is smaller than the {self.world} processes")
        return idx[self.rank * per:(self.rank + 1) * per]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.start:])

    def __len__(self) -> int:
        return self.n // self.world - self.start


def nbytes(value: Any) -> int:
    """The memory an item holds in arrays / tensors (containers walked; anything else counts 64 bytes)."""
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.nelement()
    if hasattr(value, "nbytes") and hasattr(value, "dtype"):  # numpy array
        return int(value.nbytes)
    if isinstance(value, dict):
        return 64 + sum(nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return 64 + sum(nbytes(v) for v in value)
    if hasattr(value, "__dict__"):
        return 64 + sum(nbytes(v) for v in vars(value).values())
    return 64


class ItemCache:
    """Decoded items of a dataset kept in memory up to ``max_bytes`` (least recently used dropped first).

    A reader stays streamed: memory is bounded by the budget, not by the split. When the items a run
    reads fit (a 5 % label subset read for 24 epochs), each is decoded once; when they do not, the
    cache keeps what fits and the rest is decoded per read as before. Only deterministic work belongs
    in it (decoding, filtering), never an item's random augmentation; callers must not modify a
    returned value. It works in the process that reads the items (``num_workers=0``); inside a
    DataLoader worker it keeps nothing, since the trainer's workers are not persistent (they are made
    anew every epoch so that ``SeededItems`` sees the epoch) and a cache there would be memory thrown
    away each epoch (workers decode in parallel instead). ``max_bytes=0`` turns it off.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes, self.bytes, self.hits, self.misses = int(max_bytes), 0, 0, 0
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The cached value of ``key``, or ``make()`` (kept when it fits in the budget)."""
        if key in self._items:
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key][0]
        self.misses += 1
        value = make()
        if self.max_bytes == 0 or torch.utils.data.get_worker_info() is not None:
            return value
        size = nbytes(value)
        if size <= self.max_bytes:
            while self.bytes + size > self.max_bytes:
                _, (_, old) = self._items.popitem(last=False)
                self.bytes -= old
            self._items[key] = (value, size)
            self.bytes += size
        return value


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A torch RNG for one sample of one epoch, independent of worker count and order."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 10_000_019 + index)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def write_manifest(root: Path, info: dict[str, Any] | None = None, name: str = "manifest.json") -> Path:
    """Record every file under ``root`` with its size and sha256 (``manifest.json``)."""
    root = Path(root)
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != name:
            files[str(p.relative_to(root))] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    out = root / name
    atomic_write_json(out, {"info": info or {}, "files": files})
    return out


def generate_dataset(generator: Callable[[Path, str, int], Any], out: Path, profile: str = "tiny",
                     seed: int = 0, overwrite: bool = False) -> Path:
    """Run a generator into a temporary folder, add a manifest, rename into place atomically."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError(out, "already exists; pass --overwrite to replace it")
    with atomic_dir(out, overwrite=overwrite) as tmp:
        generator(tmp, profile, seed)
        write_manifest(tmp, {"profile": profile, "seed": seed})
    return out


def cached_synthetic(domain: str, generator: Callable[[Path, str, int], Any], profile: str = "tiny",
                     seed: int = 0, version: str = "1") -> Path:
    """The domain's embedded synthetic data, generated once into the cache and reused."""
    from pretrainlab.core.distributed import rank_zero_first

    out = cache_root() / "data" / domain / f"{profile}-seed{seed}-v{version}"
    with rank_zero_first():  # under torchrun: rank 0 generates, the other ranks then find it
        if (out / "manifest.json").exists():
            return out
        try:
            return generate_dataset(generator, out, profile, seed)
        except (FileExistsError, DataError):  # another process (another job) finished it first
            if (out / "manifest.json").exists():
                return out
            raise


def default_collate_to(batch: Any, device: torch.device, non_blocking: bool = True) -> Any:
    """Move a nested batch (tensors in dicts / lists / tuples) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return {k: default_collate_to(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        moved = [default_collate_to(v, device, non_blocking) for v in batch]
        return type(batch)(moved) if isinstance(batch, tuple) and not hasattr(batch, "_fields") else moved
    return batch


def batch_size_of(batch: Any) -> int:
    """Size of the leading dimension of the first tensor found in ``batch``."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, dict):
        for v in batch.values():
            n = batch_size_of(v)
            if n:
                return n
    if isinstance(batch, (list, tuple)):
        for v in batch:
            n = batch_size_of(v)
            if n:
                return n
    return 0
