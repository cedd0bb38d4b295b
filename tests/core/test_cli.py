"""CLI: info, help with examples, the built-in recipe end to end (data, pretrain, resume, eval,
reproduce, bench) and the results schema / report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pretrainlab.core import results as R
from pretrainlab.core.cli import main


def test_info_lists_versions_devices_domains(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "devices:" in out and "cpu:" in out
    assert "simclr" in out and "domains:" in out


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["simclr", "pretrain", "--help"])
    out = capsys.readouterr().out
    assert "example:" in out and "pretrainlab simclr pretrain" in out


def test_data_verb_writes_imagefolder_atomically(tmp_path: Path) -> None:
    out = tmp_path / "shapes"
    assert main(["simclr", "data", "--out", str(out), "--profile", "smoke"]) == 0
    assert (out / "manifest.json").exists() and len(list((out / "train").glob("*/*.png"))) == 48
    # a second run without --overwrite refuses (nothing half-written either way)
    assert main(["simclr", "data", "--out", str(out), "--profile", "smoke"]) == 2
    assert not [p for p in tmp_path.iterdir() if p.name != "shapes"]


def test_pretrain_resume_eval(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["simclr", "pretrain", "--profile", "smoke", "--out", str(run), "train.progress=false"]) == 0
    assert (run / "checkpoints" / "step_000004").exists()
    # resuming a finished run to a longer schedule continues from step 4
    assert main(["simclr", "pretrain", "--profile", "smoke", "--out", str(run), "--resume",
                 "train.max_steps=6", "train.progress=false"]) == 0
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert main(["simclr", "eval", "--ckpt", str(run)]) == 0
    metrics = json.loads((run / "checkpoints" / "step_000006" / "metrics.json").read_text())
    assert 0.0 <= metrics["linear_probe_acc"] <= 1.0


def test_bad_override_and_checkpoint_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simclr", "pretrain", "--profile", "smoke", "--out", str(tmp_path), "train.lrr=1"]) == 2
    assert "did you mean 'train.lr'" in capsys.readouterr().err
    assert main(["simclr", "eval", "--ckpt", str(tmp_path / "missing")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_run_folder_is_never_clobbered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    base = ["simclr", "pretrain", "--profile", "smoke", "--out", str(run), "train.progress=false"]
    assert main(base) == 0
    before = (run / "metrics.jsonl").read_text()
    # an existing run without --resume / --overwrite is refused and left as it was
    assert main(base) == 2
    assert "already exists; pass --resume to continue it or --overwrite" in capsys.readouterr().err
    assert (run / "metrics.jsonl").read_text() == before
    assert main([*base, "--overwrite"]) == 0
    # --resume on a folder without a checkpoint (or none at all) is refused, nothing is created
    assert main([*base[:-2], str(tmp_path / "new"), "--resume"]) == 2
    assert "--resume" in capsys.readouterr().err and not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    assert main([*base[:-2], str(tmp_path / "empty"), "--resume"]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err


def test_failed_start_leaves_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    # invalid values are refused before any folder is written
    for bad in ("train.batch_size=0", "train.lr=nan", "loss.temperature=-1"):
        assert main(["simclr", "pretrain", "--profile", "smoke", "--out", str(run), bad]) == 2
        assert bad.split("=")[0] in capsys.readouterr().err
        assert not run.exists()
    # a run that fails after starting (here: no full batch) removes the folder it created
    assert main(["simclr", "pretrain", "--profile", "smoke", "--out", str(run), "train.batch_size=100000",
                 "train.progress=false"]) == 2
    assert "train.batch_size: 100000 is more than the 48 samples" in capsys.readouterr().err
    assert not run.exists()


def test_demo_refuses_missing_checkpoint_and_busy_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    assert main(["simclr", "demo", "--ckpt", str(tmp_path / "nope")]) == 2
    assert "nope: no such checkpoint" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["simclr", "demo", "--port", str(port)]) == 2
        assert f"--port {port}: already in use" in capsys.readouterr().err


def test_reproduce_smoke_writes_valid_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rep"
    assert main(["simclr", "reproduce", "--profile", "smoke", "--out", str(out), "--seeds", "0", "1", "2"]) == 0
    res = json.loads((out / "results.json").read_text())
    R.validate(res)
    assert res["seeds"] == [0, 1, 2] and {r["name"] for r in res["rows"]} == {"random init", "SimCLR"}
    assert len(res["rows"][0]["metrics"]["linear_probe_acc"]["values"]) == 3
    assert (out / "results.md").exists() and list(out.glob("*.png"))
    assert [c["verdict"] for c in res["claims"]] == R.recompute_verdicts(res)
    assert sum(c["headline"] for c in res["claims"]) == 1
    # a second run of the same table and code finds every cell cached; --fresh recomputes
    capsys.readouterr()
    assert main(["simclr", "reproduce", "--profile", "smoke", "--out", str(out), "--seeds", "0", "1", "2"]) == 0
    assert "already done" not in capsys.readouterr().err  # a finished run starts afresh ...
    (out / "cells" / "complete").unlink()  # ... an interrupted one resumes
    assert main(["simclr", "reproduce", "--profile", "smoke", "--out", str(out), "--seeds", "0", "1", "2"]) == 0
    assert "resuming: 6 of 6 cells already done" in capsys.readouterr().err
    report = R.write_report([out / "results.json"], tmp_path / "report.md", {"lidar": "exit code 1"})
    text = report.read_text()
    assert "simclr" in text and "lidar" in text and "exit code 1" in text


@pytest.mark.slow
def test_reproduce_all_runs_domains_in_parallel(tmp_path: Path) -> None:
    """``reproduce --all --jobs 2``: one process per domain, a log per domain, one report."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    earlier = {"domain": "ct", "paper": "p", "profile": "smoke", "device": "cpu", "seeds": [0], "wall_time_s": 1.0,
               "rows": [R.row("ALL", {"AUC": [0.5, 0.6]})], "claims": [R.legacy_claim("c", False, "e")]}
    (tmp_path / "ct" / "reproduce-smoke").mkdir(parents=True)
    (tmp_path / "ct" / "reproduce-smoke" / "results.json").write_text(json.dumps(earlier))
    p = subprocess.run([sys.executable, "-m", "pretrainlab.core.cli", "reproduce", "--all", "--profile", "smoke",
                        "--jobs", "2", "--only", "simclr", "speech", "--out", str(tmp_path)],
                       check=False, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    for d in ("simclr", "speech"):
        assert (tmp_path / d / "reproduce-smoke" / "results.json").exists()
        assert (tmp_path / d / "reproduce-smoke" / "reproduce.log").stat().st_size > 0
    text = (tmp_path / "report.md").read_text()
    assert "| simclr |" in text and "| speech |" in text
    # --only keeps the other domains' earlier results in the report, dated
    assert "| ct | smoke |" in text and "finished (UTC)" in text and "earlier results of: ct" in p.stderr
    assert "reproduced 2/2 domains" in p.stdout and "report (3 domains)" in p.stdout


def test_bench_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["simclr", "bench", "--device", "cpu", "--steps", "2", "--warmup", "1", "--batch-size", "8",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())[0]
    assert res["samples_per_s"] > 0 and res["device"].startswith("cpu") and "peak_mem_mb" in res


@pytest.mark.parametrize("bad", [
    {"rows": []},
    {"rows": [{"name": "a", "metrics": {"m": {"mean": 1.0}}}]},
    {"claims": [{"claim": "x", "holds": "yes", "evidence": ""}]},
    {"claims": [{"claim": "x", "kind": "other", "verdict": "holds", "holds": False, "evidence": "", "headline": False}]},
    {"claims": [{"claim": "x", "kind": "pairwise", "verdict": "holds", "holds": True, "evidence": "", "headline": False}]},
])
def test_results_schema_rejects_malformed(bad: dict) -> None:  # type: ignore[type-arg]
    good = {"domain": "d", "paper": "p", "profile": "smoke", "device": "cpu", "seeds": [0, 1], "wall_time_s": 1.0,
            "rows": [R.row("a", {"m": [1.0, 2.0]}, [0, 1])], "claims": [R.legacy_claim("c", True, "e")]}
    R.validate(good)
    with pytest.raises(ValueError):
        R.validate({**good, **bad})
    assert R.summarize([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(2 ** 0.5), "n": 2, "values": [1.0, 3.0]}


def test_help_does_not_import_torch() -> None:
    """``pretrainlab --help`` and every ``pretrainlab <domain> --help`` stay fast: building the parser
    (every domain's domain.py and api.py) imports neither torch nor the other heavy stacks."""
    from pretrainlab.core.cli import domains

    code = ("import sys\nfrom pretrainlab.core import cli\n"
            "for argv in [['--help']] + [[d, '--help'] for d in sys.argv[1:]]:\n"
            "    try:\n        cli.main(argv)\n    except SystemExit:\n        pass\n"
            "heavy = [m for m in ('torch', 'torchvision', 'open_clip', 'gradio', 'monai', 'open3d') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code, *domains()], check=False, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "HEAVY []" in out.stdout, out.stdout[-500:]
