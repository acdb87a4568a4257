"""The `reasoning_gym` verifier: the task's own score_answer on the extracted answer, every failure a status,
through the runner's deadlines and the audit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from rlvr.cli import main
from rlvr.types import Example, Status
from rlvr.verifiers import reasoning_gym as rg
from rlvr.verifiers.audit import run_audit
from rlvr.verifiers.audit_suite import REASONING_GYM
from rlvr.verifiers.registry import build_verifier
from rlvr.verifiers.runner import Runner


@pytest.fixture(autouse=True)
def _library():
    from conftest import need

    need("reasoning_gym", rg.library_installed(), "pip install 'rlvr[reasoning-gym]'")


SUM = {"question": "Calculate 3 + 4.", "answer": "7", "metadata": {}}
CHAIN = {"question": "State the final answer: 189 - 887 =", "answer": "-698", "metadata": {}}
COUNTDOWN = {
    "question": "Using all the numbers 35, 90, 58, create an expression that equals 67.",
    "answer": "90 - 58 + 35",
    "metadata": {"numbers": [35, 90, 58], "target": 67},
}
BACKWARD = {"question": "Spell this word backward: rinch", "answer": "hcnir", "metadata": {}}


def example(task: str, entry: dict, config: dict | None = None) -> Example:
    record = {"task": task, "config": config or {}, "entry": entry}
    return Example(f"{task}/0", entry["question"], entry["answer"], {rg.FIELD: record})


@pytest.mark.parametrize(
    "task, entry, completion, status, extracted",
    [
        ("basic_arithmetic", SUM, "<think>3+4</think><answer>7</answer>", Status.CORRECT, "7"),
        ("basic_arithmetic", SUM, "So the answer is $\\boxed{7}$.", Status.CORRECT, "7"),
        ("basic_arithmetic", SUM, "The answer is 7.", Status.CORRECT, "7"),
        ("basic_arithmetic", SUM, "#### 7", Status.CORRECT, "7"),
        ("basic_arithmetic", SUM, "<answer>8</answer> wait, no: <answer>7</answer>", Status.CORRECT, "7"),
        ("basic_arithmetic", SUM, "<answer>7</answer> and \\boxed{8}", Status.CORRECT, "7"),  # its own tag wins
        ("basic_arithmetic", SUM, "<answer>8</answer>", Status.WRONG, "8"),
        ("basic_arithmetic", SUM, "3 + 4 makes 7", Status.NO_ANSWER, None),  # no last-number guessing
        ("basic_arithmetic", SUM, "", Status.NO_ANSWER, None),
        ("basic_arithmetic", SUM, "<answer>  </answer>", Status.NO_ANSWER, None),
        ("basic_arithmetic", SUM, "<answer>7</answer><answer>8</answer>", Status.HEDGED, "8"),
        ("chain_sum", CHAIN, "\\boxed{-698}", Status.CORRECT, "-698"),
        ("chain_sum", CHAIN, "<answer>-698.00</answer>", Status.CORRECT, "-698.00"),  # the task's own tolerance
        ("chain_sum", CHAIN, "<answer>698</answer>", Status.WRONG, "698"),
        ("countdown", COUNTDOWN, "<answer>35 + 90 - 58</answer>", Status.CORRECT, "35 + 90 - 58"),  # any solution
        ("countdown", COUNTDOWN, "<answer>67</answer>", Status.WRONG, "67"),
        ("spell_backward", BACKWARD, "\\boxed{\\text{hcnir}}", Status.CORRECT, "hcnir"),
        ("spell_backward", BACKWARD, "<answer>HCNIR</answer>", Status.CORRECT, "HCNIR"),
        ("spell_backward", BACKWARD, "<answer>hcnirr</answer>", Status.WRONG, "hcnirr"),
    ],
)
def test_the_tasks_own_score_answer_judges_the_extracted_answer(task, entry, completion, status, extracted):
    score = build_verifier("reasoning_gym").score(completion, example(task, entry))
    assert (score.status, score.details["extracted"]) == (status, extracted), score
    assert score.reward == (1.0 if status is Status.CORRECT else 0.0)
    assert score.details["task"] == task


@pytest.mark.parametrize(
    "completion, partial_reward",
    [("<answer>7</answer>", 1.0), ("<answer>77</answer>", 0.5), ("<answer>8</answer>", 0.0), ("", 0.0)],
)
def test_partial_passes_the_tasks_graded_score_and_the_default_does_not(completion, partial_reward):
    graded = build_verifier("reasoning_gym:partial=true").score(completion, example("basic_arithmetic", SUM))
    binary = build_verifier("reasoning_gym").score(completion, example("basic_arithmetic", SUM))
    assert graded.reward == pytest.approx(partial_reward)
    assert binary.reward == float(partial_reward == 1.0) and binary.status is graded.status


class FakeTask:
    def __init__(self, result):
        self.result = result

    def score_answer(self, answer, entry):
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.mark.parametrize(
    "result, says",
    [
        (RuntimeError("boom"), "score_answer raised: RuntimeError: boom"),
        (KeyError("numbers"), "score_answer raised: KeyError: 'numbers'"),
        (1.5, "returned 1.5, not a score in [0, 1]"),
        (math.nan, "returned nan"),
        (None, "returned None"),
        (True, "returned True"),
    ],
)
def test_a_failing_or_strange_score_answer_is_an_error_never_a_silent_zero(monkeypatch, result, says):
    monkeypatch.setattr(rg, "build_dataset", lambda task, options: FakeTask(result))
    score = build_verifier("reasoning_gym").score("<answer>7</answer>", example("basic_arithmetic", SUM))
    assert score.status is Status.ERROR and says in score.details["error"], score


@pytest.mark.parametrize(
    "metadata, says",
    [
        ({}, "no 'reasoning_gym' field"),
        ({rg.FIELD: {"task": "basic_arithmetic", "entry": "7"}}, "needs a task name, a config dict and an entry"),
        ({rg.FIELD: "{not json"}, "bad gold"),
        ({rg.FIELD: {"task": "no_such_task", "config": {}, "entry": SUM}}, "unknown reasoning-gym task 'no_such_task'"),
    ],
)
def test_a_row_it_cannot_read_is_an_error(metadata, says):
    score = build_verifier("reasoning_gym").score("<answer>7</answer>", Example("x", "q", "7", metadata))
    assert score.status is Status.ERROR and says in json.dumps(score.details), score


def test_the_record_may_arrive_as_json_text():
    record = json.dumps({"task": "basic_arithmetic", "config": {}, "entry": SUM})
    score = build_verifier("reasoning_gym").score("\\boxed{7}", Example("x", "q", "7", {rg.FIELD: record}))
    assert score.status is Status.CORRECT


@pytest.mark.slow  # a worker process, a deadline and its restart: ~13 s on 2 loaded cores
def test_the_runner_scores_it_in_workers_and_its_deadline_stops_a_hanging_task():
    """countdown's score_answer evaluates the answer with sympy: a tower of powers never finishes, and the
    runner's deadline turns it into a timeout (a failure, counted), not a reward."""
    items = [
        ("<answer>90 - 58 + 35</answer>", example("countdown", COUNTDOWN)),
        ("<answer>90**90**90**90 - 58 + 35</answer>", example("countdown", COUNTDOWN)),
        ("<answer>8</answer>", example("basic_arithmetic", SUM)),
    ]
    with Runner(build_verifier("reasoning_gym"), workers=1, timeout=2.0, max_failure_rate=None) as runner:
        scores = runner.score([c for c, _ in items], [e for _, e in items])
    assert [s.status for s in scores] == [Status.CORRECT, Status.TIMEOUT, Status.WRONG]


