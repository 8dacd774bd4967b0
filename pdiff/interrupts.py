"""Ctrl-C that stops a run even when Python drops it.

CPython raises KeyboardInterrupt wherever the main thread is when it handles SIGINT. Inside a finalizer or a
weakref callback (torch and Python's weakref containers run many) the exception cannot propagate: Python hands
it to `sys.unraisablehook`, which prints "Exception ignored in ...", and the run carries on after one Ctrl-C
(python/cpython#95959). `notice_dropped_ctrl_c` wraps that hook to note a dropped KeyboardInterrupt;
`raise_if_dropped` raises it again, at every progress update (`StageProgress.update`) and as a run ends
(`running`), so such a run stops early and is marked KILLED, never FINISHED.

CPython also remembers a KeyboardInterrupt that escaped an `exec()` of a string (a dataclass or namedtuple
being built during a lazy import, say) even after it was caught; under `python -m pdiff` it then ends the
process by SIGINT instead of with our exit code 130. `forget_caught_ctrl_c` clears that note as pdiff exits.
"""

from __future__ import annotations

import sys
import threading

_dropped_ctrl_c = False


def notice_dropped_ctrl_c() -> None:
    """Wrap `sys.unraisablehook` (it still prints) so that a dropped KeyboardInterrupt is noted."""
    previous = sys.unraisablehook

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        global _dropped_ctrl_c
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _dropped_ctrl_c = True
        previous(unraisable)

    sys.unraisablehook = hook


def raise_if_dropped() -> None:
    """Raise again the KeyboardInterrupt Python dropped since the last call, if it did (main thread only: that
    is where Python raises it)."""
    global _dropped_ctrl_c
    if _dropped_ctrl_c and threading.current_thread() is threading.main_thread():
        _dropped_ctrl_c = False
        raise KeyboardInterrupt


def forget_caught_ctrl_c() -> None:
    """Clear CPython's note of a KeyboardInterrupt that left an `exec()` of a string: every such `exec` resets
    it, and `python -m` would otherwise turn our exit code into death by SIGINT."""
    exec("pass")  # noqa: S102 - a constant string, run for its side effect on that note
