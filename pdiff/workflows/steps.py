"""A plan's steps: each one stage call whose flags may name other steps, whose run ids fill them in once those
steps have run. A plan is a list of steps in an order where each step comes after the steps it names."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pdiff.config import StageConfig
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run

# A further test a finished run must pass to be reused for a step (its config already matches).
RunMatcher = Callable[[Workspace, StageConfig, Run], bool]


# eq=False: a step is itself (hashed by identity), so the run ids of a plan are keyed by its steps.
@dataclass(frozen=True, eq=False)
class Step:
    """One stage call of a plan. A flag's value may be another step or a list of steps: their run ids, once
    they have run. `key` names the step in the progress, the plan and the results."""

    key: str
    stage: str
    family: str | None
    flags: dict[str, Any]
    # Config keys a finished run may also differ in (besides the stage's result-neutral settings).
    ignore: frozenset[str] = frozenset()
    extra_match: RunMatcher | None = None

    def upstream(self) -> Iterator[Step]:
        """The steps whose runs this step's flags name."""
        for value in self.flags.values():
            if isinstance(value, Step):
                yield value
            elif isinstance(value, list):
                yield from (v for v in value if isinstance(v, Step))


@dataclass(frozen=True)
class StepResult:
    step: str  # the step's key
    state: str  # "ran" | "reused" | "resumed" | "planned" (dry run)
    run_id: str | None = None
    summary: dict[str, Any] | None = None


def resolved(value: Any, ids: dict[Step, str]) -> Any:
    """A flag's value with each step it names replaced by its run id (`<key>` until that step has run)."""
    if isinstance(value, Step):
        return ids.get(value, f"<{value.key}>")
    if isinstance(value, list):
        return [resolved(v, ids) for v in value]
    return value
