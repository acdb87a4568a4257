"""The trainer's held-out eval: `rlvr eval`'s own run (template, extraction, verifier) with the settings that
`rlvr eval` takes to reproduce it, recorded beside the result."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlvr.config import TrainConfig
from rlvr.types import Example

__all__ = ["held_out_eval"]


def held_out_eval(
    engine: Any,
    examples: Sequence[Example],
    verifier: Any,
    config: TrainConfig,
    *,
    step: int,
    env: Any = None,
    output_dir: Path | None = None,
) -> dict[str, Any]:
    """Accuracy of what `engine` serves on `examples`, with `env` (None: no tool), as `rlvr eval` would score
    it; the summary carries the `eval_command` that reproduces it."""
    from rlvr.eval.run import run_eval
    from rlvr.eval.spec import EvalSpec, engine_dtype

    # the settings `rlvr eval` takes to reproduce it: built by the same function, recorded with the result
    spec = EvalSpec.from_train_config(
        config,
        engine=getattr(engine, "kind", "auto"),
        dtype=engine_dtype(engine),
        max_model_len=getattr(engine, "max_model_len", None),
        env=config.env.name if env is not None else None,
    )
    return run_eval(
        engine,
        examples,
        verifier,
        sampling=spec.sampling(),
        style=spec.style,
        instruction=spec.instruction,
        samples=spec.samples,
        run_info={**spec.settings(), "eval_command": spec.to_command()},
        output_dir=output_dir,
        progress=False,
        workers=config.reward.workers,
        timeout=config.reward.timeout,
        max_failure_rate=None,
        name=f"step {step}",
        env=env,
    )
