"""PNG plots of a report: bar charts with error bars (std over seeds) per table, learning curves of the
pretrain and diffuse runs behind the numbers."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np

from pdiff.plots import plot_curves, save_png
from pdiff.results import paper
from pdiff.results.cells import ReportData, Result
from pdiff.results.tables import (
    FAMILY_ORDER,
    KIND_ORDER,
    METHOD_ORDER,
    RULE_ORDER,
    is_ood,
    main_results,
    ordered,
    setting_name,
    settings_in,
    table3_families,
)
from pdiff.workspace.root import Workspace

# The learning curve on training tasks (curve_every) shows only where a run logged it.
CURVE = ["train_task_return", "train_task_success"]
CURVE_KEYS = {
    "pretrain": ["loss", "lr", "grad_norm", *CURVE],
    "diffuse": ["loss_dm", "loss_plm", "cosine", *CURVE],
}


def _pyplot() -> ModuleType:  # matplotlib's pyplot module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def paper_label(family: str) -> str:
    """The legend of the paper's marker: its number comes from a setting that differs from ours."""
    from pdiff.envs import get_family

    if family.startswith("metaworld-"):
        return f"paper (v2 task; ours: v3, horizon {get_family(family).horizon})"
    return "paper (mujoco-py 2.0; ours: MuJoCo 3)"


def grouped_bars(
    panels: dict[str, dict[str, dict[str, Result]]], out: Path, title: str, paper_marks: dict | None = None
) -> Path | None:
    """One column per family; groups on the x axis, one bar per series inside a group, ± std error bars.

    The top row is the raw return (with the paper's markers); a second row shows the success rate when the
    family has one (Meta-World)."""
    if not panels:
        return None
    plt = _pyplot()
    cells_of = [c for groups in panels.values() for g in groups.values() for c in g.values()]
    rows = [("score", "return", 1.0)]
    if any(c.success is not None for c in cells_of):
        rows.append(("success", "success rate (%)", 100.0))
    panel_width = max(5.0, 0.7 * max(len(groups) for groups in panels.values()) + 1.5)
    fig, axes = plt.subplots(
        len(rows), len(panels), figsize=(panel_width * len(panels), 3.8 * len(rows)), squeeze=False
    )
    for row, (attr, ylabel, scale) in enumerate(rows):
        for ax, (family, groups) in zip(axes[row], panels.items(), strict=True):
            names = list(groups)
            series = ordered({s for g in groups.values() for s in g}, KIND_ORDER + RULE_ORDER)
            width = 0.8 / max(len(series), 1)
            for i, name in enumerate(series):
                xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(names))]
                scores = [getattr(groups[n][name], attr) if name in groups[n] else None for n in names]
                ax.bar(
                    xs,
                    [scale * s.mean if s else np.nan for s in scores],
                    width,
                    label=name if len(series) > 1 else None,
                    yerr=[scale * s.std if s else 0 for s in scores],
                    capsize=3,
                )
            marks = (paper_marks or {}).get(family, {}) if attr == "score" else {}
            if marks:
                idx = [i for i, n in enumerate(names) if n in marks]
                ax.scatter(
                    idx,
                    [marks[names[i]] for i in idx],
                    marker="D",
                    color="black",
                    zorder=3,
                    label=paper_label(family),
                )
            ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
            ax.set_title(family, fontsize=10)
            ax.set_ylabel(ylabel)
            if attr == "success":
                ax.set_ylim(0, 105)
            ax.grid(axis="y", alpha=0.3)
            if len(series) > 1 or marks:
                ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return save_png(fig, out)


def table1_bars(data: ReportData, shots: int, out: Path) -> Path | None:
    cells = main_results(data, "expert", shots)
    panels: dict[str, dict[str, dict[str, Result]]] = {}
    for family in ordered({f for _, f in cells if not is_ood(f)}, FAMILY_ORDER):  # as Table 1
        methods = ordered({m for m, f in cells if f == family}, METHOD_ORDER)
        panels[family] = {m: {"ours": cells[(m, family)]} for m in methods}
    marks = {f: {m: v[f].mean for m, v in paper.TABLE1.items() if f in v} for f in panels}
    return grouped_bars(
        panels, out, f"Table 1: expert few-shot data, {shots} shots (± std over seeds)", marks
    )


