"""What a step's completions say, as metrics: reward (and each verifier component's) mean/std, accuracy,
answer and verifier failure rates, lengths, truncation, an LLM judge's seconds and tokens."""

from __future__ import annotations

from collections.abc import Sequence

from rlvr.types import Rollout, Score, Status
from rlvr.verifiers.judge import judge_usage

__all__ = ["is_void", "rollout_metrics", "tool_metrics"]

#: finishes in which the model itself ended its last turn (not the tool budget)
_MODEL_ENDED = ("stop", "length", "context")


def rollout_metrics(scores: Sequence[Score], rollouts: Sequence[Rollout]) -> dict[str, float]:
    """What metrics.jsonl says about a step's completions: reward (and each verifier component's)
    mean/std, accuracy, answer and verifier failure rates, lengths, truncation (and answers cut off by it)."""
    import torch

    raw = torch.tensor([s.reward for s in scores], dtype=torch.float32)
    lengths = torch.tensor([len(r.token_ids) for r in rollouts], dtype=torch.float32)
    counts = {s.value: sum(x.status is s for x in scores) for s in Status}
    total = max(1, len(scores))
    metrics = {
        "reward_mean": raw.mean().item() if len(raw) else 0.0,
        "reward_std": raw.std().item() if len(raw) > 1 else 0.0,
        "accuracy": counts["correct"] / total,
        "no_answer_rate": counts["no_answer"] / total,
        "verifier_failure_rate": (counts["timeout"] + counts["error"]) / total,
        "verifier_timeouts": counts["timeout"],
        "verifier_errors": counts["error"],
        "completion_len_mean": lengths.mean().item() if len(lengths) else 0.0,
        "completion_len_max": lengths.max().item() if len(lengths) else 0.0,
        "truncation_rate": sum(r.truncated for r in rollouts) / total,
        # cut at the limit before any answer: the truncation that loses a verdict
        "cut_off_rate": sum(r.truncated and x.status is Status.NO_ANSWER for r, x in zip(rollouts, scores, strict=True))
        / total,
        "completions": len(rollouts),
        "completion_tokens": lengths.sum().item(),
    }
    metrics.update(judge_usage(scores))  # a judge term: judge_s, judge_tokens, judge_prompt_tokens
    parts: dict[str, list[float]] = {}  # math+0.1*boxed_format -> a column for each part
    for score in scores:
        for name, component in (score.details.get("components") or {}).items():
            parts.setdefault(name, []).append(float(component["reward"]))
    for name, values in parts.items():
        t = torch.tensor(values)
        metrics[f"reward_{name}_mean"] = t.mean().item()
        metrics[f"reward_{name}_std"] = t.std().item() if len(t) > 1 else 0.0
    return metrics


def is_void(rollout: Rollout, score: Score) -> bool:
    """Whether a multi-turn trajectory has a void turn (SimpleTIR): a turn with neither a tool call nor
    an answer. A turn that opened an output block with no code to run is one; so is a last turn the
    model ended (or was cut off in) without a call when the trajectory holds no answer at all."""
    if any(call.get("status") == "invalid" for call in rollout.tool_calls):
        return True
    return rollout.finish_reason in _MODEL_ENDED and score.status is Status.NO_ANSWER


def tool_metrics(scores: Sequence[Score], rollouts: Sequence[Rollout]) -> dict[str, float]:
    """What metrics.jsonl says about the tool use of a step's multi-turn trajectories: calls and turns
    per rollout, error / timeout rates (of calls), void rate, model vs tool tokens, budget finishes."""
    total = max(1, len(rollouts))
    calls = [c for r in rollouts for c in r.tool_calls]
    statuses = [str(c.get("status")) for c in calls]
    tool_tokens = sum(len(r.token_ids) - sum(r.mask) for r in rollouts)
    return {
        "tool_calls_mean": len(calls) / total,
        "turns_mean": sum(max(1, sum(kind == "model" for kind, _, _ in r.segments)) for r in rollouts) / total,
        "tool_error_rate": sum(s != "ok" for s in statuses) / max(1, len(calls)),
        "tool_timeout_rate": statuses.count("timeout") / max(1, len(calls)),
        "void_rate": sum(is_void(r, s) for r, s in zip(rollouts, scores, strict=True)) / total,
        "model_tokens": float(sum(sum(r.mask) for r in rollouts)),
        "tool_tokens": float(tool_tokens),
        "tool_budget_rate": sum(r.finish_reason == "tool_budget" for r in rollouts) / total,
        "context_rate": sum(r.finish_reason == "context" for r in rollouts) / total,
    }
