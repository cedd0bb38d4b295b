"""``pretrainlab`` command line: ``pretrainlab info`` and ``pretrainlab <domain> <verb> ...``.

Domains register themselves: every package ``pretrainlab.<d>`` with a ``domain`` module whose
``get_domain()`` returns a :class:`Domain` is found at start-up (PEP 420 namespace scan; nothing to
edit in the core). Domain modules import their heavy dependencies lazily, inside the verbs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import importlib
import json
import os
import pkgutil
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pretrainlab.core.domain import (  # noqa: F401 - the CLI building blocks, re-exported for domains
    Domain,
    Verb,
    add_bench_args,
    add_config_args,
    add_data_args,
    add_demo_args,
    add_reproduce_args,
    default_run_dir,
    demo_verb,
    report_verb,
    reproduce_verb,
    run_generate,
    run_reproduce,
)

BUILTIN = "simclr"  # the core's built-in toy recipe, registered like a domain


def _discover() -> tuple[dict[str, Domain], dict[str, str]]:
    import pretrainlab

    found: dict[str, Domain] = {}
    broken: dict[str, str] = {}
    names = sorted({m.name for m in pkgutil.iter_modules(list(pretrainlab.__path__)) if m.ispkg and m.name != "core"})
    for name in names:
        try:
            mod = importlib.import_module(f"pretrainlab.{name}.domain")
        except ModuleNotFoundError as e:
            if e.name == f"pretrainlab.{name}.domain":
                continue
            broken[name] = f"missing dependency '{e.name}' (pip install 'pretrainlab[{name}]')"
            continue
        except Exception as e:  # noqa: BLE001 - a broken domain must not break the CLI for the others
            broken[name] = f"{type(e).__name__}: {e}"
            continue
        found[name] = mod.get_domain()
    found[BUILTIN] = importlib.import_module("pretrainlab.core.builtin.domain").get_domain()
    return found, broken


def domains() -> dict[str, Domain]:
    return _discover()[0]


def paper_domains() -> dict[str, Domain]:
    """Registered domains other than the built-in toy recipe."""
    return {k: v for k, v in domains().items() if not v.builtin}


# ---------------------------------------------------------------------- top-level commands

def cmd_info(_: argparse.Namespace) -> int:
    import importlib.metadata as md

    import torch

    from pretrainlab.core import __version__

    found, broken = _discover()
    lines = [f"pretrainlab {__version__}", f"python {platform.python_version()} ({platform.machine()})"]
    for pkg in ["torch", "torchvision", "torchaudio", "numpy", "open_clip_torch", "monai", "open3d", "gradio",
                "safetensors", "peft", "playwright"]:
        try:
            lines.append(f"  {pkg:16s} {md.version(pkg)}")
        except md.PackageNotFoundError:
            lines.append(f"  {pkg:16s} not installed")
    lines.append("devices:")
    lines.append(f"  cpu: {torch.get_num_threads()} threads")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            pr = torch.cuda.get_device_properties(i)
            lines.append(f"  cuda:{i}: {pr.name}, {pr.total_memory / 2**30:.1f} GiB, bf16={torch.cuda.is_bf16_supported()}")
    else:
        lines.append("  cuda: not available")
    lines.append("domains:")
    for name, d in found.items():
        tag = " (built-in)" if d.builtin else ""
        lines.append(f"  {name:8s} {d.title}{tag} — verbs: {', '.join(v.name for v in d.verbs)}")
    for name, why in broken.items():
        lines.append(f"  {name:8s} unavailable: {why}")
    print("\n".join(lines))
    return 0


def cmd_reproduce_all(a: argparse.Namespace) -> int:
    """Run every installed domain's reproduction (each in its own process) and write one report."""
    from pretrainlab.core.data import runs_root
    from pretrainlab.core.results import write_report

    doms = paper_domains() or {BUILTIN: domains()[BUILTIN]}
    if a.only:
        doms = {k: v for k, v in domains().items() if k in a.only}
    root = a.out or runs_root()
    results, failures = [], {}
    t0 = time.time()
    jobs = max(1, a.jobs)

    def run_one(i: int, name: str) -> tuple[str, Path, int]:
        out = root / name / f"reproduce-{a.profile}"
        out.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pretrainlab.core.cli", name, "reproduce", "--profile", a.profile,
               "--out", str(out)]
        # one job streams to the terminal; parallel jobs each write their own log (out/reproduce.log)
        where = "" if jobs == 1 else f" (log: {out / 'reproduce.log'})"
        print(f"[{i}/{len(doms)}] {name}: reproducing ({a.profile}) -> {out}{where}", file=sys.stderr, flush=True)
        start = time.time()
        with contextlib.nullcontext() if jobs == 1 else open(out / "reproduce.log", "w") as log:
            rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT if log else None)
        print(f"{name}: {'done' if rc == 0 else f'FAILED (exit {rc})'} in {time.time() - start:.0f} s",
              file=sys.stderr, flush=True)
        return name, out, rc

    done: dict[str, Path] = {}
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:  # map keeps the domains' order for the report
        for name, out, rc in pool.map(run_one, range(1, len(doms) + 1), doms):
            if rc == 0 and (out / "results.json").exists():
                done[name] = out / "results.json"
            else:
                failures[name] = f"exit code {rc}"
    # --only: the report keeps the other domains' earlier results of this profile (dated in the report)
    earlier = [n for n in (paper_domains() or doms) if n not in doms
               and (root / n / f"reproduce-{a.profile}" / "results.json").exists()]
    for name in domains():
        if name in done:
            results.append(done[name])
        elif name in earlier:
            results.append(root / name / f"reproduce-{a.profile}" / "results.json")
    if earlier:
        print(f"the report also holds earlier results of: {', '.join(earlier)}", file=sys.stderr)
    report = write_report(results, root / "report.md", failures)
    from pretrainlab.core.io import atomic_write_json

    atomic_write_json(root / f"make-run-{a.profile}.json", {
        "profile": a.profile, "jobs": jobs, "wall_time_s": time.time() - t0, "domains": sorted(doms),
        "failed": failures, "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "finished_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())})
    print(f"reproduced {len(done)}/{len(doms)} domains in {time.time() - t0:.0f} s; report ({len(results)} domains): "
          f"{report}")
    return 0 if not failures else 1


