"""Progress lines: a resumed loop reports the rate of the work done since it resumed, not since zero."""

from __future__ import annotations

import logging
import re
import time
from types import SimpleNamespace

import pdiff.console
from pdiff.console import StageProgress


def test_resumed_progress_rates_only_the_new_work(caplog, monkeypatch):
    now = [time.monotonic()]  # a clock the test moves: no sleeping, no dependence on the machine's speed
    monkeypatch.setattr(pdiff.console, "time", SimpleNamespace(monotonic=lambda: now[0]))
    with caplog.at_level(logging.INFO, logger="pdiff"), StageProgress("job", total=1000, every_s=0.0) as bar:
        now[0] += 100.0  # the resumed run started long after the first one
        bar.restart_at(900)
        now[0] += 0.5
        bar.update(10)
    line = caplog.messages[-1]
    assert line.startswith("job: 910/1000 (91%)")
    eta = float(re.search(r"eta (\d+)s", line).group(1))
    # 10 units in 0.5 s since the restart, so the 90 left take 4.5 s (counting from zero: ~10 s).
    assert 4 <= eta <= 5, line


def test_units_reused_from_an_earlier_run_take_no_part_in_the_rate(caplog, monkeypatch):
    now = [time.monotonic()]
    monkeypatch.setattr(pdiff.console, "time", SimpleNamespace(monotonic=lambda: now[0]))
    with caplog.at_level(logging.INFO, logger="pdiff"), StageProgress("job", total=100, every_s=0.0) as bar:
        for _ in range(50):  # a resumed tune's kept trials: read back in no time, no line of their own
            bar.update(1, reused=True)
        assert not caplog.messages
        now[0] += 10.0
        bar.update(5)  # 5 new ones in 10 s
        assert caplog.messages[-1].startswith("job: 55/100 (55%)"), caplog.messages[-1]
        assert (
            "0.50/s" in caplog.messages[-1] and "eta 90s" in caplog.messages[-1]
        )  # counting kept ones: 5.5/s
        bar.update(5, reused=True)  # kept ones after new work: still not speed
        now[0] += 10.0
        bar.update(5)
    line = caplog.messages[-1]
    assert line.startswith("job: 65/100 (65%)") and "0.50/s" in line and "eta 70s" in line, line
