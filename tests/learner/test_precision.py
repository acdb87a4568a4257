"""Which compute dtype a CPU gets: asked of the hardware first, then measured, never assumed."""

from __future__ import annotations

import pytest
import torch

from rlvr.errors import InputError
from rlvr.learner import precision


@pytest.mark.parametrize(
    "avx512_bf16, amx, f32_ms, bf16_ms, expected, timed",
    [
        (False, False, 90.0, 900.0, "float32", False),  # AVX2-only: bfloat16 is emulated; not even timed
        (True, False, 90.7, 64.2, "float32", True),  # AVX-512 BF16, the 1.4x measured here loaded: not worth the noise
        (True, False, 19.6, 9.4, "float32", True),  # ... and its 2.1x idle: still under the 3x bar
        (False, True, 90.0, 22.0, "bfloat16", True),  # AMX: ~4x
        (True, True, 90.0, 80.0, "float32", True),  # the hardware is there but the speed-up is not
    ],
)
def test_cpu_compute_dtype_follows_the_hardware_and_the_measurement(
    monkeypatch, tmp_path, avx512_bf16, amx, f32_ms, bf16_ms, expected, timed
):
    calls = []

    def fake_time(dtype, *args, **kwargs):
        calls.append(dtype)
        return (bf16_ms if dtype is torch.bfloat16 else f32_ms) / 1e3

    monkeypatch.setattr(
        precision,
        "cpu_kind",
        lambda: {"model": "test cpu", "capability": "AVX512", "avx512_bf16": avx512_bf16, "amx": amx, "torch": "t"},
    )
    monkeypatch.setattr(precision, "_time_matmul", fake_time)
    monkeypatch.setattr(precision, "_cache_file", lambda: tmp_path / "verdict.json")
    assert precision.cpu_compute_dtype() == expected
    assert bool(calls) == timed
    calls.clear()
    assert precision.cpu_compute_dtype() == expected and not calls, "the verdict is cached"


def test_resolve_dtypes_and_the_float16_refusal_on_cpu():
    assert precision.resolve_dtypes("bfloat16", "float32", "cuda") == (torch.float32, torch.bfloat16)
    assert precision.resolve_dtypes("auto", "float32", "cuda") == (torch.float32, torch.bfloat16)
    with pytest.raises(InputError, match="float16 needs CUDA"):
        precision.resolve_dtypes("float16", "float32", "cpu")
    assert precision.grad_scaler(torch.device("cpu"), torch.bfloat16) is None


def test_the_real_cpu_gets_a_verdict(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "_cache_file", lambda: tmp_path / "verdict.json")
    assert precision.cpu_compute_dtype(use_cache=False) in ("float32", "bfloat16")
    kind = precision.cpu_kind()
    assert set(kind) == {"model", "capability", "avx512_bf16", "amx", "torch"}
