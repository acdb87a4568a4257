"""What an eval's records add up to: accuracy with its interval, per level/subject tables, pass@k and maj@k over
samples, best-of-N picks, the reference tool's metrics, and tool-call statistics."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from rlvr.eval.estimators import bootstrap_interval, maj_at_k, pass_at_k, wilson_interval
from rlvr.types import Example, Status

__all__ = ["selector_specs", "summarize", "tool_summary"]


def selector_specs(select: str | Sequence[str] | None) -> tuple[str, ...]:
    """Selector specs as a tuple (one spec, several, or none)."""
    return (select,) if isinstance(select, str) else tuple(select or ())


def tool_summary(records: dict[str, list[dict]]) -> dict[str, Any]:
    """Tool use over every sample: calls per sample, the share of samples that called it, error and
    timeout rates of the calls, tool tokens per sample."""
    rows = [r for rs in records.values() for r in rs]
    calls = [c for r in rows for c in r.get("tool_calls", ())]
    statuses = [c.get("status") for c in calls]
    total = max(1, len(rows))
    return {
        "calls_mean": round(len(calls) / total, 4),
        "used_rate": round(sum(bool(r.get("tool_calls")) for r in rows) / total, 4),
        "error_rate": round(sum(s != "ok" for s in statuses) / max(1, len(calls)), 4),
        "timeout_rate": round(statuses.count("timeout") / max(1, len(calls)), 4),
        "tool_tokens_mean": round(sum(r.get("tool_tokens", 0) for r in rows) / total, 2),
    }


def _interval(values: Sequence[float], samples: int) -> tuple[list[float], str]:
    """95% CI of the mean accuracy over problems: Wilson for one sample per problem (each problem
    is a Bernoulli trial), a seeded percentile bootstrap over problems for avg@n (n > 1)."""
    if samples == 1:
        return [round(x, 6) for x in wilson_interval(sum(values), len(values))], "wilson"
    return [round(x, 6) for x in bootstrap_interval(values)], "bootstrap"


def _group(values: dict[str, float], examples: Iterable[Example], key: str, samples: int) -> dict[str, dict]:
    groups: dict[str, list[float]] = defaultdict(list)
    for example in examples:
        if example.metadata.get(key) is not None:
            groups[str(example.metadata[key])].append(values[example.id])
    table = {}
    for label in sorted(groups):
        accs = groups[label]
        ci, _ = _interval(accs, samples)
        table[label] = {"n": len(accs), "accuracy": round(sum(accs) / len(accs), 6), "ci95": ci}
    return table


def summarize(
    examples: Sequence[Example], records: dict[str, list[dict]], samples: int, select: str | Sequence[str] | None = None
) -> dict[str, Any]:
    """Metrics over the examples that have all their samples in `records`:
    accuracy = mean over problems of (correct samples / samples) (greedy accuracy, or avg@n);
    pass@k for every k ≤ samples (unbiased estimator); maj@k = majority vote of the first k
    samples' extracted answers (ties → the earliest answer); ci95 (method in ci_method);
    `at_n`: avg@n, pass@n, maj@n and (per `select` spec) best-of-n@spec, each with a 95% interval;
    `lm_eval`: a reproduced task's own metrics (strict-match, flexible-extract, math_verify)."""
    done = [e for e in examples if e.id in records]
    correct = {e.id: [r["status"] == Status.CORRECT.value for r in records[e.id]] for e in done}
    answers = {e.id: [r.get("extracted") for r in records[e.id]] for e in done}
    per_problem = {i: sum(c) / samples for i, c in correct.items()}
    flat = [r for e in done for r in records[e.id]]
    n = len(done)
    ci, method = _interval(list(per_problem.values()), samples)
    statuses = {s.value: sum(r["status"] == s.value for r in flat) for s in Status}
    summary: dict[str, Any] = {
        "n_problems": n,
        "n_expected": len(examples),
        "samples": samples,
        "metric": "accuracy" if samples == 1 else f"avg@{samples}",
        "accuracy": round(sum(per_problem.values()) / n, 6) if n else None,
        "ci95": ci,
        "ci_method": method,
        "mean_reward": round(sum(r["reward"] for r in flat) / len(flat), 6) if flat else None,
        "pass@k": {
            str(k): round(sum(pass_at_k(samples, sum(c), k) for c in correct.values()) / n, 6)
            for k in range(1, samples + 1)
        }
        if n
        else {},
        "maj@k": {
            str(k): round(sum(maj_at_k(answers[i], correct[i], k) for i in correct) / n, 6)
            for k in range(1, samples + 1)
        }
        if n
        else {},
        "status_counts": statuses,
        "truncated_rate": round(sum(r["finish_reason"] == "length" for r in flat) / len(flat), 6) if flat else None,
        "mean_completion_tokens": round(sum(r["completion_tokens"] for r in flat) / len(flat), 2) if flat else None,
    }
    for key, title in (("subject", "by_subject"), ("level", "by_level")):
        table = _group(per_problem, done, key, samples)
        if table:
            summary[title] = table
    if n:
        summary["at_n"] = _at_n(
            correct, answers, {i: records[i] for i in correct}, samples, selector_specs(select), summary
        )
        if select:
            summary["best_of_n"] = {
                spec: summary["at_n"][f"best-of-{samples}@{spec}"] for spec in selector_specs(select)
            }
    reference = _reference_metrics([records[e.id] for e in done])
    if reference:
        summary["lm_eval"] = reference
    return summary


def _rate(hits: Sequence[bool]) -> dict[str, Any]:
    """A share of problems with its Wilson 95% interval."""
    return {
        "value": round(sum(hits) / len(hits), 6),
        "ci95": [round(x, 6) for x in wilson_interval(sum(hits), len(hits))],
        "ci_method": "wilson",
    }


def _at_n(
    correct: dict[str, list[bool]],
    answers: dict[str, list],
    records: dict[str, list[dict]],
    samples: int,
    select: Sequence[str],
    summary: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """The headline metrics at n samples, each with its interval (problems are the unit)."""
    from rlvr.eval.best_of_n import chosen

    table = {
        f"avg@{samples}": {"value": summary["accuracy"], "ci95": summary["ci95"], "ci_method": summary["ci_method"]},
        f"pass@{samples}": _rate([any(c) for c in correct.values()]),
        f"maj@{samples}": _rate([maj_at_k(answers[i], correct[i], samples) for i in correct]),
    }
    for spec in select:
        picks = {i: chosen([r["select_scores"][spec] for r in rows]) for i, rows in records.items()}
        table[f"best-of-{samples}@{spec}"] = _rate([correct[i][picks[i]] for i in correct])
    return table


def _reference_metrics(groups: Sequence[Sequence[dict]]) -> dict[str, dict[str, Any]]:
    """Per reproduced-task metric: mean over problems of its correct share, with an interval."""
    names = list(dict.fromkeys(k for rows in groups for r in rows for k in r.get("lm_eval", {})))
    out = {}
    for name in names:
        per_problem = [sum(bool(r["lm_eval"][name]["correct"]) for r in rows) / len(rows) for rows in groups]
        ci, method = _interval(per_problem, len(groups[0]))
        out[name] = {"accuracy": round(sum(per_problem) / len(per_problem), 6), "ci95": ci, "ci_method": method}
    return out
