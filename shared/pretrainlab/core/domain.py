"""The domain contract: what a domain is (:class:`DomainSpec`) and everything derived from it.

Every domain package ``pretrainlab.<d>`` has the same files::

    api.py        the public Python API: SPEC (a DomainSpec), load, synthetic_data, pretrain, finetune,
                  load_task, evaluate, plus the functions of the domain's own verbs
    config.py     the typed config dataclasses (one YAML recipe per paper-table row in recipes/)
    formats.py    readers / writers of the field's real file formats
    synthetic.py  the generator that writes those formats (``generate(out, profile, seed)``)
    reproduce.py  the paper's table (a :class:`~pretrainlab.core.results.Table`)
    bench.py      throughput / memory benchmark: ``bench(device, steps, warmup, batch_size, precision,
                  compile) -> list[dict]`` (each dict from ``core.bench.bench_task`` or a measurement)
    domain.py     the command line only, on top: ``get_domain()``; nothing imports it but the CLI

``api.py`` declares ``SPEC = DomainSpec(...)`` and takes ``load = SPEload`` and
``synthetic_data = SPEsynthetic_data``; ``reproduce.py``, ``bench.py`` and ``apps/<d>/app.py`` import
only ``api`` (and the core). ``domain.py`` builds the CLI with ``SPEcli(extra_verbs)``: the standard
verbs (data, pretrain, finetune, eval, reproduce, report, demo, bench) come from the spec and call
the api's functions by name (``reproduce.py:TABLE`` and ``bench.py:bench`` directly); a domain adds its own verbs, or replaces a standard one by giving a
verb of the same name. Everything the spec names is a ``"module:attribute"`` string imported only
when used, so ``pretrainlab --help`` stays fast.

api functions called by the standard verbs::

    pretrain(cfg, data: Path, run: Path, resume: bool = False) -> Any
    finetune(cfg, data: Path, run: Path, init: Path | None = None, resume: bool = False) -> Any
    evaluate(ckpt: Path, data: Path | None = None) -> dict[str, float]      # metrics
    load_task(ckpt: Path) -> (task, cfg)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import importlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

STANDARD_VERBS = ("data", "pretrain", "finetune", "eval", "reproduce", "report", "demo", "bench")
API_NAMES = ("SPEC", "load", "synthetic_data", "pretrain", "finetune", "load_task", "evaluate")


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


# ------------------------------------------------------------------------------- CLI building blocks

def add_config_args(p: argparse.ArgumentParser, default_recipe: str | None = None) -> None:
    p.add_argument("--config", default=default_recipe,
                   help=f"recipe name or YAML path (default: {default_recipe})")
    p.add_argument("--profile", default="smoke", choices=["smoke", "tiny", "full"],
                   help="scale: smoke (seconds), tiny (minutes on a CPU), full (paper scale, GPU)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<domain>/<recipe>-<time>)")
    p.add_argument("--data", type=Path, default=None, help="dataset folder (default: generated synthetic data)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder (--out)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides, e.g. train.lr=3e-4")


def add_reproduce_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="tiny", choices=["smoke", "tiny", "full"])
    p.add_argument("--out", type=Path, default=None, help="output folder (default: runs/<domain>/reproduce-<profile>)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: the profile's, >= 3)")
    p.add_argument("--data", type=Path, default=None, help="real dataset folder for the full profile")
    p.add_argument("--fresh", action="store_true",
                   help="recompute every cell (default: resume an interrupted run of the same table and code)")


def run_reproduce(domain: str, reproduce: Any, a: argparse.Namespace) -> int:
    """Body of every ``reproduce`` verb: a :class:`~pretrainlab.core.results.Table` (or a function
    ``reproduce(profile, out, seeds, data)``) -> results file."""
    from pretrainlab.core.data import runs_root
    from pretrainlab.core.results import Table

    out = a.out or runs_root() / domain / f"reproduce-{a.profile}"
    if isinstance(reproduce, Table):
        path = reproduce.reproduce(a.profile, out, a.seeds, a.data, resume=not getattr(a, "fresh", False))
    else:
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


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"{v} is below the minimum {low}")
        return v

    return parse


def _device(text: str) -> str:
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not a device (auto, cpu, cuda or cuda:N)")


def add_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", type=_device, default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--steps", type=_int_at_least(1), default=20, help="timed training steps (>= 1)")
    p.add_argument("--warmup", type=_int_at_least(0), default=3, help="untimed warm-up steps")
    p.add_argument("--batch-size", type=_int_at_least(1), default=None)
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--compile", action="store_true", help="torch.compile the task")
    p.add_argument("--out", type=Path, default=None, help="write the JSON here too")


def add_demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, default=None, help="checkpoint (default: newest in runs/, or train smoke)")
    p.add_argument("--port", type=int, default=7860)


def default_run_dir(domain: str, name: str) -> Path:
    from pretrainlab.core.data import runs_root

    return runs_root() / domain / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def demo_verb(domain: str, extra_args: Callable[[argparse.ArgumentParser], None] | None = None,
              build_kwargs: Callable[[argparse.Namespace], dict[str, Any]] | None = None,
              example: str | None = None) -> Verb:
    """The standard ``demo`` verb: launch ``apps/<domain>/app.py`` on 127.0.0.1.

    ``extra_args`` adds a domain's own demo options; ``build_kwargs(args)`` turns them into keyword
    arguments of the app's ``build_demo`` (validate them there: errors are one line, nothing starts)."""

    def add(p: argparse.ArgumentParser) -> None:
        add_demo_args(p)
        if extra_args is not None:
            extra_args(p)

    def run(a: argparse.Namespace) -> int:
        from pretrainlab.core.data import DataError
        from pretrainlab.core.demo import check_port, launch, load_app_module

        if a.ckpt is not None and not a.ckpt.exists():
            raise DataError(a.ckpt, "no such checkpoint, run folder or weights file")
        check_port(a.port)
        kwargs = build_kwargs(a) if build_kwargs is not None else {}
        mod = load_app_module(domain)
        launch(mod.build_demo(ckpt=a.ckpt, **kwargs), port=a.port)
        return 0

    return Verb("demo", f"launch the {domain} Gradio demo on 127.0.0.1", add, run,
                example or f"pretrainlab {domain} demo --port 7861")


