"""The sandbox contract: `Sandbox.run(program, stdin=..., limits=...) -> ExecResult`, the
`Limits` a run gets, `SandboxError` for a sandbox that is itself broken, and `get_sandbox`."""

from __future__ import annotations

import enum
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rlvr import names

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

#: backend name -> "module:class", imported only when used (docker SDK is not needed for local);
#: the table lives in rlvr.names (add a backend there)
BACKENDS = names.SANDBOXES

#: what a backend can promise about a run; each backend lists the ones it guarantees in `claims`
PROPERTIES = {
    "no_network": "the program cannot open network connections",
    "no_host_files": "the program cannot read files outside the sandbox (only system libraries)",
    "work_dir_only": "the program can write only inside its own work dir",
    "pids_limited": "a fork bomb is contained",
    "memory_limited": "a memory bomb ends the run with status memory",
    "time_limited": "an infinite loop ends the run with status timeout, near the limit",
    "output_limited": "an output flood is cut at the limit and flagged",
    "clean_env": "host environment variables are not visible",
    "no_survivors": "no process of the run is alive after it returns",
    "supervisor_protected": "the program cannot signal, stop or re-limit the supervisor: a program that "
    "kills its parent, its group or every process it can see still gets an ExecResult",
}


class SandboxError(RuntimeError):
    """The sandbox itself failed (daemon down, image missing, bwrap cannot start): this says
    nothing about the program and must never be scored as a wrong answer."""


