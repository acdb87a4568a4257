"""Benchmarks and datasets as `Example`s: named benchmarks from a local data dir or the Hub, and
any JSONL/Parquet file with a field mapping."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvr.errors import InputError
from rlvr.io import read_jsonl
from rlvr.types import Example
from rlvr.verifiers.math.boxes import find_boxes
from rlvr.verifiers.math.gold import gold_answer

__all__ = ["BENCHMARKS", "benchmark_names", "load_benchmark", "load_file", "read_rows"]

Row = dict[str, Any]


# --------------------------------------------------------------------------------------- rows


def read_rows(path: str | os.PathLike) -> list[Row]:
    """Every row of a .jsonl / .jsonl.gz / .json (list) / .parquet file, as dicts.
    An empty or unreadable file is an InputError naming the file (and row for bad JSON)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    elif name.endswith(".json"):
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: invalid JSON ({err.msg} at line {err.lineno})") from None
        if not isinstance(loaded, list):
            raise InputError(f"{path}: expected a JSON list of objects, got {type(loaded).__name__}")
        rows = loaded
    else:
        rows = [row for _, row in read_jsonl(path)]
    if not rows:
        raise InputError(f"{path}: empty file (no rows)")
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise InputError(f"{path}: row {number}: expected a JSON object, got {type(row).__name__}")
    return rows


def _field(row: Row, field: str, source: str, number: int) -> Any:
    value = row.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        known = ", ".join(sorted(row)) or "none"
        state = "empty" if field in row else "missing"
        raise InputError(f"{source}: row {number}: {state} field {field!r} (fields: {known})")
    return value


def _gold(value: Any, source: str, number: int, field: str) -> str:
    """The answer in a gold field, read by the math verifier's gold parser (`####`, boxes, bare)."""
    gold = gold_answer(value)
    if not gold:
        raise InputError(f"{source}: row {number}: field {field!r} has no final answer ({str(value)[-60:]!r})")
    return gold


# ------------------------------------------------------------------ named benchmark row makers


def _gsm8k(row: Row, number: int, source: str, split: str) -> Example:
    solution = str(_field(row, "answer", source, number))
    if "####" not in solution:
        raise InputError(f"{source}: row {number}: field 'answer' has no '#### N' final answer")
    gold = _gold(solution, source, number, "answer")
    question = _field(row, "question", source, number)
    return Example(f"gsm8k/{split}/{number - 1}", question, gold, {"benchmark": "gsm8k", "solution": solution})


def _level(value: Any) -> int | None:
    text = str(value).replace("Level", "").strip()
    return int(text) if text.isdigit() else None


def _math(row: Row, number: int, source: str, split: str) -> Example:
    problem = _field(row, "problem", source, number)
    solution = str(_field(row, "solution", source, number))
    if row.get("answer") is not None:
        gold = _gold(row["answer"], source, number, "answer")
    elif not find_boxes(solution):  # MATH has no answer field: the gold is in the solution's boxes
        raise InputError(
            f"{source}: row {number}: field 'solution' has no \\boxed{{}} answer and there is no 'answer' field"
        )
    else:
        gold = _gold(solution, source, number, "solution")
    subject = row.get("subject") or row.get("type")
    ident = row.get("unique_id") or f"math/{row.get('idx', number - 1)}"
    meta = {"benchmark": "math", "subject": subject, "level": _level(row.get("level")), "solution": solution}
    return Example(str(ident), problem, gold, meta)


def _competition(name: str) -> Callable[[Row, int, str, str], Example]:
    def make(row: Row, number: int, source: str, split: str) -> Example:
        problem = row.get("problem") or _field(row, "question", source, number)
        gold = _gold(_field(row, "answer", source, number), source, number, "answer")
        return Example(f"{name}/{row.get('id', number - 1)}", problem, gold, {"benchmark": name})

    return make


def _humaneval(row: Row, number: int, source: str, split: str) -> Example:
    fields = {f: _field(row, f, source, number) for f in ("task_id", "prompt", "test", "entry_point")}
    meta = {**fields, "benchmark": "humaneval", "task": "code", "canonical_solution": row.get("canonical_solution")}
    return Example(fields["task_id"], fields["prompt"], None, meta)


@dataclass(frozen=True)
class Benchmark:
    """Where a benchmark lives (local file per split, Hub name) and how a row becomes an Example."""

    files: dict[str, str]  # split -> path under the data dir
    hub: tuple[str, tuple[str | None, ...], dict[str, str]]  # (path, configs, split -> hub split)
    make: Callable[[Row, int, str, str], Example]


