"""Honest dependencies between modules: no import cycles, the core never imports a domain, a
domain never imports another, nothing imports a domain's CLI file (domain.py), and reproduce.py,
bench.py and the apps use only their domain's public ``api`` (plus the core)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "shared", ROOT / "domains"]


def _modules() -> dict[str, Path]:
    mods = {}
    for base in SOURCES:
        for p in sorted((base / "pretrainlab").rglob("*.py")):
            rel = p.relative_to(base).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = p
    return mods


MODULES = _modules()


def _imports(path: Path, name: str) -> set[str]:
    """Every pretrainlab module ``path`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(), str(path))
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("pretrainlab."))
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([mod] if mod else []))
            if not mod.startswith("pretrainlab"):
                continue
            for a in node.names:
                sub = f"{mod}.{a.name}"
                out.add(sub if sub in MODULES else mod)
    return {m for m in out if m in MODULES and m != name}


class _Graph(dict):  # type: ignore[type-arg]
    """The import graph, parsed on first use (so a file that does not parse fails a test, not collection)."""

    def _load(self) -> None:
        if not super().__len__():
            self.update({m: _imports(p, m) for m, p in MODULES.items()})

    def __getitem__(self, k: str) -> set[str]:
        self._load()
        return super().__getitem__(k)

    def items(self):  # type: ignore[no-untyped-def]
        self._load()
        return super().items()

    def __iter__(self):  # type: ignore[no-untyped-def]
        self._load()
        return super().__iter__()

    def __contains__(self, k: object) -> bool:
        self._load()
        return super().__contains__(k)


GRAPH = _Graph()


def _domain_of(mod: str) -> str:
    parts = mod.split(".")
    return "core" if parts[1] == "core" and (len(parts) < 3 or parts[2] != "builtin") else \
        ("simclr" if parts[1] == "core" else parts[1])


def test_no_import_cycles() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            # a package's __init__ importing its own submodules is not a cycle worth flagging
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            strong(v)
    assert not cycles, f"import cycles: {cycles}"


def test_core_and_domains_depend_in_one_direction() -> None:
    bad = []
    for m, deps in GRAPH.items():
        src = _domain_of(m)
        for d in deps:
            dst = _domain_of(d)
            if src == "core" and dst != "core":
                bad.append(f"{m} (core) imports {d}")
            elif src not in ("core", dst) and dst != "core":
                bad.append(f"{m} ({src}) imports {d} ({dst})")
    assert not bad, "\n".join(bad)


def test_nothing_imports_a_cli_file() -> None:
    bad = [f"{m} imports {d}" for m, deps in GRAPH.items() for d in deps
           if d.endswith(".domain") and _domain_of(d) != "core"]
    assert not bad, "\n".join(bad)


def _contract_packages() -> dict[str, str]:
    pk = {"simclr": "pretrainlab.core.builtin"}
    for d in sorted(p.name for p in (ROOT / "domains" / "pretrainlab").iterdir() if (p / "__init__.py").exists()):
        pk[d] = f"pretrainlab.{d}"
    return pk


@pytest.mark.parametrize("domain", sorted(_contract_packages()))
def test_reproduce_bench_and_app_use_only_the_api(domain: str) -> None:
    pkg = _contract_packages()[domain]
    api = f"{pkg}.api"
    bad = []
    for leaf in ("reproduce", "bench"):
        mod = f"{pkg}.{leaf}"
        if mod in GRAPH:
            bad += [f"{mod} imports {d}" for d in GRAPH[mod] if d.startswith(pkg + ".") and d != api]
    app = ROOT / "apps" / domain / "app.py"
    if app.exists():
        deps = _imports(app, f"app_{domain}") | {
            n.module for n in ast.walk(ast.parse(app.read_text())) if isinstance(n, ast.ImportFrom) and n.module
            and n.module.startswith(pkg + ".")}
        bad += [f"apps/{domain}/app.py imports {d}" for d in deps if d.startswith(pkg + ".") and d != api]
    assert not bad, "\n".join(sorted(bad))


def test_every_module_imports_alone() -> None:
    """Each module imported in a fresh module table (third-party imports stay cached)."""
    code = (
        "import importlib, sys, traceback\n"
        f"mods = {sorted(MODULES)!r}\n"
        "bad = []\n"
        "for m in mods:\n"
        "    for k in [k for k in sys.modules if k == 'pretrainlab' or k.startswith('pretrainlab.')]:\n"
        "        del sys.modules[k]\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except ModuleNotFoundError as e:\n"
        "        if not (e.name or '').startswith('pretrainlab'):\n"
        "            continue  # an optional dependency of another extra\n"
        "        bad.append(f'{m}: {e!r}')\n"
        "    except Exception as e:\n"
        "        bad.append(f'{m}: {type(e).__name__}: {e}')\n"
        "print('\\n'.join(bad))\n"
        "sys.exit(1 if bad else 0)\n")
    p = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
