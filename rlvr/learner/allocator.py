"""Host-memory reuse for CPU training: glibc's malloc keeps freed tensor memory in the process instead of
handing it back to the kernel, so the next tensor of that size does not page-fault it in again.

By default glibc serves every allocation above its mmap threshold (128 KiB, raised as large chunks are
freed, to at most 32 MiB) with a fresh `mmap` and returns it with `munmap` when freed. A learn step
allocates and frees hundreds of such tensors (activations, their gradients, [chunk, vocab] logits, the
embedding's dense gradient), and each comes back as zero-filled pages, one page fault per 4 KiB. On the
2-core machine of benchmarks/RESULTS.md that was about a fifth of a SmolLM2 learn step, outside any matmul.
`keep_freed_memory()` serves every allocation from malloc's heap and only trims its top beyond 1 GiB of
free space: what one learn pass frees, the next one (or the engine's generation) reuses.

The cost is that freed memory stays counted in the process's RSS until it is reused. The peak RSS of a
run is its high-water mark either way; benchmarks/grpo_vs_trl.py measures both. Applied on Linux with
glibc only (elsewhere nothing changes), by `rlvr.learner.policy.Policy` on CPU when `model.keep_freed_memory` is on."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

__all__ = ["TRIM_THRESHOLD", "keep_freed_memory"]

log = logging.getLogger("rlvr.learner.allocator")

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters (malloc.h)
#: free space at the top of the heap beyond which malloc still hands memory back to the kernel
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to serve large allocations from its heap (no mmap) and to keep up to
    `TRIM_THRESHOLD` bytes of freed memory at the top of it. Returns whether it was applied: False where
    the C library is not glibc (musl, macOS, Windows) or refuses a setting. Idempotent."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    applied = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    log.debug("malloc keeps freed memory: %s", applied)
    return applied
