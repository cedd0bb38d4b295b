"""The paper's comparison (Wolf et al. 2024): pre-training on ALL slices vs on the Hash-6 set (the
reference's reduction), scored downstream, beside no pre-training; pre-training cost in steps and CPU.

Rows: no pre-training; ALL; Hash-6 (a fixed number of epochs, so about 10x fewer steps: the paper's
protocol); ALL (Hash-6's steps) (the equal-steps arm: ALL stopped after as many steps as the Hash-6
run, so the two differ only in WHICH slices they saw); EveryN, SSIM, MI, DeepNet (the paper's other
strategies; no code or thresholds in the reference: this project's extensions, thresholds calibrated
beforehand on phantoms the table does not use, ``recipes/*.yaml``), on fewer seeds.

Each reduction is computed once (``setup``: deterministic; DeepNet embeds with the ALL row's backbone
of the same seed); each cell pre-trains (seeded), then scores the backbone twice: a linear probe on
frozen features (logistic regression on train + val, test ROC AUC: the representation alone,
deterministic given the backbone) for every row, and the reference's fine-tuning protocol for the
three main rows.

What the tiny table can decide, and what was traded for it: at 32 px and a few hundred steps, the
fine-tuned classifiers learn both phantom tasks from scratch almost as well as from a pre-trained
backbone (no pre-training is within 0.01 AUC of ALL), so fine-tuning cannot show a representation
effect; the COVID-CT phantom lesions (2-3 px at 32 px) are erased by SwAV's crop / blur invariances,
so pre-training does not help that task's probe either. The organ task's linear probe is where
pre-training measurably helps (the first claim), so the headline is measured there; the budget went
to the three main rows (6 seeds, ALL at 16 epochs = 528 steps) and the extensions run 3 seeds.

The headline is the paper's own claim (reduction IMPROVES the downstream AUC). It was first declared
as non-inferiority with a 0.01 margin ("matches or beats"); an exploratory run of this design put the
effect at the margin itself (-0.011, interval [-0.018, -0.004]), where no affordable precision can
decide, so the paper's superiority claim became the headline and non-inferiority a secondary claim.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from pretrainlab.core.results import Claim, Context, Row, Table
from pretrainlab.ct import api

TASKS = ("covid", "organ")  # the phantom downstream tasks (COVID-CT layout, OrganSMNIST .npz)
ROWS = [
    Row("no pre-training", {"recipe": None, "finetune": True}),
    Row("ALL", {"recipe": "all", "finetune": True}),
    Row("Hash-6", {"recipe": "hash6", "finetune": True}),
    Row("ALL (Hash-6's steps)", {"recipe": "all", "steps_of": "hash6"}),
    Row("EveryN", {"recipe": "every_n"}, seeds=3),
    Row("SSIM", {"recipe": "ssim"}, seeds=3),
    Row("MI", {"recipe": "mi"}, seeds=3),
    Row("DeepNet", {"recipe": "deepnet"}, seeds=3),
]
HEADLINE_METRIC = "probe_auc_organ"
NON_INFERIORITY = 0.01  # AUC: "matches" = Hash-6 at most 0.01 below ALL (the paper's gains are 0.01-0.10)


def _setup(ctx: Context) -> None:
    """Read the pre-training volumes once, reduce them once per (deterministic) strategy."""
    from pretrainlab.core.train import select_device

    base = api.load("all", ctx.profile, [])
    root = ctx.data or api.synthetic_data(base.data.profile)
    ctx.shared["root"] = root
    ctx.shared["device"] = str(select_device(base.train.device))
    vols = api.load_volumes(api.pretrain_folder(root), base.preprocess, progress=False,
                            num_workers=base.preprocess.reader_workers)
    ctx.shared["volumes"] = vols
    ctx.shared["n_all"] = sum(len(s) for _, s in vols)
    red: dict[str, Any] = {}
    for recipe in ("all", "hash6", "every_n", "ssim", "mi"):
        cfg = api.load(recipe, ctx.profile, [])
        red[recipe] = api.reduce_volumes(vols, cfg.reduction)
    ctx.shared["reductions"] = red


def _kept(ctx: Context, recipe: str, cfg: Any, seed: int) -> tuple[list[np.ndarray], dict[str, Any]]:
    if recipe != "deepnet":
        return ctx.shared["reductions"][recipe]
    embed = api.backbone_embedder(ctx.cell_dir(ROWS[1], seed) / "pretrain")  # the ALL row's backbone, same seed
    return api.reduce_volumes(ctx.shared["volumes"], cfg.reduction, embed)


def run_cell(row: Row, seed: int, ctx: Context) -> dict[str, float]:
    p = row.params
    common = [f"train.seed={seed}", "train.progress=false", "train.tensorboard=false"]
    cell = ctx.cell_dir(row, seed)
    out: dict[str, float] = {}
    init = None
    if p["recipe"] is not None:
        cfg = api.load(p["recipe"], ctx.profile, common)
        kept, _ = _kept(ctx, p["recipe"], cfg, seed)
        slices = api.gather_slices(ctx.shared["volumes"], kept, cfg.model.image_size)
        if p.get("steps_of"):  # equal steps: as many steps as the other set's run (epochs scaled, same batch)
            other = sum(len(k) for k in ctx.shared["reductions"][p["steps_of"]][0])
            steps = api.pretrain_steps(cfg, other)[0]
            cfg = dataclasses.replace(cfg, pretrain=dataclasses.replace(cfg.pretrain,
                                                                        epochs=steps / api.pretrain_steps(cfg, len(slices))[1]))
        t, c = time.perf_counter(), time.process_time()
        _, res = api.pretrain_on_slices(cfg, slices, cell / "pretrain")
        out.update({"pretrain_cpu_s": time.process_time() - c, "pretrain_wall_s": time.perf_counter() - t,
                    "pretrain_steps": float(res.step), "slices_kept_pct": 100.0 * len(slices) / ctx.shared["n_all"]})
        init = cell / "pretrain"
    probe_aucs = []
    for task in TASKS:  # the representation: a linear probe on frozen features (deterministic given the backbone)
        m = api.probe(init, ctx.shared["root"], task, ctx.profile, seed=seed)
        out[f"probe_auc_{task}"] = float("nan") if m["auc"] is None else float(m["auc"])
        probe_aucs.append(out[f"probe_auc_{task}"])
    out["probe_auc_mean"] = float(np.mean(probe_aucs))
    if p.get("finetune", False):  # the reference's protocol: fine-tuning, best validation epoch tested
        aucs = []
        for task in TASKS:
            fcfg = api.load("finetune", ctx.profile, [*common, f"task={task}"])
            _, m = api.finetune(fcfg, ctx.shared["root"], cell / f"finetune_{task}", init=init)
            out[f"auc_{task}"] = float("nan") if m["auc"] is None else float(m["auc"])
            out[f"acc_{task}"] = float(m["accuracy"])
            aucs.append(out[f"auc_{task}"])
        out["auc_mean"] = float(np.mean(aucs))
    return out


def _speed(results: dict[str, Any]) -> tuple[str, str]:
    rows = {r["name"]: r for r in results["rows"]}
    a, h = rows["ALL"]["metrics"], rows["Hash-6"]["metrics"]
    cpu = a["pretrain_cpu_s"]["mean"] / max(h["pretrain_cpu_s"]["mean"], 1e-9)
    steps = a["pretrain_steps"]["mean"] / max(h["pretrain_steps"]["mean"], 1e-9)
    verdict = "holds" if cpu > 1.0 else "contradicted"
    return verdict, (f"{cpu:.1f}x less pre-training CPU (ALL {a['pretrain_cpu_s']['mean']:.1f} s vs Hash-6 "
                     f"{h['pretrain_cpu_s']['mean']:.1f} s), {steps:.1f}x fewer steps; by construction: a fixed number "
                     f"of epochs over {h['slices_kept_pct']['mean']:.1f} % of the slices (paper: up to 9x)")


CLAIMS = [
    Claim("Contrastive pre-training on ALL slices improves the organ task over no pre-training (linear probe AUC)",
          a="ALL", b="no pre-training", metric=HEADLINE_METRIC),
    Claim("Hash-6 improves the downstream AUC over ALL at a fraction of the pre-training cost (the paper's claim; "
          "organ task, linear probe, equal epochs)", a="Hash-6", b="ALL", metric=HEADLINE_METRIC, headline=True),
    Claim(f"Hash-6 at least matches ALL (organ task, linear probe; non-inferiority margin {NON_INFERIORITY} AUC)",
          a="Hash-6", b="ALL", metric=HEADLINE_METRIC, margin=-NON_INFERIORITY),
    Claim("At equal pre-training steps, the Hash-6 set gives a better representation than ALL (organ task)",
          a="Hash-6", b="ALL (Hash-6's steps)", metric=HEADLINE_METRIC),
    Claim(f"Hash-6 at least matches ALL on the COVID-CT task (linear probe; margin {NON_INFERIORITY})", a="Hash-6",
          b="ALL", metric="probe_auc_covid", margin=-NON_INFERIORITY),
    Claim(f"Hash-6 at least matches ALL after fine-tuning (the reference's protocol; mean AUC of both tasks; margin "
          f"{NON_INFERIORITY})", a="Hash-6", b="ALL", metric="auc_mean", margin=-NON_INFERIORITY),
    Claim("Pre-training on the Hash-6 set is faster than on ALL", kind="other", decide=_speed),
    *[Claim(f"{name} improves the organ task over ALL (one of four extensions; Holm-corrected together)", a=name,
            b="ALL", metric=HEADLINE_METRIC, family="extensions") for name in ("EveryN", "SSIM", "MI", "DeepNet")],
]


def _deviations(profile: str) -> list[str]:
    out = [
        ("synthetic CT phantoms (NIfTI + DICOM) instead of LIDC-IDRI, and phantom downstream tasks in the real layouts "
        "(COVID-CT: lung slices with / without lesions; OrganSMNIST-style organ crops) instead of COVID-CT / OrganSMNIST "
        "/ brain hemorrhage"),
        ("SSIM / MI / DeepNet / EveryN have no code or thresholds in the reference: this project's extensions "
        "(keep a slice when its similarity to the last kept one is below a threshold), thresholds calibrated on phantoms "
        "not used by the table"),
        "bf16 autocast on GPU instead of the reference's fp16; CPU runs in fp32",
        ("fine-tuning drops the last incomplete batch of an epoch; biases / BatchNorm get no weight decay (requested "
        "from the core); RGB PNGs are read as gray"),
    ]
    if profile != "full":
        out.insert(1, "tiny / smoke: a small ResNet at 32 / 16 px, few prototypes and small crops, AdamW with one cosine "
                      "over the real run instead of LARS with the reference's schedule, prototypes frozen for one epoch "
                      "(the module's own default) instead of 313, a few pre-training and fine-tuning epochs")
    return out


TABLE = Table(
    domain="ct", paper=api.SPEC.paper, rows=ROWS, run=run_cell, claims=CLAIMS, setup=_setup,
    seeds={"smoke": [0, 1], "tiny": [0, 1, 2, 3, 4, 5], "full": [0, 1, 2]},
    deviations=_deviations,
    paper_numbers={"downstream AUC, ALL -> best reduction (abstract)": {"COVID-CT": [0.78, 0.83], "OrganSMNIST": [0.97, 0.98],
                                                                       "brain hemorrhage": [0.73, 0.83]},
                   "pre-training speed-up with reduction": "up to 9x",
                   "best strategy (reference repository)": "Hash-6"},
    plot_metrics=[HEADLINE_METRIC, "pretrain_cpu_s"],
    metrics=["probe_auc_organ", "probe_auc_covid", "probe_auc_mean", "auc_mean", "auc_covid", "auc_organ",
             "acc_covid", "acc_organ", "slices_kept_pct", "pretrain_steps", "pretrain_cpu_s", "pretrain_wall_s"],
    notes=("Columns: probe_auc_<task> = test ROC AUC of a linear probe (logistic regression on the frozen backbone's "
           "features of train + val; binary for COVID-CT, macro one-vs-rest for the 11 organs), probe_auc_mean their mean; "
           "auc_<task> / acc_<task> = test ROC AUC / accuracy after the reference's fine-tuning protocol (best validation "
           "epoch), auc_mean their mean; slices_kept_pct = kept slices in % of ALL; pretrain_steps / pretrain_cpu_s / "
           "pretrain_wall_s = the pre-training run's optimizer steps, CPU seconds and wall seconds. Tiny design: the "
           "headline is the organ probe because fine-tuning at this scale learns both tasks from scratch (no pre-training "
           "within 0.01 AUC of ALL) and the COVID phantoms' 2-3 px lesions do not survive SwAV's augmentations at 32 px; "
           "the budget went to 6 seeds of the main rows (ALL: 16 epochs, 528 steps); the extensions run 3 seeds."),
)
