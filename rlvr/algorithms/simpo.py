"""Simple Preference Optimization (SimPO, Meng et al. 2024): CPO's step with the length-normalized
"simpo" pair loss and its target margin gamma, no reference model, and by default no NLL term; options
in the config's `simpo` section."""

from __future__ import annotations

from rlvr.algorithms.cpo import CPO

__all__ = ["SimPO"]


class SimPO(CPO):
    name = "simpo"

    def pair_loss_type(self) -> str:
        return "simpo"
