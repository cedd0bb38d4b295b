"""The built-in recipe's table: a random-init encoder vs the SimCLR-pre-trained one, on the same
seeds, scored by a linear probe and k-NN on the shapes test split.

Headline (Chen et al. 2020, Sec. 4 / Table 6 in spirit): SimCLR pre-training gives a better
linear-probe representation than a random encoder.
"""

from __future__ import annotations

from typing import Any

from pretrainlab.core.builtin import api
from pretrainlab.core.results import Claim, Context, Row, Table


def run_cell(row: Row, seed: int, ctx: Context) -> dict[str, float]:
    cfg = api.load(None, ctx.profile, [f"train.seed={seed}", "train.progress=false"])
    data = ctx.data or api.synthetic_data(cfg.data.profile)
    if row.params == "random":
        encoder: Any = api.random_encoder(cfg, seed)
    else:
        task, _ = api.pretrain(cfg, data, ctx.cell_dir(row, seed))
        encoder = task.encoder.cpu()
    return api.probe(encoder, data, cfg.data.image_size)


TABLE = Table(
    domain="simclr", paper=api.SPEC.paper,
    rows=[Row("random init", "random"), Row("SimCLR", "simclr")],
    run=run_cell,
    claims=[
        Claim("SimCLR pre-training gives a better linear-probe representation than a random encoder",
              a="SimCLR", b="random init", metric="linear_probe_acc", headline=True),
        Claim("SimCLR pre-training gives a better k-NN representation than a random encoder",
              a="SimCLR", b="random init", metric="knn_acc"),
    ],
    deviations=["4-block CNN on 32x32 generated shapes instead of ResNet-50 on ImageNet",
                "AdamW with warm-up + cosine instead of LARS at batch 4096"],
    plot_metrics=["linear_probe_acc"],
    notes="Columns: linear-probe (logistic regression) and k-NN (k = 10) accuracy of the frozen encoder on the "
          "test split of the generated shapes (6 classes).",
)
