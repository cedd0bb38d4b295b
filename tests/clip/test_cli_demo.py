"""CLI verbs in-process, reproduce on the smoke profile, the demo's pure functions and the browser test."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pretrainlab.core.cli import main
from pretrainlab.core.data import DataError
from pretrainlab.core.testing import upload


def _png(path: Path, color=(220, 30, 30)) -> Path:
    Image.new("RGB", (32, 32), color).save(path)
    return path


def test_cli_data_pretrain_eval(tmp_path: Path, smoke_data: Path) -> None:
    assert main(["clip", "data", "--out", str(tmp_path / "d"), "--profile", "smoke"]) == 0
    assert (tmp_path / "d" / "train.csv").exists() and (tmp_path / "d" / "manifest.json").exists()
    run = tmp_path / "run"
    assert main(["clip", "pretrain", "--config", "clip", "--profile", "smoke", "--data", str(tmp_path / "d" / "shards"),
                 "--out", str(run), "train.max_steps=1", "train.progress=false"]) == 0
    assert main(["clip", "eval", "--ckpt", str(run), "--data", str(smoke_data), "--out", str(tmp_path / "m.json")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert {"zs_top1_linear", "zs_top5_linear", "i2t_R@1", "t2i_R@10", "R@1"} <= set(m)
    # finetune from that checkpoint
    assert main(["clip", "finetune", "--init", str(run), "--config", "rocket", "--profile", "smoke",
                 "--data", str(smoke_data), "--out", str(tmp_path / "ft"), "train.max_steps=1",
                 "train.progress=false"]) == 0
    # bad input via the CLI: clear error, exit code 2
    bad = tmp_path / "bad.csv"
    bad.write_text("path\ttext\nx.jpg\thello\n")
    assert main(["clip", "pretrain", "--profile", "smoke", "--data", str(bad), "--out", str(tmp_path / "r2")]) == 2


def test_cli_zeroshot_and_embed(smoke_run: Path, smoke_data: Path, tmp_path: Path, capsys) -> None:
    img = _png(tmp_path / "x.png")
    assert main(["clip", "zeroshot", "--ckpt", str(smoke_run), "--image", str(img), "--labels",
                 "red circle,blue square,green star", "--mix", "0.5"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(lines) == 3 and abs(sum(float(ln.split()[0]) for ln in lines) - 1) < 0.01
    out = tmp_path / "emb.safetensors"
    assert main(["clip", "embed", "--ckpt", str(smoke_run), "--input", str(smoke_data / "train.csv"), "--out", str(out)]) == 0
    from safetensors.torch import load_file

    t = load_file(str(out))
    assert t["image"].shape == (96, 32) and t["text"].shape == (96, 32) and "image_mlp" in t
    folder = tmp_path / "imgs"
    folder.mkdir()
    _png(folder / "a.png")
    _png(folder / "b.png", (0, 0, 200))
    assert main(["clip", "embed", "--ckpt", str(smoke_run), "--input", str(folder), "--out", str(out), "--overwrite"]) == 0
    assert load_file(str(out))["image"].shape == (2, 32)
    (tmp_path / "bad.png").write_bytes(b"nope")
    assert main(["clip", "zeroshot", "--ckpt", str(smoke_run), "--image", str(tmp_path / "bad.png"),
                 "--labels", "a,b"]) == 2


def test_cli_bench_cpu(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["clip", "bench", "--device", "cpu", "--steps", "1", "--warmup", "0", "--batch-size", "8",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["step"]["samples_per_s"] > 0 and res["step"]["views_per_sample"] == 3 and "peer" not in res


def test_reproduce_smoke_writes_valid_results(tmp_path: Path, smoke_data: Path) -> None:
    from pretrainlab.core.results import recompute_verdicts, validate

    out = tmp_path / "repro"
    assert main(["clip", "reproduce", "--profile", "smoke", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    validate(res)
    names = [r["name"] for r in res["rows"]]
    assert names == ["CLIP", "CLIP-rocket", "CLIP-rocket (MLP head)", "CLIP-rocket (mix w=0.5)"]
    rows = {r["name"]: r for r in res["rows"]}
    assert rows["CLIP"]["seeds"] == [0, 1] and rows["CLIP-rocket (MLP head)"]["seeds"] == [0, 1]
    assert not any(":" in m for r in res["rows"] for m in r["metrics"])
    # the derived rows hold the other heads of the same CLIP-rocket models
    assert rows["CLIP-rocket (mix w=0.5)"]["metrics"]["R@1"]["values"] == rows["CLIP-rocket"]["metrics"]["R@1"]["values"]
    assert set(res["mix_sweep"]) == {"0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"}
    heads = [c for c in res["claims"] if c["headline"]]
    assert len(heads) == 1 and heads[0]["a"] == "CLIP-rocket" and heads[0]["b"] == "CLIP"
    assert [c["verdict"] for c in res["claims"]] == recompute_verdicts(res)
    assert (out / "results.md").exists() and (out / "zs_top1.png").exists()


# ------------------------------------------------------------------ demo
def _app():
    from pretrainlab.core.demo import load_app_module

    return load_app_module("clip")


def test_demo_pure_functions(smoke_run: Path, tmp_path: Path) -> None:
    app = _app()
    task, msg = app.get_task(smoke_run)
    assert "checkpoint" in msg and "smoke profile" in msg and "NOT meaningful" in msg and app.is_untrained(task)
    assert app.parse_labels("a, b ,c") == ["a", "b", "c"]
    with pytest.raises(DataError):
        app.parse_labels("only-one")
    img = app.read_image(_png(tmp_path / "x.png"))
    probs = app.zero_shot(task, img, ["red circle", "blue square"], 0.5)
    assert abs(sum(probs.values()) - 1) < 1e-4
    chart = app.bar_chart(probs, "title")
    assert chart.ndim == 3 and chart.shape[2] == 3
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(DataError, match=r"^x\.txt: unsupported file type"):
        app.read_image(tmp_path / "x.txt")
    zpath = tmp_path / "g.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for i, c in enumerate([(200, 0, 0), (0, 200, 0), (0, 0, 200)]):
            buf = io.BytesIO()
            Image.new("RGB", (24, 24), c).save(buf, format="PNG")
            zf.writestr(f"img{i}.png", buf.getvalue())
        zf.writestr("broken.jpg", b"junk")
    images, names, skipped = app.read_zip_gallery(zpath)
    assert len(images) == 3 and names == ["img0.png", "img1.png", "img2.png"] and skipped == 1
    hits = app.search(task, "a red square", images, names, k=2)
    assert len(hits) == 2 and isinstance(hits[0][0], np.ndarray)
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable zip"):
        app.read_zip_gallery(tmp_path / "bad.zip")


def test_load_test_calls_check_their_own_answers(smoke_run: Path, tmp_path: Path) -> None:
    """The hub load test's calls run through the endpoint functions the page serves: each check accepts
    its own answer (its upload's name echoed) and rejects the others' and an error; both endpoints answer."""
    from pretrainlab.core.testing import check_load_test_calls

    app = _app()
    calls = app.load_test_calls(tmp_path)
    assert {c[0] for c in calls} == {"clip_classify"} and len(calls) >= 3
    check_load_test_calls(calls, {"clip_classify": lambda f, t, w: app.classify(f, t, w, ckpt=smoke_run)}, tmp_path)
    status, grid = app.find("a red circle", None, 3, ckpt=smoke_run)
    assert status.startswith("top 3 of generated retrieval benchmark") and len(grid) == 3


@pytest.mark.e2e
def test_demo_in_browser(gradio_page, smoke_run: Path, tmp_path: Path) -> None:
    app = _app()
    page, _ = gradio_page(app.build_demo(ckpt=smoke_run))
    # upload a sample, classify, read the result on the page
    good = _png(tmp_path / "red.png")
    upload(page, good, "#clip-image")
    page.locator("#clip-classify").click()
    page.locator("#clip-status").get_by_text("top:").wait_for(timeout=60_000)
    assert "checkpoint" in page.locator("#clip-status").inner_text()
    # a bad upload (a corrupt zip gallery) shows an error ...
    page.get_by_role("tab", name="Search").click()
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"this is not a zip")
    upload(page, bad, "#clip-zip")
    page.locator("#clip-search").click()
    page.get_by_text("not a readable zip").first.wait_for(timeout=60_000)
    # ... and the app keeps serving
    page.get_by_role("tab", name="Zero-shot").click()
    page.locator("#clip-labels textarea").fill("alpha one, alpha two")
    page.locator("#clip-classify").click()
    page.locator("#clip-status").get_by_text("alpha").wait_for(timeout=60_000)
