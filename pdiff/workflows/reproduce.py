"""`pdiff reproduce`: the paper's whole matrix as one command, composed of the stage library calls.

Per family: collect → pretrain (and a `--include-test-tasks` pretrain for the full-data model) → diffuse
(one per guidance rule when the ablation is on) → tune × methods × few-shot data kinds → eval; then one
report over every evaluation. `ood` (Table 3) adds each family's out-of-distribution variant and the
zero-shot cells (`tune --shots 0` of prompt-diffuser and prompt-dt, each zero-shot setting) of every family. A
step whose run already FINISHED with the same resolved config (input run ids included, and for pretrain the
same datasets) is skipped; one interrupted with that config (stale RUNNING or KILLED) is resumed; anything
else runs. `dry_run` prints the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator, model_validator

from pdiff.collection.behaviour import KINDS
from pdiff.config import StageConfig, register_stage_config, resolve_config
from pdiff.envs import get_family, ood_variant
from pdiff.methods.guidance import ABLATION_RULES, GuidanceRule
from pdiff.methods.registry import METHODS, NEEDS_DIFFUSE, check_methods
from pdiff.methods.zero_shot import ZERO_SHOT_METHODS, ZERO_SHOT_SETTINGS, recorded_setting
from pdiff.results.paper import PAPER_FAMILIES
from pdiff.stages.diffuse import DiffuseConfig
from pdiff.stages.tune import TuneConfig
from pdiff.workflows.matrix_seeds import CellSeeds, PromptDTs, diffusion_inputs, prompt_dts
from pdiff.workflows.pipeline import pretrain_datasets_match, run_in_order, split_overrides
from pdiff.workflows.schedule import run_parallel
from pdiff.workflows.steps import Step, StepResult
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run

LAMBDA_MARK = "@lambda="  # a variant of the ablation: a rule at a guidance weight of its own


def variant_flags(variant: str) -> dict[str, Any]:
    """A diffuse step's flags for an ablation variant: `rule` or `rule@lambda=λ`."""
    rule, _, lam = variant.partition(LAMBDA_MARK)
    return {"guidance": rule, **({"lam": float(lam)} if lam else {})}


class ReproduceConfig(StageConfig):
    envs: list[str] = Field(list(PAPER_FAMILIES), min_length=1, description="Task families.")
    methods: list[str] | None = Field(
        None, description="Methods (default: every tune method and full-data; random-prompt on request)."
    )
    seeds: list[int] | None = Field(
        None,
        min_length=1,
        description="Seeds for tune and eval, e.g. [0, 1, 2] (default: the preset's); "
        "a number n means 0..n-1.",
    )
    data_kinds: list[str] = Field(["expert"], min_length=1, description="Few-shot data kinds (Table 2).")
    guidance_ablation: bool = Field(
        False, description="Also diffuse, tune and eval with every ablation rule."
    )
    ablation_rules: list[GuidanceRule] = Field(
        list(ABLATION_RULES), description="Guidance rules of the ablation (the paper's four and gpm)."
    )
    ablation_lambdas: list[float] = Field(
        [],
        description="With the ablation, also the default rule at each of these guidance weights λ (the "
        "paper's is 1), each a variant of its own (`project@lambda=0.5`).",
    )
    diffusion_per_seed: bool = Field(
        True, description="Train one diffusion model per seed (its seed), so spreads over seeds include it."
    )
    ood: bool = Field(
        False,
        description="Table 3: also each family's out-of-distribution variant (cheetah-vel-ood, ant-dir-ood) "
        "and the zero-shot cells (prompt-diffuser, prompt-dt with shots=0, zero_shot_source nearest and "
        "none) of every family.",
    )
    jobs: int = Field(
        1, ge=1, description="Steps run at once, each in its own process; a step still waits for its inputs."
    )
    pretrain_per_seed: bool = Field(
        False,
        description="Also pretrain one Prompt-DT per seed (its seed), each seed's diffusion model guided by "
        "its own, so spreads over seeds include pretraining (the full-data model keeps one).",
    )
    pretrain_groups: int | None = Field(
        None,
        ge=1,
        description="Pretrain this many Prompt-DTs, each for a group of consecutive seeds (pretrained with "
        "the group's first seed), so spreads over seeds include pretraining at a fraction of "
        "pretrain_per_seed's cost.",
    )
    table2_seeds: int | None = Field(
        None, ge=1, description="Seeds of Table 2's medium and random cells: the first n (default: all)."
    )
    ablation_seeds: int | None = Field(
        None, ge=1, description="Seeds of the guidance ablation's other rules: the first n (default: all)."
    )

    @model_validator(mode="after")
    def _per_seed_diffusion(self) -> ReproduceConfig:
        for name in ("pretrain_per_seed", "pretrain_groups"):
            if getattr(self, name) and not self.diffusion_per_seed:
                raise ValueError(
                    f"{name} needs diffusion_per_seed: a diffusion model is guided by one Prompt-DT"
                )
        if self.pretrain_per_seed and self.pretrain_groups:
            raise ValueError(
                "set pretrain_per_seed or pretrain_groups, not both (per seed: a group per seed)"
            )
        return self

    @field_validator("ablation_lambdas")
    @classmethod
    def _weights(cls, value: list[float]) -> list[float]:
        if any(not 0 <= lam < float("inf") for lam in value):
            raise ValueError("every λ must be finite and >= 0 (the paper's is 1)")
        return value

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_count(cls, value: Any) -> Any:  # the older spelling, `seeds: 3`
        return list(range(value)) if isinstance(value, int) and not isinstance(value, bool) else value


