"""Precision benchmark: bf16 autocast (and what `precision: auto` picks) against fp32, on pdiff's own code.

Figures, each a ratio of two timings taken in one run with the two variants alternating step by step:
- Prompt-DT train step (pdiff's PromptDT, fused AdamW, warm-up, clip; bench_train_step's synthetic data,
  45 Meta-World-sized tasks) at 1 and 16 segments per task (batch 45, the `study` preset, and 720, the
  paper's): bf16 over fp32, and `auto` over fp32;
- a Prompt-Tuning DT round (15 candidate prompts scored on 2 few-shot batches of 16 by the frozen Prompt-DT):
  today's scoring (pdiff.methods.ptdt.offline_scores: one forward for every candidate and batch, in the
  precision `auto` picks) over the scoring before this change (fp32, one forward per batch);
- the eval policy step (one `act` call for 50 episodes, prompt cache reused), bf16 over fp32.
Targets apply where the CPU runs bf16 natively (pdiff.compute.cpu_bf16_features); elsewhere the bf16
figures are reported only, and `auto` (then fp32) must not be slower.

Usage: python bench/bench_precision.py [--steps 20] [--threads 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import numpy as np
import torch
from bench_train_step import Trainer, make_dataset, sample_batch
from common import Figure, machine_line, table, write_json

from pdiff.compute import Compute, cpu_bf16_features, resolve_auto, use_precision
from pdiff.models.prompt_dt import Prompt, PromptDT, PromptDTConfig, action_loss

STATE, ACT, TASKS = 39, 4, 45
NATIVE = bool(cpu_bf16_features())


def precision(name: str) -> Compute:
    return Compute("cpu", torch.get_num_threads(), name, "bench", "")


def alternate(variants: dict[str, Callable[[], object]], steps: int) -> dict[str, float]:
    """Seconds per call of each variant, calls alternating (who goes first too) after two warm-up rounds."""
    seconds = dict.fromkeys(variants, 0.0)
    names = list(variants)
    for step in range(steps + 2):
        for name in names if step % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            variants[name]()
            if step >= 2:
                seconds[name] += time.perf_counter() - start
    return {name: total / steps for name, total in seconds.items()}


def train_step_figures(batch_per_task: int, steps: int, auto: str) -> list[Figure]:
    torch.manual_seed(0)
    data = make_dataset(np.random.default_rng(0), TASKS, 20, 200, STATE, ACT, 5)
    model = PromptDT(PromptDTConfig(STATE, ACT))
    kinds = {"fp32": "fp32", "bf16": "bf16", "auto": auto}
    trainers = {k: Trainer(use_precision(copy.deepcopy(model), precision(p)), True) for k, p in kinds.items()}
    rngs = {name: np.random.default_rng(1) for name in trainers}  # the same batches for every variant
    losses: dict[str, float] = {}

    def step(name: str) -> Callable[[], None]:
        def run() -> None:
            losses[name] = trainers[name].step(sample_batch(data, rngs[name], batch_per_task, 20))

        return run

    took = alternate({name: step(name) for name in trainers}, steps)
    batch = TASKS * batch_per_task
    print(
        f"train step batch {batch}: "
        + ", ".join(f"{k} {1 / v:.2f} it/s (loss {losses[k]:.4f})" for k, v in took.items())
    )
    name = f"Prompt-DT train step, batch {batch}"
    target = (1.5 if batch_per_task == 1 else 1.8) if NATIVE else None
    return [
        Figure(f"{name}, bf16", 1 / took["bf16"], "it/s", 1 / took["fp32"], "fp32", target),
        Figure(f"{name}, auto ({auto})", 1 / took["auto"], "it/s", 1 / took["fp32"], "fp32", 0.95),
    ]


def ptdt_round_figure(steps: int, auto: str) -> Figure:
    """One round's scoring: 15 candidates x 2 batches of 16 few-shot segments of one task."""
    torch.manual_seed(0)
    data = make_dataset(np.random.default_rng(0), 1, 5, 200, STATE, ACT, 5)
    frozen = PromptDT(PromptDTConfig(STATE, ACT)).eval()
    before, today = frozen, use_precision(copy.deepcopy(frozen), precision(auto))
    m, batches, size = 15, 2, 16
    generator = torch.Generator().manual_seed(2)
    prompts = Prompt(
        torch.randn(m, 5, STATE, generator=generator),
        torch.rand(m, 5, ACT, generator=generator),
        torch.randn(m, 5, 1, generator=generator),
        torch.arange(5).repeat(m, 1),
        torch.ones(m, 5),
    )
    drawn = [sample_batch(data, np.random.default_rng(3 + b), size, 20) for b in range(batches)]

    def score(model: PromptDT, groups: list[dict]) -> None:
        keys = ("states", "actions", "rtg", "timesteps", "mask")
        shared = {k: torch.cat([g[k] for g in groups]) for k in keys}
        rows = {k: v.repeat(m, *([1] * (v.dim() - 1))) for k, v in shared.items()}
        prompts.rows = torch.arange(m).repeat_interleave(len(groups) * size)
        with torch.no_grad():
            pred = model(
                rows["states"], rows["actions"], rows["rtg"], rows["timesteps"], rows["mask"], prompts
            )
            for part in range(m * len(groups)):
                cut = slice(part * size, (part + 1) * size)
                float(action_loss(pred[cut], rows["actions"][cut], rows["mask"][cut]))

    took = alternate(
        {"before": lambda: [score(before, [g]) for g in drawn], "today": lambda: score(today, drawn)}, steps
    )
    print(
        f"ptdt round: before {took['before'] * 1e3:.0f} ms, today ({auto}, one forward) "
        f"{took['today'] * 1e3:.0f} ms"
    )
    return Figure(
        f"PTDT round, 15 candidates x 2 batches ({auto})",
        1 / took["today"],
        "rounds/s",
        1 / took["before"],
        "fp32, a forward per batch",
        2.0 if NATIVE else 1.0,
    )


def eval_step_figure(steps: int) -> Figure:
    torch.manual_seed(0)
    episodes = 50
    model = PromptDT(PromptDTConfig(STATE, ACT)).eval()
    models = {"fp32": model, "bf16": use_precision(copy.deepcopy(model), precision("bf16"))}
    data = make_dataset(np.random.default_rng(0), 5, 5, 200, STATE, ACT, 5)
    batch = sample_batch(data, np.random.default_rng(1), episodes // 5, 20)
    caches = {k: m.encode_prompt(batch["prompt"]) for k, m in models.items()}

    def act(name: str) -> Callable[[], None]:
        return lambda: models[name].act(
            batch["states"], batch["actions"], batch["rtg"], batch["timesteps"], batch["mask"], caches[name]
        )

    took = alternate({name: act(name) for name in models}, steps * 10)
    return Figure(
        f"eval policy step, {episodes} episodes, bf16", 1 / took["bf16"], "calls/s", 1 / took["fp32"], "fp32"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=int, default=20, help="timed calls per variant (train steps at batch 720: a quarter)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the figures to this file (for bench/run_all.py)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    auto, why = resolve_auto(torch.device("cpu"), args.threads, None)
    print(machine_line())
    print(f"precision auto: {auto} ({why})")
    figures = train_step_figures(1, args.steps, auto)
    figures += train_step_figures(16, max(2, args.steps // 4), auto)
    figures += [ptdt_round_figure(args.steps, auto), eval_step_figure(args.steps)]
    print(table(figures))
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
