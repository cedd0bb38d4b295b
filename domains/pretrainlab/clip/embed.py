"""``pretrainlab clip embed``: image (and caption) embeddings of a folder or an image-text source.

Output: one ``.safetensors`` with ``image`` ``(N, D)`` (linear head, L2-normalised), ``text``
``(N, D)`` when captions exist, ``image_mlp`` / ``text_mlp`` for CLIP-rocket models; the metadata
``keys`` (JSON list) names the sample of each row.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pretrainlab.clip import formats
from pretrainlab.clip.zeroshot import embed_images, embed_texts
from pretrainlab.core.data import DataError


def _folder_records(root: Path) -> list[formats.Record]:
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in formats.IMAGE_EXTS)
    if not files:
        raise DataError(root, f"no images ({', '.join(formats.IMAGE_EXTS)}) found")
    return [formats.Record(str(root), str(p.relative_to(root)), "", str(p)) for p in files]


def embed_source(task: Any, source: Path, out: Path) -> dict[str, Any]:
    """Embed every readable sample of ``source`` into ``out``; returns a summary."""
    from pretrainlab.core.checkpoint import save_tensors

    source = Path(source)
    try:
        rep = formats.read_any(source)
        records, has_text = rep.records, True
    except DataError:
        if not source.is_dir():
            raise
        records, has_text = _folder_records(source), False
    bad: list[str] = []
    imgs, ok = formats.load_images(records, task.image_size, progress=True, on_bad=bad.append)
    if not ok:
        raise DataError(source, "no readable images")
    recs = [records[i] for i in ok]
    tensors: dict[str, torch.Tensor] = {}
    ei = embed_images(task, np.asarray(imgs))
    tensors["image"] = F.normalize(ei["z"], dim=-1)
    if "h" in ei:
        tensors["image_mlp"] = F.normalize(ei["h"], dim=-1)
    if has_text:
        et = embed_texts(task, [r.caption for r in recs])
        tensors["text"] = F.normalize(et["z"], dim=-1)
        if "h" in et:
            tensors["text_mlp"] = F.normalize(et["h"], dim=-1)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    save_tensors(tmp, tensors, {"keys": json.dumps([f"{r.source}:{r.key}" for r in recs]),
                                "model": task.cfg.model.name})
    tmp.replace(out)
    info = {"out": str(out), "n": len(recs), "skipped": len(bad), "dim": int(tensors["image"].shape[1]),
            "tensors": sorted(tensors)}
    print(f"embedded {len(recs)} samples ({len(bad)} skipped) -> {out}", file=sys.stderr)
    return info
