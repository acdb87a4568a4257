"""Run untrusted Python contained: docker (warm pool), bubblewrap, or local (not a boundary)."""

from rlvr.sandboxes.base import (
    BACKENDS,
    PROPERTIES,
    ExecResult,
    ExecStatus,
    Limits,
    Sandbox,
    SandboxError,
    check_backends,
    get_sandbox,
)

__all__ = [
    "BACKENDS",
    "PROPERTIES",
    "ExecResult",
    "ExecStatus",
    "Limits",
    "Sandbox",
    "SandboxError",
    "check_backends",
    "get_sandbox",
]
