"""What a step's completions say, as metrics: reward (and each verifier component's) mean/std, accuracy,
answer and verifier failure rates, lengths, truncation."""

from __future__ import annotations

from collections.abc import Sequence

from rlvr.types import Rollout, Score, Status

__all__ = ["rollout_metrics"]


def rollout_metrics(scores: Sequence[Score], rollouts: Sequence[Rollout]) -> dict[str, float]:
    """What metrics.jsonl says about a step's completions: reward (and each verifier component's)
    mean/std, accuracy, answer and verifier failure rates, lengths, truncation."""
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
        "completions": len(rollouts),
        "completion_tokens": lengths.sum().item(),
    }
    parts: dict[str, list[float]] = {}  # math+0.1*boxed_format -> a column for each part
    for score in scores:
        for name, component in (score.details.get("components") or {}).items():
            parts.setdefault(name, []).append(float(component["reward"]))
    for name, values in parts.items():
        t = torch.tensor(values)
        metrics[f"reward_{name}_mean"] = t.mean().item()
        metrics[f"reward_{name}_std"] = t.std().item() if len(t) > 1 else 0.0
    return metrics
