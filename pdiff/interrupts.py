"""Ctrl-C that stops a run even when Python drops it.

CPython raises KeyboardInterrupt wherever the main thread is when it handles SIGINT. Inside a finalizer or a
weakref callback (torch and Python's weakref containers run many) the exception cannot propagate: Python hands
it to `sys.unraisablehook`, which prints "Exception ignored in ...", and the run carries on after one Ctrl-C
(python/cpython#95959). `notice_dropped_ctrl_c` wraps that hook to note a dropped KeyboardInterrupt, and every
progress update (`StageProgress.update`) calls `raise_if_dropped`, so the run stops at its next unit of work.
"""

from __future__ import annotations

import sys
from typing import Any

_dropped = False


def notice_dropped_ctrl_c() -> None:
    """Wrap `sys.unraisablehook` (it still prints) so that a dropped KeyboardInterrupt is noted."""
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        global _dropped
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _dropped = True
        previous(unraisable)

    sys.unraisablehook = hook


def raise_if_dropped() -> None:
    """Raise again the KeyboardInterrupt Python dropped since the last call, if it did."""
    global _dropped
    if _dropped:
        _dropped = False
        raise KeyboardInterrupt
