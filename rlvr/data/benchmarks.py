"""Benchmarks and datasets as `Example`s: named benchmarks from a local data dir or the Hub, and
any JSONL/Parquet file with a field mapping."""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvr.errors import InputError
from rlvr.io import read_jsonl
from rlvr.types import Example
from rlvr.verifiers.math.extract import find_boxes
from rlvr.verifiers.math.gold import gold_answer

__all__ = [
    "BENCHMARKS",
    "PromptStream",
    "benchmark_names",
    "format_spec",
    "held_out_spec",
    "is_data_file",
    "load_benchmark",
    "load_examples",
    "load_file",
    "load_spec",
    "parse_spec",
    "read_rows",
    "split_specs",
]

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
    return sorted([*BENCHMARKS, "arith"])


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
    procedurally generated set of `rlvr.data.arith` (options: seed, difficulty; n = limit)."""
    if name == "arith":
        from rlvr.data.arith import generate_arith  # written by the trainer; imported only when used

        return generate_arith(limit or 1000, split=split, **options)  # arith's own held-out split
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


#: the options a benchmark spec "NAME:OPTIONS" may give, by benchmark; a bare value is the first key's
SPEC_OPTIONS: dict[str, tuple[str, ...]] = {"arith": ("difficulty", "seed")}
#: what an option left out of a spec means (the generator's own defaults)
SPEC_DEFAULTS: dict[str, dict[str, Any]] = {"arith": {"difficulty": "medium", "seed": 0}}
_DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".gz")


def is_data_file(spec: str) -> bool:
    """Whether a --benchmark/--dataset value names a data file rather than a benchmark."""
    return spec.lower().endswith(_DATA_SUFFIXES) or Path(spec).is_file()


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """A benchmark spec as (name, options), every option present: `arith:easy`, `arith:easy,seed=3` and
    `arith:difficulty=easy,seed=0` name the same kind of set; a data file or a plain benchmark has none."""
    if is_data_file(spec):
        return spec, {}
    name, _, text = spec.strip().partition(":")
    allowed = SPEC_OPTIONS.get(name, ())
    options: dict[str, Any] = dict(SPEC_DEFAULTS.get(name, {}))
    for number, part in enumerate(p.strip() for p in text.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        key, value = (
            (key.strip(), value.strip()) if eq else (allowed[0] if allowed and number == 0 else "", key.strip())
        )
        if key not in allowed:
            known = f"options: {', '.join(allowed)}" if allowed else "it takes no options"
            raise InputError(f"benchmark spec {spec!r}: unknown option {part!r} ({known})")
        options[key] = (
            int(value) if isinstance(SPEC_DEFAULTS[name][key], int) and value.lstrip("-").isdigit() else value
        )
    if name == "arith":
        from rlvr.data.arith import DIFFICULTIES

        if options["difficulty"] not in DIFFICULTIES:
            raise InputError(
                f"benchmark spec {spec!r}: difficulty {options['difficulty']!r} is not one of {', '.join(DIFFICULTIES)}"
            )
        if not isinstance(options["seed"], int):
            raise InputError(f"benchmark spec {spec!r}: seed must be an integer")
    return name, options


def format_spec(name: str, options: dict[str, Any]) -> str:
    """The canonical text of a spec (`arith:easy,seed=0`): what results record and commands repeat."""
    if not options:
        return name
    keys = SPEC_OPTIONS[name]
    first, rest = options[keys[0]], [f"{k}={options[k]}" for k in keys[1:] if k in options]
    return f"{name}:" + ",".join([str(first), *rest])


def split_specs(text: str) -> list[str]:
    """A comma-separated list of specs; a `key=value` piece continues the spec before it
    (`arith:easy,seed=3,gsm8k` is two specs)."""
    specs: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        if specs and "=" in piece and ":" not in piece and ":" in specs[-1]:
            specs[-1] += "," + piece
        else:
            specs.append(piece)
    return specs


def load_spec(
    spec: str,
    split: str = "test",
    *,
    limit: int | None = None,
    data_dir: str | os.PathLike | None = None,
    prompt_field: str | None = None,
    answer_field: str | None = "answer",
    id_field: str | None = None,
) -> list[Example]:
    """The Examples a spec names: a data file (with its field mapping), or a benchmark's split with its options."""
    if is_data_file(spec):
        return load_file(spec, prompt_field=prompt_field, answer_field=answer_field, id_field=id_field, limit=limit)
    name, options = parse_spec(spec)
    return load_benchmark(name, split, data_dir=data_dir, limit=limit, **options)


def held_out_spec(config: Any) -> tuple[str, str, int | None]:
    """(spec, split, limit) of the held-out set a TrainConfig evaluates on: the one rule, used by the trainer's
    load and by rlvr.eval.spec.EvalSpec.from_train_config (so `rlvr eval` gets the same rows)."""
    data = config.data
    name = config.eval.dataset or data.dataset
    if name == "math" and not config.eval.dataset:
        name = "math500"  # MATH's train split is the test set minus MATH-500
    if Path(name).is_file() and not config.eval.dataset:
        raise InputError(
            f"--dataset {name}: a file has no held-out split; set eval.dataset (e.g. gsm8k) or eval.before_after=false"
        )
    if name == "arith":
        name = format_spec("arith", {"difficulty": data.difficulty or "medium", "seed": config.seed})
    elif name not in BENCHMARKS and not Path(name).is_file():
        raise InputError(f"--dataset {name!r}: not arith, a benchmark ({', '.join(sorted(BENCHMARKS))}) or a file")
    return name, config.eval.split, config.eval.limit


def load_examples(config: Any, *, held_out: bool = False) -> list[Example]:
    """The training examples (or the held-out eval examples) a TrainConfig names; the one place a
    dataset name (arith, a benchmark, a file) becomes Examples for training."""
    data = config.data
    if held_out:
        spec, split, limit = held_out_spec(config)
        return load_spec(spec, split, limit=limit, prompt_field=data.prompt_field, answer_field=data.answer_field)
    name = data.dataset
    if name == "arith":
        from rlvr.data.arith import generate_arith

        return generate_arith(
            data.limit or data.size, seed=config.seed, difficulty=data.difficulty or "medium", split=data.split
        )
    if name in BENCHMARKS:
        return load_benchmark(name, data.split, limit=data.limit)
    if Path(name).is_file():
        return load_file(name, prompt_field=data.prompt_field, answer_field=data.answer_field, limit=data.limit)
    raise InputError(f"--dataset {name!r}: not arith, a benchmark ({', '.join(sorted(BENCHMARKS))}) or a file")


class PromptStream:
    """Training rows in a seeded order, epoch after epoch; its position is saved in checkpoints."""

    def __init__(self, examples: Sequence[Example], seed: int, shuffle: bool, epoch: int = 0, index: int = 0):
        if not examples:
            raise InputError("the training dataset is empty")
        self.examples, self.seed, self.shuffle = list(examples), seed, shuffle
        self.epoch, self.index = epoch, index

    def _order(self) -> list[int]:
        order = list(range(len(self.examples)))
        if self.shuffle:
            random.Random(f"{self.seed}/{self.epoch}").shuffle(order)
        return order

    def take(self, k: int) -> list[Example]:
        taken: list[Example] = []
        order = self._order()
        while len(taken) < k:
            if self.index >= len(order):
                self.epoch, self.index = self.epoch + 1, 0
                order = self._order()
            taken.append(self.examples[order[self.index]])
            self.index += 1
        return taken

    def position(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}
