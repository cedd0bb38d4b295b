"""Face evaluation protocols (PETALface Sec. 4.2, Table 1), streamed: images are decoded lazily in
DataLoader workers (``data.num_workers``) and only embeddings ``(N, E)`` float32 are kept.

- Embeddings (ref: validation_lq/validate_tinyface_iqa.py ``infer`` with ``use_flip_test=True`` and
  ``fusion_method='pre_norm_vector_add'``): raw embedding of the image + raw embedding of its mirror
  (the mirror gets its OWN quality weight ``a``), then L2-normalised. ``eval.flip_tta=false``: the
  image's embedding alone, L2-normalised.
- High-resolution verification (LFW pairs.txt or an insightface ``.bin``): cosine similarity, 10-fold
  accuracy (``core.evaluate.verification_accuracy``) and TAR@FAR.
- Low-resolution identification (TinyFace; ref: tinyface_helper.py ``DIR_FAR`` closed set): each probe
  ranks every gallery image (matches + distractors) by cosine similarity; rank-k = the fraction of
  probes with a same-identity image among the top k. Probes are scored against the gallery in chunks
  (a 3.7k x 157k score matrix is never formed at once).
- IJB-B / IJB-C TAR@FAR (ref: insightface eval_ijbc.py, N1 D1 F1): flip-summed raw embeddings,
  L2-normalised, times the detector (faceness) score; media-averaged, template-summed, L2-normalised;
  pair score = dot product; TAR at the ROC point whose FAR is nearest the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pretrainlab.core.evaluate import far_key, tar_at_far, verification_accuracy
from pretrainlab.face.config import FaceConfig
from pretrainlab.face.formats import image_batches, read_ijb, read_tinyface, read_verification
from pretrainlab.face.petalface import FaceTask


@torch.no_grad()
def embed_batch(task: FaceTask, x: Tensor, flip_tta: bool, a: Tensor | None = None) -> tuple[Tensor, Tensor | None, Tensor]:
    """Normalised ``(B,3,S,S)`` -> (L2-normalised fused embedding ``(B,E)``, ``a`` ``(B,)`` or None, raw ``(B,E)``).

    ``a``: precomputed quality weights (also used for the mirror); None: scored here (the mirror separately).
    """
    qa = a if a is not None else task.quality(x)
    e = task.embed(x, qa).float()
    raw = e
    if flip_tta:
        xf = x.flip(-1)
        af = a if a is not None else task.quality(xf)
        e = e + task.embed(xf, af).float()  # ref: pre_norm_vector_add = sum of raw embeddings
    return F.normalize(e, dim=1), (qa.float() if qa is not None else None), raw


@torch.no_grad()
def embed_sources(task: FaceTask, sources: Sequence[Any], cfg: FaceConfig, device: str | torch.device = "cpu",
                  desc: str = "embed", quality: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """Image paths / sources -> (L2-normalised embeddings ``(N,E)`` float32 on CPU, quality a ``(N,)`` or None)."""
    task.eval()
    embs, quals = [], []
    i = 0
    for x in image_batches(sources, cfg.model.image_size, cfg.eval.batch_size, cfg.data.num_workers, desc=desc):
        x = x.to(device)
        a = quality[i:i + len(x)].to(device) if quality is not None else None
        e, qa, _ = embed_batch(task, x, cfg.eval.flip_tta, a)
        embs.append(e.cpu())
        if qa is not None:
            quals.append(qa.cpu())
        i += len(x)
    emb = torch.cat(embs) if embs else torch.zeros(0, cfg.model.embedding_dim)
    return emb, (torch.cat(quals) if quals else None)


def cmc(sim: Tensor, probe_labels: Tensor, gallery_labels: Tensor, ranks: list[int]) -> dict[str, float]:
    """``(P, G)`` similarities -> ``{"rank-k": fraction of probes whose identity is in the top k}``."""
    hits = cmc_hits(sim, probe_labels, gallery_labels, ranks)
    return {f"rank-{k}": float(v.float().mean()) for k, v in hits.items()}


def cmc_hits(sim: Tensor, probe_labels: Tensor, gallery_labels: Tensor, ranks: list[int]) -> dict[int, Tensor]:
    """Per probe, whether a same-identity gallery image is among the top k: ``{k: (P,) bool}``."""
    k_max = min(max(ranks), sim.shape[1])
    top = sim.topk(k_max, dim=1).indices  # (P, k)
    hit = gallery_labels[top] == probe_labels[:, None]  # (P, k)
    first = torch.where(hit.any(1), hit.float().argmax(1), torch.full_like(probe_labels, k_max))
    return {k: first < k for k in ranks}


def verification(task: FaceTask, cfg: FaceConfig, data_root: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """HR verification on ``<data>/<verify_dir>`` (pairs.txt folder or .bin): accuracy, TAR@FAR, threshold."""
    from pretrainlab.core.evaluate import best_threshold

    pairs = read_verification(Path(data_root) / cfg.data.verify_dir)
    uniq = list(dict.fromkeys([*pairs.left, *pairs.right]))
    idx = {p: i for i, p in enumerate(uniq)}
    emb, qual = embed_sources(task, uniq, cfg, device, desc="verification pairs")
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


def identification(task: FaceTask, cfg: FaceConfig, data_root: Path, device: str | torch.device = "cpu",
                   chunk: int = 512) -> dict[str, Any]:
    """TinyFace LR identification: rank-k (percent); galleries of any size are streamed."""
    proto = read_tinyface(Path(data_root) / cfg.data.tinyface_dir)
    pe, pq = embed_sources(task, proto.probe, cfg, device, desc="TinyFace probes")
    ge, _ = embed_sources(task, proto.gallery, cfg, device, desc="TinyFace gallery")
    pl, gl = torch.tensor(proto.probe_labels), torch.tensor(proto.gallery_labels)
    hits: dict[int, list[Tensor]] = {k: [] for k in cfg.eval.ranks}
    for s in range(0, len(pe), chunk):
        for k, v in cmc_hits(pe[s:s + chunk] @ ge.T, pl[s:s + chunk], gl, cfg.eval.ranks).items():
            hits[k].append(v)
    out: dict[str, Any] = {f"lr_rank-{k}": 100.0 * float(torch.cat(v).float().mean()) for k, v in hits.items()}
    if pq is not None:
        out["lr_quality_a_mean"] = float(pq.mean())
    return out


def ijb_tar(task: FaceTask, cfg: FaceConfig, root: Path, target: str = "IJBC",
            device: str | torch.device = "cpu") -> dict[str, float]:
    """IJB-B / IJB-C 1:1 verification TAR@FAR (``eval.ijb_fars``), insightface eval_ijbc.py protocol."""
    proto = read_ijb(root, target)
    emb, _ = embed_sources(task, proto.images, cfg, device, desc=f"{target} images")  # flip-summed, L2-normalised
    feats = emb.numpy().astype(np.float64) * proto.faceness[:, None]  # ref: use_detector_score=True
    return ijb_scores_to_tar(feats, proto.templates, proto.medias, proto.pair_t1, proto.pair_t2, proto.pair_label,
                             cfg.eval.ijb_fars, target)


def template_features(feats: np.ndarray, templates: np.ndarray, medias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ref: eval_ijbc.py image2template_feature: mean per media, sum per template, L2-normalise."""
    uniq = np.unique(templates)
    out = np.zeros((len(uniq), feats.shape[1]))
    for n, t in enumerate(uniq):
        (ind,) = np.where(templates == t)
        f, m = feats[ind], medias[ind]
        out[n] = sum(f[m == u].mean(axis=0) for u in np.unique(m))
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12), uniq


