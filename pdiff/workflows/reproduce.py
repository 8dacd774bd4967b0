"""`pdiff reproduce`: the paper's whole matrix as one command, composed of the stage library calls.

Per family: collect → pretrain (and a `--include-test-tasks` pretrain for the full-data model) → diffuse
(one per guidance rule when the ablation is on) → tune × methods × few-shot data kinds → eval; then one
report over every evaluation. `ood` (Table 3) adds each family's out-of-distribution variant and the
zero-shot cells (`tune --shots 0` of prompt-diffuser and prompt-dt, each zero-shot setting) of every family. A step whose run already FINISHED with the same resolved config (input run
ids included, and for pretrain the same datasets) is skipped; one interrupted with that config (stale
RUNNING or KILLED) is resumed; anything else runs. `dry_run` prints the plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, field_validator, model_validator

from pdiff.config import StageConfig, register_stage_config
from pdiff.console import err
from pdiff.data.minari_format import dataset_id, latest_version
from pdiff.envs import get_family, ood_variant
from pdiff.errors import UsageError
from pdiff.methods.guidance import ABLATION_RULES, GuidanceRule
from pdiff.methods.zero_shot import ZERO_SHOT_METHODS, ZERO_SHOT_SETTINGS, recorded_setting
from pdiff.report.paper import PAPER_FAMILIES
from pdiff.stages.common import CADENCE_SETTINGS
from pdiff.stages.matrix_seeds import CellSeeds, diffusion_inputs, prompt_dts
from pdiff.stages.pipeline import (
    StepResult,
    finished_match,
    interrupted_match,
    run_stage,
    same_config,
    stage_config,
)
from pdiff.workspace.root import STAGES, Workspace
from pdiff.workspace.runs import Run, RunStatus, list_runs

EVAL_ONLY_METHODS = ("full-data", "random-prompt")  # rows made by eval alone, no tune method


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
    diffusion_per_seed: bool = Field(
        True, description="Train one diffusion model per seed (its seed), so spreads over seeds include it."
    )
    ood: bool = Field(
        False,
        description="Table 3: also each family's out-of-distribution variant (cheetah-vel-ood, ant-dir-ood) and "
        "the zero-shot cells (prompt-diffuser, prompt-dt with shots=0, zero_shot_source nearest and none) of every family.",
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
        description="Pretrain this many Prompt-DTs, each for a group of consecutive seeds (pretrained with the "
        "group's first seed), so spreads over seeds include pretraining at a fraction of pretrain_per_seed's cost.",
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

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_count(cls, value: Any) -> Any:  # the older spelling, `seeds: 3`
        return list(range(value)) if isinstance(value, int) and not isinstance(value, bool) else value


register_stage_config("reproduce", ReproduceConfig)


@dataclass
class Step:
    """One stage call of the matrix. `flags` may name upstream steps' runs as `@key` (resolved when run)."""

    key: str
    stage: str
    family: str | None
    flags: dict[str, Any]
    # Config keys a finished run may also differ in (besides RESULT_NEUTRAL).
    ignore: frozenset[str] = frozenset()
    extra_match: Callable[[Workspace, StageConfig, Run], bool] | None = None
    config: StageConfig | None = field(default=None, repr=False)


def tune_methods() -> tuple[dict[str, Any], set[str]]:
    """The tune registry, read at call time (methods are added on other branches)."""
    from pdiff.methods.registry import METHODS, NEEDS_DIFFUSE

    return METHODS, set(NEEDS_DIFFUSE)


def check_methods(methods: list[str] | None) -> list[str]:
    registry, _ = tune_methods()
    if methods is None:
        return [*registry, "full-data"]
    known = [*registry, *EVAL_ONLY_METHODS]
    unknown = [m for m in methods if m not in known]
    if unknown or not methods:
        raise UsageError(f"unknown method {unknown[0] if unknown else '(none)'!r} for --methods",
                         hint=f"choose from {', '.join(known)}")  # fmt: skip
    return list(dict.fromkeys(methods))


def pretrain_datasets_match(workspace: Workspace, config: StageConfig, run: Run) -> bool:
    """A finished pretrain counts only if it read the datasets that are the latest now."""

    family = get_family(config.env)  # type: ignore[attr-defined]
    wanted = set()
    for kind in (config.data_kind, "prompt-expert"):  # type: ignore[attr-defined]
        for task in family.training_tasks(config.include_test_tasks):  # type: ignore[attr-defined]
            version = latest_version(workspace.datasets_dir, family.name, task, kind)
            if version is None:
                return False
            wanted.add(dataset_id(family.name, task, kind, version))
    return {i["ref"] for i in run.manifest.get("inputs", []) if i["kind"] == "dataset"} == wanted


