"""Evaluation of pre-trained representations: probes, k-NN, retrieval, zero-shot and metrics.

* ``linear_probe``: standardised features + multinomial logistic regression (sklearn), the
  CPU-friendly form of the linear evaluation protocol (e.g. SimCLR Sec. B.6 / CLIP Sec. 3.2 use
  L-BFGS logistic regression on frozen features).
* ``knn_predict``: weighted k-NN of Wu et al. 2018 ("Unsupervised Feature Learning via
  Non-Parametric Instance Discrimination", Sec. 3.4 / Eq. 10), as DINO's ``eval_knn.py``:
  cosine similarity, the top-k neighbours vote with weight ``exp(s / tau)``; defaults k = 20,
  tau = 0.07 (DINO).
* ``retrieval_recall``: Recall@k (a query counts as a hit when any positive is in its top k).
* ``zero_shot_logits``: CLIP zero-shot classification (Radford et al. 2021, Sec. 3.1.2): cosine
  similarity between image embeddings and class (prompt) embeddings.
* ``tar_at_far``, ``verification_accuracy``: face verification metrics (IJB-B/C TAR@FAR; LFW
  10-fold accuracy, Huang et al. 2007 "unrestricted" protocol as in insightface's
  ``verification.py``).

Deviations: ``tar_at_far`` reads the TAR off sklearn's ROC polyline at each FAR (for
distinct scores: the best TAR whose FAR does not exceed the target), whereas insightface's IJB
script takes the ROC point whose FPR is nearest (which may exceed the target); ``verification_accuracy`` searches the best threshold over all observed training-fold
scores (insightface uses a fixed grid of distance thresholds); both work on similarity scores
(higher = same identity).

Inputs may be numpy arrays or torch tensors. ``knn_predict`` and ``zero_shot_logits`` compute in
torch (on the input's device) and return torch tensors; the metrics return Python floats / dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

ArrayLike = np.ndarray | Tensor | Sequence[Any]


def _np(x: ArrayLike) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu()
        return (x.float() if x.is_floating_point() else x).numpy()
    return np.asarray(x)


def _torch(x: ArrayLike, device: torch.device | None = None) -> Tensor:
    t = x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    return t.detach().to(device) if device is not None else t.detach()


# ---------------------------------------------------------------- linear probe
def linear_probe(
    train_x: ArrayLike,
    train_y: ArrayLike,
    test_x: ArrayLike,
    test_y: ArrayLike,
    *,
    max_iter: int = 1000,
    C: float = 1.0,
    return_probs: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Logistic-regression probe on frozen features.

    Args:
        train_x: ``(N, D)`` features; train_y: ``(N,)`` integer labels.
        test_x: ``(M, D)``; test_y: ``(M,)``.
        max_iter: L-BFGS iterations.
        C: inverse L2 regularisation strength.
        return_probs: also return ``"probs"`` ``(M, C)`` (columns in ``"classes"`` order).
        seed: ``random_state`` of the classifier.

    Returns:
        ``{"accuracy", "top5" (when more than 5 classes), ["probs", "classes"]}``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    xtr, ytr, xte, yte = _np(train_x), _np(train_y).astype(np.int64), _np(test_x), _np(test_y).astype(np.int64)
    scaler = StandardScaler().fit(xtr)
    clf = LogisticRegression(max_iter=max_iter, C=C, random_state=seed)
    clf.fit(scaler.transform(xtr), ytr)
    probs = clf.predict_proba(scaler.transform(xte))
    classes = clf.classes_
    pred = classes[probs.argmax(1)]
    out: dict[str, Any] = {"accuracy": float((pred == yte).mean())}
    if len(classes) > 5:
        top5 = classes[np.argsort(-probs, axis=1)[:, :5]]
        out["top5"] = float((top5 == yte[:, None]).any(1).mean())
    if return_probs:
        out["probs"] = probs
        out["classes"] = classes
    return out


# ---------------------------------------------------------------- k-NN
@torch.no_grad()
def knn_predict(
    train_x: ArrayLike,
    train_y: ArrayLike,
    test_x: ArrayLike,
    k: int = 20,  # DINO eval_knn: nb_knn 20 (Wu et al. 2018 use 200)
    temperature: float = 0.07,  # DINO eval_knn / Wu et al. 2018 tau = 0.07
    n_classes: int | None = None,
    chunk: int = 1024,
) -> tuple[Tensor, Tensor]:
    """Weighted k-NN classification on cosine similarity.

    Args:
        train_x: ``(N, D)`` bank features; train_y: ``(N,)`` labels in ``[0, C)``.
        test_x: ``(M, D)`` query features.
        k: neighbours (clamped to N).
        temperature: vote weight ``exp(sim / temperature)``.
        n_classes: ``C`` (default ``max(train_y) + 1``).
        chunk: queries per block (memory bound ``chunk x N``).

    Returns:
        ``preds`` ``(M,)`` long and ``scores`` ``(M, C)`` (summed vote weights), on test_x's device.
    """
    xq = _torch(test_x).float()
    dev = xq.device
    bank = F.normalize(_torch(train_x, dev).float(), dim=1)
    labels = _torch(train_y, dev).long()
    xq = F.normalize(xq, dim=1)
    c = int(n_classes) if n_classes is not None else int(labels.max()) + 1
    kk = min(k, bank.shape[0])
    all_scores = []
    for s in range(0, xq.shape[0], chunk):
        sim = xq[s:s + chunk] @ bank.t()  # (m, N)
        top_sim, top_idx = sim.topk(kk, dim=1)
        weights = (top_sim / temperature).exp()
        scores = torch.zeros(sim.shape[0], c, device=dev)
        scores.scatter_add_(1, labels[top_idx], weights)
        all_scores.append(scores)
    scores = torch.cat(all_scores) if all_scores else torch.zeros(0, c, device=dev)
    return scores.argmax(1), scores


def knn_accuracy(
    train_x: ArrayLike,
    train_y: ArrayLike,
    test_x: ArrayLike,
    test_y: ArrayLike,
    k: int = 20,
    temperature: float = 0.07,
    n_classes: int | None = None,
) -> float:
    """Top-1 accuracy of ``knn_predict``."""
    preds, _ = knn_predict(train_x, train_y, test_x, k=k, temperature=temperature, n_classes=n_classes)
    return accuracy(test_y, preds)


# ---------------------------------------------------------------- retrieval / zero-shot
@torch.no_grad()
def retrieval_recall(
    queries: ArrayLike,
    gallery: ArrayLike,
    positives: ArrayLike | Sequence[Sequence[int]],
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Recall@k with cosine similarity.

    Args:
        queries: ``(N, D)``; gallery: ``(M, D)``.
        positives: ``(N,)`` index of each query's single positive in the gallery, or a list of
            N lists of positive indices (e.g. the 5 captions of an image).
        ks: cut-offs.

    Returns:
        ``{"R@1": ..., "R@5": ..., ...}`` fractions in [0, 1].
    """
    q = F.normalize(_torch(queries).float(), dim=1)
    g = F.normalize(_torch(gallery, q.device).float(), dim=1)
    n, m = q.shape[0], g.shape[0]
    pos = torch.zeros(n, m, dtype=torch.bool, device=q.device)
    if isinstance(positives, (Tensor, np.ndarray)) and np.ndim(_np(positives)) == 1:
        idx = _torch(positives, q.device).long()
        pos[torch.arange(n, device=q.device), idx] = True
    else:
        if len(positives) != n:
            raise ValueError(f"positives has {len(positives)} entries for {n} queries")
        for i, p in enumerate(positives):
            pi = [int(p)] if np.ndim(p) == 0 else [int(j) for j in p]
            pos[i, pi] = True
    sim = q @ g.t()
    order = sim.argsort(dim=1, descending=True)
    hits = pos.gather(1, order)  # (N, M) positives in ranked order
    first = torch.where(hits.any(1), hits.float().argmax(1), torch.full((n,), m, device=q.device))
    return {f"R@{k}": float((first < k).float().mean()) for k in ks}


