"""Time and memory of one gradient combination per guidance rule, on the smoke- and study-size denoisers.

What a rule adds to a diffusion step: the two gradients are computed once (the same for every rule) and each
rule is timed combining them. Synthetic gradients (only their length matters) on a Meta-World-sized denoiser
(x 5 × (39 + 4 + 1), condition 10). gpm's memory: its ring and basis, as held on the device.

Usage: python scripts/time_guidance.py [--threads 1] [--iterations 50] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch

from pdiff.methods.gradient_basis import GradientBasis
from pdiff.methods.guidance import combine_gradients
from pdiff.models.denoiser import Denoiser, DenoiserConfig

X_DIM, COND_DIM = 5 * (39 + 4 + 1), 10
SIZES = {"smoke": (32, 2), "study": (256, 3)}  # (hidden, layers) of the presets' denoisers
VARIANTS = [
    ("project", {}),
    ("gpm", {"memory": 10, "refresh_every": 1}),
    ("gpm", {"memory": 10, "refresh_every": 10}),
    ("gpm", {"memory": 50, "refresh_every": 1}),
]


def time_rule(
    params: list[torch.nn.Parameter], rule: str, settings: dict, iterations: int
) -> tuple[float, int]:
    """(ms per combination, bytes of gpm state) over `iterations` steps, each with fresh random gradients."""
    basis = GradientBasis(**settings) if rule == "gpm" else None
    total, generator = 0.0, torch.Generator(device=params[0].device).manual_seed(0)
    for step in range(iterations + 3):  # 3 warm-up steps (and the ring fills as in a run)
        weights = [torch.randn(p.shape, generator=generator, device=p.device) for p in params]
        loss_dm = sum((w * p).sum() for w, p in zip(weights, params, strict=True))
        loss_plm = sum((w.roll(1) * p).sum() for w, p in zip(weights, params, strict=True))
        if params[0].is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        combine_gradients(params, loss_dm, loss_plm, rule=rule, basis=basis)
        if params[0].is_cuda:
            torch.cuda.synchronize()
        total += time.perf_counter() - start if step >= 3 else 0.0
    state = 0
    if basis is not None:
        state = sum(
            t.numel() * t.element_size() for t in (basis.ring, basis.basis, basis.extra) if t is not None
        )
    return 1000 * total / iterations, state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for size, (hidden, layers) in SIZES.items():
        model = Denoiser(DenoiserConfig(X_DIM, COND_DIM, hidden=hidden, layers=layers)).to(args.device)
        params = list(model.parameters())
        count = sum(p.numel() for p in params)
        for rule, settings in VARIANTS:
            ms, state = time_rule(params, rule, settings, args.iterations)
            label = rule + "".join(f" {k}={v}" for k, v in settings.items())
            print(
                f"{size} ({count:,} parameters)  {label:<34} {ms:7.2f} ms/step  "
                f"state {state / 2**20:6.1f} MiB"
            )


if __name__ == "__main__":
    main()
