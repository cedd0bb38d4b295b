"""Helpers shared by the Gradio apps: checkpoint discovery, device choice, input validation,
error display and launching. ``gradio`` is imported lazily (only apps and this module use it).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from pretrainlab.core.data import DataError, cache_root, runs_root

MAX_UPLOAD_MB = 50  # every app's upload limit


def apps_dir() -> Path:
    """``$PRETRAINLAB_APPS`` or the repository's ``apps/`` folder."""
    env = os.environ.get("PRETRAINLAB_APPS")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "apps").is_dir():
            return parent / "apps"
    return Path.cwd() / "apps"


def load_app_module(domain: str) -> ModuleType:
    """Import ``apps/<domain>/app.py`` by path (apps are not an installed package)."""
    path = apps_dir() / domain / "app.py"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no demo app for '{domain}'")
    name = f"pretrainlab_app_{domain}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def newest_checkpoint(domain: str, root: Path | None = None, task: str | Sequence[str] | None = None) -> Path | None:
    """The newest checkpoint folder under ``runs/<domain>/`` (any run, any reproduction); ``task``:
    only checkpoints whose ``meta.json`` names that task class (or one of them)."""
    import json

    root = (root or runs_root()) / domain
    if not root.exists():
        return None
    cands = [p for p in root.rglob("model.safetensors") if p.parent.name.startswith("step_")]
    if task is not None:
        wanted = {task} if isinstance(task, str) else set(task)

        def task_of(p: Path) -> str | None:
            try:
                return json.loads((p.parent / "meta.json").read_text()).get("task")
            except (OSError, json.JSONDecodeError):
                return None

        cands = [p for p in cands if task_of(p) in wanted]
    if not cands:
        return None
    return max(cands, key=lambda p: p.stat().st_mtime).parent


def resolve_checkpoint(domain: str, ckpt: str | Path | None, train_smoke: Callable[[], Path],
                       task: str | Sequence[str] | None = None) -> tuple[Path, str]:
    """``ckpt`` if given; else the newest in ``runs/`` (of ``task`` when given); else train the smoke
    profile (and say so)."""
    from pretrainlab.core.checkpoint import find_checkpoint

    if ckpt:
        return find_checkpoint(Path(ckpt)), f"checkpoint: {ckpt}"
    found = newest_checkpoint(domain, task=task)
    if found is not None:
        return found, f"checkpoint: newest in runs/ ({found})"
    path = train_smoke()
    return find_checkpoint(path), f"no checkpoint found: trained the smoke profile first ({path})"


def describe_checkpoint(folder: str | Path) -> str:
    """What a visitor should know about a checkpoint: how long and on what it was trained.

    Reads ``meta.json`` (step, ``config.data.profile`` or ``config.data_profile``, an
    ``imported_from`` field for converted reference weights). A smoke-profile model is flagged:
    its outputs are not meaningful.
    """
    import json

    folder = Path(folder)
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        return f"weights from {folder.name} (no training record: imported or external)"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        return f"weights from {folder.name} (unreadable training record)"
    if meta.get("imported_from"):
        return f"imported reference weights ({meta['imported_from']})"
    cfg = meta.get("config", {}) or {}
    profile = (cfg.get("data") or {}).get("profile") if isinstance(cfg.get("data"), dict) else None
    profile = profile or cfg.get("data_profile") or "unknown"
    step = meta.get("step", "?")
    text = f"trained {step} steps, {profile} profile ({folder.parent.parent.name}/{folder.name})"
    if profile == "smoke":
        text += " — a smoke-test model trained for seconds: its outputs are NOT meaningful; train the tiny or full profile"
    return text


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def validate_upload(path: str | Path | None, allowed: Sequence[str], max_mb: float = MAX_UPLOAD_MB,
                    what: str = "file") -> Path:
    """Check an uploaded file exists, has an allowed suffix and is not too large; raise DataError."""
    if path is None or str(path) == "":
        raise DataError("(no file)", f"please upload a {what}")
    p = Path(path)
    if not p.exists():
        raise DataError(p.name, "uploaded file is missing")
    name = p.name.lower()
    if not any(name.endswith(s.lower()) for s in allowed):
        raise DataError(p.name, f"unsupported file type; expected one of {', '.join(allowed)}")
    size = p.stat().st_size
    if size == 0:
        raise DataError(p.name, "file is empty")
    if size > max_mb * 2**20:
        raise DataError(p.name, f"file is {size / 2**20:.1f} MB, over the {max_mb:g} MB limit")
    return p


def _upload_roots() -> list[str]:
    import tempfile

    roots = [os.environ.get("GRADIO_TEMP_DIR", ""), str(Path(tempfile.gettempdir()) / "gradio")]
    return [r.rstrip("/") for r in roots if r]


def friendly_message(err: Exception | str) -> str:
    """An error message for the page: Gradio's temporary upload paths shortened to the file name the
    visitor uploaded, object reprs (``<_io.BytesIO object at 0x...>``) replaced by "the upload"."""
    import re

    msg = str(err)
    for root in _upload_roots():
        msg = re.sub(re.escape(root) + r"/(?:[^/\s:'\"]+/)*([^/\s:'\"]+)", r"\1", msg)
    msg = re.sub(r"<_io\.\w+ object at 0x[0-9a-f]+>", "the upload", msg)
    return msg


def user_error(err: Exception | str) -> Exception:
    """A ``gr.Error`` for the page (the app keeps serving)."""
    import gradio as gr

    return gr.Error(friendly_message(err))


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a prediction function so any bad-input error becomes a message on the page."""
    import functools

    from pretrainlab.core.checkpoint import CheckpointError
    from pretrainlab.core.config import ConfigError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (DataError, ConfigError, CheckpointError, ValueError, OSError, MemoryError) as e:
            raise user_error(e) from e

    return wrapper


def run_button(button: Any, fn: Callable[..., Any], inputs: Any, outputs: Sequence[Any],
               api_name: str | None = None) -> Any:
    """``button.click`` that first clears ``outputs`` (so no stale result stays under an error), then
    runs ``guarded(fn)``; returns the event. ``api_name`` names the endpoint for API clients (the hub
    load test calls it; use ``"<domain>_<action>"`` so names stay unique inside the hub)."""
    outs = list(outputs)
    clear = button.click(lambda: [None] * len(outs) if len(outs) != 1 else None, inputs=None, outputs=outs,
                         queue=False, api_visibility="private")
    return clear.then(guarded(fn), inputs=inputs, outputs=outs, api_name=api_name)


def check_port(port: int, host: str = "127.0.0.1") -> None:
    """Refuse a port that is already in use, before building anything (ConfigError naming it)."""
    import socket

    from pretrainlab.core.config import ConfigError

    if not 1 <= int(port) <= 65535:
        raise ConfigError(f"--port {port}: not a TCP port (1-65535)")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, int(port)))
        except OSError:
            raise ConfigError(f"--port {port}: already in use on {host}; pass another --port") from None


def launch(demo: Any, port: int = 7860, block: bool = True) -> Any:
    """Serve on 127.0.0.1 with analytics off and the upload limit set. Files the demos show may live in
    the synthetic-data cache (``$PRETRAINLAB_CACHE``, by default ~/.cache/pretrainlab: e.g. the face
    gallery) or the runs folder, which Gradio serves only when they are allowed paths."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    check_port(port)
    return demo.queue(default_concurrency_limit=2).launch(
        server_name="127.0.0.1", server_port=port, max_file_size=f"{MAX_UPLOAD_MB}mb", show_error=True,
        prevent_thread_lock=not block, quiet=True, allowed_paths=[str(cache_root()), str(runs_root())])
