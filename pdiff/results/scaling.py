"""`pdiff report --scaling DIR [DIR ...] --out OUT`: the rungs of the scaling ladder (pdiff.ladder) side by
side.

Each DIR is named for its rung and holds that rung's report.json (`pdiff -w WS report --out DIR`), all of
one family; published, they live in docs/results/scaling/FAMILY/RUNG and OUT is docs/results/scaling/FAMILY.
OUT gets a README.md (each method's normalised score per rung, Prompt Diffuser's verdict against every other
method per rung, the generator's fidelity on training tasks, each rung's compute, the commands) and
scaling.png (score against pretraining samples). A rung's samples are read off its runs: steps × batch per
task × training tasks of the Prompt-DT behind its cells. Like `report --summary`, it reads only those
files, restates every interval by today's estimator and writes no date, so the same reports give the same
bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from pdiff.errors import ArtifactError, UsageError
from pdiff.ladder import PRESET, RUNGS, Rung, implied_samples, pretraining_samples, rung_commands, rung_of
from pdiff.plots import save_png
from pdiff.results import runtime
from pdiff.results.cells import ReportData, Result
from pdiff.results.fidelity import FIDELITY_HEADER, FIDELITY_NOTE, REAL_PROMPT, fidelity_cells, fidelity_pairs
from pdiff.results.figures import _pyplot
from pdiff.results.report_json import read_report, restated
from pdiff.results.standing import RULE_LINE, standing
from pdiff.results.tables import METHOD_ORDER, OURS, Table, is_ood, main_results, ordered
from pdiff.workspace.atomic import atomic_write_text

SCALING_DIR = "scaling"  # docs/results/scaling: where `make results` looks for rungs
FIGURE = "scaling.png"
SAMPLE_SETTINGS = ("pretrain steps", "pretrain batch per task", "pretrain tasks")


@dataclass(frozen=True)
class RungReport:
    rung: Rung
    directory: Path
    data: ReportData  # its Table 1 cells and fidelity runs, intervals restated
    samples: int  # of the Prompt-DT behind its cells


def restated_data(data: ReportData) -> ReportData:
    return replace(
        data, results=[restated(r) for r in data.results], fidelity=[restated(r) for r in data.fidelity]
    )


def samples_of(results: list[Result], path: Path) -> int:
    """The pretraining samples behind a rung's cells (the full-data model's own pretrain aside)."""
    found = set()
    for r in results:
        if r.settings.get("full-data Prompt-DT's tasks"):
            continue
        values = [r.settings.get(key) for key in SAMPLE_SETTINGS]
        if any(v is None for v in values):
            raise ArtifactError(
                f"{path} records no pretrain batch per task (written before pdiff recorded it)",
                hint="write it again: pdiff -w WORKSPACE report --env FAMILY --out DIR",
            )
        found.add(pretraining_samples(*(int(v) for v in values)))
    if len(found) != 1:
        raise ArtifactError(
            f"{path}: its cells were pretrained on {', '.join(map(str, sorted(found))) or 'no'} samples",
            hint="a rung is one reproduce in one workspace: one Prompt-DT budget",
        )
    return found.pop()


def read_rung(directory: Path) -> RungReport:
    rung = rung_of(directory.name)
    path = directory / "report.json"
    if not path.is_file():
        raise UsageError(
            f"--scaling {directory}: no report.json there",
            hint=f"write it: pdiff -w WORKSPACE report --env FAMILY --out {directory}",
        )
    data = restated_data(read_report(path))
    return RungReport(rung, directory, data, samples_of(data.results, path))


def read_rungs(directories: list[Path]) -> list[RungReport]:
    """The rungs in order of their pretraining samples; each rung once."""
    if not directories:
        raise UsageError(
            "--scaling needs the rungs' directories",
            hint="e.g. pdiff report --scaling DIR/x1 DIR/x4 --out DIR",
        )
    names = [d.name for d in directories]
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise UsageError(
            f"--scaling: rung {twice!r} given twice", hint=f"one directory per rung ({', '.join(RUNGS)})"
        )
    rungs = [read_rung(d) for d in directories]
    return sorted(rungs, key=lambda r: (r.samples, list(RUNGS).index(r.rung.name)))


def family_of(rungs: list[RungReport]) -> str:
    families = {r.family for rung in rungs for r in rung.data.results if not is_ood(r.family)}
    if len(families) != 1:
        raise ArtifactError(
            f"the rungs report {', '.join(sorted(families)) or 'no family'}; a scaling study is one family",
            hint="write each rung's report with pdiff report --env FAMILY --out DIR",
        )
    return families.pop()


def common_shots(rungs: list[RungReport]) -> int:
    """The shot count of expert few-shot data run most often over all rungs: the cells compared."""
    shots = [r.shots for rung in rungs for r in rung.data.results if r.data_kind == "expert" and r.shots > 0]
    if not shots:
        raise ArtifactError(
            "no rung has expert few-shot cells", hint="run each rung's reproduce with expert data"
        )
    return max(sorted(set(shots)), key=shots.count)


def rung_cells(rung: RungReport, family: str, shots: int) -> dict[str, Result]:
    """Method → the rung's Table 1 cell."""
    cells = main_results(rung.data, "expert", shots)
    return {m: r for (m, f), r in cells.items() if f == family}


