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
    """NIfTI / DICOM volumes -> the reference's flat folder: kept slices as <volume>_<z>.png + reduction.json."""
    out = tmp_path / "hash6"
    rc = main(["ct", "reduce", "--input", str(ct_smoke / "pretrain"), "--strategy", "hash", "--threshold", "6",
               "--out", str(out), "--profile", "smoke"])
    assert rc == 0
    rep = json.loads((out / "reduction.json").read_text())
    assert rep["strategy"] == "hash" and rep["params"]["k"] == 6 and rep["origin"].startswith("reference")
    for v in rep["volumes"]:
        assert {"volume", "slices_in", "slices_kept", "kept_indices", "kept_files", "seconds"} <= set(v)
        assert v["kept_files"] == [f"{v['volume']}_{i}.png" for i in v["kept_indices"]]
        assert all((out / f).exists() for f in v["kept_files"])
    assert sum(v["slices_kept"] for v in rep["volumes"]) == rep["slices_kept"] < rep["slices_in"]
    assert len(list(out.glob("*.png"))) == rep["slices_kept"]
    again = tmp_path / "again"  # the output is itself a flat folder: reducing it with ALL keeps it whole
    assert main(["ct", "reduce", "--input", str(out), "--method", "all", "--out", str(again)]) == 0
    assert sorted(p.name for p in again.glob("*.png")) == sorted(p.name for p in out.glob("*.png"))


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
    kept = json.loads((run / "reduction.json").read_text())["slices_kept"]
    assert len(list((run / "reduced").glob("*.png"))) == kept  # the reduced set pre-training read
    ft = tmp_path / "ft"
    assert main(["ct", "finetune", "--profile", "smoke", "--data", str(ct_smoke), "--init", str(run), "--task", "organ",
                 "--out", str(ft)]) == 0
    m = json.loads((ft / "metrics.json").read_text())
    assert 0.0 <= m["auc"] <= 1.0 and m["init"] == str(run) and m["task"] == "organ" and len(m["classes"]) == 11
    out = tmp_path / "metrics.json"
    assert main(["ct", "eval", "--ckpt", str(ft), "--data", str(ct_smoke), "--out", str(out)]) == 0
    e = json.loads(out.read_text())
    assert e["task"] == "organ" and 0.0 <= e["accuracy"] <= 1.0 and e["auc"] == pytest.approx(m["auc"])


def test_reproduce_smoke(tmp_path: Path, ct_smoke: Path) -> None:
    from pretrainlab.core.results import recompute_verdicts, validate

    out = tmp_path / "rep"
    assert main(["ct", "reproduce", "--profile", "smoke", "--seeds", "0", "1", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    validate(res)
    again = recompute_verdicts(res)
    assert [v for v, c in zip(again, res["claims"]) if not c.get("family")] == \
        [c["verdict"] for c in res["claims"] if not c.get("family")]
    names = [r["name"] for r in res["rows"]]
    assert names[:4] == ["no pre-training", "ALL", "Hash-6", "ALL (Hash-6's steps)"]
    rows = {r["name"]: r["metrics"] for r in res["rows"]}
    assert rows["Hash-6"]["slices_kept_pct"]["mean"] < 100.0 == rows["ALL"]["slices_kept_pct"]["mean"]
    assert rows["ALL (Hash-6's steps)"]["pretrain_steps"]["values"] == rows["Hash-6"]["pretrain_steps"]["values"]
    assert sum(c["headline"] for c in res["claims"]) == 1 and res["deviations"]
    assert (out / "results.md").exists() and (out / "probe_auc_organ.png").exists()


def test_deepnet_reduce_with_a_checkpoint(tmp_path: Path, ct_smoke: Path) -> None:
    run = tmp_path / "pt"
    assert main(["ct", "pretrain", "--profile", "smoke", "--config", "all", "--data", str(ct_smoke), "--out", str(run)]) == 0
    out = tmp_path / "deepnet"
    assert main(["ct", "reduce", "--input", str(ct_smoke / "pretrain"), "--strategy", "deepnet", "--threshold", "0.99",
                 "--ckpt", str(run), "--out", str(out), "--profile", "smoke"]) == 0
    rep = json.loads((out / "reduction.json").read_text())
    assert rep["strategy"] == "deepnet" and 0 < rep["slices_kept"] <= rep["slices_in"] and "extension" in rep["origin"]
    assert main(["ct", "reduce", "--strategy", "deepnet", "--ckpt", str(tmp_path / "nowhere"), "--out",
                 str(tmp_path / "x"), "--input", str(ct_smoke / "pretrain")]) == 2


def test_bench_verb(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["ct", "bench", "--device", "cpu", "--steps", "1", "--warmup", "0", "--volumes", "2", "--slices", "12",
                 "--size", "64", "--out", str(out)]) == 0
    res = {r["name"].split(" (")[0]: r for r in json.loads(out.read_text())}
    e2e = res["ct reduce end to end"]
    assert e2e["identical_selection"] is True and e2e["slices"] == 24 and e2e["ct_reduce_slices_per_s"] > 0
    assert res["hash-6 step"]["identical_selection"] is True
    swav = next(r for r in res.values() if r["name"].startswith("swav"))
    assert swav["samples_per_s"] > 0