def equal_information_match(workspace: Workspace, config: StageConfig, run: Run) -> bool:
    """A finished zero-shot tune counts only if both methods got equal information (older runs did not)."""
    return recorded_setting(run.manifest.get("summary", {}).get("zero_shot")) in ZERO_SHOT_SETTINGS


def plan(config: ReproduceConfig, preset: str | None, workspace: Workspace,
         tune_overrides: list[str] | None = None) -> list[Step]:  # fmt: skip
    """Every step of the matrix, in an order where each step's inputs come before it (`tune_overrides`: the
    `--set tune.…` items, which may change the seeds that get a diffusion model each)."""
    from pdiff.data.collectors import KINDS

    methods = check_methods(config.methods)
    registry, needs_diffuse = tune_methods()
    seeds = list(config.seeds) if config.seeds else None
    tuned = [m for m in methods if m in registry]
    default_rule = stage_config(workspace, "diffuse", preset, {}).guidance  # type: ignore[attr-defined]
    rules = [default_rule]
    if config.guidance_ablation:
        rules += [r for r in config.ablation_rules if r != default_rule]
    ablation_kind = "expert" if "expert" in config.data_kinds else config.data_kinds[0]
    tune_seeds = list(stage_config(workspace, "tune", preset, {"seeds": seeds}, tune_overrides).seeds)  # type: ignore[attr-defined]
    groups = len(tune_seeds) if config.pretrain_per_seed else config.pretrain_groups
    cells = CellSeeds(tune_seeds, config.table2_seeds, config.ablation_seeds, default_rule, seeds)

    def models(cell: list[int]) -> list[int | None]:  # the seeds with a diffusion model of their own
        return list(cell) if config.diffusion_per_seed else [None]

    steps: list[Step] = []
    envs = [get_family(env).name for env in config.envs]
    if config.ood:  # after their base families, whose SAC teachers they reuse
        envs = list(dict.fromkeys([*envs, *filter(None, map(ood_variant, envs))]))
    for family in envs:
        # Table 3 shows an out-of-distribution family with expert few-shot data and the default rule only
        ood = get_family(family).ood is not None
        kinds = ["expert"] if ood else config.data_kinds
        family_rules = [default_rule] if ood else rules
        needed = [k for k in KINDS if k in {"expert", "prompt-expert", *kinds}]
        steps.append(Step(f"collect:{family}", "collect", family, {"env": family, "kinds": needed},
                          ignore=frozenset({"kinds"})))  # fmt: skip
        prompt_dt = prompt_dts(family, tune_seeds, groups)
        for key, seed in prompt_dt.steps.items():
            steps.append(Step(key, "pretrain", family, {"env": family, "seed": seed}, extra_match=pretrain_datasets_match))  # fmt: skip
        if "full-data" in methods:
            steps.append(Step(f"pretrain-full:{family}", "pretrain", family, {"env": family, "include_test_tasks": True},
                              extra_match=pretrain_datasets_match))  # fmt: skip
        if any(m in needs_diffuse for m in tuned):
            for rule in family_rules:
                for seed in models(cells.of(ablation_kind, rule) if rule != default_rule else tune_seeds):
                    key = f"diffuse:{family}:{rule}" + (f":seed-{seed}" if seed is not None else "")
                    source = prompt_dt.of(seed)
                    flags = {"env": family, "pretrain_run": source, "guidance": rule, "seed": seed}
                    steps.append(Step(key, "diffuse", family, flags))
        for kind in kinds:
            for method in tuned:
                for rule in family_rules if method in needs_diffuse else [None]:
                    if rule not in (None, default_rule) and kind != ablation_kind:
                        continue
                    tune = f"tune:{family}:{method}:{kind}" + (f":{rule}" if rule else "")
                    cell = cells.of(kind, rule)
                    flags = {"env": family, "method": method, "data_kind": kind, "seeds": cells.flag(cell),
                             **prompt_dt.flags(cell), **diffusion_inputs(family, rule, models(cell))}  # fmt: skip
                    # zero_shot_source is read only at shots=0: setting it must not redo few-shot tunes
                    steps.append(Step(tune, "tune", family, flags, ignore=frozenset({"zero_shot_source"})))
                    steps.append(
                        Step(f"eval:{tune}", "eval", family, {"env": family, "tune_run": f"@{tune}"})
                    )
            if "full-data" in methods:
                flags = {"env": family, "pretrain_run": f"@pretrain-full:{family}", "prompt": "fewshot",
                         "data_kind": kind, "seeds": cells.flag(cells.of(kind, None))}  # fmt: skip
                steps.append(Step(f"eval:full-data:{family}:{kind}", "eval", family, flags))
        for method in [m for m in tuned if m in ZERO_SHOT_METHODS] if config.ood else []:
            rule = default_rule if method in needs_diffuse else None  # zero-shot: no data kind
            for setting in ZERO_SHOT_SETTINGS:  # Table 3 shows them side by side
                tune = f"tune:{family}:{method}:zero-shot:{setting}"
                flags = {"env": family, "method": method, "shots": 0, "zero_shot_source": setting, "seeds": seeds,
                         **prompt_dt.flags(tune_seeds), **diffusion_inputs(family, rule, models(tune_seeds))}  # fmt: skip
                steps += [Step(tune, "tune", family, flags, extra_match=equal_information_match),
                          Step(f"eval:{tune}", "eval", family, {"env": family, "tune_run": f"@{tune}"})]  # fmt: skip
        if "random-prompt" in methods:
            flags = {"env": family, **prompt_dt.flags(tune_seeds), "prompt": "random",
                     "seeds": tune_seeds if groups else seeds}  # fmt: skip
            steps.append(Step(f"eval:random-prompt:{family}", "eval", family, flags))
    evals = [s.key for s in steps if s.stage == "eval"]
    steps.append(Step("report", "report", None, {"runs": [f"@{k}" for k in evals]}))
    return steps


