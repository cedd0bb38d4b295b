"""The official KITTI evaluation: cell-by-cell parity with OpenPCDet's own numbers, and its rules one by one.

Fixture: ``data/kitti_eval`` (label / detection sets written for this test; expected numbers made by running
OpenPCDet's ``get_official_eval_result`` on them, see its README).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pretrainlab.core.cli import main
from pretrainlab.core.data import DataError
from pretrainlab.lidar import kitti_eval as K
from pretrainlab.lidar.formats import parse_kitti_annos, read_kitti_annos

FIX = Path(__file__).parent / "data" / "kitti_eval"
EXPECTED = json.loads((FIX / "expected.json").read_text())


def _annos(name: str) -> tuple[list, list]:
    ids = sorted(p.stem for p in (FIX / name / "label_2").glob("*.txt"))
    gt = [read_kitti_annos(FIX / name / "label_2" / f"{i}.txt") for i in ids]
    dt = [read_kitti_annos(FIX / name / "det" / f"{i}.txt", detections=True) for i in ids]
    return gt, dt


@pytest.mark.parametrize("name", ["edge", "random"])
def test_matches_openpcdet_cell_by_cell(name: str) -> None:
    gt, dt = _annos(name)
    ours = K.kitti_eval(gt, dt)
    ref = EXPECTED[name]
    cells = 0
    for c in ("Car", "Pedestrian", "Cyclist"):
        for m in ("bbox", "bev", "3d", "aos"):
            for lv in ("easy", "moderate", "hard"):
                assert ours[c][m][lv] == pytest.approx(ref[c][m][lv], abs=1e-3), (c, m, lv)
                cells += 1
    assert cells == 36
    # the fixture is not trivial: values spread between 0 and 100 and differ between the levels
    vals = [ref[c][m][lv] for c in ref for m in ref[c] for lv in ref[c][m]]
    assert 0 < max(vals) < 100 and len({round(v, 3) for v in vals}) > 10


def test_kitti_eval_verb_on_the_fixture(tmp_path: Path) -> None:
    out = tmp_path / "ap.json"
    assert main(["lidar", "kitti-eval", "--labels", str(FIX / "random" / "label_2"), "--detections",
                 str(FIX / "random" / "det"), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["Car"]["3d"]["moderate"] == pytest.approx(EXPECTED["random"]["Car"]["3d"]["moderate"], abs=1e-3)
    # --frames restricts the set (and changes the numbers)
    (tmp_path / "ids.txt").write_text("000001\n000002\n000004\n")
    assert main(["lidar", "kitti-eval", "--labels", str(FIX / "random" / "label_2"), "--detections",
                 str(FIX / "random" / "det"), "--frames", str(tmp_path / "ids.txt"), "--out", str(out)]) == 0
    sub = json.loads(out.read_text())
    gt, dt = _annos("random")
    assert sub == json.loads(json.dumps(K.kitti_eval([gt[i] for i in (1, 2, 4)], [dt[i] for i in (1, 2, 4)])))


def _line(name: str, bbox: tuple, trunc: float = 0.0, occ: int = 0, loc=(0.0, 1.65, 20.0), score: float | None = None,
          ry: float = 0.2) -> str:
    s = (f"{name} {trunc} {occ} 0.1 {' '.join(map(str, bbox))} 1.5 1.6 4.0 {loc[0]} {loc[1]} {loc[2]} {ry}")
    return s + (f" {score}" if score is not None else "")


def test_height_ignore_rule_is_strict_and_truncation_is_float64() -> None:
    gt = parse_kitti_annos("\n".join([
        _line("Car", (0, 100, 50, 140)),  # height exactly 40: ignored at easy (<= 40), valid at moderate
        _line("Car", (0, 100, 50, 125), loc=(5, 1.65, 20)),  # exactly 25: ignored at every level
        _line("Car", (0, 100, 50, 160), trunc=0.15, loc=(-5, 1.65, 20)),  # truncation exactly 0.15: easy
        _line("Van", (0, 100, 50, 160), loc=(10, 1.65, 20)),  # Van: ignored for Car, never a FN
    ]), "gt")
    for lvl, n_valid in ((0, 1), (1, 2), (2, 2)):
        n, ig, _idt, _dc = K.clean_data(gt, K.KittiAnnos.empty(), 0, lvl)
        assert n == n_valid
        assert ig[1] == 1 and ig[3] == 1
    n, ig, _, _ = K.clean_data(gt, K.KittiAnnos.empty(), 0, 0)
    assert list(ig) == [1, 1, 0, 1]


def test_small_detections_are_ignored_for_every_class_and_dontcare_only_counts_in_2d() -> None:
    gt = parse_kitti_annos("\n".join([_line("Car", (100, 100, 150, 160)), _line("DontCare", (500, 100, 600, 200))]), "g")
    dt = parse_kitti_annos("\n".join([
        _line("Pedestrian", (100, 100, 150, 120), score=0.9),  # 20 px tall: ignored for Car too
        _line("Car", (505, 105, 595, 195), loc=(30, 1.65, 40), score=0.8),  # inside the DontCare box
    ]), "d", detections=True)
    _, _, idt, dc = K.clean_data(gt, dt, 0, 1)
    assert list(idt) == [1, 0] and dc.shape == (1, 4)
    res = K.kitti_eval([gt], [dt], ("Car",))
    # the Car box is absorbed by the small detection (not a TP, not a FN): no threshold, AP 0 in 3D;
    # the DontCare detection is no FP in the 2D metric only
    assert res["Car"]["3d"]["moderate"] == 0.0
    assert res["Car"]["bbox"]["moderate"] == 0.0


def test_get_thresholds_keeps_the_reference_float_steps() -> None:
    th = K.get_thresholds(np.linspace(0.99, 0.01, 50), 50)
    assert len(th) == 41 and th[0] == pytest.approx(0.99)
    # few true positives over many ground truths: a score whose recall (2/100) lies nearer the previous
    # step (1/100) than the next sample point (1/40) is skipped; the last score is always kept
    assert list(K.get_thresholds(np.array([0.3, 0.9, 0.5]), 100)) == [0.9, 0.3]


def test_every_class_needs_a_devkit_name() -> None:
    with pytest.raises(ValueError, match="Tram"):
        K.kitti_eval([K.KittiAnnos.empty()], [K.KittiAnnos.empty()], ("Tram",))


def test_folders_refuse_missing_files(tmp_path: Path) -> None:
    (tmp_path / "lab").mkdir()
    (tmp_path / "det").mkdir()
    (tmp_path / "lab" / "000000.txt").write_text(_line("Car", (0, 100, 50, 160)) + "\n")
    with pytest.raises(DataError, match="detection file missing"):
        K.evaluate_folders(tmp_path / "lab", tmp_path / "det")
    (tmp_path / "det" / "000000.txt").write_text("")  # an empty file: no detection
    assert K.evaluate_folders(tmp_path / "lab", tmp_path / "det")["Car"]["3d"]["easy"] == 0.0
    (tmp_path / "det" / "000000.txt").write_text(_line("Car", (0, 100, 50, 160)) + "\n")  # 15 fields
    with pytest.raises(DataError, match="line 1: 15 fields, expected 16"):
        K.evaluate_folders(tmp_path / "lab", tmp_path / "det")
