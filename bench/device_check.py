"""GPU check, ready for the day one is lent: CPU-vs-CUDA parity on a small Prompt-DT and paper-preset pretrain
throughput, in a few minutes. Run it as `bash bench/device_check.sh` on the machine with the GPU.

1. Parity: one forward of a seeded small Prompt-DT on CPU and on CUDA (fp32; max |difference| must stay
   below 1e-4), then 30 train steps from the same weights on the same batches, CPU fp32 against CUDA fp32
   (final losses within 1 %) and CUDA bf16 (within 5 %).
2. Throughput: pdiff's train step (fused AdamW, clip, warm-up) at the paper's batch, 16 segments per training
   task, for cheetah-dir (2 tasks), cheetah-vel (35) and Meta-World (45), in fp32 and bf16, with the time
   50,000 steps (the paper's pretraining) would take.
Without CUDA it checks nothing and measures the CPU instead, so the script itself can be tried anywhere.

Usage: python bench/device_check.py [--steps 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np
import torch
from bench_train_step import Trainer, make_dataset, sample_batch
from common import machine_line

from pdiff.compute import Compute, use_precision
from pdiff.models.prompt_dt import PromptDT, PromptDTConfig

PAPER_STEPS = 50_000
FAMILIES = {"cheetah-dir": (2, 20, 6), "cheetah-vel": (35, 20, 6), "metaworld": (45, 39, 4)}


def to_device(batch: dict, device: torch.device) -> dict:
    moved = {k: v.to(device) for k, v in batch.items() if k != "prompt"}
    moved["prompt"] = batch["prompt"].to(device)
    return moved


def train_losses(model: PromptDT, device: torch.device, precision: str, batches: list[dict]) -> list[float]:
    model = use_precision(copy.deepcopy(model).to(device), Compute(str(device), None, precision, "check", ""))
    trainer = Trainer(model, fused=True)
    return [trainer.step(to_device(batch, device)) for batch in batches]


def parity(cuda: torch.device) -> dict[str, float | bool]:
    torch.manual_seed(0)
    config = PromptDTConfig(20, 6, embed_dim=64, n_layer=2, dropout=0.0)
    model = PromptDT(config)
    data = make_dataset(np.random.default_rng(0), 4, 10, 200, 20, 6, 5)
    batches = [sample_batch(data, np.random.default_rng(step), 8, 20) for step in range(30)]
    batch = batches[0]
    args = ("states", "actions", "rtg", "timesteps", "mask")
    with torch.no_grad():
        on_cpu = model.eval()(*(batch[k] for k in args), batch["prompt"])
        gpu_model = copy.deepcopy(model).to(cuda).eval()
        on_gpu = gpu_model(*(batch[k].to(cuda) for k in args), batch["prompt"].to(cuda)).cpu()
    forward_diff = float((on_cpu - on_gpu).abs().max())
    cpu_loss = train_losses(model.train(), torch.device("cpu"), "fp32", batches)[-1]
    gpu_loss = train_losses(model, cuda, "fp32", batches)[-1]
    bf16_loss = train_losses(model, cuda, "bf16", batches)[-1]
    return {
        "forward_max_abs_diff": forward_diff,
        "cpu_fp32_loss": cpu_loss,
        "cuda_fp32_loss": gpu_loss,
        "cuda_bf16_loss": bf16_loss,
        "ok": forward_diff < 1e-4
        and abs(gpu_loss - cpu_loss) <= 0.01 * cpu_loss
        and abs(bf16_loss - cpu_loss) <= 0.05 * cpu_loss,
    }


def throughput(device: torch.device, tasks: int, state: int, act: int, precision: str, steps: int) -> float:
    """Train steps per second at 16 segments per task."""
    torch.manual_seed(0)
    data = make_dataset(np.random.default_rng(0), tasks, 20, 200, state, act, 5)
    model = use_precision(
        PromptDT(PromptDTConfig(state, act)).to(device), Compute(str(device), None, precision, "check", "")
    )
    trainer = Trainer(model, fused=True)
    rng = np.random.default_rng(1)
    batches = [to_device(sample_batch(data, rng, 16, 20), device) for _ in range(steps + 3)]
    for batch in batches[:3]:
        trainer.step(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for batch in batches[3:]:
        trainer.step(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed train steps per throughput figure")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()
    cuda = torch.device("cuda") if torch.cuda.is_available() else None
    device = cuda or torch.device("cpu")
    print(machine_line())
    print(f"device: {torch.cuda.get_device_name(cuda) if cuda else 'no CUDA device: CPU figures only'}")
    figures: dict[str, object] = {"device": str(device)}
    if cuda is not None:
        figures["parity"] = parity(cuda)
        print("parity:", json.dumps(figures["parity"]))
    precisions = ["fp32", "bf16"] if cuda is None or torch.cuda.is_bf16_supported() else ["fp32"]
    for family, (tasks, state, act) in FAMILIES.items():
        for precision in precisions:
            rate = throughput(device, tasks, state, act, precision, args.steps)
            hours = PAPER_STEPS / rate / 3600
            figures[f"{family} {precision}"] = {
                "steps_per_s": rate,
                "samples_per_s": rate * 16 * tasks,
                "paper_pretrain_hours": hours,
            }
            print(
                f"{family:>12} {precision}: batch {16 * tasks:4d}, {rate:7.2f} steps/s, "
                f"{rate * 16 * tasks:9,.0f} samples/s, 50,000 steps in {hours:6.2f} h"
            )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=1)
    if cuda is not None and not figures["parity"]["ok"]:  # type: ignore[index]
        raise SystemExit("parity check failed")


if __name__ == "__main__":
    main()
