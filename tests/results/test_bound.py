"""The full-data Prompt-DT is called an upper bound only where it is one: its family tests unseen tasks and no
method is ahead of it by the verdict rule; on an in-distribution family it is a second pretrain."""

from __future__ import annotations

import numpy as np
from report_rows import data, scored

from pdiff.results.bound import bound_note, is_upper_bound
from pdiff.results.standing import standings
from pdiff.results.tables import table1

NORMALISED = np.array([[60.0, 70.0, 65.0], [61.0, 72.0, 64.0], [62.0, 71.0, 66.0]])  # seeds × tasks


def group(family: str, lora_gain: float) -> dict:
    """method → result: Prompt Diffuser well below full-data, LoRA `lora_gain` normalised points above it."""
    return {
        "prompt-diffuser": scored("prompt-diffuser", NORMALISED - 20, family=family),
        "lora": scored("lora", NORMALISED + lora_gain, family=family),
        "full-data": scored("full-data", NORMALISED, family=family),
    }


def test_full_data_is_a_bound_only_where_no_method_is_ahead_of_it():
    below, above = group("metaworld-reach", -10.0), group("metaworld-reach", 10.0)
    slightly_above = group("metaworld-reach", 3.0)  # every seed above, by less than the threshold: level
    assert is_upper_bound(below["full-data"], below)
    assert not is_upper_bound(above["full-data"], above)
    assert is_upper_bound(slightly_above["full-data"], slightly_above)
    note = bound_note({"metaworld-reach": below, "metaworld-pick-place": group("metaworld-pick-place", 10.0)})
    assert "An upper bound in metaworld-reach: no method is ahead of it there" in note
    assert "No bound in metaworld-pick-place (lora ahead of it)." in note
    assert bound_note({"metaworld-reach": {"lora": below["lora"]}}) == ""  # no full-data cell: nothing to say


def test_on_an_in_distribution_family_full_data_is_a_second_pretrain_never_a_bound():
    same_tasks = group("cheetah-dir", -10.0)  # nothing ahead of it, yet it trained on no task the others lack
    assert not is_upper_bound(same_tasks["full-data"], same_tasks)
    assert "A second pretrain on the same data here" in bound_note({"cheetah-dir": same_tasks})
    beside = bound_note({"cheetah-dir": same_tasks, "metaworld-reach": group("metaworld-reach", -10.0)})
    assert (
        "A second pretrain on the same data in cheetah-dir" in beside
        and "An upper bound in metaworld-reach" in beside
    )
    table = table1(data(*same_tasks.values()), 5)
    assert any(note.startswith("cheetah-dir: in distribution") for note in table.notes)
    assert [row[0] for row in table.rows][-1] == "full-data"


def test_a_behind_line_names_the_upper_bound_only_where_it_is_one():
    bound = "\n".join(standings(data(*group("metaworld-reach", -10.0).values())))
    assert "**prompt-diffuser is behind the full-data upper bound**" in bound
    beaten = "\n".join(standings(data(*group("metaworld-reach", 10.0).values())))
    assert "**prompt-diffuser is behind full-data**" in beaten and "upper bound" not in beaten
    same_tasks = "\n".join(standings(data(*group("cheetah-dir", -10.0).values())))
    assert "**prompt-diffuser is behind full-data**" in same_tasks and "upper bound" not in same_tasks
