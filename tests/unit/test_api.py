"""pdiff.api: the example in docs/api.md runs as written on a smoke workspace, and the records it returns
are those of the workspace's runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import pdiff.api as api

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
REPORT_JSON = Path(__file__).resolve().parents[2] / "docs" / "results" / "cheetah-dir-study" / "report.json"


@pytest.mark.metaworld
def test_the_documented_example_runs_on_a_smoke_workspace(pretrained, capsys):
    from support.stages import run_smoke

    ws, pretrain = pretrained
    run_smoke(ws, "diffuse", pretrain_run=pretrain.run_id)
    example = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    exec(example, {"WORKSPACE": str(ws.root), "REPORT_JSON": str(REPORT_JSON)})  # noqa: S102 - our own docs
    printed = capsys.readouterr().out
    assert f"{pretrain.run_id} FINISHED" in printed
    assert printed.count("real prompt:") == 2 and "generated prompt:" in printed and "cells:" in printed


@pytest.mark.metaworld
def test_records_and_frames_are_the_workspaces_runs(pretrained):
    ws, pretrain = pretrained
    records = api.runs(ws, stage="pretrain")
    assert [r["run_id"] for r in records] == [pretrain.run_id] and records[0]["status"] == "FINISHED"
    frame = api.as_frame(records)
    assert list(frame["run_id"]) == [pretrain.run_id] and "summary.final_loss" in frame.columns
    assert api.results(ws) == []  # no eval run yet: no report cell


def test_a_prompt_dt_needs_a_run_or_a_family(tmp_path):
    from pdiff.errors import UsageError
    from pdiff.workspace.root import Workspace

    ws, _ = Workspace.init(tmp_path / "w")
    with pytest.raises(UsageError, match="needs a run or a family"):
        api.load_prompt_dt(ws)


def test_only_the_documented_names_are_public():
    documented = set(re.findall(r"^\| `(\w+)\(", DOC.read_text(), re.M))
    functions = {name for name in api.__all__ if callable(getattr(api, name)) and name[0].islower()}
    assert functions == documented
