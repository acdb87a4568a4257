"""What a training run reports: metrics.jsonl (flushed per step), TensorBoard, optional wandb, a
rich progress bar, and alarms that say in words why a run is going wrong."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvr.io import append_jsonl, read_jsonl, write_jsonl
from rlvr.train.disagreement import verifier_disagreement
from rlvr.types import Example, Rollout, Score

__all__ = [
    "ALARMS",
    "AlarmState",
    "Monitor",
    "StepTimer",
    "check_alarms",
    "read_metrics",
    "step_line",
    "truncate_metrics",
]

log = logging.getLogger("rlvr.train")

METRICS_FILE = "metrics.jsonl"


@dataclass
class AlarmState:
    """What alarms remember across steps (saved in checkpoints so a resumed run agrees)."""

    best_reward_ema: float = -math.inf
    reward_ema: float | None = None
    fired: dict[str, int] = field(default_factory=dict)  # alarm -> times fired
    disagreement: tuple[float, int] = (0.0, 0)  # reward.cross_check: earlier steps' disagreement rates summed, steps


def _truncation(m: dict, s: AlarmState) -> str | None:
    rate = m.get("truncation_rate", 0.0)
    if rate > 0.5:
        return (
            f"{rate:.0%} of completions hit max_new_tokens: their answers are cut off. Raise "
            "rollout.max_new_tokens, or set reward.truncated=mask|penalty"
        )
    return None


def _zero_variance(m: dict, s: AlarmState) -> str | None:
    frac = m.get("zero_variance_fraction", 0.0)
    if frac > 0.8:
        return (
            f"loss is ~0 because every group had the same reward in {frac:.0%} of groups "
            "(all right or all wrong): no learning signal. Use harder/easier data, a larger "
            "rollout.n, or grpo.dynamic_sampling=true"
        )
    return None


def _verifier_failures(m: dict, s: AlarmState) -> str | None:
    rate = m.get("verifier_failure_rate", 0.0)
    if rate > 0.02:
        return f"{rate:.0%} of verdicts timed out or errored (counted, scored 0): check the verifier and reward.timeout"
    return None


def _no_answer(m: dict, s: AlarmState) -> str | None:
    rate = m.get("no_answer_rate", 0.0)
    if rate > 0.8:
        return (
            f"{rate:.0%} of completions had no answer the verifier could extract: check the prompt "
            "template/instruction and max_new_tokens"
        )
    return None


def _reward_collapse(m: dict, s: AlarmState) -> str | None:
    if s.reward_ema is not None and s.best_reward_ema > 0.1 and s.reward_ema < 0.5 * s.best_reward_ema:
        return (
            f"reward collapsed: smoothed reward {s.reward_ema:.3f} is under half its best "
            f"{s.best_reward_ema:.3f}; lower optimizer.lr or add a KL penalty (grpo.beta)"
        )
    return None


def _sync_unchanged(m: dict, s: AlarmState) -> str | None:
    if m.get("sync_changed") is False and m.get("param_delta", 0.0) > 0:
        return (
            "weights unchanged after a sync: the trainer's weights moved but the engine's outputs "
            "did not; the sampler is generating with stale weights"
        )
    return None


#: the sampler and the learner disagree when the importance weights of its tokens leave 1 by this much on average,
#: or this share of them is truncated at tis_cap
_SAMPLER_DRIFT = 0.05


def _sampler_drifts(m: dict) -> bool:
    """Whether the sampler's own logprobs show that it generates with other weights than the learner's (the
    truncated-importance weights of a step that learned; a step without them has nothing to show)."""
    if "tis_weight_mean" not in m:
        return False
    return abs(m["tis_weight_mean"] - 1.0) > _SAMPLER_DRIFT or m.get("tis_truncated_fraction", 0.0) > _SAMPLER_DRIFT


def _rounded_away(m: dict, s: AlarmState) -> str | None:
    """A lower-precision engine copy rounds away most of a step's change. That alone is expected: the engine is
    re-cast from the float32 master weights at every sync, so the changes it missed reach it once they add up.
    It is an alarm only when the sampler's logprobs show it (importance weights off 1)."""
    lost = m.get("sync_rounded_away", 0.0)
    if lost > 0.5 and _sampler_drifts(m):
        return (
            f"{lost:.0%} of this step's weight changes vanish in the rollout engine's lower-precision "
            "copy (rollout.dtype) and the sampler's logprobs drift from the learner's: it samples from stale "
            "weights. Set rollout.dtype=float32 (the master weights' precision) or raise optimizer.lr"
        )
    return None


