"""`local`: a plain subprocess with rlimits, its own session and temp dir and a scrubbed
environment. NOT a security boundary: the program can read your files, use the network and
write anywhere you can. Use it for trusted code, debugging, or where nothing else runs."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from rlvr.sandboxes.base import (
    SUPERVISOR_ARGS,
    ExecResult,
    Limits,
    Sandbox,
    SandboxError,
    make_job,
    parse_report,
    scrubbed_env,
)

__all__ = ["LocalSandbox", "run_supervisor"]

#: how long past the program's deadline the supervisor may take before we stop waiting for it
GRACE_S = 5.0


def run_supervisor(argv: list[str], job: dict, limits: Limits, *, what: str, user: int | None = None) -> ExecResult:
    """Start the supervisor (`argv` ends in `python3 *SUPERVISOR_ARGS`), hand it the job on
    stdin, and read its report. A supervisor that overruns is killed with its whole session."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=scrubbed_env(),
            cwd="/",
            **({} if user is None else {"user": user, "group": user, "extra_groups": []}),
        )
    except OSError as err:
        raise SandboxError(f"{what}: cannot start {argv[0]}: {err}") from err
    try:
        raw, err_text = proc.communicate(json.dumps(job).encode(), timeout=limits.timeout_s + GRACE_S)
    except subprocess.TimeoutExpired:
        _kill_session(proc)
        proc.communicate()
        # the supervisor enforces the deadline itself: this far past it, the sandbox is what broke
        raise SandboxError(
            f"{what}: the supervisor gave no report {GRACE_S:g} s past the program's deadline (killed)"
        ) from None
    finally:
        _kill_session(proc)  # nothing of the run may outlive it, even if the supervisor died
    try:
        return parse_report(raw, job, what=what)
    except SandboxError as err:
        raise SandboxError(f"{err}; stderr: {err_text.decode('utf-8', 'replace')[-1500:]!r}") from None


def _kill_session(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class LocalSandbox(Sandbox):
    """Claims only what rlimits and process bookkeeping give: deadline, output cap, address-space
    limit, clean environment, and that no process of the run survives it (the supervisor is a
    child subreaper). It does not claim no network, no host files, work-dir-only writes or a
    process limit: it is not a security boundary."""

    name = "local"
    claims = frozenset({"time_limited", "output_limited", "memory_limited", "clean_env", "no_survivors"})

    def __init__(self, python: str | None = None):
        self.python = python or sys.executable

    def _run(self, program: str, stdin: str, limits: Limits) -> ExecResult:
        tmp = tempfile.mkdtemp(prefix="rlvr-local-")
        try:
            job = make_job(
                program,
                stdin,
                limits,
                workdir=os.path.join(tmp, "work"),
                python=self.python,
                rlimit_nproc=False,
                kill_all=False,
                cgroup_oom=False,
            )
            return run_supervisor([self.python, *SUPERVISOR_ARGS], job, limits, what="local sandbox")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
