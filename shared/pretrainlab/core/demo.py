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

from pretrainlab.core.data import DataError, runs_root

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


def newest_checkpoint(domain: str, root: Path | None = None) -> Path | None:
    """The newest checkpoint folder under ``runs/<domain>/`` (any run, any reproduction)."""
    root = (root or runs_root()) / domain
    if not root.exists():
        return None
    cands = [p for p in root.rglob("model.safetensors") if p.parent.name.startswith("step_")]
    if not cands:
        return None
    return max(cands, key=lambda p: p.stat().st_mtime).parent


def resolve_checkpoint(domain: str, ckpt: str | Path | None, train_smoke: Callable[[], Path]) -> tuple[Path, str]:
    """``ckpt`` if given; else the newest in ``runs/``; else train the smoke profile (and say so)."""
    from pretrainlab.core.checkpoint import find_checkpoint

    if ckpt:
        return find_checkpoint(Path(ckpt)), f"checkpoint: {ckpt}"
    found = newest_checkpoint(domain)
    if found is not None:
        return found, f"checkpoint: newest in runs/ ({found})"
    path = train_smoke()
    return find_checkpoint(path), f"no checkpoint found: trained the smoke profile first ({path})"


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


def user_error(err: Exception | str) -> Exception:
    """A ``gr.Error`` for the page (the app keeps serving)."""
    import gradio as gr

    return gr.Error(str(err))


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a prediction function so any bad-input error becomes a message on the page."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (DataError, ValueError, OSError) as e:
            raise user_error(e) from e

    return wrapper


def launch(demo: Any, port: int = 7860, block: bool = True) -> Any:
    """Serve on 127.0.0.1 with analytics off and the upload limit set."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    return demo.queue(default_concurrency_limit=2).launch(
        server_name="127.0.0.1", server_port=port, max_file_size=f"{MAX_UPLOAD_MB}mb", show_error=True,
        prevent_thread_lock=not block, quiet=True)