def reproduce_verb(domain: str, help: str, target: str) -> Verb:
    """The standard ``reproduce`` verb; ``target`` = ``"module:TABLE"`` (a Table) or ``"module:function"``,
    imported when the verb runs (so ``--help`` stays fast), run by :func:`run_reproduce`."""

    def run(a: argparse.Namespace) -> int:
        return run_reproduce(domain, resolve(target), a)

    return Verb("reproduce", help, add_reproduce_args, run, f"pretrainlab {domain} reproduce --profile tiny")


def report_verb(spec: Any) -> Verb:
    """``report``: the README's results section from the committed results file.

    ``--publish RESULTS.json`` copies a finished reproduction into ``<package>/results/<profile>/``
    and regenerates the README block; ``--check`` fails when the README and the committed file
    disagree; with neither, the README block is regenerated from the committed file.
    """

    def args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--profile", default="tiny", choices=["smoke", "tiny", "full"])
        p.add_argument("--publish", type=Path, default=None, metavar="RESULTS_JSON",
                       help="a finished reproduction's results.json to commit (copied into the package)")
        p.add_argument("--check", action="store_true", help="exit 1 when the README differs from the committed results")
        p.add_argument("--readme", action="store_true", help="regenerate the README block (the default action)")

    def run(a: argparse.Namespace) -> int:
        from pretrainlab.core.data import DataError
        from pretrainlab.core.io import atomic_write_text
        from pretrainlab.core.results import committed_results, publish, render_readme

        if a.publish is not None:
            if not a.publish.exists():
                raise DataError(a.publish, "file not found (pass a finished reproduction's results.json)")
            dest, _ = publish(a.publish, spec.package_dir, spec.readme)
            print(f"published {dest}; regenerated {spec.readme}")
            return 0
        src = committed_results(spec.package_dir, a.profile) / "results.json"
        if not src.exists():
            raise DataError(src, f"no committed {a.profile} results; run `pretrainlab {spec.name} reproduce --profile "
                                 f"{a.profile}` then `pretrainlab {spec.name} report --publish <out>/results.json`")
        res = json.loads(src.read_text())
        text = spec.readme.read_text()
        new = render_readme(text, res)
        if a.check:
            if new != text:
                print(f"{spec.readme}: the results section differs from {src}; run `pretrainlab {spec.name} report "
                      "--readme`", file=sys.stderr)
                return 1
            print(f"{spec.readme}: up to date with {src}")
            return 0
        if new != text:
            atomic_write_text(spec.readme, new)
        print(f"{spec.readme}: results section {'regenerated' if new != text else 'already up to date'} from {src}")
        return 0

    return Verb("report", "the README's results section from the committed results (--publish, --check)", args, run,
                f"pretrainlab {spec.name} report --publish runs/{spec.name}/reproduce-tiny/results.json")


