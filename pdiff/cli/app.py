"""The Typer application, its global options, and the one place errors become exit codes."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco: headless rendering

import typer
from rich.markup import escape
from typer.core import TyperGroup

from pdiff import __version__
from pdiff.console import err, pasteable, reset_consoles, setup_logging, suggest_with_workspace
from pdiff.errors import EXIT_INTERRUPTED, PdiffError, RunFailed, from_os_error
from pdiff.workspace.root import STAGES, WORKSPACE_ENV, Workspace, resolve_root


@dataclass
class GlobalOptions:
    workspace: Path
    json: bool = False
    verbose: int = 0

    def open_workspace(self) -> Workspace:
        return Workspace.open(self.workspace)


# What `--help` shows after an option that takes a value (flags show nothing, not `<bool>`).
PLACEHOLDERS = {
    "workspace": "DIR",
    "env": "FAMILY",
    "preset": "NAME",
    "config": "FILE",
    "set": "KEY=VALUE",
    "resume": "RUN",
    "pretrain": "RUN",
    "tune": "RUN",
    "diffuse": "RUN",
    "device": "DEVICE",
    "out": "DIR",
    "method": "METHOD",
    "kinds": "KIND,…",
    "data-kind": "KIND",
    "stage": "STAGE",
    "prompt": "auto|fewshot|random",
    "guidance": "RULE",
    "lambda": "λ",
    "tasks": "IDS",
    "seeds": "SEEDS",
    "launcher": "print|local",
    "only": "all|shared|cells",
}


def with_placeholders(command: Any) -> Any:
    """Real placeholders in help (`--env FAMILY`, `--steps N`) instead of typer's `<str>`, `<bool>`."""
    if getattr(command, "_pdiff_placeholders", False):
        return command
    command._pdiff_placeholders = True
    for param in command.params:
        if param.metavar is not None:
            continue
        if param.param_type_name == "option" and (param.is_flag or param.count):
            param.metavar = ""
        elif param.param_type_name == "option":
            name = max(param.opts, key=len).lstrip("-")
            numeric = param.bare_type() in ("int", "float")
            param.metavar = PLACEHOLDERS.get(name, "N" if numeric else name.upper())
        else:  # an argument: its name is its placeholder, and no `<str>` type beside it
            param.metavar = (param.name or "").upper()
            param.display_type_rich = lambda ctx: None
    help_option = command.get_help_option

    def flag_help(ctx: Any) -> Any:
        option = help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = flag_help
    for sub in getattr(command, "commands", {}).values():  # `pdiff config show`
        with_placeholders(sub)
    return command


# `pdiff --help` lists the stages in the order a user runs them, then the commands around them.
AFTER_STAGES = ("demo", "sweep", "init", "ls", "show", "status", "verify", "gc", "config", "envs", "doctor")


class PdiffGroup(TyperGroup):
    """Turns domain errors into one red line, a hint and the exit code, for the console and CliRunner
    alike."""

    def list_commands(self, ctx: Any) -> list[str]:
        order = {name: rank for rank, name in enumerate((*STAGES, *AFTER_STAGES))}
        return sorted(super().list_commands(ctx), key=lambda name: order.get(name, len(order)))

    def get_params(self, ctx: Any) -> list[Any]:
        with_placeholders(self)
        return super().get_params(ctx)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        return with_placeholders(command) if command is not None else None

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # Click's own usage errors and exits keep their codes and messages
        except PdiffError as exc:
            _fail(ctx, exc)
        except OSError as exc:  # disk full, read-only workspace, permission denied
            _fail(ctx, from_os_error(exc))
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/yellow]")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:  # noqa: BLE001 - a bug: still one line, the traceback behind -v
            first = str(exc).splitlines()[0] if str(exc) else ""
            _fail(
                ctx,
                RunFailed(
                    f"internal error: {exc.__class__.__name__}: {first}",
                    hint="re-run with -v for the traceback and report it",
                ),
            )


def _fail(ctx: typer.Context, exc: PdiffError) -> NoReturn:
    """One red line naming what is wrong, one `hint:` line saying what to do, and the exit code."""
    options = ctx.obj if isinstance(ctx.obj, GlobalOptions) else None
    if options is not None and options.verbose and sys.exc_info()[0] is not None:
        err.print_exception()
    # escape: a message quotes user input and paths, which may contain [brackets] Rich reads as markup
    err.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False, soft_wrap=True, markup=True)
    if exc.hint:
        err.print(f"hint: {pasteable(exc.hint)}", highlight=False, soft_wrap=True, markup=False)
    raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=PdiffGroup,
    name="pdiff",
    help="Prompt Diffuser: generate the prompt of a frozen Prompt Decision Transformer for unseen tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"pdiff {__version__}")
        raise typer.Exit()


@app.callback()
def global_options(
    ctx: typer.Context,
    workspace: Path | None = typer.Option(
        None, "--workspace", "-w", envvar=WORKSPACE_ENV, help="Workspace root \\[default: ./workspace]."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print results as JSON on stdout."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More logging; tracebacks on errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors on stderr."),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    reset_consoles()
    setup_logging(verbose, quiet)
    root = resolve_root(workspace)
    suggest_with_workspace(root if workspace is not None or os.environ.get(WORKSPACE_ENV) else None)
    ctx.obj = GlobalOptions(workspace=root, json=json_output, verbose=verbose)


def options(ctx: typer.Context) -> GlobalOptions:
    obj = ctx.find_root().obj
    assert isinstance(obj, GlobalOptions)
    return obj
