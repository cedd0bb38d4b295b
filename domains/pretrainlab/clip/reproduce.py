"""``pretrainlab clip reproduce``: the paper's central comparison on the core harness (rows x seeds,
paired verdicts).

Rows: CLIP and CLIP-rocket (the improved recipe, no SSL loss) on every seed of the profile, and the
CLIP-rocket models scored with their MLP head and with the head mixture ``w * linear + (1 - w) * MLP``
(``eval.mix_weight`` = 0.5, fixed before the run): derived rows of the same trained models. The
SSL-augmented baselines (SLIP, BarLIP, BYOLIP, SwALIP) are not rows of this table: at the tiny scale
the 12-CPU-minute budget buys five seeds of the headline pair and nothing else (their recipes run with
``pretrainlab clip pretrain --config slip|barlip|byolip|swalip``).

Columns: zero-shot top-1 / top-5 over the 18 "<texture> <shape>" classes (prompt ensemble), top-1 on
the 6 held-out compositions (never in a training image or caption), retrieval R@1 (mean of
image->text and text->image), linear probe on the frozen features.

Claims, declared before the run (Fini et al. 2023, abstract and Sec. 5):
* headline: CLIP-rocket beats CLIP in zero-shot top-1 (the linear head, the head CLIP has too);
* CLIP-rocket beats CLIP on the held-out compositions, and in retrieval R@1;
* the head mixture beats the linear head alone.
"""

from __future__ import annotations

import shutil
from typing import Any

from pretrainlab.clip import api
from pretrainlab.core.results import Claim, Context, Row, Table, slug

MIX = 0.5  # eval.mix_weight: the mixture reported as a row, fixed before the run (not picked on the test set)


def _rocket_cell(seed: int, ctx: Context) -> dict[str, float]:
    """The stored metrics of the CLIP-rocket cell of ``seed`` (this process's, or the harness's cache
    after an interrupted run resumed)."""
    import json

    if seed in ctx.shared.get("rocket", {}):
        return ctx.shared["rocket"][seed]
    return json.loads((ctx.out / "cells" / slug("CLIP-rocket") / f"seed{seed}.json").read_text())["metrics"]


def run_cell(row: Row, seed: int, ctx: Context) -> dict[str, float]:
    """Pre-train ``row`` with ``seed`` on the profile's data, evaluate; keep the checkpoint of seed 0 only.
    A derived row (``("head", prefix)``) reads another head of the CLIP-rocket model of the same seed."""
    if isinstance(row.params, tuple):
        prefix = row.params[1]
        m = _rocket_cell(seed, ctx)
        out = {k[len(prefix):]: v for k, v in m.items() if k.startswith(prefix)}
        out.update({k: m[k] for k in ("R@1", "linear_probe") if k in m})
        return out
    cfg = api.load(row.params, ctx.profile, [f"train.seed={seed}", "train.progress=false", "train.tensorboard=false",
                                             f"eval.mix_weight={MIX}"])
    data = ctx.data or api.synthetic_data(cfg.data.profile)
    run = ctx.cell_dir(row, seed)
    if run.exists():
        shutil.rmtree(run)
    task, _ = api.pretrain(cfg, data, run)
    ctx.shared["device"] = str(next(task.parameters()).device)
    m = api.evaluate_task(task.eval(), data, cfg, probe=True, seed=seed, progress=False)
    out: dict[str, float] = {}
    heads = {"": "linear"}
    if row.params == "rocket":  # its other heads become the derived rows
        heads.update({"mlp:": "mlp", "mix:": f"mix{MIX:g}"})
        for w in cfg.eval.mix_sweep:
            out[f"sweep:zs_top1_w{w:g}"] = m[f"zs_top1_mix{w:g}"]
    for prefix, head in heads.items():
        out[f"{prefix}zs_top1"] = m[f"zs_top1_{head}"]
        out[f"{prefix}zs_top5"] = m[f"zs_top5_{head}"]
        if f"zs_top1_unseen_{head}" in m:
            out[f"{prefix}zs_top1_unseen"] = m[f"zs_top1_unseen_{head}"]
    out["R@1"] = m["R@1"]
    if "linear_probe" in m:
        out["linear_probe"] = m["linear_probe"]
    if seed != ctx.seeds[0]:  # one model per row stays (demo / eval); the others only cost disk
        shutil.rmtree(run / "checkpoints", ignore_errors=True)
        (run / "open_clip_model.safetensors").unlink(missing_ok=True)
    if row.params == "rocket":
        ctx.shared.setdefault("rocket", {})[seed] = out
    return out


def finish(ctx: Context, results: dict[str, Any]) -> None:
    """The CLIP-rocket row keeps its linear head's metrics; its other heads are rows of their own; the
    mixture sweep over w is recorded for information."""
    rocket = next(r for r in results["rows"] if r["name"] == "CLIP-rocket")
    sweep = {k.split("_w")[-1]: v for k, v in rocket["metrics"].items() if k.startswith("sweep:")}
    results["mix_sweep"] = {w: {"mean": v["mean"], "std": v["std"], "values": v["values"]} for w, v in sweep.items()}
    rocket["metrics"] = {k: v for k, v in rocket["metrics"].items() if ":" not in k}