def resolve(target: str) -> Any:
    """``"package.module:attr"`` -> the attribute (imported now)."""
    module, _, attr = target.partition(":")
    mod = importlib.import_module(module)
    return getattr(mod, attr) if attr else mod


@dataclasses.dataclass
class DomainSpec:
    """What a domain is. Strings ``"module:attr"`` are resolved lazily.

    - ``config``: the default config class; ``configs`` maps other recipe names to their classes
      (e.g. a detection recipe next to pre-training ones).
    - ``generator``: ``generate(out, profile, seed)`` writing the synthetic data in the field's
      formats; ``data_version`` is bumped when it changes (the cache is regenerated).
    - ``readers``: the field's formats -> the reader function (documentation and conformance).
    - ``reproduce``: the paper's table (a ``Table`` or a ``reproduce(profile, out, seeds, data)``).
    """

    name: str
    title: str
    paper: str
    package: str
    config: str
    default_recipe: str
    generator: str
    recipes: Path
    data_version: str = "1"
    data_help: str = "the synthetic dataset in the field's real formats"
    configs: dict[str, str] = dataclasses.field(default_factory=dict)
    readers: dict[str, str] = dataclasses.field(default_factory=dict)
    reproduce: str = ""
    reproduce_help: str = "the paper's table at the chosen scale (rows x seeds, paired verdicts)"
    extra: str = ""
    builtin: bool = False
    examples: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.recipes = Path(self.recipes)
        self.extra = self.extra or ("" if self.builtin else self.name)
        self.reproduce = self.reproduce or f"{self.package}.reproduce:TABLE"

    # ---------------------------------------------------------------- paths / modules
    @property
    def api(self) -> str:
        return f"{self.package}.api"

    @property
    def package_dir(self) -> Path:
        return self.recipes.parent

    @property
    def readme(self) -> Path:
        return self.package_dir / "README.md"

    def api_function(self, name: str) -> Callable[..., Any]:
        return getattr(importlib.import_module(self.api), name)

    # ---------------------------------------------------------------- config / data
    def config_class(self, recipe: str | Path | None = None) -> type:
        stem = Path(str(recipe)).stem if recipe else self.default_recipe
        return resolve(self.configs.get(stem, self.config))

    def recipe_names(self) -> list[str]:
        return sorted(p.stem for p in self.recipes.glob("*.yaml"))

    def load(self, config: str | Path | None = None, profile: str | None = None,
             overrides: Sequence[str] | dict[str, Any] = ()) -> Any:
        """The resolved, validated config: defaults <- recipe <- profile block <- overrides."""
        from pretrainlab.core.config import load_config

        recipe = config or self.default_recipe
        return load_config(self.config_class(recipe), recipe, recipes_dir=self.recipes, profile=profile,
                           overrides=overrides)

    def synthetic_data(self, profile: str = "tiny", seed: int = 0) -> Path:
        """The domain's synthetic data for ``profile`` (generated once into the cache, then reused)."""
        from pretrainlab.core.data import cached_synthetic

        return cached_synthetic(self.name, resolve(self.generator), profile, seed, version=self.data_version)

    def data_profile(self, cfg: Any) -> str:
        """``cfg.data.profile``: which synthetic set a config trains on when no ``--data`` is given."""
        return str(cfg.data.profile)

    # ---------------------------------------------------------------- CLI
    def cli(self, extra_verbs: Sequence[Any] = (), skip: Sequence[str] = (),
            demo_args: Callable[[argparse.ArgumentParser], None] | None = None,
            demo_kwargs: Callable[[argparse.Namespace], dict[str, Any]] | None = None) -> Any:
        """The CLI registration: the standard verbs (minus ``skip``), a domain verb of the same name
        replacing its standard one, then the domain's own verbs. ``demo_args`` / ``demo_kwargs`` add
        options to the standard demo verb (see :func:`demo_verb`)."""
        std = {v.name: v for v in standard_verbs(self, demo_args, demo_kwargs) if v.name not in skip}
        own = [v for v in extra_verbs if v.name not in std]
        for v in extra_verbs:
            if v.name in std:
                std[v.name] = v
        return Domain(name=self.name, title=self.title, paper=self.paper, extra=self.extra,
                      verbs=list(std.values()) + own, builtin=self.builtin)


