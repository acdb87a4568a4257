"""The `code` verifier: code extraction, program assembly, verdicts, partial credit, a broken
sandbox never scored as wrong, and all 164 HumanEval canonical solutions on every backend."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest

from rlvr.sandboxes import SandboxError
from rlvr.types import Example, Status
from rlvr.verifiers.code import CodeVerifier, build_program, extract_code
from rlvr.verifiers.registry import build_verifier
from sandbox_fixtures import BACKENDS, open_sandbox

ADD = Example(
    "add",
    "def add(a, b):\n",
    None,
    {
        "prompt": 'from typing import List\n\n\ndef add(a: int, b: int) -> int:\n    """Add."""\n',
        "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(0, 0) == 0\n"
        "    assert candidate(-1, 1) == 0\n    assert candidate(2, 2) == 4\n",
        "entry_point": "add",
    },
)
MBPP = Example(
    "sq", "square", None, {"tests": ["assert square(2) == 4", "assert square(3) == 9", "assert square(-1) == 1"]}
)


@pytest.mark.parametrize(
    "completion,expected",
    [
        ("def f():\n    return 1", "def f():\n    return 1"),
        ("Here:\n```python\ndef f():\n    return 1\n```\nDone.", "def f():\n    return 1\n"),
        ("```python\nx = 1\n```\nthen\n```py\nx = 2\n```", "x = 2\n"),
        ("```\nplain = 1\n```", "plain = 1\n"),
        ("```python\ncut = 1\n", "cut = 1\n"),  # unclosed last fence (truncated generation)
        ("```bash\nls\n```\n```python\nok = 1\n```\n```text\nout\n```", "ok = 1\n"),
        ("```Python3\nx = 3\n```", "x = 3\n"),
    ],
)
def test_extract_code(completion, expected):
    assert extract_code(completion) == expected


@pytest.mark.parametrize(
    "completion,reward,status",
    [
        ("```python\ndef add(a, b):\n    return a + b\n```", 1.0, Status.CORRECT),
        ("    return a + b\n", 1.0, Status.CORRECT),  # body continuing the prompt (base models)
        (
            "```python\ndef add(a: int, b: int) -> List[int]:\n    return a + b\n```",
            1.0,
            Status.CORRECT,
        ),  # prompt's imports kept
        ("```python\ndef add(a, b):\n    return a - b\n```", 0.0, Status.WRONG),
        ("```python\ndef add(a, b):\n    return a +\n```", 0.0, Status.WRONG),  # syntax error
        ("```python\nimport os\nos._exit(0)\n```", 0.0, Status.WRONG),  # exits 0 before the tests
        ("```python\nimport sys\nsys.exit(0)\n```", 0.0, Status.WRONG),
        ("```python\ndef add(a, b):\n    while True: pass\n```", 0.0, Status.WRONG),  # its own timeout is a verdict
        ("", 0.0, Status.NO_ANSWER),
        ("```python\n\n```", 0.0, Status.NO_ANSWER),
    ],
)
def test_humaneval_verdicts(completion, reward, status):
    score = CodeVerifier(backend="local", timeout=2).score(completion, ADD)
    assert (score.reward, score.status) == (reward, status), score.details


@pytest.mark.parametrize(
    "completion,partial,reward,status",
    [
        ("def square(x):\n    return x * x", False, 1.0, Status.CORRECT),
        ("def square(x):\n    return x * abs(x)", False, 0.0, Status.WRONG),
        ("def square(x):\n    return x * abs(x)", True, 2 / 3, Status.WRONG),
        ("def square(x):\n    return x * x", True, 1.0, Status.CORRECT),
        ("def square(x):\n    raise ValueError", True, 0.0, Status.WRONG),  # raising inside an assert counts as failed
        ("def square(x):\n    return x + x", True, 1 / 3, Status.WRONG),
    ],
)
def test_mbpp_and_partial(completion, partial, reward, status):
    score = CodeVerifier(backend="local", partial=partial).score(completion, MBPP)
    assert score.reward == pytest.approx(reward) and score.status is status, score.details
    if partial:
        assert score.details["asserts_total"] == 3


def test_partial_humaneval_counts_asserts():
    score = CodeVerifier(backend="local", partial=True).score("def add(a, b):\n    return a * b + (a == 0)", ADD)
    # 1*2+0=2≠3, 0*0+1=1≠0, -1*1+0=-1≠0, 2*2+0=4 ✓
    assert (score.details["asserts_passed"], score.details["asserts_total"]) == (1, 4)
    assert score.reward == 0.25


def test_example_without_tests_is_an_error_not_wrong():
    score = CodeVerifier(backend="local").score("x = 1", Example("t", "p", None, {}))
    assert score.status is Status.ERROR and "no tests" in score.details["error"]


class _Broken:
    name = "broken"

    def run(self, program, *, stdin="", limits=None):
        raise SandboxError("docker daemon not reachable")

    def close(self):
        pass


def test_broken_sandbox_is_never_wrong():
    verifier = CodeVerifier(backend="local")
    verifier._sandbox = _Broken()
    with pytest.raises(SandboxError):
        verifier.score("def add(a, b):\n    return a + b", ADD)
    scores = verifier.score_batch(["def add(a, b):\n    return a + b"] * 3, [ADD] * 3)
    assert [s.status for s in scores] == [Status.ERROR] * 3
    assert all("sandbox" in s.details["error"] for s in scores)


def test_daemon_down_through_runner_fails_loudly(monkeypatch):
    """What training sees with the daemon down: each worker warms its sandbox up before it is
    ready, so the runner refuses to start and names the daemon; nothing is scored wrong."""
    from rlvr.verifiers.runner import Runner, VerifierStartupError

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with (
        pytest.raises(VerifierStartupError, match="not reachable"),
        Runner(CodeVerifier(backend="docker"), workers=1, timeout=30, max_failure_rate=None) as runner,
    ):
        runner.score(["def add(a, b):\n    return a + b"] * 2, [ADD] * 2)


def test_runner_scores_code_with_warm_workers():
    """Through runner workers (pickled verifier, warmup before ready), verdicts match in-process."""
    from rlvr.verifiers.runner import Runner

    completions = ["def add(a, b):\n    return a + b", "def add(a, b):\n    return a - b", "no code at all("]
    with Runner(CodeVerifier(backend="local", timeout=3), workers=2, timeout=20) as runner:
        scores = runner.score(completions, [ADD] * 3)
    assert [s.status for s in scores] == [Status.CORRECT, Status.WRONG, Status.WRONG]
    assert runner.last_stats.failures == 0


def test_missing_daemon_raises_sandbox_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(SandboxError, match="not reachable"):
        CodeVerifier(backend="docker").score("x = 1", MBPP)


def test_pickles_without_its_sandbox():
    verifier = CodeVerifier(backend="local", partial=True, timeout=2)
    verifier.score("def square(x):\n    return x * x", MBPP)
    clone = pickle.loads(pickle.dumps(verifier))
    assert clone._sandbox is None and clone.partial and clone.limits.timeout_s == 2
    assert clone.score("def square(x):\n    return x * x", MBPP).reward == 1.0


@pytest.mark.parametrize(
    "spec,partial,backend",
    [("code", False, "auto"), ("code:partial=true", True, "auto"), ("code:backend=local,timeout=2", False, "local")],
)
def test_registry_builds_it(spec, partial, backend):
    verifier = build_verifier(spec)
    assert isinstance(verifier, CodeVerifier)
    assert (verifier.partial, verifier.backend) == (partial, backend)


def test_program_puts_tests_after_solution():
    program = build_program("def add(a, b):\n    return a + b", ADD.metadata, partial=False, nonce="N0NCE")
    assert (
        program.index("return a + b")
        < program.index("def check")
        < program.index("check(add)")
        < program.index("N0NCE")
    )
    assert program.startswith("from typing import List")


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_humaneval_canonical_pass_and_broken_fail(backend, data_dir):
    """All 164 canonical solutions pass; a broken variant of each (its body replaced by
    `return None`, and one that swaps the entry point for a wrong-answer wrapper) fails."""
    from rlvr.data.benchmarks import load_benchmark

    examples = load_benchmark("humaneval", data_dir=data_dir)
    assert len(examples) == 164
    open_sandbox(backend).close()  # skip (or fail in CI) where the backend is missing
    verifier = CodeVerifier(backend=backend, workers=4, timeout=10)
    try:
        canonical = [e.metadata["canonical_solution"] for e in examples]
        returns_none = ["    return None\n" for _ in examples]
        off_by_one = [c + _wrong_wrapper(e) for c, e in zip(canonical, examples, strict=True)]
        scores = verifier.score_batch(canonical + returns_none + off_by_one, examples * 3)
    finally:
        verifier.close()
    n = len(examples)
    passed = [e.id for e, s in zip(examples, scores[:n], strict=True) if s.status is not Status.CORRECT]
    assert passed == [], [
        (i, s.details) for i, s in zip(passed, [s for s in scores[:n] if s.status is not Status.CORRECT], strict=True)
    ][:3]
    for variant, chunk in (("return None", scores[n : 2 * n]), ("wrong wrapper", scores[2 * n :])):
        survived = [e.id for e, s in zip(examples, chunk, strict=True) if s.status is not Status.WRONG]
        assert survived == [], f"{variant}: {survived}"
    assert {s.details["backend"] for s in scores} == {backend}


def _wrong_wrapper(example: Example) -> str:
    """After the correct function, rebind the entry point to one whose answer is off: numbers
    +1, strings/lists with an extra element, booleans negated, None → 0."""
    name = example.metadata["entry_point"]
    return (
        f"\n\n_right = {name}\n"
        f"def {name}(*args, **kwargs):\n"
        f"    out = _right(*args, **kwargs)\n"
        f"    if isinstance(out, bool): return not out\n"
        f"    if isinstance(out, (int, float)): return out + 1\n"
        f"    if isinstance(out, str): return out + 'x'\n"
        f"    if isinstance(out, (list, tuple)): return type(out)([*out, 0])\n"
        f"    return 0 if out is None else None\n"
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_verify_cli_scores_code_rows(tmp_path, backend):
    open_sandbox(backend).close()  # skip (or fail in CI) where the backend is missing
    rows = [
        # HumanEval / MBPP fields and no 'answer': code needs no gold answer, only its tests
        {"completion": "```python\ndef add(a, b):\n    return a + b\n```", **ADD.metadata},
        {"completion": "def add(a, b):\n    return a - b", **ADD.metadata},
        {"completion": "def square(x):\n    return x * x", "tests": MBPP.metadata["tests"]},
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "scored.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlvr",
            "verify",
            "--verifier",
            f"code:backend={backend}",
            "--input",
            str(path),
            "--output",
            str(out),
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["reward"], r["status"]) for r in scored] == [(1.0, "correct"), (0.0, "wrong"), (1.0, "correct")]
    assert {r["details"]["backend"] for r in scored} == {backend}
