"""Where the full-data Prompt-DT is an upper bound, by a rule applied by code (docs/protocol.md).

The full-data model is a Prompt-DT pretrained on the test tasks' data as well. In a group of results (one
family, data kind and shot count) it is called an upper bound only where

- the family tests unseen tasks: on an in-distribution family (cheetah-dir, whose test tasks are its training
  tasks) it is a second pretrain on the same data, and
- no other method is ahead of it by the verdict rule (`pdiff.verdicts`): a model that methods tuned from five
  shots reliably beat bounds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pdiff.envs import get_family
from pdiff.errors import PdiffError
from pdiff.results.cells import Result, Score
from pdiff.verdicts import Comparison, compare

FULL_DATA = "full-data"


def _matrix(score: Score | None) -> np.ndarray | None:
    return np.array(score.by_seed_task) if score is not None and score.by_seed_task else None


def compare_results(x: Result, y: Result) -> Comparison | None:
    """X against Y by the verdict rule, from their per-seed scores; None where either has none (runs made
    before they were recorded) or the two cover different tasks."""
    x_scores, y_scores = _matrix(x.score), _matrix(y.score)
    if x_scores is None or y_scores is None or x_scores.shape[1] != y_scores.shape[1]:
        return None
    x_norm, y_norm = _matrix(x.normalized), _matrix(y.normalized)
    if x_norm is None or y_norm is None or x_norm.shape != x_scores.shape or y_norm.shape != y_scores.shape:
        x_norm = y_norm = None
    return compare(x_scores, x.seeds, y_scores, y.seeds, x_norm, y_norm)


def in_distribution(family: str) -> bool:
    try:
        return get_family(family).in_distribution
    except PdiffError:  # a family this version does not know: nothing to say about its split
        return False


def ahead_of_full_data(full_data: Result, others: Mapping[str, Result]) -> list[str]:
    """The methods of `others` (method → result in full-data's group) that the verdict rule puts ahead of
    it."""
    return [
        method
        for method, result in others.items()
        if method != FULL_DATA
        and (comparison := compare_results(result, full_data)) is not None
        and comparison.verdict == "ahead"
    ]


def is_upper_bound(full_data: Result, others: Mapping[str, Result]) -> bool:
    return not in_distribution(full_data.family) and not ahead_of_full_data(full_data, others)


def bound_note(columns: Mapping[str, Mapping[str, Result]]) -> str:
    """A table's note on its full-data row: per column (its label → method → result), whether full-data is an
    upper bound there and, where not, why. "" when no column has a full-data cell."""
    bound, ahead, same_data = [], [], []
    for label, cells in columns.items():
        full_data = cells.get(FULL_DATA)
        if full_data is None:
            continue
        if in_distribution(full_data.family):
            same_data.append(label)
        elif methods := ahead_of_full_data(full_data, cells):
            ahead.append(f"{label} ({', '.join(methods)} ahead of it)")
        else:
            bound.append(label)
    if not (bound or ahead or same_data):
        return ""
    sentences = [
        f"{FULL_DATA}: a Prompt-DT pretrained on the test tasks' data too, with as many samples per task as "
        "the Prompt-DT."
    ]
    if bound:
        sentences.append(
            f"An upper bound in {', '.join(bound)}: no method is ahead of it there by the verdict rule "
            "(docs/protocol.md)."
        )
    if ahead:
        sentences.append(f"No bound in {'; '.join(ahead)}.")
    if same_data:
        where = "here" if len(same_data) == len(columns) else f"in {', '.join(same_data)}"
        sentences.append(f"A second pretrain on the same data {where}: the test tasks are training tasks.")
    return " ".join(sentences)
