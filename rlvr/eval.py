"""Evaluate a model on Examples: generate → verify (through the runner) → summary, flushed as it
goes so that a re-run into the same directory resumes where it stopped."""

from __future__ import annotations

import dataclasses
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from rlvr.errors import InputError
from rlvr.metrics import bootstrap_interval, maj_at_k, pass_at_k, wilson_interval
from rlvr.templates import render_prompt, stop_sequences
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
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
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


def _config(verifier: Verifier, sampling: Any, samples: int, style: str, instruction: str | None,
            run_info: dict[str, Any] | None) -> dict[str, Any]:
    """What must match for samples in a directory to be reused (--limit is not part of it)."""
    config = {"style": style, "samples": samples, "instruction": instruction, "verifier": verifier.name,
              "sampling": _sampling_json(sampling), **(run_info or {})}
    return json.loads(json.dumps(config, default=str))  # as it reads back from config.json (tuples → lists)


def _check_config(directory: Path, config: dict[str, Any], *, write: bool = True) -> None:
    path = directory / CONFIG_FILE
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in {*old, *config} if old.get(k) != config.get(k))
        if changed:
            raise InputError(f"{directory} holds results of a different run ({', '.join(changed)} differ): "
                             "use another --output, or delete it")
    if write:
        path.write_text(json.dumps(config, indent=2, default=str) + "\n", encoding="utf-8")


