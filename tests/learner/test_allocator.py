"""rlvr.learner.allocator: with glibc told to keep freed memory, a tensor allocated after a freed one of its size
reuses the freed pages (no page faults); without it, every large tensor is faulted in anew. The setting
is process-wide and one-way, so each case runs in a fresh interpreter."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from rlvr.learner import allocator

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="needs glibc")

#: a learn step in miniature: tensors of several sizes (32-48 MiB, every page written) made and freed; the
#: page faults of the steps after the first, which could all reuse the first step's memory
_CHILD = """
import json, resource, sys, torch
from rlvr.learner.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
def step():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x, h = torch.ones(8 << 20), torch.ones(2 << 20)
    y = x * 2
    z = y + h.sum()
    del x, y
    w = torch.ones(12 << 20)
    del z, w, h
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
first = step()
print(json.dumps({"applied": applied, "first": first, "later": sum(step() for _ in range(7))}))
"""


def _faults(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@glibc
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    stock, kept = _faults("stock"), _faults("keep")
    assert stock["applied"] is False and kept["applied"] is True
    # glibc's default: every large tensor is unmapped when freed and faulted in anew, step after step
    assert stock["later"] > 5 * stock["first"], stock
    assert kept["later"] < stock["later"] / 4, (kept, stock)


def test_other_c_libraries_are_left_alone(monkeypatch):
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("musl", ""))
    assert allocator.keep_freed_memory() is False
    monkeypatch.setattr(allocator.platform, "system", lambda: "Darwin")
    assert allocator.keep_freed_memory() is False
