"""Zero-shot classification and retrieval evaluation (CLIP Sec. 3.1.2; CLIP-rocket Sec. 5).

* Class embeddings: every prompt template filled with the class name, encoded, L2-normalised,
  averaged and re-normalised (CLIP's prompt ensembling).
* CLIP-rocket models have two heads: the linear projector ``z`` and the MLP projector ``h``; the
  zero-shot similarity is ``w * cos(z_img, z_cls) + (1 - w) * cos(h_img, h_cls)``, ``w = 1`` the
  linear head, ``w = 0`` the MLP head, ``0 < w < 1`` their mixtures (reference ``eval_zeroshot``).
* Retrieval: image->text and text->image Recall@1/5/10 with the linear head (one caption per image).
* Linear probe on the frozen pre-projection image features (``pretrainlab.core.evaluate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pretrainlab.core.evaluate import linear_probe, retrieval_recall, topk_accuracy, zero_shot_logits


def _device(task: torch.nn.Module) -> torch.device:
    return next(task.parameters()).device


@torch.inference_mode()
def embed_images(task: Any, images: np.ndarray | torch.Tensor, batch: int = 256) -> dict[str, torch.Tensor]:
    """``(N, S, S, 3)`` uint8 (numpy, HWC) or ``(N, 3, S, S)`` tensor -> ``{"z", "h"?, "feats"}`` on CPU."""
    task.eval()
    dev = _device(task)
    x = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2) if isinstance(images, np.ndarray) else images
    outs: dict[str, list[torch.Tensor]] = {}
    for i in range(0, len(x), batch):
        o = task.encode_image(x[i:i + batch].to(dev))
        for k, v in o.items():
            outs.setdefault(k, []).append(v.float().cpu())
    return {k: torch.cat(v) for k, v in outs.items()}


@torch.inference_mode()
def embed_texts(task: Any, texts: Sequence[str], batch: int = 256) -> dict[str, torch.Tensor]:
    """List of strings -> ``{"z", "h"?, "feats"}`` ``(N, D)`` on CPU."""
    task.eval()
    dev = _device(task)
    outs: dict[str, list[torch.Tensor]] = {}
    for i in range(0, len(texts), batch):
        tok = task.tokenizer(list(texts[i:i + batch])).to(dev)
        o = task.encode_text(tok)
        for k, v in o.items():
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


def zero_shot_eval(task: Any, bench: dict[str, Any], mix_weights: Sequence[float] = (0.5,)) -> dict[str, float]:
    """Top-1 / top-5 (all classes and the unseen compositions) for the linear head, and for the MLP
    head and each mixture weight when the model has one."""
    img = embed_images(task, bench["images"])
    cls = class_embeddings(task, bench["classnames"], bench["templates"])
    y = torch.as_tensor(bench["labels"])
    unseen_idx = [bench["classnames"].index(c) for c in bench.get("unseen", []) if c in bench["classnames"]]
    mask = torch.isin(y, torch.tensor(unseen_idx, dtype=torch.long)) if unseen_idx else None
    heads: dict[str, float] = {"linear": 1.0}
    if "h" in img:
        heads["mlp"] = 0.0
        heads.update({f"mix{w:g}": float(w) for w in mix_weights})
    res: dict[str, float] = {}
    for name, w in heads.items():
        s = zero_shot_scores(img, cls, w)
        acc = topk_accuracy(s, y, (1, 5))
        res[f"zs_top1_{name}"] = acc["top1"]
        res[f"zs_top5_{name}"] = acc["top5"]
        if mask is not None and mask.any():
            res[f"zs_top1_unseen_{name}"] = topk_accuracy(s[mask], y[mask], (1,))["top1"]
    return res


def retrieval_eval(task: Any, bench: dict[str, Any]) -> dict[str, float]:
    """Image->text and text->image Recall@1/5/10 (pair ``i`` is image ``i`` with caption ``i``)."""
    img = embed_images(task, bench["images"])["z"]
    txt = embed_texts(task, bench["captions"])["z"]
    idx = torch.arange(len(img))
    i2t = retrieval_recall(img, txt, idx, (1, 5, 10))
    t2i = retrieval_recall(txt, img, idx, (1, 5, 10))
    out = {f"i2t_{k}": v for k, v in i2t.items()}
    out.update({f"t2i_{k}": v for k, v in t2i.items()})
    out["R@1"] = (i2t["R@1"] + t2i["R@1"]) / 2
    return out


def probe_eval(task: Any, bench: dict[str, Any], seed: int = 0) -> dict[str, float]:
    """Linear probe on frozen image features: even-indexed zero-shot images train, odd ones test."""
    feats = embed_images(task, bench["images"])["feats"].numpy()
    y = np.asarray(bench["labels"])
    tr, te = np.arange(0, len(y), 2), np.arange(1, len(y), 2)
    if len(np.unique(y[tr])) < 2 or len(tr) < 2 * len(np.unique(y)):  # too few samples per class (smoke)
        return {}
    return {"linear_probe": float(linear_probe(feats[tr], y[tr], feats[te], y[te], max_iter=300, seed=seed)["accuracy"])}


def zero_shot_predict(task: Any, images: np.ndarray | torch.Tensor, labels: Sequence[str],
                      templates: Sequence[str] = ("a photo of a {}.",), w: float = 1.0) -> torch.Tensor:
    """Softmax probabilities ``(N, C)`` over free-text labels (used by the CLI verb and the demo)."""
    img = embed_images(task, images)
    cls = class_embeddings(task, labels, templates)
    s = zero_shot_scores(img, cls, w)
    scale = float(task.logit_scale().detach().cpu()) if w >= 1.0 or "h" not in img else \
        w * float(task.logit_scale().detach().cpu()) + (1 - w) * float(task.h_logit_scale().detach().cpu())
    return torch.softmax(s * scale, dim=-1)
