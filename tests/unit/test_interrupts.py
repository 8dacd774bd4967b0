"""A Ctrl-C that Python drops inside a finalizer still stops a run, at its next progress update."""

from __future__ import annotations

import pytest
from support.interrupts import DropsCtrlC, noticing_dropped_ctrl_c

from pdiff.console import StageProgress


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_dropped_in_a_finalizer_stops_the_next_progress_update():
    with noticing_dropped_ctrl_c(), StageProgress("job", total=10) as bar:
        bar.update()
        DropsCtrlC()
        with pytest.raises(KeyboardInterrupt):
            bar.update()
        bar.update()  # one Ctrl-C, one stop
