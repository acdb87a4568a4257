"""The python environment in real sandboxes (local always; bwrap where installed): each failure kind is
an observation with a status, state carries across calls, a broken sandbox is one clear error, and
nothing of the row reaches the sandbox."""

from __future__ import annotations

import pytest

from rlvr.environments import Call, CallStatus, EnvironmentBroken
from rlvr.environments.python import PythonEnvironment
from rlvr.sandboxes import ExecResult, ExecStatus, Sandbox, SandboxError
from sandbox_fixtures import open_sandbox

BACKENDS = ["local", pytest.param("bwrap", marks=pytest.mark.bwrap)]


@pytest.fixture(scope="module", params=BACKENDS)
def env(request):
    box = open_sandbox(request.param)
    with PythonEnvironment(timeout=2.0, memory=256, max_output_chars=200, sandbox=box) as environment:
        yield environment


def run(env, *cells, overhang=""):
    """Run cells one call after another in one trajectory; every observation."""
    state = env.reset()
    return [env.execute([(state, Call(code, overhang))])[0] for code in cells]


# (cells of one trajectory, the last call's status, what its observation must hold, what it must not)
CASES = {
    "ok": (["print(6 * 7)"], CallStatus.OK, "\n42\n```\n", None),
    "exception_line": (
        ["x = 1\ny = 0\nprint('before')\nx / y"],
        CallStatus.ERROR,
        "\nbefore\nline 4: ZeroDivisionError: division by zero\n```\n",
        "Traceback",
    ),
    "syntax_error": (["print(1"], CallStatus.ERROR, "line 1: SyntaxError: '(' was never closed", None),
    "error_in_earlier_cell": (
        ["def f(v):\n    return 1 / v", "f(0)"],
        CallStatus.ERROR,
        "line 2 of cell 1: ZeroDivisionError",
        None,
    ),
    "infinite_loop": (
        ["print('spin', flush=True)\nwhile True:\n    pass"],
        CallStatus.TIMEOUT,
        "spin\nTimeoutError: the cell ran longer than 2 s",
        None,
    ),
    "output_flood": (
        ["while True:\n    print('y' * 1000)"],
        CallStatus.OUTPUT_LIMIT,
        "... (output cut at 200 characters)\nOutputError: the cell printed too much",
        None,
    ),
    "memory": (
        ["blocks = []\nwhile True:\n    blocks.append(bytearray(10**8))"],
        CallStatus.MEMORY,
        "MemoryError: the cell used more than 256 MB",
        None,
    ),
    "long_output_capped": (["print('z' * 1000)"], CallStatus.OK, "z" * 200 + "\n... (output cut at 200", "z" * 201),
    "stderr_is_shown": (["import sys\nprint('warn', file=sys.stderr)"], CallStatus.OK, "warn", None),
    "state_carries_over": (
        ["a = 20", "def twice(v):\n    return 2 * v", "print(twice(a) + 2)"],
        CallStatus.OK,
        "\n42\n",
        None,
    ),
    "replay_is_silent": (["print('first')", "print('second')"], CallStatus.OK, "\nsecond\n```\n", "first"),
    "failed_cell_keeps_what_it_defined": (
        ["k = 5\nraise ValueError('boom')", "print(k)"],
        CallStatus.OK,
        "\n5\n",
        None,
    ),
    "timed_out_cell_is_not_replayed": (
        ["import time\ntime.sleep(60)", "print('alive')"],
        CallStatus.OK,
        "\nalive\n",
        None,
    ),
    "sys_exit_zero_is_ok": (["print('bye')\nraise SystemExit(0)"], CallStatus.OK, "\nbye\n```\n", None),
    "empty_cell": ([""], CallStatus.INVALID, "no ```python cell before ```output", None),
}


@pytest.mark.parametrize("case", CASES)
def test_each_outcome_is_an_observation_with_a_status(env, case):
    cells, status, shown, hidden = CASES[case]
    obs = run(env, *cells)[-1]
    assert obs.status is status
    assert shown in obs.text and obs.text.endswith("```\n")
    assert hidden is None or hidden not in obs.text


@pytest.mark.bwrap
def test_a_fork_bomb_is_contained():
    box = open_sandbox("bwrap")
    with PythonEnvironment(timeout=3.0, sandbox=box) as env:
        obs = run(env, "import os\nwhile True:\n    os.fork()")[-1]
    assert obs.status in (CallStatus.ERROR, CallStatus.TIMEOUT, CallStatus.KILLED)
    assert obs.text.endswith("```\n")


def test_the_overhang_is_not_repeated(env):
    assert run(env, "print(1)", overhang="\n")[0].text == "1\n```\n"
    assert run(env, "print(1)")[0].text == "\n1\n```\n"


def test_a_batch_runs_together_and_keeps_its_order(env):
    states = [env.reset() for _ in range(4)]
    calls = [f"import time\ntime.sleep({0.3 * (3 - i)})\nprint({i})" for i in range(4)]  # the last ends first
    observations = env.execute([(s, Call(c)) for s, c in zip(states, calls, strict=True)])
    assert [o.text for o in observations] == [f"\n{i}\n```\n" for i in range(4)]
    assert [s.calls for s in states] == [1, 1, 1, 1] and env.execute([]) == []


class _Recording(Sandbox):
    """Records every program; optionally breaks like a sandbox whose daemon went away."""

    name = "recording"

    def __init__(self, broken=False):
        self.programs, self.broken = [], broken

    def _run(self, program, stdin, limits):
        if self.broken:
            raise SandboxError("docker daemon not reachable")
        self.programs.append(program)
        return ExecResult(ExecStatus.OK, 0, "4\n", "", 0.01)


def test_a_broken_sandbox_is_one_clear_error_not_an_observation():
    env = PythonEnvironment(sandbox=_Recording(broken=True))
    with pytest.raises(EnvironmentBroken, match="the recording sandbox failed: docker daemon not reachable"):
        env.execute([(env.reset(), Call("print(1)"))])


def test_nothing_of_the_row_reaches_the_sandbox():
    box = _Recording()
    env = PythonEnvironment(sandbox=box)
    row = {"answer": "GOLD-73519", "tests": "assert SECRET_TEST", "prompt": "what is 2+2?"}
    state = env.reset(row)
    env.execute([(state, Call("print(2 + 2)"))])
    env.execute([(state, Call("import os\nprint(os.environ)"))])
    assert box.programs and not any(s in p for p in box.programs for s in ("GOLD-73519", "SECRET_TEST", "2+2?"))
