"""Evaluate a model on Examples: generate → verify (through the runner) → summary, flushed as it
goes so that a re-run into the same directory resumes where it stopped."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlvr.data.templates import render_prompt, stop_sequences, style_task
from rlvr.errors import InputError
from rlvr.eval.display import ProgressBar, summary_table
from rlvr.eval.summary import selector_specs, summarize, tool_summary
from rlvr.io import append_jsonl, read_jsonl, write_json, write_jsonl
from rlvr.types import Example, Score, Status
from rlvr.verifiers.base import Verifier

__all__ = ["extracted_answer", "finished_summary", "load_records", "run_eval", "summarize", "summary_table"]

SAMPLES_FILE, SUMMARY_FILE, CONFIG_FILE = "samples.jsonl", "summary.json", "config.json"
#: where verifiers put the answer they extracted, in the order we look for it
_ANSWER_KEYS = ("extracted", "extracted_answer", "answer", "prediction", "pred")


def extracted_answer(score: Score) -> str | None:
    """The answer the verifier read from the completion (the primary part's, for a weighted sum)."""
    details: Any = score.details
    components = details.get("components")
    if components:
        details = next(iter(components.values())).get("details", {})
    for key in _ANSWER_KEYS:
        value = details.get(key)
        if value is not None and not isinstance(value, (dict, list)):
            return str(value)
    return None


def _sampling_json(sampling: Any) -> dict[str, Any]:
    return dataclasses.asdict(sampling) if dataclasses.is_dataclass(sampling) else dict(vars(sampling))


def _with_stop(sampling: Any, extra: Sequence[str]) -> Any:
    if not extra:
        return sampling
    merged = tuple(dict.fromkeys([*getattr(sampling, "stop", ()), *extra]))
    return dataclasses.replace(sampling, stop=merged)


def load_records(path: Path) -> dict[str, list[dict[str, Any]]]:
    """samples.jsonl grouped by example id (a torn last line from a killed run is ignored)."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, record in read_jsonl(path, torn_tail=True, missing_ok=True):
        grouped[record["id"]].append(record)
    return grouped


def _complete(records: dict[str, list[dict]], samples: int) -> dict[str, list[dict]]:
    """Examples with every sample index 0..samples-1 present, each sorted by sample index."""
    done = {}
    for ident, rows in records.items():
        by_index = {r["sample"]: r for r in rows}
        if all(i in by_index for i in range(samples)):
            done[ident] = [by_index[i] for i in range(samples)]
    return done


def _config(
    verifier: Verifier,
    sampling: Any,
    samples: int,
    style: str,
    instruction: str | None,
    run_info: dict[str, Any] | None,
    select: Sequence[str] = (),
) -> dict[str, Any]:
    """What must match for samples in a directory to be reused (--limit is not part of it)."""
    config = {
        "style": style,
        "samples": samples,
        "instruction": instruction,
        "verifier": verifier.name,
        "sampling": _sampling_json(sampling),
        **(run_info or {}),
    }
    if select:
        config["select"] = list(select)
    return json.loads(json.dumps(config, default=str))  # as it reads back from config.json (tuples → lists)


def _check_config(directory: Path, config: dict[str, Any], *, write: bool = True) -> None:
    path = directory / CONFIG_FILE
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in {*old, *config} if old.get(k) != config.get(k))
        if changed:
            named = "; ".join(f"{k}: {_short(old.get(k))} there vs {_short(config.get(k))} now" for k in changed)
            raise InputError(
                f"{directory} holds results made with other settings ({named}): use another --output, or delete it"
            )
    if write:
        write_json(path, config)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def finished_summary(
    directory: str | Path,
    examples: Sequence[Example],
    verifier: Verifier,
    *,
    sampling: Any,
    samples: int = 1,
    style: str = "chat",
    instruction: str | None = None,
    run_info: dict[str, Any] | None = None,
    select: str | Sequence[str] | None = None,
) -> dict[str, Any] | None:
    """The summary of a directory that already holds every sample of `examples` for these
    settings (recomputed from samples.jsonl, timing kept from summary.json), else None."""
    directory = Path(directory)
    if not (directory / SUMMARY_FILE).exists():
        return None
    select = selector_specs(select)
    _check_config(directory, _config(verifier, sampling, samples, style, instruction, run_info, select), write=False)
    records = _complete(load_records(directory / SAMPLES_FILE), samples)
    if any(e.id not in records for e in examples):
        return None
    stored = json.loads((directory / SUMMARY_FILE).read_text(encoding="utf-8"))
    return {**stored, **summarize(examples, records, samples, select=select)}


def run_eval(
    engine: Any,
    examples: Sequence[Example],
    verifier: Verifier,
    *,
    sampling: Any,
    samples: int = 1,
    style: str = "chat",
    output_dir: str | Path | None = None,
    instruction: str | None = None,
    chunk_size: int = 64,
    workers: int | None = None,
    timeout: float = 10.0,
    max_failure_rate: float | None = 0.05,
    progress: bool = True,
    run_info: dict[str, Any] | None = None,
    name: str = "eval",
    select: str | Sequence[str] | None = None,
    env: Any = None,
) -> dict[str, Any]:
    """Generate `samples` completions per example, score them with `verifier` through the runner,
    and return the summary (see `summarize`). With `output_dir`, every finished example's samples
    are appended to samples.jsonl at once and examples already complete there are skipped;
    summary.json is rewritten at the end. `chunk_size` is completions per generate call.
    `select` (selector specs, see rlvr.eval.best_of_n) also picks one completion per problem without
    the gold, for each selector, and the summary reports best-of-N@SPEC. A style that reproduces another tool's
    task (lm-eval) also records that task's own metrics per sample, beside the verdict. With an
    environment (`env`, rlvr.environments) every sample is a multi-turn trajectory using the tool;
    its calls go to samples.jsonl and the summary gets `tool` statistics and timing tool_s."""
    from rlvr.eval.best_of_n import build_selector
    from rlvr.rollout.collect import sample_and_score
    from rlvr.verifiers.scoring import runner_for

    if samples < 1:
        raise InputError(f"--samples must be at least 1 (got {samples})")
    select = selector_specs(select)
    if select and samples < 2:
        raise InputError(f"--select {select[0]} picks one of several samples: give --samples 2 or more")
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        raise InputError("example ids are not unique; resume and per-problem metrics need unique ids")
    selectors = [
        build_selector(spec, workers=workers, timeout=timeout, max_failure_rate=max_failure_rate) for spec in select
    ]
    config = _config(verifier, sampling, samples, style, instruction, run_info, select)
    directory = Path(output_dir) if output_dir is not None else None
    records: dict[str, list[dict]] = {}
    previous_timing: dict[str, float] = {}
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        _check_config(directory, config)
        raw = load_records(directory / SAMPLES_FILE)
        records = _complete(raw, samples)
        if sum(map(len, raw.values())) != sum(map(len, records.values())):  # drop partial examples
            _rewrite(directory / SAMPLES_FILE, records)
        if (directory / SUMMARY_FILE).exists():
            previous_timing = json.loads((directory / SUMMARY_FILE).read_text(encoding="utf-8")).get("timing", {})

    todo = [e for e in examples if e.id not in records]
    sampling = _with_stop(sampling, _stops(style, examples))
    scorer = _with_reference(verifier, style, examples)
    template = lambda e: render_prompt(e, engine.tokenizer, style=style, instruction=instruction)  # noqa: E731
    per_call = max(1, chunk_size // samples)
    timing = {"generate_s": 0.0, "verify_s": 0.0, "select_s": 0.0, "completion_tokens": 0, "prompt_tokens": 0}
    started = time.perf_counter()
    with (
        ProgressBar(progress, name, len(examples) * samples, len(records) * samples) as advance,
        runner_for(scorer, workers=workers, timeout=timeout, max_failure_rate=max_failure_rate) as runner,
        contextlib.ExitStack() as stack,
    ):
        choosers = [stack.enter_context(selector) for selector in selectors]
        for start in range(0, len(todo), per_call):
            collected = sample_and_score(
                engine, runner, todo[start : start + per_call], samples, sampling, template, env=env
            )
            t0 = time.perf_counter()
            choice = {
                c.spec: c.scores(
                    [r.text for r in collected.rollouts],
                    [collected.examples[r.prompt_index] for r in collected.rollouts],
                    [extracted_answer(s) for s in collected.scores],
                    [r.prompt_index for r in collected.rollouts],
                )
                for c in choosers
            }
            timing["select_s"] += time.perf_counter() - t0
            timing["generate_s"] += collected.generate_s
            timing["verify_s"] += collected.verify_s
            if env is not None:
                timing["tool_s"] = timing.get("tool_s", 0.0) + collected.tool_s
            timing["completion_tokens"] += sum(len(r.token_ids) for r in collected.rollouts)
            timing["prompt_tokens"] += sum(len(r.prompt_token_ids) for r in collected.rollouts)
            fresh = _records(collected, choice)
            if directory is not None:
                append_jsonl(directory / SAMPLES_FILE, (rec for rows in fresh.values() for rec in rows))
            records.update(fresh)
            advance(len(collected.rollouts), _accuracy_so_far(records))
    timing["wall_s"] = time.perf_counter() - started
    timing = _accumulate(previous_timing, timing)
    summary = summarize(examples, records, samples, select=select)
    summary.update(
        {
            "name": name,
            "style": style,
            "verifier": verifier.name,
            "sampling": _sampling_json(sampling),
            "timing": timing,
            **(run_info or {}),
        }
    )
    if env is not None:
        summary["tool"] = tool_summary(records)
    if directory is not None:
        write_json(directory / SUMMARY_FILE, summary)
    return summary


def _stops(style: str, examples: Sequence[Example]) -> tuple[str, ...]:
    """The style's stop strings; a per-task style (lm-eval) must see one task in one run."""
    per_task = bool(examples) and style_task(style, examples[0]) is not None
    found = {stop_sequences(style, e) for e in examples} if per_task else {stop_sequences(style)}
    if len(found) > 1:
        raise InputError(
            f"--style {style}: these examples belong to tasks with different stop sequences; "
            "evaluate one benchmark per run"
        )
    return next(iter(found), ())


def _with_reference(verifier: Verifier, style: str, examples: Sequence[Example]) -> Verifier:
    """`verifier`, plus the reproduced task's own metrics beside it when the style has some."""
    if not examples or style_task(style, examples[0]) is None:
        return verifier
    from rlvr.data.lm_eval_tasks import Beside, LmEvalMetrics

    return Beside(verifier, LmEvalMetrics())


def _records(collected: Any, choice: dict[str, Sequence[float]]) -> dict[str, list[dict]]:
    fresh: dict[str, list[dict]] = defaultdict(list)
    for k, (rollout, score) in enumerate(zip(collected.rollouts, collected.scores, strict=True)):
        example = collected.examples[rollout.prompt_index]
        record = {
            "id": example.id,
            "sample": len(fresh[example.id]),
            "prompt": collected.prompts[rollout.prompt_index],
            "completion": rollout.text,
            "gold": example.answer,
            "extracted": extracted_answer(score),
            "reward": score.reward,
            "status": score.status.value,
            "finish_reason": rollout.finish_reason,
            "completion_tokens": len(rollout.token_ids),
            "prompt_tokens": len(rollout.prompt_token_ids),
            "details": dict(score.details),
        }
        if "lm_eval" in score.details:
            record["lm_eval"] = score.details["lm_eval"]
        if rollout.segments:  # multi-turn: the calls (code, status, output) and the tool's share of the tokens
            record["tool_calls"] = [dict(call) for call in rollout.tool_calls]
            record["tool_tokens"] = len(rollout.token_ids) - sum(rollout.mask)
        if choice:
            record["select_scores"] = {spec: scores[k] for spec, scores in choice.items()}
        fresh[example.id].append(record)
    return fresh


def _rewrite(path: Path, records: dict[str, list[dict]]) -> None:
    write_jsonl(path, (rec for rows in records.values() for rec in rows))


def _accumulate(previous: dict[str, float], current: dict[str, float]) -> dict[str, float]:
    """Timing over every session that generated into this directory; tokens/s = tokens / generate time."""
    total = {
        k: previous.get(k, 0) + current.get(k, 0)
        for k in ("generate_s", "verify_s", "select_s", "wall_s", "completion_tokens", "prompt_tokens")
    }
    if "tool_s" in current:  # with an environment: seconds in tool calls, beside generate_s
        total["tool_s"] = previous.get("tool_s", 0) + current["tool_s"]
    total["sessions"] = int(previous.get("sessions", 0)) + 1
    total["tokens_per_s"] = total["completion_tokens"] / total["generate_s"] if total["generate_s"] else None
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in total.items()}


def _accuracy_so_far(records: dict[str, list[dict]]) -> float:
    flat = [r["status"] == Status.CORRECT.value for rows in records.values() for r in rows]
    return sum(flat) / len(flat) if flat else 0.0
