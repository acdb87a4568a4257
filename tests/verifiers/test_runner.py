"""The process-pool runner: hard per-item deadlines, replaced workers, counted errors, no leaks."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rlvr.types import Example, Status
from rlvr.verifiers import build_verifier
from rlvr.verifiers.runner import Runner, RunStats, VerifierFailureRate, VerifierStartupError, score_all
from runner_fixtures import BadWarmup, RawMathVerify, Scripted, SlowWarmup, Unpicklable

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
TIMEOUT = 1.0
# generous: two shared cores, and a replacement worker has to start a fresh interpreter
MARGIN = 6.0


def examples(n: int, **metadata: object) -> list[Example]:
    return [Example(str(i), "prompt", "gold", dict(metadata)) for i in range(n)]


def alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def runner():
    """One pool shared by the tests that only score (starting interpreters is the slow part)."""
    with Runner(Scripted(), workers=2, timeout=TIMEOUT, max_failure_rate=None) as r:
        yield r
    assert not any(alive(pid) for pid in r.worker_pids())


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_scores_in_input_order_with_stats(workers: int) -> None:
    completions = ["ok", "no", "no", "ok", "raise"] * 8
    scores, stats = score_all(Scripted(), completions, examples(40), workers=workers, max_failure_rate=None)
    assert [s.status for s in scores] == [
        {"ok": Status.CORRECT, "no": Status.WRONG, "raise": Status.ERROR}[c] for c in completions
    ]
    assert isinstance(stats, RunStats)
    assert stats.n == 40 and stats.workers == workers
    assert stats.counts["correct"] == 16 and stats.counts["wrong"] == 16 and stats.counts["error"] == 8
    assert stats.failures == 8 and stats.failure_rate == pytest.approx(0.2)
    assert stats.mean_reward == pytest.approx(0.4)
    assert stats.verdicts_per_s > 0 and stats.seconds > 0


@pytest.mark.parametrize("stuck", ["hang", "spin"])
def test_stuck_item_times_out_and_later_items_are_scored(runner: Runner, stuck: str) -> None:
    before = set(runner.worker_pids())
    completions = ["pid"] * 4 + [stuck] + ["pid"] * 30
    start = time.monotonic()
    scores = runner.score(completions, examples(len(completions)))
    elapsed = time.monotonic() - start
    assert elapsed < TIMEOUT + MARGIN, elapsed
    assert scores[4].status == Status.TIMEOUT and scores[4].reward == 0.0
    assert "within 1 s" in scores[4].details["error"]
    assert all(s.status == Status.CORRECT for i, s in enumerate(scores) if i != 4)
    assert runner.last_stats.counts["timeout"] == 1 and runner.last_stats.replaced_workers == 1
    after = set(runner.worker_pids())
    assert len(before - after) == 1 and len(after) == 2  # exactly one worker was replaced
    assert not any(alive(pid) for pid in before - after)
    assert {s.details["pid"] for s in scores[5:]} <= after
    # the replacement takes work: two slow items run on the two workers at once
    runner.start(wait=True)
    again = runner.score(["sleep:0.3:pid", "sleep:0.3:pid"], examples(2))
    assert {s.details["pid"] for s in again} == after


@pytest.mark.slow
def test_several_stuck_items_in_one_batch(runner: Runner) -> None:
    completions = ["hang", "ok", "spin", "ok", "hang", "no"]
    start = time.monotonic()
    scores = runner.score(completions, examples(6))
    # two workers: at most two stuck items run at once, so three take two deadlines
    assert time.monotonic() - start < 2 * TIMEOUT + MARGIN
    assert [s.status.value for s in scores] == ["timeout", "correct", "timeout", "correct", "timeout", "wrong"]


def test_slow_item_under_deadline_is_not_killed(runner: Runner) -> None:
    scores = runner.score(["sleep:0.3", "sleep:0.3", "ok"], examples(3))
    assert [s.status for s in scores] == [Status.CORRECT] * 3


def test_exception_is_an_error_with_its_text(runner: Runner) -> None:
    scores = runner.score(["raise", "ok"], examples(2))
    assert scores[0].status == Status.ERROR and scores[0].reward == 0.0
    assert scores[0].details["error"] == "ZeroDivisionError: scripted failure on 0"
    assert "runner_fixtures.py" in scores[0].details["traceback"]
    assert scores[1].status == Status.CORRECT


def test_worker_that_dies_gives_error_and_is_replaced(runner: Runner) -> None:
    scores = runner.score(["ok", "die", "ok", "ok"], examples(4))
    assert scores[1].status == Status.ERROR and "exit code 7" in scores[1].details["error"]
    assert [s.status for s in scores[2:]] == [Status.CORRECT, Status.CORRECT]
    assert runner.last_stats.counts["error"] == 1


def test_worker_killed_from_outside_mid_batch_is_replaced_and_its_item_gets_error() -> None:
    """What the OOM killer does: SIGKILL a busy worker from outside. Its item in flight gets
    status error (never a silent 0 or a lost row), the rest of its chunk is scored elsewhere."""
    import os
    import signal

    with Runner(Scripted(), workers=2, timeout=30.0, max_failure_rate=None, chunk_size=2) as r:
        r.start(wait=True)
        first_pids = set(r.worker_pids())
        scores, victim = {}, None
        for index, score in r.iter_scores(["sleep:0.4"] * 8, examples(8)):
            scores[index] = score
            if victim is None:  # it reported the first item of its chunk and is now on the second
                victim = score.details["pid"]
                os.kill(victim, signal.SIGKILL)
        assert sorted(scores) == list(range(8))
        errors = [i for i, s in scores.items() if s.status is Status.ERROR]
        assert len(errors) == 1 and "worker process died (exit code -9)" in scores[errors[0]].details["error"]
        assert sum(s.status is Status.CORRECT for s in scores.values()) == 7
        assert r.last_stats.replaced_workers == 1 and r.last_stats.counts["error"] == 1
        assert victim in first_pids and victim not in r.worker_pids() and not alive(victim)
        assert len(r.worker_pids()) == 2
        again = r.score(["ok"] * 4, examples(4))  # the replacement works
        assert [s.status for s in again] == [Status.CORRECT] * 4


def _score_and_reap(verifier, completions: list[str], items: list[Example], timeout: float):
    """Score with a warmed-up 2-worker pool; (scores, seconds, every worker pid ever used)."""
    with Runner(verifier, workers=2, timeout=timeout, max_failure_rate=None) as r:
        r.start(wait=True)  # imports and warm-up are not on the clock
        pids = set(r.worker_pids())
        start = time.monotonic()
        scores = r.score(completions, items)
        elapsed = time.monotonic() - start
        pids |= set(r.worker_pids())
        stats = r.last_stats
    return scores, stats, elapsed, pids


@pytest.mark.slow
def test_raw_math_verify_power_tower_is_killed_at_the_deadline() -> None:
    """The peers' failure: math-verify on 9^{9^{9^{9}}} with its signal timeout unusable."""
    completions = ["\\boxed{9^{9^{9^{9}}}}", "\\boxed{4}", "\\boxed{5}"]
    golds = ["1", "4", "4"]  # comparing with a small number makes sympy evaluate the tower
    items = [Example(str(i), "p", g) for i, g in enumerate(golds)]
    scores, stats, elapsed, pids = _score_and_reap(RawMathVerify(), completions, items, timeout=2.0)
    assert elapsed < 2.0 + MARGIN, elapsed
    assert [s.status for s in scores] == [Status.TIMEOUT, Status.CORRECT, Status.WRONG]
    assert stats.counts["timeout"] == 1 and stats.replaced_workers == 1
    assert len(pids) == 3 and not any(alive(p) for p in pids)  # the killed one and both live ones


