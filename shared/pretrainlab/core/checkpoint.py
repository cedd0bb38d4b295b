"""Checkpoints: safetensors weights + a separate training-state file, written atomically.

Layout of one checkpoint folder (``run/checkpoints/step_000100/``)::

    model.safetensors   the task's weights (``state_dict``); shared tensors stored once
    state.safetensors   optimizer tensors + RNG states; the non-tensor tree (step, epoch, scalar
                        optimizer state, python / numpy RNG) is JSON in the safetensors metadata
    meta.json           step, config, time

The folder is written under a temporary name and renamed, and ``checkpoints/latest`` (a text
file naming the folder) is replaced atomically afterwards, so a SIGKILL at any moment leaves the
last good checkpoint intact. Nothing here calls ``pickle``/``torch.load``: untrusted files are only
ever parsed as safetensors + JSON.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from pretrainlab.core.io import atomic_dir, atomic_write_json, atomic_write_text

LATEST = "latest"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated or not ours."""


# --------------------------------------------------------------------------- tensors <-> files

def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Save a flat name -> tensor mapping; tensors sharing storage are written once (aliases in metadata)."""
    seen: dict[tuple[int, int, tuple[int, ...], torch.dtype], str] = {}
    out: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    for name, t in tensors.items():
        t = t.detach()
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype) if t.numel() else None
        if key is not None and key in seen:
            aliases[name] = seen[key]
            continue
        if key is not None:
            seen[key] = name
        out[name] = t.to("cpu").contiguous().clone()
    meta = dict(metadata or {})
    if aliases:
        meta["pretrainlab.aliases"] = json.dumps(aliases)
    save_file(out, str(path), metadata=meta)


def load_tensors(path: Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file written by ``save_tensors`` (or any safetensors file)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: file not found")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not iterable
    except Exception as e:  # safetensors raises its own error types for bad headers / truncation
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
    for alias, target in json.loads(meta.pop("pretrainlab.aliases", "{}")).items():
        tensors[alias] = tensors[target]
    return tensors, meta


def save_weights(module: torch.nn.Module | dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Weights of a module (or a state dict) as one safetensors file, atomically."""
    sd = module.state_dict() if isinstance(module, torch.nn.Module) else module
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    save_tensors(tmp, sd, metadata)
    tmp.replace(path)


def load_weights(module: torch.nn.Module, path: Path, strict: bool = True, prefix: str = "") -> list[str]:
    """Load safetensors weights into ``module``; returns missing keys when ``strict`` is False.

    ``prefix`` selects a sub-tree of the file (e.g. ``"backbone."``) and strips it.
    """
    tensors, _ = load_tensors(path)
    if prefix:
        tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not tensors:
            raise CheckpointError(f"{path}: no weights under prefix '{prefix}'")
    try:
        res = module.load_state_dict(tensors, strict=strict)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit {type(module).__name__}: {e}") from e
    return list(res.missing_keys)


# --------------------------------------------------------------------------- nested state trees

