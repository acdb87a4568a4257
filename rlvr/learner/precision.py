"""Numeric precision of training: float32 master weights, computation in a compute dtype, and which
compute dtype this machine's CPU actually runs fastest (measured, never assumed).

Mixed precision the way verl (FSDP mixed precision) and DeepSpeed do it: the optimizer updates float32
master weights, so a step of lr 1e-6 is kept even where bfloat16 (8 bits of mantissa) would round it
away; forward and backward run in the compute dtype through autocast. float16 compute adds loss
scaling (GradScaler) on CUDA.

CPU kinds differ: with AMX or AVX-512 BF16, bfloat16 matmuls can be several times faster than float32;
on an AVX2-only CPU bfloat16 autocast is more than 10× slower. `cpu_compute_dtype()` first asks the
CPU what it supports, then times one transformer-sized matmul both ways and keeps bfloat16 only when it
is at least 3× faster; the verdict is cached per CPU model and torch version.
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from rlvr.io import write_json

__all__ = ["autocast", "cpu_compute_dtype", "cpu_kind", "grad_scaler", "resolve_dtypes"]

log = logging.getLogger("rlvr.learner.precision")

#: bfloat16 must beat float32 by this factor on the timed matmul to be chosen on a CPU. bfloat16 logits
#: carry ~0.1 of absolute error into every logprob, so the policy gradient is noisier, and a whole step
#: gains less than its matmuls: worth it for AMX's ~4×, not for AVX-512 BF16's 1.4-2.1× (measured on this
#: kind, idle and loaded: benchmarks/RESULTS.md), where the choice would also flip with the load
_MIN_SPEEDUP = 3.0


def cpu_kind() -> dict[str, Any]:
    """What the CPU offers for low-precision math, as recorded beside every benchmark number."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "model": model,
        "capability": torch.backends.cpu.get_cpu_capability(),
        "avx512_bf16": bool(torch.cpu._is_avx512_bf16_supported()),
        "amx": bool(torch.cpu._is_amx_tile_supported()),
        "torch": torch.__version__,
    }


def _time_matmul(dtype: torch.dtype | None, size: tuple[int, int, int] = (512, 576, 1536), reps: int = 5) -> float:
    m, k, n = size
    a = torch.randn(m, k, requires_grad=True)
    w = torch.randn(k, n, requires_grad=True)
    ctx = torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()
    best = float("inf")
    for _ in range(reps + 1):  # the first run warms up (oneDNN picks and caches its kernels)
        start = time.perf_counter()
        with ctx:
            out = (a @ w).float().sum()
        out.backward()
        best = min(best, time.perf_counter() - start)
    return best


def _cache_file() -> Path:
    from rlvr.models import rlvr_cache_dir

    return rlvr_cache_dir() / "cpu_compute_dtype.json"


def cpu_compute_dtype(*, use_cache: bool = True) -> str:
    """ "bfloat16" when this CPU has bfloat16 hardware (AVX-512 BF16 or AMX) *and* a timed matmul with
    its backward runs at least `_MIN_SPEEDUP` (3×) faster under bfloat16 autocast than in float32; else "float32"."""
    kind = cpu_kind()
    if not (kind["avx512_bf16"] or kind["amx"]):
        return "float32"  # AVX2-only: bfloat16 is emulated, often 10× slower
    key = (
        f"{kind['model']}|{kind['capability']}|amx={kind['amx']}|torch={kind['torch']}|"
        f"threads={torch.get_num_threads()}|min={_MIN_SPEEDUP}"
    )
    path = _cache_file()
    if use_cache:
        try:
            cached = json.loads(path.read_text())
            if cached.get("key") == key:
                return cached["dtype"]
        except (OSError, ValueError, KeyError):
            pass
    f32, bf16 = _time_matmul(None), _time_matmul(torch.bfloat16)
    choice = "bfloat16" if f32 / bf16 >= _MIN_SPEEDUP else "float32"
    log.info(
        "CPU %s: float32 matmul %.1f ms, bfloat16 %.1f ms -> compute in %s",
        kind["model"],
        f32 * 1e3,
        bf16 * 1e3,
        choice,
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"key": key, "dtype": choice, "float32_s": f32, "bfloat16_s": bf16}, indent=None)
    except OSError:
        pass  # a read-only cache only costs the measurement next time
    return choice


def resolve_dtypes(compute: str, master: str, device: str) -> tuple[torch.dtype, torch.dtype]:
    """(master, compute) torch dtypes for config values model.master_dtype and model.dtype ("auto" =
    bfloat16 on CUDA, the measured choice on CPU)."""
    if compute == "auto":
        compute = "bfloat16" if device.startswith("cuda") else cpu_compute_dtype()
    if compute == "float16" and not device.startswith("cuda"):
        from rlvr.errors import InputError

        raise InputError("model.dtype=float16 needs CUDA (loss scaling); on CPU use bfloat16 or float32")
    return getattr(torch, master), getattr(torch, compute)


@contextlib.contextmanager
def autocast(device: torch.device, master: torch.dtype, compute: torch.dtype) -> Iterator[None]:
    """Run the enclosed forward in `compute` when it differs from the master weights' dtype."""
    if compute == master:
        yield
        return
    with torch.autocast(device.type, dtype=compute):
        yield


def grad_scaler(device: torch.device, compute: torch.dtype) -> Any:
    """A GradScaler for float16 compute on CUDA (its 5 exponent bits underflow small gradients), else None."""
    if compute == torch.float16 and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None
