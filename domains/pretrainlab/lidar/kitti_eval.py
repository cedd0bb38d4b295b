"""The official KITTI object evaluation (AP with 40 recall positions), ported from OpenPCDet.

Reference: OpenPCDet ``pcdet/datasets/kitti/kitti_object_eval_python/eval.py`` (``clean_data``,
``get_thresholds``, ``compute_statistics_jit``, ``eval_class``, ``get_mAP_R40``,
``get_official_eval_result``), itself the KITTI devkit's ``evaluate_object.cpp`` in Python. The rules,
in the reference's order:

- Ground truth of frame ``f`` for class ``c`` at difficulty ``d``: a box of class ``c`` is valid unless
  its 2D height is ``<=`` 40 / 25 / 25 px, its occlusion ``>`` 0 / 1 / 2 or its truncation ``>`` 0.15 /
  0.30 / 0.50 (compared in float64), in which case it is ignored; a neighbouring class (Van for Car,
  Person_sitting for Pedestrian) is ignored; every other type does not take part. DontCare boxes are
  collected per frame.
- Detections of class ``c`` take part; a detection whose 2D height is ``<`` the level's minimum is
  ignored, whatever its class (it may absorb a ground truth of class ``c``, never counts as a FP).
- Overlap ``> min_overlap`` (strictly; 0.7 Car, 0.5 Pedestrian / Cyclist): 2D box IoU (``bbox``), rotated
  IoU in the ground plane (``bev``, camera x-z) and 3D IoU (``3d``). Rotated overlaps are stored in
  float32 as the reference's kernel does; this port computes them exactly (``rotated_iou``) instead of
  with numba-CUDA.
- Score thresholds: every true positive's score when each ground truth, label by label in file
  order, takes the highest-scoring unassigned detection above the overlap; 41 of them are chosen by
  ``get_thresholds`` (its float recall steps included).
- At each threshold: ground truths in file order take the unassigned, non-ignored detection of
  highest overlap (else an ignored one); tp, fn; false positives are the unassigned, non-ignored
  detections at or above the threshold, less (2D bbox metric only) those that overlap a DontCare box
  by more than ``min_overlap`` of their own area. ``recall = tp / (tp + fn)``, ``precision = tp / (tp +
  fp)``, made monotone from the right; ``AP_R40 = 100 / 40 * sum(precision[1:41])``. A class without
  a valid ground truth has AP 0 (the reference's arrays stay zero).
- AOS (orientation similarity, 2D metric) when the first non-empty detection file's first alpha is
  not -10: ``sum (1 + cos(alpha_gt - alpha_det)) / 2`` over true positives, divided by ``tp + fp``.

The greedy matching is exact; it runs on the connected pieces of the candidate graph (pairs above
the overlap), each piece once per distinct set of detections above a threshold, so the result is the
reference's while the cost stays near linear in the number of boxes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pretrainlab.lidar.formats import KittiAnnos
from pretrainlab.lidar.rotated_iou import bev_intersection_matrix

DIFFICULTIES = ("easy", "moderate", "hard")
METRICS = ("bbox", "bev", "3d")  # reference metric ids 0, 1, 2
CLASS_NAMES = ("car", "pedestrian", "cyclist", "van", "person_sitting", "truck")  # ref: clean_data
CLASS_TO_NAME = {0: "Car", 1: "Pedestrian", 2: "Cyclist", 3: "Van", 4: "Person_sitting", 5: "Truck"}
MIN_HEIGHT = (40, 25, 25)  # px, ref: clean_data
MAX_OCCLUSION = (0, 1, 2)
MAX_TRUNCATION = (0.15, 0.3, 0.5)
# ref: get_official_eval_result overlap_0_7 [metric (bbox, bev, 3d), class (Car, Ped, Cyc, Van, Person_sitting, Truck)]
OVERLAP_0_7 = np.array([[0.7, 0.5, 0.5, 0.7, 0.5, 0.7], [0.7, 0.5, 0.5, 0.7, 0.5, 0.7], [0.7, 0.5, 0.5, 0.7, 0.5, 0.7]])
N_SAMPLE_PTS = 41  # ref: eval_class
NO_DETECTION = -10000000  # ref: compute_statistics_jit


# ------------------------------------------------------------------------------------- overlaps

def image_box_overlap(boxes: np.ndarray, query: np.ndarray, criterion: int = -1) -> np.ndarray:
    """2D IoU ``(N, K)`` of ``x1 y1 x2 y2`` boxes (criterion -1), or intersection over ``boxes``' area (0)."""
    b, q = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(query, np.float64).reshape(-1, 4)
    iw = np.minimum(b[:, None, 2], q[None, :, 2]) - np.maximum(b[:, None, 0], q[None, :, 0])
    ih = np.minimum(b[:, None, 3], q[None, :, 3]) - np.maximum(b[:, None, 1], q[None, :, 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    area_q = (q[:, 2] - q[:, 0]) * (q[:, 3] - q[:, 1])
    ua = area_b[:, None] + area_q[None, :] - inter if criterion == -1 else np.broadcast_to(area_b[:, None], inter.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / ua, 0.0)


def _ground_rects(a: KittiAnnos) -> np.ndarray:
    """Camera x-z rectangles ``(x, z, l, w, -ry)``, rounded to float32 like the reference's kernel input.

    The reference rotates its corners by ``-ry``; this module's rectangles rotate by ``+yaw``, so
    ``yaw = -ry`` gives the same polygon.
    """
    r = np.c_[a.location[:, 0], a.location[:, 2], a.dimensions[:, 0], a.dimensions[:, 2], -a.rotation_y]
    return r.astype(np.float32).astype(np.float64)


def bev_overlap(dt: KittiAnnos, gt: KittiAnnos) -> np.ndarray:
    """Rotated ground-plane IoU ``(D, G)`` (ref: ``bev_box_overlap``; float32 values)."""
    rd, rg = _ground_rects(dt), _ground_rects(gt)
    inter = bev_intersection_matrix(rd, rg)
    area_d, area_g = rd[:, 2] * rd[:, 3], rg[:, 2] * rg[:, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(inter > 0, inter / (area_d[:, None] + area_g[None, :] - inter), 0.0)
    return iou.astype(np.float32).astype(np.float64)


def d3_overlap(dt: KittiAnnos, gt: KittiAnnos) -> np.ndarray:
    """3D IoU ``(D, G)`` (ref: ``d3_box_overlap``: ground intersection x height overlap along camera y)."""
    inter = bev_intersection_matrix(_ground_rects(dt), _ground_rects(gt)).astype(np.float32).astype(np.float64)
    yd, hd = dt.location[:, 1], dt.dimensions[:, 1]
    yg, hg = gt.location[:, 1], gt.dimensions[:, 1]
    iw = np.minimum(yd[:, None], yg[None, :]) - np.maximum(yd[:, None] - hd[:, None], yg[None, :] - hg[None, :])
    vol_d = dt.dimensions.prod(1) if len(dt) else np.zeros(0)
    vol_g = gt.dimensions.prod(1) if len(gt) else np.zeros(0)
    inc = iw * inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where((inter > 0) & (iw > 0), inc / (vol_d[:, None] + vol_g[None, :] - inc), 0.0)
    return iou.astype(np.float32).astype(np.float64)


def overlaps(dt: KittiAnnos, gt: KittiAnnos, metric: int) -> np.ndarray:
    """``(D, G)`` overlaps of one frame for metric 0 (bbox), 1 (bev) or 2 (3d)."""
    if len(dt) == 0 or len(gt) == 0:
        return np.zeros((len(dt), len(gt)))
    if metric == 0:
        return image_box_overlap(dt.bbox, gt.bbox)
    return bev_overlap(dt, gt) if metric == 1 else d3_overlap(dt, gt)


# ------------------------------------------------------------------------------------- the rules

def clean_data(gt: KittiAnnos, dt: KittiAnnos, current_class: int, difficulty: int
               ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """``(num_valid_gt, ignored_gt (G,), ignored_dt (D,), dontcare boxes (n, 4))``: 0 valid, 1 ignored, -1 out."""
    cls = CLASS_NAMES[current_class]
    ig = np.full(len(gt), -1, np.int64)
    h_gt = gt.bbox[:, 3] - gt.bbox[:, 1]
    for i, name in enumerate(gt.name):
        n = name.lower()
        valid = 1 if n == cls else (0 if (cls == "pedestrian" and n == "person_sitting") or
                                    (cls == "car" and n == "van") else -1)
        ignore = (gt.occluded[i] > MAX_OCCLUSION[difficulty] or gt.truncated[i] > MAX_TRUNCATION[difficulty]
                  or h_gt[i] <= MIN_HEIGHT[difficulty])
        if valid == 1 and not ignore:
            ig[i] = 0
        elif valid == 0 or (ignore and valid == 1):
            ig[i] = 1
    dc = np.array([gt.bbox[i] for i, n in enumerate(gt.name) if n == "DontCare"], np.float64).reshape(-1, 4)
    h_dt = np.abs(dt.bbox[:, 3] - dt.bbox[:, 1])
    is_cls = np.array([n.lower() == cls for n in dt.name], bool)
    idt = np.where(h_dt < MIN_HEIGHT[difficulty], 1, np.where(is_cls, 0, -1)).astype(np.int64)
    return int((ig == 0).sum()), ig, idt, dc


def get_thresholds(scores: np.ndarray, num_gt: int, num_sample_pts: int = N_SAMPLE_PTS) -> np.ndarray:
    """Score thresholds at (about) ``num_sample_pts`` evenly spaced recalls (ref: ``get_thresholds``)."""
    s = np.sort(np.asarray(scores, np.float64))[::-1]
    current_recall = 0.0
    out: list[float] = []
    n = len(s)
    for i, score in enumerate(s):
        l_recall = (i + 1) / num_gt
        r_recall = (i + 2) / num_gt if i < n - 1 else l_recall
        if (r_recall - current_recall) < (current_recall - l_recall) and i < n - 1:
            continue
        out.append(float(score))
        current_recall += 1 / (num_sample_pts - 1.0)
    return np.array(out, np.float64)


def _pieces(cand: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Connected components ``(det idx, gt idx)`` of the bipartite candidate graph ``cand (D, G)``."""
    D, G = cand.shape
    seen_d, seen_g = np.zeros(D, bool), np.zeros(G, bool)
    out = []
    for g0 in np.flatnonzero(cand.any(0)):
        if seen_g[g0]:
            continue
        gs, ds = {int(g0)}, set()
        frontier_g = [int(g0)]
        while frontier_g:
            new_d = set(np.flatnonzero(cand[:, frontier_g].any(1)).tolist()) - ds
            ds |= new_d
            new_g = set(np.flatnonzero(cand[sorted(new_d)].any(0)).tolist()) - gs if new_d else set()
            gs |= new_g
            frontier_g = sorted(new_g)
        d_idx, g_idx = np.array(sorted(ds)), np.array(sorted(gs))
        seen_d[d_idx] = True
        seen_g[g_idx] = True
        out.append((d_idx, g_idx))
    return out


class _Frame:
    """One frame's data for one (metric, class, difficulty): what the matching needs."""

    def __init__(self, ov: np.ndarray, ig: np.ndarray, idt: np.ndarray, scores: np.ndarray, dt_alpha: np.ndarray,
                 gt_alpha: np.ndarray, dc_hit: np.ndarray, min_overlap: float) -> None:
        self.ov, self.ig, self.idt, self.scores = ov, ig, idt, scores
        self.dt_alpha, self.gt_alpha, self.dc_hit = dt_alpha, gt_alpha, dc_hit
        self.cand = (ov > min_overlap) & (idt != -1)[:, None] & (ig != -1)[None, :]
        self.pieces = _pieces(self.cand)
        in_piece = np.zeros(len(idt), bool)
        for d, _ in self.pieces:
            in_piece[d] = True
        # detections without a candidate ground truth: a FP when valid, above the threshold, not DontCare
        self.lonely_fp_scores = scores[~in_piece & (idt == 0) & ~dc_hit]
        has_cand = self.cand.any(0)
        self.lonely_fn = int(((ig == 0) & ~has_cand).sum())

    def tp_scores(self) -> list[float]:
        """Scores of the true positives with every detection eligible (ref: compute_fp=False)."""
        out = []
        for d_idx, g_idx in self.pieces:
            assigned = np.zeros(len(d_idx), bool)
            sc = self.scores[d_idx]
            for g in g_idx:
                c = self.cand[d_idx, g] & ~assigned & (sc > NO_DETECTION)
                if not c.any():
                    continue
                cj = np.flatnonzero(c)
                j = cj[np.argmax(sc[cj])]  # highest score, first on ties
                assigned[j] = True
                if self.ig[g] == 0 and self.idt[d_idx[j]] == 0:
                    out.append(float(sc[j]))
        return out

    def stats(self, thresholds: np.ndarray, compute_aos: bool) -> np.ndarray:
        """``(T, 4)`` tp, fp, fn, similarity of this frame at each threshold (ref: compute_fp=True)."""
        T = len(thresholds)
        pr = np.zeros((T, 4))
        pr[:, 2] += self.lonely_fn
        pr[:, 1] += (self.lonely_fp_scores[None, :] >= thresholds[:, None]).sum(1)
        for d_idx, g_idx in self.pieces:
            sc = self.scores[d_idx]
            eligible_sets = sc[None, :] >= thresholds[:, None]  # (T, d)
            keys, inverse = np.unique(eligible_sets, axis=0, return_inverse=True)
            res = np.array([self._piece_stats(d_idx, g_idx, k, compute_aos) for k in keys]).reshape(-1, 4)
            pr += res[inverse.reshape(-1)]
        return pr

    def _piece_stats(self, d_idx: np.ndarray, g_idx: np.ndarray, eligible: np.ndarray, compute_aos: bool
                     ) -> tuple[float, float, float, float]:
        assigned = np.zeros(len(d_idx), bool)
        idt = self.idt[d_idx]
        tp = fn = 0
        sim = 0.0
        for g in g_idx:
            c = self.cand[d_idx, g] & ~assigned & eligible
            j = -1
            if c.any():
                c0 = np.flatnonzero(c & (idt == 0))
                j = int(c0[np.argmax(self.ov[d_idx[c0], g])]) if len(c0) else int(np.flatnonzero(c)[0])
            if j < 0:
                if self.ig[g] == 0:
                    fn += 1
            elif self.ig[g] == 1 or idt[j] == 1:
                assigned[j] = True
            else:
                tp += 1
                if compute_aos:
                    sim += (1.0 + np.cos(self.gt_alpha[g] - self.dt_alpha[d_idx[j]])) / 2.0
                assigned[j] = True
        fp = int((eligible & ~assigned & (idt == 0) & ~self.dc_hit[d_idx]).sum())
        return tp, fp, fn, sim


def eval_class(gt_annos: Sequence[KittiAnnos], dt_annos: Sequence[KittiAnnos], current_classes: Sequence[int],
               metric: int, min_overlaps: np.ndarray, compute_aos: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
    """Precision and AOS curves ``(n_class, 3 difficulties, n_overlap, 41)`` (ref: ``eval_class``)."""
    if len(gt_annos) != len(dt_annos):
        raise ValueError(f"{len(gt_annos)} ground-truth frames but {len(dt_annos)} detection frames")
    ovs = [overlaps(d, g, metric) for g, d in zip(gt_annos, dt_annos)]
    n_ov = min_overlaps.shape[0]
    precision = np.zeros((len(current_classes), 3, n_ov, N_SAMPLE_PTS))
    aos = np.zeros_like(precision)
    for m, cls in enumerate(current_classes):
        for lvl in range(3):
            cleaned = [clean_data(g, d, cls, lvl) for g, d in zip(gt_annos, dt_annos)]
            num_valid = sum(c[0] for c in cleaned)
            for k in range(n_ov):
                o = float(min_overlaps[k, metric, m])
                frames = []
                for (g, d, ov), (_, ig, idt, dc) in zip(zip(gt_annos, dt_annos, ovs), cleaned):
                    dc_hit = (image_box_overlap(d.bbox, dc, 0) > o).any(1) if metric == 0 and len(dc) and len(d) \
                        else np.zeros(len(d), bool)
                    frames.append(_Frame(ov, ig, idt, d.score, d.alpha, g.alpha, dc_hit, o))
                scores = [s for f in frames for s in f.tp_scores()]
                thresholds = get_thresholds(np.array(scores), num_valid)
                if len(thresholds) == 0:
                    continue
                pr = sum(f.stats(thresholds, compute_aos) for f in frames)
                n = min(len(thresholds), N_SAMPLE_PTS)
                with np.errstate(divide="ignore", invalid="ignore"):
                    prec = pr[:n, 0] / (pr[:n, 0] + pr[:n, 1])
                    ao = pr[:n, 3] / (pr[:n, 0] + pr[:n, 1])
                full_p, full_a = np.zeros(N_SAMPLE_PTS), np.zeros(N_SAMPLE_PTS)
                full_p[:n], full_a[:n] = prec, ao
                # max over [i:] (NaN propagates as np.max does)
                precision[m, lvl, k] = np.maximum.accumulate(full_p[::-1])[::-1]
                precision[m, lvl, k, n:] = full_p[n:]
                if compute_aos:
                    aos[m, lvl, k] = np.maximum.accumulate(full_a[::-1])[::-1]
                    aos[m, lvl, k, n:] = full_a[n:]
    return precision, aos


def get_map_r40(prec: np.ndarray) -> np.ndarray:
    """``100 / 40 * sum(prec[..., 1:41])`` (ref: ``get_mAP_R40``)."""
    return prec[..., 1:].sum(-1) / 40 * 100


def kitti_eval(gt_annos: Sequence[KittiAnnos], dt_annos: Sequence[KittiAnnos],
               classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"), overlap: np.ndarray = OVERLAP_0_7
               ) -> dict[str, dict[str, dict[str, float]]]:
    """``{class: {"bbox" | "bev" | "3d" [| "aos"]: {"easy" | "moderate" | "hard": AP_R40 (percent)}}}``.

    The reference's ``get_official_eval_result`` at its first overlap set (0.7 / 0.5 / 0.5); ``aos``
    when the first non-empty detection frame's first alpha is not -10.
    """
    name_to_class = {v: k for k, v in CLASS_TO_NAME.items()}
    unknown = [c for c in classes if c not in name_to_class]
    if unknown:
        raise ValueError(f"cannot evaluate class {unknown[0]!r}; the devkit knows {', '.join(CLASS_TO_NAME.values())}")
    ids = [name_to_class[c] for c in classes]
    min_ov = overlap[None][:, :, ids]  # (1, metric, class)
    compute_aos = False
    for a in dt_annos:
        if len(a):
            compute_aos = bool(a.alpha[0] != -10)
            break
    out: dict[str, dict[str, dict[str, float]]] = {c: {} for c in classes}
    for metric, mname in enumerate(METRICS):
        prec, aos = eval_class(gt_annos, dt_annos, ids, metric, min_ov, compute_aos and metric == 0)
        ap = get_map_r40(prec)
        for j, c in enumerate(classes):
            out[c][mname] = {lv: float(ap[j, i, 0]) for i, lv in enumerate(DIFFICULTIES)}
        if compute_aos and metric == 0:
            ap_aos = get_map_r40(aos)
            for j, c in enumerate(classes):
                out[c]["aos"] = {lv: float(ap_aos[j, i, 0]) for i, lv in enumerate(DIFFICULTIES)}
    return out


def summarize(result: dict[str, dict[str, dict[str, float]]], difficulty: str = "moderate") -> dict[str, float]:
    """Flat metrics: ``{3d,bev,bbox}_mAP_<difficulty>`` (mean over classes) and ``<metric>_<class>_<level>``."""
    out: dict[str, float] = {}
    classes = list(result)
    for m in ("3d", "bev", "bbox"):
        out[f"{m}_mAP_{difficulty}"] = float(np.mean([result[c][m][difficulty] for c in classes]))
    for c in classes:
        for m, levels in result[c].items():
            for lv, v in levels.items():
                out[f"{m}_{c}_{lv}"] = v
    return out


# ------------------------------------------------------------------------------------- folders

def frame_ids(labels: Path, frames: Path | None = None) -> list[str]:
    """The ids to evaluate: one per line of ``frames``, else every ``NNNNNN.txt`` in ``labels`` (the devkit's rule)."""
    from pretrainlab.core.data import DataError
    from pretrainlab.lidar.formats import read_text

    labels = Path(labels)
    if not labels.is_dir():
        raise DataError(labels, "label folder not found" if not labels.exists() else "not a folder of label files")
    if frames is not None:
        ids = [s.strip() for s in read_text(frames, "frame list").splitlines() if s.strip()]
        bad = [i for i in ids if not re.fullmatch(r"[\w.-]+", i)]
        if bad:
            raise DataError(frames, f"frame id {bad[0]!r} is not a file name")
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise DataError(frames, f"frame id {dup!r} is listed twice")
    else:
        ids = sorted(p.stem for p in labels.glob("*.txt") if re.fullmatch(r"\d{6}\.txt", p.name))
    if not ids:
        raise DataError(frames or labels, "no frame to evaluate (expected NNNNNN.txt label files, or ids in --frames)")
    return ids


def evaluate_folders(labels: Path, detections: Path, frames: Path | None = None,
                     classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist")) -> dict[str, dict[str, dict[str, float]]]:
    """KITTI R40 AP of a folder of detection files against a folder of ``label_2`` files (same names).

    Detections: 16 fields, score last; an empty file is no detection; a missing file is an error.
    """
    from pretrainlab.core.data import DataError
    from pretrainlab.lidar.formats import read_kitti_annos

    labels, detections = Path(labels), Path(detections)
    if not detections.is_dir():
        raise DataError(detections, "detection folder not found" if not detections.exists() else "not a folder")
    ids = frame_ids(labels, frames)
    gt, dt = [], []
    for i in ids:
        lab, det = labels / f"{i}.txt", detections / f"{i}.txt"
        if not lab.exists():
            raise DataError(lab, "label file missing for a listed frame")
        if not det.exists():
            raise DataError(det, "detection file missing (write an empty file for a frame without detections)")
        gt.append(read_kitti_annos(lab))
        dt.append(read_kitti_annos(det, detections=True))
    return kitti_eval(gt, dt, classes)


def format_table(result: dict[str, dict[str, dict[str, float]]]) -> str:
    """A compact text table (AP_R40, easy / moderate / hard) of a :func:`kitti_eval` result."""
    lines = [f"{'class':<11}{'metric':<7}{'easy':>9}{'moderate':>10}{'hard':>9}"]
    for c, ms in result.items():
        for m, lv in ms.items():
            lines.append(f"{c:<11}{m:<7}{lv['easy']:>9.4f}{lv['moderate']:>10.4f}{lv['hard']:>9.4f}")
    return "\n".join(lines)
