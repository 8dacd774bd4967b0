"""Run the real CLI, in-process or in a process of its own as a script in CI would, and read its `--json`
output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import Result
from typer.testing import CliRunner

from pdiff.cli import app
from pdiff.workspace.root import Workspace

runner = CliRunner()


def _root(workspace: Workspace | Path) -> str:
    return str(workspace.root if isinstance(workspace, Workspace) else workspace)


def in_workspace(workspace: Workspace | Path, *args: str) -> Result:
    """`pdiff -w WORKSPACE ARGS` in-process; the result whatever its exit status."""
    return runner.invoke(app, ["-w", _root(workspace), *args])


def succeeded(workspace: Workspace | Path, *args: str) -> Result:
    """`pdiff -w WORKSPACE ARGS` in-process, exit status 0 asserted (the output in the message otherwise)."""
    result = in_workspace(workspace, *args)
    assert result.exit_code == 0, (args, result.output)
    return result


def workspace_json(workspace: Workspace | Path, *args: str) -> Any:  # what the command prints
    """`pdiff -w WORKSPACE --json ARGS`, as `pdiff_json`."""
    return pdiff_json("-w", _root(workspace), *args)


def _process_env(workspace: Workspace | Path | None, env: dict[str, str] | None) -> dict[str, str]:
    """The environment a child pdiff gets: PDIFF_WORKSPACE only where given (else the command line alone says
    where), `env` on top."""
    base = {k: v for k, v in os.environ.items() if k != "PDIFF_WORKSPACE"}
    if workspace is not None:
        base["PDIFF_WORKSPACE"] = _root(workspace)
    return {**base, **(env or {})}


def pdiff_process(
    *args: str,
    workspace: Workspace | Path | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m pdiff ARGS` in a process of its own, run to the end, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "pdiff", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_process_env(workspace, env),
    )


def pdiff_started(*args: str, workspace: Workspace | Path) -> subprocess.Popen[str]:
    """`python -m pdiff ARGS` started in a process of its own (stdout discarded, stderr piped as text)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pdiff", *args],
        env=_process_env(workspace, None),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def pdiff_json(*args: str) -> Any:  # whatever the command prints
    """`pdiff --json ARGS`: exit status 0 asserted (the output in the message otherwise), stdout parsed."""
    result = runner.invoke(app, ["--json", *args])
    assert result.exit_code == 0, (args, result.output)
    return json.loads(result.stdout)


def one_line_error(stderr: str) -> str:
    """The `error:` line of a failed command; asserts there is exactly one and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    assert "internal error" not in lines[0], stderr
    return lines[0]