# ------------------------------------------------------------------------------- run folders

@contextlib.contextmanager
def run_folder(run: Path, resume: bool = False, overwrite: bool = False) -> Iterator[Path]:
    """The run folder of a training command, refusing to clobber one by accident.

    An existing, non-empty folder needs ``--resume`` (it must then hold a checkpoint) or
    ``--overwrite`` (it is replaced). When the command fails before its first checkpoint, a folder
    this call created is removed again, so a failed start leaves nothing behind.
    """
    from pretrainlab.core.checkpoint import CheckpointError, find_checkpoint
    from pretrainlab.core.config import ConfigError

    run = Path(run)
    existed = run.exists() and any(run.iterdir()) if run.is_dir() else run.exists()
    if run.exists() and not run.is_dir():
        raise ConfigError(f"--out {run}: is a file, expected a run folder")
    if resume:
        if not existed:
            raise ConfigError(f"--resume: {run} does not exist or is empty; drop --resume to start a new run")
        try:
            find_checkpoint(run)
        except CheckpointError:
            raise ConfigError(f"--resume: {run} holds no checkpoint to resume from; drop --resume and pass "
                              "--overwrite to start it again") from None
    elif existed:
        if not overwrite:
            raise ConfigError(f"--out {run}: already exists; pass --resume to continue it or --overwrite to "
                              "replace it")
        shutil.rmtree(run)
    try:
        yield run
    except BaseException:
        if not existed and run.exists():
            has_ckpt = any((run / "checkpoints").glob("step_*")) if (run / "checkpoints").is_dir() else False
            if not has_ckpt:
                shutil.rmtree(run, ignore_errors=True)
                print(f"removed {run}: the run failed before its first checkpoint", file=sys.stderr)
        raise


def write_metrics(path: Path, metrics: dict[str, Any]) -> Path:
    """Strict JSON metrics (non-finite values as null) written atomically; returns the path."""
    from pretrainlab.core.io import atomic_write_json

    atomic_write_json(Path(path), metrics)
    return Path(path)


# ------------------------------------------------------------------------------- standard verbs

