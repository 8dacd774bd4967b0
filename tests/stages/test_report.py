"""`pdiff report` on a workspace with two methods' eval runs: `--methods` and `--data-kinds` keep only the
cells named (as a scaling rung is read off a whole study), and bad names are usage errors."""

from __future__ import annotations

import pytest
from support.stages import run_smoke

from pdiff.errors import ArtifactError, UsageError
from pdiff.stages.report import ReportConfig, run_report

pytestmark = pytest.mark.metaworld


def report_cells(ws, **filters) -> set[tuple[str, str]]:
    _, summary = run_report(ws, ReportConfig(**filters), argv=["pdiff", "report"])
    return {(r["method"], r["data_kind"]) for r in summary["data"]["results"]}


def test_report_keeps_only_the_methods_and_data_kinds_named(pretrained):
    ws, _ = pretrained
    for method in ("prompt-dt", "lora"):
        tune, _ = run_smoke(ws, "tune", method=method)
        run_smoke(ws, "eval", tune_run=tune.run_id)
    by_hand, _ = run_smoke(ws, "tune", method="lora", lr=1e-3, selection="off")  # a cell of its own, labelled
    run_smoke(ws, "eval", tune_run=by_hand.run_id)
    every = report_cells(ws)
    assert every == {("prompt-dt", "expert"), ("lora", "expert"), ("lora [lr 0.001 by hand]", "expert")}
    assert report_cells(ws, methods=["lora"]) == every - {("prompt-dt", "expert")}
    assert report_cells(ws, methods=["lora", "prompt-dt"], data_kinds=["expert"]) == every
    assert report_cells(ws, data_kinds=[]) == every  # none named: all
    with pytest.raises(ArtifactError, match="no finished eval runs for medium"):
        report_cells(ws, data_kinds=["medium"])
    with pytest.raises(UsageError, match="unknown method 'lora2' for --methods"):
        report_cells(ws, methods=["lora2"])
    with pytest.raises(UsageError, match="unknown few-shot data kind 'expret'"):
        report_cells(ws, data_kinds=["expret"])