register_stage_config("reproduce", ReproduceConfig)


def matrix_methods(methods: list[str] | None) -> list[str]:
    """The methods of the matrix: every tune method and the full-data model unless named."""
    return [*METHODS, "full-data"] if methods is None else check_methods(methods)


def equal_information_match(workspace: Workspace, config: StageConfig, run: Run) -> bool:
    """A finished zero-shot tune counts only if both methods got equal information (older runs did not)."""
    return recorded_setting(run.manifest.get("summary", {}).get("zero_shot")) in ZERO_SHOT_SETTINGS


@dataclass(frozen=True)
class Matrix:
    """What every family's steps read: the methods, seeds and guidance rules of the matrix."""

    config: ReproduceConfig
    methods: list[str]
    tuned: list[str]  # the methods tune runs (not eval alone)
    seeds: list[int] | None  # as reproduce was given them (None: the tune stage's preset seeds)
    tune_seeds: list[int]
    groups: int | None  # Prompt-DTs per family, each for a group of seeds (None: one for all)
    default_rule: str
    rules: list[str]  # the default rule, then the ablation's other variants (`variant_flags`)
    ablation_kind: str  # the data kind the ablation's other rules run with
    cells: CellSeeds

    def models(self, cell: list[int]) -> list[int | None]:
        """The seeds with a diffusion model of their own ([None]: one model serves every seed)."""
        return list(cell) if self.config.diffusion_per_seed else [None]


def matrix_of(
    config: ReproduceConfig, preset: str | None, workspace: Workspace, tune_overrides: list[str] | None
) -> Matrix:
    methods = matrix_methods(config.methods)
    seeds = list(config.seeds) if config.seeds else None
    diffuse = resolve_config(DiffuseConfig, "diffuse", workspace=workspace, preset=preset)
    default_rule = diffuse.guidance
    rules = [default_rule]
    if config.guidance_ablation:
        rules += [r for r in config.ablation_rules if r != default_rule]
        weights = [lam for lam in dict.fromkeys(config.ablation_lambdas) if lam != diffuse.lam]
        rules += [f"{default_rule}{LAMBDA_MARK}{lam:g}" for lam in weights]
    tune_seeds = list(
        resolve_config(
            TuneConfig,
            "tune",
            workspace=workspace,
            preset=preset,
            overrides=tune_overrides,
            flags={"seeds": seeds},
        ).seeds
    )
    return Matrix(
        config=config,
        methods=methods,
        tuned=[m for m in methods if m in METHODS],
        seeds=seeds,
        tune_seeds=tune_seeds,
        groups=len(tune_seeds) if config.pretrain_per_seed else config.pretrain_groups,
        default_rule=default_rule,
        rules=rules,
        ablation_kind="expert" if "expert" in config.data_kinds else config.data_kinds[0],
        cells=CellSeeds(tune_seeds, config.table2_seeds, config.ablation_seeds, default_rule, seeds),
    )


