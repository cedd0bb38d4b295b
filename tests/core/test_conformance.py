"""The domain contract, checked for every domain and the template (the built-in SimCLR recipe).

Like timm testing every model and litgpt every config: each domain has the standard files and
``api`` names, the standard verbs with ``--help`` examples, recipes that load and validate in every
profile, a table with exactly one headline claim over >= 5 seeds at tiny, committed tiny results
whose verdicts recompute from their values and whose README block is generated from them, a demo
with ``build_demo``, and a smoke ``data -> pretrain -> finetune -> eval`` round trip.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from pretrainlab.core import results as R
from pretrainlab.core.cli import build_parser, domains, main
from pretrainlab.core.domain import API_NAMES, STANDARD_VERBS, DomainSpec

ROOT = Path(__file__).resolve().parents[2]
FILES = ("api.py", "config.py", "formats.py", "synthetic.py", "reproduce.py", "bench.py", "domain.py", "README.md")
PROFILES = ("smoke", "tiny", "full")
# Domains whose tiny headline stayed inconclusive after the designs the 15-CPU-minute budget allows; each
# README says so in bold ("headline is therefore not decided") with the designs tried and their intervals.
# Listed by name so that a new undecided headline fails here until someone writes that account.
UNDECIDED = {"lidar": "four designs (5 / 14 / 8 / 18 seeds) all inconclusive; the README gives each interval",
             "clip": "one CLIP-rocket run in five trains poorly at the tiny budget; the interval spans zero"}


def _names() -> list[str]:
    return sorted(domains())


def _spec(name: str) -> DomainSpec:
    pkg = "pretrainlab.core.builtin" if name == "simclr" else f"pretrainlab.{name}"
    spec = importlib.import_module(f"{pkg}.api").SPEC
    assert isinstance(spec, DomainSpec) and spec.name == name and spec.package == pkg
    return spec


@pytest.mark.parametrize("name", _names())
def test_files_and_api(name: str) -> None:
    spec = _spec(name)
    missing = [f for f in FILES if not (spec.package_dir / f).exists()]
    assert not missing, f"{name}: missing {missing}"
    api = importlib.import_module(spec.api)
    absent = [n for n in API_NAMES if not callable(getattr(api, n, None)) and n != "SPEC"]
    assert not absent, f"{name}.api lacks {absent}"
    assert api.load.__self__ is spec and api.synthetic_data.__self__ is spec  # derived from the spec
    assert callable(importlib.import_module(f"{spec.package}.bench").bench)
    assert (ROOT / "apps" / name / "app.py").exists()
    app_src = (ROOT / "apps" / name / "app.py").read_text()
    assert "def build_demo(" in app_src


@pytest.mark.parametrize("name", _names())
def test_standard_verbs_have_examples(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    verbs = {v.name: v for v in domains()[name].verbs}
    assert set(STANDARD_VERBS) <= set(verbs), f"{name} lacks {set(STANDARD_VERBS) - set(verbs)}"
    build_parser()
    for v in verbs:
        with pytest.raises(SystemExit) as e:
            main([name, v, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert "example:" in out and f"pretrainlab {name} " in out, f"{name} {v} --help has no example"


@pytest.mark.parametrize("name", _names())
def test_every_recipe_and_profile_loads(name: str) -> None:
    spec = _spec(name)
    recipes = spec.recipe_names()
    assert spec.default_recipe in recipes
    for recipe in recipes:
        if recipe.startswith("_"):
            continue
        for profile in PROFILES:
            cfg = spec.load(recipe, profile)
            assert spec.data_profile(cfg) in PROFILES, f"{name}/{recipe}/{profile}: data.profile"


@pytest.mark.parametrize("name", _names())
def test_table_declares_one_headline_over_five_seeds(name: str) -> None:
    spec = _spec(name)
    table = importlib.import_module(f"{spec.package}.reproduce").TABLE
    assert isinstance(table, R.Table) and table.domain == name
    head = table.headline()
    assert head is not None, f"{name}: no headline claim"
    tiny = table.seeds_for("tiny")
    for row in table.rows:
        if row.name in (head.a, head.b):
            assert len(table.row_seeds(row, tiny)) >= R.HEADLINE_MIN_SEEDS, f"{name}: headline row {row.name}"


@pytest.mark.parametrize("name", _names())
def test_committed_results_are_consistent_and_in_the_readme(name: str) -> None:
    spec = _spec(name)
    path = R.committed_results(spec.package_dir, "tiny") / "results.json"
    assert path.exists(), f"{name}: no committed tiny results ({path})"
    res = json.loads(path.read_text())
    R.validate(res)
    assert res["domain"] == name and res["profile"] == "tiny"
    assert [c["verdict"] for c in res["claims"]] == R.recompute_verdicts(res), f"{name}: verdicts do not recompute"
    head = R.headline_of(res)
    assert head is not None and head["n"] >= R.HEADLINE_MIN_SEEDS, f"{name}: headline over < 5 seeds"
    text = spec.readme.read_text()
    if name in UNDECIDED:
        assert head["verdict"] == "inconclusive", f"{name} decided its headline: take it out of UNDECIDED"
        assert "headline is therefore not decided" in text, f"{name}: the README must say why it is undecided"
    else:
        assert head["verdict"] in ("holds", "contradicted"), f"{name}: the tiny headline is {head['verdict']}"
    assert R.render_readme(text, res) == text, f"{name}: README table differs from {path}; run `pretrainlab {name} report`"
    assert "NaN" not in path.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", _names())
def test_smoke_round_trip(name: str, tmp_path: Path) -> None:
    data, run, ft = tmp_path / "data", tmp_path / "run", tmp_path / "ft"
    assert main([name, "data", "--out", str(data), "--profile", "smoke"]) == 0
    assert (data / "manifest.json").exists()
    assert main([name, "pretrain", "--profile", "smoke", "--data", str(data), "--out", str(run),
                 "train.progress=false"]) == 0
    assert main([name, "finetune", "--profile", "smoke", "--data", str(data), "--init", str(run), "--out", str(ft),
                 "train.progress=false"]) == 0
    assert main([name, "eval", "--ckpt", str(ft), "--data", str(data), "--out", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics and all(isinstance(v, (int, float, type(None), str, list, dict)) for v in metrics.values())
