"""Recipes (every row x profile), one trainer step per recipe, and every CLI verb in-process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pretrainlab.core.cli import main
from pretrainlab.core.config import PROFILES, ConfigError
from pretrainlab.speech.api import SPEC, load

RECIPE_NAMES = SPEC.recipe_names()
# s3prl pretrain/tera/exp_model_config/logMelBase-*.yaml: which alterations each row switches on
ROWS = {"tera": (1, 1, 1), "tera_960": (1, 1, 1), "tera_t": (1, 0, 0), "tera_f": (0, 1, 0), "tera_m": (0, 0, 1),
        "tera_tf": (1, 1, 0), "tera_tm": (1, 0, 1), "tera_fm": (0, 1, 1), "mockingjay": (1, 0, 0)}


def test_recipes_are_s3prls_rows() -> None:
    assert sorted(RECIPE_NAMES) == sorted(ROWS)
    for name in RECIPE_NAMES:
        for prof in PROFILES:
            cfg = load(name, prof, [])
            a = cfg.alteration
            assert (a.time, a.frequency, a.magnitude) == tuple(map(bool, ROWS[name]))
            assert cfg.features.dim == 80 and cfg.data.profile == prof
    full = load("tera", "full", [])
    m = full.model
    assert (m.hidden, m.layers, m.heads, m.ffn, m.dropout, m.attention_dropout, m.max_frames) == \
        (768, 3, 12, 3072, 0.3, 0.3, 1500)  # logMelBase-T-F-M.yaml
    t = full.train
    assert (t.lr, t.batch_size, t.grad_accum, t.clip_grad, t.weight_decay) == (2e-4, 8, 4, 5.0, 0.01)
    assert (full.data.min_frames, full.data.subsets, t.max_steps) == (200, ["train-clean-100"], 200_000)
    big = load("tera_960", "full", [])
    assert big.data.subsets == ["train-clean-100", "train-clean-360", "train-other-500"] and \
        big.train.max_steps == 1_000_000
    mj = load("mockingjay", "full", [])  # config_model_large.yaml: 12 layers, linear target, sequence 500
    assert (mj.model.layers, mj.model.dropout, mj.model.max_frames, mj.features.target_kind, mj.features.target_dim) \
        == (12, 0.1, 500, "linear", 201)
    assert load("tera", "smoke", []).alteration.magnitude_prob == 0.15


@pytest.mark.parametrize("recipe", ["tera", "tera_m", "mockingjay"])
def test_one_step_per_kind_of_recipe(recipe: str, smoke_data: Path, tmp_path: Path) -> None:
    from pretrainlab.speech import api

    cfg = load(recipe, "smoke", ["train.max_steps=1", "train.progress=false"])
    _, res = api.pretrain(cfg, smoke_data, tmp_path / recipe)
    assert res.step == 1 and np.isfinite(res.history[-1]["loss"])
    if recipe == "tera_m":  # every valid frame counts
        assert res.history[-1]["marked_fraction"] > 0.5


@pytest.mark.parametrize(("override", "key"), [
    ("model.heads=5", "model.heads"), ("model.hidden=0", "model.hidden"), ("train.lr=nan", "train.lr"),
    ("alteration.time_proportion=0", "alteration.time_proportion"), ("features.kind=mfcc", "features.kind"),
    ("probe.tasks=[phone]", "probe.tasks[0]"), ("data.crop_frames=5000", "data.crop_frames"),
    ("probe.concat_frames=4", "probe.concat_frames"), ("features.hop_ms=50", "features.hop_ms"),
    ("data.subsets=[]", "data.subsets"), ("probe.dev_fraction=1.5", "probe.dev_fraction"),
])
def test_numeric_parameters_are_validated(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load("tera", "smoke", [override])


def test_cli_round_trip(smoke_data: Path, tmp_path: Path) -> None:
    run, probes = tmp_path / "run", tmp_path / "probes"
    assert main(["speech", "pretrain", "--profile", "smoke", "--data", str(smoke_data), "--out", str(run),
                 "train.max_steps=2", "train.progress=false"]) == 0
    assert (run / "checkpoints" / "latest").exists()
    assert main(["speech", "finetune", "--profile", "smoke", "--data", str(smoke_data), "--init", str(run),
                 "--out", str(probes), "train.progress=false", "probe.tasks=[phone_linear,speaker]"]) == 0
    m = json.loads((probes / "metrics.json").read_text())
    assert set(m) >= {"phone_linear_acc", "speaker_acc", "phone_linear_dev_acc", "speaker_best_step"}
    out = tmp_path / "m.json"
    assert main(["speech", "eval", "--ckpt", str(probes), "--data", str(smoke_data), "--out", str(out)]) == 0
    again = json.loads(out.read_text())
    assert again["phone_linear_acc"] == pytest.approx(m["phone_linear_acc"])
    emb = tmp_path / "emb"
    assert main(["speech", "embed", "--ckpt", str(run), "--input", str(smoke_data / "speech_commands" / "yes"),
                 "--out", str(emb), "--all-layers"]) == 0
    arr = np.load(next(emb.glob("*.npy")))
    cfg = load("tera", "smoke", [])
    assert arr.shape == (cfg.model.layers + 1, 101, cfg.model.hidden) and arr.dtype == np.float32  # 1 s: 101 frames
    one = tmp_path / "one"
    assert main(["speech", "embed", "--ckpt", str(run), "--input", str(next((smoke_data / "speech_commands" / "no")
                                                                                .glob("*.wav"))),
                 "--out", str(one), "--layer", "0"]) == 0
    assert np.load(next(one.glob("*.npy"))).shape == (101, cfg.model.hidden)
    exported = tmp_path / "states-2.ckpt"
    assert main(["speech", "export", "--ckpt", str(run), "--format", "s3prl", "--out", str(exported)]) == 0
    assert exported.stat().st_size > 0


def test_cli_logmel_baseline_eval(smoke_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "baseline.json"
    assert main(["speech", "eval", "--data", str(smoke_data), "--profile", "smoke", "--tasks", "phone_linear",
                 "--out", str(out), "train.progress=false"]) == 0
    m = json.loads(out.read_text())
    assert {"phone_linear_acc", "phone_linear_dev_acc", "phone_linear_best_step", "upstream"} == set(m)
    assert m["upstream"].startswith("log-mel")


def test_cli_data_and_bench(tmp_path: Path) -> None:
    assert main(["speech", "data", "--out", str(tmp_path / "d"), "--profile", "smoke"]) == 0
    assert (tmp_path / "d" / "LibriSpeech" / "converted_aligned_phones.txt").exists()
    out = tmp_path / "bench.json"
    assert main(["speech", "bench", "--device", "cpu", "--steps", "1", "--warmup", "0", "--batch-size", "2",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())[0]
    assert res["frames_per_s"] > 0 and res["extraction_x_realtime"] > 0


def test_reproduce_smoke(smoke_data: Path, tmp_path: Path) -> None:
    from pretrainlab.core.results import recompute_verdicts, validate

    out = tmp_path / "repro"
    assert main(["speech", "reproduce", "--profile", "smoke", "--seeds", "0", "1", "--data", str(smoke_data),
                 "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    validate(res)
    assert recompute_verdicts(res) == [c["verdict"] for c in res["claims"]]
    assert res["rows"][0]["name"].startswith("log-mel")
    assert sum(c["headline"] for c in res["claims"]) == 1 and (out / "results.md").exists()