def _contract_specs() -> dict[str, Any]:
    """Every registered domain's DomainSpec (domains are found as the CLI finds them)."""
    specs = {}
    for name in domains():
        pkg = "pretrainlab.core.builtin" if name == BUILTIN else f"pretrainlab.{name}"
        try:
            specs[name] = importlib.import_module(f"{pkg}.api").SPEC
        except (ModuleNotFoundError, AttributeError):
            continue  # a domain not on the contract yet has no committed results to show
    return specs


def cmd_report(a: argparse.Namespace) -> int:
    """The top-level README's results overview from every domain's committed results.

    ``--publish RUNS`` first commits a finished ``reproduce --all`` (each domain's results into its
    package, regenerating its README block, and ``RUNS/make-run-<profile>.json`` as
    ``benchmarks/make_run_<profile>.json``); ``--check`` fails when any README disagrees.
    """
    from pretrainlab.core.io import atomic_write_text
    from pretrainlab.core.results import (
        committed_results,
        overview_block,
        publish,
        render_overview,
        render_readme,
    )

    specs = _contract_specs()
    readme = repo_root() / "README.md"
    make_run_file = repo_root() / "benchmarks" / f"make_run_{a.profile}.json"
    if a.publish is not None:
        for name, spec in specs.items():
            src = a.publish / name / f"reproduce-{a.profile}" / "results.json"
            if src.exists():
                publish(src, spec.package_dir, spec.readme)
                print(f"published {name}: {src}")
        run_file = a.publish / f"make-run-{a.profile}.json"
        if run_file.exists():
            atomic_write_text(make_run_file, run_file.read_text())
    committed = {}
    for name, spec in specs.items():
        f = committed_results(spec.package_dir, a.profile) / "results.json"
        if f.exists():
            committed[name] = json.loads(f.read_text())
    make_run = json.loads(make_run_file.read_text()) if make_run_file.exists() else None
    stale = []
    for name, spec in specs.items():
        if name in committed and spec.readme.exists():
            text = spec.readme.read_text()
            if render_readme(text, committed[name]) != text:
                stale.append(str(spec.readme))
    text = readme.read_text()
    new = render_overview(text, overview_block(committed, make_run, a.profile), a.profile)
    if new != text:
        stale.append(str(readme))
    if a.check:
        if stale:
            print("out of date with the committed results: " + ", ".join(stale) + "; run `pretrainlab report`",
                  file=sys.stderr)
            return 1
        print(f"README tables match the committed {a.profile} results of {len(committed)} domains")
        return 0
    for name, spec in specs.items():
        if name in committed and spec.readme.exists():
            t = spec.readme.read_text()
            atomic_write_text(spec.readme, render_readme(t, committed[name]))
    atomic_write_text(readme, new)
    print(f"regenerated the results sections of {readme} and {len(committed)} domain READMEs")
    return 0


