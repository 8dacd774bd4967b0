"""How a stage computes: its device, its CPU threads and its numeric precision, chosen once and recorded.

A step's numbers are a function of its recorded settings only. The thread count is therefore a setting of
the step (default 1), never derived from `reproduce --jobs` or the core count: the same step with 1 or 2
threads sums in another order and its weights drift apart, and two 2-thread steps on 2 cores run several
times slower than two 1-thread ones.

Precision: `fp32`, or `bf16` (autocast: matrix products in bfloat16; weights, optimiser state, losses and
the diffusion schedule's maths stay float32), or `auto`, which takes bf16 only where the device runs it
natively (a CUDA GPU that supports it; a CPU with AVX512-BF16 or AMX) and a short measurement on this
machine shows it faster than fp32. `auto`'s answer is kept in the workspace (`.cache/precision.json`, per
CPU and torch version), so every step of a study, in any process, makes the same choice; a resumed run
keeps the precision it started with.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

from pdiff.config import StageConfig
from pdiff.console import log
from pdiff.distributed import DistInfo, broadcast, resolve_device
from pdiff.workspace.atomic import atomic_write_json

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
CACHE_FILE = Path(".cache") / "precision.json"
# `auto` takes bf16 only when it is at least this much faster: a tie is not worth the rounding.
MIN_SPEEDUP = 1.1


class ComputeConfig(StageConfig):
    """The settings of a stage that runs the Prompt-DT or the denoiser (see the module docstring)."""

    device: str = Field("auto", description="auto | cpu | cuda | cuda:N.")
    threads: int | None = Field(
        1,
        ge=1,
        description="torch CPU threads of this step. The result depends on it (summation order), so it is a "
        "recorded setting, not derived from --jobs or the core count; null: torch's choice.",
    )
    precision: Precision = Field(
        "auto",
        description="fp32 | bf16 (autocast: matmuls in bfloat16, weights and losses in float32) | auto "
        "(bf16 where the device runs it natively and a measurement shows it faster, else fp32).",
    )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_bf16_features() -> list[str]:
    """The CPU's native bfloat16 instruction sets, as torch sees them (empty: bf16 is emulated)."""
    features = []
    if torch.cpu._is_avx512_bf16_supported():
        features.append("avx512_bf16")
    if torch.cpu._is_amx_tile_supported():
        features.append("amx")
    return features


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(cpu_bf16_features())


def measure_bf16_speedup(device: torch.device, repeats: int = 6) -> float:
    """fp32 time over bf16-autocast time of a train step shaped like a Prompt-DT's (width 128, MLP 512,
    ~2,000 tokens), steps alternating so that load from other processes hits both. About a second."""
    generator = torch.Generator().manual_seed(0)
    layers = [torch.nn.Linear(128, 512), torch.nn.ReLU(), torch.nn.Linear(512, 128)] * 3
    model = torch.nn.Sequential(*layers).to(device)
    inputs = torch.randn(2048, 128, generator=generator).to(device)
    seconds = {"fp32": 0.0, "bf16": 0.0}

    def step(precision: str) -> None:
        with autocast(device, precision):
            loss = model(inputs).square().mean()
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()

    for kind in seconds:  # warm-up: kernels chosen, memory allocated
        step(kind)
    for index in range(repeats):
        for kind in seconds if index % 2 == 0 else reversed(list(seconds)):
            start = time.perf_counter()
            step(kind)
            seconds[kind] += time.perf_counter() - start
    return seconds["fp32"] / max(seconds["bf16"], 1e-12)


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """bf16 autocast on `device`, or nothing for fp32."""
    if precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def _machine_key(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return f"cuda {torch.cuda.get_device_name(device)} torch {torch.__version__}"
    return f"cpu {cpu_model()} [{','.join(cpu_bf16_features())}] torch {torch.__version__} threads {threads}"


def resolve_auto(device: torch.device, threads: int, cache_file: Path | None) -> tuple[str, str]:
    """(precision, why) for `auto`: from the workspace's cache when this machine was measured before."""
    if not native_bf16(device):
        return "fp32", f"no native bf16 on {device.type}"
    if device.type == "cuda":
        return "bf16", "the GPU supports bf16"
    key = _machine_key(device, threads)
    cache: dict[str, Any] = {}
    if cache_file is not None and cache_file.is_file():
        with contextlib.suppress(OSError, ValueError):
            cache = json.loads(cache_file.read_text())
    if not isinstance(cache.get(key), dict):
        speedup = measure_bf16_speedup(device)
        cache[key] = {"speedup": round(speedup, 3), "precision": "bf16" if speedup >= MIN_SPEEDUP else "fp32"}
        if cache_file is not None:
            atomic_write_json(cache_file, cache)
    entry = cache[key]
    features = ",".join(cpu_bf16_features())
    return str(entry["precision"]), f"native bf16 ({features}), measured {entry['speedup']:.2f}x fp32's speed"


@dataclass(frozen=True)
class Compute:
    """What a step runs on, as recorded in its run.json (`compute`)."""

    device: str
    threads: int | None
    precision: str  # fp32 | bf16, never auto
    reason: str
    cpu: str

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        return autocast(self.torch_device, self.precision)

    def record(self) -> dict[str, Any]:
        return asdict(self)


_warned: set[str] = set()


def setup_compute(
    config: ComputeConfig,
    workspace_root: Path | None = None,
    recorded: dict[str, Any] | None = None,
    info: DistInfo | None = None,
) -> Compute:
    """Set this process's threads and resolve device and precision. A resumed run passes the `compute` it
    recorded, so it goes on with the precision it started with; under torchrun every rank takes rank 0's."""
    if info is not None and info.enabled:
        chosen = setup_compute(config, workspace_root, recorded) if info.is_main else None
        return setup_compute(config, recorded=broadcast(chosen.record() if chosen else None, info))
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    threads = torch.get_num_threads()
    if recorded and recorded.get("precision") in ("fp32", "bf16"):
        precision, reason = str(recorded["precision"]), str(recorded.get("reason", "recorded by the run"))
    elif config.precision == "auto":
        cache = workspace_root / CACHE_FILE if workspace_root is not None else None
        precision, reason = resolve_auto(device, threads, cache)
    else:
        precision, reason = config.precision, "set"
    if precision == "bf16" and not native_bf16(device) and "emulated" not in _warned:
        _warned.add("emulated")
        log.warning("precision bf16 on a %s without native bf16: it runs emulated and slowly", device.type)
        reason += " (emulated: no native bf16)"
    return Compute(
        str(device), config.threads, precision, reason, cpu_model() if device.type == "cpu" else ""
    )


def use_precision(module: torch.nn.Module, compute: Compute) -> torch.nn.Module:
    """Make every pdiff model inside `module` run its forward passes in `compute`'s precision."""
    dtype = torch.bfloat16 if compute.precision == "bf16" else None
    for part in module.modules():
        if hasattr(part, "compute_dtype"):
            part.compute_dtype = dtype
    return module


def describe_cpu() -> dict[str, Any]:
    """What `pdiff doctor` says about this CPU: its model, native bf16 features and `auto`'s choice."""
    device = torch.device("cpu")
    threads = int(os.environ.get("OMP_NUM_THREADS") or 1)
    torch.set_num_threads(threads)
    precision, reason = resolve_auto(device, threads, None)
    return {"cpu": cpu_model(), "bf16": cpu_bf16_features(), "auto": precision, "why": reason}
