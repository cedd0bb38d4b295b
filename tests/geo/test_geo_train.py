"""Training: loss goes down, one trainer step per recipe, every recipe x profile loads, the CLI verbs
in-process, and the smoke reproduction writes a valid results.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pretrainlab.core.cli import main
from pretrainlab.core.config import PROFILES
from pretrainlab.geo.api import SPEC, load

RECIPES = SPEC.recipes

QUIET = ["train.progress=false", "contrastive.train.progress=false", "train.tensorboard=false",
         "contrastive.train.tensorboard=false"]


@pytest.mark.parametrize("recipe", sorted(p.stem for p in RECIPES.glob("*.yaml")))
@pytest.mark.parametrize("profile", PROFILES)
def test_every_recipe_loads(recipe: str, profile: str) -> None:
    from pretrainlab.core.config import recipe_description

    cfg = load(recipe, profile, [])
    assert recipe_description(RECIPES / f"{recipe}.yaml") and cfg.loss.tau_km > 0 and cfg.train.max_steps > 0


def _batch(data, n: int = 32) -> dict[str, torch.Tensor]:
    from pretrainlab.geo.pipeline import GeocellDataset

    ds = GeocellDataset(data.train, data.labels, 32)
    items = [ds[i] for i in range(n)]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


@pytest.mark.parametrize("smoothing,aux", [(False, False), (True, True)])
def test_geocell_loss_goes_down(geo_data: Path, smoothing: bool, aux: bool) -> None:
    from pretrainlab.geo.pipeline import build_task, load_data

    cfg = load("pigeon", "smoke", [f"loss.haversine_smoothing={smoothing}", f"aux.enabled={aux}",
                                   "model.freeze_backbone=false"])
    data = load_data(cfg, geo_data)
    torch.manual_seed(0)
    cfg.n_cells = len(data.cells)
    task = build_task(cfg, data)
    batch = _batch(data)
    opt = torch.optim.AdamW([p for p in task.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(25):
        loss = task(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]


def test_contrastive_loss_goes_down(geo_data: Path) -> None:
    from pretrainlab.geo.contrastive_pretraining import ContrastivePretrainTask
    from pretrainlab.geo.pipeline import CaptionDataset, load_data

    cfg = load("pigeon", "smoke", [])
    data = load_data(cfg, geo_data)
    torch.manual_seed(0)
    task = ContrastivePretrainTask(cfg)
    ds = CaptionDataset(data.train, task.tokenizer, 32)
    items = [ds[i] for i in range(16)]
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    opt = torch.optim.AdamW(task.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        loss = task(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("recipe", sorted(p.stem for p in RECIPES.glob("*.yaml")))
def test_one_trainer_step_per_recipe(recipe: str, geo_data: Path, tmp_path: Path) -> None:
    from pretrainlab.geo.pipeline import run_recipe

    cfg = load(recipe, "smoke", QUIET + ["train.max_steps=1", "contrastive.train.max_steps=1"])
    m = run_recipe(cfg, geo_data, tmp_path / recipe)
    assert (tmp_path / recipe / "checkpoints" / "step_000001" / "model.safetensors").exists()
    assert (tmp_path / recipe / "geocells.geojson").exists()
    assert (tmp_path / recipe / "pretrain").exists() == cfg.contrastive.enabled
    assert (tmp_path / recipe / "refinement" / "index.safetensors").exists() == cfg.refine.enabled
    assert not list((tmp_path / recipe).glob("geo-embed-*")) and not (tmp_path / recipe / ".refinement.tmp").exists()
    assert 0 <= m["acc@2500km"] <= 100 and m["median_km"] >= 0


def test_cli_data_cells_finetune_eval_locate(geo_data: Path, geo_run: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["geo", "data", "--out", str(tmp_path / "w"), "--profile", "smoke", "--shards"]) == 0
    assert (tmp_path / "w" / "train.csv").exists() and list((tmp_path / "w" / "shards").glob("train-*.tar"))
    assert main(["geo", "cells", "--points", str(geo_data / "train.csv"), "--out", str(tmp_path / "c.geojson"),
                 "--min-size", "10", "--max-size", "40", "geocells.optics_rounds=[[8,0.05]]"]) == 0
    doc = json.loads((tmp_path / "c.geojson").read_text())
    assert doc["features"] and "centroid_lat" in doc["features"][0]["properties"]
    capsys.readouterr()
    assert main(["geo", "locate", "--ckpt", str(geo_run), "--image",
                 str(geo_data / "images" / "test" / "test000000.jpg")]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") >= 6 and "guess:" in out
    assert main(["geo", "eval", "--ckpt", str(geo_run), "--data", str(geo_data), "--out", str(tmp_path / "m.json")]) == 0
    assert "geoscore" in json.loads((tmp_path / "m.json").read_text())
    assert main(["geo", "finetune", "--init", str(geo_run / "pretrain"), "--data", str(geo_data), "--profile", "smoke",
                 "--out", str(tmp_path / "ft"), *QUIET, "train.max_steps=1"]) == 0
    assert (tmp_path / "ft" / "metrics.json").exists() and not (tmp_path / "ft" / "pretrain").exists()
    # bad inputs reach the user as one clear line, exit code 2
    assert main(["geo", "locate", "--ckpt", str(geo_run), "--image", str(tmp_path / "none.jpg")]) == 2
    assert "none.jpg: image file not found" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("lat,lon\n100,0\n")
    assert main(["geo", "cells", "--points", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "x.geojson")]) == 2
    assert "bad.csv:2: latitude 100.0 out of range" in capsys.readouterr().err
    assert not (tmp_path / "x.geojson").exists()
    assert main(["geo", "locate", "--ckpt", str(geo_run / "pretrain"), "--image",
                 str(geo_data / "images" / "test" / "test000000.jpg")]) == 2
    assert "not a geolocation checkpoint" in capsys.readouterr().err


def test_cli_bench_cpu(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["geo", "bench", "--device", "cpu", "--steps", "1", "--warmup", "0", "--batch-size", "2",
                 "--model", "test-vit-tiny", "--image-size", "32", "--cells-points", "3000", "--index-images", "2000",
                 "--out", str(out)]) == 0
    res = {r["name"].split("-")[0] if r["name"].startswith("geocells") else r["name"]: r
           for r in json.loads(out.read_text())}
    assert res["pigeon-geocells-test-vit-tiny"]["samples_per_s"] > 0 and res["inference_with_refinement"]["images_per_s"] > 0
    assert res["inference_with_refinement"]["index_images"] == 2000
    assert res["geocells"]["points"] == 3000 and res["geocells"]["assign_wall_s"] > 0


def test_reproduce_smoke(geo_data: Path, tmp_path: Path) -> None:
    from pretrainlab.core.results import validate

    assert main(["geo", "reproduce", "--profile", "smoke", "--data", str(geo_data), "--out", str(tmp_path / "r"),
                 "--seeds", "0", "1", "2"]) == 0
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    validate(res)
    assert next(r["name"] for r in res["rows"]) == "CE on geocells" and len(res["rows"]) == 5
    assert len(res["claims"]) == 5 and res["seeds"] == [0, 1, 2]
    heads = [c for c in res["claims"] if c["headline"]]
    assert len(heads) == 1 and heads[0]["a"].startswith("PIGEON") and heads[0]["b"] == "CE on geocells"
    assert heads[0]["metric"] == "geoscore" and heads[0]["n"] == 3 and heads[0]["verdict"] in ("holds", "inconclusive", "contradicted")
    assert all(len(r["metrics"]["acc@25km"]["values"]) == 3 for r in res["rows"])
    assert (tmp_path / "r" / "results.md").exists() and (tmp_path / "r" / "geoscore.png").exists()