def _updates_rounded_away(m: dict, s: AlarmState) -> str | None:
    lost = m.get("update_rounded_away", 0.0)
    if lost > 0.5:
        return (
            f"{lost:.0%} of this step's optimizer update was rounded away by the weights' precision "
            "(model.master_dtype): the model barely learns. Keep model.master_dtype=float32 (the "
            "default; computation still runs in model.dtype) or raise optimizer.lr"
        )
    return None


def _nothing_to_learn(m: dict, s: AlarmState) -> str | None:
    for key, what in (
        ("kept", "no correct completion to fine-tune on (rft)"),
        ("pairs", "no prompt had completions with different rewards to pair (dpo)"),
    ):
        if key in m and m[key] == 0:
            return (
                f"loss is 0 because there was {what}: the step changed nothing but Adam's state. "
                "Use easier data, a larger rollout.n, or a higher rollout.temperature"
            )
    return None


#: alarm name -> check(metrics, state) returning a message when it fires
ALARMS: dict[str, Callable[[dict, AlarmState], str | None]] = {
    "truncation": _truncation,
    "zero_variance": _zero_variance,
    "verifier_failures": _verifier_failures,
    "no_answer": _no_answer,
    "reward_collapse": _reward_collapse,
    "weights_unchanged": _sync_unchanged,
    "weights_rounded_away": _rounded_away,
    "updates_rounded_away": _updates_rounded_away,
    "nothing_to_learn": _nothing_to_learn,
    "verifier_disagreement": verifier_disagreement,
}

_EMA = 0.7  # weight of the previous value in the smoothed reward


def check_alarms(metrics: dict, state: AlarmState) -> dict[str, str]:
    """Update `state` with this step and return {alarm: message} for every alarm that fires."""
    reward = metrics.get("reward_mean")
    if reward is not None and not math.isnan(reward):
        state.reward_ema = reward if state.reward_ema is None else _EMA * state.reward_ema + (1 - _EMA) * reward
        state.best_reward_ema = max(state.best_reward_ema, state.reward_ema)
    fired = {name: msg for name, check in ALARMS.items() if (msg := check(metrics, state))}
    for name in fired:
        state.fired[name] = state.fired.get(name, 0) + 1
    return fired