def test_rlvr_math_on_power_towers_finishes_within_the_deadline() -> None:
    towers = ["9^{9^{9^{9}}}", "9^{9^{9^{9}}}+1", "2^{2^{2^{30}}}", "(10^{100000})!"]
    completions = [f"\\boxed{{{t}}}" for t in towers] + ["\\boxed{4}"]
    items = [Example(str(i), "p", g) for i, g in enumerate(["1", "9^{9^{9^{9}}}", "2", "5", "4"])]
    scores, _stats, elapsed, pids = _score_and_reap(build_verifier("math"), completions, items, timeout=2.0)
    assert elapsed < 2.0 + MARGIN, elapsed
    # refused or timed out, never hanging and never called equal
    assert all(s.status in (Status.WRONG, Status.TIMEOUT) for s in scores[:4]), scores
    assert scores[4].status == Status.CORRECT
    assert not any(alive(p) for p in pids)


@pytest.mark.parametrize(
    "completions, limit, raises",
    [
        (["ok"] * 19 + ["raise"], 0.05, False),  # exactly 5%: allowed
        (["ok"] * 18 + ["raise"] * 2, 0.05, True),
        (["ok"] * 18 + ["hang"] * 2, 0.05, True),  # timeouts count too
        (["raise"] * 20, None, False),  # None: never raise
        (["no"] * 20, 0.0, False),  # wrong answers are verdicts, not failures
        (["ok"] * 19 + ["raise"], 0.0, True),
    ],
)
def test_failure_rate(completions: list[str], limit: float | None, raises: bool) -> None:
    runner = Runner(Scripted(), workers=0 if "hang" not in completions else 2, timeout=TIMEOUT, max_failure_rate=limit)
    with runner:
        if not raises:
            runner.score(completions, examples(len(completions)))
            return
        with pytest.raises(VerifierFailureRate) as caught:
            runner.score(completions, examples(len(completions)))
    err = caught.value
    assert err.stats is runner.last_stats and err.stats.failures == 2 - (limit == 0.0)
    assert len(err.scores) == len(completions)
    assert "verdicts failed" in str(err) and "first failure" in str(err)


