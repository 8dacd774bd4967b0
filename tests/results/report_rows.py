"""Report rows built by hand for the report tests (what `pdiff.results.cells` reads from eval runs, which
tests/stages/test_reproduce.py covers with real runs)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pdiff.results.cells import ReportData, Result, Score
from pdiff.stats import sample_std


def result(
    method: str,
    mean: float,
    *,
    family: str = "cheetah-vel",
    kind: str = "expert",
    variant: str | None = None,
    std: float = 1.0,
    created: str = "2026-01-01T00:00:00Z",
    shots: int = 5,
    zero_shot: str | None = None,
) -> Result:
    """A row with a mean ± std alone (as eval runs made before per-seed scores were recorded)."""
    return Result(
        run_id=f"{family}-{method}-{kind}-{variant}-{shots}-{zero_shot}",
        created_at=created,
        family=family,
        method=method,
        variant=variant,
        data_kind=kind,
        shots=shots,
        seeds=[0, 1, 2],
        episodes=3,
        horizon=None,
        score=Score(mean, std),
        normalized=None,
        success=None,
        pretrain_run="p",
        tune_run=None,
        diffuse_run=None,
        zero_shot=zero_shot,
    )


def score_of(matrix: np.ndarray) -> Score:
    """The Score eval writes for a (seeds × tasks) matrix: mean ± std of the per-seed means, and the
    matrix."""
    per_seed = np.asarray(matrix, dtype=np.float64).mean(axis=1)
    return Score(float(per_seed.mean()), sample_std(per_seed), by_seed_task=np.asarray(matrix).tolist())


def scored(
    method: str, normalised: np.ndarray, *, seeds: Sequence[int] = (0, 1, 2), family: str = "metaworld-reach"
) -> Result:
    """A row with per-seed scores: returns are the normalised scores plus 500, so both rank seeds alike."""
    row = result(method, 0.0, family=family, variant="project" if method == "prompt-diffuser" else None)
    row.seeds = list(seeds)
    row.score, row.normalized = score_of(np.asarray(normalised) + 500.0), score_of(normalised)
    return row


def data(*results: Result) -> ReportData:
    return ReportData(list(results), [], [], {})


def pretrained(row: Result, steps: int, batch_per_task: int, tasks: int) -> Result:
    """`row` with the Prompt-DT budget a report records per cell (its pretraining samples: their product)."""
    row.settings = {
        **row.settings,
        "pretrain steps": steps,
        "pretrain batch per task": batch_per_task,
        "pretrain tasks": tasks,
    }
    return row


def publish(directory: Path, report: ReportData) -> Path:
    """Write `report` as `pdiff report --out directory` writes its report.json; returns the directory."""
    from pdiff.results import report_payload

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report_payload(report)))
    return directory
