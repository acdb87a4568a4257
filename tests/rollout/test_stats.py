"""A step's completion metrics: truncation counts every cut completion, cut_off_rate only those cut before any
answer (the truncation that loses a verdict)."""

from __future__ import annotations

import pytest

from rlvr.rollout.stats import rollout_metrics
from rlvr.types import Rollout, Score, Status


def _rollout(finish: str) -> Rollout:
    return Rollout(0, "t", (5, 6), (-1.0, -1.0), finish, (1, 2))


@pytest.mark.parametrize(
    "steps, truncation, cut_off",
    [
        ([("length", Status.CORRECT), ("length", Status.WRONG)], 1.0, 0.0),  # cut after stating an answer
        ([("length", Status.NO_ANSWER), ("stop", Status.NO_ANSWER)], 0.5, 0.5),
        ([("stop", Status.NO_ANSWER), ("stop", Status.CORRECT)], 0.0, 0.0),
    ],
)
def test_cut_off_counts_only_truncations_without_an_answer(steps, truncation, cut_off):
    rollouts = [_rollout(finish) for finish, _ in steps]
    scores = [Score(1.0 if status is Status.CORRECT else 0.0, status, {}) for _, status in steps]
    metrics = rollout_metrics(scores, rollouts)
    assert (metrics["truncation_rate"], metrics["cut_off_rate"]) == (truncation, cut_off)
