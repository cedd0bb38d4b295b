"""A regular (non-editable) install works: the wheel carries the recipes, the committed results and
the Gradio apps, so ``pretrainlab <d> demo`` finds its app outside the source tree."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_pip_install_into_a_fresh_venv_ships_apps(tmp_path: Path) -> None:
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # the fresh venv borrows the heavy dependencies (torch, gradio...) from this one, not its editable path
    Path(site, "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    p = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", str(ROOT)], check=False, capture_output=True, text=True, timeout=600,
                       cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    code = ("import pretrainlab.core.demo as d, pretrainlab.core as c; "
            "from pretrainlab.core.cli import domains; from pretrainlab.core.builtin.api import SPEC; "
            "m = d.load_app_module('simclr'); hub = d.load_app_module('hub'); "
            "print(c.__file__); print(d.apps_dir()); print(callable(m.build_demo) and callable(hub.build_demo)); "
            "print(sorted(domains())); print(SPEC.recipe_names()); "
            "print((SPEC.package_dir / 'results' / 'tiny' / 'results.json').exists())")
    out = subprocess.run([str(py), "-c", code], check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith(site) and not lines[0].startswith(str(ROOT)), lines[0]
    assert lines[1] == str(Path(site) / "pretrainlab" / "apps")
    assert lines[2] == "True"
    assert "simclr" in lines[3] and lines[4] == "['simclr']" and lines[5] == "True"
