"""The `verifier_disagreement` alarm (a row of rlvr.train.alarms.ALARMS): with reward.cross_check, the second
grader suddenly disagrees with the reward far more than it did, the sign of a policy drifting into text the
verifier misjudges."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["verifier_disagreement"]

#: the alarm fires when a step's rate is at least this far above the earlier steps' mean rate ...
JUMP = 0.2
#: ... and at least this many times it, once this many earlier steps were measured
RATIO, EARLIER = 2.0, 3


def verifier_disagreement(m: dict, s: Any) -> str | None:
    """This step's `verifier_disagreement_rate` against the mean of the earlier steps' rates (kept in the
    AlarmState `s` as `disagreement` = (sum, steps), saved in checkpoints); this step's rate then joins the
    mean. At 16 samples a step, a steady 10% rate reaches the threshold by chance in about 2% of steps."""
    rate = m.get("verifier_disagreement_rate")
    if rate is None or math.isnan(rate):
        return None
    total, steps = s.disagreement
    baseline = total / steps if steps else 0.0
    s.disagreement = (total + rate, steps + 1)
    if steps < EARLIER or rate < baseline + JUMP or rate < RATIO * baseline:
        return None
    return (
        f"the second grader (reward.cross_check) disagrees with the reward on {rate:.0%} of sampled "
        f"completions, up from {baseline:.0%} on average: the policy may be drifting into text the verifier "
        "misjudges. Read this step's samples (`rlvr verify --cross-check SPEC` on them lists the rows)"
    )
