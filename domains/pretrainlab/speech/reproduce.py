"""TERA's central comparison at small scale: frozen TERA (T-F-M) features against log-mel features and
against the same encoder at random initialisation, on s3prl's probes (TERA Sec. V; SUPERB).

Rows: log-mel features (no pre-training; the paper's surface-feature baseline), the TERA encoder at
random initialisation (a sanity row, not in the paper: it separates the architecture from the
pre-training), and TERA pre-trained with time + frequency + magnitude alteration
(``logMelBase-T-F-M.yaml``). Columns: the test accuracy of each probe at its best dev step. Every row runs
on every seed; a seed fixes the pre-training and the probes.

What the tiny profile trades: the alteration ablation rows (``tera_t``, ``tera_f``, ``tera_m``,
``tera_tf``, ``tera_tm``, ``tera_fm``: each another 5 x ~90 CPU-seconds) and the probes
``phone_1hidden``, ``phone_concat`` and ``speaker_frame`` are left out, so that the headline rows get 5
seeds and 600 pre-training steps within the 12-minute CPU budget. They run with
``pretrainlab speech pretrain --config tera_t`` / ``finetune probe.tasks=[...]`` at any scale.
"""

from __future__ import annotations

from typing import Any

from pretrainlab.core.results import Claim, Context, Row, Table
from pretrainlab.speech import api

LOGMEL, RANDOM, TFM = "log-mel (no pre-training)", "random-init encoder", "TERA T-F-M"
TASKS = ["phone_linear", "speaker", "keyword"]
METRICS = [f"{t}_acc" for t in TASKS]
TABLE_OVERRIDES = [f"probe.tasks=[{','.join(TASKS)}]", "train.progress=false"]


def setup(ctx: Context) -> None:
    base = api.load("tera", ctx.profile, TABLE_OVERRIDES)
    root = ctx.data or api.synthetic_data(base.data.profile)
    ctx.shared.update(root=root, device="cpu", pdata=api.probe_data(root, base),
                      dataset=api.pretraining_dataset(root, base, preload=ctx.profile != "full"))


def run_cell(row: Row, seed: int, ctx: Context) -> dict[str, float]:
    from pretrainlab.core.train import seed_everything

    cfg = api.load(row.params or "tera", ctx.profile, [*TABLE_OVERRIDES, f"train.seed={seed}"])
    encoder: Any = None
    if row.name == RANDOM:
        seed_everything(seed)
        encoder = api.new_task(cfg).encoder
    elif row.name != LOGMEL:
        ds = api.pretraining_dataset(None, cfg, like=ctx.shared["dataset"])  # the decoded corpus, this row's config
        task, _ = api.pretrain(cfg, ctx.shared["root"], ctx.cell_dir(row, seed) / "pretrain", dataset=ds)
        encoder = task.encoder.cpu()
    m = api.run_probes(encoder, ctx.shared["pdata"], cfg, ctx.cell_dir(row, seed) / "probes")
    return {k: m[k] for k in METRICS}


def deviations(profile: str) -> list[str]:
    cfg = api.load("tera", profile, [])
    m, t, p = cfg.model, cfg.train, cfg.probe
    out = [("Optimiser: torch AdamW instead of s3prl's Lamb(adam=True) (same lr schedule; eps / weight-decay "
            "bias correction differ)."),
           "Random batches padded to the longest crop instead of s3prl's length buckets.",
           (f"Probes: {p.max_steps} steps, dev accuracy every {p.eval_every} (s3prl: 500k / 10k); keyword dev "
            "accuracy class-balanced; fixed _silence_ crops; speaker probes on CPC's utterance split.")]
    if profile != "full":
        out += [
            ("Synthetic eSpeak NG speech (tiny: 10 voices, 200 utterances = 8 min; keyword clips of the same voices) "
             "instead of LibriSpeech / Speech Commands; eSpeak's phonemes instead of CPC's 41 phones."),
            (f"Model {m.layers} x {m.hidden} (heads {m.heads}, FFN {m.ffn}), {t.max_steps} steps at lr {t.lr:g}, "
             f"batch {t.batch_size} x {cfg.data.crop_frames} frames without accumulation (paper: 768 / 12 / "
             "3072, 200k-1M steps at lr 2e-4, batch 8 x 4 x 1500 frames)."),
            (f"Probe learning rates {p.lr:g} (phones, speakers) and {p.keyword_lr:g} (keywords) instead of "
             "2e-4 / 1e-4, for the short runs."),
        ]
    return out


TABLE = Table(
    domain="speech", paper=api.SPEC.paper,
    rows=[Row(LOGMEL, None), Row(RANDOM, "tera"), Row(TFM, "tera")],
    run=run_cell, setup=setup,
    claims=[
        Claim("TERA (T-F-M) features beat log-mel features on the linear phone probe (TERA Sec. V: frozen TERA "
              "representations outperform surface features)", a=TFM, b=LOGMEL, metric="phone_linear_acc",
              headline=True),
        Claim("TERA pre-training improves the same encoder over its random initialisation on the linear phone "
              "probe (a sanity check, not a claim of the paper)", a=TFM, b=RANDOM, metric="phone_linear_acc"),
        Claim("TERA features beat log-mel features on keyword spotting (SUPERB KS)", a=TFM, b=LOGMEL,
              metric="keyword_acc"),
        Claim("TERA features beat log-mel features on utterance-level speaker identification", a=TFM, b=LOGMEL,
              metric="speaker_acc"),
    ],
    seeds={"smoke": [0, 1], "tiny": [0, 1, 2, 3, 4], "full": [0, 1, 2]},
    deviations=deviations, metrics=METRICS, plot_metrics=["phone_linear_acc", "keyword_acc"],
    paper_numbers={
        "source": "SUPERB (Yang et al. 2021), from the research notes, to confirm: TERA base (960 h) and FBANK on "
                  "Speech Commands KS; LibriSpeech / VoxCeleb1 at full scale, not comparable with the synthetic "
                  "tiny corpus",
        "SUPERB KS accuracy %": {"TERA": 89.48, "FBANK": 8.63},
        "SUPERB SID accuracy % (TERA)": 57.57, "SUPERB PR PER % (TERA)": 49.17,
    },
    notes=lambda profile: (
        "Columns: test accuracy of each probe on the frozen representation, at its best dev step (s3prl's "
        "protocol): phone_linear = frame-level phones (linear), speaker = utterance-level speaker ID (mean over "
        "frames, linear), keyword = SUPERB's 12-class keyword spotting (projector, mean pooling, linear). With "
        "per-utterance CMVN the mean of log-mel frames is zero, so the log-mel row's utterance-level probes sit "
        "near chance, as SUPERB's FBANK (8.63 % on KS). "
        + ("The tiny table keeps 3 rows x 5 seeds and 600 pre-training steps; the ablation rows and 3 of the "
           "6 probes are traded for it (see reproduce.py)." if profile == "tiny" else "")),
)
