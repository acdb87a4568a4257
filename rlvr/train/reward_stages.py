"""The reward's build stages: the verifier a run names, the audit of known hacks through it, the runner that scores."""

from __future__ import annotations

import logging
from typing import Any

from rlvr.config import TrainConfig
from rlvr.errors import InputError

__all__ = ["audit_reward", "build_runner", "build_verifier"]

log = logging.getLogger("rlvr.train.stages")


def build_verifier(config: TrainConfig, key: str = "verifier") -> Any:
    """The reward named by reward.verifier (key "cross_check": the second grader); a bad spec is an InputError
    naming the flag. A judge term left at engine=auto is set to generate on rollout.engine."""
    from rlvr.rollout.base import resolve_kind
    from rlvr.verifiers.base import Weighted
    from rlvr.verifiers.registry import build_verifier as build

    spec = getattr(config.reward, key)
    try:
        verifier = build(spec)
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{'--verifier' if key == 'verifier' else 'reward.' + key} {spec!r}: {err}") from None
    parts = verifier.parts if isinstance(verifier, Weighted) else ((1.0, verifier),)
    for _, part in parts:  # an LLM judge with engine=auto generates on the run's engine
        if hasattr(part, "follow_engine"):
            part.follow_engine(resolve_kind(config.rollout.engine))
    return verifier


def audit_reward(config: TrainConfig, verifier: Any) -> Any:
    """The shipped suite of known reward hacks through this run's verifier: one line, a warning listing
    what earns reward, and a refusal to start under reward.strict_audit. None when reward.audit is off."""
    if not config.reward.audit:
        return None
    from rlvr.verifiers.audit import run_audit

    report = run_audit(verifier, workers=0)
    log.info("%s", report.line())
    if report.rewarded:
        log.warning("the reward %r pays for known hacks:\n%s", config.reward.verifier, report.details())
        if config.reward.strict_audit:
            raise InputError(f"--strict-audit: {report.line()} with --verifier {config.reward.verifier!r}")
    return report


def build_runner(verifier: Any, config: TrainConfig) -> Any:
    """A reward-model term scores in this process, batched; rule-based terms in the worker pool. With
    reward.cross_check, a sample of each batch is also scored by the second grader (SampledCrossCheck)."""
    from rlvr.verifiers.cross_check import SampledCrossCheck
    from rlvr.verifiers.scoring import runner_for

    options = {"workers": config.reward.workers, "timeout": config.reward.timeout}
    runner = runner_for(verifier, max_failure_rate=config.reward.max_failure_rate, **options)
    if config.reward.cross_check is None:
        return runner
    reference = runner_for(build_verifier(config, "cross_check"), max_failure_rate=None, **options)
    return SampledCrossCheck(runner, reference, config.reward.cross_check_samples, seed=config.seed)
