"""Which seeds each cell of `pdiff reproduce`'s matrix runs, and which Prompt-DT and diffusion model each seed
reads.

Table 1's cells run every seed; Table 2's (medium and random few-shot data) and the guidance ablation's other
rules may run fewer: the first n, so that their seed s is Table 1's seed s (same few-shot draw, same models).
The Prompt-DTs are one for every seed, one per seed, or one per group of consecutive seeds: groups let a
spread over seeds include pretraining without pretraining once per seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pdiff.errors import UsageError
from pdiff.workflows.pipeline import pretrain_datasets_match
from pdiff.workflows.steps import Step


def first_seeds(seeds: list[int], count: int | None) -> list[int]:
    """The first `count` of `seeds` (all of them when `count` is None or not smaller)."""
    return list(seeds if count is None else seeds[:count])


def seed_groups(seeds: list[int], groups: int) -> list[list[int]]:
    """`seeds` cut into `groups` runs of consecutive seeds whose sizes differ by at most one (larger
    first)."""
    if not 1 <= groups <= len(seeds):
        raise UsageError(
            f"pretrain_groups {groups} does not fit {len(seeds)} seeds",
            hint=f"set reproduce.pretrain_groups to at most {len(seeds)}, or run more seeds",
        )
    size, larger = divmod(len(seeds), groups)
    cut, start = [], 0
    for group in range(groups):
        end = start + size + (group < larger)
        cut.append(list(seeds[start:end]))
        start = end
    return cut


@dataclass
class PromptDTs:
    """One family's pretrain steps and the one each seed reads (`of_seed` empty: the one serves every
    seed)."""

    steps: list[Step]
    of_seed: dict[int, Step]

    def flags(self, seeds: list[int]) -> dict[str, Any]:
        """A tune or eval step's Prompt-DT(s) for `seeds`: `pretrain_run`, plus `pretrain_runs` where seeds
        differ."""
        if not self.of_seed:
            return {"pretrain_run": self.steps[0]}
        steps = [self.of_seed[seed] for seed in seeds]
        return {"pretrain_run": steps[0], "pretrain_runs": steps}

    def of(self, seed: int | None) -> Step:
        """The Prompt-DT that guides seed `seed`'s diffusion model (None: a diffusion model for every
        seed)."""
        return self.of_seed[seed] if self.of_seed and seed is not None else self.steps[0]


def pretrain_step(family: str, name: str, seed: int | None) -> Step:
    flags = {"env": family, "seed": seed}
    return Step(f"pretrain:{family}{name}", "pretrain", family, flags, extra_match=pretrain_datasets_match)


def prompt_dts(family: str, seeds: list[int], groups: int | None) -> PromptDTs:
    """One Prompt-DT (`groups` None), or one per group of consecutive seeds, pretrained with the group's first
    seed (one per seed: as many groups as seeds)."""
    if groups is None:
        return PromptDTs([pretrain_step(family, "", None)], {})
    steps: list[Step] = []
    of_seed: dict[int, Step] = {}
    for group in seed_groups(seeds, groups):
        name = f"seed-{group[0]}" if len(group) == 1 else f"seeds-{group[0]}-{group[-1]}"
        steps.append(pretrain_step(family, f":{name}", group[0]))
        of_seed.update(dict.fromkeys(group, steps[-1]))
    return PromptDTs(steps, of_seed)


def diffusion_inputs(models: dict[int | None, Step] | None, seeds: list[int | None]) -> dict[str, Any]:
    """A tune step's diffusion model(s) out of a rule's `models` (seed → diffuse step): none (no `models`),
    one for every seed (`seeds` [None]), or one per seed (`diffusion_per_seed`)."""
    if models is None:
        return {"diffuse_run": None}
    if seeds == [None]:
        return {"diffuse_run": models[None]}
    steps = [models[seed] for seed in seeds]
    return {"diffuse_run": steps[0], "diffuse_runs": steps}


@dataclass
class CellSeeds:
    """The seeds of each cell: Table 1's run every seed, Table 2's data kinds and the ablation's other rules
    their first `table2` and `ablation` (None: every seed)."""

    seeds: list[int]
    table2: int | None
    ablation: int | None
    default_rule: str
    given: list[int] | None  # as reproduce was given them (None: the tune stage's preset seeds)

    def of(self, kind: str, rule: str | None) -> list[int]:
        if rule not in (None, self.default_rule):
            return first_seeds(self.seeds, self.ablation)
        return first_seeds(self.seeds, self.table2 if kind != "expert" else None)

    def flag(self, cell: list[int]) -> list[int] | None:
        """A step's `seeds` flag: as reproduce was given them for every seed, so those steps read as
        before."""
        return self.given if cell == self.seeds else cell
