"""The paper's table (Hegde et al. 2024, Tables 1-3) at a chosen scale, on the core's harness.

Rows: scratch and E-SSL3D (spatial + temporal). E-SSL3D is pre-trained once per table (seed 0, in
``setup``), as a paper fine-tunes one pre-trained backbone; a cell (row, seed) fine-tunes the
detector (the seed changes the label subset and the fine-tuning) for a fixed number of EPOCHS at
each label fraction of the profile (tiny: 5 %; full: 5 / 20 / 100 %), each evaluated with the
official KITTI R40 AP on the val split. The ablation rows (spatial only, temporal
only) and the invariant baseline are recipes (``pretrain --config spatial|temporal|invariant``); the
tiny budget goes to the headline's seeds instead.

Headline (paper Table 1, SECOND): E-SSL3D pre-training beats training from scratch at the lowest
label fraction (moderate 3D mAP, Car / Pedestrian / Cyclist).
"""

from __future__ import annotations

import math
from typing import Any

from pretrainlab.core.results import Claim, Context, Row, Table
from pretrainlab.lidar import api

# paper: 5 %, 20 %, 100 % of the KITTI labels; tiny affords the lowest fraction only (the headline's)
FRACTIONS: dict[str, tuple[float, ...]] = {"smoke": (0.05,), "tiny": (0.05,), "full": (0.05, 0.2, 1.0)}
EPOCHS = {"smoke": 1, "tiny": 24, "full": 80}  # fine-tuning epochs at every label fraction (OpenPCDet SECOND: 80)


def tag(f: float) -> str:
    return f"{round(f * 100)}pct"


def fine_tune_steps(n_train: int, fraction: float, batch: int, epochs: int) -> int:
    """Optimizer steps for ``epochs`` passes over ``ceil(fraction * n_train)`` scans."""
    n = max(1, math.ceil(fraction * n_train))
    return max(1, epochs * max(1, n // min(batch, n)))


def pretrained(method: str, ctx: Context) -> Any:
    """The one pre-training run of ``method`` (seed 0) the table fine-tunes from, made once per table
    (a finished one in ``<out>/pretrain-<method>`` is reused only when this call resumes an interrupted run
    of the same table; a fresh or re-measured table pre-trains again, so its time counts and a changed
    method is never fine-tuned from a stale backbone)."""
    import shutil

    from pretrainlab.core.checkpoint import CheckpointError, read_meta

    cfg = api.load(method, ctx.profile, ["train.seed=0", "train.progress=false"])
    run = ctx.out / f"pretrain-{method}"
    try:
        if ctx.resumed and int(read_meta(run).get("step", -1)) == cfg.train.max_steps:
            return run
    except CheckpointError:
        pass
    if run.exists():
        shutil.rmtree(run)
    api.pretrain(cfg, ctx.data or api.synthetic_data(cfg.data.profile), run)
    return run


def setup(ctx: Context) -> None:
    for row in ROWS:
        if row.params is not None:
            ctx.shared[row.params] = pretrained(row.params, ctx)


def run_cell(row: Row, seed: int, ctx: Context) -> dict[str, float]:
    import shutil

    common = [f"train.seed={seed}", "train.progress=false"]
    init = ctx.shared[row.params] if row.params is not None else None
    base = ctx.cell_dir(row, seed)
    out: dict[str, float] = {}
    for frac in FRACTIONS[ctx.profile]:
        dcfg = api.load("detect", ctx.profile, common + [f"label_fraction={frac}"])
        data = ctx.data or api.synthetic_data(dcfg.data.profile)
        n_train = len(api.open_split(dcfg, data, "train"))
        steps = fine_tune_steps(n_train, frac, dcfg.train.batch_size, EPOCHS[ctx.profile])
        dcfg = api.load("detect", ctx.profile, common + [f"label_fraction={frac}", f"train.max_steps={steps}"])
        run = base / f"detect-{tag(frac)}"
        if run.exists():
            shutil.rmtree(run)
        task, _ = api.finetune(dcfg, data, run, init=init)
        m = api.evaluate_task(task.eval(), api.open_split(dcfg, data, "val"))
        ctx.shared["device"] = str(next(task.parameters()).device)
        t = tag(frac)
        out[f"mAP3D_mod@{t}"] = m["3d_mAP_moderate"]
        out[f"mAPBEV_mod@{t}"] = m["bev_mAP_moderate"]
        for c in ("Car", "Pedestrian", "Cyclist"):
            out[f"{c}@{t}"] = m[f"3d_{c}_moderate"]
    return out


PAPER_NUMBERS: dict[str, Any] = {
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
    ("scale: small grids and channel counts, few steps (see the recipes' tiny profile); AdamW + cosine instead of the "
    "paper's cyclic schedule"),
    "L_flow: element-wise mean MSE of normalised features (byol_loss / D) so that the weight 300 applies",
    "transform classifier reads a 4x4 pooled BEV map of both views",
]

ESSL = "E-SSL3D (spatial + temporal)"
ROWS = [Row("scratch", None, paper={"mAP3D_mod@5pct": 54.99}), Row(ESSL, "essl3d", paper={"mAP3D_mod@5pct": 58.60})]
TABLE = Table(
    domain="lidar", paper=api.PAPER, rows=ROWS, run=run_cell, setup=setup,
    claims=[
        Claim("E-SSL3D pre-training beats training from scratch at 5 % labels (moderate 3D mAP)",
              a=ESSL, b="scratch", metric="mAP3D_mod@5pct", headline=True),
        Claim("E-SSL3D pre-training beats training from scratch at 5 % labels in bird's-eye view (moderate BEV mAP)",
              a=ESSL, b="scratch", metric="mAPBEV_mod@5pct"),
    ],
    # tiny: 18 seeds (seeds 0-7 were a first look, inconclusive; 8-17 added once decoded frames were cached,
    # which left the training bit for bit the same and made a cell ~1.7x cheaper; two looks: see the notes)
    seeds={"smoke": [0, 1], "tiny": list(range(18)), "full": [0, 1, 2]},
    deviations=DEVIATIONS, paper_numbers=PAPER_NUMBERS,
    plot_metrics=["mAP3D_mod@5pct"],
    notes=("Columns: official KITTI R40 AP (OpenPCDet's evaluation, ported and tested cell by cell), moderate, IoU 0.7 "
           "Car / 0.5 Pedestrian, Cyclist, on 200 simulated val scans, after fine-tuning the detector for 24 epochs on "
           "5 % of 1000 labelled scans (50); mAP = mean over the three classes. One E-SSL3D pre-training run (seed 0, "
           "1200 steps on 320 unlabelled scans) is fine-tuned by every seed, as a paper fine-tunes its released "
           "backbone; each seed changes the label subset and the fine-tuning, the same for both rows. Tiny spends its "
           "budget on the headline (18 seeds); the 20 / 100 % columns (4x / 20x the fine-tuning cost at equal "
           "epochs) and the ablation and invariant rows (recipes spatial / temporal / invariant) are left to the full "
           "profile and to `pretrain --config`. Two looks at the same headline: the 8-seed table (seeds 0-7) was "
           "inconclusive (+2.18, [-2.02, +6.39]); the seeds were then raised to 18 (decided before any of seeds 8-17 "
           "ran, and seeds 0-7 re-run bit for bit the same), so the 95 % interval is not corrected for that second "
           "look; a Bonferroni reading of two looks (97.5 % intervals) is given in the README."),
)
