"""Paired statistics (core.stats), the reproduction harness (core.results.Table) and the README
tables generated from committed results."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy import stats as sps

from pretrainlab.core import results as R
from pretrainlab.core import stats as S


def test_paired_interval_matches_scipy() -> None:
    a = [0.61, 0.58, 0.66, 0.60, 0.63]
    b = [0.55, 0.57, 0.59, 0.56, 0.60]
    iv = S.paired_interval(a, b)
    d = [x - y for x, y in zip(a, b)]
    lo, hi = sps.t.interval(0.95, len(d) - 1, loc=sum(d) / len(d), scale=sps.sem(d))
    assert iv.effect == pytest.approx(sum(d) / 5) and iv.lo == pytest.approx(lo) and iv.hi == pytest.approx(hi)
    assert iv.n == 5 and iv.half_width == pytest.approx((hi - lo) / 2)
    # lower is better: the effect is sign-flipped so that positive favours a
    iv2 = S.paired_interval([1.0, 2.0, 3.0], [2.0, 2.5, 4.0], better="lower")
    assert iv2.effect == pytest.approx((1.0 + 0.5 + 1.0) / 3)


def test_means_alone_never_decide() -> None:
    # lidar's old case: means 8.46 vs 8.36 with a large spread -> inconclusive, not "holds"
    a = [3.9, 13.1, 8.4]
    b = [8.2, 4.0, 12.9]
    iv = S.paired_interval(a, b)
    assert sum(a) / 3 > sum(b) / 3 and S.pairwise_verdict(iv) == S.INCONCLUSIVE
    assert S.pairwise_verdict(S.paired_interval([2, 3, 4, 3], [1, 1, 2, 1])) == S.HOLDS
    assert S.pairwise_verdict(S.paired_interval([1, 1, 2, 1], [2, 3, 4, 3])) == S.CONTRADICTED
    # margin: a beats b, but not by 3
    assert S.pairwise_verdict(S.paired_interval([2, 3, 4, 3], [1, 1, 2, 1]), margin=3.0) == S.CONTRADICTED
    assert S.pairwise_verdict(S.paired_interval([2.0], [1.0])) == S.INCONCLUSIVE  # one seed: no interval


def test_equivalence_rules() -> None:
    close = S.paired_interval([20.1, 20.3, 19.9, 20.2, 20.0], [20.0, 20.1, 20.0, 20.3, 20.1])
    assert S.equivalence_verdict(close, 1.0) == S.HOLDS
    far = S.paired_interval([17.0, 16.8, 17.3, 17.1, 16.9], [20.0, 20.1, 20.0, 20.3, 20.1])
    assert S.equivalence_verdict(far, 1.0) == S.CONTRADICTED
    noisy = S.paired_interval([22.3, 20.0, 15.9], [20.0, 20.0, 20.0])  # isp's old per-seed gaps
    assert S.equivalence_verdict(noisy, 1.0) == S.INCONCLUSIVE


def test_seeds_for_half_width() -> None:
    n = S.seeds_for_half_width(6.9, 2.0)
    # the fewest seeds whose t interval is that narrow: n works, n - 1 does not
    assert S.t_quantile(0.975, n - 1) * 6.9 / math.sqrt(n) <= 2.0 < S.t_quantile(0.975, n - 2) * 6.9 / math.sqrt(n - 1)
    assert n == 49
    assert S.seeds_for_half_width(0.0, 1.0) == 2  # no spread: the fewest seeds an interval needs
    assert S.seeds_for_half_width(1.0, 1.0, confidence=0.99) > S.seeds_for_half_width(1.0, 1.0)
    with pytest.raises(ValueError):
        S.seeds_for_half_width(1.0, 0.0)


def test_holm_levels() -> None:
    # m = 3: the smallest p gets alpha / 3, then alpha / 2, then alpha
    assert S.holm_levels([0.001, 0.2, 0.0001]) == pytest.approx([1 - 0.05 / 2, 1 - 0.05, 1 - 0.05 / 3])
    # Holm stops at the first claim that is not decisive: later ones keep its level
    assert S.holm_levels([0.0001, 0.02, 0.021]) == pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 2, 1 - 0.05 / 2])
    lv = S.holm_levels([0.0001, 0.0002, 0.001])
    assert lv == pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 2, 1 - 0.05])


def _table(tmp_path: Path, values: dict[str, list[float]], claims: list[R.Claim], **kw) -> R.Table:  # type: ignore[no-untyped-def]
    calls: list[tuple[str, int]] = []

    def run(row: R.Row, seed: int, ctx: R.Context) -> dict[str, float]:
        calls.append((row.name, seed))
        t.resumed.append(ctx.resumed)  # type: ignore[attr-defined]
        return {"acc": values[row.name][seed], "loss": -values[row.name][seed]}

    t = R.Table(domain="toy", paper="p", rows=[R.Row(n, seeds=kw.pop(f"seeds_{n}", None)) for n in values], run=run,
                claims=claims, modules=["pretrainlab.core.stats"], **kw)
    t.calls = calls  # type: ignore[attr-defined]
    t.resumed = []  # type: ignore[attr-defined]
    return t


def test_table_runs_cells_verdicts_and_resume(tmp_path: Path) -> None:
    vals = {"base": [0.50, 0.52, 0.49, 0.51, 0.50], "ours": [0.60, 0.61, 0.57, 0.63, 0.59],
            "other": [0.51, 0.55, 0.47, 0.53, 0.49]}
    claims = [R.Claim("ours beats base", a="ours", b="base", metric="acc", headline=True),
              R.Claim("ours has lower loss", a="ours", b="base", metric="loss", better="lower"),
              R.Claim("other matches base within 0.1", a="other", b="base", metric="acc", kind="equivalence",
                      delta=0.1),
              R.Claim("base beats ours (it does not)", a="base", b="ours", metric=["acc", "acc"])]
    t = _table(tmp_path, vals, claims, seeds_other=3)
    path = t.reproduce("tiny", tmp_path / "out", progress=False)
    res = json.loads(path.read_text())
    R.validate(res)
    assert res["seeds"] == [0, 1, 2, 3, 4]
    other = next(r for r in res["rows"] if r["name"] == "other")
    assert other["seeds"] == [0, 1, 2] and other["metrics"]["acc"]["values"] == vals["other"][:3]
    verdicts = [c["verdict"] for c in res["claims"]]
    assert verdicts == ["holds", "holds", "holds", "contradicted"]
    assert verdicts == R.recompute_verdicts(res)
    assert res["claims"][2]["n"] == 3 and res["claims"][0]["n"] == 5
    assert res["headline"] == "ours beats base" and res["cpu_time_s"] >= 0
    assert len(t.calls) == 13  # type: ignore[attr-defined]
    md = (tmp_path / "out" / "results.md").read_text()
    assert "**holds** (headline): ours beats base" in md and "smallest effect this run could detect" in md
    # an interrupted run resumes: only the missing cells are computed
    (tmp_path / "out" / "cells" / "complete").unlink()
    (tmp_path / "out" / "cells" / "ours" / "seed4.json").unlink()
    t.calls.clear()  # type: ignore[attr-defined]
    t.reproduce("tiny", tmp_path / "out", progress=False)
    assert t.calls == [("ours", 4)]  # type: ignore[attr-defined]
    assert t.resumed[-1] is True and not any(t.resumed[:-1])  # type: ignore[attr-defined]
    # a finished table started again is measured afresh, and setup is told so (nothing of the old run is reused)
    t.calls.clear()  # type: ignore[attr-defined]
    t.reproduce("tiny", tmp_path / "out", progress=False)
    assert len(t.calls) == 13 and t.resumed[-1] is False  # type: ignore[attr-defined]


def test_inconclusive_is_never_printed_as_holds(tmp_path: Path) -> None:
    vals = {"base": [0.5, 0.6, 0.4], "ours": [0.55, 0.5, 0.52]}
    t = _table(tmp_path, vals, [R.Claim("ours beats base", a="ours", b="base", metric="acc", headline=True)])
    res = json.loads(t.reproduce("smoke", tmp_path / "o", seeds=[0, 1, 2], progress=False).read_text())
    assert res["claims"][0]["verdict"] == "inconclusive" and res["claims"][0]["holds"] is False
    text = (tmp_path / "o" / "results.md").read_text()
    claims = [ln for ln in text.splitlines() if ln.startswith("- **")]
    assert len(claims) == 1 and "holds" not in claims[0] and claims[0].startswith("- **inconclusive**")


def test_holm_family_in_a_table(tmp_path: Path) -> None:
    base = [0.50, 0.51, 0.49, 0.50, 0.52]
    vals = {"ALL": base, "h2": [x + 0.02 + 0.01 * (i % 2) for i, x in enumerate(base)],
            "h6": [x + 0.001 * (-1) ** i for i, x in enumerate(base)]}
    claims = [R.Claim(f"{n} beats ALL", a=n, b="ALL", metric="acc", family="reductions") for n in ("h2", "h6")]
    res = json.loads(_table(tmp_path, vals, claims).reproduce("tiny", tmp_path / "o", progress=False).read_text())
    c2, c6 = res["claims"]
    assert c2["confidence"] == pytest.approx(1 - 0.05 / 2) and c2["verdict"] == "holds"
    assert c6["verdict"] == "inconclusive" and "Holm" in c6["evidence"]
    assert [c["verdict"] for c in res["claims"]] == R.recompute_verdicts(res)


def test_table_declaration_errors() -> None:
    run = lambda r, s, c: {}
    with pytest.raises(ValueError, match="unknown row 'nope'"):
        R.Table("d", "p", [R.Row("a")], run, claims=[R.Claim("c", a="a", b="nope", metric="m")])
    with pytest.raises(ValueError, match="2 headline claims"):
        R.Table("d", "p", [R.Row("a"), R.Row("b")], run,
                claims=[R.Claim("c", a="a", b="b", metric="m", headline=True)] * 2)
    with pytest.raises(ValueError, match="delta > 0"):
        R.Claim("c", a="a", b="b", metric="m", kind="equivalence")


def test_nan_metrics_become_null_and_json_stays_valid(tmp_path: Path) -> None:
    vals = {"base": [0.5, math.nan, 0.5], "ours": [0.6, 0.7, 0.65]}
    t = _table(tmp_path, vals, [R.Claim("ours beats base", a="ours", b="base", metric="acc")])
    text = t.reproduce("smoke", tmp_path / "o", seeds=[0, 1, 2], progress=False).read_text()
    assert "NaN" not in text
    res = json.loads(text)
    assert res["rows"][0]["metrics"]["acc"]["values"][1] is None
    assert res["claims"][0]["n"] == 2  # the seed without a value is left out of the pairing


def test_readme_block_is_generated_and_checked(tmp_path: Path) -> None:
    vals = {"base": [0.50, 0.52, 0.49, 0.51, 0.50], "ours": [0.60, 0.61, 0.57, 0.63, 0.59]}
    t = _table(tmp_path, vals, [R.Claim("ours beats base", a="ours", b="base", metric="acc", headline=True)])
    path = t.reproduce("tiny", tmp_path / "run", progress=False)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    readme = pkg / "README.md"
    readme.write_text("# toy\n\n<!-- results:tiny:begin -->\nSTALE-TABLE\n<!-- results:tiny:end -->\n\nmore text\n")
    dest, _ = R.publish(path, pkg, readme)
    text = readme.read_text()
    assert text.startswith("# toy") and text.endswith("more text\n") and "STALE-TABLE" not in text
    assert "| ours | 5 | 0.600 ± 0.022 |" in text and "**holds** (headline)" in text
    assert R.render_readme(text, json.loads(dest.read_text())) == text  # idempotent: the check passes
    assert "![" not in (pkg / "results" / "tiny" / "results.md").read_text()  # no links to uncommitted plots
    with pytest.raises(ValueError, match="markers"):
        R.render_readme("# no markers\n", json.loads(dest.read_text()))


def test_a_failed_start_leaves_no_folder(tmp_path: Path) -> None:
    def boom(row: R.Row, seed: int, ctx: R.Context) -> dict[str, float]:
        ctx.cell_dir(row, seed).mkdir(parents=True)
        raise ValueError("no data")

    t = R.Table("toy", "p", [R.Row("a")], boom, modules=["pretrainlab.core.stats"])
    with pytest.raises(ValueError):
        t.reproduce("smoke", tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "reproduce.log").write_text("log")
    with pytest.raises(ValueError):
        t.reproduce("smoke", tmp_path / "old", progress=False)
    assert [p.name for p in (tmp_path / "old").iterdir()] == ["reproduce.log"]
