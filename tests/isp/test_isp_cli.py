"""The CLI verbs in-process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pretrainlab.core.cli import main


def test_help_lists_verbs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["isp", "--help"])
    out = capsys.readouterr().out
    for verb in ("data", "pretrain", "finetune", "eval", "render", "reproduce", "report", "demo", "bench"):
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
    saved = (run / "config.yaml").read_text()
    assert "norm: synthetic" in saved and "bayer_pattern: RGGB" in saved  # resolved, so render / eval reuse them
    m = tmp_path / "m.json"
    assert main(["isp", "eval", "--ckpt", str(run), "--data", str(smoke_data), "--out", str(m)]) == 0
    metrics = json.loads(m.read_text())
    assert {"PSNR", "SSIM", "MS-SSIM", "DeltaE2000", "params", "MS-SSIM_scales"} <= set(metrics)
    assert metrics["params"] == 1616 and metrics["MS-SSIM_scales"] == 2
    out = tmp_path / "renders"
    assert main(["isp", "render", "--ckpt", str(run), "--input", str(smoke_data / "samples"), "--out", str(out)]) == 0
    # 0.dng, 0.npy, 0.png (and 1.*) share stems: each keeps its extension; the RGB targets are skipped
    assert {p.name for p in out.glob("*.png")} == {f"{i}.{s}.png" for i in (0, 1) for s in ("dng", "npy", "png")}
    a, b = (np.asarray(Image.open(out / f"0.{s}.png")) for s in ("png", "npy"))
    assert np.array_equal(a, b)
    conv = tmp_path / "conv"
    assert main(["isp", "render", "--conventional", "--input", str(smoke_data / "samples/1.dng"), "--out", str(conv)]) == 0
    assert Image.open(conv / "1.png").size == (128, 96)
    ft = tmp_path / "ft"
    assert main(["isp", "finetune", "--init", str(run), "--config", "robustisp_paired_noadv", "--profile", "smoke",
                 "--data", str(smoke_data), "--out", str(ft), "train.progress=false"]) == 0
    assert (ft / "checkpoints/latest").exists() and f"init: {run}" in (ft / "config.yaml").read_text()


def test_render_failure_leaves_nothing_and_never_overwrites_inputs(tmp_path: Path, smoke_data: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(smoke_data / "samples/0.png", folder / "a.png")
    (folder / "b.dng").write_bytes(b"not a raw file")
    out = tmp_path / "deep/out"
    assert main(["isp", "render", "--conventional", "--input", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "b.dng: rawpy cannot read" in err and "Traceback" not in err
    assert not (tmp_path / "deep").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    (folder / "b.dng").unlink()
    assert main(["isp", "render", "--conventional", "--input", str(folder), "--out", str(folder)]) == 2
    assert "a.png: rendering would overwrite this input RAW file" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["a.png"]


def test_render_needs_one_model(tmp_path: Path, smoke_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["isp", "render", "--input", str(smoke_data / "samples/0.png"), "--out", str(tmp_path / "o")]) == 2
    assert "--ckpt: missing" in capsys.readouterr().err
    assert main(["isp", "render", "--conventional", "--ckpt", str(tmp_path), "--input", str(smoke_data / "samples/0.png"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "give only one of" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.dng"
    bad.write_text("nope")
    assert main(["isp", "render", "--conventional", "--input", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "bad.dng: rawpy cannot read" in capsys.readouterr().err
    assert main(["isp", "pretrain", "--profile", "smoke", "loss.modee=paired"]) == 2
    assert main(["isp", "pretrain", "--profile", "smoke", "loss.d_every=0", "--out", str(tmp_path / "r")]) == 2
    assert "loss.d_every: 0 is not allowed" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_bench_cpu() -> None:
    from pretrainlab.isp import api  # noqa: F401 - the bench module imports only the api
    from pretrainlab.isp.bench import bench

    res = bench(device="cpu", steps=1, warmup=0, batch_size=2, generators=("robustisp",))
    assert [r["generator"] for r in res] == ["robustisp"]
    assert res[0]["generator_params"] == 1616 and res[0]["fullhd_latency_s"] > 0 and res[0]["samples_per_s"] > 0


def test_reproduce_smoke_table(tmp_path: Path, smoke_data: Path, smoke_nets) -> None:
    from pretrainlab.core.results import recompute_verdicts, validate
    from pretrainlab.isp.reproduce import TABLE

    path = TABLE.reproduce("smoke", tmp_path / "rep", seeds=[0, 1], data=smoke_data, progress=False)
    res = json.loads(path.read_text())
    validate(res)
    assert recompute_verdicts(res) == [c["verdict"] for c in res["claims"]]
    names = [r["name"] for r in res["rows"]]
    assert names[0] == "Conventional ISP" and "EfficientISP / unpaired" in names
    head = [c for c in res["claims"] if c["headline"]]
    assert len(head) == 1 and head[0]["kind"] == "equivalence" and head[0]["delta"] == 1.0
    assert (tmp_path / "rep/results.md").exists() and (tmp_path / "rep/renders.png").exists()
    assert any("Warm start" in d for d in res["deviations"])