def table2_bars(data: ReportData, shots: int, out: Path) -> Path | None:
    panels: dict[str, dict[str, dict[str, Result]]] = {}
    for family in ordered({f for f in data.families() if not is_ood(f)}, FAMILY_ORDER):
        kinds = ordered(
            {r.data_kind for r in data.results if r.family == family and r.shots == shots}, KIND_ORDER
        )
        if len(kinds) < 2:
            continue
        per_kind = {kind: main_results(data, kind, shots) for kind in kinds}
        methods = ordered({m for k in kinds for m, f in per_kind[k] if f == family}, METHOD_ORDER)
        panels[family] = {
            m: {k: per_kind[k][(m, family)] for k in kinds if (m, family) in per_kind[k]} for m in methods
        }
    return grouped_bars(panels, out, f"Table 2: few-shot data quality, {shots} shots")


def ablation_bars(data: ReportData, shots: int, out: Path) -> Path | None:
    panels: dict[str, dict[str, dict[str, Result]]] = {}
    for r in data.results:
        if (
            r.method == "prompt-diffuser"
            and r.data_kind == "expert"
            and r.shots == shots
            and r.variant
            and not is_ood(r.family)
        ):
            panels.setdefault(r.family, {})[r.variant] = {"ours": r}
    panels = {
        f: dict(sorted(g.items(), key=lambda kv: ordered(set(g), RULE_ORDER).index(kv[0])))
        for f, g in panels.items()
        if len(g) > 1
    }
    return grouped_bars(panels, out, f"Guidance ablation (prompt-diffuser, expert, {shots} shots)")


def table3_bars(data: ReportData, out: Path) -> Path | None:
    """Table 3: per family, each method's few-shot and zero-shot bars side by side (expert data)."""
    panels: dict[str, dict[str, dict[str, Result]]] = {}
    families = table3_families(data)
    for shots, zero_shot in settings_in(data.results):
        for (method, family), result in main_results(data, "expert", shots, zero_shot).items():
            if family in families and (shots == 0 or is_ood(family)):
                panels.setdefault(family, {}).setdefault(method, {})[setting_name(shots, zero_shot)] = result
    panels = {
        f: {m: panels[f][m] for m in ordered(set(panels[f]), METHOD_ORDER)} for f in families if f in panels
    }
    return grouped_bars(panels, out, "Table 3: out of distribution and zero-shot (± std over seeds)")


def learning_curves(workspace: Workspace, data: ReportData, out_dir: Path) -> list[Path]:
    """The learning curve of every pretrain and diffuse run behind the results, redrawn from metrics.jsonl."""
    written = []
    for stage, keys in CURVE_KEYS.items():
        for run_id in data.lineage.get(stage, []):
            metrics = workspace.stage_dir(stage) / run_id / "metrics.jsonl"
            png = plot_curves(
                metrics, keys, out_dir / f"curve-{stage}-{run_id}.png", title=f"{stage} {run_id}"
            )
            if png is not None:
                written.append(png)
    return written


def all_figures(workspace: Workspace, data: ReportData, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path | None] = []
    for shots in sorted({r.shots for r in data.results if r.shots > 0}):  # zero-shot: Table 3 alone
        written.append(table1_bars(data, shots, out_dir / f"table1-{shots}shots.png"))
        written.append(table2_bars(data, shots, out_dir / f"table2-{shots}shots.png"))
        written.append(ablation_bars(data, shots, out_dir / f"ablation-{shots}shots.png"))
    written.append(table3_bars(data, out_dir / "table3.png"))
    return [p for p in written if p is not None] + learning_curves(workspace, data, out_dir)
