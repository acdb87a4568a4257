"""The built-in `python` environment: the model's ```python cells run in rlvr's sandboxes (ToRL protocol).

The model writes a ```python block and opens ```output; the code runs in a sandbox, and its output and
the closing fence come back as the observation."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rlvr.environments.base import Call, CallStatus, EnvironmentBroken, Observation
from rlvr.environments.cells import cell_program, read_report
from rlvr.environments.registry import register_environment
from rlvr.errors import InputError
from rlvr.sandboxes import ExecResult, ExecStatus, Limits, Sandbox, SandboxError, get_sandbox
from rlvr.sandboxes.base import _backend_class

__all__ = ["OPEN", "STOP", "PythonEnvironment", "PythonState", "choose_backend"]

log = logging.getLogger(__name__)

OPEN = "```python"  # the fence that opens a cell
STOP = "```output"  # the fence whose opening ends the model's turn in a call
CLOSE = "```"

#: backends `auto` may pick, in order: never `local`, which is no security boundary
AUTO_BACKENDS = ("docker", "bwrap")

#: sandbox status -> call status
_STATUSES = {
    ExecStatus.OK: CallStatus.OK,
    ExecStatus.RUNTIME_ERROR: CallStatus.ERROR,
    ExecStatus.TIMEOUT: CallStatus.TIMEOUT,
    ExecStatus.MEMORY: CallStatus.MEMORY,
    ExecStatus.OUTPUT_LIMIT: CallStatus.OUTPUT_LIMIT,
    ExecStatus.KILLED: CallStatus.KILLED,
}

#: call status -> the line appended to the cell's output (the env's options fill it in)
_FAILURE_LINES: dict[CallStatus, Callable[[PythonEnvironment, ExecResult], str]] = {
    CallStatus.TIMEOUT: lambda env, r: f"TimeoutError: the cell ran longer than {env.timeout:g} s and was stopped",
    CallStatus.MEMORY: lambda env, r: f"MemoryError: the cell used more than {env.memory} MB and was stopped",
    CallStatus.OUTPUT_LIMIT: lambda env, r: "OutputError: the cell printed too much and was stopped",
    CallStatus.KILLED: lambda env, r: f"Killed: the cell was ended by a signal (exit code {r.exit_code})",
}

#: cells that ended like this are replayed in later calls (the others would fail the same way again)
_REPLAYED = frozenset({CallStatus.OK, CallStatus.ERROR})


def choose_backend(backend: str) -> str:
    """The sandbox backend to use: `auto` is docker, else bwrap, and never local; a named one must
    work here. One clear InputError (exit 2) otherwise."""
    if backend == "auto":
        reasons = []
        for name in AUTO_BACKENDS:
            ok, why = _backend_class(name).available()
            if ok:
                return name
            reasons.append(f"{name}: {why}")
        raise InputError(
            "env.backend=auto found no sandbox for model-written code ("
            + "; ".join(reasons)
            + "); install docker or bubblewrap, or pass env.backend=local "
            "to run it unsandboxed"
        )
    try:
        cls = _backend_class(backend)
    except ValueError:
        raise InputError(f"env.backend {backend!r} is unknown: choose auto, docker, bwrap or local") from None
    ok, why = cls.available()
    if not ok:
        raise InputError(f"env.backend={backend} does not work here: {why}")
    if backend == "local":
        log.warning(
            "env.backend=local runs model-written code as a plain subprocess: it is NOT a security "
            "boundary (the code can read your files and use the network)"
        )
    return backend


@dataclass
class PythonState:
    """One trajectory's interpreter: the cells to replay (source, seconds) and the calls made."""

    cells: list[tuple[str, float]] = field(default_factory=list)
    calls: int = 0