class ExecStatus(str, enum.Enum):
    OK = "ok"  # exited with code 0
    RUNTIME_ERROR = "runtime_error"  # non-zero exit (exception, failed assert, sys.exit(1))
    TIMEOUT = "timeout"  # wall-clock or CPU time limit
    MEMORY = "memory"  # memory limit (MemoryError, or killed by the memory cgroup)
    OUTPUT_LIMIT = "output_limit"  # wrote more than max_output_bytes on stdout or stderr
    KILLED = "killed"  # ended by a signal nobody in rlvr sent (segfault, abort, kill)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Limits:
    """What one run may use. Every backend enforces timeout_s and max_output_bytes; the rest as
    far as its `claims` say."""

    timeout_s: float = 5.0  # wall clock, from program start
    memory_mb: int = 512  # address space / cgroup memory of the program
    max_output_bytes: int = 64 * 1024  # per stream; more is cut and the run ends as output_limit
    pids: int = 64  # processes + threads the run may have at once
    cpus: float = 1.0  # CPU share (docker)
    file_size_mb: int = 16  # largest file the program may write

    def __post_init__(self) -> None:
        for name in ("timeout_s", "memory_mb", "max_output_bytes", "pids", "cpus", "file_size_mb"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Limits.{name} must be > 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class ExecResult:
    """How a run ended. `stdout`/`stderr` are decoded with errors replaced and cut at the limit
    (then `truncated` is True). `duration_s` is the program's own wall time; `overhead_s` is the
    rest of the call (sandbox start, transfer)."""

    status: ExecStatus
    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float
    truncated: bool = False
    backend: str = ""
    overhead_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is ExecStatus.OK

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        out["duration_s"] = round(self.duration_s, 4)
        out["overhead_s"] = round(self.overhead_s, 4)
        return out


class Sandbox:
    """A place to run untrusted Python. Subclasses set `name` and `claims` (keys of PROPERTIES)
    and implement `_run`; `available()` says whether the backend can work on this machine."""

    name: str = ""
    claims: frozenset[str] = frozenset()

    def run(self, program: str, *, stdin: str = "", limits: Limits | None = None) -> ExecResult:
        limits = limits or Limits()
        started = time.perf_counter()
        result = self._run(program, stdin, limits)
        total = time.perf_counter() - started
        return replace(result, backend=self.name, overhead_s=max(0.0, total - result.duration_s))

    def _run(self, program: str, stdin: str, limits: Limits) -> ExecResult:
        raise NotImplementedError

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """(works here, why not). Cheap enough to call in `rlvr sandbox check`."""
        return True, ""

    def close(self) -> None:
        """Release what the sandbox holds (containers); running again after close is an error."""

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _backend_class(backend: str) -> type[Sandbox]:
    if backend not in BACKENDS:
        raise ValueError(f"unknown sandbox backend {backend!r} (known: {', '.join(BACKENDS)})")
    cls: type[Sandbox] = names.load(BACKENDS, backend)
    return cls


def get_sandbox(backend: str, **opts: Any) -> Sandbox:
    """The sandbox `backend` (a name of BACKENDS, or "auto": the first of BACKENDS that works here,
    docker, then bwrap, then local). Raises SandboxError when the backend cannot work here."""
    if backend == names.AUTO:
        for name in BACKENDS:
            if _backend_class(name).available()[0]:
                return get_sandbox(name, **opts)
        raise SandboxError(f"no sandbox backend is available here (tried {', '.join(BACKENDS)})")
    cls = _backend_class(backend)
    ok, why = cls.available()
    if not ok:
        raise SandboxError(f"sandbox backend {backend!r} is not available here: {why}")
    return cls(**opts)


def check_backends() -> dict[str, dict[str, Any]]:
    """For each backend: whether it works here, why not, and what it claims."""
    out = {}
    for name in BACKENDS:
        try:
            cls = _backend_class(name)
            ok, why = cls.available()
            claims = sorted(cls.claims)
        # a diagnostic: whatever breaks importing or probing a backend (any type) is the reason it is unavailable
        except Exception as err:  # noqa: BLE001 - shown per backend, never fatal to the listing
            ok, why, claims = False, f"{type(err).__name__}: {err}", []
        out[name] = {"available": ok, "why": why, "claims": claims}
    return out


# ----------------------------------------------------------------------------- the supervisor

RUNNER_SOURCE = (Path(__file__).with_name("supervisor.py")).read_text()
#: how an interpreter starts the supervisor: isolated, and without `site` (it needs only the
#: stdlib; scanning a big site-packages' .pth files costs ~50 ms a run)
SUPERVISOR_ARGS = ("-I", "-S", "-c", RUNNER_SOURCE)


def make_job(
    program: str,
    stdin: str,
    limits: Limits,
    *,
    workdir: str,
    python: str,
    rlimit_nproc: bool,
    kill_all: bool,
    cgroup_oom: bool,
    **launch: Any,
) -> dict[str, Any]:
    """What the supervisor (`supervisor.py`) is told to do for one run. `launch` says how the program
    is started where it cannot signal the supervisor: `supervisor_ids`/`program_ids` (split uids)
    or `launch="wrapped"` with a `wrapper` argv (its own PID namespace); see `supervisor.py`."""
    return {
        **launch,
        "program": program,
        "stdin": stdin,
        "workdir": workdir,
        "python": python,
        "timeout_s": limits.timeout_s,
        "memory_mb": limits.memory_mb,
        "max_output_bytes": limits.max_output_bytes,
        "nproc": limits.pids if rlimit_nproc else None,
        "file_size_mb": limits.file_size_mb,
        "kill_all": kill_all,
        "cgroup_oom": cgroup_oom,
        "nonce": secrets.token_hex(8),
        "env": {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": workdir,
            "TMPDIR": workdir,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONIOENCODING": "utf-8",
        },
    }


def parse_report(raw: bytes, job: dict[str, Any], *, what: str) -> ExecResult:
    """The supervisor's last output line is `<nonce> <json>`; anything else means the sandbox
    broke (the program cannot write to the supervisor's stdout)."""
    marker = job["nonce"].encode() + b" "
    for line in reversed(raw.splitlines()):
        if line.startswith(marker):
            report = json.loads(line[len(marker) :])
            return ExecResult(
                status=ExecStatus(report["status"]),
                exit_code=report["exit_code"],
                stdout=report["stdout"],
                stderr=report["stderr"],
                duration_s=report["duration_s"],
                truncated=report["truncated"],
            )
    tail = raw[-1500:].decode("utf-8", "replace")
    raise SandboxError(f"{what}: the supervisor gave no report; its output ended with: {tail!r}")


def scrubbed_env() -> dict[str, str]:
    """The environment the supervisor itself starts with (the program gets job['env'] only)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
