"""rlvr's verifiers as verl's custom reward function: the spec from an argument or RLVR_VERIFIER, what
verl reads back, calls from other threads (one at a time and many together), and failures counted."""

from __future__ import annotations

import gc
import importlib.util
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlvr.integrations import verl
from rlvr.integrations.verl import compute_score, compute_score_batch, scorer_for
from rlvr.types import Status
from rlvr.verifiers.runner import VerifierFailureRate

STATUS_KEYS = {f"rlvr_{s.value}" for s in Status}


@pytest.fixture(autouse=True)
def fresh_scorers(monkeypatch):
    """Each test builds its own scorers; their runners' workers stop when they are collected."""
    monkeypatch.delenv(verl.ENV_VAR, raising=False)
    verl._scorer.cache_clear()
    yield
    verl._scorer.cache_clear()
    gc.collect()


@pytest.mark.parametrize(
    "solution, truth, status, score",
    [
        ("... so the answer is 72", "72", Status.CORRECT, 1.0),
        ("#### 71", "72", Status.WRONG, 0.0),
        ("I do not know", "72", Status.NO_ANSWER, 0.0),
        ("\\boxed{72}", "", Status.ERROR, 0.0),  # a bad gold is the verifier failing: counted as error
    ],
)
def test_the_result_is_a_score_with_one_status_flag_set(solution, truth, status, score):
    result = compute_score("openai/gsm8k", solution, truth, {"index": 3}, workers=0, max_failure_rate=None)
    assert result["score"] == score and result["acc"] == float(status is Status.CORRECT)
    assert {k for k, v in result.items() if k in STATUS_KEYS and v == 1.0} == {f"rlvr_{status.value}"}
    assert set(result) == {"score", "acc"} | STATUS_KEYS


@pytest.mark.parametrize(
    "env, spec, status",
    [
        (None, None, Status.CORRECT),  # default: math
        ("math:require_marker=true", None, Status.NO_ANSWER),  # a bare "72" has no answer marker
        ("math:require_marker=true", "math", Status.CORRECT),  # the argument wins over the variable
    ],
)
def test_the_spec_comes_from_the_argument_or_the_environment(monkeypatch, env, spec, status):
    if env is not None:
        monkeypatch.setenv(verl.ENV_VAR, env)
    result = compute_score("gsm8k", "72", "72", spec=spec, workers=0)
    assert result[f"rlvr_{status.value}"] == 1.0


def test_verl_keywords_for_its_own_reward_models_are_accepted():
    result = compute_score("gsm8k", "\\boxed{5}", 5, None, workers=0, reward_router_address=None, model_name="x")
    assert result["score"] == 1.0


def test_compute_score_runs_in_worker_processes_from_a_thread_that_is_not_main():
    seen = {}

    def call() -> None:
        seen["main"] = threading.current_thread() is threading.main_thread()
        seen["result"] = compute_score("gsm8k", "so \\boxed{12}", "12", None, workers=1, timeout=30)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(120)
    assert not thread.is_alive() and seen["main"] is False
    assert seen["result"]["rlvr_correct"] == 1.0
    scorer = scorer_for("math", 1, 30, 0.05)
    assert scorer.workers == 1 and len(scorer._runner.worker_pids()) == 1  # a real pool, started off the main thread


def test_concurrent_calls_share_one_runner_and_keep_their_own_results():
    cases = [(f"\\boxed{{{n}}}", str(n if n % 3 else n + 1)) for n in range(24)]  # every third is wrong
    with ThreadPoolExecutor(8) as pool:  # verl's reward loop: run_in_executor on a thread pool
        results = list(pool.map(lambda c: compute_score("gsm8k", c[0], c[1], workers=2, timeout=30), cases))
    assert [r["acc"] for r in results] == [float(n % 3 != 0) for n in range(24)]
    scorer = scorer_for("math", 2, 30, 0.05)
    assert scorer.totals.n == 24 and len(scorer._runner.worker_pids()) == 2


def test_the_batch_form_scores_in_order():
    results = compute_score_batch(
        ["gsm8k", "math"], ["\\boxed{1}", "\\boxed{\\frac{1}{2}}"], ["1", "0.5"], [None, {"index": 1}], workers=0
    )
    assert [r["acc"] for r in results] == [1.0, 1.0]


def test_too_many_failures_in_a_window_raise(monkeypatch):
    monkeypatch.setattr(verl, "GUARD_EVERY", 8)
    for _ in range(7):  # the window is not full yet: failures are counted, not judged
        assert compute_score("gsm8k", "\\boxed{1}", "", workers=0)["rlvr_error"] == 1.0
    with pytest.raises(VerifierFailureRate, match="8 of 8 verdicts failed"):
        compute_score("gsm8k", "\\boxed{1}", "", workers=0)
    assert scorer_for("math", 0, 5.0, 0.05).totals.counts["error"] == 8


def test_it_loads_the_way_verl_loads_a_custom_reward_file():
    """verl imports `custom_reward_function.path` by file location, under a module name of its own."""
    spec = importlib.util.spec_from_file_location("custom_module", verl.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.compute_score("gsm8k", "The answer is 9", "9", {"question": "3*3?"}, workers=0)
    assert result["rlvr_correct"] == 1.0
