"""`reward.cross_check` in training: `SampledCrossCheck` scores a seeded sample of each batch with a second
grader and hands back the disagreement rate (the `agree` rule of `rlvr verify --cross-check`) as metrics."""

from __future__ import annotations

import pytest
from test_cross_check import ROWS

from rlvr.types import Example, Score, Status
from rlvr.verifiers.cross_check import SampledCrossCheck
from rlvr.verifiers.registry import build_verifier
from rlvr.verifiers.runner import Runner

COMPLETIONS = [c for _, c, *_ in ROWS]
EXAMPLES = [Example(id=i, prompt="", answer=g) for i, _, g, *_ in ROWS]
#: ROWS says where ours and raw math-verify's verdicts differ
DISAGREE = sum((ours >= 0.5) != (theirs >= 0.5) for *_, ours, theirs in ROWS)


class Failing:
    """A second grader whose every verdict errors."""

    def start(self) -> None: ...

    def close(self) -> None: ...

    def score(self, completions, examples):
        return [Score(0.0, Status.ERROR, {})] * len(completions)


def checked(samples: int, reference=None, *, seed: int = 0) -> SampledCrossCheck:
    ours = Runner(build_verifier("math"), workers=0)
    theirs = reference or Runner(build_verifier("math_verify"), workers=0)
    return SampledCrossCheck(ours, theirs, samples, seed=seed)


@pytest.mark.parametrize(
    "samples, expected",
    [
        (len(ROWS), {"cross_checked": len(ROWS), "verifier_disagreement_rate": DISAGREE / len(ROWS)}),
        (100, {"cross_checked": len(ROWS), "verifier_disagreement_rate": DISAGREE / len(ROWS)}),
        (2, {"cross_checked": 2}),
    ],
)
def test_a_sample_of_each_batch_is_graded_twice(samples: int, expected: dict) -> None:
    with checked(samples) as runner:
        scores = runner.score(COMPLETIONS, EXAMPLES)
        metrics = runner.take()
    assert [s.reward for s in scores] == [ours for *_, ours, _ in ROWS]  # the reward is the main grader's alone
    assert metrics == {**metrics, **expected, "cross_check_failures": 0}
    assert 0 <= metrics["verifier_disagreement_rate"] <= 1
    assert runner.take() == {"cross_checked": 0, "cross_check_failures": 0}  # taken: reset, no rate


def test_the_sample_is_seeded_and_differs_between_batches() -> None:
    def sampled(seed: int) -> list[list[int]]:
        picks: list[list[int]] = []

        class Recorder(Failing):
            def score(self, completions, examples):
                picks.append([COMPLETIONS.index(c) for c in completions])
                return super().score(completions, examples)

        with checked(2, Recorder(), seed=seed) as runner:
            for _ in range(6):
                runner.score(COMPLETIONS, EXAMPLES)
        return picks

    assert sampled(3) == sampled(3)
    assert len({tuple(p) for p in sampled(3)}) > 1


def test_a_failing_second_grader_is_counted_never_a_disagreement() -> None:
    with checked(len(ROWS), Failing()) as runner:
        runner.score(COMPLETIONS, EXAMPLES)
        assert runner.take() == {"cross_checked": 0, "cross_check_failures": len(ROWS)}


def test_the_main_runners_attributes_show_through() -> None:
    runner = checked(4)
    assert runner.timeout == runner.runner.timeout and runner.workers == 0
