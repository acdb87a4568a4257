"""What `rlvr eval` shows while and after it runs: the progress bar and the summary table."""

from __future__ import annotations

from typing import Any

__all__ = ["ProgressBar", "summary_table"]


def summary_table(summary: dict[str, Any], title: str | None = None):
    """A rich table of one summary: headline metrics, then per-subject/level rows when present."""
    from rich.table import Table

    table = Table(title=title or summary.get("name", "eval"))
    table.add_column("metric")
    table.add_column("value", justify="right")
    lo, hi = summary["ci95"]
    acc = summary["accuracy"]
    table.add_row(
        summary["metric"], "n/a" if acc is None else f"{acc:.2%}  [{lo:.2%}, {hi:.2%}] ({summary['ci_method']})"
    )
    table.add_row("problems", f"{summary['n_problems']} / {summary['n_expected']}  x {summary['samples']} samples")
    for key in ("pass@k", "maj@k"):
        for k, value in summary[key].items():
            if int(k) > 1 and (int(k) & (int(k) - 1) == 0 or int(k) == summary["samples"]):
                table.add_row(key.replace("k", k), f"{value:.2%}")
    counts = ", ".join(f"{s} {c}" for s, c in summary["status_counts"].items() if c)
    table.add_row("statuses", counts)
    table.add_row("truncated", f"{summary['truncated_rate']:.1%}" if summary["truncated_rate"] is not None else "n/a")
    timing = summary.get("timing", {})
    if timing.get("tokens_per_s"):
        table.add_row(
            "generation",
            f"{timing['completion_tokens']} tokens in {timing['generate_s']:.1f} s "
            f"= {timing['tokens_per_s']:.1f} tokens/s",
        )
    for name, row in summary.get("lm_eval", {}).items():
        table.add_row(f"lm-eval {name}", f"{row['accuracy']:.2%}  [{row['ci95'][0]:.2%}, {row['ci95'][1]:.2%}]")
    for name, row in summary.get("at_n", {}).items():
        if summary["samples"] > 1 and not name.startswith("avg@"):
            table.add_row(name, f"{row['value']:.2%}  [{row['ci95'][0]:.2%}, {row['ci95'][1]:.2%}]")
    for group in ("by_subject", "by_level"):
        for label, row in summary.get(group, {}).items():
            table.add_row(f"{group[3:]} {label}", f"{row['accuracy']:.2%}  (n={row['n']})")
    return table


class ProgressBar:
    """A rich progress bar over samples with the running accuracy; a no-op when disabled."""

    def __init__(self, enabled: bool, name: str, total: int, done: int):
        self.enabled, self.name, self.total, self.done = enabled, name, total, done

    def __enter__(self):
        if not self.enabled:
            return lambda n, acc: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("acc {task.fields[acc]:.1%}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self.bar.__enter__()
        task = self.bar.add_task(f"eval {self.name}", total=self.total, completed=self.done, acc=0.0)
        return lambda n, acc: self.bar.update(task, advance=n, acc=acc)

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)
