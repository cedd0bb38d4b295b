"""Typed configuration: dataclasses are the single source of truth.

A recipe is one YAML file whose keys mirror a dataclass tree. ``load_config`` builds the dataclass
from defaults, then the YAML (after the recipe it names in ``extends:``, if any), then a profile
block (``profiles: {smoke: {...}}`` inside the YAML), then dotted ``key=value`` overrides from the
command line. Unknown keys are an error that names the nearest valid key. Every value is then
validated (:func:`validate`: ``CHECKS`` per dataclass, ``check()`` across fields) with an error
naming the dotted key, before anything is written. The resolved config is written into every run
folder (``save_config``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")

PROFILES = ("smoke", "tiny", "full")


class ConfigError(ValueError):
    """A config file or override that does not fit the dataclass tree."""


@dataclasses.dataclass
class TrainConfig:
    """Options of the one training loop (``pretrainlab.core.train``)."""

    max_steps: int = 100  # optimizer steps
    batch_size: int = 32  # per process, per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-3
    min_lr_ratio: float = 0.0  # final lr = lr * min_lr_ratio (cosine / linear / poly)
    weight_decay: float = 0.0
    decay_1d: bool = False  # also decay biases / norm parameters (torch's default when all params go in one group)
    optimizer: str = "adamw"  # adamw | adam | sgd | lars
    momentum: float = 0.9  # sgd / lars
    nesterov: bool = False  # sgd: Nesterov momentum (only when asked)
    lars_eta: float = 0.001  # LARS trust coefficient
    lars_exclude_1d: bool = True  # LARS: biases / norms get no trust ratio and no weight decay (SimCLR); False = pl_bolts / SwAV
    lars_trust: str = "norm_of_sum"  # eta*|p|/|g + wd p| | "sum_of_norms": eta*|p|/(|g| + wd|p| + eps) (pl_bolts)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8  # Adam / AdamW epsilon
    # Adam / AdamW: torch's fused kernel (one pass over each tensor, CPU and CUDA) instead of foreach where
    # every parameter supports it; the same update up to float rounding, ~4.5x faster on a CPU
    fused_optimizer: bool = False
    schedule: str = "cosine"  # cosine | linear | poly | constant
    poly_power: float = 2.0  # exponent of the poly schedule: lr * (1 - t) ** poly_power
    warmup_steps: int = 0
    # linear: (step + 1) / warmup | from_zero: step / warmup (pl_bolts linear_warmup_decay) |
    # insightface: the full lr at step 0, then step / warmup (arcface_torch PolynomialLRWarmup)
    warmup_style: str = "linear"
    clip_grad: float = 0.0  # max global grad norm; 0 = off
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32
    compile: bool = False  # torch.compile the task
    channels_last: bool = False  # for conv nets on CUDA
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms + single-process loading
    num_workers: int = 0
    log_every: int = 10
    ckpt_every: int = 0  # 0 = only at the end
    keep_checkpoints: int = 2  # 0 = keep all
    nan_policy: str = "skip"  # skip | stop: what a non-finite loss / gradient does
    max_nan_skips: int = 10  # stop with an error after this many skipped steps
    find_unused_parameters: bool = False  # DDP
    progress: bool = True
    tensorboard: bool = True  # used when the tensorboard package is installed

    CHECKS: ClassVar[dict[str, Any]] = {
        "max_steps": ">=1", "batch_size": ">=1", "grad_accum": ">=1", "lr": ">0", "min_lr_ratio": ">=0 <=1",
        "weight_decay": ">=0", "optimizer": ("adamw", "adam", "sgd", "lars"), "momentum": ">=0 <1",
        "lars_eta": ">0", "lars_trust": ("norm_of_sum", "sum_of_norms"),
        "warmup_style": ("linear", "from_zero", "insightface"),
        "betas": ">=0 <1", "eps": ">0", "schedule": ("cosine", "linear", "poly", "constant"), "poly_power": ">0",
        "warmup_steps": ">=0", "clip_grad": ">=0", "precision": ("auto", "bf16", "fp32"),
        "device": lambda v: None if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit())
        else "expected auto, cpu, cuda or cuda:N", "num_workers": ">=0", "log_every": ">=1", "ckpt_every": ">=0",
        "keep_checkpoints": ">=0", "nan_policy": ("skip", "stop"), "max_nan_skips": ">=0",
    }

    def check(self) -> None:
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise ConfigError("nesterov: true needs optimizer: sgd with momentum > 0")


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _field_types(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _suggest(key: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(options), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type ``tp``; raise ConfigError when impossible."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} fits none of {tp}")
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=where + ".")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


Check = str | tuple | list | set | frozenset | Callable[[Any], "str | None"]


def _check_one(value: Any, spec: Check, key: str) -> None:
    """Apply one ``CHECKS`` entry to ``value`` (each element of a list / tuple value)."""
    if isinstance(value, (list, tuple)) and not isinstance(spec, (tuple, list, set, frozenset)):
        for i, v in enumerate(value):
            _check_one(v, spec, f"{key}[{i}]")
        return
    if callable(spec):
        problem = spec(value)
        if problem:
            raise ConfigError(f"{key}: {value!r} is not allowed ({problem})")
        return
    if isinstance(spec, (tuple, list, set, frozenset)):
        if value not in spec:
            raise ConfigError(f"{key}: {value!r} is not allowed{_suggest(str(value), [str(x) for x in spec])}; "
                              f"allowed: {', '.join(str(x) for x in spec)}")
        return
    ops = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}
    for term in str(spec).split():
        op = next(o for o in (">=", "<=", ">", "<") if term.startswith(o))
        bound = float(term[len(op):])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
                or not ops[op](value, bound):
            raise ConfigError(f"{key}: {value!r} is not allowed; expected a number {' and '.join(str(spec).split())}")


def validate(cfg: Any, prefix: str = "") -> Any:
    """Check a config tree: every float is a number (not NaN), each dataclass's ``CHECKS`` (a mapping
    field -> ``">=1"`` / ``">0 <=1"`` / a tuple of allowed values / ``f(value) -> problem or None``) and
    its ``check()`` method for constraints across fields. Raises :class:`ConfigError` naming the
    dotted key, the value and what is allowed; returns ``cfg``."""
    checks = getattr(type(cfg), "CHECKS", {}) or {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        key = prefix + f.name
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            validate(v, key + ".")
            continue
        if isinstance(v, float) and math.isnan(v):
            raise ConfigError(f"{key}: NaN is not allowed; expected a number")
        if f.name in checks:
            _check_one(v, checks[f.name], key)
    unknown = set(checks) - {f.name for f in dataclasses.fields(cfg)}
    if unknown:
        raise TypeError(f"{type(cfg).__name__}.CHECKS names unknown fields {sorted(unknown)}")
    check = getattr(cfg, "check", None)
    if callable(check):
        try:
            check()
        except ConfigError as e:
            raise ConfigError(f"{prefix}{e}") from None
    return cfg


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a (possibly partial) nested mapping; unknown keys are errors."""
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"unknown config key '{prefix}{key}'{_suggest(key, names)}")
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    obj = cls(**kwargs)
    return obj


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain-Python mapping (tuples become lists) suitable for YAML / JSON."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return conv(cfg)