@pytest.mark.parametrize(
    "spec, rewarded",
    [
        ("reasoning_gym", set()),
        # the tasks' graded scores pay a little for answers that merely contain the gold or are well formed
        (
            "reasoning_gym:partial=true",
            {"or_inside_tag", "gold_inside_longer", "gold_in_sentence", "countdown_target_only"},
        ),
    ],
)
def test_the_audit_runs_its_cases_through_the_verifier(spec, rewarded):
    report = run_audit(spec, plugins=False)
    assert report.total == len(REASONING_GYM)  # the suite's other cases are for other verifiers
    assert rewarded <= {c.name.split("/", 1)[1] for c in report.rewarded}
    assert bool(report.rewarded) == bool(rewarded)
    assert {s.status for s in report.scores.values()} <= {Status.WRONG, Status.NO_ANSWER, Status.HEDGED}


def test_rlvr_verify_audits_and_scores_rows_with_it(tmp_path: Path):
    result = CliRunner().invoke(main, ["verify", "--audit", "reasoning_gym"])
    assert result.exit_code == 0 and f"audit: 0/{len(REASONING_GYM)} known hacks rewarded" in result.output
    rows = [
        {"id": "a", "completion": "\\boxed{7}", "reasoning_gym": {"task": "basic_arithmetic", "entry": SUM}},
        {"id": "b", "completion": "no idea", "reasoning_gym": {"task": "basic_arithmetic", "entry": SUM}},
    ]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "scored.jsonl"
    result = CliRunner().invoke(
        main, ["verify", "--verifier", "reasoning_gym", "--input", str(source), "--output", str(out), "--workers", "0"]
    )
    assert result.exit_code == 0, result.output
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["status"] for r in scored] == ["correct", "no_answer"]
