"""The written verdict rule, applied by code: ahead, level or behind from the interval of P(improvement) and a
practical threshold on the normalised score; a split between tasks is shown, not averaged into 0.50."""

from __future__ import annotations

import numpy as np
import pytest
from report_rows import data, result, scored

from pdiff.results.standing import standing, standings
from pdiff.verdicts import PRACTICAL_THRESHOLD, compare, verdict

SEEDS = [0, 1, 2]
NORMALISED = np.array([[60.0, 70.0, 65.0], [61.0, 72.0, 64.0], [62.0, 71.0, 66.0]])  # seeds × tasks


@pytest.mark.parametrize(
    ("interval", "difference", "expected"),
    [
        ((0.6, 0.9), PRACTICAL_THRESHOLD + 1, "ahead"),
        ((0.6, 0.9), PRACTICAL_THRESHOLD - 1, "level"),  # reliable but too small to matter
        ((0.4, 0.9), 30.0, "level"),  # large but the interval reaches 0.5
        ((0.5, 0.9), 30.0, "level"),  # touching 0.5 is not above it
        ((0.1, 0.4), -(PRACTICAL_THRESHOLD + 1), "behind"),
        ((0.1, 0.4), PRACTICAL_THRESHOLD + 1, "level"),  # the two criteria disagree in direction
        (None, 30.0, "level"),  # one seed: no interval
        ((0.6, 0.9), None, "level"),  # no normalised score: the threshold cannot be checked
    ],
)
def test_the_rule_needs_a_reliable_direction_and_a_difference_that_matters(
    interval, difference, expected
) -> None:
    assert verdict(interval, difference) == expected


def test_clear_gaps_on_every_seed_are_ahead_or_behind_and_small_ones_level() -> None:
    assert compare(NORMALISED + 10, SEEDS, NORMALISED, SEEDS, NORMALISED + 10, NORMALISED).verdict == "ahead"
    assert compare(NORMALISED - 10, SEEDS, NORMALISED, SEEDS, NORMALISED - 10, NORMALISED).verdict == "behind"
    small = compare(NORMALISED + 3, SEEDS, NORMALISED, SEEDS, NORMALISED + 3, NORMALISED)  # above every seed
    assert small.improvement.probability == 1.0 and small.verdict == "level"
    assert compare(NORMALISED + 10, SEEDS, NORMALISED, SEEDS).verdict == "level"  # no normalised scores


def test_a_half_made_of_opposite_tasks_is_reported_as_a_split() -> None:
    ours = np.array(
        [[80.0, 20.0], [82.0, 21.0], [81.0, 19.0]]
    )  # every seed: task 0 far ahead, task 1 far behind
    other = ours[:, ::-1]
    comparison = compare(ours, SEEDS, other, SEEDS, ours, other)
    assert comparison.improvement.probability == 0.5 and comparison.improvement.interval == (0.5, 0.5)
    assert comparison.verdict == "level" and comparison.split
    assert [task.verdict for task in comparison.tasks] == ["ahead", "behind"]
    evidence = comparison.evidence()
    assert evidence.startswith("P(improvement) 0.50 [0.50, 0.50], normalised +0.0")
    assert evidence.endswith("split: task 0 ahead (1.00), task 1 behind (0.00)")
    # tasks that agree, or are level, are no split
    agree = compare(ours + 10, SEEDS, ours, SEEDS, ours + 10, ours)
    assert not agree.split and "split" not in agree.evidence()


def test_the_report_states_each_comparison_in_the_rules_words() -> None:
    ours = scored("prompt-diffuser", NORMALISED)
    rows = data(
        ours,
        scored("lora", NORMALISED - 10),
        scored("ptdt", NORMALISED + 10),
        scored("adaptor", NORMALISED[::-1] + 0.1),  # higher mean, seeds that overlap ours
        scored("soft-prompt", NORMALISED + 3),
    )  # every seed above ours, by less than the threshold
    text = "\n".join(standings(rows))
    assert (
        "**prompt-diffuser is behind ptdt**" in text
        and "P(improvement) 0.00 [0.00, 0.00], normalised -10.0" in text
    )
    assert "is ahead of lora (P(improvement) 1.00 [1.00, 1.00], normalised +10.0)" in text
    # every seed of soft-prompt beats ours, by 3 points: reliable, too small to matter
    assert "is level with soft-prompt (P(improvement) 0.00 [0.00, 0.00], normalised -3.0); adaptor (" in text
    assert "behind adaptor" not in text and "behind soft-prompt" not in text


def test_a_comparison_pairs_runs_by_seed_id_not_by_position() -> None:
    ours = scored("prompt-diffuser", NORMALISED)
    other = NORMALISED - 1.0
    in_order = standing(ours, scored("lora", other))
    listed_otherwise = standing(ours, scored("lora", other[[2, 0, 1]], seeds=[2, 0, 1]))
    assert listed_otherwise == in_order
    unpaired = standing(ours, scored("lora", other, seeds=[3, 4, 5]))[1]  # other seeds: no shared draw
    assert "(other seeds: unpaired)" in unpaired and unpaired != in_order[1]


def test_a_cell_run_on_more_seeds_is_compared_on_the_seeds_both_ran_paired() -> None:
    ten = np.vstack([NORMALISED, NORMALISED + 50.0])  # seeds 3-5: far better draws the other never saw
    other = NORMALISED - 1.0
    shared = compare(ten, [0, 1, 2, 3, 4, 5], other, SEEDS, ten, other)
    alone = compare(NORMALISED, SEEDS, other, SEEDS, NORMALISED, other)
    assert shared.improvement.paired and shared.shared_seeds == 3
    assert (shared.improvement.probability, shared.difference) == (
        alone.improvement.probability,
        alone.difference,
    )
    assert "(on the 3 seeds both ran)" in shared.evidence()
    assert compare(ten, [0, 1, 2, 3, 4, 5], ten, [0, 1, 2, 3, 4, 5]).shared_seeds is None  # the same seeds


def test_runs_without_per_seed_scores_are_level_and_show_the_gap() -> None:
    lines = standings(
        data(
            result("prompt-diffuser", -40.0, variant="project"),
            result("ptdt", -39.5),
            result("full-data", -30.0),
        )
    )
    assert lines == [
        "- cheetah-vel (expert few-shot data, 5 shots): prompt-diffuser (-40.0 ± 1.0) is level with "
        "full-data (-10; no per-seed scores: no interval, no verdict); ptdt (-0.5; no per-seed scores: "
        "no interval, no verdict)."
    ]


def test_the_guidance_ablation_is_stated_in_the_rules_words() -> None:
    rules = {"project": NORMALISED, "plm-only": NORMALISED + 10, "none": NORMALISED - 2}
    rows = []
    for rule, normalised in rules.items():
        rows.append(scored("prompt-diffuser", normalised))
        rows[-1].variant = rule
    behind, level = [line for line in standings(data(*rows)) if "guidance ablation" in line]
    where = "- metaworld-reach (guidance ablation, expert few-shot data, 5 shots): "
    assert (
        behind
        == where + "**`project` is behind** `plm-only` (P(improvement) 0.00 [0.00, 0.00], normalised -10.0)."
    )
    assert level.startswith(where + "`project` is level with `none` (P(improvement) ")  # 2 points: too small
    assert level.endswith("normalised +2.0).")
