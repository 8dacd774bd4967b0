"""Where output goes: results on stdout, logs and progress on stderr.

Rich progress bars on a terminal; plain periodic lines otherwise (CI logs stay readable), and every
progress line also goes to the run's log.txt when a run is active.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import sys
import time
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from pdiff.interrupts import raise_if_dropped

_no_color = bool(os.environ.get("NO_COLOR"))
# Piped output is read by scripts and people alike: no 80-column truncation of ids in tables.
out = Console(no_color=_no_color, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, no_color=_no_color, width=None if sys.stderr.isatty() else 160)
log = logging.getLogger("pdiff")


_workspace_flag: str | None = (
    None  # "-w ROOT" for every command pdiff suggests, when the user chose a workspace
)
_COMMAND = re.compile(r"\bpdiff (?!-w |--workspace |init )(?=[a-z])")  # `init` names its path itself


def suggest_with_workspace(root: Path | None) -> None:
    """Make every suggested `pdiff ...` command carry `-w ROOT` (absolute), so it runs when pasted
    anywhere."""
    global _workspace_flag
    _workspace_flag = None if root is None else f"-w {shlex.quote(str(root.expanduser().resolve()))}"


def pasteable(text: str) -> str:
    """`text` with the workspace the user gave inserted in each `pdiff <command>` it suggests."""
    return text if _workspace_flag is None else _COMMAND.sub(f"pdiff {_workspace_flag} ", text)


def next_step(text: str) -> None:
    """The `next:` line every command ends with (stderr), pasteable from any directory."""
    err.print(f"next: {pasteable(text)}", highlight=False, soft_wrap=True, markup=False)


def reset_consoles() -> None:
    """Rebind the consoles to the current sys.stdout/stderr (CliRunner swaps them per invocation)."""
    out.file = sys.stdout
    err.file = sys.stderr


def plain_progress() -> None:
    """Plain progress and log lines on stderr even on a terminal: for a process whose output shares the
    terminal with others' (`reproduce --jobs`), where live bars would overwrite each other."""
    err._force_terminal = False  # Rich's own switch; Console(force_terminal=False) sets the same


def setup_logging(verbosity: int = 0, quiet: bool = False) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbosity > 0 else logging.INFO)
    log.setLevel(level)
    for handler in list(log.handlers):
        if isinstance(handler, RichHandler | logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            log.removeHandler(handler)
    if err.is_terminal:
        handler: logging.Handler = RichHandler(
            console=err, show_path=False, show_time=False, markup=False, rich_tracebacks=False
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:  # a pipe or a CI log: plain lines with their time, not padded to a console width
        handler = logging.StreamHandler(err.file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"))
    log.addHandler(handler)
    log.propagate = False


def attach_run_log(run_dir: Path) -> logging.Handler:
    """Copy every log line to <run>/log.txt; the caller removes the handler when the run ends."""
    handler = logging.FileHandler(run_dir / "log.txt", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    return handler


def detach_run_log(handler: logging.Handler) -> None:
    log.removeHandler(handler)
    handler.close()


class MeasuredRemaining(TimeRemainingColumn):
    """Rich's time-remaining column, blank until a tenth of the work since the (re)start is done."""

    def render(self, task: Task) -> Text:
        start = task.fields.get("begun", 0)
        if task.total is None or task.completed - start < 0.1 * (task.total - start):
            return Text("eta …", style="progress.remaining")
        return super().render(task)


class StageProgress:
    """One progress bar for a stage: a Rich bar on a terminal, an INFO line every `every_s` otherwise.

    `unit` names what is counted ("episode steps"); `label()` says what is being worked on (a task, a seed).
    The ETA appears once a tenth of the remaining work is done: the first steps (loading, warm-up) say little.
    """

    def __init__(
        self, description: str, total: int, *, completed: int = 0, every_s: float = 10.0, unit: str = "steps"
    ) -> None:
        self.description = description
        self.unit = unit
        self.total = total
        self.completed = completed
        self.every_s = every_s
        self._start = time.monotonic()
        self._start_completed = completed
        self._last_line = 0.0
        self._finished_line = False
        self._fields = ""
        self._progress: Progress | None = None
        self._task: int | None = None

    def __enter__(self) -> StageProgress:
        if err.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.unit),
                TimeElapsedColumn(),
                MeasuredRemaining(),
                TextColumn("{task.fields[info]}"),
                console=err,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                self.description, total=self.total, completed=self.completed, info="", begun=self.completed
            )
        return self

    def update(self, advance: int = 1, *, reused: bool = False, **fields: float | str) -> None:
        """Count `advance` more units; `reused` ones were finished by an earlier run (a resume) and take
        no part in the rate or the ETA."""
        raise_if_dropped()  # each update is a point where a run may stop
        if reused and self.completed == self._start_completed:  # nothing new yet: start the clock after them
            self.restart_at(self.completed + advance)
            advance = 0
        elif reused:
            self._start_completed += advance
        self.completed += advance
        if fields:
            self._fields = " ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()
            )
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=self.completed, info=self._fields)
        now = time.monotonic()
        finished_now = self.completed >= self.total and not self._finished_line
        # kept units print no line of their own (the resume logs what it kept), so a line's rate is the new
        # work's
        if finished_now or (not reused and now - self._last_line >= self.every_s):
            self._finished_line = self._finished_line or finished_now
            self._last_line = now
            self._plain_line()

    def label(self, description: str) -> None:
        """Show what is being worked on now, e.g. `eval metaworld-reach seed 1`."""
        self.description = description
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=description)

    def restart_at(self, completed: int) -> None:
        """Continue from `completed` (a loop resumed from a checkpoint): rates count only work done from
        here."""
        self.completed = self._start_completed = completed
        self._start = time.monotonic()
        if self._progress is not None and self._task is not None:
            self._progress.reset(self._task, completed=completed, begun=completed)

    def _plain_line(self) -> None:
        elapsed = time.monotonic() - self._start
        done = self.completed - self._start_completed
        rate = done / elapsed if elapsed > 0 else 0.0
        measured = rate > 0 and done >= 0.1 * (self.total - self._start_completed)
        eta = f"eta {(self.total - self.completed) / rate:.0f}s" if measured else "eta: measuring"
        pct = 100.0 * self.completed / max(self.total, 1)
        line = (
            f"{self.description}: {self.completed}/{self.total} ({pct:.0f}%) {self.unit}, {rate:.2f}/s, "
            f"{eta} {self._fields}"
        )
        if self._progress is None:
            log.info(line.rstrip())
        else:  # the bar shows it; keep the log file complete
            for handler in log.handlers:
                if isinstance(handler, logging.FileHandler):
                    handler.emit(log.makeRecord(log.name, logging.INFO, "", 0, line.rstrip(), None, None))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