def ijb_scores_to_tar(feats: np.ndarray, templates: np.ndarray, medias: np.ndarray, p1: np.ndarray, p2: np.ndarray,
                      label: np.ndarray, fars: Sequence[float], target: str = "IJBC") -> dict[str, float]:
    tf, uniq = template_features(feats, templates, medias)
    pos = {int(t): i for i, t in enumerate(uniq)}
    score = np.sum(tf[[pos[int(t)] for t in p1]] * tf[[pos[int(t)] for t in p2]], axis=1)
    return ijb_tar_at_far(score, label, fars, target)


def ijb_tar_at_far(score: np.ndarray, label: np.ndarray, fars: Sequence[float], target: str = "IJBC") -> dict[str, float]:
    """ref: eval_ijbc.py: ``roc_curve``, flipped so the LARGEST tpr wins at a tied fpr, the point nearest each FAR."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(label, score)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)  # ref: select the largest tpr at the same fpr
    out = {}
    for far in fars:
        i = int(np.argmin(np.abs(fpr - far)))
        out[f"{target.lower()}_{far_key(far)}"] = 100.0 * float(tpr[i])
    return out


def evaluate_task(task: FaceTask, cfg: FaceConfig, data_root: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """All of the paper's columns for one model (HR verification, LR identification, trainable %)."""
    from pretrainlab.face.petalface import backbone_trainable

    task.to(device)
    out = {**verification(task, cfg, data_root, device), **identification(task, cfg, data_root, device)}
    out["trainable_%"] = backbone_trainable(task)["percent"] if cfg.method != "pretrain" else 0.0
    return out


__all__ = ["cmc", "embed_batch", "embed_sources", "evaluate_task", "far_key", "identification", "ijb_tar",
           "verification"]