def finished_summary(directory: str | Path, examples: Sequence[Example], verifier: Verifier, *, sampling: Any,
                     samples: int = 1, style: str = "chat", instruction: str | None = None,
                     run_info: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The summary of a directory that already holds every sample of `examples` for these
    settings (recomputed from samples.jsonl, timing kept from summary.json), else None."""
    directory = Path(directory)
    if not (directory / SUMMARY_FILE).exists():
        return None
    _check_config(directory, _config(verifier, sampling, samples, style, instruction, run_info), write=False)
    records = _complete(load_records(directory / SAMPLES_FILE), samples)
    if any(e.id not in records for e in examples):
        return None
    stored = json.loads((directory / SUMMARY_FILE).read_text(encoding="utf-8"))
    return {**stored, **summarize(examples, records, samples)}


def run_eval(engine: Any, examples: Sequence[Example], verifier: Verifier, *, sampling: Any, samples: int = 1,
             style: str = "chat", output_dir: str | Path | None = None, instruction: str | None = None,
             chunk_size: int = 64, workers: int | None = None, timeout: float = 10.0,
             max_failure_rate: float = 0.05, progress: bool = True, run_info: dict[str, Any] | None = None,
             name: str = "eval") -> dict[str, Any]:
    """Generate `samples` completions per example, score them with `verifier` through the runner,
    and return the summary (see `summarize`). With `output_dir`, every finished example's samples
    are appended to samples.jsonl at once and examples already complete there are skipped;
    summary.json is rewritten at the end. `chunk_size` is completions per generate call."""
    from rlvr.verifiers.runner import Runner

    if samples < 1:
        raise InputError(f"--samples must be at least 1 (got {samples})")
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        raise InputError("example ids are not unique; resume and per-problem metrics need unique ids")
    directory = Path(output_dir) if output_dir is not None else None
    records: dict[str, list[dict]] = {}
    previous_timing: dict[str, float] = {}
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        _check_config(directory, _config(verifier, sampling, samples, style, instruction, run_info))
        raw = load_records(directory / SAMPLES_FILE)
        records = _complete(raw, samples)
        if sum(map(len, raw.values())) != sum(map(len, records.values())):  # drop partial examples
            _rewrite(directory / SAMPLES_FILE, records)
        if (directory / SUMMARY_FILE).exists():
            previous_timing = json.loads((directory / SUMMARY_FILE).read_text(encoding="utf-8")).get("timing", {})

    todo = [e for e in examples if e.id not in records]
    sampling = _with_stop(sampling, stop_sequences(style))
    per_call = max(1, chunk_size // samples)
    timing = {"generate_s": 0.0, "verify_s": 0.0, "completion_tokens": 0, "prompt_tokens": 0}
    started = time.perf_counter()
    with _progress(progress, name, len(examples) * samples, len(records) * samples) as advance, \
            Runner(verifier, workers=workers, timeout=timeout, max_failure_rate=max_failure_rate) as runner:
        for start in range(0, len(todo), per_call):
            chunk = todo[start:start + per_call]
            prompts = [render_prompt(e, engine.tokenizer, style=style, instruction=instruction) for e in chunk]
            t0 = time.perf_counter()
            rollouts = engine.generate(prompts, samples, sampling)
            t1 = time.perf_counter()
            expanded = [chunk[r.prompt_index] for r in rollouts]
            scores = runner.score([r.text for r in rollouts], expanded)
            timing["generate_s"] += t1 - t0
            timing["verify_s"] += time.perf_counter() - t1
            fresh = _records(chunk, prompts, rollouts, scores)
            for r in rollouts:
                timing["completion_tokens"] += len(r.token_ids)
                timing["prompt_tokens"] += len(r.prompt_token_ids)
            if directory is not None:
                with open(directory / SAMPLES_FILE, "a", encoding="utf-8") as handle:
                    handle.writelines(json.dumps(rec, default=str) + "\n" for rows in fresh.values() for rec in rows)
            records.update(fresh)
            advance(len(rollouts), _accuracy_so_far(records))
    timing["wall_s"] = time.perf_counter() - started
    timing = _accumulate(previous_timing, timing)
    summary = summarize(examples, records, samples)
    summary.update(name=name, style=style, verifier=verifier.name, sampling=_sampling_json(sampling),
                   timing=timing, **(run_info or {}))
    if directory is not None:
        (directory / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return summary


def _records(chunk: Sequence[Example], prompts: Sequence[str], rollouts: Sequence[Any],
             scores: Sequence[Score]) -> dict[str, list[dict]]:
    fresh: dict[str, list[dict]] = defaultdict(list)
    for rollout, score in zip(rollouts, scores, strict=True):
        example = chunk[rollout.prompt_index]
        fresh[example.id].append({
            "id": example.id, "sample": len(fresh[example.id]), "prompt": prompts[rollout.prompt_index],
            "completion": rollout.text, "gold": example.answer, "extracted": extracted_answer(score),
            "reward": score.reward, "status": score.status.value, "finish_reason": rollout.finish_reason,
            "completion_tokens": len(rollout.token_ids), "prompt_tokens": len(rollout.prompt_token_ids),
            "details": dict(score.details),
        })
    return fresh


def _rewrite(path: Path, records: dict[str, list[dict]]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(rec, default=str) + "\n" for rows in records.values() for rec in rows)
    tmp.replace(path)


def _accumulate(previous: dict[str, float], current: dict[str, float]) -> dict[str, float]:
    """Timing over every session that generated into this directory; tokens/s = tokens / generate time."""
    total = {k: previous.get(k, 0) + current.get(k, 0) for k in ("generate_s", "verify_s", "wall_s",
                                                                   "completion_tokens", "prompt_tokens")}
    total["sessions"] = int(previous.get("sessions", 0)) + 1
    total["tokens_per_s"] = total["completion_tokens"] / total["generate_s"] if total["generate_s"] else None
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in total.items()}


def _accuracy_so_far(records: dict[str, list[dict]]) -> float:
    flat = [r["status"] == Status.CORRECT.value for rows in records.values() for r in rows]
    return sum(flat) / len(flat) if flat else 0.0


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


def summarize(examples: Sequence[Example], records: dict[str, list[dict]], samples: int) -> dict[str, Any]:
    """Metrics over the examples that have all their samples in `records`:
    accuracy = mean over problems of (correct samples / samples) (greedy accuracy, or avg@n);
    pass@k for every k ≤ samples (unbiased estimator); maj@k = majority vote of the first k
    samples' extracted answers (ties → the earliest answer); ci95 (method in ci_method)."""
    done = [e for e in examples if e.id in records]
    correct = {e.id: [r["status"] == Status.CORRECT.value for r in records[e.id]] for e in done}
    answers = {e.id: [r.get("extracted") for r in records[e.id]] for e in done}
    per_problem = {i: sum(c) / samples for i, c in correct.items()}
    flat = [r for e in done for r in records[e.id]]
    n = len(done)
    ci, method = _interval(list(per_problem.values()), samples)
    statuses = {s.value: sum(r["status"] == s.value for r in flat) for s in Status}
    summary: dict[str, Any] = {
        "n_problems": n, "n_expected": len(examples), "samples": samples,
        "metric": "accuracy" if samples == 1 else f"avg@{samples}",
        "accuracy": round(sum(per_problem.values()) / n, 6) if n else None,
        "ci95": ci, "ci_method": method,
        "mean_reward": round(sum(r["reward"] for r in flat) / len(flat), 6) if flat else None,
        "pass@k": {str(k): round(sum(pass_at_k(samples, sum(c), k) for c in correct.values()) / n, 6)
                   for k in range(1, samples + 1)} if n else {},
        "maj@k": {str(k): round(sum(maj_at_k(answers[i], correct[i], k) for i in correct) / n, 6)
                  for k in range(1, samples + 1)} if n else {},
        "status_counts": statuses,
        "truncated_rate": round(sum(r["finish_reason"] == "length" for r in flat) / len(flat), 6) if flat else None,
        "mean_completion_tokens": round(sum(r["completion_tokens"] for r in flat) / len(flat), 2) if flat else None,
    }
    for key, title in (("subject", "by_subject"), ("level", "by_level")):
        table = _group(per_problem, done, key, samples)
        if table:
            summary[title] = table
    return summary


def summary_table(summary: dict[str, Any], title: str | None = None):
    """A rich table of one summary: headline metrics, then per-subject/level rows when present."""
    from rich.table import Table

    table = Table(title=title or summary.get("name", "eval"))
    table.add_column("metric")
    table.add_column("value", justify="right")
    lo, hi = summary["ci95"]
    acc = summary["accuracy"]
    table.add_row(summary["metric"], "n/a" if acc is None else f"{acc:.2%}  [{lo:.2%}, {hi:.2%}] ({summary['ci_method']})")
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
        table.add_row("generation", f"{timing['completion_tokens']} tokens in {timing['generate_s']:.1f} s "
                                    f"= {timing['tokens_per_s']:.1f} tokens/s")
    for group in ("by_subject", "by_level"):
        for label, row in summary.get(group, {}).items():
            table.add_row(f"{group[3:]} {label}", f"{row['accuracy']:.2%}  (n={row['n']})")
    return table


class _progress:
    """A rich progress bar over samples with the running accuracy; a no-op when disabled."""

    def __init__(self, enabled: bool, name: str, total: int, done: int):
        self.enabled, self.name, self.total, self.done = enabled, name, total, done

    def __enter__(self):
        if not self.enabled:
            return lambda n, acc: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("acc {task.fields[acc]:.1%}"), TimeElapsedColumn(),
                            console=Console(stderr=True))
        self.bar.__enter__()
        task = self.bar.add_task(f"eval {self.name}", total=self.total, completed=self.done, acc=0.0)
        return lambda n, acc: self.bar.update(task, advance=n, acc=acc)

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)
