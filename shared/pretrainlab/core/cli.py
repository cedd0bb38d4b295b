"""``pretrainlab`` command line: ``pretrainlab info`` and ``pretrainlab <domain> <verb> ...``.

Domains register themselves: every package ``pretrainlab.<d>`` with a ``domain`` module whose
``get_domain()`` returns a :class:`Domain` is found at start-up (PEP 420 namespace scan; nothing to
edit in the core). Domain modules import their heavy dependencies lazily, inside the verbs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import functools
import importlib
import json
import os
import pkgutil
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BUILTIN = "simclr"  # the core's built-in toy recipe, registered like a domain


@dataclasses.dataclass
class Verb:
    """One sub-command: ``pretrainlab <domain> <name> ...``."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]
    examples: str = ""


@dataclasses.dataclass
class Domain:
    """What a domain package registers with the CLI."""

    name: str
    title: str
    paper: str
    extra: str
    verbs: list[Verb]
    builtin: bool = False


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
    from pretrainlab.core.builtin.domain import get_domain

    found[BUILTIN] = get_domain()
    return found, broken


def domains() -> dict[str, Domain]:
    return _discover()[0]


def paper_domains() -> dict[str, Domain]:
    """Registered domains other than the built-in toy recipe."""
    return {k: v for k, v in domains().items() if not v.builtin}


# ---------------------------------------------------------------------- shared argument groups

def add_config_args(p: argparse.ArgumentParser, default_recipe: str | None = None) -> None:
    p.add_argument("--config", default=default_recipe,
                   help=f"recipe name or YAML path (default: {default_recipe})")
    p.add_argument("--profile", default="smoke", choices=["smoke", "tiny", "full"],
                   help="scale: smoke (seconds), tiny (minutes on a CPU), full (paper scale, GPU)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<domain>/<recipe>-<time>)")
    p.add_argument("--data", type=Path, default=None, help="dataset folder (default: generated synthetic data)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides, e.g. train.lr=3e-4")


def add_reproduce_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="tiny", choices=["smoke", "tiny", "full"])
    p.add_argument("--out", type=Path, default=None, help="output folder (default: runs/<domain>/reproduce-<profile>)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: the profile's, >= 3)")
    p.add_argument("--data", type=Path, default=None, help="real dataset folder for the full profile")


def run_reproduce(domain: str, reproduce: Callable[..., Path], a: argparse.Namespace) -> int:
    """Body of every ``reproduce`` verb: ``reproduce(profile, out, seeds, data)`` -> results file."""
    from pretrainlab.core.data import runs_root

    out = a.out or runs_root() / domain / f"reproduce-{a.profile}"
    path = reproduce(a.profile, out, a.seeds, a.data)
    print(path.parent / "results.md")
    return 0


def add_data_args(p: argparse.ArgumentParser, what: str = "the synthetic dataset") -> None:
    """Arguments of every ``data`` verb (a synthetic generator that writes the field's real formats)."""
    p.add_argument("--out", type=Path, required=True, help=f"folder to create ({what})")
    p.add_argument("--profile", default="tiny", choices=["smoke", "tiny", "full"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")


def run_generate(generate: Callable[..., Any], a: argparse.Namespace, **kwargs: Any) -> int:
    """Body of every ``data`` verb: ``generate(out, profile, seed, **kwargs)`` written atomically."""
    from pretrainlab.core.data import generate_dataset

    out = generate_dataset(functools.partial(generate, **kwargs), a.out, a.profile, a.seed, overwrite=a.overwrite)
    print(out)
    return 0


def add_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--steps", type=int, default=20, help="timed training steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--compile", action="store_true", help="torch.compile the task")
    p.add_argument("--out", type=Path, default=None, help="write the JSON here too")


def add_demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, default=None, help="checkpoint (default: newest in runs/, or train smoke)")
    p.add_argument("--port", type=int, default=7860)


def default_run_dir(domain: str, name: str) -> Path:
    from pretrainlab.core.data import runs_root

    return runs_root() / domain / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def demo_verb(domain: str) -> Verb:
    """The standard ``demo`` verb: launch ``apps/<domain>/app.py`` on 127.0.0.1."""

    def run(a: argparse.Namespace) -> int:
        from pretrainlab.core.demo import launch, load_app_module

        mod = load_app_module(domain)
        launch(mod.build_demo(ckpt=a.ckpt), port=a.port)
        return 0

    return Verb("demo", f"launch the {domain} Gradio demo on 127.0.0.1", add_demo_args, run,
                f"pretrainlab {domain} demo --port 7861")


def reproduce_verb(domain: str, help: str, target: str) -> Verb:
    """The standard ``reproduce`` verb; ``target`` = ``"module:function"``, imported when the verb runs
    (so ``--help`` stays fast), called as ``function(profile, out, seeds, data)`` by :func:`run_reproduce`."""

    def run(a: argparse.Namespace) -> int:
        import importlib

        module, _, func = target.partition(":")
        return run_reproduce(domain, getattr(importlib.import_module(module), func), a)

    return Verb("reproduce", help, add_reproduce_args, run, f"pretrainlab {domain} reproduce --profile tiny")


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
    print(f"reproduced {len(done)}/{len(doms)} domains in {time.time() - t0:.0f} s; report ({len(results)} domains): "
          f"{report}")
    return 0 if not failures else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pretrainlab", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Self-supervised and transfer pre-training across research fields.",
        epilog="examples:\n  pretrainlab info\n  pretrainlab simclr pretrain --profile smoke train.lr=1e-3\n"
               "  pretrainlab reproduce --all --profile tiny\n"
               "  torchrun --nproc_per_node=2 -m pretrainlab.core.cli simclr pretrain --profile smoke")
    sub = parser.add_subparsers(dest="command", metavar="{info,reproduce,<domain>}")
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


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


if __name__ == "__main__":
    sys.exit(main())
