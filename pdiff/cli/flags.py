"""The options several commands share (`--preset`, `--config`, `--set`, `--resume`, …), the one parsing of
list values (`--tasks 0,3,5-7`, `--env a,b --env c`) and the default `--env` (the latest upstream run's)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import typer
from pydantic import BaseModel

from pdiff.errors import UsageError

if TYPE_CHECKING:
    from pdiff.workspace.root import Workspace

C = TypeVar("C", bound=BaseModel)

PRESET = typer.Option(
    None, "--preset", help="smoke | quick | study | paper (default: the workspace's default_preset)."
)
CONFIG = typer.Option(None, "--config", help="YAML file with stage sections, e.g. `collect: {episodes: 10}`.")


def set_option(example: str) -> Any:
    """`--set KEY=VALUE`, with an example that works for the stage (`pdiff config show STAGE` lists the
    keys)."""
    return typer.Option([], "--set", help=f"Override one setting, e.g. --set {example} (repeatable).")


RESUME = typer.Option(
    None, "--resume", help="Continue this unfinished run (id or prefix) with its own config."
)
DEVICE = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N.")
SHOTS = typer.Option(None, "--shots", help="Few-shot episodes per test task (tune: 0 = zero-shot).")
DATA_KIND = typer.Option(None, "--data-kind", help="expert | medium | random few-shot data.")
SEEDS = typer.Option(None, "--seeds", help="Seeds, e.g. 0,1,2.")


def parse_ids(text: str | None, flag: str = "--tasks") -> list[int] | None:
    """'0,3,5-7' → [0, 3, 5, 6, 7]."""
    if text is None:
        return None
    ids: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                if high < low:
                    raise ValueError(part)
                ids.extend(range(low, high + 1))
            else:
                ids.append(int(part))
        if not ids:
            raise ValueError(text)
    except ValueError:
        raise UsageError(
            f"{flag} {text!r} is not a list of integer ids (ranges low-high)",
            hint=f"write e.g. {flag} 0,3,5-7",
        ) from None
    return ids


def parse_names(text: str | list[str] | None) -> list[str] | None:
    """The one spelling of every list option: a comma list, the option also repeatable
    (`--env a,b --env c`)."""
    if not text:
        return None
    items = [text] if isinstance(text, str) else text
    return [p.strip() for item in items for p in item.split(",") if p.strip()]


def with_upstream_family(
    workspace: Workspace, cfg: C, stage: str, resume: str | None, *runs: str | list[str] | None
) -> C:
    """`cfg` with the family of the newest finished `stage` run where no layer (flag, --set, --config) named
    a family or an input run, so that `pdiff pretrain` follows `pdiff collect`: the guess is the lowest layer,
    never one that overrides what the user wrote. A resumed run keeps its recorded config instead."""
    from pdiff.workspace.runs import RunStatus, list_runs

    if resume or "env" in cfg.model_fields_set or any(runs):
        return cfg
    finished = [r for r in list_runs(workspace, stage) if r.status is RunStatus.FINISHED]
    return cfg.model_copy(update={"env": finished[-1].family}) if finished else cfg
