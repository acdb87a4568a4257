"""Generate → verify, written once: n completions per example from an engine, each scored by the runner.

Training (GRPO, RFT, DPO), `rlvr eval` and best-of-N all call `sample_and_score`; what they do with the
scored groups differs, how the groups are made does not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rlvr.types import Example, Rollout, Score

__all__ = ["Collected", "sample_and_score"]


@dataclass
class Collected:
    """G examples × n completions, prompt-major: completion j of example g is at index g * n + j."""

    examples: list[Example]
    prompts: list[str]
    rollouts: list[Rollout]
    scores: list[Score]
    n: int
    generate_s: float = 0.0
    verify_s: float = 0.0
    tool_s: float = 0.0  # with an environment: seconds in tool calls (not part of generate_s)

    def rewards(self) -> list[list[float]]:
        """[G][n] rewards, as the verifier gave them."""
        flat = [s.reward for s in self.scores]
        return [flat[g * self.n : (g + 1) * self.n] for g in range(len(self.examples))]

    def group(self, g: int) -> list[tuple[Rollout, Score]]:
        """Example g's n (rollout, score) pairs, in sample order."""
        span = slice(g * self.n, (g + 1) * self.n)
        return list(zip(self.rollouts[span], self.scores[span], strict=True))


def sample_and_score(
    engine: Any,
    runner: Any,
    examples: Sequence[Example],
    n: int,
    sampling: Any,
    template: Callable[[Example], str],
    env: Any = None,
) -> Collected:
    """Render each example with `template`, generate `n` completions per prompt with `sampling`, and
    score every completion against its own example through `runner` (a `rlvr.verifiers.runner.Runner`).
    With an environment (`env`, rlvr.environments) each completion is a multi-turn trajectory
    (rlvr.rollout.multiturn): the verifier scores `Rollout.text`, the model's own text only, so a
    tool's output never reaches the reward; nothing of the example but its prompt reaches the tool."""
    examples = list(examples)
    prompts = [template(e) for e in examples]
    started = time.perf_counter()
    timings: dict[str, float] = {}
    if env is None:
        rollouts = engine.generate(prompts, n, sampling) if examples else []
    else:
        rollouts = _multiturn(engine, env, prompts, n, sampling, timings) if examples else []
    generated = time.perf_counter()
    if len(rollouts) != len(examples) * n:
        raise RuntimeError(
            f"engine {getattr(engine, 'kind', engine)!r} returned {len(rollouts)} rollouts "
            f"for {len(examples)} prompts × {n}"
        )
    scores = runner.score([r.text for r in rollouts], [examples[r.prompt_index] for r in rollouts]) if rollouts else []
    return Collected(
        examples,
        prompts,
        list(rollouts),
        list(scores),
        n,
        generate_s=generated - started - timings.get("tool_s", 0.0),
        verify_s=time.perf_counter() - generated,
        tool_s=timings.get("tool_s", 0.0),
    )


def _multiturn(engine: Any, env: Any, prompts: list[str], n: int, sampling: Any, timings: dict) -> list[Rollout]:
    from rlvr.rollout.multiturn import generate_multiturn

    tokenizer = engine.tokenizer
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]  # as Engine.generate encodes text
    return generate_multiturn(engine, env, ids, n, sampling, timings=timings)
