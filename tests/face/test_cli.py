"""The CLI verbs, in-process, and reproduce on the smoke profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pretrainlab.core.cli import main


def test_data_verb_writes_the_formats(tmp_path: Path) -> None:
    assert main(["face", "data", "--out", str(tmp_path / "d"), "--profile", "smoke"]) in (0, None)
    d = tmp_path / "d"
    assert (d / "manifest.json").exists() and (d / "verify" / "pairs.txt").exists()
    assert (d / "tinyface" / "probe.txt").exists() and (d / "verify.bin").exists()
    from pretrainlab.face.formats import RecordIO

    rec = RecordIO(d / "train_lr")  # the fine-tuning set is an insightface RecordIO pack
    assert len(rec) == 8 * 4 and len({rec.label(k) for k in rec.keys}) == 8


def test_pretrain_finetune_eval_embed_verify(smoke_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pre, ft = tmp_path / "pre", tmp_path / "ft"
    assert main(["face", "pretrain", "--profile", "smoke", "--out", str(pre), "train.max_steps=1"]) in (0, None)
    assert main(["face", "finetune", "--init", str(pre), "--config", "petalface", "--profile", "smoke", "--out", str(ft),
                 "train.max_steps=1"]) in (0, None)
    assert main(["face", "eval", "--ckpt", str(ft), "--data", str(smoke_data), "--out", str(tmp_path / "m.json")]) in (0, None)
    m = json.loads((tmp_path / "m.json").read_text())
    assert {"hr_verif_acc", "lr_rank-1", "lr_rank-5", "lr_rank-10", "trainable_%"} <= set(m)
    assert main(["face", "embed", "--ckpt", str(ft), "--input", str(smoke_data / "verify" / "Person_0001"),
                 "--out", str(tmp_path / "emb.safetensors")]) in (0, None)
    from pretrainlab.core.checkpoint import load_tensors

    t, _ = load_tensors(tmp_path / "emb.safetensors")
    assert t["embeddings"].shape == (4, 32) and t["quality_a"].shape == (4,)
    capsys.readouterr()
    a = smoke_data / "verify" / "Person_0001" / "Person_0001_0001.png"
    b = smoke_data / "verify" / "Person_0002" / "Person_0002_0001.png"
    assert main(["face", "verify", "--ckpt", str(ft), str(a), str(b)]) in (0, None)
    res = json.loads(capsys.readouterr().out)
    assert -1.0 <= res["similarity"] <= 1.0 and len(res["quality_a"]) == 2 and "validation" in res["threshold_source"]


def test_bench_verb(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["face", "bench", "--device", "cpu", "--steps", "1", "--warmup", "0", "--batch-size", "4",
                 "--out", str(out)]) in (0, None)
    r = json.loads(out.read_text())
    runs = r if isinstance(r, list) else r["runs"]
    assert [x["name"].split("-")[1] for x in runs] == ["full_finetune", "lora", "petalface", "petalface"]
    assert all(x["samples_per_s"] > 0 for x in runs)


def test_reproduce_smoke(tmp_path: Path) -> None:
    from pretrainlab.core.results import validate

    assert main(["face", "reproduce", "--profile", "smoke", "--out", str(tmp_path / "r")]) in (0, None)
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    validate(res)
    assert [r["name"] for r in res["rows"]] == ["pre-trained", "full fine-tune", "plain LoRA", "PETALface (sharpness IQA)"]
    assert res["seeds"] == [0, 1] and len(res["claims"]) == 5 and sum(c["headline"] for c in res["claims"]) == 1
    assert all(len(r["metrics"]["lr_rank-1"]["values"]) == 2 for r in res["rows"])
    pre = res["rows"][0]["metrics"]["hr_verif_acc"]
    assert pre["std"] == 0.0  # one stage-1 backbone serves every seed (said in the deviations)
    assert any("zero spread" in d for d in res["deviations"])
    assert (tmp_path / "r" / "results.md").exists() and (tmp_path / "r" / "lr_rank-1.png").exists()


def test_cli_bad_input_exits_with_a_message(petal_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["face", "eval", "--ckpt", str(petal_ckpt), "--data", str(tmp_path / "empty")]) == 2
    assert "empty/verify: verification set not found" in capsys.readouterr().err
    assert main(["face", "eval", "--ckpt", str(petal_ckpt), "--data", str(tmp_path / "empty"),
                 "data.verify_dir=lfw.bin"]) == 2
    assert "lfw.bin: verification .bin not found" in capsys.readouterr().err
    assert main(["face", "embed", "--ckpt", str(petal_ckpt), "--input", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "e.safetensors")]) == 2
    assert "no images" in capsys.readouterr().err
