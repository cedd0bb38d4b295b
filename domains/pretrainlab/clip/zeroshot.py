"""Zero-shot classification, retrieval and embedding, streamed (CLIP Sec. 3.1.2; CLIP-rocket Sec. 5;
ref ``main.validate_zeroshot``).

* Images are read and preprocessed in DataLoader workers with the task's evaluation transform
  (open_clip's Resize of the shorter side + CenterCrop + normalisation), batch by batch: a 50k-image
  ImageNet folder is never decoded into memory; an unreadable image is skipped and counted.
* Class embeddings: every prompt template filled with the class name, encoded, L2-normalised,
  averaged and re-normalised (CLIP's prompt ensembling; ref ``validate_zeroshot``).
* CLIP-rocket models have two heads: the linear projector ``z`` and the MLP projector ``h``; the
  zero-shot similarity is ``w * cos(z_img, z_cls) + (1 - w) * cos(h_img, h_cls)`` (``w = 1`` the linear
  head, ``w = 0`` the MLP head, ``0 < w < 1`` the reference's ensembles ``zh_w``).
* Retrieval: image->text and text->image Recall@1/5/10 with the linear head (one caption per image).
* Linear probe on the frozen pre-projection image features (``pretrainlab.core.evaluate``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pretrainlab.clip import formats
from pretrainlab.clip.dataset import eval_loader, worker_errors
from pretrainlab.core.evaluate import linear_probe, retrieval_recall, zero_shot_logits


def _device(task: torch.nn.Module) -> torch.device:
    return next(task.parameters()).device


@torch.inference_mode()
def embed_images(task: Any, records: Any, batch_size: int = 256, num_workers: int = 0, keep: Sequence[str] = ("z", "h"),
                 progress: bool = False, desc: str = "embedding images") -> tuple[dict[str, torch.Tensor], list[int], formats.Problems]:
    """Embed every readable image of ``records`` (anything indexable giving :class:`formats.Record`).

    Returns ``({head: (N_ok, D)} on CPU for the heads in ``keep``, indices of the embedded records,
    problems)``; rows are in record order."""
    from tqdm import tqdm

    task.eval()
    dev = _device(task)
    outs: dict[str, list[torch.Tensor]] = {}
    ok: list[int] = []
    problems = formats.Problems()
    loader = eval_loader(records, task.preprocess, task.image_size, batch_size, num_workers)
    with worker_errors():
        for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
            good = batch["ok"]
            for err in (e for e, g in zip(batch["error"], good.tolist()) if not g):
                problems.add(err)
            if not good.any():
                continue
            o = task.encode_image(batch["image"][good].to(dev, non_blocking=True))
            for k in keep:
                if k in o:
                    outs.setdefault(k, []).append(o[k].float().cpu())
            ok.extend(batch["index"][good].tolist())
    return {k: torch.cat(v) for k, v in outs.items()}, ok, problems


@torch.inference_mode()
def embed_image_tensors(task: Any, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Preprocessed ``(N, 3, S, S)`` images -> ``{"z", "h"?, "feats"}`` on CPU."""
    task.eval()
    o = task.encode_image(images.to(_device(task)))
    return {k: v.float().cpu() for k, v in o.items()}


@torch.inference_mode()
def embed_texts(task: Any, texts: Sequence[str], batch: int = 256) -> dict[str, torch.Tensor]:
    """Strings -> ``{"z", "h"?, "feats"}`` ``(N, D)`` on CPU (open_clip tokenizer of the model)."""
    task.eval()
    dev = _device(task)
    outs: dict[str, list[torch.Tensor]] = {}
    for i in range(0, len(texts), batch):
        tok = task.tokenizer(list(texts[i:i + batch])).to(dev)
        for k, v in task.encode_text(tok).items():
            outs.setdefault(k, []).append(v.float().cpu())
    return {k: torch.cat(v) for k, v in outs.items()}


def class_embeddings(task: Any, classnames: Sequence[str], templates: Sequence[str]) -> dict[str, torch.Tensor]:
    """Prompt-ensembled class embeddings ``{"z": (C, D), "h": (C, D)?}``."""
    texts = [t.format(c) for c in classnames for t in templates]
    e = embed_texts(task, texts)
    out = {}
    for k in ("z", "h"):
        if k in e:
            v = F.normalize(e[k], dim=-1).view(len(classnames), len(templates), -1).mean(1)
            out[k] = F.normalize(v, dim=-1)
    return out


def zero_shot_scores(img: dict[str, torch.Tensor], cls: dict[str, torch.Tensor], w: float = 1.0) -> torch.Tensor:
    """``(N, C)`` similarity: ``w * sim_z + (1 - w) * sim_h`` (``sim_z`` only without an MLP head)."""
    sz = zero_shot_logits(img["z"], cls["z"])
    if "h" not in img or w >= 1.0:
        return sz
    sh = zero_shot_logits(img["h"], cls["h"])
    return w * sz + (1 - w) * sh


def heads_of(has_mlp: bool, mix_weights: Sequence[float]) -> dict[str, float]:
    heads: dict[str, float] = {"linear": 1.0}
    if has_mlp:
        heads["mlp"] = 0.0
        heads.update({f"mix{w:g}": float(w) for w in mix_weights})
    return heads


