"""DIR/summary.json of a training run (held-out accuracy before → after with 95% Wilson intervals and the
settings that define them, the `rlvr eval` command that reproduces both, steps, wall time, the final model)
and the short table the console ends with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlvr.eval.spec import describe, differences, settings_of
from rlvr.io import write_json
from rlvr.train.monitor import read_metrics

__all__ = ["SUMMARY_FILE", "own_eval_summary", "read_summary", "summary_table", "write_summary"]

SUMMARY_FILE = "summary.json"


def own_eval_summary(counts: dict[str, Any]) -> dict[str, Any]:
    """An algorithm's own held-out measure ({successes, n, measure}: rlvr.algorithms.base.Algorithm.evaluate)
    as an eval summary: accuracy with its 95% Wilson interval over n (None when n is 0)."""
    from rlvr.eval.estimators import wilson_interval

    n = int(counts["n"])
    accuracy = counts["successes"] / n if n else None
    ci = list(wilson_interval(counts["successes"], n)) if n else None
    return {**counts, "accuracy": accuracy, "ci95": ci, "n_problems": n}


def _block(record: dict[str, Any] | None) -> dict[str, Any] | None:
    if record is None or record.get("eval_accuracy") is None:
        return None
    lo, hi = record["eval_ci95"]
    block = {"accuracy": record["eval_accuracy"], "ci": [lo, hi], "n": record["eval_n"], "step": record["step"]}
    return block | ({"measure": record["eval_measure"]} if record.get("eval_measure") else {})


def _eval_record(directory: Path, record: dict[str, Any] | None) -> dict[str, Any]:
    """The eval summary the trainer wrote for this eval.jsonl row (DIR/eval/step_N/summary.json), or {}."""
    path = Path(directory) / "eval" / f"step_{record['step']:06d}" / "summary.json" if record else None
    if path is None or not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def write_summary(
    directory: Path, *, steps: int, wall_s: float, final: Path | None, audit: Any = None
) -> dict[str, Any]:
    """Write DIR/summary.json from DIR/eval.jsonl (the step-0 eval is `before`, the last one at or after
    step 1 is `after`; with an environment, the last tool-off eval is `after_tool_off`), atomically,
    and return it. `accuracy` and `ci` are fractions. `eval_command` is the `rlvr eval` command (with
    {model}) that reproduces before and after, `eval_settings` what defines them."""
    records = read_metrics(directory, "eval.jsonl")
    evals = [r for r in records if r.get("eval_tool") != "off"]  # with the run's tool, when it has one
    before = next((r for r in evals if r["step"] == 0), None)
    after = next((r for r in reversed(evals) if r["step"] > 0), None)
    summary: dict[str, Any] = {
        "before": _block(before),
        "after": _block(after),
        "steps": steps,
        "wall_s": round(wall_s, 1),
        "final": str(final) if final is not None else None,
    }
    made = {name: _eval_record(directory, record) for name, record in (("before", before), ("after", after))}
    made = {name: found for name, found in made.items() if found}
    if made:
        latest = made.get("after") or made["before"]
        summary["eval_command"] = latest.get("eval_command")
        summary["eval_settings"] = settings_of(latest)
    if len(made) == 2:
        changed = differences(settings_of(made["before"]), settings_of(made["after"]))
        if changed:  # e.g. a run resumed with another eval config: the gain mixes two measurements
            summary["eval_settings_differ"] = changed
    tool_off = next((r for r in reversed(records) if r.get("eval_tool") == "off"), None)
    if tool_off is not None:  # the same checkpoint as `after`, with the environment off
        summary["after_tool_off"] = _block(tool_off)
    if summary["before"] and summary["after"]:
        summary["gain"] = summary["after"]["accuracy"] - summary["before"]["accuracy"]
        summary["separated"] = (
            summary["after"]["ci"][0] > summary["before"]["ci"][1]
            or summary["after"]["ci"][1] < summary["before"]["ci"][0]
        )
    if audit is not None:
        summary["audit"] = {"line": audit.line(), "rewarded": len(audit.rewarded), "total": audit.total}
    write_json(Path(directory) / SUMMARY_FILE, summary)
    return summary


def read_summary(directory: str | Path) -> dict[str, Any] | None:
    path = Path(directory) / SUMMARY_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def summary_table(summary: dict[str, Any]) -> str:
    """Accuracy before → after with intervals, steps, time and the final model's folder, as plain text."""

    def cell(block: dict[str, Any] | None) -> str:
        if not block:
            return "not evaluated"
        lo, hi = block["ci"]
        return f"{block['accuracy']:6.1%}  [{lo:.1%}, {hi:.1%}]  n={block['n']}"

    lines = [
        f"{'held-out accuracy':<20}{cell(summary.get('before'))}  (before)",
        f"{'':<20}{cell(summary.get('after'))}  (after)",
    ]
    if "after_tool_off" in summary:
        lines.append(f"{'':<20}{cell(summary['after_tool_off'])}  (after, tool off)")
    if "gain" in summary:
        lines.append(
            f"{'gain':<20}{summary['gain'] * 100:+.1f} points, intervals "
            f"{'separated' if summary['separated'] else 'overlap'}"
        )
    if summary.get("eval_settings"):
        lines.append(f"{'measured on':<20}{describe(summary['eval_settings'])}")
    elif (summary.get("after") or summary.get("before") or {}).get("measure"):
        lines.append(f"{'measured as':<20}{(summary.get('after') or summary['before'])['measure']}")
    if summary.get("eval_settings_differ"):
        lines.append(f"{'WARNING':<20}before and after differ in {'; '.join(summary['eval_settings_differ'])}")
    lines.append(f"{'steps':<20}{summary['steps']} in {summary['wall_s']:.0f} s")
    lines.append(f"{'final model':<20}{summary['final'] or '(not written: the run stopped early)'}")
    if summary.get("eval_command"):
        lines.append(f"{'reproduce with':<20}{summary['eval_command']}")
    return "\n".join(lines)