def _flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace tensors in a nested structure by ``{"__tensor__": key}`` references."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, np.ndarray):
        tensors[prefix] = torch.from_numpy(np.ascontiguousarray(obj))
        return {"__ndarray__": prefix}
    if isinstance(obj, dict):
        return {"__dict__": [[_flatten(k, f"{prefix}/k{i}", tensors), _flatten(v, f"{prefix}/{i}", tensors)]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_flatten(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_flatten(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint state (at {prefix})")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
        if "__dict__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
        raise CheckpointError(f"unexpected node in checkpoint state: {list(obj)[:3]}")
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_state(path: Path, state: dict[str, Any]) -> None:
    tensors: dict[str, torch.Tensor] = {}
    tree = _flatten(state, "s", tensors)
    save_tensors(path, tensors, {"pretrainlab.tree": json.dumps(tree)})


def load_state(path: Path) -> dict[str, Any]:
    tensors, meta = load_tensors(path)
    if "pretrainlab.tree" not in meta:
        raise CheckpointError(f"{path}: not a pretrainlab training-state file (no state tree)")
    return _unflatten(json.loads(meta["pretrainlab.tree"]), tensors)


# --------------------------------------------------------------------------- RNG

def rng_state() -> dict[str, Any]:
    st: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    torch.set_rng_state(st["torch"])
    np_state = st["numpy"]
    np.random.set_state(tuple(np_state))
    py = st["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


# --------------------------------------------------------------------------- checkpoint folders

def save_checkpoint(ckpt_dir: Path, step: int, model_state: dict[str, torch.Tensor],
                    train_state: dict[str, Any], meta: dict[str, Any], keep: int = 2) -> Path:
    """Write ``ckpt_dir/step_{step:06d}`` atomically, then point ``latest`` at it; prune old ones."""
    ckpt_dir = Path(ckpt_dir)
    final = ckpt_dir / f"step_{step:06d}"
    with atomic_dir(final, overwrite=True) as tmp:
        save_tensors(tmp / "model.safetensors", model_state, {"step": str(step)})
        save_state(tmp / "state.safetensors", train_state)
        atomic_write_json(tmp / "meta.json", {"step": step, "time": time.time(), **meta})
    atomic_write_text(ckpt_dir / LATEST, final.name + "\n")
    if keep > 0:
        olds = sorted(p for p in ckpt_dir.glob("step_*") if p.is_dir() and p != final)
        for p in olds[: max(0, len(olds) - (keep - 1))]:
            shutil.rmtree(p, ignore_errors=True)
    return final


def find_checkpoint(path: Path) -> Path:
    """Resolve a run folder, a ``checkpoints`` folder or a ``step_*`` folder to one checkpoint folder."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint or run folder")
    if path.is_file() and path.suffix == ".safetensors":
        return path.parent
    if (path / "model.safetensors").exists():
        return path
    for cand in (path / LATEST, path / "checkpoints" / LATEST):
        if cand.exists():
            target = cand.parent / cand.read_text().strip()
            if (target / "model.safetensors").exists():
                return target
    steps = sorted((path / "checkpoints").glob("step_*")) or sorted(path.glob("step_*"))
    steps = [s for s in steps if (s / "model.safetensors").exists()]
    if steps:
        return steps[-1]
    raise CheckpointError(f"{path}: holds no checkpoint (expected model.safetensors or checkpoints/latest)")


def read_meta(ckpt: Path) -> dict[str, Any]:
    folder = find_checkpoint(ckpt)
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{folder / 'meta.json'}: unreadable ({e})") from e


# --------------------------------------------------------------------------- foreign (pickled) checkpoints

class InertStandIn:
    """Stands in for a class named in a foreign pickle that we must not (or cannot) import.

    It is built with the pickle's arguments and state, keeps them as data, and runs no code of the
    original class: ``args`` (constructor arguments) and ``state`` (what ``__setstate__`` received).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<{type(self).__name__} state={type(self.state).__name__}>"


def inert_class(qualified_name: str) -> type:
    """A fresh :class:`InertStandIn` subclass named after ``qualified_name`` (e.g. ``optimizers.WarmupLinearSchedule``)."""
    return type(qualified_name.rsplit(".", 1)[-1], (InertStandIn,), {"__module__": qualified_name.rsplit(".", 1)[0]})


def load_torch_file(path: str | Path, allow: Any = (), stand_ins: Any = (), what: str = "checkpoint") -> Any:
    """Read a foreign ``torch.save`` file WITHOUT executing pickled code.

    ``torch.load(weights_only=True, map_location="cpu")``: only tensors, containers and primitive
    types are rebuilt, plus the classes in ``allow`` (objects such as ``argparse.Namespace``) and the
    names in ``stand_ins`` (``"optimizers.WarmupLinearSchedule"``), which are rebuilt as inert
    :class:`InertStandIn` objects holding their state as data. Any other global in the pickle is
    refused with a :class:`CheckpointError` that names the file and the global; a file that is not
    a torch checkpoint at all gets one too. This is the only place where the project unpickles.
    """
    import pickle

    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: file not found")
    if p.is_dir():
        raise CheckpointError(f"{p}: is a folder, expected a {what} file")
    safe: list[Any] = list(allow)
    for name in stand_ins:
        safe.append((inert_class(name), name))
    try:
        with torch.serialization.safe_globals(safe):
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        import re

        # torch names the offending global: "Unsupported global: GLOBAL x.y" / "unsupported GLOBAL x.y whose ..."
        hit = re.search(r"GLOBAL ([\w.]+)", str(e))
        why = (f"refused: the pickle would load '{hit.group(1)}', which is not an allowed type (no code from the "
               "file is run)" if hit else "refused: not loadable without running pickled code")
        raise CheckpointError(f"{p}: {why}") from None
    except Exception as e:  # noqa: BLE001 - torch / zipfile / pickle raise many types for a file that is not a checkpoint
        first = str(e).splitlines()[0][:200] if str(e) else ""
        raise CheckpointError(f"{p}: not a readable torch {what} ({type(e).__name__}: {first})") from None