@register_environment("python")
class PythonEnvironment:
    """Run the model's ```python cells in a sandbox; later cells see earlier definitions."""

    name = "python"
    stop = (STOP,)
    # set (checked) in __init__; declared here for the failure lines above, which read them
    max_turns: int
    timeout: float
    memory: int
    max_output_chars: int
    workers: int

    def __init__(
        self,
        max_turns: int = 4,
        timeout: float = 5.0,
        memory: int = 512,
        max_output_chars: int = 1024,
        backend: str = "auto",
        workers: int = 4,
        sandbox: Sandbox | None = None,
    ) -> None:
        for option, value, low in (
            ("max_turns", max_turns, 1),
            ("timeout", timeout, 0.01),
            ("memory", memory, 16),
            ("max_output_chars", max_output_chars, 1),
            ("workers", workers, 1),
        ):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= low:
                raise InputError(f"env.{option} must be a number >= {low:g}, got {value!r}")
        self.max_turns, self.timeout, self.memory = int(max_turns), float(timeout), int(memory)
        self.max_output_chars, self.workers = int(max_output_chars), int(workers)
        if sandbox is None:
            self.backend = choose_backend(backend)
            try:
                sandbox = get_sandbox(self.backend, **({"pool_size": self.workers} if self.backend == "docker" else {}))
            except SandboxError as err:
                raise InputError(f"env.backend={self.backend}: {err}") from None
        else:
            self.backend = sandbox.name
        self.sandbox = sandbox

    # -- the protocol ------------------------------------------------------------------------

    def reset(self, task: Any = None) -> PythonState:
        """A fresh interpreter; `task` is ignored (nothing of the row reaches the sandbox)."""
        return PythonState()

    def parse_call(self, state: PythonState, text: str) -> Call | None:
        """The last ```python cell before the first ```output of the turn, or None without one."""
        at = text.find(STOP)
        if at < 0:
            return None
        before, overhang = text[:at], text[at + len(STOP) :]
        start = before.rfind(OPEN)
        if start < 0:
            return Call("", overhang)
        body = before[start:].partition("\n")[2]  # the fence line may say ```python3
        end = body.find(CLOSE)
        return Call((body[:end] if end >= 0 else body).strip("\n"), overhang)

    def execute(self, calls: Sequence[tuple[PythonState, Call]]) -> list[Observation]:
        """Each call in the sandbox, `workers` at once; observations in the order given."""
        if not calls:
            return []
        with ThreadPoolExecutor(
            max_workers=min(self.workers, len(calls)), thread_name_prefix="rlvr-python-env"
        ) as pool:
            try:
                return list(pool.map(lambda pair: self._execute_one(*pair), calls))
            except SandboxError as err:
                raise EnvironmentBroken(f"python environment: the {self.backend} sandbox failed: {err}") from err

    def close(self) -> None:
        self.sandbox.close()

    def __enter__(self) -> PythonEnvironment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one call ----------------------------------------------------------------------------

    def _execute_one(self, state: PythonState, call: Call) -> Observation:
        state.calls += 1
        if not call.content.strip():
            return self._observation(
                call,
                "",
                CallStatus.INVALID,
                {"error": "no ```python cell before ```output: nothing was run"},
                note="(no ```python cell before ```output: nothing was run)",
            )
        replayed = sum(seconds for _, seconds in state.cells)
        limits = Limits(
            timeout_s=self.timeout + replayed,
            memory_mb=self.memory,
            max_output_bytes=max(16 * 1024, 4 * self.max_output_chars),
        )
        result = self.sandbox.run(cell_program([src for src, _ in state.cells] + [call.content]), limits=limits)
        status = _STATUSES[result.status]
        report = read_report(result.stderr)
        if status in _REPLAYED:
            state.cells.append((call.content, report.seconds if report.seconds is not None else result.duration_s))
        if status is CallStatus.ERROR:
            note = report.error or (result.stderr.strip().splitlines() or ["error"])[-1]
        elif status in _FAILURE_LINES:
            note = _FAILURE_LINES[status](self, result)
        else:
            note = ""
        details = {
            "seconds": result.duration_s,
            "overhead_s": result.overhead_s,
            "backend": result.backend,
            "exit_code": result.exit_code,
        }
        return self._observation(call, result.stdout, status, details, note=note)

    def _observation(self, call: Call, output: str, status: CallStatus, details: dict, *, note: str) -> Observation:
        """Output cut at max_output_chars, then the failure note, then the closing fence."""
        truncated = len(output) > self.max_output_chars
        if truncated:
            output = output[: self.max_output_chars] + f"\n... (output cut at {self.max_output_chars} characters)"
        if note:
            output = output + ("" if not output or output.endswith("\n") else "\n") + note
        if output and not output.endswith("\n"):
            output += "\n"
        opening = "" if "\n" in call.overhang else "\n"
        return Observation(opening + output + CLOSE + "\n", status, {**details, "truncated": truncated})
