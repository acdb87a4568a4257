"""rlvr: reinforcement learning from verifiable rewards (GRPO trainer, verifiers, sandboxes, eval)."""

from rlvr.types import Example, Rollout, Score, Status

__version__ = "0.1.0"
__all__ = ["Example", "Rollout", "Score", "Status", "__version__"]
