"""What a cell's runs recorded of how it was made (pdiff.results.recorded): the command, with the workspace
as WS however it was given."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from pdiff.results.recorded import command_of


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["pdiff", "-w", "{root}", "eval", "--tune", "t1"], "pdiff -w WS eval --tune t1"),
        (["/venv/bin/pdiff", "--workspace={root}", "report"], "pdiff --workspace=WS report"),
        (["pdiff", "-w", "ws", "reproduce"], "pdiff -w WS reproduce"),  # relative to where it ran
        (
            ["scripts/fidelity.py", "{root}", "--env", "cheetah-vel"],
            "python scripts/fidelity.py WS --env cheetah-vel",
        ),
        ([], ""),
    ],
)
def test_a_recorded_command_names_the_workspace_ws_however_it_was_given(tmp_path: Path, argv, shown):
    run = SimpleNamespace(manifest={"argv": [a.format(root=tmp_path) for a in argv]})
    assert " ".join(command_of(run, tmp_path)) == shown
