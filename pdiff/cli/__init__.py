"""The `pdiff` command line: parses, delegates to library functions, prints results."""

from __future__ import annotations

from pdiff.cli import demo_cmd, inspect_cmds, report_cmds, stage_cmds, sweep_cmd  # noqa: F401 - registers commands
from pdiff.cli.app import app
from pdiff.distributed import exit_rank, launched_by_torchrun
from pdiff.interrupts import forget_caught_ctrl_c, notice_dropped_ctrl_c

__all__ = ["app", "main"]


def main() -> None:
    notice_dropped_ctrl_c()
    try:
        app()
    except SystemExit as stop:
        if launched_by_torchrun():
            exit_rank(stop.code)
        raise
    finally:  # the exit code is ours (130 after Ctrl-C), whatever CPython noted on the way
        forget_caught_ctrl_c()
