"""The verifier_disagreement alarm: fires when reward.cross_check's disagreement rate jumps well above the
mean of the earlier steps' rates, and not on a steady, a slowly rising or an unmeasured rate."""

from __future__ import annotations

import dataclasses

import pytest

from rlvr.train.alarms import AlarmState, check_alarms

NAME = "verifier_disagreement"


@pytest.mark.parametrize(
    "rates, fires_at",
    [
        ([0.1, 0.1, 0.1, 0.5], [3]),  # a jump after a steady baseline
        ([0.0, 0.0, 0.0, 0.25], [3]),  # from nothing
        ([0.0, 0.0, 0.0, 0.19], []),  # under the 0.2 margin
        ([0.3, 0.3, 0.3, 0.55], []),  # 0.25 above, but under twice the baseline
        ([0.0, 0.0, 0.6], []),  # fewer than 3 earlier steps: no baseline yet
        ([0.05, 0.1, 0.15, 0.2, 0.25, 0.3], []),  # a slow drift: each step near the mean so far
        ([0.1, 0.1, 0.1, None, 0.5], [4]),  # a step without a rate neither fires nor counts
        ([0.1, 0.1, 0.1, 0.6, 0.6], [3, 4]),  # a lasting jump keeps firing while the mean catches up
    ],
)
def test_the_alarm_fires_on_a_jump_only(rates: list, fires_at: list[int]) -> None:
    state = AlarmState()
    fired = [
        NAME in check_alarms({"reward_mean": 0.5, **({} if r is None else {"verifier_disagreement_rate": r})}, state)
        for r in rates
    ]
    assert [i for i, f in enumerate(fired) if f] == fires_at


def test_its_advice_names_a_change_and_its_state_survives_a_checkpoint() -> None:
    state = AlarmState()
    for rate in (0.1, 0.1, 0.1):
        check_alarms({"verifier_disagreement_rate": rate}, state)
    resumed = AlarmState()
    resumed.__dict__.update(dataclasses.asdict(state))  # as the trainer restores it
    message = check_alarms({"verifier_disagreement_rate": 0.5}, resumed)[NAME]
    assert "50%" in message and "10%" in message
    # advice computed from the run's settings (here GRPO's defaults): half the lr, a KL term; never the current value
    assert "try optimizer.lr=" in message and "grpo.beta=0.04" in message
