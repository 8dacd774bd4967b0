"""Comparing two reports' cells: equal when only run ids, times, commands and machine details differ; each
measured difference named with its largest gap; a tolerance for reports regenerated on another machine."""

from __future__ import annotations

import copy
import json

import numpy as np
from published_pages import ROOT
from report_rows import data, scored

from pdiff.results.compare import cell_moves, compare_reports, moves_text

PUBLISHED = sorted((ROOT / "docs" / "results").glob("*/report.json"))


def published() -> dict:
    return json.loads(PUBLISHED[0].read_text())


def test_a_report_renamed_and_retimed_compares_equal_to_itself():
    before = published()
    after = copy.deepcopy(before)
    for result in after["results"]:
        result["run_id"], result["created_at"] = "another-run", "2030-01-01T00:00:00Z"
        result["compute_s"] = {}
        result["command"] = (
            "pdiff -w WS reproduce --env FAMILY --data-kinds expert"  # made by another command
        )
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
    # a part of the study (Table 1 regenerated elsewhere) against the whole: only the cells both hold
    assert compare_reports(before, after, common=True) == []
    after["results"][0]["score"]["mean"] += 1.0
    assert [d.field for d in compare_reports(before, after, common=True)] == ["score.mean"]


def test_a_cell_moved_within_its_seeds_spread_is_level_and_one_moved_far_is_not():
    noise = np.array([[60.0, 70.0], [62.0, 71.0], [61.0, 69.0], [63.0, 72.0], [59.0, 70.0]])
    seeds = range(5)
    before = data(scored("ptdt", noise, seeds=seeds), scored("lora", noise, seeds=seeds))
    nudged = noise + np.array([[0.5, -0.5]] * 5)  # within what the seeds vary
    after = data(scored("ptdt", nudged, seeds=seeds), scored("lora", noise + 30.0, seeds=seeds))
    moves = {move.cell.split("method=")[1].split()[0]: move for move in cell_moves(before, after)}
    assert moves["ptdt"].verdict == "level" and moves["ptdt"].inside
    assert moves["lora"].verdict == "ahead" and not moves["lora"].inside
    assert moves["lora"].comparison.improvement.paired
    assert moves_text(list(moves.values())).endswith(
        "1 of 2 cells level by the verdict rule; 1 of 2 inside each other's interval"
    )
