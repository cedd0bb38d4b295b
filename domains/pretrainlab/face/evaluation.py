"""Face evaluation protocols (PETALface Sec. 4.2, Table 1).

- High-resolution verification (LFW-style pairs): cosine similarity of embeddings, 10-fold
  accuracy (``core.evaluate.verification_accuracy``) and TAR@FAR (``core.evaluate.tar_at_far``).
- Low-resolution identification (TinyFace protocol): each low-resolution probe ranks every gallery
  image (gallery matches + distractors, label -1) by cosine similarity; rank-k = the fraction of
  probes whose identity appears among the top k gallery images (CMC at k).
Embeddings: L2-normalised sum of the image's and its mirror's embedding (``eval.flip_tta``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pretrainlab.core.evaluate import far_key, tar_at_far, verification_accuracy
from pretrainlab.face.config import FaceConfig
from pretrainlab.face.formats import load_images, read_pairs, read_tinyface
from pretrainlab.face.petalface import FaceTask, normalize


@torch.no_grad()
def embed_images(task: FaceTask, images: Tensor, batch_size: int = 128, flip_tta: bool = True,
                 device: str | torch.device = "cpu") -> tuple[Tensor, Tensor | None]:
    """uint8 ``(N,3,S,S)`` -> (L2-normalised embeddings ``(N,E)`` float32 on CPU, quality a ``(N,)`` or None)."""
    task.eval()
    embs, quals = [], []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(device).float() / 255.0
        a = task.quality(normalize(x))
        e = task.embed(x, a).float()
        if flip_tta:
            e = e + task.embed(x.flip(-1), a).float()
        embs.append(F.normalize(e, dim=1).cpu())
        if a is not None:
            quals.append(a.float().cpu())
    emb = torch.cat(embs) if embs else torch.zeros(0, task.cfg.model.embedding_dim)
    return emb, (torch.cat(quals) if quals else None)


def cmc(sim: Tensor, probe_labels: Tensor, gallery_labels: Tensor, ranks: list[int]) -> dict[str, float]:
    """``(P, G)`` similarities -> ``{"rank-k": fraction of probes whose identity is in the top k}``."""
    k_max = min(max(ranks), sim.shape[1])
    top = sim.topk(k_max, dim=1).indices  # (P, k)
    hit = gallery_labels[top] == probe_labels[:, None]  # (P, k)
    first = torch.where(hit.any(1), hit.float().argmax(1), torch.full_like(probe_labels, k_max))
    return {f"rank-{k}": float((first < k).float().mean()) for k in ranks}


def verification(task: FaceTask, cfg: FaceConfig, data_root: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """HR verification on ``<data>/<verify_dir>/pairs.txt``: accuracy, TAR@FAR, best threshold."""
    from pretrainlab.core.evaluate import best_threshold

    pairs = read_pairs(Path(data_root) / cfg.data.verify_dir / "pairs.txt")
    uniq = sorted(set(pairs.left) | set(pairs.right))
    idx = {p: i for i, p in enumerate(uniq)}
    imgs = load_images(uniq, cfg.model.image_size, desc="read pairs")
    emb, qual = embed_images(task, imgs, cfg.eval.batch_size, cfg.eval.flip_tta, device)
    li = torch.tensor([idx[p] for p in pairs.left])
    ri = torch.tensor([idx[p] for p in pairs.right])
    scores = (emb[li] * emb[ri]).sum(1).numpy()
    same = np.array(pairs.same)
    out: dict[str, Any] = {"hr_verif_acc": 100.0 * verification_accuracy(scores, same, folds=pairs.folds)}
    for k, v in tar_at_far(scores, same, cfg.eval.fars).items():
        out[f"hr_{k}"] = 100.0 * v
    out["threshold"] = best_threshold(scores.astype(np.float64), same.astype(bool))
    if qual is not None:
        out["hr_quality_a_mean"] = float(qual.mean())
    return out


def identification(task: FaceTask, cfg: FaceConfig, data_root: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """TinyFace-style LR identification: rank-1/5/10 (percent)."""
    proto = read_tinyface(Path(data_root) / cfg.data.tinyface_dir)
    size = cfg.model.image_size
    pe, pq = embed_images(task, load_images(proto.probe, size, desc="read probes"), cfg.eval.batch_size, cfg.eval.flip_tta, device)
    ge, _ = embed_images(task, load_images(proto.gallery, size, desc="read gallery"), cfg.eval.batch_size, cfg.eval.flip_tta, device)
    res = cmc(pe @ ge.T, torch.tensor(proto.probe_labels), torch.tensor(proto.gallery_labels), cfg.eval.ranks)
    out: dict[str, Any] = {f"lr_{k}": 100.0 * v for k, v in res.items()}
    if pq is not None:
        out["lr_quality_a_mean"] = float(pq.mean())
    return out


def evaluate_task(task: FaceTask, cfg: FaceConfig, data_root: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """All of the paper's columns for one model (HR verification, LR identification, trainable %)."""
    from pretrainlab.face.petalface import backbone_trainable

    task.to(device)
    out = {**verification(task, cfg, data_root, device), **identification(task, cfg, data_root, device)}
    out["trainable_%"] = backbone_trainable(task)["percent"] if cfg.method != "pretrain" else 0.0
    return out


__all__ = ["cmc", "embed_images", "evaluate_task", "far_key", "identification", "verification"]
