"""The CLI verbs in-process, and reproduce on the smoke profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pretrainlab.core.cli import main


def test_help_lists_verbs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["isp", "--help"])
    out = capsys.readouterr().out
    for verb in ("data", "pretrain", "finetune", "eval", "render", "reproduce", "demo", "bench"):
        assert verb in out


def test_data_verb(tmp_path: Path) -> None:
    assert main(["isp", "data", "--out", str(tmp_path / "d"), "--profile", "smoke"]) == 0
    assert (tmp_path / "d/manifest.json").exists() and len(list((tmp_path / "d/train/huawei_raw").glob("*.png"))) == 24
    assert len(list((tmp_path / "d/samples").glob("*.dng"))) == 2


def test_pretrain_eval_render_finetune(tmp_path: Path, smoke_data: Path, smoke_nets) -> None:
    run = tmp_path / "run"
    assert main(["isp", "pretrain", "--profile", "smoke", "--data", str(smoke_data), "--out", str(run),
                 "--config", "robustisp_paired_noadv", "train.progress=false"]) == 0
    assert (run / "checkpoints/latest").exists()
    assert main(["isp", "eval", "--ckpt", str(run), "--data", str(smoke_data)]) == 0
    m = json.loads(next(run.glob("checkpoints/step_*/metrics.json")).read_text())
    assert {"PSNR", "SSIM", "MS-SSIM", "DeltaE2000", "params"} <= set(m) and m["params"] == 1616
    out = tmp_path / "renders"
    assert main(["isp", "render", "--ckpt", str(run), "--input", str(smoke_data / "samples"), "--out", str(out)]) == 0
    assert {p.name for p in out.glob("*.png")} == {"0.png", "1.png"}
    conv = tmp_path / "conv"
    assert main(["isp", "render", "--conventional", "--input", str(smoke_data / "samples/1.dng"), "--out", str(conv)]) == 0
    from PIL import Image

    assert Image.open(conv / "1.png").size == (128, 96)
    ft = tmp_path / "ft"
    assert main(["isp", "finetune", "--init", str(run), "--config", "robustisp_paired_noadv", "--profile", "smoke",
                 "--data", str(smoke_data), "--out", str(ft), "train.progress=false"]) == 0
    assert (ft / "checkpoints/latest").exists()


def test_cli_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.dng"
    bad.write_text("nope")
    assert main(["isp", "render", "--conventional", "--input", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "bad.dng: rawpy cannot read" in capsys.readouterr().err
    assert main(["isp", "pretrain", "--profile", "smoke", "loss.modee=paired"]) == 2


def test_bench_verb_cpu(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["isp", "bench", "--device", "cpu", "--steps", "1", "--warmup", "0", "--generator", "robustisp",
                 "--size", "16", "--batch-size", "2", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res[0]["generator_params"] == 1616 and res[0]["fullhd_latency_s"] > 0 and res[0]["samples_per_s"] > 0


def test_reproduce_smoke_writes_valid_results(tmp_path: Path, smoke_data: Path, smoke_nets) -> None:
    from pretrainlab.core.results import validate
    from pretrainlab.isp.reproduce import reproduce

    path = reproduce("smoke", tmp_path / "rep", seeds=[0, 1, 2], data=smoke_data,
                     generators=("efficientisp",), modes=("paired", "unpaired"))
    res = json.loads(path.read_text())
    validate(res)
    assert res["rows"][0]["name"].startswith("Conventional ISP") and len(res["rows"]) == 3
    assert all(len(r["metrics"]["PSNR"]["values"]) == 3 for r in res["rows"])
    assert len(res["claims"]) == 2 and all(isinstance(c["holds"], bool) for c in res["claims"])
    assert (tmp_path / "rep/results.md").exists() and (tmp_path / "rep/renders.png").exists()
    assert (tmp_path / "rep/PSNR.png").exists()
