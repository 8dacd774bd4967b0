"""Evaluation speed, measured in one run so that machine noise cancels in the ratios.

Compares environment steps per second of
  (a) pdiff's batched rollout: all episodes of all test tasks in lockstep, one model call per step,
      the prompt encoded once, simulators lent by an EnvPool (built before timing, as after the first
      seed of `pdiff eval`), the simulators stepped in this process and in `--workers` spawned
      processes (`pdiff eval --workers`: the physics of a step spread over cores, the model here);
  (b) the reference's loop: one episode at a time, one full forward (prompt + padded K context) per step;
  (c) the bare simulator stepping uniform random actions;
and scores the batched loops against the bound of this machine: the model call at its best batch size plus
the simulator step, per episode-step, spread over both cores (aim >= 0.8); (b) and (c) are reported (10x over
one episode at a time exceeds what 2 cores allow). A randomly initialised reference-size Prompt-DT is used:
speed does not depend on the weights.

    python bench/bench_eval.py [--env metaworld-reach] [--episodes 10] [--horizon 100] [--rounds 2]
    python bench/bench_eval.py --profile   # torch.profiler table of the batched loop's model calls
    python bench/bench_eval.py --components  # model call and simulator step per episode, and the 2-core bound
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVarTuple

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch
from common import Figure, machine_line, table, write_json

from pdiff.envs import TaskFamily, get_family
from pdiff.models.prompt_dt import Prompt, PromptDT, PromptDTConfig
from pdiff.rollouts.rollout import FrozenPolicy, rollout
from pdiff.rollouts.simulators import EnvPool

Ts = TypeVarTuple("Ts")


def random_prompt(family: TaskFamily, config: PromptDTConfig, count: int) -> Prompt:
    g = torch.Generator().manual_seed(0)
    h = config.prompt_len
    return Prompt(
        torch.randn(count, h, family.obs_dim, generator=g),
        torch.rand(count, h, family.act_dim, generator=g) * 2 - 1,
        torch.rand(count, h, 1, generator=g),
        torch.arange(h).repeat(count, 1),
        torch.ones(count, h),
    )


def batched(
    family: TaskFamily,
    policy: FrozenPolicy,
    prompts: Prompt,
    tasks: list[int],
    episodes: int,
    horizon: int,
    pool: EnvPool,
) -> int:
    seeds = [[1000 * t + e for e in range(episodes)] for t in tasks]
    results = rollout(family, policy, prompts, tasks, seeds, horizon=horizon, pool=pool)
    return sum(r.length for r in results)


@torch.no_grad()
def one_at_a_time(
    family: TaskFamily, policy: FrozenPolicy, prompts: Prompt, tasks: list[int], episodes: int, horizon: int
) -> int:
    """The reference's evaluation loop: batch 1, padded K-step context, prompt recomputed every step."""
    model, k = policy.model, policy.context_len
    mean, std = torch.as_tensor(policy.state_mean), torch.as_tensor(policy.state_std)
    steps = 0
    for ti, task in enumerate(tasks):
        prompt = Prompt(
            *(
                getattr(prompts, f)[ti : ti + 1]
                for f in ("states", "actions", "returns_to_go", "timesteps", "mask")
            )
        )
        env = family.make_env(task, horizon=horizon)
        for episode in range(episodes):
            obs, _ = env.reset(seed=1000 * task + episode)
            states = [(torch.as_tensor(obs) - mean) / std]
            actions, rtg, done, t = [], [policy.target_return / policy.rtg_scale], False, 0
            while not done:
                s = torch.stack(states[-k:])[None]
                a = torch.stack([*actions[-(k - 1) :], torch.zeros(family.act_dim)][-len(s[0]) :])[None]
                r = torch.tensor(rtg[-k:])[None, :, None]
                ts = torch.arange(max(0, t + 1 - k), t + 1)[None]
                pad = k - s.shape[1]
                mask = torch.cat([torch.zeros(1, pad), torch.ones(1, s.shape[1])], 1)
                s, a, r = (torch.cat([torch.zeros(1, pad, x.shape[-1]), x], 1) for x in (s, a, r))
                ts = torch.cat([torch.zeros(1, pad, dtype=torch.long), ts], 1)
                action = model(s.float(), a.float(), r.float(), ts, mask, prompt)[0, -1]
                obs, reward, terminated, truncated, _ = env.step(action.numpy())
                states.append((torch.as_tensor(obs) - mean) / std)
                actions.append(action)
                rtg.append(rtg[-1] - reward / policy.rtg_scale)
                done, t, steps = terminated or truncated, t + 1, steps + 1
        env.close()
    return steps