def column(rung: RungReport) -> str:
    return f"{rung.rung.name} ({rung.samples:,} samples)"


def score_table(rungs: list[RungReport], cells: list[dict[str, Result]], shots: int) -> Table:
    methods = ordered({m for c in cells for m in c}, METHOD_ORDER)
    rows = []
    for method in methods:
        texts = [c[method].normalized.text() if method in c and c[method].normalized else "–" for c in cells]
        rows.append([method, *texts])
    notes = [
        f"Normalised score (100: the expert data, 0: random), mean ± std over seeds [95% interval resampling "
        f"whole seeds], expert few-shot data, {shots} shots; samples: the Prompt-DT's pretraining segments "
        "(steps × batch per task × training tasks), as its runs recorded them.",
        f"![{FIGURE}]({FIGURE})",
    ]
    return Table("Normalised score per rung", ["method", *map(column, rungs)], rows, notes)


def verdict_text(ours: Result | None, other: Result | None) -> str:
    if ours is None or other is None:
        return "–"
    verdict, evidence = standing(ours, other)
    return f"{'**behind**' if verdict == 'behind' else verdict} ({evidence})"


def verdict_table(rungs: list[RungReport], cells: list[dict[str, Result]]) -> Table:
    others = ordered({m for c in cells for m in c if m != OURS}, METHOD_ORDER)
    rows = [[method, *(verdict_text(c.get(OURS), c.get(method)) for c in cells)] for method in others]
    return Table(
        "Prompt Diffuser against each method, per rung", ["against", *map(column, rungs)], rows, [RULE_LINE]
    )


def fidelity_table(rungs: list[RungReport]) -> Table | None:
    rows = [
        [rung.rung.name, pair.family, pair.data_kind, str(pair.shots), *fidelity_cells(pair)]
        for rung in rungs
        for pair in fidelity_pairs(rung.data)
    ]
    if not rows:
        return None
    header = ["rung", "family", "data", "shots", *FIDELITY_HEADER]
    return Table("Generator fidelity on training tasks", header, rows, [FIDELITY_NOTE])


def compute_table(rungs: list[RungReport], family: str) -> Table:
    rows = []
    notes = []
    for rung in rungs:
        results = [*rung.data.results, *rung.data.fidelity]
        rows.append([rung.rung.name, rung.rung.meaning, f"{rung.samples:,}", runtime.compute_text(results)])
        implied = implied_samples(rung.rung, family)
        if implied != rung.samples:
            notes.append(
                f"{rung.rung.name}: its runs trained on {rung.samples:,} samples; the rung implies "
                f"{implied:,} at the packaged {PRESET} preset: its runs were given other budgets."
            )
    notes.append(
        "Compute: how long the runs behind each rung's numbers ran, summed per stage (each run once; "
        "collect not included; runs that ran beside others count in full)."
    )
    return Table(
        "Each rung's budget and compute",
        ["rung", "what it changes", "pretraining samples", "compute"],
        rows,
        notes,
    )


