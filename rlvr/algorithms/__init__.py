"""The training algorithms, one file each, in one table: `rlvr train --algorithm NAME`.

An algorithm declares what it needs in a `DataPlan` made from the config alone (base.py), makes a
step's batch from the loop's shared pieces (a `TrainContext`, context.py: the prompt stream, `collect`
= generate → verify, sampling, the tokenizer) and trains on it through the policy's typed interface
(a `Learner`, rlvr.learner.protocol) with an objective of rlvr.objectives. The loop
(rlvr.train.trainer) does everything else the same way for all of them.

Adding one: copy rft.py (the smallest algorithm that samples; sft.py for one that trains on fixed
rows) to rlvr/algorithms/NAME.py, change its `make_plan`, `make_step` and `learn`, and add one line
`"NAME": "rlvr.algorithms.NAME:Class"` to ALGORITHMS in rlvr/names.py, the one table of names that the
CLI's --algorithm choices and the config's allowed values read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlvr import names
from rlvr.errors import InputError

if TYPE_CHECKING:  # the table stays cheap to import (the CLI's --algorithm choices read it)
    from rlvr.algorithms.base import Algorithm
    from rlvr.config import TrainConfig

__all__ = ["ALGORITHMS", "create_algorithm"]

#: name -> "module:class", imported on use; the table lives in rlvr.names (add an algorithm there)
ALGORITHMS: dict[str, str] = names.ALGORITHMS


def create_algorithm(name: str, config: TrainConfig) -> Algorithm[object]:
    if name not in ALGORITHMS:
        raise InputError(f"--algorithm {name!r}: choose one of {', '.join(ALGORITHMS)}")
    algorithm: Algorithm[object] = names.load(ALGORITHMS, name)(config)
    return algorithm
