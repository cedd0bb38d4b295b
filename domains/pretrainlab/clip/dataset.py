"""Torch datasets over the readers of :mod:`pretrainlab.clip.formats`.

Training samples are ``{"image": (V, 3, S, S) uint8, "text": (T, L) long}``: ``V`` views cropped from
the full-resolution image in the data loader (:class:`~pretrainlab.clip.transforms.ViewMaker`; the
global view first) and ``T`` captions (the global caption, then the augmented ones), tokenised.

* :class:`PairDataset` (map-style; CSV, captions JSONL): images decoded lazily in the DataLoader
  workers, or once into memory with ``data.preload`` (small sets); the trainer's resumable sampler
  shuffles and shards it.
* :class:`ShardStream` (iterable): webdataset shards streamed with the ``webdataset`` library as
  ``open_clip_train.data.get_wds_dataset`` does: shards split across ranks (``split_by_node``) and
  DataLoader workers (``split_by_worker``), a shard shuffle and a sample shuffle buffer, or endless
  resampling of shards with replacement (``data.resampled``). Deviation: each rank keeps a fixed
  1/world share of the shards (split before the shuffle, so ranks need not agree on a shuffle seed);
  open_clip shuffles before splitting. A resumed streaming run restarts its stream (no sample-exact
  resume; open_clip resumes at epoch granularity too).
* :class:`EvalImages` (map-style, ordered): the evaluation transform of each image, with failures
  reported per sample so the caller counts them (embedding, zero-shot, retrieval).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, IterableDataset

from pretrainlab.clip import formats
from pretrainlab.clip.config import TextAugConfig
from pretrainlab.clip.text_augmentation import augmented_caption, clean, global_caption
from pretrainlab.core.data import DataError

MIN_SAMPLES_FOR_RATE = 200  # a reader judges its bad-sample rate only after this many samples
_PRELOADED: dict[tuple[Any, ...], tuple[list[Image.Image], list[int], formats.Problems]] = {}


# ------------------------------------------------------------------ captions
class TextMaker:
    """Caption -> ``(T, L)`` tokens: the global caption then ``T - 1`` augmented captions (or the raw
    caption repeated when text augmentation is off), tokenised by the open_clip tokenizer (cached)."""

    def __init__(self, tokenizer: Callable[[list[str]], torch.Tensor], num_texts: int, t: TextAugConfig) -> None:
        self.tokenizer = tokenizer
        self.num_texts = num_texts
        self.t = t
        self._cache: dict[str, torch.Tensor] = {}
        self._words: dict[str, list[int]] = {}

    def texts(self, caption: str, rng: random.Random) -> list[str]:
        t = self.t
        if not t.enabled:
            return [clean(caption) if t.clean_before_augment else caption] * self.num_texts
        out = [global_caption(caption, rng, t.stopword_p, t.clean_before_augment)]
        out += [augmented_caption(caption, rng, t.stopword_p, t.no_aug_p, tuple(t.eda_weights), t.eda_n,
                                  t.eda_deletion_p, t.clean_before_augment) for _ in range(self.num_texts - 1)]
        return out

    max_cache = 50_000  # cached token rows (~30 MB of 77-token rows), then the cache starts over

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """``(len(texts), L)``; each distinct string is tokenised once (bounded cache)."""
        cache = self._cache
        if len(cache) + len(texts) > self.max_cache:
            cache.clear()
            self._words.clear()
        missing = [s for s in dict.fromkeys(texts) if s not in cache]
        if missing:
            for s, row in zip(missing, self._tokenize(missing)):
                cache[s] = row
        return torch.stack([cache[s] for s in texts])

    def _tokenize(self, texts: list[str]) -> torch.Tensor:
        """The open_clip tokenizer's output, computed word by word for ASCII captions.

        open_clip's ``SimpleTokenizer`` cleans (ftfy, HTML unescape, whitespace, lower case), splits with a
        regex that never crosses whitespace, and BPE-encodes each piece; for ASCII text every step acts
        within a word, so the ids of a caption are the concatenation of its words' ids (each word encoded
        once, cached), then SOT / EOT and open_clip's truncation. Anything else (non-ASCII text, other
        tokenizers, a reduction function) goes through the tokenizer itself."""
        tok = self.tokenizer
        fast = (hasattr(tok, "encode") and getattr(tok, "reduction_fn", None) is None
                and getattr(tok, "context_length", None) and hasattr(tok, "sot_token_id"))
        if not fast:
            return self.tokenizer(texts)
        n_ctx, sot, eot = int(tok.context_length), tok.sot_token_id, tok.eot_token_id
        out = torch.zeros(len(texts), n_ctx, dtype=torch.long)
        slow = [i for i, t in enumerate(texts) if not t.isascii()]
        for i, t in enumerate(texts):
            if not t.isascii():
                continue
            ids = [sot]
            for w in t.split():
                enc = self._words.get(w)
                if enc is None:
                    enc = self._words[w] = tok.encode(w)
                ids += enc
            ids.append(eot)
            if len(ids) > n_ctx:
                ids = ids[:n_ctx]
                ids[-1] = eot
            out[i, :len(ids)] = torch.tensor(ids)
        if slow:
            out[slow] = self.tokenizer([texts[i] for i in slow])
        return out

    def __call__(self, caption: str) -> torch.Tensor:
        rng = random.Random(int(torch.randint(0, 2**62, ()).item()))  # torch's RNG: checkpointed / per worker
        return self.tokenize(self.texts(caption, rng))


class BadSamples:
    """Per-process count of skipped samples with the ``data.max_bad_fraction`` rule. ``known``: the
    problems a reader found before any image was read (bad rows), part of every count."""

    def __init__(self, what: str, max_bad_fraction: float, total: int = 0, known: formats.Problems | None = None) -> None:
        self.what = what
        self.max_bad_fraction = max_bad_fraction
        self.total = total  # samples known up front (0: a stream)
        self.known = known or formats.Problems()
        self.problems = formats.Problems()  # image-level problems found by this process
        self.seen = 0

    @property
    def count(self) -> int:
        return self.known.count + self.problems.count

    def first(self) -> str:
        return "; ".join((self.known.examples + self.problems.examples)[: formats.MAX_BAD_EXAMPLES]) or "(none recorded)"

    def check(self) -> None:
        """Raise when the known total is exceeded, or (after enough samples) the running rate is."""
        n = self.count
        if self.total and n > self.max_bad_fraction * self.total:
            formats.check_bad_fraction(n, self.total, self.max_bad_fraction, self.what, self.first())
        seen = self.seen + self.known.count
        if seen >= MIN_SAMPLES_FOR_RATE and n / seen > self.max_bad_fraction:
            formats.check_bad_fraction(n, seen, self.max_bad_fraction, self.what, self.first())

    def ok(self) -> None:
        self.seen += 1

    def bad(self, message: str) -> None:
        self.seen += 1
        self.problems.add(message)
        self.check()


# ------------------------------------------------------------------ map-style training pairs
class PairDataset(Dataset):
    """Image-text pairs of a map-style source (CSV / captions JSONL / indexed shards)."""

    def __init__(self, source: formats.CsvSource | formats.ListSource, views: Callable[[Image.Image], torch.Tensor],
                 text: TextMaker, preload: bool = False, max_bad_fraction: float = 0.05, progress: bool = True) -> None:
        self.source = source
        self.views = views
        self.text = text
        self.what = str(getattr(source, "path", "") or "data")
        if len(source) == 0:
            raise DataError(self.what, f"no readable image-text pairs (first problems: {source.problems.first()})")
        self.bad = BadSamples(self.what, max_bad_fraction, source.total, source.problems)
        formats.check_bad_fraction(source.problems.count, source.total, max_bad_fraction, self.what,
                                   source.problems.first(), warn=False)
        self.index = np.arange(len(source))
        self.images: list[Image.Image] | None = None  # decoded full-resolution images (preload)
        if preload:
            self._preload(progress)
        if self.bad.count:
            print(f"warning: {self.what}: skipped {self.bad.count} of {source.total} samples; first: "
                  f"{self.bad.first()}", file=sys.stderr)

    def _preload(self, progress: bool) -> None:
        from tqdm import tqdm

        st = os.stat(self.what) if os.path.exists(self.what) else None
        key = (self.what, len(self.source), st.st_mtime_ns if st else 0, st.st_size if st else 0)
        if key not in _PRELOADED:  # decoded once per process (reproduce trains many models on one set)
            _PRELOADED.clear()
            imgs, ok, probs = [], [], formats.Problems()
            for i in tqdm(range(len(self.source)), desc="decoding images", unit="img", disable=not progress, leave=False):
                r = self.source[i]
                try:
                    imgs.append(formats.decode_pil(r.read_bytes(), r.name))
                    ok.append(i)
                except DataError as e:
                    probs.add(str(e))
            _PRELOADED[key] = (imgs, ok, probs)
        imgs, ok, probs = _PRELOADED[key]
        self.bad.problems = probs
        self.bad.seen = len(self.source)
        self.bad.check()
        if not ok:
            raise DataError(self.what, f"no readable images (first problems: {self.bad.first()})")
        self.images, self.index = imgs, np.asarray(ok)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def n_skipped(self) -> int:
        return self.bad.count

    def captions(self) -> list[str]:
        return [self.source[int(i)].caption for i in self.index]

    def __getitem__(self, j: int) -> dict[str, torch.Tensor]:
        """Sample ``j``; an unreadable image is counted and replaced by the next readable one."""
        for k in range(len(self)):
            jj = (j + k) % len(self)
            r = self.source[int(self.index[jj])]  # one record read per sample (caption and image file)
            try:
                img = self.images[jj] if self.images is not None else formats.decode_pil(r.read_bytes(), r.name)
            except DataError as e:
                self.bad.bad(str(e))
                continue
            self.bad.ok()
            return {"image": self.views(img), "text": self.text(r.caption)}
        raise DataError(self.what, f"no readable image left (first problems: {self.bad.first()})")


# ------------------------------------------------------------------ streamed webdataset shards
class ShardStream(IterableDataset):
    """webdataset shards streamed (see the module docstring); yields training samples."""

    def __init__(self, shards: list[str], views: Callable[[Image.Image], torch.Tensor], text: TextMaker, seed: int = 0,
                 resampled: bool = False, shard_shuffle: int = 2000, sample_shuffle: int = 5000,
                 max_bad_fraction: float = 0.05, what: str = "shards") -> None:
        super().__init__()
        self.shards = list(shards)
        self.views, self.text, self.seed = views, text, seed
        self.resampled, self.shard_shuffle, self.sample_shuffle = resampled, shard_shuffle, sample_shuffle
        self.max_bad_fraction = max_bad_fraction
        self.what = what
        self._epoch = 0

    def _seeds(self) -> tuple[int, int]:
        """``(node seed, worker seed)``: the first is shared by this rank's workers (the shard order they
        split), the second differs per worker; both change per epoch (the DataLoader's base seed, or a
        counter in the main process)."""
        from webdataset.utils import make_seed, pytorch_worker_info

        rank, _, worker, _ = pytorch_worker_info()
        info = torch.utils.data.get_worker_info()
        if info is None:
            self._epoch += 1
            base = make_seed(torch.initial_seed(), self._epoch)
        else:
            base = info.seed - info.id
        return make_seed(self.seed, base, rank), make_seed(self.seed, base, rank, worker)

    def _handler(self, bad: BadSamples) -> Callable[[Exception], bool]:
        def handle(exn: Exception) -> bool:
            bad.bad(f"{self.what}: {type(exn).__name__}: {exn}")
            return True

        return handle

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        import webdataset as wds

        node_seed, worker_seed = self._seeds()
        bad = BadSamples(self.what, self.max_bad_fraction)
        if self.resampled:
            stages: list[Any] = [wds.ResampledShards(self.shards, seed=worker_seed, deterministic=True,
                                                     worker_seed=lambda: 0)]
        else:
            stages = [wds.SimpleShardList(self.shards), wds.split_by_node,
                      wds.detshuffle(bufsize=self.shard_shuffle, initial=min(500, self.shard_shuffle), seed=node_seed),
                      wds.split_by_worker]
        stages += [wds.tarfile_to_samples(handler=self._handler(bad)),
                   wds.shuffle(self.sample_shuffle, initial=min(1000, self.sample_shuffle), rng=random.Random(worker_seed))]
        yielded = 0
        for s in wds.DataPipeline(*stages):
            where = f"{s.get('__url__', '?')}:{s.get('__key__', '?')}"
            try:
                data, caption = formats.shard_sample(s.get("__url__", "?"), s.get("__key__", "?"),
                                                     {k: v for k, v in s.items() if not k.startswith("__")})
                img = formats.decode_pil(data, where)
            except DataError as e:
                bad.bad(str(e))
                continue
            bad.ok()
            yielded += 1
            yield {"image": self.views(img), "text": self.text(caption)}
        if yielded == 0:  # a pass without one sample would make the trainer loop without progress
            raise DataError(self.what, f"no readable sample in {len(self.shards)} shard(s) ({bad.count} problems; "
                                       f"first: {bad.first()})")
        if bad.count:
            print(f"warning: {self.what}: skipped {bad.count} of {bad.seen} streamed samples in this pass; "
                  f"first: {bad.first()}", file=sys.stderr)


# ------------------------------------------------------------------ evaluation images
class EvalImages(Dataset):
    """Ordered evaluation reads: ``{"index", "image" (3, S, S) float, "ok", "error"}`` per record;
    an unreadable image gives ``ok = False`` and the error text (the caller counts it)."""

    def __init__(self, records: Any, transform: Callable[[Image.Image], torch.Tensor], size: int) -> None:
        self.records = records
        self.transform = transform
        self.size = size

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        r = self.records[i]
        try:
            img = self.transform(formats.decode_pil(r.read_bytes(), r.name))
            return {"index": i, "image": img, "ok": True, "error": ""}
        except DataError as e:
            return {"index": i, "image": torch.zeros(3, self.size, self.size), "ok": False, "error": str(e)}


def eval_loader(records: Any, transform: Callable[[Image.Image], torch.Tensor], size: int, batch_size: int,
                num_workers: int = 0) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(EvalImages(records, transform, size), batch_size=batch_size, shuffle=False,
                                       num_workers=num_workers, pin_memory=torch.cuda.is_available())


# ------------------------------------------------------------------ errors from DataLoader workers
_WORKER_ERR = re.compile(r"pretrainlab\.core\.data\.DataError: (.+?): (.+)\s*$", re.DOTALL)


@contextlib.contextmanager
def worker_errors() -> Iterator[None]:
    """A DataError raised in a DataLoader worker reaches the main process as a RuntimeError holding
    the worker's traceback (its class takes two arguments); turn it back into the one-line DataError."""
    try:
        yield
    except RuntimeError as e:
        text = str(e)
        if "Caught DataError in DataLoader worker" not in text:
            raise
        last = text.strip().splitlines()[-1]
        m = _WORKER_ERR.match(last)
        if m is None:
            raise
        raise DataError(m.group(1), m.group(2).strip()) from None
