"""The generator's fidelity on training tasks: Prompt Diffuser tuned on a training task's own few-shot
episodes exactly as on a test task, against the Prompt-DT given that task's real prompt (prompt-dt).

The Prompt-DT and the diffusion model were trained on those tasks' data, so this is no test of either: it
says how much of the real prompt's score a generated prompt keeps where the generator has seen the data. On
an in-distribution family (cheetah-dir) the test tasks are the training tasks, so its Table 1 cells are
this measurement already.
"""

from __future__ import annotations

from dataclasses import dataclass

from pdiff.results.bound import in_distribution
from pdiff.results.cells import ReportData, Result
from pdiff.results.tables import OURS, Table, main_results, main_variant, shot_counts

REAL_PROMPT = "prompt-dt"


@dataclass(frozen=True)
class Fidelity:
    family: str
    data_kind: str
    shots: int
    tasks: str  # in words: the training tasks measured, or that the test tasks are training tasks
    generated: Result  # prompt-diffuser
    real: Result  # prompt-dt

    @property
    def ratio(self) -> float | None:
        """Prompt Diffuser's mean normalised score over prompt-dt's; None without normalised scores, or where
        prompt-dt's is not above 0 (a ratio to nothing says nothing)."""
        if self.generated.normalized is None or self.real.normalized is None:
            return None
        real = self.real.normalized.mean
        return self.generated.normalized.mean / real if real > 0 else None


def measured_pairs(data: ReportData) -> list[Fidelity]:
    """The fidelity runs of a report (eval runs on training tasks), paired by family, data, shots and
    tasks."""
    groups: dict[tuple[str, str, int, tuple[int, ...]], dict[str, list[Result]]] = {}
    for r in data.fidelity:
        key = (r.family, r.data_kind, r.shots, tuple(r.training_tasks or ()))
        groups.setdefault(key, {}).setdefault(r.method, []).append(r)
    pairs = []
    for (family, kind, shots, tasks), methods in sorted(groups.items()):
        if OURS in methods and REAL_PROMPT in methods:
            words = "training tasks " + ", ".join(map(str, tasks))
            pairs.append(
                Fidelity(
                    family,
                    kind,
                    shots,
                    words,
                    main_variant(methods[OURS]),
                    main_variant(methods[REAL_PROMPT]),
                )
            )
    return pairs


def in_distribution_pairs(data: ReportData) -> list[Fidelity]:
    """On in-distribution families, Table 1's own cells (expert few-shot data): their test tasks are training
    tasks."""
    pairs = []
    for shots in shot_counts(data, "expert"):
        cells = main_results(data, "expert", shots)
        for family in sorted({f for _, f in cells if in_distribution(f)}):
            generated, real = cells.get((OURS, family)), cells.get((REAL_PROMPT, family))
            if generated is not None and real is not None:
                pairs.append(
                    Fidelity(family, "expert", shots, "the test tasks (training tasks)", generated, real)
                )
    return pairs


def fidelity_pairs(data: ReportData) -> list[Fidelity]:
    """Every fidelity figure a report holds: its fidelity runs, and its in-distribution families' Table 1
    cells."""
    return measured_pairs(data) + in_distribution_pairs(data)


def normalised_text(result: Result) -> str:
    return result.normalized.text() if result.normalized is not None else "–"


def fidelity_cells(pair: Fidelity) -> list[str]:
    """A row's measurement: tasks, both normalised scores, their ratio."""
    ratio = f"{pair.ratio:.2f}" if pair.ratio is not None else "–"
    return [pair.tasks, normalised_text(pair.generated), normalised_text(pair.real), ratio]


FIDELITY_HEADER = ["tasks", "prompt-diffuser (generated prompt)", "prompt-dt (real prompt)", "ratio"]
FIDELITY_NOTE = (
    "Normalised scores, mean ± std over seeds [95% interval]; ratio: prompt-diffuser's mean over prompt-dt's "
    "(– where prompt-dt's is not above 0). The models trained on these tasks' data: a measure of how much of "
    "the real prompt's score a generated prompt keeps, not a held-out test."
)


def fidelity_table(data: ReportData) -> Table | None:
    """The report's table of its fidelity runs (None without any)."""
    pairs = measured_pairs(data)
    if not pairs:
        return None
    rows = [[p.family, p.data_kind, str(p.shots), *fidelity_cells(p)] for p in pairs]
    return Table(
        "Generator fidelity on training tasks",
        ["family", "data", "shots", *FIDELITY_HEADER],
        rows,
        [FIDELITY_NOTE],
    )
