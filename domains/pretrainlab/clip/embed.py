"""``pretrainlab clip embed``: image (and caption) embeddings of a folder of images or an image-text
source (open_clip CSV, webdataset shards, captions JSONL), streamed.

Output: one ``.safetensors`` with ``image`` ``(N, D)`` and, when the source has captions, ``text``
``(N, D)``: open_clip's ``encode_image(preprocess(img), normalize=True)`` /
``encode_text(tokenizer(caption), normalize=True)``, rows in source order, for the N samples whose
image decodes (the others are skipped and counted). ``image_mlp`` / ``text_mlp`` (the CLIP-rocket MLP
head) only for pretrainlab runs that have one. The metadata names the model and, for up to
:data:`MAX_KEYS_IN_HEADER` rows, the sample of each row (``keys``, a JSON list); larger outputs write
the keys to ``<out>.keys.txt`` (one per line). Everything is written to temporary names and moved
into place at the end: a failed run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from pretrainlab.clip import formats
from pretrainlab.clip.zeroshot import embed_images, embed_texts
from pretrainlab.core.data import DataError

MAX_KEYS_IN_HEADER = 100_000


def open_source(source: Path) -> tuple[Any, bool]:
    """``(reader, has_captions)``: an image-text source, else a folder of images."""
    try:
        return formats.read_source(source), True
    except DataError:
        if Path(source).is_dir() and not formats.is_shard_spec(source):
            return formats.read_image_folder(source), False
        raise


def check_out(out: Path, source: Path, overwrite: bool = False) -> Path:
    """The output path is a new ``.safetensors`` file that is not the input."""
    out = Path(out)
    if out.suffix != ".safetensors":
        raise DataError(out, "output must be a .safetensors file")
    if out.is_dir():
        raise DataError(out, "is a folder; give the output file name, e.g. emb.safetensors")
    if out.exists() and not overwrite:
        raise DataError(out, "already exists; pass --overwrite to replace it")
    src = Path(str(source))
    if src.exists() and out.resolve() == src.resolve():
        raise DataError(out, "is the input itself; choose another output name")
    return out


def embed_source(task: Any, source: Path, out: Path, batch_size: int = 256, num_workers: int = 0,
                 max_bad_fraction: float = 0.05, overwrite: bool = False) -> dict[str, Any]:
    """Embed every readable sample of ``source`` into ``out``; returns a summary (counts include the
    rows the reader skipped: bad CSV rows, non-UTF-8 captions, unreadable images)."""
    from pretrainlab.core.checkpoint import save_tensors

    out = check_out(out, source, overwrite)
    reader, has_text = open_source(Path(source))
    what = str(getattr(reader, "path", source))
    if len(reader) == 0:
        raise DataError(what, f"no readable samples (first problems: {reader.problems.first()})")
    keep = ("z", "h") if task.uses_aug_pairs else ("z",)
    emb, ok, problems = embed_images(task, reader, batch_size, num_workers, keep=keep, progress=True)
    skipped = reader.problems.count + problems.count
    first = "; ".join((reader.problems.examples + problems.examples)[: formats.MAX_BAD_EXAMPLES])
    if not ok:
        raise DataError(what, f"no readable images ({skipped} skipped; first: {first})")
    formats.check_bad_fraction(skipped, reader.total, max_bad_fraction, what, first, warn=False)
    tensors: dict[str, torch.Tensor] = {"image": F.normalize(emb["z"], dim=-1)}
    if "h" in emb:
        tensors["image_mlp"] = F.normalize(emb["h"], dim=-1)
    if has_text:
        et = embed_texts(task, [reader[i].caption for i in ok])
        tensors["text"] = F.normalize(et["z"], dim=-1)
        if "h" in et:
            tensors["text_mlp"] = F.normalize(et["h"], dim=-1)
    keys = [reader[i].name for i in ok]
    meta = {"model": task.cfg.model.name, "source": str(source), "rows": str(len(ok)), "skipped": str(skipped)}
    sidecar = out.with_name(out.name + ".keys.txt")
    if len(keys) <= MAX_KEYS_IN_HEADER:
        meta["keys"] = json.dumps(keys)
    else:
        meta["keys_file"] = sidecar.name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp, tmp_keys = out.with_name(f".{out.name}.tmp"), sidecar.with_name(f".{sidecar.name}.tmp")
    try:
        if "keys_file" in meta:
            tmp_keys.write_text("\n".join(keys) + "\n", encoding="utf-8")
        save_tensors(tmp, tensors, meta)
        if "keys_file" in meta:
            os.replace(tmp_keys, sidecar)
        os.replace(tmp, out)
    except BaseException:
        for p in (tmp, tmp_keys):
            with contextlib.suppress(OSError):
                p.unlink()
        raise
    info = {"out": str(out), "n": len(ok), "skipped": skipped, "dim": int(tensors["image"].shape[1]),
            "tensors": sorted(tensors)}
    if skipped:
        info["first_skipped"] = first
    print(f"embedded {len(ok)} samples ({skipped} skipped{'; first: ' + first if skipped else ''}) -> {out}",
          file=sys.stderr)
    return info