def zero_shot_logits(image_emb: ArrayLike, class_emb: ArrayLike) -> Tensor:
    """``(N, D)`` x ``(C, D)`` -> ``(N, C)`` cosine similarities (multiply by the logit scale for softmax)."""
    img = F.normalize(_torch(image_emb).float(), dim=1)
    cls = F.normalize(_torch(class_emb, img.device).float(), dim=1)
    return img @ cls.t()


# ---------------------------------------------------------------- classification metrics
def topk_accuracy(logits: ArrayLike, y: ArrayLike, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """``{"top1": ..., "top5": ...}``: fraction of rows whose label is among the k largest logits (k clamped to C)."""
    lg = _torch(logits).float()
    t = _torch(y, lg.device).long()
    kmax = min(max(ks), lg.shape[1])
    top = lg.topk(kmax, dim=1).indices
    hit = top == t[:, None]
    return {f"top{k}": float(hit[:, : min(k, kmax)].any(1).float().mean()) for k in ks}


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of equal labels; a 2-D ``y_pred`` (logits / probabilities) is arg-maxed first."""
    p = _np(y_pred)
    if p.ndim == 2:
        p = p.argmax(1)
    t = _np(y_true)
    if t.shape != p.shape:
        raise ValueError(f"accuracy: y_true {t.shape} and y_pred {p.shape} differ")
    return float((t == p).mean()) if t.size else 0.0


def roc_auc(y_true: ArrayLike, scores: ArrayLike, multi_class: str = "ovr") -> float:
    """ROC AUC (sklearn).

    Binary when ``scores`` is 1-D (score of the positive class) or has 2 columns (column 1 is
    used). Otherwise ``multi_class="ovr"``: the macro mean over classes of the one-vs-rest AUC
    of column c, the same value as ``sklearn.metrics.roc_auc_score(..., multi_class="ovr")``
    but without requiring rows to sum to 1 (logits are fine); classes absent from ``y_true``
    are skipped (sklearn would raise). ``multi_class="ovo"`` defers to sklearn (probabilities
    required).
    """
    from sklearn.metrics import roc_auc_score

    t = _np(y_true).astype(np.int64)
    s = _np(scores).astype(np.float64)
    if s.ndim == 2 and s.shape[1] == 2:
        s = s[:, 1]
    if s.ndim == 1:
        return float(roc_auc_score(t, s))
    if multi_class == "ovo":
        return float(roc_auc_score(t, s, multi_class="ovo", labels=np.arange(s.shape[1])))
    if multi_class != "ovr":
        raise ValueError(f"multi_class must be 'ovr' or 'ovo', got {multi_class!r}")
    aucs = [roc_auc_score(t == c, s[:, c]) for c in range(s.shape[1]) if 0 < (t == c).sum() < t.size]
    if not aucs:
        raise ValueError("roc_auc: y_true needs at least two classes")
    return float(np.mean(aucs))


# ---------------------------------------------------------------- verification
def tar_at_far(
    scores: ArrayLike,
    same: ArrayLike,
    fars: Sequence[float] = (1e-4, 1e-3, 1e-2),  # IJB-B/C report TAR@FAR=1e-4 (PETALface Table 1)
) -> dict[str, float]:
    """True accept rate at given false accept rates.

    The ROC comes from ``sklearn.metrics.roc_curve(same, scores, drop_intermediate=False)``
    (the FAR axis is the impostor-score distribution: the fraction of impostor pairs at or above
    the threshold). The TAR at a FAR is read off the ROC polyline: at a FAR the curve reaches,
    the highest TPR there (the threshold just above the next impostor score); between two
    reachable FARs, linear interpolation from the top of the first vertical run to the bottom
    of the next (horizontal for distinct scores, i.e. the TAR of the last threshold whose FAR
    does not exceed the target; diagonal where genuine and impostor scores tie).

    Args:
        scores: ``(P,)`` similarity of each pair (higher = more similar).
        same: ``(P,)`` bool, True for genuine (same identity) pairs.
        fars: target false accept rates.

    Returns:
        ``{"TAR@FAR=1e-04": ..., ...}`` (keys from ``far_key``: ``f"{far:.0e}"`` when exact, else
        ``f"{far:g}"``).
    """
    from sklearn.metrics import roc_curve

    s = _np(scores).astype(np.float64).ravel()
    y = _np(same).astype(bool).ravel()
    if y.all() or not y.any():
        raise ValueError("tar_at_far needs both genuine and impostor pairs")
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    ufpr, inv = np.unique(fpr, return_inverse=True)
    top = np.full(ufpr.shape, -np.inf)
    bottom = np.full(ufpr.shape, np.inf)
    np.maximum.at(top, inv, tpr)
    np.minimum.at(bottom, inv, tpr)
    out = {}
    for far in fars:
        a = int(np.searchsorted(ufpr, far, side="right")) - 1  # last ROC FPR <= far
        if a < 0:
            tar = 0.0
        elif ufpr[a] == far or a == ufpr.size - 1:
            tar = top[a]
        else:  # along the ROC segment from the top of a to the bottom of a + 1
            frac = (far - ufpr[a]) / (ufpr[a + 1] - ufpr[a])
            tar = top[a] + frac * (bottom[a + 1] - top[a])
        out[far_key(far)] = float(tar)
    return out


def far_key(far: float) -> str:
    """``"TAR@FAR=1e-04"`` style key; FARs that are not ``d * 10^e`` use ``%g`` (``"TAR@FAR=0.25"``)."""
    short = f"{far:.0e}"
    return f"TAR@FAR={short}" if float(short) == far else f"TAR@FAR={far:g}"


def best_threshold(s: np.ndarray, y: np.ndarray) -> float:
    """Threshold t maximising the accuracy of ``s >= t`` (candidates: every score, and +inf)."""
    cand = np.unique(s)
    gen = np.sort(s[y])
    imp = np.sort(s[~y])
    # genuine accepted: #gen >= t ; impostors rejected: #imp < t
    correct = (gen.size - np.searchsorted(gen, cand, side="left")) + np.searchsorted(imp, cand, side="left")
    all_reject = imp.size  # t = +inf
    i = int(np.argmax(correct))
    return float(cand[i]) if correct[i] >= all_reject else float("inf")


def verification_accuracy(scores: ArrayLike, same: ArrayLike, folds: int = 10) -> float:  # LFW: 10 folds
    """LFW-style k-fold verification accuracy.

    Pairs are split into ``folds`` consecutive folds (LFW's pairs.txt order, as sklearn
    ``KFold(shuffle=False)``); for each fold the threshold that maximises accuracy on the other
    folds is applied to it (``score >= threshold`` = same); the mean test-fold accuracy is
    returned.

    Args:
        scores: ``(P,)`` similarities; same: ``(P,)`` bool genuine flags.
        folds: number of folds (``P >= folds``).
    """
    from sklearn.model_selection import KFold

    s = _np(scores).astype(np.float64).ravel()
    y = _np(same).astype(bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and same {y.shape} differ")
    accs = []
    for tr, te in KFold(n_splits=folds, shuffle=False).split(s):
        t = best_threshold(s[tr], y[tr])
        accs.append(((s[te] >= t) == y[te]).mean())
    return float(np.mean(accs))