BENCHMARKS: dict[str, Benchmark] = {
    "gsm8k": Benchmark(
        {"test": "gsm8k/test.jsonl", "train": "gsm8k/train.jsonl"},
        ("openai/gsm8k", ("main",), {"test": "test", "train": "train"}),
        _gsm8k,
    ),
    "math": Benchmark(
        {"test": "math/test.jsonl"},
        (
            "EleutherAI/hendrycks_math",
            (
                "algebra",
                "counting_and_probability",
                "geometry",
                "intermediate_algebra",
                "number_theory",
                "prealgebra",
                "precalculus",
            ),
            {"test": "test"},
        ),
        _math,
    ),
    "math500": Benchmark({"test": "math500/test.jsonl"}, ("HuggingFaceH4/MATH-500", (None,), {"test": "test"}), _math),
    "aime24": Benchmark(
        {"test": "aime24/test.jsonl"}, ("HuggingFaceH4/aime_2024", (None,), {"test": "train"}), _competition("aime24")
    ),
    "amc23": Benchmark(
        {"test": "amc23/test.jsonl"}, ("math-ai/amc23", (None,), {"test": "test"}), _competition("amc23")
    ),
    "humaneval": Benchmark(
        {"test": "humaneval/HumanEval.jsonl.gz"}, ("openai/openai_humaneval", (None,), {"test": "test"}), _humaneval
    ),
}


def benchmark_names() -> list[str]:
    return sorted([*BENCHMARKS, "arith", "reasoning_gym"])


def _data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    chosen = data_dir or os.environ.get("RLVR_DATA_DIR")
    return Path(chosen) if chosen else None


def _source_rows(name: str, split: str, data_dir: Path | None) -> tuple[str, list[Row]]:
    bench = BENCHMARKS[name]
    if data_dir is not None:
        path = data_dir / bench.files[split]
        if path.exists():
            return str(path), read_rows(path)
    hub_path, configs, splits = bench.hub
    import datasets  # imported before we quiet huggingface_hub: importing it sets the level

    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # offline, its retry warnings would bury our one-line error
    try:
        rows: list[Row] = []
        for config in configs:
            rows.extend(datasets.load_dataset(hub_path, config, split=splits[split]))
    # no network or not found (OSError), unknown config/split or repo id (ValueError), a broken download
    # (datasets' own errors): say where we looked; anything else is a bug and shows its traceback
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as err:
        where = f"{data_dir / bench.files[split]} (missing) and " if data_dir else "RLVR_DATA_DIR is unset; "
        raise InputError(f"benchmark {name!r} split {split!r}: {where}the Hub ({hub_path}) failed: {err}") from None
    finally:
        hub_log.setLevel(level)
    return f"hub:{hub_path}", [dict(r) for r in rows]


def load_benchmark(
    name: str,
    split: str = "test",
    *,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    **options: Any,
) -> list[Example]:
    """A named benchmark's split as Examples, in file order, first `limit` of them.

    Local files under `data_dir` (default `$RLVR_DATA_DIR`, laid out like shared/data) win; the
    Hub is the fallback. `math` split "train" is the 4,500 MATH test problems that are not in
    MATH-500 (the "Let's Verify Step by Step" split), matched by exact problem text. `arith` is the
    procedurally generated set of `rlvr.data.arith` (options: seed, difficulty; n = limit), and `reasoning_gym`
    a reasoning-gym task's (options: task, seed, size, config; rlvr.data.reasoning_gym)."""
    if name == "arith":
        from rlvr.data.arith import generate_arith  # written by the trainer; imported only when used

        return generate_arith(limit or 1000, split=split, **options)  # arith's own held-out split
    if name == "reasoning_gym":
        from rlvr.data.reasoning_gym import generate_reasoning_gym

        return generate_reasoning_gym(limit or 1000, split=split, **options)  # split like arith's
    if name not in BENCHMARKS:
        raise InputError(f"unknown benchmark {name!r} (known: {', '.join(benchmark_names())})")
    root = _data_dir(data_dir)
    if name == "math" and split == "train":
        held_out = {e.prompt for e in load_benchmark("math500", data_dir=root)}
        examples = [e for e in load_benchmark("math", data_dir=root) if e.prompt not in held_out]
    else:
        if split not in BENCHMARKS[name].files:
            raise InputError(f"benchmark {name!r} has no split {split!r} (splits: {', '.join(BENCHMARKS[name].files)})")
        source, rows = _source_rows(name, split, root)
        examples = [BENCHMARKS[name].make(row, i, source, split) for i, row in enumerate(rows, 1)]
    return examples[:limit] if limit is not None else examples


def load_file(
    path: str | os.PathLike,
    *,
    prompt_field: str | None = None,
    answer_field: str | None = "answer",
    id_field: str | None = None,
    limit: int | None = None,
) -> list[Example]:
    """Examples from any JSONL/JSON/Parquet file. `prompt_field` defaults to the first of
    problem/question/prompt present in row 1; `answer_field=None` means no gold (e.g. code tasks);
    ids come from `id_field` or the row number. Every other column goes into metadata."""
    rows = read_rows(path)
    source = str(path)
    if prompt_field is None:
        prompt_field = next((f for f in ("problem", "question", "prompt") if f in rows[0]), "problem")
    used = {prompt_field, answer_field, id_field}
    stem = Path(path).name.split(".")[0]
    examples = []
    for number, row in enumerate(rows[:limit] if limit is not None else rows, 1):
        prompt = str(_field(row, prompt_field, source, number))
        answer = (
            _gold(_field(row, answer_field, source, number), source, number, answer_field) if answer_field else None
        )
        ident = str(_field(row, id_field, source, number)) if id_field else f"{stem}/{number - 1}"
        metadata = {k: v for k, v in row.items() if k not in used}
        examples.append(Example(ident, prompt, answer, metadata))
    return examples
