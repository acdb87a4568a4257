"""Loaders on the shared reference files, and clear errors for malformed ones."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rlvr.cli import main
from rlvr.data.benchmarks import load_benchmark, load_file
from rlvr.errors import InputError


@pytest.mark.parametrize(
    "name, split, rows",
    [
        ("gsm8k", "test", 1319),
        ("gsm8k", "train", 7473),
        ("math", "test", 5000),
        ("math", "train", 4500),
        ("math500", "test", 500),
        ("aime24", "test", 30),
        ("amc23", "test", 40),
        ("humaneval", "test", 164),
    ],
)
def test_row_counts_on_shared_files(data_dir, name, split, rows):
    examples = load_benchmark(name, split, data_dir=data_dir)
    assert len(examples) == rows
    assert len({e.id for e in examples}) == rows, "ids must be unique (resume and per-problem metrics use them)"
    assert all(e.prompt.strip() for e in examples)
    if name != "humaneval":
        assert all(e.answer for e in examples)


def test_limit_keeps_file_order(data_dir):
    first = load_benchmark("gsm8k", data_dir=data_dir, limit=3)
    assert [e.id for e in first] == ["gsm8k/test/0", "gsm8k/test/1", "gsm8k/test/2"]
    assert first[0].prompt.startswith("Janet") and first[0].answer == "18"


def test_data_dir_defaults_to_env(data_dir, monkeypatch):
    monkeypatch.setenv("RLVR_DATA_DIR", str(data_dir))
    assert len(load_benchmark("aime24")) == 30


def test_gsm8k_gold_is_the_number_after_hashes_without_separators(data_dir):
    examples = load_benchmark("gsm8k", data_dir=data_dir)
    raw = [json.loads(line) for line in (data_dir / "gsm8k/test.jsonl").read_text().splitlines()]
    with_commas = [i for i, r in enumerate(raw) if "," in r["answer"].rsplit("####", 1)[1]]
    assert with_commas, "the test set has golds like '#### 1,234'"
    for i in with_commas:
        assert examples[i].answer == raw[i]["answer"].rsplit("####", 1)[1].strip().replace(",", "")
        assert "," not in examples[i].answer
    assert all("####" not in e.answer for e in examples)


def test_math_gold_comes_from_the_last_box(data_dir):
    examples = load_benchmark("math", data_dir=data_dir)
    assert examples[0].answer == "2" and examples[0].metadata["subject"] == "Algebra"
    assert examples[0].metadata["level"] == 3
    assert {e.metadata["level"] for e in examples} == {1, 2, 3, 4, 5}
    # MATH-500 has an answer field; the same problems in MATH agree with it after box extraction
    by_problem = {e.prompt: e.answer for e in examples}
    math500 = load_benchmark("math500", data_dir=data_dir)
    agree = sum(by_problem[e.prompt] == e.answer for e in math500)
    assert agree >= 490, f"only {agree}/500 MATH-500 answers equal the box of the MATH solution"


def test_math_train_split_is_math_minus_math500(data_dir):
    train = load_benchmark("math", "train", data_dir=data_dir)
    held_out = {e.prompt for e in load_benchmark("math500", data_dir=data_dir)}
    everything = {e.prompt for e in load_benchmark("math", data_dir=data_dir)}
    assert len(train) == 4500 and not {e.prompt for e in train} & held_out
    assert {e.prompt for e in train} | held_out == everything


def test_competition_and_code_benchmarks(data_dir):
    amc = load_benchmark("amc23", data_dir=data_dir)
    assert amc[0].answer == "27"  # stored as the float 27.0
    aime = load_benchmark("aime24", data_dir=data_dir)
    assert all(e.answer.isdigit() for e in aime)
    human = load_benchmark("humaneval", data_dir=data_dir)
    assert human[0].id == "HumanEval/0"
    assert {"prompt", "test", "entry_point"} <= set(human[0].metadata)
    assert human[0].metadata["entry_point"] == "has_close_elements" and human[0].metadata["task"] == "code"


def _write(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    "rows, message",
    [
        ([], "empty file"),
        ([{"problem": "1+1?", "answer": "2"}, {"problem": "2+2?"}], "row 2: missing field 'answer'"),
        ([{"problem": "1+1?", "answer": "2"}, {"problem": "", "answer": "4"}], "row 2: empty field 'problem'"),
        ([{"problem": "a", "answer": "1"}, {"problem": "b", "answer": "2"}, '{"problem": "c", '], "line 3: bad JSON"),
        (["[1, 2]"], "line 1: expected a JSON object"),
    ],
)
def test_malformed_files_name_file_row_and_field(tmp_path, rows, message):
    path = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(InputError) as err:
        load_file(path)
    assert message in str(err.value) and "bad.jsonl" in str(err.value)


@pytest.mark.parametrize(
    "bench_name, rows, message",
    [
        ("gsm8k", [{"question": "q", "answer": "no final"}], "row 1: field 'answer' has no '#### N'"),
        ("gsm8k", [{"question": "q", "answer": "#### 1"}, {"answer": "#### 2"}], "row 2: missing field 'question'"),
        (
            "math",
            [{"problem": "p", "solution": "no box here", "level": "Level 1", "type": "Algebra"}],
            "row 1: field 'solution' has no \\boxed{}",
        ),
        ("math500", [], "empty file"),
    ],
)
def test_malformed_benchmark_files(tmp_path, bench_name, rows, message):
    relative = {"gsm8k": "gsm8k/test.jsonl", "math": "math/test.jsonl", "math500": "math500/test.jsonl"}[bench_name]
    _write(tmp_path / relative, rows)
    with pytest.raises(InputError) as err:
        load_benchmark(bench_name, data_dir=tmp_path)
    assert message in str(err.value) and relative in str(err.value)


def test_gsm8k_thousands_separator_in_a_local_file(tmp_path):
    _write(tmp_path / "gsm8k/test.jsonl", [{"question": "q", "answer": "steps\n#### 1,234,567"}])
    assert load_benchmark("gsm8k", data_dir=tmp_path)[0].answer == "1234567"


def test_load_file_field_mapping_jsonl_gz_and_parquet(tmp_path):
    rows = [
        {"q": "What is 2+3?", "gold": 5.0, "key": "a", "topic": "sums"},
        {"q": "What is 7-2?", "gold": "5", "key": "b", "topic": "differences"},
    ]
    gz = tmp_path / "set.jsonl.gz"
    with gzip.open(gz, "wt") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "set.parquet"
    pq.write_table(pa.Table.from_pylist([{**r, "gold": str(r["gold"])} for r in rows]), parquet)
    for path in (gz, parquet):
        examples = load_file(path, prompt_field="q", answer_field="gold", id_field="key")
        assert [(e.id, e.prompt, e.answer) for e in examples] == [
            ("a", "What is 2+3?", "5" if path == gz else "5.0"),
            ("b", "What is 7-2?", "5"),
        ]
        assert examples[1].metadata == {"topic": "differences"}
    with pytest.raises(InputError, match="row 1: missing field 'question'"):
        load_file(gz, prompt_field="question")


def test_load_file_default_prompt_field(tmp_path):
    path = _write(tmp_path / "qa.jsonl", [{"question": "q1", "answer": "1"}])
    assert load_file(path)[0].prompt == "q1" and load_file(path)[0].id == "qa/0"


def test_unknown_benchmark_and_split():
    with pytest.raises(InputError, match="unknown benchmark 'gsm9k'"):
        load_benchmark("gsm9k")
    with pytest.raises(InputError, match="no split 'train'"):
        load_benchmark("math500", "train")


@pytest.mark.parametrize(
    "rows, message",
    [([{"problem": "x"}], "row 1: missing field 'answer'"), ([], "empty file")],
)
def test_cli_bad_data_file_exits_2_with_one_line(tmp_path, rows, message):
    path = _write(tmp_path / "bad.jsonl", rows)
    result = CliRunner().invoke(main, ["eval", "--model", "unused", "--benchmark", str(path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0] and "bad.jsonl" in lines[0]


def test_arith_delegates_to_the_generator():
    first = load_benchmark("arith", limit=5, seed=3)
    assert len(first) == 5 and all(e.answer for e in first)
    assert [e.prompt for e in first] == [e.prompt for e in load_benchmark("arith", limit=5, seed=3)]


def test_hub_by_name_when_no_local_file(tmp_path, monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, config, split):
        calls.append((path, config, split))
        if path == "HuggingFaceH4/aime_2024":
            return [{"id": 60, "problem": "AIME p", "solution": "...", "answer": "204"}]
        return [{"problem": f"p {config}", "solution": "so \\boxed{3}", "level": "Level 2", "type": config}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    examples = load_benchmark("math", data_dir=tmp_path)  # tmp_path holds no math/test.jsonl
    assert calls[0] == ("EleutherAI/hendrycks_math", "algebra", "test") and len(calls) == 7
    assert len(examples) == 7 and examples[0].answer == "3" and examples[0].metadata["level"] == 2
    aime = load_benchmark("aime24", data_dir=tmp_path)
    assert calls[-1] == ("HuggingFaceH4/aime_2024", None, "train") and (aime[0].id, aime[0].answer) == (
        "aime24/60",
        "204",
    )


def test_hub_failure_is_one_error_saying_where_it_looked(tmp_path, monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(InputError) as err:
        load_benchmark("gsm8k", data_dir=tmp_path)
    message = str(err.value)
    assert "gsm8k/test.jsonl (missing)" in message and "openai/gsm8k" in message and "no network" in message
