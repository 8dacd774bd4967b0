"""What a tune run has finished so far, kept in its directory so that a killed run resumes (`tune --resume`,
`reproduce`) where it stopped instead of tuning again from the start: a Prompt-Tuning DT tune of the study
preset runs for hours on one core.

`RUN/progress/trials.jsonl` holds one line per finished selection trial (the candidate's settings, seed,
task and held-out loss); `RUN/progress/seed-S-task-NN.h5` one finished adaptation (its prompt, metrics and
tunable-parameter count; the tensors of weight-changing methods are already in `tuned/`, written first).
Each trial and each adaptation draws only from its own (seed, task) random streams, so what is reused is
what an uninterrupted run computes. Only a single-process run keeps progress (torchrun's ranks would race
for the files; they start again as before).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from pdiff.console import log
from pdiff.data.prompts_file import read_prompts, write_prompts
from pdiff.errors import ArtifactError
from pdiff.methods.base import TaskResult

DIRNAME = "progress"


def _candidate_key(candidate: dict[str, Any], seed: int, task: int) -> str:
    return json.dumps({"candidate": candidate, "seed": seed, "task": task}, sort_keys=True)


class TuneProgress:
    """The finished trials and adaptations of one tune run (empty for a new run)."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir / DIRNAME
        self.trials: dict[str, float] = {}
        lines = (
            (self.dir / "trials.jsonl").read_text().splitlines()
            if (self.dir / "trials.jsonl").exists()
            else []
        )
        for line in lines:
            try:  # a line cut short by a kill is dropped: that trial runs again
                row = json.loads(line)
                self.trials[_candidate_key(row["candidate"], row["seed"], row["task"])] = float(row["loss"])
            except (ValueError, KeyError, TypeError):
                continue
        adaptations = len(list(self.dir.glob("seed-*-task-*.h5"))) if self.dir.is_dir() else 0
        if self.trials or adaptations:
            log.info("resuming: %d selection trials and %d adaptations were finished before", len(self.trials),
                     adaptations)  # fmt: skip

    def trial_loss(self, candidate: dict[str, Any], seed: int, task: int) -> float | None:
        return self.trials.get(_candidate_key(candidate, seed, task))

    def add_trial(self, candidate: dict[str, Any], seed: int, task: int, loss: float) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        row = {
            "candidate": candidate,
            "seed": seed,
            "task": task,
            "loss": loss if math.isfinite(loss) else "inf",
        }
        with open(self.dir / "trials.jsonl", "a") as handle:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.trials[_candidate_key(candidate, seed, task)] = loss

    def _path(self, seed: int, task: int) -> Path:
        return self.dir / f"seed-{seed}-task-{task:02d}.h5"

    def result(self, seed: int, task: int) -> TaskResult | None:
        """The finished adaptation of (seed, task), without its model (its tensors are in tuned/ already)."""
        path = self._path(seed, task)
        if not path.exists():
            return None
        try:
            prompts, attrs = read_prompts(path)
            return TaskResult(prompt=prompts[(seed, task)], tunable_parameters=int(attrs["tunable_parameters"]),
                              metrics=json.loads(attrs["metrics"]))  # fmt: skip
        except (ArtifactError, KeyError, ValueError):  # written atomically, so only damage gets here: redo it
            return None

    def add_result(self, seed: int, task: int, result: TaskResult) -> None:
        attrs = {"tunable_parameters": str(result.tunable_parameters), "metrics": json.dumps(result.metrics)}
        write_prompts(self._path(seed, task), {(seed, task): result.prompt}, attrs)

    def clear(self) -> None:
        """Drop the records once the run's own outputs are written."""
        shutil.rmtree(self.dir, ignore_errors=True)