def resolve(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        return ids.get(value[1:], f"<{value[1:]}>")  # a placeholder until the upstream step has run
    if isinstance(value, list):
        return [resolve(v, ids) for v in value]
    return value


def step_config(workspace: Workspace, step: Step, preset: str | None, overrides: dict[str, list[str]],
                ids: dict[str, str], configs: dict[str, StageConfig]) -> StageConfig:  # fmt: skip
    """The config the stage will record: explicit inputs, and for eval the tune run's seeds/shots/data."""
    flags = {k: resolve(v, ids) for k, v in step.flags.items()}
    if step.stage == "report":
        flags["runs"] = sorted(flags["runs"])
    upstream = configs.get(step.flags.get("tune_run", "")[1:]) if step.stage == "eval" else None
    if upstream is not None:  # eval of a tune run takes these from the tune run (pdiff.stages.eval.run_eval)
        flags.update(prompt="auto", pretrain_run=upstream.pretrain_run, pretrain_runs=upstream.pretrain_runs,  # type: ignore[attr-defined]
                     seeds=upstream.seeds,  # type: ignore[attr-defined]
                     shots=upstream.shots, data_kind=upstream.data_kind)  # type: ignore[attr-defined]  # fmt: skip
    return stage_config(workspace, step.stage, preset, flags, overrides.get(step.stage))


def command_line(step: Step, config: StageConfig, preset: str | None, overrides: list[str]) -> str:
    """The CLI command equivalent to one step (shown in the progress and the plan)."""
    names = {"pretrain_run": "--pretrain", "diffuse_run": "--diffuse", "tune_run": "--tune"}
    words = ["pdiff", step.stage]
    for key, value in step.flags.items():
        value = getattr(config, key, value)
        if value is None or value is False:
            continue
        flag = names.get(key, "--" + key.replace("_", "-"))
        if value is True:
            words.append(flag)
        elif isinstance(value, list) and step.stage == "report":
            words += [w for v in value for w in (flag, str(v))]
        elif key in ("diffuse_runs", "pretrain_runs"):  # no flag of their own
            words += ["--set", f"{key}=[{','.join(map(str, value))}]"]
        elif key == "zero_shot_source":  # no flag of its own
            words += ["--set", f"{key}={value}"]
        else:
            words += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    words += (["--preset", preset] if preset and step.stage != "report" else []) + [
        f"--set {o}" for o in overrides
    ]
    return " ".join(words)


def split_overrides(overrides: list[str]) -> dict[str, list[str]]:
    """`--set pretrain.steps=300` → {"pretrain": ["steps=300"]}: reproduce passes each to its stage."""
    grouped: dict[str, list[str]] = {}
    for item in overrides:
        stage, _, rest = item.partition(".")
        if stage not in STAGES or not rest:
            raise UsageError(f"--set {item!r} does not start with a stage name",
                             hint="write e.g. --set pretrain.steps=300 (stages: " + ", ".join(STAGES) + ")")  # fmt: skip
        grouped.setdefault(stage, []).append(rest)
    return grouped


# Settings that change how a stage runs, never what it produces: a finished run may differ in them.
RESULT_NEUTRAL = {"collect": frozenset({"workers"}), "eval": frozenset({"workers"}), "pretrain": CADENCE_SETTINGS}  # fmt: skip


def find_done(workspace: Workspace, step: Step, config: StageConfig) -> Run | None:
    matches = same_config(step.stage, config, step.ignore | RESULT_NEUTRAL.get(step.stage, frozenset()))
    if step.stage == "collect":  # several finished collects of this config may together hold every kind
        runs = [
            r
            for r in list_runs(workspace, "collect", step.family)
            if r.status is RunStatus.FINISHED and matches(r)
        ]
        held = {k for r in runs for k in r.config.get("kinds", [])}
        return runs[-1] if runs and set(config.kinds) <= held else None  # type: ignore[attr-defined]
    extra = step.extra_match
    return finished_match(workspace, step.stage, step.family,
                          lambda r: matches(r) and (extra is None or extra(workspace, config, r)))  # fmt: skip


def collect_config(workspace: Workspace, step: Step, config: StageConfig) -> StageConfig:
    """Collect only the kinds no finished collect of the same settings holds (datasets are never rewritten)."""
    matches = same_config("collect", config, step.ignore | RESULT_NEUTRAL["collect"])
    held = {k for r in list_runs(workspace, "collect", step.family)
            if r.status is RunStatus.FINISHED and matches(r) for k in r.config.get("kinds", [])}  # fmt: skip
    missing = [k for k in config.kinds if k not in held]  # type: ignore[attr-defined]
    return config.model_copy(update={"kinds": missing}) if missing else config


def run_matrix(workspace: Workspace, config: ReproduceConfig, *, preset: str | None, argv: list[str],
               overrides: list[str] | None = None, dry_run: bool = False) -> tuple[list[StepResult], Run | None]:  # fmt: skip
    """Run (or with `dry_run`, only print) every step; returns the step results and the report run."""
    steps = plan(config, preset, workspace, split_overrides(overrides or []).get("tune"))
    return run_steps(workspace, steps, preset=preset, argv=argv, overrides=overrides, dry_run=dry_run,
                     jobs=config.jobs)  # fmt: skip


@dataclass
class Prepared:
    """A step ready to start: its resolved config and command, and the finished run to reuse or stale one to resume."""

    config: StageConfig
    command: str
    done: Run | None = None
    stale: Run | None = None

    def announce(self, prefix: str) -> None:
        if self.done is not None:
            line = f"{prefix} skip (finished {self.done.run_id}): {self.command}"
        elif self.stale is not None:
            line = f"{prefix} resume {self.stale.run_id}: {self.command} --resume {self.stale.run_id}"
        else:
            line = f"{prefix} run: {self.command}"
        err.print(line, highlight=False, soft_wrap=True)


def prepare(workspace: Workspace, step: Step, preset: str | None, grouped: dict[str, list[str]],
            ids: dict[str, str], configs: dict[str, StageConfig]) -> Prepared:  # fmt: skip
    """Resolve a step whose upstream steps are done (`ids`, `configs`) and find what it can reuse or resume."""
    stage_cfg = step_config(workspace, step, preset, grouped, ids, configs)
    configs[step.key] = stage_cfg
    command = command_line(step, stage_cfg, preset, grouped.get(step.stage, []))
    done = find_done(workspace, step, stage_cfg)
    if done is not None:
        return Prepared(stage_cfg, command, done=done)
    if step.stage == "collect":
        stage_cfg = collect_config(workspace, step, stage_cfg)
        command = command_line(step, stage_cfg, preset, grouped.get(step.stage, []))
    stale = interrupted_match(workspace, step.stage, step.family, same_config(step.stage, stage_cfg, step.ignore - {"kinds"}))  # fmt: skip
    return Prepared(stage_cfg, command, stale=stale)


def run_steps(workspace: Workspace, steps: list[Step], *, preset: str | None, argv: list[str],
              overrides: list[str] | None = None, dry_run: bool = False,
              jobs: int = 1) -> tuple[list[StepResult], Run | None]:  # fmt: skip
    """Reuse, resume or run each step in order (the rule `pdiff demo` shares); the results and the report run.
    With `jobs` > 1, up to that many steps run at once, each in its own process (pdiff.stages.schedule)."""
    if jobs > 1 and not dry_run:
        from pdiff.stages.schedule import run_parallel

        return run_parallel(workspace, steps, preset=preset, argv=argv, overrides=overrides, jobs=jobs)
    grouped = split_overrides(overrides or [])
    ids: dict[str, str] = {}
    configs: dict[str, StageConfig] = {}
    results: list[StepResult] = []
    report: Run | None = None
    for number, step in enumerate(steps, 1):
        ready = prepare(workspace, step, preset, grouped, ids, configs)
        ready.announce(f"[{number}/{len(steps)}]")
        if ready.done is not None:
            ids[step.key], run = ready.done.run_id, ready.done
            results.append(StepResult(step.key, "reused", run.run_id, run.manifest.get("summary")))
        elif dry_run:
            ids[step.key] = f"<{step.key}>"
            results.append(StepResult(step.key, "planned"))
            continue
        else:
            stale = ready.stale
            run = run_stage(workspace, step.stage, ready.config, argv, resume=stale.run_id if stale else None)
            ids[step.key] = run.run_id
            results.append(StepResult(step.key, "resumed" if stale else "ran", run.run_id, run.manifest.get("summary")))  # fmt: skip
        if step.stage == "report":
            report = run
    return results, report