def _overrides(a: argparse.Namespace) -> list[str]:
    return list(getattr(a, "overrides", []) or [])


def standard_verbs(spec: DomainSpec, demo_args: Callable[[argparse.ArgumentParser], None] | None = None,
                   demo_kwargs: Callable[[argparse.Namespace], dict[str, Any]] | None = None) -> list[Any]:
    ex = spec.examples
    d = spec.name

    def data(a: argparse.Namespace) -> int:
        return run_generate(resolve(spec.generator), a)

    def train(kind: str) -> Callable[[argparse.Namespace], int]:
        def run(a: argparse.Namespace) -> int:
            cfg = spec.load(a.config, a.profile, _overrides(a))
            data_dir = a.data or spec.synthetic_data(spec.data_profile(cfg))
            run_dir = a.out or default_run_dir(d, f"{kind}-{Path(str(a.config or spec.default_recipe)).stem}")
            with run_folder(run_dir, a.resume, a.overwrite) as r:
                if kind == "pretrain":
                    spec.api_function("pretrain")(cfg, data_dir, r, resume=a.resume)
                else:
                    spec.api_function("finetune")(cfg, data_dir, r, init=a.init, resume=a.resume)
            print(run_dir)
            return 0

        return run

    def finetune_args(p: argparse.ArgumentParser) -> None:
        add_config_args(p, spec.default_recipe)
        p.add_argument("--init", type=Path, default=None, help="checkpoint or run folder to start from (default: scratch)")

    def eval_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--ckpt", type=Path, required=True, help="checkpoint or run folder")
        p.add_argument("--data", type=Path, default=None, help="dataset folder (default: the synthetic set)")
        p.add_argument("--out", type=Path, default=None, help="metrics JSON (default: metrics.json beside the checkpoint)")

    def evaluate(a: argparse.Namespace) -> int:
        from pretrainlab.core.checkpoint import find_checkpoint

        metrics = spec.api_function("evaluate")(a.ckpt, data=a.data)
        out = write_metrics(a.out or find_checkpoint(a.ckpt) / "metrics.json", metrics)
        print(out)
        print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
        return 0

    def bench(a: argparse.Namespace) -> int:
        from pretrainlab.core.bench import report

        res = resolve(f"{spec.package}.bench:bench")(device=a.device, steps=a.steps, warmup=a.warmup, batch_size=a.batch_size,
                                         precision=a.precision, compile=a.compile)
        report(res, a.out)
        return 0

    return [
        Verb("data", f"write {spec.data_help}", lambda p: add_data_args(p, spec.data_help), data,
               ex.get("data", f"pretrainlab {d} data --out data/{d} --profile tiny")),
        Verb("pretrain", "pre-train a recipe (default: the paper's method)",
               lambda p: add_config_args(p, spec.default_recipe), train("pretrain"),
               ex.get("pretrain", f"pretrainlab {d} pretrain --profile smoke --config {spec.default_recipe}")),
        Verb("finetune", "fine-tune from a checkpoint (--init) or from scratch", finetune_args, train("finetune"),
               ex.get("finetune", f"pretrainlab {d} finetune --profile smoke --init runs/{d}/<run>")),
        Verb("eval", "evaluate a checkpoint -> metrics JSON", eval_args, evaluate,
               ex.get("eval", f"pretrainlab {d} eval --ckpt runs/{d}/<run>")),
        reproduce_verb(d, spec.reproduce_help, spec.reproduce),
        report_verb(spec),
        demo_verb(d, demo_args, demo_kwargs, ex.get("demo")),
        Verb("bench", "training-step throughput and peak memory (JSON)", add_bench_args, bench,
               ex.get("bench", f"pretrainlab {d} bench --device cuda --precision bf16 --steps 200")),
    ]


__all__ = ["API_NAMES", "STANDARD_VERBS", "DomainSpec", "resolve", "run_folder", "standard_verbs", "write_metrics"]
