"""rlvr's verifiers as verl's custom reward function: in verl's config,
`custom_reward_function.path=<this file>` and `custom_reward_function.name=compute_score` (or
`compute_score_batch` with verl's batch reward manager), the verifier spec in the environment variable
`RLVR_VERIFIER` (default "math") or in `custom_reward_function.reward_kwargs.spec`.

verl calls it once per completion, from its reward loop's thread pool or a Ray worker, so nothing here
uses signals: the deadlines are the runner's worker processes', which stay up between calls (one
runner per process and settings) and score concurrent calls together. The failure-rate check runs on
every `GUARD_EVERY` verdicts."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from rlvr.integrations.scorer import Scorer
from rlvr.types import Example, Score, Status
from rlvr.verifiers.math.gold import gold_text

__all__ = ["DEFAULT_SPEC", "ENV_VAR", "GUARD_EVERY", "compute_score", "compute_score_batch", "scorer_for"]

ENV_VAR = "RLVR_VERIFIER"
DEFAULT_SPEC = "math"
#: verdicts per failure-rate check (verl hands over one completion at a time, not a batch)
GUARD_EVERY = 64

#: held while a scorer is looked up or built, so threads arriving together share one runner
_BUILDING = threading.Lock()


def compute_score(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    spec: str | None = None,
    workers: int | None = None,
    timeout: float | None = 5.0,
    max_failure_rate: float | None = 0.05,
    **verl_keywords: Any,
) -> dict[str, float]:
    """verl's `compute_score(data_source, solution_str, ground_truth, extra_info)`. Returns
    `{"score": reward, "acc": 1.0 if correct, "rlvr_<status>": 1.0 for its status, 0.0 for the
    others}`: verl puts the keys beside `score` into its reward extra info, so a run's status counts
    are their sums. A verdict that timed out or failed scores 0.0 with `rlvr_timeout`/`rlvr_error`
    set, and too many of them raise `VerifierFailureRate`. Keywords verl adds for its own reward
    models (`reward_router_address`, ...) are accepted and not used."""
    [result] = compute_score_batch(
        [data_source],
        [solution_str],
        [ground_truth],
        [extra_info],
        spec=spec,
        workers=workers,
        timeout=timeout,
        max_failure_rate=max_failure_rate,
    )
    return result


def compute_score_batch(
    data_sources: Sequence[Any],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
    *,
    spec: str | None = None,
    workers: int | None = None,
    timeout: float | None = 5.0,
    max_failure_rate: float | None = 0.05,
    **verl_keywords: Any,
) -> list[dict[str, float]]:
    """verl's batch reward manager's `compute_score(data_sources=, solution_strs=, ground_truths=,
    extra_infos=)`: `compute_score`'s result for each item."""
    extras = list(extra_infos) if extra_infos is not None else [None] * len(solution_strs)
    examples = [
        _example(i, source, truth, extra)
        for i, (source, truth, extra) in enumerate(zip(data_sources, ground_truths, extras, strict=True))
    ]
    scorer = scorer_for(spec or os.environ.get(ENV_VAR) or DEFAULT_SPEC, workers, timeout, max_failure_rate)
    return [_result(s) for s in scorer.score([s or "" for s in solution_strs], examples)]


def scorer_for(spec: str, workers: int | None, timeout: float | None, max_failure_rate: float | None) -> Scorer:
    """This process's scorer for these settings (its runner's workers outlive each call)."""
    with _BUILDING:
        return _scorer(spec, workers, timeout, max_failure_rate)


@functools.cache
def _scorer(spec: str, workers: int | None, timeout: float | None, max_failure_rate: float | None) -> Scorer:
    return Scorer(spec, workers=workers, timeout=timeout, max_failure_rate=max_failure_rate, guard_every=GUARD_EVERY)


def _example(index: int, data_source: Any, ground_truth: Any, extra_info: Mapping[str, Any] | None) -> Example:
    """The gold is `ground_truth`; `extra_info` (verl's per-row dict: test cases, the question) and the
    data source go into the metadata."""
    metadata = {**(extra_info or {}), "data_source": data_source}
    prompt = str(metadata.get("question") or metadata.get("prompt") or "")
    return Example(str(metadata.get("index", index)), prompt, gold_text(ground_truth), metadata)


def _result(score: Score) -> dict[str, float]:
    statuses = {f"rlvr_{s.value}": float(score.status is s) for s in Status}
    return {"score": float(score.reward), "acc": float(score.status is Status.CORRECT), **statuses}