def repo_root() -> Path:
    """The source checkout (README.md, benchmarks/) this package runs from."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "README.md").exists() and (parent / "pyproject.toml").exists():
            return parent
    raise FileNotFoundError("the top-level README is only in a source checkout of pretrainlab")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pretrainlab", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Self-supervised and transfer pre-training across research fields.",
        epilog="examples:\n  pretrainlab info\n  pretrainlab simclr pretrain --profile smoke train.lr=1e-3\n"
               "  pretrainlab reproduce --all --profile tiny\n"
               "  torchrun --nproc_per_node=2 -m pretrainlab.core.cli simclr pretrain --profile smoke")
    sub = parser.add_subparsers(dest="command", metavar="{info,reproduce,report,<domain>}")
    p = sub.add_parser("info", help="versions, devices, installed extras, domains")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("reproduce", help="reproduce every installed domain's paper table, one report",
                       epilog="example: pretrainlab reproduce --all --profile tiny")
    p.add_argument("--all", action="store_true", required=True)
    p.add_argument("--profile", default="tiny", choices=["smoke", "tiny", "full"])
    p.add_argument("--out", type=Path, default=None, help="root folder (default: runs/)")
    p.add_argument("--only", nargs="+", default=None, help="restrict to these domains")
    p.add_argument("--jobs", type=int, default=1, help="domains reproduced at once (each in its own process)")
    p.set_defaults(func=cmd_reproduce_all)
    p = sub.add_parser("report", help="the READMEs' results tables from the committed results files",
                       epilog="example: pretrainlab report --publish runs   (after make run)")
    p.add_argument("--profile", default="tiny", choices=["smoke", "tiny", "full"])
    p.add_argument("--publish", type=Path, default=None, metavar="RUNS",
                   help="commit a finished `reproduce --all` from this runs folder first")
    p.add_argument("--check", action="store_true", help="exit 1 when a README disagrees with the committed results")
    p.set_defaults(func=cmd_report)
    for name, dom in domains().items():
        dp = sub.add_parser(name, help=f"{dom.title} — {dom.paper}", description=f"{dom.title}\npaper: {dom.paper}",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        vs = dp.add_subparsers(dest="verb", metavar="{" + ",".join(v.name for v in dom.verbs) + "}")
        dp.set_defaults(func=lambda a, dp=dp: (dp.print_help(), 2)[1])
        for v in dom.verbs:
            vp = vs.add_parser(v.name, help=v.help, description=v.help,
                               epilog=f"example:\n  {v.examples}" if v.examples else None,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
            v.add_arguments(vp)
            vp.set_defaults(func=v.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from pretrainlab.core.checkpoint import CheckpointError
    from pretrainlab.core.config import ConfigError
    from pretrainlab.core.data import DataError

    try:
        rc = args.func(args)
    except (ConfigError, DataError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
