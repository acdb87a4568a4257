"""The training algorithms, one file each, in one table: `rlvr train --algorithm NAME`.

An algorithm makes a step's batch from the loop's shared pieces (the prompt stream, `collect` =
generate → verify, the policy's packing) and names the objective it trains (rlvr.objectives). The
loop (rlvr.train.trainer) does everything else the same way for all of them.
"""

from __future__ import annotations

from typing import Any

from rlvr import names
from rlvr.errors import InputError

__all__ = ["ALGORITHMS", "create_algorithm"]

#: name -> "module:class", imported on use; the table lives in rlvr.names (add an algorithm there)
ALGORITHMS: dict[str, str] = names.ALGORITHMS


def create_algorithm(name: str, config: Any) -> Any:
    if name not in ALGORITHMS:
        raise InputError(f"--algorithm {name!r}: choose one of {', '.join(ALGORITHMS)}")
    return names.load(ALGORITHMS, name)(config)
