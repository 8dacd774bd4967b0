"""Runs: one directory per stage execution, described by `run.json`, never reused.

A run is RUNNING while a process holds its lock file, then FINISHED, FAILED or KILLED. A RUNNING run
whose lock is free was killed without a chance to say so (SIGKILL, power loss): it is *stale*, later
stages refuse it, and `--resume` continues it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from filelock import FileLock

from pdiff.errors import ArtifactError, PdiffError, UsageError
from pdiff.interrupts import raise_if_dropped
from pdiff.workspace.atomic import atomic_write_json, atomic_write_text, sha256_file, sha256_json
from pdiff.workspace.provenance import git_state, library_versions
from pdiff.workspace.root import STAGES, Workspace, parse_utc, utc_now, utc_stamp
from pdiff.workspace.run_lock import LOCK_NAME, acquire_run_lock, lock_is_held

RUN_SCHEMA = 1
SELF_HASH = "manifest_sha256"  # run.json's hash of its own content: a flipped byte cannot pass as data


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "run"


@dataclass
class Run:
    """A run directory and its manifest. Only the process holding `lock` may write to it."""

    workspace: Workspace
    stage: str
    run_id: str
    manifest: dict[str, Any]
    lock: FileLock | None = field(default=None, repr=False)
    tracker: Any = field(default=None, repr=False)  # pdiff.tracking.Tracker, opened by the first log_metrics

    @property
    def dir(self) -> Path:
        return self.workspace.stage_dir(self.stage) / self.run_id

    @property
    def status(self) -> RunStatus:
        return RunStatus(self.manifest["status"])  # load_run has checked it is one

    @property
    def family(self) -> str | None:
        return self.manifest.get("family")

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest.get("config", {})

    def is_stale(self) -> bool:
        """RUNNING on disk but nobody holds the lock: the process died without updating its status."""
        return self.status is RunStatus.RUNNING and self.lock is None and not lock_is_held(self.dir)

    def display_status(self) -> str:
        return "STALE" if self.is_stale() else self.status.value

    # -- writing (lock holders only) -------------------------------------------------------------
    def save(self) -> None:
        if self.lock is None:
            raise RuntimeError(f"run {self.run_id} is not locked by this process")  # programming error
        self.manifest["updated_at"] = utc_now()
        self.manifest[SELF_HASH] = manifest_hash(self.manifest)
        atomic_write_json(self.dir / "run.json", self.manifest)

    def record_input(self, kind: str, ref: str, sha256: str | None, **extra: Any) -> None:
        self.record_inputs(kind, [(ref, sha256)], **extra)

    def record_inputs(self, kind: str, refs: Iterable[tuple[str, str | None]], **extra: Any) -> None:
        """Record several inputs of one kind with a single manifest write.

        A resumed run must continue on the inputs it started with: other ones (a dataset re-collected
        into a new version, a file changed) are refused rather than silently mixed in.
        """
        refs = list(refs)
        before = {(e["ref"], e["sha256"]) for e in self.manifest["inputs"] if e["kind"] == kind}
        if self.manifest["resumes"] and before and set(refs) != before:
            changed = sorted({r for r, _ in set(refs) ^ before})
            raise ArtifactError(
                f"run {self.run_id} started on other {kind} inputs than it would resume on "
                f"({', '.join(changed[:3])})",
                hint=f"start a new `pdiff {self.stage}` run instead of resuming this one",
            )
        for ref, sha256 in refs:
            entry = {"kind": kind, "ref": ref, "sha256": sha256, **extra}
            if entry not in self.manifest["inputs"]:
                self.manifest["inputs"].append(entry)
        self.save()

    def record_output(self, path: Path, kind: str, **extra: Any) -> None:
        """Record a file (or every file of a directory) this run produced, with its sha256."""
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        paths = {self._rel(f): f for f in files}
        outputs = [o for o in self.manifest["outputs"] if o["path"] not in paths]
        for rel, file in paths.items():
            outputs.append({"kind": kind, "path": rel, "sha256": sha256_file(file), **extra})
        self.manifest["outputs"] = outputs
        self.save()

    def _rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.dir.resolve()))
        except ValueError:
            return str(path.resolve().relative_to(self.workspace.root.resolve()).as_posix())

    def log_metrics(self, row: dict[str, Any]) -> None:
        """Append one JSON line to metrics.jsonl (append-only; a torn last line is skipped by readers, and
        the rows a resumed run logs again replace the killed run's: `pdiff.plots.read_metrics`)."""
        with open(self.dir / "metrics.jsonl", "a+b") as handle:
            row = {"time": time.time(), **row}
            torn = handle.tell() > 0 and os.pread(handle.fileno(), 1, handle.tell() - 1) != b"\n"
            # a line a kill left unfinished is ended first, so it cannot swallow this row
            handle.write((b"\n" if torn else b"") + (json.dumps(row, allow_nan=True) + "\n").encode())
            handle.flush()
            os.fsync(handle.fileno())
        if self.tracker is None:  # the same numbers as TensorBoard scalars, when tensorboard is installed
            from pdiff.tracking import TENSORBOARD_DIR, Tracker

            self.tracker = Tracker(self.dir / TENSORBOARD_DIR, self.config)
        self.tracker.log(row)

    def set_status(self, status: RunStatus, *, error: str | None = None, summary: dict | None = None) -> None:
        self.manifest["status"] = status.value
        if summary:
            self.manifest.setdefault("summary", {}).update(summary)
        if error is not None:
            self.manifest["error"] = error
        if status is not RunStatus.RUNNING:
            self.manifest["finished_at"] = utc_now()
            self.manifest["duration_s"] = round(time.time() - parse_utc(self.manifest["created_at"]), 3)
        self.save()

    def end_badly(self, status: RunStatus, error: str) -> None:
        """Record FAILED/KILLED if the disk allows; if not (full, read-only) the run stays stale,
        resumable."""
        with suppress(OSError):
            self.set_status(status, error=error)

    def release(self) -> None:
        if self.tracker is not None:
            self.tracker.close()
            self.tracker = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def manifest_hash(manifest: dict[str, Any]) -> str:
    return sha256_json({k: v for k, v in manifest.items() if k != SELF_HASH})


def create_run(
    workspace: Workspace,
    stage: str,
    *,
    config: dict[str, Any],
    argv: list[str],
    seed: int | None,
    family: str | None,
    slug: str | None = None,
) -> Run:
    """Make a new, locked run directory `runs/<stage>/<utc>-<slug>-<cfg6>` and its RUNNING manifest."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage}")
    config_sha = sha256_json(config)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = f"{stamp}-{_slug(slug or family or stage)}-{config_sha[:6]}"
    stage_dir = workspace.stage_dir(stage)
    stage_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        run_id = base if attempt == 1 else f"{base}-{attempt}"
        try:
            (stage_dir / run_id).mkdir()  # exclusive: never reuse a directory
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - a thousand runs in one second
        raise PdiffError(f"cannot allocate a run directory under {stage_dir}")
    run_dir = stage_dir / run_id
    lock = acquire_run_lock(run_dir, run_id)
    now = utc_now()
    manifest: dict[str, Any] = {
        "schema": RUN_SCHEMA,
        "run_id": run_id,
        "stage": stage,
        "family": family,
        "status": RunStatus.RUNNING.value,
        "created_at": now,
        "updated_at": now,
        "finished_at": None,
        "duration_s": 0.0,
        "argv": argv,
        "config": config,
        "config_sha256": config_sha,
        "seed": seed,
        "versions": library_versions(),
        "git": git_state(),
        "host": {"hostname": socket.gethostname(), "pid": os.getpid()},
        "inputs": [],
        "outputs": [],
        "resumes": [],
        "summary": {},
        "error": None,
    }
    run = Run(workspace, stage, run_id, manifest, lock)
    atomic_write_text(run_dir / "argv.txt", " ".join(argv) + "\n")
    run.save()
    return run


def load_run(workspace: Workspace, stage: str, run_id: str) -> Run:
    path = workspace.stage_dir(stage) / run_id / "run.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ArtifactError(
            f"{path} is missing", hint="the run directory is incomplete; remove it with `pdiff gc`"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ArtifactError(
            f"{path} is corrupt ({exc.__class__.__name__})",
            hint="the run cannot be trusted: re-run the stage, and remove this run with `pdiff gc`",
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("schema") != RUN_SCHEMA:
        raise ArtifactError(
            f"{path} is not a pdiff run manifest (schema {RUN_SCHEMA})", hint=f"re-run `pdiff {stage}`"
        )
    recorded = manifest.get(SELF_HASH)
    if recorded is not None and recorded != manifest_hash(manifest):
        raise ArtifactError(
            f"{path} does not match its own checksum (corrupt or edited by hand)",
            hint=f"the run cannot be trusted: re-run `pdiff {stage}` and remove this run with `pdiff gc`",
        )
    if manifest.get("status") not in set(RunStatus):
        raise ArtifactError(f"{path} has no valid status", hint=f"re-run `pdiff {stage}`")
    return Run(workspace, stage, run_id, manifest)


def list_runs(workspace: Workspace, stage: str | None = None, family: str | None = None) -> list[Run]:
    """Runs sorted oldest first (run ids start with a UTC timestamp). Unreadable runs are skipped."""
    runs: list[Run] = []
    for name in [stage] if stage else STAGES:
        stage_dir = workspace.stage_dir(name)
        if not stage_dir.is_dir():
            continue
        for run_dir in sorted(stage_dir.iterdir()):
            if not (run_dir / "run.json").is_file():
                continue
            try:
                run = load_run(workspace, name, run_dir.name)
            except ArtifactError:
                continue
            if family is None or run.family == family:
                runs.append(run)
    return sorted(runs, key=lambda r: (r.manifest.get("created_at", ""), r.run_id))


def find_run(workspace: Workspace, ref: str, stage: str | None = None) -> Run:
    """A run by id, unique id prefix, `latest` (newest FINISHED of `stage`), or path to its directory."""
    path = Path(ref)
    if (path / "run.json").is_file():
        return load_run(workspace, path.resolve().parent.name, path.resolve().name)
    for name in [stage] if stage else STAGES:  # an exact id is loaded as is: a corrupt run.json is an error
        if name in STAGES and (workspace.stage_dir(name) / ref / "run.json").is_file():
            return load_run(workspace, name, ref)
    if ref == "latest":
        if stage is None:
            raise UsageError("`latest` needs a stage", hint="name the run id instead (see `pdiff ls`)")
        return latest_finished(workspace, stage, None)
    matches = [r for r in list_runs(workspace, stage) if r.run_id.startswith(ref)]  # exact ids returned above
    if not matches:
        where = f"stage {stage}" if stage else "any stage"
        raise UsageError(f"no run {ref!r} in {where} of {workspace.root}", hint="list runs with `pdiff ls`")
    if len(matches) > 1:
        names = ", ".join(r.run_id for r in matches[:5])
        raise UsageError(
            f"run prefix {ref!r} is ambiguous ({names})", hint="give more characters of the run id"
        )
    return matches[0]


def uses_full_data(workspace: Workspace, run: Run) -> bool:
    """Whether `run` is a full-data Prompt-DT (`--include-test-tasks`) or was built on one."""
    if run.config.get("include_test_tasks"):
        return True
    ref = run.config.get("pretrain_run")
    with suppress(PdiffError):
        return bool(ref) and bool(find_run(workspace, ref, "pretrain").config.get("include_test_tasks"))
    return False


def latest_finished(workspace: Workspace, stage: str, family: str | None) -> Run:
    """What a stage uses when no input is named: the newest FINISHED run of `stage` for `family`; never one
    that is or builds on a full-data Prompt-DT (it has seen the test tasks), which is used only by name."""
    runs = [r for r in list_runs(workspace, stage, family) if r.status is RunStatus.FINISHED]
    full_data = [r for r in runs if uses_full_data(workspace, r)]
    finished = [r for r in runs if r not in full_data]
    if not finished:
        for_family = f" for {family}" if family else ""
        flag = f" --env {family}" if family else ""
        also = f" ({len(full_data)} full-data run(s) are only used by name)" if full_data else ""
        raise ArtifactError(
            f"no finished {stage} run{for_family} in {workspace.root}{also}",
            hint=f"run `pdiff {stage}{flag}` first (or name a run explicitly)",
        )
    return finished[-1]


def require_finished(run: Run) -> Run:
    """Refuse an unfinished input by name, saying how to fix it."""
    if run.status is RunStatus.FINISHED:
        return run
    state = run.display_status()
    raise ArtifactError(
        f"{run.stage} run {run.run_id} is {state}, not FINISHED",
        hint=f"finish it with `pdiff {run.stage} --resume {run.run_id}`, or use another run",
    )


def last_write(run: Run) -> str:
    """When the run last wrote anything (its run.json among them): a stage that saves its manifest only at the
    start and the end keeps writing its log and a tune its progress records."""
    return utc_stamp(
        max(p.stat().st_mtime for p in run.dir.rglob("*") if p.is_file() and p.name != LOCK_NAME)
    )


def reopen_for_resume(workspace: Workspace, stage: str, ref: str) -> Run:
    """Lock an unfinished run again so that its stage can continue it."""
    run = find_run(workspace, ref, stage)
    if run.status is RunStatus.FINISHED:
        raise UsageError(
            f"run {run.run_id} already FINISHED", hint="nothing to resume; start a new run instead"
        )
    stopped_at = last_write(run)
    run.lock = acquire_run_lock(run.dir, run.run_id)
    # the gap from its last write until now is not time it ran (active_seconds)
    run.manifest["resumes"].append(
        {"at": utc_now(), "previous_status": run.manifest["status"], "stopped_at": stopped_at}
    )
    run.manifest["status"] = RunStatus.RUNNING.value
    run.manifest["error"] = None
    run.manifest["host"] = {"hostname": socket.gethostname(), "pid": os.getpid()}
    run.save()
    return run


@contextmanager
def running(run: Run) -> Iterator[Run]:
    """Mark the run FINISHED on success, FAILED on error, KILLED on Ctrl-C; always release its lock."""
    try:
        yield run
        raise_if_dropped()  # a Ctrl-C Python dropped after the stage's last progress update
    except KeyboardInterrupt:
        run.end_badly(RunStatus.KILLED, "interrupted")
        raise
    except PdiffError as exc:
        run.end_badly(RunStatus.FAILED, str(exc))
        raise
    except BaseException as exc:
        run.end_badly(RunStatus.FAILED, f"{exc.__class__.__name__}: {exc}")
        raise
    else:
        if run.status is RunStatus.RUNNING:
            run.set_status(RunStatus.FINISHED)
    finally:
        run.release()
