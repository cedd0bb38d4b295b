"""Torch datasets over the readers of :mod:`pretrainlab.clip.formats`.

:class:`ImageTextDataset` yields ``{"image": (3, S, S) uint8, "text": (1 + num_augs, L) long}``:
the image is decoded (and resized to the model's input size); the image *views* are made on the
device by the task (batched augmentations). The text holds the global caption followed by
``num_augs`` augmented captions (CLIP-rocket text augmentation), already tokenised.

Benchmarks: :func:`load_zeroshot` (``classes.json`` + ``labels.csv``) and :func:`load_retrieval`
(any image-text source; one caption per image).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pretrainlab.clip import formats
from pretrainlab.clip.text_augmentation import augmented_caption, clean, global_caption
from pretrainlab.core.data import DataError

_DECODED: dict[tuple[Any, ...], tuple[np.ndarray, list[int], list[str]]] = {}
_BENCH: dict[tuple[str, str, int], dict[str, Any]] = {}


class ImageTextDataset(Dataset):
    """Image-text pairs with CLIP-rocket text augmentation.

    Args:
        source: CSV / TSV file, shard(s), folder with ``captions.jsonl``, or a synthetic dataset root.
        tokenizer: open_clip tokenizer (``list[str] -> (N, L) long``).
        image_size: model input side; images are resized to it once.
        num_texts: 1 (global caption only) or ``1 + num_augs``.
        text_aug: apply the paper's text augmentation (else the raw, cleaned caption is repeated).
        preload: decode every image at construction (small sets) instead of on access.
    """

    def __init__(self, source: str | Path, tokenizer: Callable[[list[str]], torch.Tensor], image_size: int,
                 num_texts: int = 1, text_aug: bool = True, global_stopword_p: float = 0.8,
                 eda_weights: tuple[float, float, float] = (0.4, 0.4, 0.2), eda_alpha: float = 0.1,
                 fmt: str = "auto", preload: bool = True, max_bad_fraction: float = 0.05,
                 csv_img_key: str = "filepath", csv_caption_key: str = "title", csv_separator: str = "\t",
                 progress: bool = True) -> None:
        self.source = str(source)
        report = formats.read_any(source, fmt, csv_img_key, csv_caption_key, csv_separator)
        self.report = report
        self.tokenizer = tokenizer
        self.size = image_size
        self.num_texts = num_texts
        self.text_aug = text_aug
        self.global_stopword_p = global_stopword_p
        self.eda_weights = eda_weights
        self.eda_alpha = eda_alpha
        self.max_bad_fraction = max_bad_fraction
        self.bad_images: list[str] = []
        self._token_cache: dict[str, torch.Tensor] = {}
        self.images: np.ndarray | None = None
        records = report.records
        if preload:
            key = (self.source, fmt, image_size, csv_img_key, csv_caption_key, csv_separator, len(records))
            if key not in _DECODED:  # decoded once per process (reproduce trains 18 models on one set)
                _DECODED.clear()
                bad: list[str] = []
                imgs, ok = formats.load_images(records, image_size, progress, bad.append)
                _DECODED[key] = (imgs, ok, bad)
            self.images, ok, bad = _DECODED[key]
            self.bad_images.extend(bad)
            records = [records[i] for i in ok]
        self.records = records
        formats.check_bad_fraction(report, len(self.bad_images), max_bad_fraction, self.source)
        if not self.records:
            raise DataError(self.source, "no readable image-text pairs")
        self.n_skipped = len(report.bad) + len(self.bad_images)

    def __len__(self) -> int:
        return len(self.records)

    def captions(self) -> list[str]:
        return [r.caption for r in self.records]

    def image(self, i: int) -> np.ndarray:
        """``(S, S, 3)`` uint8 of sample ``i`` (lazy decode, bad images are replaced by the next good one)."""
        if self.images is not None:
            return self.images[i]
        tries = 0
        while True:
            r = self.records[(i + tries) % len(self.records)]
            try:
                return formats.decode_image(r.read_bytes(), f"{r.source}:{r.key}", self.size)
            except (DataError, OSError) as e:
                self.bad_images.append(str(e))
                tries += 1
                limit = self.max_bad_fraction * max(1, self.report.total)
                if len(self.bad_images) + len(self.report.bad) > limit or tries >= len(self.records):
                    formats.check_bad_fraction(self.report, len(self.bad_images), self.max_bad_fraction, self.source)
                    raise

    def texts(self, caption: str, rng: random.Random) -> list[str]:
        if not self.text_aug:
            return [clean(caption)] * self.num_texts
        out = [global_caption(caption, rng, self.global_stopword_p)]
        out += [augmented_caption(caption, rng, self.eda_weights, self.eda_alpha) for _ in range(self.num_texts - 1)]
        return out

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = random.Random(int(torch.randint(0, 2**62, ()).item()))  # torch's RNG: checkpointed by the trainer
        img = torch.from_numpy(np.ascontiguousarray(self.image(i))).permute(2, 0, 1)
        return {"image": img, "text": self.tokenize(self.texts(self.records[i].caption, rng))}

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """``(len(texts), L)`` tokens; each distinct string is tokenised once (bounded cache)."""
        cache = self._token_cache
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            if len(cache) > 200_000:
                cache.clear()
            for t, row in zip(missing, self.tokenizer(missing)):
                cache[t] = row
        return torch.stack([cache[t] for t in texts])


# ------------------------------------------------------------------ benchmarks
def load_zeroshot(root: str | Path, image_size: int, progress: bool = False) -> dict[str, Any]:
    """``root/classes.json`` + ``root/labels.csv`` -> images ``(N, S, S, 3)`` uint8, labels, class names."""
    root = Path(root)
    key = ("zeroshot", str(root.resolve()), image_size)
    if key in _BENCH:
        return _BENCH[key]
    cpath = root / "classes.json"
    try:
        meta = json.loads(cpath.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise DataError(cpath, "zero-shot class file not found") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(cpath, f"not valid UTF-8 JSON ({e})") from e
    if not isinstance(meta, dict) or not meta.get("classnames") or not meta.get("templates"):
        raise DataError(cpath, "needs non-empty 'classnames' and 'templates' lists")
    rep = formats.read_csv(root / "labels.csv", "filepath", "label")
    imgs, ok = formats.load_images(rep.records, image_size, progress)
    try:
        labels = np.array([int(rep.records[i].caption) for i in ok], dtype=np.int64)
    except ValueError as e:
        raise DataError(root / "labels.csv", f"label column must hold class indices ({e})") from e
    n_cls = len(meta["classnames"])
    if len(labels) and (labels.min() < 0 or labels.max() >= n_cls):
        raise DataError(root / "labels.csv", f"labels must lie in [0, {n_cls})")
    out = {"images": imgs, "labels": labels, "classnames": list(meta["classnames"]),
           "templates": list(meta["templates"]), "unseen": list(meta.get("unseen", []))}
    _BENCH[key] = out
    return out


def load_retrieval(source: str | Path, image_size: int, progress: bool = False) -> dict[str, Any]:
    """Any image-text source -> images ``(N, S, S, 3)`` uint8 and their captions (pair ``i`` matches)."""
    key = ("retrieval", str(Path(source).resolve()), image_size)
    if key not in _BENCH:
        rep = formats.read_any(source)
        imgs, ok = formats.load_images(rep.records, image_size, progress)
        _BENCH[key] = {"images": imgs, "captions": [rep.records[i].caption for i in ok]}
    return _BENCH[key]
