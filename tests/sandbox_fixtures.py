"""Sandbox backends for tests: each one built once per session, skipped (or failed in CI) where
missing; the docker one finds the daemon scripts/dockerd.sh started in this checkout."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from conftest import REPO, need

BACKENDS = ("docker", "bwrap", "local")
_LOCAL_SOCKET = REPO / ".ci-work" / "docker" / "run" / "docker.sock"


def use_repo_dockerd() -> None:
    """Tests run by hand after `start_dockerd .ci-work/docker` find that daemon without exports."""
    if not os.environ.get("DOCKER_HOST") and _LOCAL_SOCKET.exists() and not Path("/var/run/docker.sock").exists():
        os.environ["DOCKER_HOST"] = f"unix://{_LOCAL_SOCKET}"


def open_sandbox(backend: str, **opts):
    from rlvr.sandboxes import get_sandbox
    from rlvr.sandboxes.base import _backend_class

    use_repo_dockerd()
    ok, why = _backend_class(backend).available()
    if backend != "local":
        need(backend, ok, why)
    return get_sandbox(backend, **opts)


def processes_with(marker: str) -> list[int]:
    """Host pids whose command line contains marker (sandboxed processes are host processes)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state = re.search(r"\) (\S)", stat)
        if marker.encode() in cmdline and not (state and state.group(1) == "Z"):
            found.append(int(entry))
    return found