def draw(rungs: list[RungReport], cells: list[dict[str, Result]], family: str, shots: int, out: Path) -> Path:
    """Normalised score against pretraining samples (log x), one line per method, its interval as a band."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    for method in ordered({m for c in cells for m in c}, METHOD_ORDER):
        points = [
            (rung.samples, c[method].normalized)
            for rung, c in zip(rungs, cells, strict=True)
            if method in c and c[method].normalized is not None
        ]
        if not points:
            continue
        xs = [x for x, _ in points]
        line = ax.plot(xs, [s.mean for _, s in points], marker="o", label=method)[0]
        banded = [(x, s) for x, s in points if s.low is not None and s.high is not None]
        if banded:
            ax.fill_between(
                [x for x, _ in banded],
                [s.low for _, s in banded],
                [s.high for _, s in banded],
                color=line.get_color(),
                alpha=0.15,
            )
    ax.set_xscale("log")
    ax.set_xticks([r.samples for r in rungs], [f"{r.rung.name}\n{r.samples:,}" for r in rungs], fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel("the Prompt-DT's pretraining samples (rung)")
    ax.set_ylabel("normalised score")
    ax.set_title(
        f"{family}: expert few-shot data, {shots} shots (band: 95% interval over seeds)", fontsize=10
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_png(fig, out)


def render(rungs: list[RungReport], out: Path) -> str:
    family = family_of(rungs)
    shots = common_shots(rungs)
    cells = [rung_cells(rung, family, shots) for rung in rungs]
    draw(rungs, cells, family, shots, out / FIGURE)
    given = " ".join(str(rung.directory) for rung in rungs)
    lines = [
        f"# Scaling: {family}, the Prompt-DT's pretraining budget",
        "",
        f"Generated by `pdiff report --scaling {given} --out {out}` from each rung's report.json; do not "
        f"edit by hand. Each rung is `pdiff reproduce --preset {PRESET}` with its own `--set` overrides, in "
        "a workspace of its own: "
        + " · ".join(f"[{r.rung.name}]({os.path.relpath(r.directory / 'report.md', out)})" for r in rungs),
        "",
    ]
    tables = [
        score_table(rungs, cells, shots),
        verdict_table(rungs, cells),
        fidelity_table(rungs),
        compute_table(rungs, family),
    ]
    lines += [table.markdown() for table in tables if table is not None]
    lines += [
        "### Commands",
        "",
        "Per rung as the ladder prescribes it, then this page (`make results` runs the last one); the "
        "commands its runs recorded are in each rung's report, under Made by:",
        "",
        "```bash",
    ]
    for rung in rungs:
        lines += rung_commands(rung.rung, family, str(rung.directory))
    lines += [f"pdiff report --scaling {given} --out {out}", "```", ""]
    return "\n".join(lines)


def write_scaling(directories: list[Path], out: Path) -> Path:
    """Write OUT/README.md and OUT/scaling.png from the rungs' reports; returns the README's path."""
    rungs = read_rungs(directories)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "README.md"
    atomic_write_text(path, render(rungs, out))
    return path


def published_rungs(results_dir: Path) -> dict[Path, list[Path]]:
    """Each family's scaling page directory (results_dir/scaling/FAMILY) → its rungs' directories, the
    ones holding a report.json (`make results` writes one page per family from them)."""
    found: dict[Path, list[Path]] = {}
    for path in sorted((results_dir / SCALING_DIR).glob("*/*/report.json")):
        found.setdefault(path.parent.parent, []).append(path.parent)
    return found


def scaling_sentence(results_dir: Path, page: Path) -> str:
    """The README's sentence on the scaling study (linked from `page`): per family, Prompt Diffuser against
    the real prompt (prompt-dt) at each rung, by the verdict rule with its interval; "" while
    results_dir/scaling holds no rung."""
    parts = []
    for family_dir, directories in published_rungs(results_dir).items():
        rungs = read_rungs(directories)
        family, shots = family_of(rungs), common_shots(rungs)
        verdicts = []
        for rung in rungs:
            cells = rung_cells(rung, family, shots)
            ours, real = cells.get(OURS), cells.get(REAL_PROMPT)
            samples = f"{rung.samples:,} samples"
            if ours and real:
                verdict, evidence = standing(ours, real)
                verdicts.append(f"{verdict} at {rung.rung.name} ({samples}; {evidence})")
            else:
                verdicts.append(f"not run at {rung.rung.name} ({samples})")
        link = os.path.relpath(family_dir / "README.md", page.parent)
        parts.append(f"on {family} ([the study]({link})) it is {', '.join(verdicts)}")
    if not parts:
        return ""
    return (
        "\nScaling the Prompt-DT's pretraining, Prompt Diffuser against the real prompt (prompt-dt): "
        f"{'; '.join(parts)}.\n"
    )
