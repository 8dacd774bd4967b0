"""Prompt-generator throughput: denoiser train steps, guided train steps, prompt generation.

- train:    L_DM only on a batch of 64 prompt segments + backward + Adam.
- guided:   L_DM (batch 64) and L_PLM through the N-step differentiable reverse chain into a frozen,
            reference-size Prompt-DT (K = 20 segments, batch 16), combined by `project` + Adam. `--prompts`
            sets how many distinct prompts the 16 segments use (16: one per segment; 1: one shared).
- generate: prompts per second, batch 64, no grad.
Synthetic data; only shapes matter. Usage:
python bench/bench_diffusion.py [--threads 1] [--state-dim 39 --act-dim 4]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from common import Figure, machine_line, table, write_json
from torch import Tensor

from pdiff.diffusion import VPSchedule, denoising_loss, sample
from pdiff.methods.guidance import combine_gradients
from pdiff.models.denoiser import Denoiser, DenoiserConfig, count_parameters
from pdiff.models.prompt_dt import Prompt, PromptDT, PromptDTConfig, action_loss

PROMPT_STEPS = 5
COND_DIM = 2 * PROMPT_STEPS  # returns-to-go and timesteps of the prompt segment


def rate(fn: Callable[[], None], iterations: int, warmup: int) -> float:
    """Calls of fn per second."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return iterations / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--state-dim", type=int, default=39)
    parser.add_argument("--act-dim", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--diffusion-steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64, help="L_DM batch and generation batch")
    parser.add_argument("--plm-batch", type=int, default=16, help="K-step segments for L_PLM")
    parser.add_argument(
        "--prompts", type=int, nargs="+", default=[16, 1], help="distinct prompts per guided step"
    )
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", help="also write the figures to this file (for bench/run_all.py)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    ds, da = args.state_dim, args.act_dim
    step_dim = ds + da + 1
    schedule = VPSchedule(steps=args.diffusion_steps)
    denoiser = Denoiser(DenoiserConfig(x_dim=PROMPT_STEPS * step_dim, cond_dim=COND_DIM, hidden=args.hidden))
    optimiser = torch.optim.Adam(denoiser.parameters(), lr=3e-4)
    plm = PromptDT(PromptDTConfig(state_dim=ds, act_dim=da)).eval().requires_grad_(False)
    context = plm.config.context_len
    x0, cond = torch.randn(args.batch, PROMPT_STEPS * step_dim), torch.randn(args.batch, COND_DIM)
    bounds = torch.tensor([-float("inf")] * ds + [-1.0] * da + [-float("inf")]).repeat(PROMPT_STEPS)
    clip = (bounds, -bounds)
    rows = args.plm_batch
    segment = {
        "states": torch.randn(rows, context, ds),
        "actions": torch.rand(rows, context, da) * 2 - 1,
        "returns_to_go": torch.rand(rows, context, 1),
        "timesteps": torch.arange(context).repeat(rows, 1),
        "attention_mask": torch.ones(rows, context),
    }

    def train_step() -> None:
        loss = denoising_loss(denoiser, schedule, x0, cond)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    def guided_step(prompts: int) -> None:
        loss_dm = denoising_loss(denoiser, schedule, x0, cond)
        x_hat = sample(
            denoiser, schedule, cond[:prompts], (prompts, PROMPT_STEPS * step_dim), clip=clip, grad=True
        )
        generated = x_hat.view(prompts, PROMPT_STEPS, step_dim)
        prompt = Prompt(
            states=generated[..., :ds],
            actions=generated[..., ds : ds + da],
            returns_to_go=cond[:prompts, :PROMPT_STEPS, None],
            timesteps=torch.arange(PROMPT_STEPS).repeat(prompts, 1),
            mask=torch.ones(prompts, PROMPT_STEPS),
            rows=torch.arange(rows) % prompts,
        )
        predicted = plm(**segment, prompt=prompt)
        loss_plm = action_loss(predicted, segment["actions"], segment["attention_mask"])
        combine_gradients(list(denoiser.parameters()), loss_dm, loss_plm, rule="project")
        optimiser.step()

    def generate() -> Tensor:
        return sample(denoiser, schedule, cond, (args.batch, PROMPT_STEPS * step_dim), clip=clip)

    print(machine_line())
    print(
        f"denoiser: x_dim {PROMPT_STEPS * step_dim}, cond_dim {COND_DIM}, hidden {args.hidden}, "
        f"{count_parameters(denoiser):,} parameters; N = {schedule.steps}; "
        f"PLM {ds}/{da}, {count_parameters(plm):,} parameters (frozen)"
    )
    figures = [
        Figure(
            f"denoiser train step (L_DM, batch {args.batch})",
            rate(train_step, args.iterations, args.warmup),
            "it/s",
        )
    ]
    for prompts in args.prompts:
        guided = rate(lambda p=prompts: guided_step(p), args.iterations, args.warmup)
        figures.append(Figure(f"guided train step ({rows}x K={context}, {prompts} prompts)", guided, "it/s"))
    generated = rate(generate, args.iterations, args.warmup) * args.batch
    figures.append(
        Figure(f"prompt sampling (N={schedule.steps}, batch {args.batch})", generated, "prompts/s")
    )
    print(table(figures))
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
