"""Run the real CLI in-process, as a script in CI would, and read its `--json` output."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from pdiff.cli import app

runner = CliRunner()


def pdiff_json(*args: str) -> Any:  # noqa: ANN401 - whatever the command prints
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
