"""`bwrap`: bubblewrap namespaces around the supervisor: no network, read-only system binds, a
tmpfs work dir, a new PID namespace that dies with the run, an unprivileged uid, rlimits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

from rlvr.sandboxes.base import SUPERVISOR_ARGS, ExecResult, Limits, Sandbox, make_job
from rlvr.sandboxes.local import run_supervisor

__all__ = ["BwrapSandbox"]

WORKDIR = "/work/run"
NOBODY = 65534


@cache
def _probe(bwrap: str) -> tuple[bool, str]:
    try:
        user = _unprivileged()
        done = subprocess.run([bwrap, *_base_args(), "true"], capture_output=True, text=True, timeout=20,
                              **({} if user is None else {"user": user, "group": user, "extra_groups": []}))
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, f"{bwrap} does not start: {err}"
    if done.returncode != 0:
        return False, f"bwrap cannot create its namespaces here: {done.stderr.strip()[-300:]}"
    return True, ""


def _unprivileged() -> int | None:
    """Started by root, bwrap itself runs as nobody: the sandbox's uid then maps to a real
    unprivileged uid, so RLIMIT_NPROC holds (root's processes are exempt from it)."""
    return NOBODY if os.geteuid() == 0 else None


def _system_binds() -> list[str]:
    """/usr read-only; /bin, /lib ... as the same symlinks (merged /usr) or read-only binds."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / top
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{top}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{top}"]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
             "--ro-bind-try", "/etc/alternatives", "/etc/alternatives"]
    return args


def _base_args() -> list[str]:
    return [
        "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        "--uid", "65534", "--gid", "65534", "--hostname", "sandbox",
        *_system_binds(), "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/work",
        "--remount-ro", "/", "--remount-ro", "/dev", "--chdir", "/work", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
    ]


class BwrapSandbox(Sandbox):
    """Each run is a fresh bubblewrap: no network namespace peers, nothing of the host but /usr
    (read-only), uid 65534 with no capabilities; the PID namespace ends with the supervisor so no
    process survives; rlimits bound memory, processes, CPU and file size."""

    name = "bwrap"
    claims = frozenset({"no_network", "no_host_files", "work_dir_only", "pids_limited", "memory_limited",
                        "time_limited", "output_limited", "clean_env", "no_survivors"})

    def __init__(self, python: str | None = None, bwrap: str | None = None):
        default = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        self.python = python or default
        self.bwrap = bwrap or shutil.which("bwrap") or "bwrap"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        found = shutil.which("bwrap")
        if not found:
            return False, "bwrap is not installed (apt-get install bubblewrap)"
        return _probe(found)

    def _args(self) -> list[str]:
        args = _base_args()
        prefix = Path(self.python).resolve().parents[1]
        if not str(prefix).startswith("/usr"):  # an interpreter outside /usr (pyenv, venv): its tree, read-only
            args += ["--ro-bind", str(prefix), str(prefix)]
        return [self.bwrap, *args, self.python, *SUPERVISOR_ARGS]

    def _run(self, program: str, stdin: str, limits: Limits) -> ExecResult:
        job = make_job(program, stdin, limits, workdir=WORKDIR, python=self.python,
                       rlimit_nproc=True, kill_all=True, cgroup_oom=False)
        return run_supervisor(self._args(), job, limits, what="bwrap sandbox", user=_unprivileged())
