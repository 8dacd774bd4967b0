"""A Ctrl-C that Python drops inside a finalizer still stops a run, at its next progress update."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from pdiff.console import StageProgress
from pdiff.interrupts import notice_dropped_ctrl_c


@pytest.fixture
def noticing():
    """pdiff's unraisable hook for the test, then the previous one back."""
    previous = sys.unraisablehook
    notice_dropped_ctrl_c()
    yield
    sys.unraisablehook = previous


def ctrl_c() -> None:
    """SIGINT to this process, handled (KeyboardInterrupt raised) before this returns."""
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(1000):  # Python runs signal handlers between bytecodes
        pass


class SignalledInFinalizer:
    def __del__(self) -> None:
        ctrl_c()  # the KeyboardInterrupt is only printed: "Exception ignored in ..."


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_dropped_in_a_finalizer_stops_the_next_progress_update(noticing):
    with StageProgress("job", total=10) as bar:
        bar.update()
        SignalledInFinalizer()  # collected at once: its finalizer gets the KeyboardInterrupt and drops it
        with pytest.raises(KeyboardInterrupt):
            bar.update()
        bar.update()  # one Ctrl-C, one stop


def test_a_ctrl_c_that_propagated_is_not_raised_again(noticing):
    with pytest.raises(KeyboardInterrupt):
        ctrl_c()
    with StageProgress("job", total=10) as bar:
        bar.update()
