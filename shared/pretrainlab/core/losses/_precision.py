"""Run a loss in float32 even inside an autocast region.

Casting the inputs with ``.float()`` is not enough under ``torch.autocast``: matmuls inside the
region are re-cast to bf16 / fp16. ``float32_loss`` disables autocast for the device of the
first tensor argument while the loss runs (the losses cast their inputs to float32 themselves).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import torch

F = TypeVar("F", bound=Callable[..., Any])


def _first_tensor(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    for a in (*args, *kwargs.values()):
        if isinstance(a, torch.Tensor):
            return a
        if isinstance(a, (list, tuple)) and a and isinstance(a[0], torch.Tensor):
            return a[0]
    return None


def float32_loss(fn: F) -> F:
    """Decorator: call ``fn`` with autocast disabled on the first tensor argument's device type."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = _first_tensor(args, kwargs)
        if t is None or not torch.is_autocast_enabled(t.device.type):
            return fn(*args, **kwargs)
        with torch.autocast(device_type=t.device.type, enabled=False):
            return fn(*args, **kwargs)

    return cast(F, wrapper)
