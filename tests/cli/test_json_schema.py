"""Every command's `--json` output against docs/json.md, both ways: each documented field is there with its
documented type, and no field is there that the page does not document (issue 17)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from support.cli import pdiff_json
from support.killing import stale_run

from pdiff.cli import app

pytestmark = pytest.mark.metaworld
DOC = Path(__file__).resolve().parents[2] / "docs" / "json.md"
TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
    "object": (dict,),
    "array": (list,),
}


@dataclass(frozen=True)
class Field:
    path: tuple[str, ...]  # ("steps", "[]", "state")
    types: frozenset[str] | None  # None: any
    optional: bool


def documented() -> dict[str, list[Field]]:
    """Command (as the section title writes it, e.g. `ls --datasets`) → its fields, from docs/json.md."""
    schemas: dict[str, list[Field]] = {}
    for section in re.split(r"^## ", DOC.read_text(), flags=re.M)[1:]:
        title, _, body = section.partition("\n")
        fields = []
        for line in body.splitlines():
            if not line.startswith("| `"):
                continue
            path, kind = (c.strip() for c in re.split(r"(?<!\\)\|", line)[1:3])
            names = set(re.findall(r"\b(" + "|".join(TYPES) + r")\b", kind))
            assert names or kind == "any", f"{title}: {line}"
            fields.append(
                Field(
                    tuple(re.findall(r"\[\]|[^.\[\]]+", path.strip("`"))),
                    frozenset(names) if names else None,
                    "optional" in kind,
                )
            )
        for command in re.findall(r"`pdiff ([^`]+)`", title):
            schemas[command] = fields
    return schemas


def reach(value: Any, path: tuple[str, ...]) -> list[Any]:
    """Every value `path` leads to (`[]`: each element); places where a key is absent lead nowhere."""
    nodes = [value]
    for token in path:
        if token == "[]":
            nodes = [element for node in nodes if isinstance(node, list) for element in node]
        else:
            nodes = [node[token] for node in nodes if isinstance(node, dict) and token in node]
    return nodes


def _typed(value: Any, types: frozenset[str]) -> bool:
    return any(
        isinstance(value, TYPES[t]) and not (isinstance(value, bool) and t in ("integer", "number"))
        for t in types
    )


def problems(fields: list[Field], output: Any) -> list[str]:
    found: list[str] = []
    known: dict[tuple[str, ...], set[str]] = {}
    open_levels = {f.path[:-1] for f in fields if f.path[-1] == "*"}
    for f in (f for f in fields if f.path[-1] != "*"):
        name, parent = ".".join(f.path), f.path[:-1]
        known.setdefault(parent, set()).add(f.path[-1])
        if f.path[-1] != "[]" and not f.optional:
            holders = [n for n in reach(output, parent) if isinstance(n, dict)]
            found += [f"{name}: missing" for n in holders if f.path[-1] not in n][:1]
            if not holders and "[]" in parent:  # an empty array would leave its elements' fields unchecked
                found.append(f"{name}: never present (no element to check it on)")
        for value in reach(output, f.path):
            if f.types is not None and not _typed(value, f.types):
                found.append(f"{name}: {type(value).__name__} {value!r:.60}, documented {sorted(f.types)}")
    for level, names in known.items():
        if level in open_levels or names == {"[]"}:
            continue
        for node in reach(output, level):
            if isinstance(node, dict):
                found += [
                    f"{'.'.join((*level, extra))}: not documented" for extra in sorted(set(node) - names)
                ]
    return sorted(set(found), key=found.index)


def test_every_json_output_matches_docs_json_md(reach_ws, tmp_path):
    ws = ["-w", str(reach_ws.root)]
    smoke = ["--preset", "smoke"]
    outputs: dict[str, Any] = {"init": pdiff_json("init", str(tmp_path / "fresh"))}
    outputs["pretrain"] = pdiff_json(*ws, "pretrain", "--env", "metaworld-reach", *smoke)
    outputs["eval"] = pdiff_json(*ws, "eval", "--pretrain", outputs["pretrain"]["run_id"], *smoke)
    outputs["diffuse"] = pdiff_json(*ws, "diffuse", *smoke)
    outputs["tune"] = pdiff_json(*ws, "tune", *smoke)
    tuned = pdiff_json(*ws, "eval", "--tune", outputs["tune"]["run_id"], *smoke)
    assert not problems(documented()["eval"], tuned)  # the other eval shape: a tune run's prompts
    outputs["demo"] = pdiff_json(*ws, "demo", *smoke)
    outputs["report"] = pdiff_json(*ws, "report")
    outputs["reproduce"] = pdiff_json(
        *ws, "reproduce", "--dry-run", "--env", "metaworld-reach", "--methods", "lora", *smoke
    )
    outputs["sweep"] = pdiff_json(*ws, "sweep", "--env", "metaworld-reach")
    outputs["ls"] = pdiff_json(*ws, "ls")
    outputs["ls --datasets"] = pdiff_json(*ws, "ls", "--datasets")
    outputs["show"] = pdiff_json(*ws, "show", outputs["eval"]["run_id"])
    stale_run(reach_ws, "pretrain", "metaworld-reach")  # something for status and gc to list
    outputs["status"] = pdiff_json(*ws, "status")
    outputs["verify"] = pdiff_json(*ws, "verify")
    outputs["gc"] = pdiff_json(*ws, "gc", "--dry-run")
    outputs["doctor"] = pdiff_json(*ws, "doctor")
    outputs["envs"] = pdiff_json("envs")
    outputs["envs FAMILY"] = pdiff_json("envs", "cheetah-vel")
    outputs["config show STAGE"] = pdiff_json(*ws, "config", "show", "tune")
    # last: a new dataset version with one episode would change what the stages above read
    outputs["collect"] = pdiff_json(
        *ws,
        "collect",
        "--env",
        "metaworld-reach",
        "--kinds",
        "expert",
        "--tasks",
        "0",
        "--episodes",
        "1",
        *smoke,
    )

    schemas = documented()
    assert set(schemas) == set(outputs), "docs/json.md and this test cover different commands"
    found = {command: problems(schemas[command], output) for command, output in outputs.items()}
    assert {command: p for command, p in found.items() if p} == {}


def test_every_command_with_json_is_documented():
    commands = typer.main.get_command(app).commands
    with_json = {
        name for name, command in commands.items() if any("--json" in p.opts for p in command.params)
    }
    with_json |= {
        f"config {name}"
        for name, sub in commands["config"].commands.items()
        if any("--json" in p.opts for p in sub.params)
    }
    documented_commands = {
        key.split(" ")[0] if not key.startswith("config") else "config show" for key in documented()
    }
    assert with_json == documented_commands


def test_the_checker_sees_a_missing_a_mistyped_and_an_undocumented_field():
    fields = documented()["gc"]
    assert problems(fields, {"targets": [], "deleted": False, "dry_run": True}) == []
    assert problems(fields, {"targets": [], "deleted": "no", "extra": 1}) == [
        "deleted: str 'no', documented ['boolean']",
        "dry_run: missing",
        "extra: not documented",
    ]
