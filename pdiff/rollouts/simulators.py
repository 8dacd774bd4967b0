"""Simulators for batched rollouts: kept between rollouts, stepped here or in worker processes.

A rollout leases one simulator per episode from an `EnvPool` and steps them all together. With
`workers` > 1 the simulators live in that many spawned processes (episodes dealt round-robin), so the
physics of one step runs on several cores while the main process only runs the model. Every simulator is
stepped with the same actions either way, so results never depend on the number of workers.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import traceback
from collections import defaultdict
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from pdiff.envs.base import TaskFamily
from pdiff.errors import RunFailed

# One stepped episode: observation, reward, episode over, success (None: the family has no such info), frame.
Transition = tuple[np.ndarray, float, bool, bool | None, np.ndarray | None]


class _Slots:
    """The simulators of one lease in one process, by slot number; idle ones are kept for the next lease.

    Building a Meta-World env costs about 0.2 s (as much as 200 steps), and `reset(seed=...)` restores a
    used simulator exactly, so a reused env gives the same episode as a new one. Rendering envs are not kept.
    """

    def __init__(self) -> None:
        self.idle: dict[tuple[str, int, int], list[Any]] = defaultdict(list)
        self.leased: dict[int, tuple[tuple[str, int, int], Any]] = {}

    def open(self, family_name: str, specs: Sequence[tuple[int, int, int, bool]]) -> None:
        from pdiff.envs import get_family  # workers import the simulators only when they need them

        family = get_family(family_name)
        for slot, task, horizon, render in specs:
            key = (family_name, task, horizon)
            if render:
                env = family.make_env(task, horizon=horizon, render_mode="rgb_array")
            else:
                env = self.idle[key].pop() if self.idle[key] else family.make_env(task, horizon=horizon)
            self.leased[slot] = (key, env)

    def reset(self, slot_seeds: Sequence[tuple[int, int]]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        out = []
        for slot, seed in slot_seeds:
            env = self.leased[slot][1]
            obs, _ = env.reset(seed=seed)
            out.append((np.asarray(obs, np.float32), _frame(env)))
        return out

    def step(self, slot_actions: Sequence[tuple[int, np.ndarray]]) -> list[Transition]:
        out = []
        for slot, action in slot_actions:
            env = self.leased[slot][1]
            obs, reward, terminated, truncated, info = env.step(action)
            success = bool(info["success"]) if "success" in info else None
            out.append(
                (
                    np.asarray(obs, np.float32),
                    float(reward),
                    bool(terminated or truncated),
                    success,
                    _frame(env),
                )
            )
        return out

    def release(self) -> None:
        for key, env in self.leased.values():
            if env.render_mode is None:
                self.idle[key].append(env)
            else:
                env.close()
        self.leased.clear()

    def close(self) -> None:
        self.release()
        for envs in self.idle.values():
            for env in envs:
                env.close()
        self.idle.clear()


def _frame(env: Any) -> np.ndarray | None:
    # The families return upright frames (Meta-World's are flipped there).
    return np.asarray(env.render()) if env.render_mode == "rgb_array" else None


def _serve(connection: Connection) -> None:
    """A worker: run `_Slots` methods sent by the main process until told to stop or the pipe closes."""
    slots = _Slots()  # no torch here: importing it would cost seconds per worker
    try:
        while True:
            method, args = connection.recv()
            if method == "stop":
                break
            try:
                connection.send(("ok", getattr(slots, method)(*args)))
            except Exception as error:  # sent back and raised there, with the worker's traceback in the log
                connection.send(("error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))
    except (EOFError, KeyboardInterrupt):  # the main process went away
        pass
    finally:
        slots.close()


class _Worker:
    def __init__(self, index: int) -> None:
        context = multiprocessing.get_context("spawn")  # clean start: no inherited torch/OpenMP/EGL state
        self.index = index
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child,), daemon=True, name=f"pdiff-sim-{index}")
        self.process.start()
        child.close()

    def send(self, method: str, *args: Any) -> None:
        try:
            self.connection.send((method, args))
        except (BrokenPipeError, OSError) as error:
            raise self._died() from error

    def receive(self) -> Any:
        try:
            status, value = self.connection.recv()
        except (EOFError, OSError) as error:
            raise self._died() from error
        if status == "error":
            raise RunFailed(
                f"simulator worker {self.index} failed: {value.splitlines()[0]}",
                hint="re-run with --workers 1 to see the simulator's error here",
            )
        return value

    def _died(self) -> RunFailed:
        code = self.process.exitcode
        return RunFailed(
            f"simulator worker {self.index} died (exit code {code})",
            hint="re-run with --workers 1; check memory (each Meta-World env takes ~20 MB)",
        )

    def stop(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.connection.send(("stop", ()))
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
        self.connection.close()


class EnvPool:
    """Simulators kept between rollouts (e.g. one per evaluation seed), in this process or in `workers`."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._local = _Slots()
        self._started: list[_Worker] = []

    def lease(self, family: TaskFamily, tasks: Sequence[int], horizon: int, render: Sequence[bool]) -> Lease:
        """One simulator per episode row (`tasks[i]`, rendering when `render[i]`), until `Lease.release`."""
        if self.workers > 1 and not self._started:
            self._started = [_Worker(i) for i in range(self.workers)]
        lease = Lease(self, len(tasks))
        for owner, rows in lease.rows_of.items():
            specs = [(i, tasks[i], horizon, render[i]) for i in rows]
            lease.call(owner, "open", family.name, specs)
        lease.collect(list(lease.rows_of))
        return lease

    def close(self) -> None:
        self._local.close()
        for worker in self._started:
            worker.stop()
        self._started = []

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Lease:
    """The simulators of one rollout: reset and step any subset of rows; requests to workers run at once."""

    def __init__(self, pool: EnvPool, rows: int) -> None:
        self.pool = pool
        workers = len(pool._started)
        # Owner -1 is this process; rows are dealt round-robin so every worker gets a share of each task.
        self.owner_of = [i % workers if workers else -1 for i in range(rows)]
        self.rows_of: dict[int, list[int]] = defaultdict(list)
        for i, owner in enumerate(self.owner_of):
            self.rows_of[owner].append(i)
        self._pending: dict[int, Any] = {}

    def call(self, owner: int, method: str, *args: Any) -> None:
        if owner < 0:
            self._pending[owner] = getattr(self.pool._local, method)(*args)
        else:
            self.pool._started[owner].send(method, *args)

    def collect(self, owners: Sequence[int]) -> dict[int, Any]:
        return {o: self._pending.pop(o) if o < 0 else self.pool._started[o].receive() for o in owners}

    def _scatter(self, method: str, rows: Sequence[int], values: Sequence[Any]) -> list[Any]:
        """Call `method` with (row, value) pairs on each row's owner; results in the order of `rows`."""
        by_owner: dict[int, list[int]] = defaultdict(list)
        for position, row in enumerate(rows):
            by_owner[self.owner_of[row]].append(position)
        for owner, positions in by_owner.items():  # every worker gets its request before any reply is read
            self.call(owner, method, [(rows[p], values[p]) for p in positions])
        replies = self.collect(list(by_owner))
        out: list[Any] = [None] * len(rows)
        for owner, positions in by_owner.items():
            for position, value in zip(positions, replies[owner], strict=True):
                out[position] = value
        return out

    def reset(self, seeds: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Reset every row with its seed: (observation, frame or None) per row."""
        return self._scatter("reset", range(len(self.owner_of)), seeds)

    def step(self, rows: Sequence[int], actions: np.ndarray) -> list[Transition]:
        return self._scatter("step", rows, list(actions))

    def release(self) -> None:
        owners = list(self.rows_of)
        for owner in owners:
            self.call(owner, "release")
        self.collect(owners)
