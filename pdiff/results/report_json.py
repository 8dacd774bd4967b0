"""A published report.json read back (`pdiff report --out DIR` writes it): its cells as Results, and each
interval restated by today's estimator, so that summaries and the scaling page never mix estimators."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from pdiff.errors import ArtifactError
from pdiff.methods.zero_shot import recorded_setting
from pdiff.results.cells import ReportData, Result, Score

SCORES = ("score", "normalized", "success", "heldout_loss")  # a Result's fields that hold a Score


def result_from_dict(payload: dict[str, Any]) -> Result:
    """A report.json result back into a Result (its scores back into Scores)."""
    scores = {key: Score(**payload[key]) if payload.get(key) else None for key in SCORES}
    # a report.json written before the zero-shot setting was kept: its zero-shot cells predate it
    older = payload["shots"] == 0 and "zero_shot" not in payload
    return Result(**{**payload, **scores, **({"zero_shot": recorded_setting(None)} if older else {})})


def restated(result: Result) -> Result:
    """`result` with each score's interval computed again from its per-seed scores (`Score.with_interval`)."""
    scores = {key: score.with_interval() for key in SCORES if (score := getattr(result, key))}
    return replace(result, **scores)


def read_report(path: Path) -> ReportData:
    """The cells of one report.json (what it superseded or ignored stays in that report)."""
    try:
        payload = json.loads(path.read_text())
        results = [result_from_dict(r) for r in payload["results"]]
        fidelity = [result_from_dict(r) for r in payload.get("fidelity", [])]  # none before it was kept
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(
            f"{path} is not a pdiff report.json ({exc})", hint="write it again with `pdiff report --out DIR`"
        ) from exc
    return ReportData(results, [], [], payload.get("lineage", {}), fidelity)