def _all_keys(cfg: Any, prefix: str = "") -> list[str]:
    keys = []
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        keys.append(prefix + f.name)
        if dataclasses.is_dataclass(v):
            keys.extend(_all_keys(v, prefix + f.name + "."))
    return keys


def merge(cfg: T, data: dict[str, Any], prefix: str = "") -> T:
    """Return a copy of ``cfg`` with the nested mapping ``data`` merged in (dotted keys allowed)."""
    nested: dict[str, Any] = {}
    for key, value in data.items():
        parts = str(key).split(".")
        d = nested
        for p in parts[:-1]:
            d = d.setdefault(p, {})
            if not isinstance(d, dict):
                raise ConfigError(f"config key '{prefix}{key}' conflicts with a scalar")
        d[parts[-1]] = value
    return _merge_nested(cfg, nested, prefix)


def _merge_nested(cfg: T, nested: dict[str, Any], prefix: str) -> T:
    hints = _field_types(type(cfg))
    names = {f.name for f in dataclasses.fields(cfg)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for key, value in nested.items():
        if key not in names:
            near = _suggest(prefix + key, _all_keys(cfg, prefix)) or _suggest(key, names)
            raise ConfigError(f"unknown config key '{prefix}{key}'{near}")
        current = getattr(cfg, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[key] = _merge_nested(current, value, prefix + key + ".")
        else:
            changes[key] = _coerce(value, hints[key], prefix + key)
    return dataclasses.replace(cfg, **changes)  # type: ignore[type-var]


def parse_overrides(items: typing.Sequence[str]) -> dict[str, Any]:
    """``["train.lr=0.1", "model.name=resnet"]`` -> ``{"train.lr": 0.1, "model.name": "resnet"}``.

    Values are parsed as YAML scalars / flow collections (``[1,2]``, ``true``, ``1e-3``).
    """
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override '{item}' has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out[key] = value
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror or e})") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def resolve_recipe(name_or_path: str | Path, recipes_dir: Path) -> Path:
    """A recipe name (``simclr``) found in ``recipes_dir``, or a path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.exists():
            raise ConfigError(f"{p}: config file not found")
        return p
    cand = recipes_dir / f"{name_or_path}.yaml"
    if cand.exists():
        return cand
    names = sorted(x.stem for x in recipes_dir.glob("*.yaml"))
    raise ConfigError(f"unknown recipe '{name_or_path}'{_suggest(str(name_or_path), names)}; "
                      f"available: {', '.join(names)}")


def _recipe_layers(path: Path, recipes_dir: Path | None, seen: tuple[Path, ...] = ()) -> list[dict[str, Any]]:
    """The YAML of a recipe and of the recipes it ``extends`` (base first)."""
    if path.resolve() in seen:
        raise ConfigError(f"{path}: 'extends' forms a cycle ({' -> '.join(p.name for p in seen)})")
    data = read_yaml(path)
    base = data.pop("extends", None)
    layers: list[dict[str, Any]] = []
    if base:
        base_path = resolve_recipe(str(base), recipes_dir or path.parent)
        layers = _recipe_layers(base_path, recipes_dir, (*seen, path.resolve()))
    return [*layers, data]


def load_config(cls: type[T], recipe: str | Path | None = None, *, recipes_dir: Path | None = None,
                profile: str | None = None, overrides: typing.Sequence[str] | dict[str, Any] = ()) -> T:
    """defaults <- recipe YAML (after the recipes it ``extends:``) <- ``profiles[profile]`` blocks <-
    overrides; then :func:`validate`."""
    cfg = cls()
    layers: list[dict[str, Any]] = []
    if recipe is not None:
        path = resolve_recipe(recipe, recipes_dir) if recipes_dir else Path(recipe)
        layers = _recipe_layers(path, recipes_dir)
    if profile is not None and profile not in PROFILES:
        raise ConfigError(f"unknown profile '{profile}'{_suggest(profile, PROFILES)}; use one of {PROFILES}")
    has_description = "description" in {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    blocks = []
    for data in layers:
        profiles = data.pop("profiles", {}) or {}
        if not has_description:
            data.pop("description", None)
        cfg = merge(cfg, data)
        if profile is not None:
            blocks.append(profiles.get(profile, {}) or {})
    for block in blocks:
        cfg = merge(cfg, block)
    ov = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
    return validate(merge(cfg, ov))


def recipe_description(path: Path) -> str:
    return str(read_yaml(path).get("description", ""))


def save_config(cfg: Any, path: Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    from pretrainlab.core.io import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(to_dict(cfg), sort_keys=False))
