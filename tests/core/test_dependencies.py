"""Dependencies as the code uses them: each part imports only what its extra declares, and nothing is
declared that nothing imports.

Parts: the core (core dependencies; ``gradio`` only in ``core.demo`` / ``core.testing`` = demo extra,
``playwright`` in ``core.testing`` = dev, ``open_clip`` in ``core.openclip`` = the clip / geo extras),
each domain package (core + its extra), each app (core + its extra + demo), each domain's tests (core +
extra + demo + dev). Imports inside ``try: ... except ImportError`` (optional accelerators, parity
tools) and ``pytest.importorskip`` are optional and not counted.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DOMAINS = sorted(p.name for p in (ROOT / "domains" / "pretrainlab").iterdir() if (p / "__init__.py").exists())
TOOLS = {"pytest", "pytest-timeout", "pytest-xdist", "ruff", "hatchling"}  # used as programs, not imported
# core modules that use an extra's package (lazily, only when that feature is used)
CORE_EXTRA_USERS = {"gradio": ("demo",), "playwright": ("dev",), "open-clip-torch": ("clip", "geo"),
                    # core.reduction: the reference's own dHash (parity path) and the SSIM extension, used by ct
                    "imagehash": ("ct",), "scikit-image": ("ct",)}
# packages used without an import of their own name
INDIRECT = {"tensorboard": "torch.utils.tensorboard (the trainer's optional TensorBoard logging)"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def _deps(extra: str | None) -> set[str]:
    if extra is None:
        return {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    out = set()
    for r in PYPROJECT["project"]["optional-dependencies"][extra]:
        if r.startswith("pretrainlab["):
            for e in r[len("pretrainlab["):-1].split(","):
                out |= _deps(e)
        else:
            out.add(_name(r))
    return out


def _optional_nodes(tree: ast.AST) -> set[int]:
    """ids of import nodes inside ``try`` blocks that catch ImportError / ModuleNotFoundError."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            names = set()
            for h in node.handlers:
                for t in ([h.type] if not isinstance(h.type, ast.Tuple) else h.type.elts) if h.type else []:
                    names.add(getattr(t, "id", getattr(t, "attr", "")))
            if names & {"ImportError", "ModuleNotFoundError"}:
                for sub in node.body:
                    ids |= {id(n) for n in ast.walk(sub)}
    return ids


def _imports(paths: list[Path], with_optional: bool = False) -> dict[str, list[str]]:
    """top-level module -> files importing it (stdlib, pretrainlab and optional imports left out;
    ``tests/<d>/data/`` holds fixture-provenance scripts run elsewhere and is skipped)."""
    found: dict[str, list[str]] = {}
    for base in paths:
        for p in sorted(base.rglob("*.py")) if base.is_dir() else [base]:
            rel = p.relative_to(ROOT).parts
            if rel[0] == "tests" and "data" in rel[2:-1]:
                continue
            tree = ast.parse(p.read_text(), str(p))
            optional = set() if with_optional else _optional_nodes(tree)
            for n in ast.walk(tree):
                if id(n) in optional:
                    continue
                mods = []
                if isinstance(n, ast.Import):
                    mods = [a.name.split(".")[0] for a in n.names]
                elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
                    mods = [n.module.split(".")[0]]
                elif isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "importorskip":
                    # optional for the per-part checks; counted as a use when asked for everything
                    arg = n.args[0] if n.args else None
                    if with_optional and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        mods = [arg.value.split(".")[0]]
                for m in mods:
                    if m in sys.stdlib_module_names or m in ("pretrainlab", "__future__", "_workers", "conftest"):
                        continue
                    found.setdefault(m, []).append(str(p.relative_to(ROOT)))
    return found


DISTS = {k: [d.lower().replace("_", "-") for d in v] for k, v in md.packages_distributions().items()}


def _dists(mods: dict[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m, files in mods.items():
        for d in DISTS.get(m, [f"<not installed: {m}>"]):
            out.setdefault(d, []).extend(files)
    return out


def _check(used: dict[str, list[str]], allowed: set[str], what: str) -> None:
    bad = {d: sorted(set(f))[:3] for d, f in used.items() if d not in allowed}
    assert not bad, f"{what} imports packages its extras do not declare: {bad}"


def test_core_imports_only_core_dependencies() -> None:
    used = _dists(_imports([ROOT / "shared" / "pretrainlab" / "core"]))
    allowed = _deps(None) | set(CORE_EXTRA_USERS)
    _check(used, allowed, "the core")
    for d, extras in CORE_EXTRA_USERS.items():
        for e in extras:
            assert d in _deps(e), f"core uses {d} for the {e} extra, which does not declare it"


@pytest.mark.parametrize("domain", DOMAINS)
def test_each_part_imports_what_its_extra_declares(domain: str) -> None:
    core = _deps(None)
    _check(_dists(_imports([ROOT / "domains" / "pretrainlab" / domain])), core | _deps(domain), f"pretrainlab.{domain}")
    if (ROOT / "apps" / domain).exists():
        _check(_dists(_imports([ROOT / "apps" / domain])), core | _deps(domain) | _deps("demo"), f"apps/{domain}")
    if (ROOT / "tests" / domain).exists():
        _check(_dists(_imports([ROOT / "tests" / domain])), core | _deps(domain) | _deps("demo") | _deps("dev"),
               f"tests/{domain}")


def test_nothing_is_declared_that_nothing_imports() -> None:
    everything = _dists(_imports([ROOT / "shared", ROOT / "domains", ROOT / "apps", ROOT / "tests", ROOT / "benchmarks",
                                  ROOT / "scripts"], with_optional=True))
    declared = _deps(None) | {d for e in PYPROJECT["project"]["optional-dependencies"] if e != "all" for d in _deps(e)}
    unused = sorted(d for d in declared - TOOLS - set(INDIRECT) if d not in everything)
    assert not unused, f"declared but imported nowhere: {unused}"
