"""Gather finished eval runs and their lineage (tune → diffuse → pretrain) into report rows.

A cell of a table is (family, method, variant, data kind, shots, zero-shot setting). Every other setting
that changes results (ε vs x0 prediction, where the generator's segments come from, EMA, hand-set vs
selected learning rates) is part of the method's name in the tables, e.g. `prompt-diffuser [ε-prediction,
segments anywhere]`, so a run of another setting never replaces one in a cell. When several eval runs cover
one cell, the newest finished one is used and the others are listed as superseded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from pdiff.envs import get_family
from pdiff.errors import ArtifactError, UsageError
from pdiff.methods.options import recorded_options
from pdiff.methods.registry import trains
from pdiff.methods.zero_shot import recorded_setting
from pdiff.results.recorded import command_of, compute_settings, selection_settings, size_settings
from pdiff.results.score import Score
from pdiff.stats import average_interval, sample_std
from pdiff.workspace.root import Workspace, parse_utc
from pdiff.workspace.runs import Run, RunStatus, find_run, list_runs


@dataclass
class Result:
    """One eval run with what it evaluated."""

    run_id: str
    created_at: str
    family: str
    method: str
    variant: str | None  # the guidance rule (and adaptation) of a diffusion-based method
    data_kind: str
    shots: int
    seeds: list[int]
    episodes: int
    horizon: int | None
    score: Score  # raw return over seeds
    normalized: Score | None
    success: Score | None
    pretrain_run: str  # seed 0's when each seed has its own (pretrain_runs)
    tune_run: str | None
    diffuse_run: str | None
    settings: dict[str, Any] = field(default_factory=dict)  # the training budgets behind the number
    versions: dict[str, Any] = field(default_factory=dict)
    distinct_rollouts: int | None = (
        None  # different episodes behind the number (None: not counted by that eval)
    )
    pretrain_runs: list[str] = field(default_factory=list)  # every Prompt-DT behind the number
    # stage → {run id: seconds it ran (None: unknown)} of every run behind the number, this eval included
    compute_s: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # medians over the diffusion models behind it: share of ‖g_PLM‖ its rule removed and cos(g_DM, g_PLM)
    # (each a median over its run's steps), L_DM and L_PLM at its last step (`guidance_trace`)
    guidance_trace: dict[str, float | None] = field(default_factory=dict)
    # the selection's held-out few-shot loss of the chosen setting, per seed (seeds × 1): sees no return
    heldout_loss: Score | None = None
    zero_shot: str | None = None  # shots 0: the zero-shot setting (pdiff.methods.zero_shot.recorded_setting)
    # a fidelity measurement: the training tasks it ran on (the models trained on their data: not a test)
    training_tasks: list[int] | None = None
    command: list[str] = field(default_factory=list)  # the argv that made the eval run, the workspace as WS

    @property
    def cell(self) -> tuple[str, str, str | None, str, int, str | None]:
        return (self.family, self.method, self.variant, self.data_kind, self.shots, self.zero_shot)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReportData:
    results: list[Result]  # one per cell: the newest finished eval run
    superseded: list[tuple[str, str]]  # (older eval run, the run used instead)
    ignored: list[tuple[str, str]]  # (run, why it is not in the report)
    lineage: dict[str, list[str]]  # stage → run ids of pretrain / diffuse / tune runs behind the results
    fidelity: list[Result] = field(default_factory=list)  # on training tasks: in no table of test results

    def families(self) -> list[str]:
        return sorted({r.family for r in self.results})


def _score(summary: dict[str, Any], key: str) -> Score | None:
    if f"{key}_mean" not in summary:
        return None
    matrix = (summary.get("by_seed_task") or {}).get(key)
    return Score(
        float(summary[f"{key}_mean"]), float(summary[f"{key}_std"]), by_seed_task=matrix
    ).with_interval()


def on_seeds(result: Result, seeds: list[int]) -> Result:
    """`result` over the given subset of its seeds (its per-seed scores' rows for them, each interval
    recomputed); unchanged where it has no per-seed scores or already has exactly those seeds."""
    if sorted(result.seeds) == sorted(seeds) or result.score.by_seed_task is None:
        return result
    rows = [result.seeds.index(seed) for seed in seeds]

    def kept(score: Score | None) -> Score | None:
        return (
            None
            if score is None or score.by_seed_task is None
            else Score.of(np.array(score.by_seed_task)[rows])
        )

    return replace(
        result,
        seeds=list(seeds),
        score=kept(result.score) or result.score,
        normalized=kept(result.normalized),
        success=kept(result.success),
        heldout_loss=kept(result.heldout_loss),
    )


def average_score(results: list[Result]) -> Score | None:
    """The mean of several results (Table 1's average over families), ± std over seeds of the per-seed
    average, with the interval of `average_interval` (resampling those seeds); None unless all have their
    (seeds × tasks) scores over the same seeds."""
    matrices = [np.array(r.score.by_seed_task) for r in results if r.score.by_seed_task]
    if len(matrices) < len(results) or len({tuple(r.seeds) for r in results}) != 1:
        return None
    per_seed = np.mean([m.mean(axis=1) for m in matrices], axis=0)
    low, high = average_interval(matrices) or (None, None)
    return Score(float(np.mean([r.score.mean for r in results])), sample_std(per_seed), low, high)


def setting_label(tune: Run | None, diffuse: Run | None) -> str:
    """What sets this result apart from the current protocol's defaults, in words ("" when nothing)."""
    parts = []
    if diffuse is not None:
        config = diffuse.config
        if config.get("diffusion", {}).get("prediction", "epsilon") != "x0":  # runs before the option: ε
            parts.append("ε-prediction")
        tuned = recorded_options(tune.config, "prompt-diffuser") if tune else {}
        source = tuned.get("segment_source") or config.get("segment_source", "anywhere")
        if source != "tail":
            parts.append(f"segments {source}")
        if config.get("ema_decay"):
            parts.append(f"EMA {config['ema_decay']}")
    if tune is not None and trains(tune.config.get("method")) and tune.config.get("selection") != "holdout":
        parts.append(f"lr {tune.config.get('lr')} by hand")
    if (
        tune is not None
        and tune.config.get("method") == "ptdt"
        and recorded_options(tune.config, "ptdt").get("online")
    ):
        parts.append("ranked by simulator return")
    return ", ".join(parts)


def _optional_run(workspace: Workspace, ref: str | None, stage: str) -> Run | None:
    if not ref:
        return None
    try:
        return find_run(workspace, ref, stage)
    except (UsageError, ArtifactError):
        return None


def active_seconds(manifest: dict[str, Any]) -> float | None:
    """Seconds a finished run spent running (`resumes[].stopped_at` is written by `reopen_for_resume`): its
    duration less the gaps between stopping and each resume (from its last manifest write, so the minutes
    between that write and a kill count as gap). None when a resume recorded no `stopped_at` (runs resumed
    before pdiff recorded it): the gap is unknown."""
    gaps = 0.0
    for resume in manifest.get("resumes", []):
        if not resume.get("stopped_at"):
            return None
        gaps += parse_utc(resume["at"]) - parse_utc(resume["stopped_at"])
    return max(0.0, float(manifest.get("duration_s", 0.0)) - gaps)


def compute_behind(
    workspace: Workspace, run: Run, tune: Run | None, pretrain_refs: list[str]
) -> dict[str, dict[str, float | None]]:
    """The seconds each run behind an eval ran: the eval, its tune run, the tune's diffusion models, the
    Prompt-DTs."""
    diffuse_refs = (tune.config.get("diffuse_runs") or [tune.config.get("diffuse_run")]) if tune else []
    runs = {
        "pretrain": [_optional_run(workspace, ref, "pretrain") for ref in pretrain_refs],
        "diffuse": [_optional_run(workspace, ref, "diffuse") for ref in diffuse_refs],
        "tune": [tune],
        "eval": [run],
    }
    return {
        stage: {r.run_id: active_seconds(r.manifest) for r in found if r is not None}
        for stage, found in runs.items()
    }


# what `guidance_trace` keeps → the diffuse run's summary field it comes from
TRACE_FIELDS = {
    "removed_share": "guidance_removed_share_median",
    "cosine": "guidance_cosine_median",
    "loss_dm": "final_loss_dm",
    "loss_plm": "final_loss_plm",
}


def guidance_trace(workspace: Workspace, tune: Run | None, diffuse: Run) -> dict[str, float | None]:
    """The median of each `TRACE_FIELDS` figure over the tune run's diffusion models (one per seed)."""
    refs = (tune.config.get("diffuse_runs") if tune else None) or [diffuse.run_id]
    runs = [r for ref in refs if (r := _optional_run(workspace, ref, "diffuse")) is not None]
    summaries = [r.manifest.get("summary", {}) for r in runs]
    trace: dict[str, float | None] = {}
    for key, name in TRACE_FIELDS.items():
        values = [float(v) for summary in summaries if (v := summary.get(name)) is not None]
        values = [v for v in values if np.isfinite(v)]  # plm-only runs once wrote NaN for L_DM
        trace[key] = float(np.median(values)) if values else None
    return trace


def heldout_score(selection: dict[str, Any], seeds: list[int]) -> Score | None:
    """The chosen setting's held-out few-shot loss per seed (runs made before it was kept per seed: None)."""
    scores = selection.get("scores") or []
    by_seed = min(scores, key=lambda row: row["heldout_loss"]).get("heldout_loss_by_seed") if scores else None
    if not by_seed or any(str(seed) not in by_seed for seed in seeds):
        return None
    return Score.of([[float(by_seed[str(seed)])] for seed in seeds])


def result_of(workspace: Workspace, run: Run) -> Result:
    """Read an eval run's summary and walk its inputs for method, guidance and budgets."""
    summary, config = run.manifest.get("summary", {}), run.config
    if "return_mean" not in summary or "method" not in summary:
        raise ArtifactError(
            f"eval run {run.run_id} has no scores in its run.json", hint="re-run `pdiff eval`"
        )
    tune = _optional_run(workspace, config.get("tune_run"), "tune")
    diffuse = _optional_run(workspace, tune.config.get("diffuse_run") if tune else None, "diffuse")
    pretrain = _optional_run(workspace, config.get("pretrain_run"), "pretrain")
    # episodes actually run per (seed, task), and how many distinct ones stand behind the cell
    settings: dict[str, Any] = {
        "eval episodes": summary.get("episodes_per_task", config.get("episodes")),
        "distinct rollouts": summary.get("distinct_rollouts"),
    }
    variant = None
    trace: dict[str, float | None] = {}
    heldout: Score | None = None
    if pretrain is not None:
        settings["pretrain steps"] = pretrain.config.get("steps")
        # with the steps, the samples it trained on (steps × batch per task × tasks): a scaling study's axis
        settings["pretrain batch per task"] = pretrain.config.get("batch_per_task")
        include_test = bool(pretrain.config.get("include_test_tasks"))
        pretrain_family = get_family(str(pretrain.config["env"]))
        settings["pretrain tasks"] = len(pretrain_family.training_tasks(include_test))
        settings["pretrain data"] = pretrain.config.get("data_kind")
        # only the full-data model's Prompt-DT trains on test tasks; saying so plainly keeps a family's row
        # honest
        if pretrain.config.get("include_test_tasks"):
            settings["full-data Prompt-DT's tasks"] = "train + test"
    if diffuse is not None:
        tuned = recorded_options(tune.config, "prompt-diffuser") if tune else {}
        guidance = tuned.get("guidance") or diffuse.config.get("guidance")
        adapt = tuned.get("adapt", "finetune")
        lam = tuned.get("lam") if tuned.get("lam") is not None else diffuse.config.get("lam", 1.0)
        variant = guidance + (f", λ {lam:g}" if lam != 1.0 else "")  # the paper's λ goes unsaid
        variant += "" if adapt == "finetune" else f", {adapt}"
        settings["diffuse steps"] = diffuse.config.get("steps")
        trace = guidance_trace(workspace, tune, diffuse)
        settings["diffusion N"] = diffuse.config.get("diffusion", {}).get("steps")
    shots = int(summary.get("shots", config.get("shots", 0)))
    tuned = tune.manifest.get("summary", {}) if tune else {}
    zero_shot = recorded_setting(tuned.get("zero_shot")) if shots == 0 else None
    if tune is not None:
        if shots or zero_shot == "nearest":  # zero-shot `none` trains nothing
            settings["tune steps"] = tune.config.get("steps")
        if tune.config.get("diffuse_runs"):
            settings["diffusion models"] = "one per seed"
        selection = tune.manifest.get("summary", {}).get("selection", {})
        settings.update(selection_settings(tune.config["method"], selection))
        settings.update(size_settings(tune, diffuse))
        heldout = heldout_score(selection, list(summary.get("seeds", config.get("seeds", []))))
    pretrain_runs = list(dict.fromkeys(config.get("pretrain_runs") or [config.get("pretrain_run")]))
    seed_count = len(summary.get("seeds", config.get("seeds", [])))
    if len(pretrain_runs) > 1:  # one per seed, or one per group of seeds
        per_seed = len(pretrain_runs) == seed_count
        settings["Prompt-DTs"] = (
            "one per seed" if per_seed else f"{len(pretrain_runs)} for {seed_count} seeds"
        )
    settings.update(compute_settings([pretrain, diffuse, tune, run]))
    setting = setting_label(tune, diffuse)
    return Result(
        run_id=run.run_id,
        created_at=run.manifest.get("created_at", ""),
        family=run.family or str(config.get("env")),
        method=str(summary["method"]) + (f" [{setting}]" if setting else ""),
        variant=variant,
        data_kind=str(summary.get("data_kind", config.get("data_kind"))),
        shots=shots,
        zero_shot=zero_shot,
        training_tasks=list(summary["tasks"]) if summary.get("tasks_kind") == "training" else None,
        seeds=list(summary.get("seeds", config.get("seeds", []))),
        episodes=int(summary.get("episodes_per_task", config.get("episodes", 0))),
        horizon=config.get("horizon"),
        score=_score(summary, "return"),
        distinct_rollouts=summary.get("distinct_rollouts"),
        normalized=_score(summary, "normalized"),
        success=_score(summary, "success_rate"),
        pretrain_run=str(config.get("pretrain_run")),
        pretrain_runs=[str(r) for r in pretrain_runs],
        tune_run=tune.run_id if tune else None,
        diffuse_run=diffuse.run_id if diffuse else None,
        settings={k: v for k, v in settings.items() if v is not None},
        compute_s=compute_behind(workspace, run, tune, [str(r) for r in pretrain_runs]),
        guidance_trace=trace,
        heldout_loss=heldout,
        versions={
            k: run.manifest.get("versions", {}).get(k) for k in ("mujoco", "metaworld", "gymnasium", "torch")
        },
        command=command_of(run, workspace.root),
    )


def eval_runs(workspace: Workspace, refs: list[str] | None, envs: list[str] | None) -> list[Run]:
    """The eval runs named (any status: unfinished ones are reported as ignored), else every one."""
    runs = [find_run(workspace, ref, "eval") for ref in refs] if refs else list_runs(workspace, "eval")
    if envs:
        runs = [r for r in runs if r.family in envs]
    return runs


def gather(
    workspace: Workspace,
    refs: list[str] | None = None,
    envs: list[str] | None = None,
    methods: list[str] | None = None,
    data_kinds: list[str] | None = None,
) -> ReportData:
    """The cells of the finished eval runs (`refs`, or all), of the families, methods and few-shot data kinds
    named (None: all); the newest run of a cell wins. A method keeps its cells under every guidance rule and
    hand-set setting; cells that read no few-shot data (zero-shot, the random-prompt control) count as
    expert, the data kind they record."""
    ignored: list[tuple[str, str]] = []
    results: list[Result] = []
    for run in eval_runs(workspace, refs, envs):
        if run.status is not RunStatus.FINISHED:
            ignored.append((run.run_id, f"status {run.display_status()}"))
            continue
        try:
            result = result_of(workspace, run)
        except ArtifactError as exc:
            ignored.append((run.run_id, exc.message))
            continue
        method = result.method.partition(" [")[0]  # a cell's hand-set setting label is not its method
        if (methods is None or method in methods) and (data_kinds is None or result.data_kind in data_kinds):
            results.append(result)
    if not results:
        named = [*(envs or []), *(methods or []), *(data_kinds or [])]
        where = f" for {', '.join(named)}" if named else ""
        raise ArtifactError(
            f"no finished eval runs{where} in {workspace.root}",
            hint="run `pdiff eval` (or `pdiff reproduce`) first",
        )

    def cell(result: Result) -> tuple:  # a fidelity measurement never replaces a test result, nor one it
        return (*result.cell, tuple(result.training_tasks or ()))

    newest: dict[tuple, Result] = {}
    for result in sorted(results, key=lambda r: (r.created_at, r.run_id)):
        newest[cell(result)] = result
    chosen = [r for r in newest.values() if r.training_tasks is None]
    fidelity = [r for r in newest.values() if r.training_tasks is not None]
    used = {r.run_id for r in newest.values()}
    superseded = [(r.run_id, newest[cell(r)].run_id) for r in results if r.run_id not in used]
    lineage: dict[str, list[str]] = {"pretrain": [], "diffuse": [], "tune": []}
    for r in [*chosen, *fidelity]:
        pairs = [("pretrain", ref) for ref in r.pretrain_runs or [r.pretrain_run]]
        for stage, ref in [*pairs, ("diffuse", r.diffuse_run), ("tune", r.tune_run)]:
            if ref and ref not in lineage[stage]:
                lineage[stage].append(ref)
    return ReportData(chosen, superseded, ignored, lineage, fidelity)
