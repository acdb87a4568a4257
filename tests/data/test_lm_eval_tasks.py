"""The stock lm-eval tasks' own metrics, reproduced: gsm8k strict-match / flexible-extract, minerva math_verify."""

from __future__ import annotations

import pytest

from rlvr.data.lm_eval_tasks import Beside, LmEvalMetrics, gsm8k_shots, task_for
from rlvr.types import Example, Status
from rlvr.verifiers import build_verifier

GSM8K = Example(
    "gsm8k/test/0", "q", "18", {"benchmark": "gsm8k", "solution": "16 - 3 - 4 = 9 eggs, 9 * 2 = 18.\n#### 18"}
)
MATH = Example("math/0", "p", "\\frac12", {"benchmark": "math", "solution": "So it is $\\boxed{\\frac12}$."})

# completion → (strict-match answer, right?, flexible-extract answer, right?), checked by hand against
# the task's regexes: strict takes the first "#### N", flexible the LAST number-like run; both then drop
# ",", "$", a final "." and everything up to "#### " before an exact, case-blind comparison.
GSM8K_CASES = [
    ("So she makes 18 dollars.\n#### 18", "18", True, "18", True),
    ("The answer is $18.", "[invalid]", False, "$18.", True),  # "$" and the final "." are ignored
    ("#### 18.00", "18.00", False, "18.00", False),  # exact match: 18.00 is not 18
    ("It costs 18 dollars, then 3 more: 21", "[invalid]", False, "21", False),  # the last number wins
    ("#### 18 and #### 19", "18", True, "19", False),
    ("", "[invalid]", False, "[invalid]", False),
    ("#### -18", "-18", False, "-18", False),
    ("She pays $1,018.", "[invalid]", False, "$1,018.", False),  # 1018 after the ignores
]


@pytest.mark.parametrize("completion, strict, strict_ok, flexible, flexible_ok", GSM8K_CASES)
def test_gsm8k_strict_and_flexible(completion, strict, strict_ok, flexible, flexible_ok):
    metrics = task_for(GSM8K).metrics(completion, GSM8K)
    assert metrics == {
        "strict-match": {"extracted": strict, "correct": strict_ok},
        "flexible-extract": {"extracted": flexible, "correct": flexible_ok},
    }


@pytest.mark.parametrize(
    "completion, extracted, right",
    [
        (
            "Thus x = 1/2.\nFinal Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.",
            "$\\frac{1}{2}$",
            True,
        ),
        ("So $\\boxed{0.5}$", "[invalidanswer]", True),  # math-verify reads the box; no "Final Answer" line
        ("Final Answer: The final answer is $3$. I hope it is correct.", "$3$", False),
        ("Final Answer: The final answer is $2$", "[invalidanswer]", False),  # needs ". I hope it is correct."
    ],
)
def test_minerva_math_verify(completion, extracted, right):
    assert task_for(MATH).metrics(completion, MATH) == {"math_verify": {"extracted": extracted, "correct": right}}


def test_beside_keeps_the_verdict_and_adds_the_stock_metrics():
    verifier = Beside(build_verifier("math"), LmEvalMetrics())
    assert verifier.name == "math" and verifier.needs_gold
    score = verifier.score("The answer is $18.", GSM8K)
    assert score.status is Status.CORRECT and score.details["extracted"] == "18"
    assert score.details["lm_eval"]["strict-match"]["correct"] is False
    assert score.details["lm_eval"]["flexible-extract"]["correct"] is True


def test_gsm8k_shots_depend_on_the_document_not_the_limit(data_dir):
    assert gsm8k_shots(5, str(data_dir)) == gsm8k_shots(5, str(data_dir))
    assert gsm8k_shots(0, str(data_dir)) != gsm8k_shots(1, str(data_dir))
    assert len({q for q, _ in gsm8k_shots(3000, str(data_dir))}) == 5  # beyond the cached table, still 5 distinct
