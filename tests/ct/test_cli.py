"""The CLI verbs in-process: data, reduce, pretrain, finetune, eval, reproduce (smoke), bench (tiny)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pretrainlab.core.cli import main


def test_data_verb(tmp_path: Path) -> None:
    out = tmp_path / "ct"
    assert main(["ct", "data", "--out", str(out), "--profile", "smoke"]) == 0
    assert (out / "manifest.json").exists() and (out / "info.json").exists()
    assert list((out / "pretrain").glob("*.nii.gz")) and list((out / "pretrain").glob("vol_*/IM_0000.dcm"))
    assert main(["ct", "data", "--out", str(out), "--profile", "smoke"]) == 2  # exists: refused before any work


def test_reduce_verb(tmp_path: Path, ct_smoke: Path) -> None:
    out = tmp_path / "hash6"
    rc = main(["ct", "reduce", "--input", str(ct_smoke / "pretrain"), "--strategy", "hash", "--threshold", "6",
               "--out", str(out), "--profile", "smoke"])
    assert rc == 0
    rep = json.loads((out / "reduction.json").read_text())
    assert rep["strategy"] == "hash" and rep["params"]["k"] == 6
    for v in rep["volumes"]:
        assert {"volume", "slices_in", "slices_kept", "kept_indices", "seconds"} <= set(v)
        pngs = sorted((out / v["volume"]).glob("*.png"))
        assert [int(p.stem) for p in pngs] == v["kept_indices"]
    assert sum(v["slices_kept"] for v in rep["volumes"]) == rep["slices_kept"] < rep["slices_in"]


def test_reduce_verb_single_nifti_and_bad_input(tmp_path: Path, ct_smoke: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nii = min((ct_smoke / "pretrain").glob("*.nii.gz"))
    assert main(["ct", "reduce", "--input", str(nii), "--strategy", "ssim", "--threshold", "0.6",
                 "--out", str(tmp_path / "ssim")]) == 0
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"garbage")
    assert main(["ct", "reduce", "--input", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "bad.nii.gz: not a readable NIfTI" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_pretrain_finetune_eval(tmp_path: Path, ct_smoke: Path) -> None:
    run = tmp_path / "pt"
    assert main(["ct", "pretrain", "--profile", "smoke", "--data", str(ct_smoke), "--out", str(run)]) == 0
    assert (run / "checkpoints" / "latest").exists() and (run / "reduction.json").exists()
    ft = tmp_path / "ft"
    assert main(["ct", "finetune", "--profile", "smoke", "--data", str(ct_smoke), "--init", str(run), "--task", "lesion",
                 "--out", str(ft)]) == 0
    m = json.loads((ft / "metrics.json").read_text())
    assert 0.0 <= m["auc"] <= 1.0 and m["init"] == str(run)
    out = tmp_path / "metrics.json"
    assert main(["ct", "eval", "--ckpt", str(ft), "--data", str(ct_smoke), "--out", str(out)]) == 0
    e = json.loads(out.read_text())
    assert e["task"] == "lesion" and 0.0 <= e["accuracy"] <= 1.0


def test_reproduce_smoke(tmp_path: Path, ct_smoke: Path) -> None:
    from pretrainlab.core.results import validate

    out = tmp_path / "rep"
    assert main(["ct", "reproduce", "--profile", "smoke", "--seeds", "0", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    validate(res)
    names = [r["name"] for r in res["rows"]]
    assert names == ["no pre-training", "ALL", "EveryN", "SSIM", "MI", "DeepNet", "Hash-6"]
    assert res["seeds"] == [0] and len(res["claims"]) >= 3 and res["deviations"]
    hash_row = res["rows"][names.index("Hash-6")]["metrics"]
    assert hash_row["slices_kept_pct"]["mean"] < 100.0
    assert (out / "results.md").exists() and (out / "auc_lesion.png").exists()


def test_deepnet_reduce_with_a_checkpoint(tmp_path: Path, ct_smoke: Path) -> None:
    run = tmp_path / "pt"
    assert main(["ct", "pretrain", "--profile", "smoke", "--config", "all", "--data", str(ct_smoke), "--out", str(run)]) == 0
    out = tmp_path / "deepnet"
    assert main(["ct", "reduce", "--input", str(ct_smoke / "pretrain"), "--strategy", "deepnet", "--threshold", "0.99",
                 "--ckpt", str(run), "--out", str(out), "--profile", "smoke"]) == 0
    rep = json.loads((out / "reduction.json").read_text())
    assert rep["strategy"] == "deepnet" and 0 < rep["slices_kept"] <= rep["slices_in"]
    assert main(["ct", "reduce", "--strategy", "deepnet", "--ckpt", str(tmp_path / "nowhere"), "--out",
                 str(tmp_path / "x"), "--input", str(ct_smoke / "pretrain")]) == 2


def test_bench_verb(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["ct", "bench", "--device", "cpu", "--profile", "smoke", "--steps", "1", "--warmup", "0",
                 "--volumes", "2", "--slices", "12", "--size", "64", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["hash_k"]["identical_selection"] is True and res["hash_k"]["slices"] == 24
    assert res["swav"]["samples_per_s"] > 0 and res["swav"]["peak_mem_mb"] > 0