def bare(family: TaskFamily, tasks: list[int], episodes: int, horizon: int) -> int:
    steps = 0
    rng = np.random.default_rng(0)
    for task in tasks:
        env = family.make_env(task, horizon=horizon)
        for episode in range(episodes):
            env.reset(seed=1000 * task + episode)
            done = False
            while not done:
                _, _, terminated, truncated, _ = env.step(
                    rng.uniform(-1, 1, family.act_dim).astype(np.float32)
                )
                done, steps = terminated or truncated, steps + 1
        env.close()
    return steps


def timed(fn: Callable[[*Ts], int], *args: *Ts) -> float:
    start = time.perf_counter()
    steps = fn(*args)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="metaworld-reach")
    parser.add_argument(
        "--episodes", type=int, default=10, help="episodes per test task (batched: all at once)"
    )
    parser.add_argument("--horizon", type=int, default=None)
    parser.add_argument(
        "--reference-episodes", type=int, default=1, help="episodes per task for the slow loop"
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best of each is kept")
    parser.add_argument(
        "--workers", type=int, default=2, help="simulator worker processes (pdiff eval --workers)"
    )
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table and exit")
    parser.add_argument(
        "--components", action="store_true", help="time the model call and the simulator step apart, and exit"
    )
    parser.add_argument("--json", help="also write the figures to this file (for bench/run_all.py)")
    args = parser.parse_args()
    family = get_family(args.env)
    horizon = args.horizon or family.horizon
    tasks = list(family.test_tasks)
    torch.manual_seed(0)
    config = PromptDTConfig(state_dim=family.obs_dim, act_dim=family.act_dim)
    policy = FrozenPolicy(
        PromptDT(config).eval(),
        np.zeros(family.obs_dim, np.float32),
        np.ones(family.obs_dim, np.float32),
        family.rtg_scale,
        family.eval_target,
        torch.device("cpu"),
    )
    prompts = random_prompt(family, config, len(tasks))
    pool, spread = EnvPool(), EnvPool(args.workers)
    for lender in (pool, spread):  # build every simulator (and start the workers) before timing
        batched(family, policy, prompts, tasks, args.episodes, 1, lender)
    if args.profile:
        profile(family, policy, prompts, tasks, args.episodes, horizon, pool)
        return
    if args.components:
        components(family, policy, prompts, tasks, args.episodes, horizon, pool)
        return
    with_workers = f"batched, {args.workers} sim workers"
    rates = {"batched": [], with_workers: [], "one-at-a-time": [], "bare simulator": []}
    for _ in range(args.rounds):  # interleaved rounds
        rates["bare simulator"].append(timed(bare, family, tasks, args.episodes, horizon))
        rates["batched"].append(timed(batched, family, policy, prompts, tasks, args.episodes, horizon, pool))
        rates[with_workers].append(
            timed(batched, family, policy, prompts, tasks, args.episodes, horizon, spread)
        )
        rates["one-at-a-time"].append(
            timed(one_at_a_time, family, policy, prompts, tasks, args.reference_episodes, horizon)
        )
    spread.close()
    best = {name: max(values) for name, values in rates.items()}
    print(machine_line())
    print(
        f"env {family.name}, {len(tasks)} test tasks, horizon {horizon}, batched "
        f"{len(tasks) * args.episodes} episodes"
    )
    for name, rate in best.items():
        print(f"  {name:<26} {rate:9.0f} env steps/s")
    model, simulator = step_costs(family, policy, prompts, tasks, args.episodes, pool)
    bound = 2 / (min(model.values()) + simulator)
    print(f"  {'2-core bound':<26} {bound:9.0f} env steps/s (best model batch + simulator, over 2 cores)")
    label = f"eval {family.name}, {len(tasks) * args.episodes} episodes"
    figures = []
    for name in ("batched", with_workers):
        figures += [
            Figure(f"{label}, {name} vs 2-core bound", best[name], "steps/s", bound, "2-core bound", 0.8),
            Figure(
                f"{label}, {name} vs one at a time",
                best[name],
                "steps/s",
                best["one-at-a-time"],
                "one episode at a time",
            ),
            Figure(
                f"{label}, {name} vs bare simulator",
                best[name],
                "steps/s",
                best["bare simulator"],
                "bare simulator",
            ),
        ]
    pool.close()
    print(table(figures))
    write_json(args.json, figures)


@torch.no_grad()
def step_costs(
    family: TaskFamily, policy: FrozenPolicy, prompts: Prompt, tasks: list[int], episodes: int, pool: EnvPool
) -> tuple[dict[int, float], float]:
    """Seconds per episode-step of the model call at the batch sizes the batched loop can use (full K window,
    up to its own size) and of the simulator step, all episodes of the loop stepped in this process: the
    work of one core, so the model is timed on one thread (its cost on more threads is the same work)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _step_costs(family, policy, prompts, tasks, episodes, pool)
    finally:
        torch.set_num_threads(threads)


def _step_costs(
    family: TaskFamily, policy: FrozenPolicy, prompts: Prompt, tasks: list[int], episodes: int, pool: EnvPool
) -> tuple[dict[int, float], float]:
    model, k = policy.model, policy.context_len
    cache = model.encode_prompt(prompts)
    episode_rows = [task for task in tasks for _ in range(episodes)]
    per_step = {}
    for batch in sorted(
        {size for size in (1, 10, 25, 50, 100) if size < len(episode_rows)} | {len(episode_rows)}
    ):
        inputs = (
            torch.randn(batch, k, family.obs_dim),
            torch.rand(batch, k, family.act_dim) * 2 - 1,
            torch.rand(batch, k, 1),
            torch.arange(k).repeat(batch, 1),
        )
        batch_cache = replace(cache, rows=torch.arange(batch) % len(tasks))
        calls = max(10, 1000 // batch)
        per_step[batch] = (
            min(timed_calls(calls, model.act, *inputs, None, batch_cache) for _ in range(3)) / batch
        )
    batch = len(episode_rows)
    # the 60 timed steps stay inside the episodes' horizon
    lease = pool.lease(family, episode_rows, family.horizon, [False] * batch)
    try:
        lease.reset(list(range(batch)))
        actions = np.random.default_rng(0).uniform(-1, 1, (batch, family.act_dim)).astype(np.float32)
        step = min(timed_calls(20, lease.step, range(batch), actions) for _ in range(3))
    finally:
        lease.release()
    return per_step, step / batch


def components(
    family: TaskFamily,
    policy: FrozenPolicy,
    prompts: Prompt,
    tasks: list[int],
    episodes: int,
    horizon: int,
    pool: EnvPool,
) -> None:
    """Per episode-step: the model call at several batch sizes, the simulator step, the batched loop."""
    print(machine_line())
    per_step, sim = step_costs(family, policy, prompts, tasks, episodes, pool)
    for batch, cost in per_step.items():
        print(f"  model call, batch {batch:>3}, one thread: {cost * 1e3:.3f} ms per episode-step")
    batch = len(tasks) * episodes
    print(f"  simulator step, {batch} episodes in this process: {sim * 1e3:.3f} ms per episode-step")
    loop = 1 / timed(batched, family, policy, prompts, tasks, episodes, horizon, pool)
    rest = loop - per_step[batch] - sim
    print(
        f"  batched loop, {batch} episodes, horizon {horizon}, in this process: {loop * 1e3:.3f} ms per "
        f"episode-step = model {per_step[batch] * 1e3:.3f} + simulator {sim * 1e3:.3f} + rest "
        f"{rest * 1e3:.3f} "
        "(resets, normalising, results)"
    )
    print(
        f"  the bound of this machine: the best batch's model call plus the simulator step over 2 cores, "
        f"<= {2 / (min(per_step.values()) + sim):.0f} steps/s"
    )


def timed_calls(calls: int, fn: Callable[[*Ts], object], *args: *Ts) -> float:
    """Seconds per call of fn(*args), over `calls` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn(*args)
    return (time.perf_counter() - start) / calls


def profile(
    family: TaskFamily,
    policy: FrozenPolicy,
    prompts: Prompt,
    tasks: list[int],
    episodes: int,
    horizon: int,
    pool: EnvPool,
) -> None:
    """Where the batched loop's time goes: the model's operators, and the loop as a whole."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    start = time.perf_counter()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        steps = batched(family, policy, prompts, tasks, episodes, horizon, pool)
    wall = time.perf_counter() - start
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    model = sum(e.cpu_time_total for e in prof.key_averages() if e.key == "aten::linear") / 1e6
    print(f"{steps} env steps in {wall:.1f} s (profiled); linear layers {model:.1f} s")


if __name__ == "__main__":
    main()