def test_stopping_early_leaves_no_stale_verdicts(runner: Runner) -> None:
    first = runner.imap(["sleep:0.5"] * 6, examples(6))
    next(first)
    first.close()  # abandon the batch while workers are busy
    scores = runner.score(["no", "ok", "pid"], examples(3))
    assert [s.status for s in scores] == [Status.WRONG, Status.CORRECT, Status.CORRECT]


def test_no_worker_survives_close_and_grandchildren_die_with_them(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    with Runner(Scripted(), workers=2, timeout=TIMEOUT, max_failure_rate=None) as r:
        scores = r.score(["ok", "child"], examples(2, pid_file=str(pid_file)))
        assert scores[1].status == Status.TIMEOUT
        grandchild = int(pid_file.read_text())
        pids = r.worker_pids()
        assert all(alive(p) for p in pids)
    assert not any(alive(p) for p in pids)
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:  # killed with the worker's process group
        time.sleep(0.05)
    assert not alive(grandchild)


def test_forgotten_runner_is_stopped_by_its_finalizer() -> None:
    r = Runner(Scripted(), workers=1, timeout=TIMEOUT)
    r.score(["ok"], examples(1))
    pids = r.worker_pids()
    assert all(alive(p) for p in pids)
    del r
    gc.collect()
    assert not any(alive(p) for p in pids)


@pytest.mark.slow
def test_no_worker_survives_interpreter_exit(tmp_path: Path) -> None:
    script = tmp_path / "leave_running.py"
    script.write_text(
        textwrap.dedent(f"""
        import json, sys
        sys.path[:0] = [{str(TESTS)!r}, {str(REPO)!r}]
        from runner_fixtures import Scripted
        from rlvr.types import Example
        from rlvr.verifiers.runner import Runner

        if __name__ == "__main__":
            runner = Runner(Scripted(), workers=2, timeout=30)
            runner.score(["ok", "ok"], [Example("a", "p", "g")] * 2)
            print(json.dumps(runner.worker_pids()), flush=True)
            # exit with the runner open and one worker busy forever
            it = runner.iter_scores(["hang"], [Example("b", "p", "g")])
            import threading
            threading.Thread(target=lambda: next(it), daemon=True).start()
            import time; time.sleep(1.0)
    """)
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    pids = json.loads(done.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)


def test_worker_prints_go_to_stderr_not_into_stdout_data(tmp_path: Path) -> None:
    script = tmp_path / "chatty.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(TESTS)!r}, {str(REPO)!r}]
        from runner_fixtures import Chatty
        from rlvr.types import Example
        from rlvr.verifiers.runner import score_all

        if __name__ == "__main__":
            scores, _ = score_all(Chatty(), ["ok", "no"], [Example("a", "p", "g")] * 2, workers=2)
            print([s.reward for s in scores])
    """)
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[1.0, 0.0]\n"
    assert done.stderr.count("debug: scoring a") == 2


def test_unpicklable_verifier_is_refused_up_front() -> None:
    with pytest.raises(VerifierStartupError, match="cannot be pickled"):
        Runner(Unpicklable(), workers=1).start()


def test_verifier_that_cannot_start_in_a_worker_says_why() -> None:
    with Runner(BadWarmup(), workers=1) as r, pytest.raises(VerifierStartupError, match="grammar files missing"):
        r.score(["ok"], examples(1))


@pytest.mark.slow
def test_warmup_is_not_on_the_first_items_clock() -> None:
    scores, _stats = score_all(SlowWarmup(), ["ok", "ok"], examples(2), workers=2, timeout=1.0)
    assert [s.status for s in scores] == [Status.CORRECT] * 2
    with Runner(SlowWarmup(), workers=2) as r:
        start = time.monotonic()
        r.start(wait=True)
        assert time.monotonic() - start >= 1.4  # both warmed up (1.5 s each, in parallel)
        assert all(w.ready for w in r._pool)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="fork"):
        Runner(Scripted(), start_method="fork")
    with pytest.raises(ValueError, match="timeout"):
        Runner(Scripted(), timeout=0)
    with pytest.raises(ValueError, match="2 completions but 1 examples"):
        Runner(Scripted(), workers=0).score(["ok", "ok"], examples(1))


def test_empty_batch() -> None:
    with Runner(Scripted(), workers=1) as r:
        assert r.score([], []) == []
        assert r.last_stats.n == 0 and r.last_stats.failure_rate == 0.0


def _counted(completions: list[str], read: list[int]):
    """(completion, example) pairs that count, in `read`, how many were taken so far."""
    for i, completion in enumerate(completions):
        read[0] = i + 1
        yield completion, Example(str(i), "prompt", "gold")


@pytest.mark.parametrize("workers, window", [(0, 1), (0, 4), (2, 3), (2, 16)])
def test_stream_reads_lazily_within_its_window_and_keeps_order(runner: Runner, workers: int, window: int) -> None:
    completions = ["ok", "no", "sleep:0.01", "raise", "pid"] * 10
    read = [0]
    pool = runner if workers else Runner(Scripted(), workers=0, max_failure_rate=None)
    got = []
    for k, score in enumerate(pool.stream(_counted(completions, read), window=window)):
        assert read[0] - k <= window, (read[0], k)  # never more than `window` read ahead of the one yielded
        got.append(score.status.value)
    assert got == [
        {"ok": "correct", "no": "wrong", "sleep": "correct", "raise": "error", "pid": "correct"}[c.split(":")[0]]
        for c in completions
    ]
    stats = pool.last_stats
    assert (stats.n, stats.counts["error"], stats.counts["wrong"], stats.mean_reward) == (
        50,
        10,
        10,
        pytest.approx(0.6),
    )


def test_stream_with_a_stuck_item_keeps_order_and_counts_the_timeout(runner: Runner) -> None:
    completions = ["pid"] * 3 + ["hang"] + ["pid"] * 12
    scores = list(runner.stream(_counted(completions, [0]), window=4))
    assert [s.status.value for s in scores] == ["correct"] * 3 + ["timeout"] + ["correct"] * 12
    assert runner.last_stats.counts["timeout"] == 1 and runner.last_stats.n == 16


def test_stream_failure_rate_carries_only_the_first_failure() -> None:
    completions = ["ok"] * 8 + ["raise"] * 2
    with Runner(Scripted(), workers=0, max_failure_rate=0.1) as runner, pytest.raises(VerifierFailureRate) as caught:
        for _ in runner.stream(_counted(completions, [0])):
            pass
    err = caught.value
    assert err.stats.n == 10 and err.stats.failures == 2 and err.stats is runner.last_stats
    assert len(err.scores) == 1 and err.scores[0].details["error"] == "ZeroDivisionError: scripted failure on 8"


def test_stream_of_nothing() -> None:
    with Runner(Scripted(), workers=1) as runner:
        assert list(runner.stream(iter([]))) == []
        assert runner.last_stats.n == 0
