"""KITTI-style average precision with 40 recall points (Simonelli et al. 2019; KITTI's R40).

Per class and difficulty: ground-truth boxes of that class whose KITTI difficulty is at most the
level count ("valid"); other boxes of the class (harder, e.g. heavily occluded) are "ignored":
a detection matched to them counts neither as TP nor FP. Detections are matched greedily in
score order to the unmatched ground truth of highest IoU above the class threshold (car 0.7,
pedestrian / cyclist 0.5), with BEV or 3D rotated IoU. ``AP = mean_{r in {1/40..1}} max_{r' >= r} P(r')``.

Deviations from the official devkit: detections are not filtered by their 2D box height (the
devkit ignores detections below the level's minimum image height) and the precision curve is
built from every detection instead of 41 score thresholds; detections are kept only inside the
camera's field of view (as OpenPCDet does before evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pretrainlab.lidar.formats import Object3D, kitti_difficulty
from pretrainlab.lidar.rotated_iou import iou_matrix

DIFFICULTIES = ("easy", "moderate", "hard")


def ap_from_pr(tp: np.ndarray, scores: np.ndarray, n_gt: int, recall_points: int = 40) -> float:
    """AP over ``recall_points`` equally spaced recall levels (R40 excludes recall 0)."""
    if n_gt == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = tp[order].astype(np.float64)
    ctp, cfp = np.cumsum(tp), np.cumsum(1 - tp)
    recall = ctp / n_gt
    precision = ctp / np.maximum(ctp + cfp, 1e-9)
    # interpolated precision: max precision at recall >= r
    prec_env = np.maximum.accumulate(precision[::-1])[::-1]
    total = 0.0
    for r in np.linspace(1.0 / recall_points, 1.0, recall_points):
        idx = np.searchsorted(recall, r - 1e-12, side="left")
        total += prec_env[idx] if idx < len(prec_env) else 0.0
    return total / recall_points


def match_frame(det_boxes: np.ndarray, det_scores: np.ndarray, gt_boxes: np.ndarray, gt_valid: np.ndarray,
                thr: float, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching in one scan -> (``tp (D,)`` 0/1, ``keep (D,)`` False for detections matched to ignored GT)."""
    D = len(det_boxes)
    tp = np.zeros(D)
    keep = np.ones(D, bool)
    if D == 0 or len(gt_boxes) == 0:
        return tp, keep
    iou = iou_matrix(det_boxes, gt_boxes, mode)
    used = np.zeros(len(gt_boxes), bool)
    for d in np.argsort(-det_scores):
        cand = np.where(~used & (iou[d] >= thr))[0]
        if len(cand) == 0:
            continue
        # prefer a valid ground truth, then the highest IoU
        best = cand[np.lexsort((-iou[d, cand], ~gt_valid[cand]))[0]]
        used[best] = True
        if gt_valid[best]:
            tp[d] = 1
        else:
            keep[d] = False
    return tp, keep


def kitti_ap(dets: Sequence[list[Object3D]], gts: Sequence[list[Object3D]], classes: Sequence[str],
             iou_thresholds: Sequence[float], recall_points: int = 40) -> dict[str, float]:
    """``{"{bev,3d}_{class}_{easy,moderate,hard}": AP (percent)}`` over all scans."""
    out: dict[str, float] = {}
    for mode in ("bev", "3d"):
        for ci, cls in enumerate(classes):
            for lvl, lname in enumerate(DIFFICULTIES):
                tps, scs, n_gt = [], [], 0
                for det, gt in zip(dets, gts):
                    g = [o for o in gt if o.cls == cls]
                    d = [o for o in det if o.cls == cls]
                    gb = np.array([o.box for o in g]).reshape(-1, 7)
                    valid = np.array([0 <= kitti_difficulty(o) <= lvl for o in g], bool)
                    n_gt += int(valid.sum())
                    db = np.array([o.box for o in d]).reshape(-1, 7)
                    ds = np.array([o.score or 0.0 for o in d])
                    tp, keep = match_frame(db, ds, gb, valid, iou_thresholds[ci], mode)
                    tps.append(tp[keep])
                    scs.append(ds[keep])
                ap = ap_from_pr(np.concatenate(tps) if tps else np.zeros(0), np.concatenate(scs) if scs else np.zeros(0),
                                n_gt, recall_points)
                out[f"{mode}_{cls}_{lname}"] = 100.0 * ap
    return out


def summarize(ap: dict[str, float], classes: Sequence[str], difficulty: str = "moderate") -> dict[str, float]:
    """Mean over classes (NaN classes skipped) of the 3D and BEV AP at one difficulty, plus per class."""
    out = {}
    for mode in ("3d", "bev"):
        vals = [ap[f"{mode}_{c}_{difficulty}"] for c in classes]
        ok = [v for v in vals if not np.isnan(v)]
        out[f"{mode}_mAP_{difficulty}"] = float(np.mean(ok)) if ok else float("nan")
        for c, v in zip(classes, vals):
            out[f"{mode}_{c}_{difficulty}"] = v
    return out
