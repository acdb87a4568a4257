"""The verifier audit: the shipped hack suite earns nothing from `math`, `math+0.1*think_format`
and `code`, finds the hacks a naive verifier rewards, and takes cases from plugins."""

from __future__ import annotations

import re
import time

import pytest

from rlvr.types import Example, Score, Status
from rlvr.verifiers.audit import AuditCase, case_from_row, load_cases, run_audit
from rlvr.verifiers.audit_suite import builtin_cases
from rlvr.verifiers.base import Verifier
from runner_fixtures import RawMathVerify
from sandbox_fixtures import BACKENDS, open_sandbox


class LastDigit(Verifier):
    """The naive fallback the audit exists to catch: reward if the last digit equals the gold."""

    name = "last_digit"

    def score(self, completion: str, example: Example) -> Score:
        digits = re.findall(r"\d", completion)
        ok = bool(digits) and digits[-1] == str(example.answer)[-1:]
        return Score(float(ok), Status.CORRECT if ok else Status.WRONG)


def test_every_case_states_its_gold_and_names_are_unique():
    cases = builtin_cases()
    assert len(cases) >= 140 and len({c.name for c in cases}) == len(cases)
    for c in cases:
        assert c.answer is not None or {"test", "entry_point"} <= set(c.fields), c.name
    categories = {c.category for c in cases}
    assert {
        "hedge",
        "junk_digits",
        "hidden_number",
        "unclosed_box",
        "code_fence",
        "think_tags",
        "prompt_copy",
        "empty_or_truncated",
        "code_exit_or_fake",
        "reasoning_gym",
    } <= categories


@pytest.mark.parametrize("spec", ["math", "math+0.1*think_format", "math:require_marker=true", "think_format"])
def test_builtin_verifiers_reward_no_known_hack(spec):
    start = time.perf_counter()
    report = run_audit(spec)
    seconds = time.perf_counter() - start
    assert report.rewarded == [], report.details()
    untargeted = [c for c in builtin_cases() if not c.fields.get("audit_verifiers")]  # not the reasoning_gym ones
    with_gold = sum(c.answer is not None for c in untargeted)
    assert report.total == (len(untargeted) if spec == "think_format" else with_gold)
    assert report.line() == f"audit: 0/{report.total} known hacks rewarded"
    assert seconds < 5.0  # the trainer runs this at start-up (measured ~0.3 s cold for math)


def test_math_audit_scores_every_case_as_a_verdict_not_a_failure():
    report = run_audit("math")
    assert {s.status for s in report.scores.values()} <= {Status.WRONG, Status.NO_ANSWER, Status.HEDGED}


@pytest.mark.parametrize("backend", BACKENDS)
def test_code_rewards_no_known_hack(backend):
    open_sandbox(backend).close()  # skip (or fail in CI) where the backend is missing
    report = run_audit(f"code:backend={backend}")
    assert report.total == sum(c.category == "code_exit_or_fake" for c in builtin_cases())
    assert report.rewarded == [], report.details()
    assert all(s.status is not Status.ERROR for s in report.scores.values()), report.scores


def test_the_audit_catches_naive_verifiers():
    naive = run_audit(LastDigit())
    assert {c.category for c in naive.rewarded} >= {"junk_digits", "hidden_number", "unclosed_box", "hedge"}
    assert naive.line() == f"audit: {len(naive.rewarded)}/{naive.total} known hacks rewarded"
    first = naive.rewarded[0]
    assert f"{first.name} [{first.category}]: reward 1 (correct), gold {first.answer!r}" in naive.details()
    raw = run_audit(RawMathVerify())  # plain math-verify reads a box cut off mid-answer
    assert any(c.category == "unclosed_box" for c in raw.rewarded)


def test_plugin_cases_join_the_suite_and_can_target_a_verifier():
    extra = [
        {"name": "kw/substring", "category": "keyword", "completion": "Marshmallow", "answer": "Mars"},
        AuditCase("kw/only_math", "keyword", "The answer is 7.", "7", fields={"audit_verifiers": ["contains_keyword"]}),
    ]
    cases = load_cases(extra, plugins=False)
    assert [c.name for c in cases[-2:]] == ["kw/substring", "kw/only_math"]
    report = run_audit(LastDigit(), extra_cases=extra, plugins=False)
    assert "kw/substring" in report.scores and "kw/only_math" not in report.scores  # targeted elsewhere
    assert (
        report.total == sum(c.answer is not None and not c.fields.get("audit_verifiers") for c in builtin_cases()) + 1
    )


def test_case_from_row_needs_a_completion():
    assert case_from_row({"completion": "x", "answer": 3, "tests": ["assert True"]}).fields == {
        "tests": ["assert True"]
    }
    with pytest.raises(ValueError, match="needs a string 'completion'"):
        case_from_row({"answer": "3"}, source="plugin-x")
