"""A Ctrl-C that Python drops: the one fixture of that concern."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pdiff.interrupts
from pdiff.interrupts import notice_dropped_ctrl_c


class DropsCtrlC:
    """Raises KeyboardInterrupt in its finalizer, as a Ctrl-C that Python handles there does: it is only
    printed ("Exception ignored in ..."). Dropped as soon as it is made, if nothing keeps it."""

    def __del__(self) -> None:
        raise KeyboardInterrupt


@contextmanager
def noticing_dropped_ctrl_c() -> Iterator[None]:
    """pdiff's hook, as `pdiff`'s main installs it, then the previous hook and a clear flag back. Entered in
    the test's body: pytest before 8.4 swaps `sys.unraisablehook` at each test phase."""
    previous = sys.unraisablehook
    notice_dropped_ctrl_c()
    try:
        yield
    finally:
        sys.unraisablehook = previous
        pdiff.interrupts._dropped_ctrl_c = False
