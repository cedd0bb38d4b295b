"""Recipes, the one-step trainer smoke per recipe, and every CLI verb in-process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pretrainlab.core.cli import main
from pretrainlab.core.config import PROFILES
from pretrainlab.speech.domain import RECIPES, load

RECIPE_NAMES = sorted(p.stem for p in RECIPES.glob("*.yaml"))


def test_recipes_load_for_every_profile() -> None:
    assert RECIPE_NAMES == ["mockingjay", "tera", "tera_time_freq"]
    for name in RECIPE_NAMES:
        for prof in PROFILES:
            cfg = load(name, prof, [])
            assert cfg.alteration.time
            assert cfg.features.dim == 80
    full = load("tera", "full", [])
    assert (full.model.hidden, full.model.layers, full.model.heads, full.model.ffn) == (768, 3, 12, 3072)
    assert (full.train.lr, full.train.batch_size, full.train.grad_accum, full.train.clip_grad) == (2e-4, 8, 4, 5.0)
    assert load("mockingjay", "smoke", []).alteration.frequency is False
    assert load("tera_time_freq", "smoke", []).alteration.magnitude is False
    assert load("tera", "smoke", []).alteration.magnitude_prob == 0.15


@pytest.mark.parametrize("recipe", RECIPE_NAMES)
def test_one_step_per_recipe(recipe: str, smoke_data: Path, tmp_path: Path) -> None:
    from pretrainlab.speech.tera import pretrain

    cfg = load(recipe, "smoke", ["train.max_steps=1", "train.progress=false"])
    _, res = pretrain(cfg, smoke_data, tmp_path / recipe)
    assert res.step == 1 and np.isfinite(res.history[-1]["loss"])


def test_cli_pretrain_eval_finetune_embed(smoke_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["speech", "pretrain", "--profile", "smoke", "--data", str(smoke_data), "--out", str(run),
                 "train.max_steps=2", "train.progress=false"]) == 0
    assert (run / "checkpoints" / "latest").exists()
    assert main(["speech", "eval", "--ckpt", str(run), "--data", str(smoke_data), "--tasks", "phone_linear",
                 "keyword"]) == 0
    ck = next((run / "checkpoints").glob("step_*"))
    metrics = json.loads((ck / "metrics.json").read_text())
    assert 0 <= metrics["phone_linear_acc"] <= 1 and (ck / "probes" / "keyword.safetensors").exists()
    out = tmp_path / "ft"
    assert main(["speech", "finetune", "--init", str(run), "--data", str(smoke_data), "--tasks", "speaker",
                 "--out", str(out), "probe.epochs=1"]) == 0
    assert "speaker_acc" in json.loads((out / "metrics.json").read_text())
    wav_dir = smoke_data / "speech_commands" / "yes"
    emb = tmp_path / "emb"
    assert main(["speech", "embed", "--ckpt", str(run), "--input", str(wav_dir), "--out", str(emb), "--all-layers"]) == 0
    arr = np.load(next(emb.glob("*.npy")))
    cfg = load("tera", "smoke", [])
    assert arr.shape == (cfg.model.layers + 1, 98, cfg.model.hidden)  # (K, T, H), 1 s at the 10 ms hop


def test_cli_eval_logmel_baseline(smoke_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "baseline"
    assert main(["speech", "eval", "--data", str(smoke_data), "--tasks", "phone_linear", "--out", str(out),
                 "probe.epochs=1"]) == 0
    assert set(json.loads((out / "metrics.json").read_text())) == {"phone_linear_acc"}


def test_cli_bad_input_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.wav").write_text("nope")
    assert main(["speech", "pretrain", "--profile", "smoke", "--data", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "x.wav" in capsys.readouterr().err


def test_cli_data_and_bench(tmp_path: Path) -> None:
    assert main(["speech", "data", "--out", str(tmp_path / "d"), "--profile", "smoke"]) == 0
    assert (tmp_path / "d" / "LibriSpeech" / "converted_aligned_phones.txt").exists()
    out = tmp_path / "bench.json"
    assert main(["speech", "bench", "--device", "cpu", "--steps", "1", "--warmup", "0", "--batch-size", "2",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["frames_per_s"] > 0 and res["extraction_x_realtime"] > 0


def test_reproduce_smoke(smoke_data: Path, tmp_path: Path) -> None:
    from pretrainlab.core.results import validate

    out = tmp_path / "repro"
    assert main(["speech", "reproduce", "--profile", "smoke", "--seeds", "0", "--data", str(smoke_data),
                 "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    validate(res)
    assert next(r["name"] for r in res["rows"]).startswith("log-mel") and len(res["rows"]) == 5
    assert len(res["claims"]) == 4 and (out / "results.md").exists() and (out / "phone_linear_acc.png").exists()
