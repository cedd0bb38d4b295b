"""Reproduction of the paper's table (Hegde et al. 2024, Tables 1-3) at a chosen scale.

Rows: scratch, invariant contrastive, spatial only, temporal only, spatial + temporal (E-SSL3D).
Columns: moderate 3D AP (KITTI R40; mean over Car / Pedestrian / Cyclist and per class) after
fine-tuning with 5 %, 20 % and 100 % of the training labels, >= 3 seeds per row (the seed changes
the pre-training, the label subset and the fine-tuning). Claims tested as measured: pre-training
beats scratch at 5 % labels; equivariant beats invariant; both branches beat either alone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

PAPER = ("Hegde, Lohit, Peng, Jones, Patel, Equivariant Spatio-Temporal Self-Supervision for LiDAR Object "
         "Detection, ECCV 2024")
ROWS: tuple[tuple[str, str | None], ...] = (
    ("scratch", None), ("invariant contrastive", "invariant"), ("spatial only", "spatial"),
    ("temporal only", "temporal"), ("E-SSL3D (spatial + temporal)", "essl3d"))
FRACTIONS: tuple[float, ...] = (0.05, 0.2, 1.0)  # paper: 5 %, 20 %, 100 % of the KITTI labels
PAPER_NUMBERS = {
    "KITTI moderate 3D mAP, SECOND (5/20/100 % labels)": {
        "scratch": [54.99, 61.86, 66.69], "PointContrast": [55.40, 61.72, 65.74], "STRL": [52.94, 61.74, 67.78],
        "ALSO": [59.69, 66.39, 69.18], "E-SSL3D": [58.60, 65.28, 69.81]},
    "ablation, Voxel R-CNN 5 % labels, moderate 3D mAP": {
        "neither": 64.50, "temporal only": 65.82, "spatial only": 66.01, "both (E-SSL3D)": 66.52},
    "note": "numbers from secondary notes of the paper (to confirm); the paper has no 'invariant' row, "
            "PointContrast / STRL are the closest invariant baselines",
}
DEVIATIONS = [
    "backbone: pillar encoder + SECOND 2D BEV network in pure PyTorch instead of VoxelBackBone8x (spconv)",
    "detector: single-stage CenterPoint-style BEV head instead of OpenPCDet SECOND / Voxel R-CNN",
    ("data: the project's open3d ray-cast LiDAR simulator (KITTI format) instead of KITTI-360 + KITTI; "
    "exact simulated scene flow instead of a frozen pre-trained PV-RAFT"),
    ("scale: tiny grids, few steps, small channel counts (see the recipes' tiny profile); AdamW + cosine "
    "instead of the paper's cyclic schedule"),
    "L_flow: element-wise mean MSE of normalised features (byol_loss / D) so that the weight 300 applies",
    "transform classifier reads a 4x4 pooled BEV map of both views",
    "KITTI AP40 without the 2D-height filter on detections; camera-FOV filter on detections",
]


def _fmt_frac(f: float) -> str:
    return f"{round(f * 100)}pct"


def reproduce(profile: str, out: Path, seeds: list[int] | None = None, data: Path | None = None) -> Path:
    """Run every row x label fraction x seed and write results.json / results.md / plots into ``out``."""
    from tqdm.auto import tqdm

    from pretrainlab.core import results as R
    from pretrainlab.lidar.domain import load_detect, load_pretrain, synthetic_data
    from pretrainlab.lidar.formats import load_frames
    from pretrainlab.lidar.pipeline import evaluate, finetune, pretrain

    t0 = time.time()
    seeds = seeds or [0, 1, 2]
    out = Path(out)
    data = Path(data) if data else synthetic_data(profile)
    train_frames, val_frames = load_frames(data, "train"), load_frames(data, "val")
    classes = ("Car", "Pedestrian", "Cyclist")
    scores: dict[str, dict[str, list[float]]] = {name: {} for name, _ in ROWS}
    jobs = [(s, name, m) for s in seeds for name, m in ROWS]
    bar = tqdm(total=len(jobs) * len(FRACTIONS), desc="reproduce", unit="run")
    device = "cpu"
    for s, name, method in jobs:
        init = ""
        if method is not None:
            pcfg = load_pretrain(method, profile, [f"train.seed={s}", "train.progress=false"])
            task, _ = pretrain(pcfg, data, out / f"seed{s}" / f"pretrain-{method}")
            init = str(out / f"seed{s}" / f"pretrain-{method}")
            del task
        for frac in FRACTIONS:
            dcfg = load_detect(None, profile, [f"train.seed={s}", "train.progress=false", f"label_fraction={frac}",
                                               f"init={init}"])
            task, _ = finetune(dcfg, data, out / f"seed{s}" / f"{method or 'scratch'}-{_fmt_frac(frac)}", frames=train_frames)
            device = str(next(task.parameters()).device)
            m = evaluate(task, val_frames)
            tag = _fmt_frac(frac)
            scores[name].setdefault(f"mAP3D_mod@{tag}", []).append(m["3d_mAP_moderate"])
            scores[name].setdefault(f"mAPBEV_mod@{tag}", []).append(m["bev_mAP_moderate"])
            for c in classes:
                v = m[f"3d_{c}_moderate"]
                scores[name].setdefault(f"{c}@{tag}", []).append(0.0 if np.isnan(v) else v)
            bar.update()
    bar.close()

    def mean(row: str, key: str) -> float:
        return float(np.mean(scores[row][key]))

    k5 = "mAP3D_mod@5pct"
    ess, scr, inv = "E-SSL3D (spatial + temporal)", "scratch", "invariant contrastive"
    spa, tem = "spatial only", "temporal only"
    avg = {r: float(np.mean([mean(r, f"mAP3D_mod@{_fmt_frac(f)}") for f in FRACTIONS])) for r, _ in ROWS}
    claims = [
        R.claim("pre-training (E-SSL3D) beats training from scratch at 5 % labels", mean(ess, k5) > mean(scr, k5),
                f"moderate 3D mAP @5%: E-SSL3D {mean(ess, k5):.2f} vs scratch {mean(scr, k5):.2f} (mean of {len(seeds)} seeds)"),
        R.claim("equivariant pre-training beats invariant contrastive pre-training", avg[ess] > avg[inv],
                f"moderate 3D mAP averaged over 5/20/100 %: E-SSL3D {avg[ess]:.2f} vs invariant {avg[inv]:.2f}"),
        R.claim("both branches together beat either branch alone (5 % labels)",
                mean(ess, k5) > mean(spa, k5) and mean(ess, k5) > mean(tem, k5),
                f"moderate 3D mAP @5%: both {mean(ess, k5):.2f}, spatial only {mean(spa, k5):.2f}, "
                f"temporal only {mean(tem, k5):.2f}"),
    ]
    results: dict[str, Any] = {
        "domain": "lidar", "paper": PAPER, "profile": profile, "device": device, "seeds": seeds,
        "wall_time_s": time.time() - t0, "rows": [R.row(name, scores[name]) for name, _ in ROWS],
        "claims": claims, "deviations": DEVIATIONS, "paper_numbers": PAPER_NUMBERS,
    }
    extra = ("Columns: KITTI-style moderate 3D AP (R40, IoU 0.7 car / 0.5 pedestrian, cyclist) on the val split "
             "after fine-tuning with 5 / 20 / 100 % of the train labels, and the BEV mAP at the same IoU thresholds; "
             "mean ± std over seeds. A claim 'holds' when the means are ordered as the paper says; gaps smaller "
             "than the std over seeds are not significant at this scale.\n\n"
             "Paper (SECOND, KITTI moderate 3D mAP, 5/20/100 %): scratch 54.99 / 61.86 / 66.69, "
             "E-SSL3D 58.60 / 65.28 / 69.81; ablation (Voxel R-CNN, 5 %): neither 64.50, temporal 65.82, "
             "spatial 66.01, both 66.52 (from notes, to confirm).\n")
    path = R.write_results(out, results, plot_metrics=[f"mAP3D_mod@{_fmt_frac(f)}" for f in FRACTIONS], extra_md=extra)
    print(f"reproduced {len(ROWS)} rows x {len(FRACTIONS)} label fractions x {len(seeds)} seeds in "
          f"{time.time() - t0:.0f} s -> {out / 'results.md'}")
    return path
