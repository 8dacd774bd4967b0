"""Device choice and torchrun/DDP plumbing, kept out of the training loops.

Under `torchrun --nproc-per-node N`, every rank samples the same global batch (same seed) and trains on
its own slice; losses are scaled so that the gradient average over ranks equals the single-process gradient,
hence the same result as one process up to floating-point reduction order. Stages made of independent jobs
(tune's seed x task adaptations) shard the jobs over ranks instead and gather the results on rank 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
import torch.distributed as dist

from pdiff.errors import UsageError


def resolve_device(choice: str) -> torch.device:
    """auto → cuda when available, else cpu; cuda without a GPU is a usage error."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(
            f"--device {choice} but no CUDA device is available", hint="use --device cpu or auto"
        )
    if choice != "cpu" and not choice.startswith("cuda"):
        raise UsageError(f"unknown device {choice!r}", hint="use auto, cpu, cuda or cuda:N")
    return torch.device(choice)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def shard(self, batch_size: int) -> slice:
        """This rank's rows of a global batch (contiguous, as even as possible)."""
        per = -(-batch_size // self.world_size)
        return slice(self.rank * per, min(batch_size, (self.rank + 1) * per))


def init_distributed(device: torch.device) -> DistInfo:
    """Join the torchrun process group when launched by torchrun; a no-op otherwise."""
    if not launched_by_torchrun():
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def broadcast(obj: Any, info: DistInfo) -> Any:
    """Rank 0's value on every rank (e.g. the run directory it created)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(value: float, info: DistInfo) -> float:
    if not info.enabled:
        return value
    # nccl reduces only CUDA tensors
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item())


def all_reduce_mean_(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Average `tensor` over ranks, in place (sum, then divide: exact for identical values)."""
    if info.enabled:
        dist.all_reduce(tensor)
        tensor.div_(info.world_size)
    return tensor


def average_gradients(module: torch.nn.Module, info: DistInfo) -> None:
    """Average every gradient of `module`'s parameters over ranks as it is computed.

    DistributedDataParallel's reducer only sees `loss.backward()`; these tensor hooks also fire inside
    `torch.autograd.grad` (which the guidance rules use: one gradient per loss), so each loss's gradient is
    averaged before the rule combines them. Parameters must receive gradients in the same order on every rank.
    """
    if not info.enabled:
        return
    for parameter in module.parameters():
        if parameter.requires_grad:
            parameter.register_hook(lambda grad: all_reduce_mean_(grad.clone(), info))


def shard_jobs(jobs: list[Any], info: DistInfo) -> list[Any]:
    """This rank's share of independent jobs (round robin, so ranks get equal counts ±1)."""
    return jobs[info.rank :: info.world_size]


def gather_to_main(obj: Any, info: DistInfo) -> list[Any] | None:
    """Every rank's `obj` on rank 0 (in rank order); None on the other ranks."""
    if not info.enabled:
        return [obj]
    box: list[Any] | None = [None] * info.world_size if info.is_main else None
    dist.gather_object(obj, box, dst=0)
    return box


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        # Leave together: a rank that tears gloo down while rank 0 still writes can abort ("terminate
        # called without an active exception"). If another rank died, the barrier fails and we still leave.
        with contextlib.suppress(RuntimeError):
            dist.barrier()
        dist.destroy_process_group()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def exit_rank(code: int | str | None) -> NoReturn:
    """End a torchrun rank now, skipping the interpreter's finalization.

    The gloo group's threads can outlive `destroy_process_group`: something still holds the group (torch's
    DDP does, even once its wrapper is gone; a diffuse run shows the same), so they still run when Python
    finalizes, and tearing them down then can abort the rank ("terminate called without an active
    exception", exit -6) after its work is saved, failing the whole torchrun. Runs close their files as they
    end; what is left here is flushing, which must not stop us reaching `os._exit` (a closed pipe).
    """
    with contextlib.suppress(OSError, ValueError):
        if isinstance(code, str):
            print(code, file=sys.stderr)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)
