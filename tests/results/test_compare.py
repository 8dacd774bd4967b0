"""Comparing two reports' cells: equal when only run ids, times and machine details differ; each measured
difference named with its largest gap; a tolerance for reports regenerated on another machine."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from pdiff.results.compare import compare_reports

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = sorted((ROOT / "docs" / "results").glob("*/report.json"))


def published() -> dict:
    return json.loads(PUBLISHED[0].read_text())


def test_a_report_renamed_and_retimed_compares_equal_to_itself():
    before = published()
    after = copy.deepcopy(before)
    for result in after["results"]:
        result["run_id"], result["created_at"] = "another-run", "2030-01-01T00:00:00Z"
        result["compute_s"] = {}
    assert compare_reports(before, after) == []


def test_a_changed_seed_cell_is_named_with_its_gap_and_a_tolerance_can_accept_it():
    before = published()
    after = copy.deepcopy(before)
    after["results"][0]["score"]["by_seed_task"][0][0] += 0.25
    differences = compare_reports(before, after)
    assert [d.field for d in differences] == ["score.by_seed_task"]
    assert abs(differences[0].gap - 0.25) < 1e-9
    assert before["results"][0]["method"] in differences[0].line()
    assert compare_reports(before, after, tolerance=0.5) == []


def test_a_missing_cell_is_a_difference():
    before = published()
    after = copy.deepcopy(before)
    dropped = after["results"].pop()
    differences = compare_reports(before, after)
    assert [(d.field, d.before, d.after) for d in differences] == [("cell", "present", "missing")]
    assert dropped["method"] in differences[0].cell
