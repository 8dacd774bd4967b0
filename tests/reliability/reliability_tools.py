"""Helpers of the reliability tests: SIGKILL a real `pdiff` process at a chosen point, damage files, run the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from pdiff.cli import app
from pdiff.workspace.root import Workspace

FAMILY = "metaworld-reach"
runner = CliRunner()

KillPoint = Callable[[Path], bool]  # run directory -> "kill now"


def cli(ws: Workspace | Path, *args: str):  # noqa: ANN201 - click's Result
    root = ws.root if isinstance(ws, Workspace) else ws
    return runner.invoke(app, ["-w", str(root), *args])


def started(run_dir: Path) -> bool:
    return (run_dir / "run.json").is_file()


def checkpoint_at(step: int) -> KillPoint:
    def ready(run_dir: Path) -> bool:
        pointer = run_dir / "checkpoints" / "latest.json"
        try:
            return json.loads(pointer.read_text())["step"] >= step
        except (OSError, ValueError, KeyError):
            return False

    return ready


def metrics_rows(count: int) -> KillPoint:
    def ready(run_dir: Path) -> bool:
        path = run_dir / "metrics.jsonl"
        return path.is_file() and path.read_text().count("\n") >= count

    return ready


def file_exists(pattern: str) -> KillPoint:
    return lambda run_dir: any(run_dir.glob(pattern))


def recorded_outputs(count: int) -> KillPoint:
    def ready(run_dir: Path) -> bool:
        try:
            return len(json.loads((run_dir / "run.json").read_text())["outputs"]) >= count
        except (OSError, ValueError, KeyError):
            return False

    return ready


@dataclass
class Pipeline:
    """A workspace with one finished smoke run of each training stage (see conftest.py)."""

    ws: Workspace
    pretrain: str
    diffuse: str
    tune: str
    eval: str


@dataclass
class Kill:
    run_id: str | None  # the run the process had opened
    killed: bool  # False: the process ended before the kill point


def kill_at(ws: Workspace, stage: str, args: list[str], point: KillPoint, *, delay: float = 0.0) -> Kill:
    """Run `pdiff <stage> <args>` in a subprocess and SIGKILL it once its new run satisfies `point` (+ delay)."""
    stage_dir = ws.root / "runs" / stage
    before = set(os.listdir(stage_dir)) if stage_dir.is_dir() else set()
    env = {**os.environ, "PDIFF_WORKSPACE": str(ws.root)}
    child = subprocess.Popen([sys.executable, "-m", "pdiff", stage, *args], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    run_dir, deadline = None, time.time() + 240
    try:
        while child.poll() is None and time.time() < deadline:
            if run_dir is None and stage_dir.is_dir():
                new = sorted(set(os.listdir(stage_dir)) - before)
                run_dir = stage_dir / new[0] if new else None
            if run_dir is not None and point(run_dir):
                time.sleep(delay)
                break
            time.sleep(0.005)
    finally:
        killed = child.poll() is None
        if killed:
            os.kill(child.pid, signal.SIGKILL)
        _, stderr = child.communicate()
    assert killed or child.returncode == 0, stderr.decode()[-2000:]
    return Kill(run_dir.name if run_dir is not None else None, killed)


def flip_byte(path: Path, fraction: float) -> None:
    """Flip the lowest bit of the byte at `fraction` of the file (a single-bit disk or memory error)."""
    data = bytearray(path.read_bytes())
    index = min(int(len(data) * fraction), len(data) - 1)
    data[index] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    """Cut the file to half its length (a copy or a write that stopped early)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def one_line_error(stderr: str) -> str:
    """The `error:` line of a failed command; asserts there is exactly one and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    assert "internal error" not in lines[0], stderr
    return lines[0]
