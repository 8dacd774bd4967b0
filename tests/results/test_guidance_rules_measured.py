"""The guidance rules measured without test returns: the traces beside each rule, the held-out loss paired by
seed against the default, and the default-rule sentence the written rule gives."""

from __future__ import annotations

import numpy as np
from report_rows import data, result, score_of

from pdiff.results import render_markdown
from pdiff.results.cells import Result
from pdiff.results.guidance_rules import lower_loss, rules_table, word
from pdiff.results.report_json import result_from_dict


def rule(name: str, losses: list[float] | None, seeds: tuple[int, ...] = (0, 1, 2, 3, 4)) -> Result:
    row = result("prompt-diffuser", -40.0, variant=name)
    row.seeds = list(seeds)
    row.heldout_loss = score_of(np.array(losses)[:, None]) if losses is not None else None
    row.guidance_trace = {"removed_share": 0.3, "cosine": -0.02, "loss_dm": 0.41, "loss_plm": 0.035}
    return row


PROJECT = [0.0120, 0.0130, 0.0110, 0.0125, 0.0118]


def test_a_rule_lower_on_every_seed_is_lower_and_becomes_the_measured_default():
    gpm = rule("gpm", [x - 0.001 for x in PROJECT])
    improvement = lower_loss(gpm, rule("project", PROJECT))
    assert improvement.paired and improvement.probability > 0.5 and word(improvement) == "lower"
    table = rules_table(data(rule("project", PROJECT), gpm), 5)
    assert [row[1] for row in table.rows] == ["`project`", "`gpm`"]
    assert table.rows[1][2:6] == ["0.30", "-0.02", "0.410", "0.0350"]
    assert table.rows[1][-1].endswith("(lower)") and table.rows[0][-1] == ""
    assert "It is `gpm` (`gpm` on cheetah-vel: lower)." in table.notes[-1]


def test_a_candidate_lower_on_some_seeds_only_leaves_the_default():
    mixed = [x + (0.002 if i % 2 else -0.002) for i, x in enumerate(PROJECT)]
    table = rules_table(data(rule("project", PROJECT), rule("gpm", mixed)), 5)
    assert table.rows[1][-1].endswith("(level)")
    assert "The default stays `project` (`gpm` on cheetah-vel: level)." in table.notes[-1]


def test_a_rule_that_drops_part_of_the_method_is_measured_but_never_made_the_default():
    lower = [x - 0.001 for x in PROJECT]
    rows = data(rule("project", PROJECT), rule("plm-only", lower), rule("gpm", PROJECT))
    note = rules_table(rows, 5).notes[-1]
    assert "The default stays `project`" in note
    assert "Lower than `project` but no candidate: `plm-only` on cheetah-vel." in note


def test_a_candidate_must_be_lower_on_every_family():
    lower = [x - 0.001 for x in PROJECT]
    vel = [rule("project", PROJECT), rule("gpm", lower)]
    pick = [rule("project", PROJECT), rule("gpm", PROJECT)]
    for row in pick:
        row.family = "metaworld-pick-place"
    note = rules_table(data(*vel, *pick), 5).notes[-1]
    assert "The default stays `project`" in note and "metaworld-pick-place: level" in note


def test_only_the_seeds_both_ran_are_paired_and_older_runs_compare_nothing():
    ten = PROJECT + [0.5] * 5  # seeds 5..9: far off, but the rule never ran them
    gpm = rule("gpm", [x - 0.001 for x in PROJECT])
    assert word(lower_loss(gpm, rule("project", ten, seeds=tuple(range(10))))) == "lower"
    older = rules_table(data(rule("project", None), rule("gpm", None)), 5)
    assert older.rows[1][-1] == "" and "Nothing to compare" in older.notes[-1]


def test_the_held_out_loss_survives_a_report_json_and_the_report_shows_the_table(tmp_path):
    gpm = rule("gpm", [x - 0.001 for x in PROJECT])
    assert result_from_dict(gpm.to_dict()).heldout_loss == gpm.heldout_loss
    markdown = render_markdown(data(rule("project", PROJECT), gpm), [], tmp_path, commit=None)
    assert "Guidance rules, without test returns" in markdown


def test_runs_that_kept_nothing_of_this_make_no_table():
    bare = [result("prompt-diffuser", -40.0, variant=name) for name in ("project", "sum")]
    assert rules_table(data(*bare), 5) is None
