"""`pdiff report`: collect finished eval runs into report.md (tables like the paper's, its numbers beside
ours), report.json and PNG plots, inside a `report` run; `--out DIR` also copies them there (and
`pdiff report --summary` then summarises such directories: pdiff.results.summary)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pydantic import Field

from pdiff.config import StageConfig, register_stage_config
from pdiff.envs import get_family
from pdiff.errors import UsageError
from pdiff.methods.registry import check_methods
from pdiff.results import gather, report_payload, write_report
from pdiff.results.tables import KIND_ORDER
from pdiff.stages.common import open_run, stage_run
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run


class ReportConfig(StageConfig):
    runs: list[str] | None = Field(
        None, description="Eval runs to report (default: every finished eval run)."
    )
    envs: list[str] | None = Field(None, description="Only these task families.")
    methods: list[str] | None = Field(
        None, description="Only these methods' cells, in every table (each guidance rule and setting kept)."
    )
    data_kinds: list[str] | None = Field(
        None,
        description="Only cells of these few-shot data kinds (zero-shot and the control count as expert).",
    )
    out: str | None = Field(
        None, description="Also copy report.md, report.json and the figures into this directory."
    )


register_stage_config("report", ReportConfig)


def run_report(workspace: Workspace, config: ReportConfig, *, argv: list[str]) -> tuple[Run, dict[str, Any]]:
    envs = [get_family(e).name for e in config.envs] if config.envs else None
    methods = check_methods(config.methods) if config.methods else None
    kinds = config.data_kinds or None  # none named: all, as for the families and methods
    unknown = [kind for kind in kinds or [] if kind not in KIND_ORDER]
    if unknown:
        raise UsageError(
            f"unknown few-shot data kind {unknown[0]!r} for --data-kinds",
            hint=f"choose from {', '.join(KIND_ORDER)}",
        )
    data = gather(workspace, config.runs, envs, methods, kinds)  # nothing to report fails before a run exists
    families = data.families()
    run, config = open_run(
        workspace,
        "report",
        config,
        argv=argv,
        family=families[0] if len(families) == 1 else None,
        seed=None,
        slug="report",
    )
    with stage_run(run):
        run.record_inputs("eval", [(r.run_id, None) for r in data.results])
        report, figures = write_report(workspace, data, run.dir, commit=run.manifest["git"].get("commit"))
        for path, kind in [
            (report, "report"),
            (run.dir / "report.json", "report_data"),
            *((p, "plot") for p in figures),
        ]:
            run.record_output(path, kind)
        copied = None
        if config.out:
            copied = Path(config.out)
            copied.mkdir(parents=True, exist_ok=True)
            shutil.copy2(report, copied / "report.md")
            shutil.copy2(run.dir / "report.json", copied / "report.json")  # what `report --summary` reads
            shutil.copytree(run.dir / "figures", copied / "figures", dirs_exist_ok=True)
        summary = {
            "report": str(report.relative_to(workspace.root)),
            "cells": len(data.results),
            "families": families,
            "figures": len(figures),
            "superseded": len(data.superseded),
            "copied_to": str(copied) if copied else None,
        }
        run.manifest["summary"].update(summary)
        run.save()
    return run, {**summary, "data": report_payload(data)}
