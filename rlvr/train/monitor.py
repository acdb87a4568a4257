"""What a training run reports: metrics.jsonl (flushed per step), TensorBoard, optional wandb, a
rich progress bar, and alarms that say in words why a run is going wrong."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rlvr.config import LoggingConfig
from rlvr.io import append_jsonl, read_jsonl, write_jsonl
from rlvr.train.alarms import ALARMS, AlarmState, Settings, check_alarms
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
        logs: LoggingConfig,
        *,
        total_steps: int,
        start_step: int = 0,
        enabled: bool = True,
        run_config: dict | None = None,
        settings: Settings | None = None,
    ):
        """`logs`: the run's logging section (progress bar, TensorBoard, wandb); `settings`: what alarms advise
        against."""
        progress, tensorboard = logs.progress, logs.tensorboard
        wandb_project = logs.wandb_project if logs.wandb else None
        self.directory, self.enabled = Path(directory), enabled
        self.alarms, self.settings = AlarmState(), settings  # the settings alarms advise against
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
        fired = check_alarms(metrics, self.alarms, self.settings)
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
            **({"eval_measure": summary["measure"]} if summary.get("measure") else {}),
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