def _deviations(profile: str) -> list[str]:
    out = [
        ("Backbone: the reference trains a ResNet-50 (CL2L_R50 in repro_exps.txt: timm resnet50, average pooling, "
         "a linear projector; RN50-rocket-t6 in the full recipe); the tiny profile trains 'clip-rn-nano' instead "
         "(open_clip ModifiedResNet, one block per stage, width 16, attention pooling, 32 px; text 2 x 32 wide, "
         "16-token context), the smoke profile the ViT 'clip-nano'. The tiny tower was switched from clip-nano "
         "after a pilot of the CLIP baseline alone (seed 100, not a table seed) scored chance with it (zero-shot "
         "top-1 0.050) and 0.171 with the ResNet; the previous table (clip-nano, both recipes at chance) was "
         "inconclusive."),
        ("The photometric part of the augmented views runs batched on the device (fixed jitter order, YIQ hue "
         "rotation, separable Gaussian blur); the crops are the reference's bicubic RandomResizedCrop of the "
         "full-resolution image. EDA synonym replacement uses a shipped synonym table instead of WordNet."),
        "SwALIP uses the other modality's batch as prototypes (as the reference code), not learned prototypes.",
        ("The zero-shot mixture weight is fixed (w = 0.5) before the run, never picked on the test set; the sweep "
         "over w is reported for information only."),
    ]
    if profile != "full":
        out.insert(0, "Synthetic data instead of CC3M / CC12M / YFCC15M and ImageNet: textured shapes with "
                      "captions from a paraphrasing grammar; 18 '<texture> <shape>' zero-shot classes (colour is a "
                      "nuisance attribute, never a class), 6 of them never seen in training.")
        out.insert(1, "Tiny schedule: 500 steps at batch 48, AdamW lr 1e-3 (reference 3e-3 at batch 4096; chosen over 2e-3 and "
                      "over 100 warm-up steps on pilot seeds 100-103, not table seeds, as the setting whose paired "
                      "difference varied least: benchmarks/clip_schedule_pilot.json), 25 warm-up steps, "
                      "cosine to 0, weight decay 0.1 (0.5), MLP projector hidden 256 (4096); text dropout 0.2 and "
                      "label smoothing 0.1 as on CC3M. The SSL-augmented baselines are not in the tiny table "
                      "(budget).")
    return out


TABLE = Table(
    domain="clip", paper=api.SPEC.paper,
    rows=[Row("CLIP", "clip"), Row("CLIP-rocket", "rocket"),
          Row("CLIP-rocket (MLP head)", ("head", "mlp:")), Row(f"CLIP-rocket (mix w={MIX:g})", ("head", "mix:"))],
    run=run_cell,
    claims=[
        Claim("CLIP-rocket (the improved recipe, no SSL loss) beats CLIP in zero-shot top-1", a="CLIP-rocket",
              b="CLIP", metric="zs_top1", headline=True),
        Claim("CLIP-rocket beats CLIP on the held-out compositions (zero-shot top-1 on never-captioned classes)",
              a="CLIP-rocket", b="CLIP", metric="zs_top1_unseen"),
        Claim("CLIP-rocket beats CLIP in image-text retrieval R@1", a="CLIP-rocket", b="CLIP", metric="R@1"),
        Claim(f"Mixing the linear and MLP heads (w = {MIX:g}) beats the linear head alone in zero-shot top-1",
              a=f"CLIP-rocket (mix w={MIX:g})", b="CLIP-rocket", metric="zs_top1"),
    ],
    seeds={"smoke": [0, 1], "tiny": [0, 1, 2, 3, 4], "full": [0, 1, 2]},
    finish=finish,
    deviations=_deviations,
    paper_numbers={
        "source": "Fini et al. 2023 (TMLR), abstract; the per-dataset tables could not be read offline when this "
                  "table was written, so no table numbers are quoted",
        "claims": "SSL-augmented baselines beat a basic CLIP; with the improved recipe their advantage disappears; "
                  "the improved CLIP gains up to 25% relative on downstream zero-shot tasks, up to +4 points over "
                  "prior work on the largest dataset",
        "reference runs (repro_exps.txt)": "ResNet-50 (CL2L_R50) on CC3M (6 text layers, wd 0.5, text dropout 0.2), "
                                           "CC12M and YFCC15M; 32 epochs at batch 4096",
    },
    plot_metrics=["zs_top1", "zs_top1_unseen"],
    metrics=["zs_top1", "zs_top5", "zs_top1_unseen", "R@1", "linear_probe"],
    notes="zs_top1 / zs_top5: zero-shot accuracy over the 18 '<texture> <shape>' classes (504 test images, "
          "28 per class, chance 0.056 / 0.28); zs_top1_unseen: top-1 on the 168 images of the 6 compositions "
          "never seen in training; R@1: retrieval recall@1 over 256 pairs (chance 0.004), mean of both "
          "directions; linear_probe: logistic regression on frozen image features (a stratified half split of "
          "the zero-shot images). Traded for a decisive headline: the whole budget goes to five seeds of CLIP "
          "and CLIP-rocket (500 steps of 48 pairs each: 6 epochs of the 4000 training pairs); the four "
          "SSL-augmented baselines of the paper's table are left out at this scale.",
)
