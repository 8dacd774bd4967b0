"""Reduced-precision forward passes for pdiff's models, switched on per model instance.

`pdiff.compute.use_precision` sets `compute_dtype`; the models' public forward methods then run under
autocast and hand back float32, so losses, gradients and the code around a model never see bfloat16.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch


class Autocast:
    """Mixin for an nn.Module: `self.autocast()` is autocast to `compute_dtype`, or nothing when it is
    None."""

    compute_dtype: torch.dtype | None = None

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.compute_dtype is None:
            return contextlib.nullcontext()
        device = next(self.parameters()).device  # type: ignore[attr-defined]
        return torch.autocast(device.type, dtype=self.compute_dtype)


def autocast_method(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run an Autocast module's method under its `autocast()` (the model's inner passes, once each)."""

    @functools.wraps(method)
    def wrapped(self: Autocast, *args: Any, **kwargs: Any) -> Any:
        with self.autocast():
            return method(self, *args, **kwargs)

    return wrapped