class StepTimer:
    """Wall-clock seconds of a step's stages (generate, verify, learn, sync), added up per stage."""

    STAGES = ("generate", "verify", "learn", "sync")

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(self.STAGES, 0.0)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def metrics(self) -> dict[str, float]:
        return {**{f"time_{k}": v for k, v in self.seconds.items()}, "time_step": sum(self.seconds.values())}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Monitor:
    """Writes one line per step to DIR/metrics.jsonl (flushed at once), scalars to TensorBoard
    (DIR/tensorboard) and optionally wandb, drives the progress bar, and raises alarms. Only the
    main process writes (`enabled=False` on other ranks)."""

    def __init__(
        self,
        directory: Path,
        *,
        total_steps: int,
        start_step: int = 0,
        enabled: bool = True,
        progress: bool = True,
        tensorboard: bool = True,
        wandb_project: str | None = None,
        run_config: dict | None = None,
    ):
        self.directory, self.enabled = Path(directory), enabled
        self.alarms = AlarmState()
        self._tb = self._wandb = self._bar = None
        self._plain, self._total = False, total_steps
        if not enabled:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        # open for the run's lifetime, closed in close()
        self._file = open(self.directory / METRICS_FILE, "a", encoding="utf-8")  # noqa: SIM115
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(
                str(self.directory / "tensorboard"), purge_step=start_step + 1 if start_step else None
            )
        if wandb_project:
            import wandb

            self._wandb = wandb.init(project=wandb_project, config=run_config, dir=str(self.directory), resume="allow")
        self._plain = progress and not sys.stdout.isatty()  # CI, nohup, a log file: one line per step
        if progress and not self._plain:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("reward {task.fields[reward]:.3f} acc {task.fields[acc]:.1%}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(),
            )
            self._bar.start()
            self._task = self._bar.add_task("train", total=total_steps, completed=start_step, reward=0.0, acc=0.0)

    def log_step(self, step: int, metrics: dict[str, Any]) -> dict[str, str]:
        """Check alarms, then record `metrics` for `step`; returns the alarms that fired."""
        fired = check_alarms(metrics, self.alarms)
        record = {"step": step, **{k: _clean(v) for k, v in metrics.items()}, "alarms": sorted(fired)}
        if not self.enabled:
            return fired
        for name, message in fired.items():
            log.warning("ALARM %s at step %d: %s", name, step, message)
        try:
            self._file.write(json.dumps(record, default=str) + "\n")
            self._file.flush()
        except OSError as err:
            from rlvr.errors import OutputError

            raise OutputError(
                f"cannot append step {step} to {self.directory / METRICS_FILE}: {err.strerror or err}"
            ) from None
        if self._tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step":
                    self._tb.add_scalar(f"train/{key}", value, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=step)
        if self._bar is not None:
            self._bar.update(
                self._task, completed=step, reward=metrics.get("reward_mean") or 0.0, acc=metrics.get("accuracy") or 0.0
            )
        elif self._plain:
            print(step_line(step, self._total, metrics), flush=True)
        return fired

    def log_eval(self, step: int, summary: dict[str, Any], tool: str | None = None) -> None:
        """One eval.jsonl record; `tool` ("on"/"off") marks a run with an environment and its tool-off eval."""
        if not self.enabled:
            return
        record = {
            "step": step,
            "eval_accuracy": summary.get("accuracy"),
            "eval_ci95": summary.get("ci95"),
            "eval_n": summary.get("n_problems"),
            "eval_mean_reward": summary.get("mean_reward"),
            "eval_truncated_rate": summary.get("truncated_rate"),
            **(
                {"eval_tool": tool, "eval_tool_calls_mean": (summary.get("tool") or {}).get("calls_mean")}
                if tool
                else {}
            ),
        }
        append_jsonl(self.directory / "eval.jsonl", [record])
        if record["eval_accuracy"] is not None and self._tb is not None:
            self._tb.add_scalar("eval/accuracy", record["eval_accuracy"], step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log({"eval/accuracy": record["eval_accuracy"]}, step=step)
        lo, hi = record["eval_ci95"] or (0.0, 0.0)
        log.info(
            "eval at step %d: accuracy %.1f%% [%.1f%%, %.1f%%] (n=%s)",
            step,
            100 * (record["eval_accuracy"] or 0.0),
            100 * lo,
            100 * hi,
            record["eval_n"],
        )

    def log_samples(
        self, step: int, examples: Sequence[Example], rollouts: Sequence[Rollout], scores: Sequence[Score]
    ) -> None:
        """Append a step's completions (with gold, reward and verdict) to DIR/samples.jsonl."""
        if not self.enabled or not examples:
            return
        n = len(rollouts) // len(examples)
        append_jsonl(
            self.directory / "samples.jsonl",
            (
                {
                    "step": step,
                    "id": examples[i // n].id,
                    "gold": examples[i // n].answer,
                    "completion": rollout.text,
                    "reward": score.reward,
                    "status": score.status.value,
                    "finish_reason": rollout.finish_reason,
                }
                for i, (rollout, score) in enumerate(zip(rollouts, scores, strict=True))
            ),
        )

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.stop()
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def step_line(step: int, total: int, m: dict[str, Any]) -> str:
    """The plain per-step line printed when stdout is not a terminal: step, reward, accuracy, truncation,
    the algorithm's own count (kept, pairs) when it has one, loss and seconds."""
    parts = [f"step {step}/{total}"]
    for key, label, fmt in (
        ("reward_mean", "reward", "{:.3f}"),
        ("accuracy", "accuracy", "{:.1%}"),
        ("truncation_rate", "truncated", "{:.1%}"),
        ("kept", "kept", "{:.0f}"),
        ("pairs", "pairs", "{:.0f}"),
        ("loss", "loss", "{:.4f}"),
    ):
        if isinstance(m.get(key), (int, float)):
            parts.append(f"{label} {fmt.format(m[key])}")
    parts.append(f"{m.get('time_step', 0.0):.1f} s")
    return "  ".join(parts)


def read_metrics(directory: str | Path, name: str = METRICS_FILE) -> list[dict[str, Any]]:
    """Records of DIR/metrics.jsonl (or eval.jsonl); a torn last line from a killed run is skipped."""
    return [record for _, record in read_jsonl(Path(directory) / name, torn_tail=True, missing_ok=True)]


def truncate_metrics(directory: str | Path, last_step: int) -> None:
    """Drop records after `last_step` (a resumed run re-does the steps after its checkpoint)."""
    for name in (METRICS_FILE, "eval.jsonl", "samples.jsonl"):
        path = Path(directory) / name
        if path.exists():
            write_jsonl(path, [r for r in read_metrics(directory, name) if r.get("step", 0) <= last_step])