@torch.inference_mode()
def zero_shot_eval(task: Any, bench: formats.ClassSet, mix_weights: Sequence[float] = (0.5,), batch_size: int = 256,
                   num_workers: int = 0, keep_feats: bool = False, progress: bool = True,
                   max_bad_fraction: float = 0.05) -> dict[str, Any]:
    """Top-1 / top-5 over ``bench`` (all classes and the unseen ones) for the linear head, and for the
    MLP head and each mixture weight when the model has one; streamed batch by batch.

    Returns the metrics; with ``keep_feats`` also ``"_feats"`` ``(N, Wi)`` and ``"_labels"`` for a probe."""
    from tqdm import tqdm

    task.eval()
    dev = _device(task)
    cls = class_embeddings(task, bench.classnames, bench.templates)
    unseen = torch.tensor([bench.classnames.index(c) for c in bench.unseen if c in bench.classnames], dtype=torch.long)
    heads = heads_of("h" in cls, mix_weights)
    hits = {f"{k}@{t}": 0 for k in heads for t in ("top1", "top5", "unseen")}
    n = n_unseen = 0
    problems = formats.Problems()
    feats, labels = [], []
    k5 = min(5, len(bench.classnames))
    loader = eval_loader(bench.records, task.preprocess, task.image_size, batch_size, num_workers)
    with worker_errors():
        for batch in tqdm(loader, desc="zero-shot", unit="batch", disable=not progress, leave=False):
            good = batch["ok"]
            for err in (e for e, g in zip(batch["error"], good.tolist()) if not g):
                problems.add(err)
            if not good.any():
                continue
            y = torch.as_tensor(bench.labels[batch["index"][good].numpy()])
            o = task.encode_image(batch["image"][good].to(dev, non_blocking=True))
            img = {k: v.float().cpu() for k, v in o.items()}
            if keep_feats:
                feats.append(img["feats"])
                labels.append(y)
            mask = torch.isin(y, unseen) if len(unseen) else torch.zeros_like(y, dtype=torch.bool)
            for name, w in heads.items():
                s = zero_shot_scores(img, cls, w)
                top = s.topk(k5, dim=1).indices
                c1 = top[:, 0] == y
                hits[f"{name}@top1"] += int(c1.sum())
                hits[f"{name}@top5"] += int((top == y[:, None]).any(1).sum())
                hits[f"{name}@unseen"] += int(c1[mask].sum())
            n += len(y)
            n_unseen += int(mask.sum())
    formats.check_bad_fraction(problems.count + bench.problems.count, len(bench.records) + bench.problems.count,
                               max_bad_fraction, bench.path, problems.first())
    if n == 0:
        from pretrainlab.core.data import DataError

        raise DataError(bench.path, f"no readable zero-shot image (first problems: {problems.first()})")
    res: dict[str, Any] = {"zs_images": n, "zs_classes": len(bench.classnames), "zs_skipped": problems.count + bench.problems.count}
    for name in heads:
        res[f"zs_top1_{name}"] = hits[f"{name}@top1"] / n
        res[f"zs_top5_{name}"] = hits[f"{name}@top5"] / n
        if n_unseen:
            res[f"zs_top1_unseen_{name}"] = hits[f"{name}@unseen"] / n_unseen
    if keep_feats:
        res["_feats"] = torch.cat(feats).numpy()
        res["_labels"] = torch.cat(labels).numpy()
    return res


def retrieval_eval(task: Any, source: Any, batch_size: int = 256, num_workers: int = 0,
                   max_bad_fraction: float = 0.05) -> dict[str, float]:
    """Image->text and text->image Recall@1/5/10 (pair ``i`` is image ``i`` with caption ``i``)."""
    emb, ok, problems = embed_images(task, source, batch_size, num_workers, keep=("z",))
    formats.check_bad_fraction(problems.count + source.problems.count, source.total, max_bad_fraction,
                               getattr(source, "path", "retrieval"), problems.first())
    txt = embed_texts(task, [source[i].caption for i in ok])["z"]
    img = emb["z"]
    idx = torch.arange(len(img))
    i2t = retrieval_recall(img, txt, idx, (1, 5, 10))
    t2i = retrieval_recall(txt, img, idx, (1, 5, 10))
    out = {f"i2t_{k}": v for k, v in i2t.items()}
    out.update({f"t2i_{k}": v for k, v in t2i.items()})
    out["R@1"] = (i2t["R@1"] + t2i["R@1"]) / 2
    out["retrieval_pairs"] = len(ok)
    return out


def probe_eval(feats: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Linear probe on frozen image features: within every class, alternate images train / test (a
    stratified half split, whatever the order of the images)."""
    rank = np.zeros(len(y), np.int64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rank[idx] = np.arange(len(idx))
    tr, te = np.flatnonzero(rank % 2 == 0), np.flatnonzero(rank % 2 == 1)
    if len(np.unique(y[tr])) < 2 or len(tr) < 2 * len(np.unique(y)):  # too few samples per class (smoke)
        return {}
    return {"linear_probe": float(linear_probe(feats[tr], y[tr], feats[te], y[te], max_iter=300, seed=seed)["accuracy"])}


def zero_shot_predict(task: Any, images: torch.Tensor, labels: Sequence[str],
                      templates: Sequence[str] = ("a photo of a {}.",), w: float = 1.0) -> torch.Tensor:
    """Softmax probabilities ``(N, C)`` over free-text labels for preprocessed ``(N, 3, S, S)`` images
    (the CLI verb and the demo), with the model's learnt temperature(s)."""
    img = embed_image_tensors(task, images)
    cls = class_embeddings(task, labels, templates)
    s = zero_shot_scores(img, cls, w)
    with torch.no_grad():
        scale = float(task.logit_scale().cpu())
        if "h" in img and w < 1.0:
            scale = w * scale + (1 - w) * float(task.h_logit_scale().cpu())
    return torch.softmax(s * scale, dim=-1)


def report_skipped(what: str, problems: formats.Problems, total: int) -> None:
    if problems.count:
        print(f"warning: {what}: skipped {problems.count} of {total} samples; first: {problems.first()}", file=sys.stderr)
