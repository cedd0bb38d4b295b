"""Helpers shared by the Gradio apps: checkpoint discovery, device choice, input validation,
error display and launching. ``gradio`` is imported lazily (only apps and this module use it).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
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


IMAGE_OUT_MAX_AGE_S = 600  # rendered outputs unused for this long are pruned (Gradio copies them within ms)
_image_out: dict[str, Any] = {"dir": None, "writes": 0}
_image_lock = threading.Lock()


def image_out_dir() -> Path:
    """This process's folder for demo outputs rendered from arrays: a fresh ``pretrainlab-demo-*`` folder
    in the system temp folder (which Gradio serves from), removed when the process exits."""
    import atexit
    import shutil
    import tempfile

    with _image_lock:
        if _image_out["dir"] is None or not Path(_image_out["dir"]).is_dir():
            d = tempfile.mkdtemp(prefix="pretrainlab-demo-")
            atexit.register(shutil.rmtree, d, True)
            _image_out["dir"] = d
        return Path(_image_out["dir"])


def image_file(img: Any, fmt: str = "webp") -> str:
    """Write an image output (a uint8 HxW[xC] array or a PIL image) to a content-addressed file and
    return its path.

    Why: Gradio writes array / PIL outputs to its cache as ``<cache>/<hash of the bytes>/image.webp``
    with a plain ``write_bytes`` (gradio 6 ``processing_utils.save_pil_to_cache``), so two concurrent
    requests with the same answer rewrite the same file while a client downloads it: the download ends
    short ("peer closed connection without sending complete message body", 2 of 799 calls in
    ``benchmarks/hub_load.py``). A file path output goes through Gradio's ``save_file_to_cache``
    instead, which copies atomically and never rewrites an existing copy. Here the same bytes always map
    to the same name, written under a temporary name and renamed into place once, so a file, once
    visible, never changes; a file handed out again is touched, and files unused for
    ``IMAGE_OUT_MAX_AGE_S`` are pruned now and then, all under one lock (a pruned file could otherwise
    vanish between being handed out and Gradio copying it, and Gradio would then serve a path it
    refuses with 403). The encoding is the one Gradio would have used (the component's ``format``, PIL
    defaults)."""
    import hashlib
    import io
    import tempfile
    import time

    import numpy as np
    from PIL import Image

    if not isinstance(img, Image.Image):
        arr = np.asarray(img)
        if arr.dtype != np.uint8:
            raise TypeError(f"image_file takes uint8 arrays or PIL images, not {arr.dtype}")
        img = Image.fromarray(arr)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    data = buf.getvalue()
    d = image_out_dir()
    path = d / f"{hashlib.sha256(data).hexdigest()[:32]}.{fmt}"
    with _image_lock:
        if path.exists():
            os.utime(path)
        else:
            fd, tmp = tempfile.mkstemp(dir=d, prefix=".part-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        _image_out["writes"] += 1
        if _image_out["writes"] % 200 == 0:  # the folder stays bounded
            cutoff = time.time() - IMAGE_OUT_MAX_AGE_S
            for old in d.iterdir():
                try:
                    if old != path and old.stat().st_mtime < cutoff:
                        old.unlink()
                except OSError:
                    pass
    return str(path)


def _files_for_images(value: Any, component: Any) -> Any:
    """``value`` with every uint8 array / PIL image it gives an Image or Gallery output replaced by
    ``image_file``; everything else (paths, updates, arrays of other dtypes, whose scaling Gradio
    decides) passes unchanged."""
    import numpy as np
    from PIL import Image

    kind = type(component).__name__
    if kind not in ("Image", "Gallery") or value is None:
        return value
    fmt = getattr(component, "format", None) or "webp"

    def conv(v: Any) -> Any:
        ok = isinstance(v, Image.Image) or (isinstance(v, np.ndarray) and v.dtype == np.uint8)
        return image_file(v, fmt) if ok else v

    if kind == "Image":
        return conv(value)
    if not isinstance(value, (list, tuple)):
        return value
    return [(conv(it[0]), *it[1:]) if isinstance(it, tuple) and it else conv(it) for it in value]


def run_button(button: Any, fn: Callable[..., Any], inputs: Any, outputs: Sequence[Any],
               api_name: str | None = None) -> Any:
    """``button.click`` that first clears ``outputs`` (so no stale result stays under an error), then
    runs ``guarded(fn)``; returns the event. ``api_name`` names the endpoint for API clients (the hub
    load test calls it; use ``"<domain>_<action>"`` so names stay unique inside the hub). Image and
    gallery outputs given as arrays are written with ``image_file`` (race-free under concurrent
    requests)."""
    import functools

    outs = list(outputs)
    clear = button.click(lambda: [None] * len(outs) if len(outs) != 1 else None, inputs=None, outputs=outs,
                         queue=False, api_visibility="private")
    inner = guarded(fn)

    @functools.wraps(inner)
    def answer(*args: Any) -> Any:
        res = inner(*args)
        if len(outs) == 1:
            return _files_for_images(res, outs[0])
        if not isinstance(res, (list, tuple)) or len(res) != len(outs):  # a {component: value} dict etc.
            return res
        return [_files_for_images(v, c) for v, c in zip(res, outs, strict=True)]

    return clear.then(answer, inputs=inputs, outputs=outs, api_name=api_name)


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


MALLOC_ARENAS = 2  # glibc malloc arenas of a demo server (MALLOC_ARENA_MAX in the environment wins)


def cap_malloc_arenas(n: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process (``mallopt(M_ARENA_MAX, n)``) unless the user set
    ``MALLOC_ARENA_MAX``; returns whether the cap was applied (False off glibc).

    Why: Gradio answers each request on a worker thread; glibc gives threads their own arenas (up to 8
    per core) and the large, short-lived numpy / torch buffers of the demos fragment each of them, so a
    server under steady concurrent load kept growing (benchmarks/hub_load.py, 8 sessions x 240 s: RSS
    1339 -> 1525 MB over the last three quarters of the run). With 2 arenas the same load stays bounded
    (README, "The demos under load")."""
    import ctypes
    import ctypes.util

    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-8, int(n)))  # M_ARENA_MAX = -8 (malloc.h)
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False


def launch(demo: Any, port: int = 7860, block: bool = True) -> Any:
    """Serve on 127.0.0.1 with analytics off and the upload limit set. Files the demos show may live in
    the synthetic-data cache (``$PRETRAINLAB_CACHE``, by default ~/.cache/pretrainlab: e.g. the face
    gallery) or the runs folder, which Gradio serves only when they are allowed paths."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    check_port(port)
    cap_malloc_arenas()
    return demo.queue(default_concurrency_limit=2).launch(
        server_name="127.0.0.1", server_port=port, max_file_size=f"{MAX_UPLOAD_MB}mb", show_error=True,
        prevent_thread_lock=not block, quiet=True, allowed_paths=[str(cache_root()), str(runs_root())])