def families(config: ReproduceConfig) -> list[str]:
    envs = [get_family(env).name for env in config.envs]
    if config.ood:  # after their base families, whose SAC teachers they reuse
        envs = list(dict.fromkeys([*envs, *filter(None, map(ood_variant, envs))]))
    return envs


def collect_step(family: str, kinds: list[str]) -> Step:
    """The family's datasets: the few-shot `kinds`, expert data and prompts (a finished collect of them
    counts)."""
    needed = [k for k in KINDS if k in {"expert", "prompt-expert", *kinds}]
    flags = {"env": family, "kinds": needed}
    return Step(f"collect:{family}", "collect", family, flags, ignore=frozenset({"kinds"}))


def diffuse_steps(
    matrix: Matrix, family: str, rules: list[str], prompt_dt: PromptDTs
) -> dict[str, dict[int | None, Step]]:
    """Rule → seed → the diffusion model it trains (None: one for every seed), guided by that seed's
    Prompt-DT."""
    if not NEEDS_DIFFUSE & set(matrix.tuned):
        return {}
    models: dict[str, dict[int | None, Step]] = {}
    for rule in rules:
        cell = (
            matrix.cells.of(matrix.ablation_kind, rule) if rule != matrix.default_rule else matrix.tune_seeds
        )
        models[rule] = {}
        for seed in matrix.models(cell):
            key = f"diffuse:{family}:{rule}" + (f":seed-{seed}" if seed is not None else "")
            flags = {"env": family, "pretrain_run": prompt_dt.of(seed), **variant_flags(rule), "seed": seed}
            models[rule][seed] = Step(key, "diffuse", family, flags)
    return models


def evaluated(tune: Step) -> list[Step]:
    """A tune step and the eval of its run."""
    return [tune, Step(f"eval:{tune.key}", "eval", tune.family, {"env": tune.family, "tune_run": tune})]


def few_shot_steps(
    matrix: Matrix,
    family: str,
    kind: str,
    rules: list[str],
    prompt_dt: PromptDTs,
    diffusion: dict[str, dict[int | None, Step]],
) -> list[Step]:
    """Every tune method with few-shot data of `kind` (each rule for those that diffuse), each evaluated."""
    steps: list[Step] = []
    for method in matrix.tuned:
        for rule in rules if method in NEEDS_DIFFUSE else [None]:
            if rule not in (None, matrix.default_rule) and kind != matrix.ablation_kind:
                continue
            cell = matrix.cells.of(kind, rule)
            models = diffusion[rule] if rule is not None else None
            flags = {
                "env": family,
                "method": method,
                "data_kind": kind,
                "seeds": matrix.cells.flag(cell),
                **prompt_dt.flags(cell),
                **diffusion_inputs(models, matrix.models(cell)),
            }
            key = f"tune:{family}:{method}:{kind}" + (f":{rule}" if rule else "")
            # zero_shot_source is read only at shots=0: setting it must not redo few-shot tunes
            steps += evaluated(Step(key, "tune", family, flags, ignore=frozenset({"zero_shot_source"})))
    return steps


