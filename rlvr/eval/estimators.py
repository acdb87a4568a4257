"""Eval estimators: unbiased pass@k, majority vote maj@k, and 95% confidence intervals."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = ["bootstrap_interval", "maj_at_k", "majority_answer", "normalize_answer", "pass_at_k", "wilson_interval"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al. (2021) unbiased estimator: P(at least one of k draws without replacement from
    n samples, c of them correct, is correct) = 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    # the product form avoids huge binomials: C(n-c,k)/C(n,k) = prod_{i=n-c+1}^{n} (1 - k/i)
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


_SPACES = re.compile(r"\s+")
_NOISE = re.compile(r"\\left|\\right|\\!|\\,|\\;|\$")


def normalize_answer(answer: str | None) -> str | None:
    """Voting key for an extracted answer: whitespace, \\left/\\right, thin spaces and $ removed,
    \\dfrac/\\tfrac → \\frac. Two answers vote together only when their keys are equal."""
    if answer is None:
        return None
    key = _NOISE.sub("", str(answer)).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    key = _SPACES.sub("", key).rstrip(".")
    return key or None


def majority_answer(answers: Sequence[str | None]) -> int | None:
    """Index of the sample whose answer wins the vote, or None when no sample has an answer.

    Samples without an answer do not vote. Ties between equally frequent answers go to the answer
    that appeared FIRST (lowest sample index), so the result is deterministic and does not depend
    on hash order; the winning index is that answer's first occurrence."""
    keys = [normalize_answer(a) for a in answers]
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(i for i, k in enumerate(keys) if k is not None and counts[k] == best)


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool], k: int) -> bool:
    """Whether the majority answer of the first k samples is correct (no answer at all: wrong)."""
    winner = majority_answer(answers[:k])
    return winner is not None and bool(correct[winner])


def wilson_interval(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% for the default z). Unlike the normal
    approximation it stays inside [0, 1] and is sensible at 0% and 100% accuracy."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    # at 0% / 100% the bound is exactly 0 / 1; floating point would leave it a hair inside
    return (0.0 if successes <= 0 else lo, 1.0 if successes >= n else hi)


def bootstrap_interval(
    values: Sequence[float], *, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling problems (not samples) with a fixed
    seed so the same results always give the same interval."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (0.0, 1.0)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - level) / 2
    return (float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)))
