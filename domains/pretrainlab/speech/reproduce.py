"""TERA's alteration ablation at small scale (TERA Sec. V; s3prl's downstream probes).

Rows: log-mel features (no pre-training), the same encoder at random initialisation (a sanity row,
not in the paper), and TERA pre-trained with the alterations of s3prl's ``logMelBase-*`` configs.
Columns: the frozen-feature probes' test accuracies at their best dev step. Every pre-trained row is
trained once per seed; the probes use the same seed.
"""

from __future__ import annotations

from typing import Any

from pretrainlab.core.results import Claim, Context, Row, Table
from pretrainlab.speech import api

LOGMEL, RANDOM = "log-mel (no pre-training)", "random-init encoder"
TFM = "TERA T-F-M"
METRICS = ["phone_linear_acc", "phone_1hidden_acc", "phone_concat_acc", "speaker_frame_acc", "speaker_acc",
           "keyword_acc"]


def setup(ctx: Context) -> None:
    import torch

    base = api.load("tera", ctx.profile, [])
    root = ctx.data or api.synthetic_data(base.data.profile)
    ctx.shared.update(root=root, device=str(torch.device("cpu")), pdata=api.probe_data(root, base),
                      dataset=api.pretraining_dataset(root, base, preload=ctx.profile != "full"))


def run_cell(row: Row, seed: int, ctx: Context) -> dict[str, float]:
    from pretrainlab.core.train import seed_everything

    recipe = row.params or "tera"
    cfg = api.load(recipe, ctx.profile, [f"train.seed={seed}", "train.progress=false"])
    encoder: Any = None
    if row.name == RANDOM:  # the same encoder, not pre-trained: separates the architecture from the pre-training
        seed_everything(seed)
        encoder = api.new_task(cfg).encoder
    elif row.name != LOGMEL:
        ds = api.pretraining_dataset(None, cfg, like=ctx.shared["dataset"])  # the decoded corpus, this row's config
        task, _ = api.pretrain(cfg, ctx.shared["root"], ctx.cell_dir(row, seed) / "pretrain", dataset=ds)
        encoder = task.encoder.cpu()
    m = api.run_probes(encoder, ctx.shared["pdata"], cfg, ctx.cell_dir(row, seed) / "probes")
    return {k: v for k, v in m.items() if k.endswith("_acc") and not k.endswith("_dev_acc")}


TABLE = Table(
    domain="speech", paper=api.SPEC.paper,
    rows=[Row(LOGMEL, None), Row(RANDOM, "tera"), Row("TERA T", "tera_t"), Row("TERA T-F", "tera_tf"),
          Row(TFM, "tera")],
    run=run_cell, setup=setup,
    claims=[
        Claim("TERA (T-F-M) pre-training improves the same encoder over its random initialisation on the "
              "frame-level phone probe", a=TFM, b=RANDOM, metric="phone_linear_acc", headline=True),
        Claim("TERA (T-F-M) features beat log-mel features on the linear phone probe", a=TFM, b=LOGMEL,
              metric="phone_linear_acc"),
    ],
    seeds={"smoke": [0, 1], "tiny": [0, 1, 2, 3, 4], "full": [0, 1, 2]},
    metrics=METRICS, plot_metrics=["phone_linear_acc"],
    notes="Columns: test accuracy of each frozen-feature probe at its best dev step (s3prl protocol).",
)
