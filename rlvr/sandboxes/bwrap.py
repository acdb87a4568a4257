"""`bwrap`: bubblewrap namespaces around the program: no network, read-only system binds, a tmpfs
work dir, a new PID namespace that dies with the run, an unprivileged uid, rlimits. The supervisor
stays outside that PID namespace, so the program cannot signal it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

from rlvr.sandboxes.base import PROPERTIES, SUPERVISOR_ARGS, ExecResult, Limits, Sandbox, SandboxError, make_job
from rlvr.sandboxes.local import run_supervisor

__all__ = ["BwrapSandbox"]

WORKDIR = "/work"
NOBODY = 65534


@cache
def _probe(bwrap: str) -> tuple[bool, str]:
    try:
        user = _unprivileged()
        done = subprocess.run(
            [bwrap, *_base_args(), "true"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,  # a failure is read from returncode below
            **({} if user is None else {"user": user, "group": user, "extra_groups": []}),
        )
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
    args += [
        "--ro-bind-try",
        "/etc/ld.so.cache",
        "/etc/ld.so.cache",
        "--ro-bind-try",
        "/etc/alternatives",
        "/etc/alternatives",
    ]
    return args


def _base_args() -> list[str]:
    return [
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--hostname",
        "sandbox",
        *_system_binds(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        WORKDIR,
        "--remount-ro",
        "/",
        "--remount-ro",
        "/dev",
        "--chdir",
        WORKDIR,
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "LANG",
        "C.UTF-8",
    ]


class BwrapSandbox(Sandbox):
    """Each run is a fresh bubblewrap: no network namespace peers, nothing of the host but /usr
    (read-only), uid 65534 with no capabilities; the PID namespace dies with bwrap, so no process
    survives; rlimits (prlimit, inside) bound memory, processes, CPU and file size. The supervisor
    runs outside, as the same unprivileged uid as bwrap: in the program's PID namespace it has no
    pid, so nothing the program does can signal it."""

    name = "bwrap"
    claims = frozenset(PROPERTIES)  # every property a backend can promise

    def __init__(self, python: str | None = None, bwrap: str | None = None):
        default = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        self.python = python or default
        self.bwrap = bwrap or shutil.which("bwrap") or "bwrap"
        if not os.access(self.python, os.X_OK):  # else prlimit's "cannot execute" would look like the program's
            raise SandboxError(f"bwrap sandbox: no python interpreter at {self.python}")

    @classmethod
    def available(cls) -> tuple[bool, str]:
        found = shutil.which("bwrap")
        if not found:
            return False, "bwrap is not installed (apt-get install bubblewrap)"
        if not _prlimit().startswith("/usr/"):
            return False, "prlimit (util-linux) is not installed under /usr"
        return _probe(found)

    def _wrapper(self, env: dict[str, str]) -> list[str]:
        """bwrap's argv up to the program; {program_fd} and {status_fd} are the supervisor's pipes."""
        args = _base_args()
        prefix = Path(self.python).resolve().parents[1]
        if not str(prefix).startswith("/usr"):  # an interpreter outside /usr (pyenv, venv): its tree, read-only
            args += ["--ro-bind", str(prefix), str(prefix)]
        for key, value in env.items():
            args += ["--setenv", key, value]
        return [
            self.bwrap,
            *args,
            "--file",
            "{program_fd}",
            f"{WORKDIR}/main.py",
            "--json-status-fd",
            "{status_fd}",
        ]  # _base_args already --chdir to WORKDIR

    def _run(self, program: str, stdin: str, limits: Limits) -> ExecResult:
        job = make_job(
            program,
            stdin,
            limits,
            workdir=WORKDIR,
            python=self.python,
            rlimit_nproc=True,
            kill_all=False,
            cgroup_oom=False,
            launch="wrapped",
            prlimit=_prlimit(),
            signal_base=128,
        )
        job["wrapper"] = self._wrapper(job["env"])
        return run_supervisor([self.python, *SUPERVISOR_ARGS], job, limits, what="bwrap sandbox", user=_unprivileged())


def _prlimit() -> str:
    return shutil.which("prlimit", path="/usr/bin:/bin") or ""