def zero_shot_steps(
    matrix: Matrix, family: str, prompt_dt: PromptDTs, diffusion: dict[str, dict[int | None, Step]]
) -> list[Step]:
    """Table 3's zero-shot cells (`tune --shots 0`) of each method that has them, each setting, each
    evaluated."""
    steps: list[Step] = []
    for method in [m for m in matrix.tuned if m in ZERO_SHOT_METHODS]:
        models = diffusion[matrix.default_rule] if method in NEEDS_DIFFUSE else None  # no data kind
        for setting in ZERO_SHOT_SETTINGS:  # Table 3 shows them side by side
            flags = {
                "env": family,
                "method": method,
                "shots": 0,
                "zero_shot_source": setting,
                "seeds": matrix.seeds,
                **prompt_dt.flags(matrix.tune_seeds),
                **diffusion_inputs(models, matrix.models(matrix.tune_seeds)),
            }
            key = f"tune:{family}:{method}:zero-shot:{setting}"
            steps += evaluated(Step(key, "tune", family, flags, extra_match=equal_information_match))
    return steps


def family_steps(matrix: Matrix, family: str) -> list[Step]:
    """One family's steps, each after the steps it names."""
    # Table 3 shows an out-of-distribution family with expert few-shot data and the default rule only
    ood = get_family(family).ood is not None
    kinds = ["expert"] if ood else matrix.config.data_kinds
    rules = [matrix.default_rule] if ood else matrix.rules
    steps = [collect_step(family, kinds)]
    prompt_dt = prompt_dts(family, matrix.tune_seeds, matrix.groups)
    steps += prompt_dt.steps
    full = None  # the full-data model's pretrain
    if "full-data" in matrix.methods:
        flags = {"env": family, "include_test_tasks": True}
        full = Step(f"pretrain-full:{family}", "pretrain", family, flags, extra_match=pretrain_datasets_match)
        steps.append(full)
    diffusion = diffuse_steps(matrix, family, rules, prompt_dt)
    steps += [step for models in diffusion.values() for step in models.values()]
    for kind in kinds:
        steps += few_shot_steps(matrix, family, kind, rules, prompt_dt, diffusion)
        if full is not None:
            flags = {
                "env": family,
                "pretrain_run": full,
                "prompt": "fewshot",
                "data_kind": kind,
                "seeds": matrix.cells.flag(matrix.cells.of(kind, None)),
            }
            steps.append(Step(f"eval:full-data:{family}:{kind}", "eval", family, flags))
    if matrix.config.ood:
        steps += zero_shot_steps(matrix, family, prompt_dt, diffusion)
    if "random-prompt" in matrix.methods:
        flags = {
            "env": family,
            **prompt_dt.flags(matrix.tune_seeds),
            "prompt": "random",
            "seeds": matrix.tune_seeds if matrix.groups else matrix.seeds,
        }
        steps.append(Step(f"eval:random-prompt:{family}", "eval", family, flags))
    return steps


def plan(
    config: ReproduceConfig, preset: str | None, workspace: Workspace, tune_overrides: list[str] | None = None
) -> list[Step]:
    """Every step of the matrix, in an order where each step's inputs come before it (`tune_overrides`: the
    `--set tune.…` items, which may change the seeds that get a diffusion model each), then one report."""
    matrix = matrix_of(config, preset, workspace, tune_overrides)
    steps = [step for family in families(config) for step in family_steps(matrix, family)]
    evals = [step for step in steps if step.stage == "eval"]
    return [*steps, Step("report", "report", None, {"runs": evals})]


def run_matrix(
    workspace: Workspace,
    config: ReproduceConfig,
    *,
    preset: str | None,
    argv: list[str],
    overrides: list[str] | None = None,
    dry_run: bool = False,
) -> tuple[list[StepResult], Run | None]:
    """Run (or with `dry_run`, only print) every step; returns the step results and the report run. With
    `jobs` > 1, up to that many steps run at once, each in its own process (pdiff.workflows.schedule)."""
    steps = plan(config, preset, workspace, split_overrides(overrides or []).get("tune"))
    if config.jobs > 1 and not dry_run:
        return run_parallel(workspace, steps, preset=preset, argv=argv, overrides=overrides, jobs=config.jobs)
    return run_in_order(workspace, steps, preset=preset, argv=argv, overrides=overrides, dry_run=dry_run)
