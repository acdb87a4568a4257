"""Sandbox backends for tests: each one built once per session, skipped (or failed in CI) where
missing; the docker one finds the daemon scripts/dockerd.sh started in this checkout. Also: host
pids by command line, and killing a sandbox's supervisor from outside (a real sandbox fault)."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

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


#: a line of the supervisor's source: its command line (`python3 -I -S -c SOURCE`) carries it
_SUPERVISOR_MARK = "def kill_everything(proc, kill_all):"


def _kill_child_supervisors(box) -> int:
    """SIGKILL the supervisors this test process started (local, bwrap): its own children only."""
    me, killed = os.getpid(), 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == me and _SUPERVISOR_MARK.encode() in cmdline:
            os.kill(int(entry), signal.SIGKILL)
            killed += 1
    return killed


def _kill_containers(box) -> int:
    """Kill every container this process's docker sandboxes hold: the busy one dies with its run."""
    from rlvr.sandboxes.docker import LABEL, _owner

    found = box.client.containers.list(filters={"label": f"{LABEL}.owner={_owner()}"})
    for container in found:
        container.kill()
    return len(found)


KILL_SUPERVISORS = {"local": _kill_child_supervisors, "bwrap": _kill_child_supervisors, "docker": _kill_containers}


def kill_supervisors(box) -> int:
    """Make the sandbox itself fail mid-run, from outside; how many supervisors/containers died."""
    return KILL_SUPERVISORS[box.name](box)
