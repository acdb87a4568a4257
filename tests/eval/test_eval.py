"""The eval path: summary metrics, samples.jsonl + summary.json, resume, HumanEval through the
code verifier, and the eval/bench CLI on a tiny random model (hf engine; vllm via the shared one)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rlvr.cli import main
from rlvr.data.benchmarks import load_benchmark
from rlvr.errors import InputError
from rlvr.eval.run import run_eval
from rlvr.eval.summary import summarize
from rlvr.rollout import SamplingConfig
from rlvr.types import Example, Rollout
from rlvr.verifiers import build_verifier

SAMPLE_FIELDS = {
    "id",
    "sample",
    "prompt",
    "completion",
    "gold",
    "extracted",
    "reward",
    "status",
    "finish_reason",
    "completion_tokens",
    "prompt_tokens",
    "details",
}


class Tokenizer:
    chat_template = None


class ScriptedEngine:
    """Returns given completions (cycled per prompt): lets a test know the right verdicts."""

    kind = "scripted"
    tokenizer = Tokenizer()

    def __init__(self, completions: dict[str, list[str]]):
        self.completions, self.prompts_seen = completions, []

    def generate(self, prompts, n=1, sampling=None):
        self.prompts_seen.extend(prompts)
        out = []
        for i, prompt in enumerate(prompts):
            texts = next(v for k, v in self.completions.items() if k in prompt)
            out += [
                Rollout(i, texts[j % len(texts)], (1,) * (j + 1), (0.0,) * (j + 1), "stop", (5, 6)) for j in range(n)
            ]
        return out

    def close(self):
        pass


class Counting:
    """A real engine that remembers how many prompts it was asked to generate for."""

    def __init__(self, engine):
        self.engine, self.prompts = engine, 0
        self.tokenizer, self.kind = engine.tokenizer, engine.kind

    def generate(self, prompts, n=1, sampling=None):
        self.prompts += len(prompts)
        return self.engine.generate(prompts, n, sampling)


@pytest.fixture(scope="module")
def hf_engine(tiny_model):
    from rlvr.rollout import create_engine

    engine = create_engine("hf", tiny_model, seed=0, max_model_len=2048)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def math_verifier():
    return build_verifier("math")


def _examples() -> list[Example]:
    return [
        Example("a", "What is 2+2?", "4", {"subject": "Algebra", "level": 1}),
        Example("b", "What is 3*3?", "9", {"subject": "Algebra", "level": 2}),
        Example("c", "What is 10-1?", "9", {"subject": "Geometry", "level": 2}),
    ]


def test_scripted_completions_give_hand_computed_metrics(tmp_path, math_verifier):
    engine = ScriptedEngine(
        {
            "2+2": ["\\boxed{4}", "\\boxed{5}", "\\boxed{5}"],  # 1 of 3 right, majority wrong
            "3*3": ["\\boxed{8}", "\\boxed{9}", "no idea"],  # 1 of 3; tie 8 vs 9 → first (8) → maj wrong
            "10-1": ["\\boxed{9}", "\\boxed{9}", "\\boxed{9}"],  # all right
        }
    )
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=8, seed=0)
    summary = run_eval(
        engine,
        _examples(),
        math_verifier,
        sampling=sampling,
        samples=3,
        style="plain",
        output_dir=tmp_path,
        progress=False,
    )
    assert summary["metric"] == "avg@3"
    assert summary["accuracy"] == pytest.approx((1 / 3 + 1 / 3 + 1) / 3, abs=1e-6)
    # pass@2 per problem with n=3: c=1 → 1 - C(2,2)/C(3,2) = 2/3; c=3 → 1
    assert summary["pass@k"]["2"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3, abs=1e-6)
    assert summary["pass@k"]["3"] == pytest.approx(1.0)
    assert summary["maj@k"]["3"] == pytest.approx(1 / 3, abs=1e-6)
    assert summary["maj@k"]["1"] == pytest.approx(2 / 3, abs=1e-6)  # the first samples: 4 ✓, 8 ✗, 9 ✓
    assert summary["status_counts"]["correct"] == 5 and summary["status_counts"]["no_answer"] == 1
    assert summary["by_subject"]["Geometry"]["n"] == 1 and summary["by_subject"]["Geometry"]["accuracy"] == 1.0
    assert summary["by_subject"]["Algebra"]["accuracy"] == pytest.approx(1 / 3, abs=1e-6)
    assert set(summary["by_level"]) == {"1", "2"} and summary["ci_method"] == "bootstrap"
    lines = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 9 and all(set(line) == SAMPLE_FIELDS for line in lines)
    assert [line["extracted"] for line in lines[:3]] == ["4", "5", "5"]
    assert json.loads((tmp_path / "summary.json").read_text())["accuracy"] == summary["accuracy"]


def test_summarize_greedy_uses_wilson():
    examples = _examples()
    records = {
        e.id: [
            {
                "status": s,
                "reward": float(s == "correct"),
                "extracted": None,
                "finish_reason": "length",
                "completion_tokens": 4,
            }
        ]
        for e, s in zip(examples, ["correct", "wrong", "correct"], strict=True)
    }
    summary = summarize(examples, records, 1)
    assert summary["accuracy"] == pytest.approx(2 / 3, abs=1e-6) and summary["metric"] == "accuracy"
    assert summary["ci_method"] == "wilson" and summary["ci95"][0] < 2 / 3 < summary["ci95"][1]
    assert summary["truncated_rate"] == 1.0 and summary["pass@k"] == {"1": pytest.approx(2 / 3, abs=1e-6)}


def test_tiny_model_runs_the_eval_path(tmp_path, hf_engine, math_verifier, data_dir):
    examples = load_benchmark("gsm8k", data_dir=data_dir, limit=3)
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=6)
    summary = run_eval(hf_engine, examples, math_verifier, sampling=sampling, output_dir=tmp_path, progress=False)
    assert summary["n_problems"] == 3 and summary["samples"] == 1
    lines = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == [e.id for e in examples]
    assert all(
        line["prompt"].endswith("<|im_start|>assistant\n") and 1 <= line["completion_tokens"] <= 6 for line in lines
    )
    assert summary["timing"]["completion_tokens"] == sum(line["completion_tokens"] for line in lines)
    assert summary["timing"]["tokens_per_s"] > 0


def test_resume_skips_finished_samples(tmp_path, hf_engine, math_verifier, data_dir):
    examples = load_benchmark("gsm8k", data_dir=data_dir, limit=5)
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=4, seed=1)
    first = Counting(hf_engine)
    run_eval(
        first,
        examples[:3],
        math_verifier,
        sampling=sampling,
        samples=2,
        output_dir=tmp_path,
        progress=False,
        chunk_size=2,
    )
    assert first.prompts == 3
    before = (tmp_path / "samples.jsonl").read_text().splitlines()
    again = Counting(hf_engine)
    summary = run_eval(
        again, examples, math_verifier, sampling=sampling, samples=2, output_dir=tmp_path, progress=False
    )
    assert again.prompts == 2, "only the two new problems are generated"
    after = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert after[:6] == before and len(after) == 10 and summary["n_problems"] == 5
    assert summary["timing"]["sessions"] == 2

    # a run killed mid-example: its partial samples are dropped and only it is regenerated
    (tmp_path / "samples.jsonl").write_text("\n".join(after[:-1]) + "\n" + after[-1][:20])
    third = Counting(hf_engine)
    summary = run_eval(
        third, examples, math_verifier, sampling=sampling, samples=2, output_dir=tmp_path, progress=False
    )
    assert third.prompts == 1 and summary["n_problems"] == 5
    ids = [json.loads(line)["id"] for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(e.id for e in examples for _ in range(2))

    with pytest.raises(InputError, match=r"other settings .*sampling"):
        run_eval(
            third,
            examples,
            math_verifier,
            sampling=SamplingConfig(temperature=0.5, max_new_tokens=4, seed=1),
            samples=2,
            output_dir=tmp_path,
            progress=False,
        )


@pytest.mark.slow
def test_cli_eval_and_bench_end_to_end(tmp_path, tiny_model, monkeypatch, data_dir):
    from rlvr.testing import make_tiny_model

    runner = CliRunner()
    out = tmp_path / "eval"
    args = ["--benchmark", "gsm8k,math500", "--limit", "2", "--engine", "hf", "--max-new-tokens", "5"]
    result = runner.invoke(main, ["eval", "--model", str(tiny_model), *args, "--output", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("gsm8k", "math500"):
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["n_problems"] == 2 and summary["engine"] == "hf" and summary["benchmark"] == name
        assert len((out / name / "samples.jsonl").read_text().splitlines()) == 2
    assert "by_subject" in json.loads((out / "math500" / "summary.json").read_text())

    other = make_tiny_model(tmp_path / "other", seed=1)
    bench_out = tmp_path / "bench"
    result = runner.invoke(main, ["bench", str(tiny_model), str(other), *args, "--output", str(bench_out)])
    assert result.exit_code == 0, result.output
    table = json.loads((bench_out / "comparison.json").read_text())
    assert set(table) == {str(tiny_model), str(other)} and set(table[str(other)]) == {"gsm8k", "math500"}
    assert (bench_out / "comparison.png").stat().st_size > 1000
    table_lines, settings = (bench_out / "comparison.md").read_text().split("\n\n")
    assert table_lines.count("\n") == 3  # header, rule, two checkpoints
    assert settings.splitlines() == [f"- {b} test · n=2 · 5 new tokens · float32 · hf" for b in ("gsm8k", "math500")]
    assert "warning" not in result.output  # both checkpoints made with the same settings

    # finished eval dirs are reused: no engine is even started the second time
    def no_engine(*a, **k):
        raise AssertionError("finished results must be reused, not regenerated")

    monkeypatch.setattr("rlvr.cli.eval._engine", no_engine)
    result = runner.invoke(main, ["bench", str(tiny_model), str(other), *args, "--output", str(bench_out)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--benchmark", "gsm9k"], "unknown benchmark 'gsm9k'"),
        (["--verifier", "nope"], "--verifier nope: unknown verifier 'nope'"),
        (["--samples", "4", "--temperature", "0"], "identical samples"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, tiny_model, argv, message):
    result = CliRunner().invoke(
        main, ["eval", "--model", str(tiny_model), "--limit", "1", "--engine", "hf", "--output", str(tmp_path), *argv]
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_humaneval_without_code_verifier_exits_2(monkeypatch, tiny_model):
    from rlvr.verifiers import registry

    monkeypatch.setattr(registry, "default_registry", lambda: registry.Registry(("rlvr.verifiers.math.verifier",)))
    result = CliRunner().invoke(main, ["eval", "--model", str(tiny_model), "--benchmark", "humaneval", "--limit", "1"])
    assert result.exit_code == 2
    assert "unknown verifier 'code'" in result.output and "HumanEval needs the `code` verifier" in result.output


def test_tiny_model_eval_path_on_the_shared_vllm_engine(tmp_path, vllm_engine, math_verifier, data_dir):
    examples = load_benchmark("math500", data_dir=data_dir, limit=3)
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=5, seed=3)
    summary = run_eval(
        vllm_engine, examples, math_verifier, sampling=sampling, samples=2, output_dir=tmp_path, progress=False
    )
    lines = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [(line["id"], line["sample"]) for line in lines] == [(e.id, i) for e in examples for i in range(2)]
    assert summary["metric"] == "avg@2" and set(summary["pass@k"]) == {"1", "2"} and "by_level" in summary
    assert summary["timing"]["completion_tokens"] == sum(line["completion_tokens"] for line in lines) > 0


def _humaneval_engine(data_dir):
    """Problem 0 answered with its canonical solution, problem 1 with a wrong one."""
    rows = {e.metadata["entry_point"]: e for e in load_benchmark("humaneval", data_dir=data_dir, limit=2)}
    right = rows["has_close_elements"]
    fenced = f"```python\n{right.prompt}{right.metadata['canonical_solution']}```"
    wrong = "```python\ndef separate_paren_groups(paren_string):\n    return []\n```"
    return ScriptedEngine({"has_close_elements": [fenced], "separate_paren_groups": [wrong]}), list(rows.values())


def test_humaneval_runs_through_the_code_verifier(tmp_path, data_dir):
    from rlvr.cli.eval import _verifier

    engine, examples = _humaneval_engine(data_dir)
    verifier = _verifier(None, "humaneval", "local")
    assert verifier.name == "code" and verifier.backend == "local"
    summary = run_eval(
        engine,
        examples,
        verifier,
        sampling=SamplingConfig(temperature=0.0),
        style="plain",
        output_dir=tmp_path,
        progress=False,
    )
    lines = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [line["status"] for line in lines] == ["correct", "wrong"]
    assert lines[0]["details"]["backend"] == "local" and summary["accuracy"] == 0.5


def test_cli_humaneval_with_a_sandbox_option(tmp_path, tiny_model, monkeypatch):
    args = [
        "eval",
        "--model",
        str(tiny_model),
        "--benchmark",
        "humaneval",
        "--limit",
        "1",
        "--engine",
        "hf",
        "--max-new-tokens",
        "4",
        "--output",
        str(tmp_path),
    ]
    result = CliRunner().invoke(main, [*args, "--sandbox", "local"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "humaneval" / "summary.json").read_text())
    assert summary["verifier"] == "code" and summary["n_problems"] == 1
    assert summary["status_counts"]["correct"] == 0, "4 random tokens cannot pass HumanEval/0"

    import rlvr.sandboxes

    monkeypatch.setattr(rlvr.sandboxes, "check_backends", lambda: {"docker": {"available": False, "why": "no daemon"}})
    result = CliRunner().invoke(main, [*args, "--sandbox", "docker"])
    assert result.exit_code == 2 and "error: --sandbox docker: not available here (no daemon)" in result.output


@pytest.mark.parametrize(
    "spec, sandbox, expected",
    [
        ("code", "local", "code:backend=local"),
        ("code", None, "code"),
        ("math", "bwrap", "math"),
        ("code:partial=true", "bwrap", "code:backend=bwrap,partial=true"),
        ("code:backend=docker", "local", "code:backend=docker"),  # the spec's own choice wins
        ("math+0.5*code", "local", "math+0.5*code:backend=local"),
    ],
)
def test_sandbox_option_reaches_code_terms(spec, sandbox, expected):
    from rlvr.cli.eval import _with_sandbox

    assert _with_sandbox(spec, sandbox) == expected


def test_cli_eval_on_a_data_file_with_field_mapping(tmp_path, tiny_model):
    data = tmp_path / "data" / "mine.jsonl"
    data.parent.mkdir()
    data.write_text(
        json.dumps({"q": "What is 2+3?", "gold": 5, "key": "p1"})
        + "\n"
        + json.dumps({"q": "What is 7-2?", "gold": 5, "key": "p2"})
        + "\n"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "--model",
            str(tiny_model),
            "--benchmark",
            str(data),
            "--engine",
            "hf",
            "--max-new-tokens",
            "3",
            "--prompt-field",
            "q",
            "--answer-field",
            "gold",
            "--id-field",
            "key",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (out / "mine.jsonl" / "samples.jsonl").read_text().splitlines()]
    assert [(line["id"], line["gold"]) for line in lines] == [("p1", "5"), ("p2", "5")]
    assert "What is 2+3?" in lines[0]["prompt"]


class Recording(ScriptedEngine):
    """A scripted engine that also keeps the sampling settings it was called with."""

    def generate(self, prompts, n=1, sampling=None):
        self.sampling = sampling
        return super().generate(prompts, n, sampling)


BEST_OF_4 = {
    "2+2": ["\\boxed{5}", "<think>x</think> \\boxed{4}", "\\boxed{5}", "\\boxed{4}"],  # vote 5-4 tie → 5 (first): ✗
    "3*3": ["\\boxed{9}", "\\boxed{9}", "<think>y</think> \\boxed{8}", "no"],  # vote 9 ✓; think_format picks 8 ✗
    "10-1": ["no", "no", "no", "no"],  # nothing to vote for, nothing well-formed: sample 0 ✗
}


@pytest.mark.parametrize(
    "select, picks, accuracy",
    [
        ("majority", [0, 0, 0], 1 / 3),
        ("think_format", [1, 2, 0], 1 / 3),
        ("boxed_format", [0, 0, 0], 1 / 3),  # every box is balanced: all tie at 1 (or 0), the first wins
    ],
)
def test_best_of_n_picks_without_the_gold_and_reports_beside_pass_and_maj(
    tmp_path, math_verifier, select, picks, accuracy
):
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=8, seed=0)
    summary = run_eval(
        ScriptedEngine(BEST_OF_4),
        _examples(),
        math_verifier,
        sampling=sampling,
        samples=4,
        style="plain",
        output_dir=tmp_path,
        progress=False,
        select=select,
        workers=0,
    )
    at_n = summary["at_n"]
    assert at_n["pass@4"]["value"] == pytest.approx(2 / 3, abs=1e-6) and at_n["maj@4"]["value"] == pytest.approx(
        1 / 3, abs=1e-6
    )
    assert at_n["avg@4"]["value"] == pytest.approx(1 / 3, abs=1e-6)
    best = at_n[f"best-of-4@{select}"]
    assert best["value"] == pytest.approx(accuracy, abs=1e-6) and best["ci95"][0] < accuracy < best["ci95"][1]
    assert summary["best_of_n"] == {select: best}
    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    scores = [[r["select_scores"][select] for r in rows[g * 4 : (g + 1) * 4]] for g in range(3)]
    from rlvr.eval.best_of_n import chosen

    assert [chosen(s) for s in scores] == picks
    assert json.loads((tmp_path / "config.json").read_text())["select"] == [select]
    with pytest.raises(InputError, match=r"other settings .*select"):  # samples scored for another selector
        run_eval(
            ScriptedEngine(BEST_OF_4),
            _examples(),
            math_verifier,
            sampling=sampling,
            samples=4,
            style="plain",
            output_dir=tmp_path,
            progress=False,
            select="majority" if select != "majority" else "think_format",
        )


def test_several_selectors_share_one_set_of_samples(math_verifier):
    summary = run_eval(
        ScriptedEngine(BEST_OF_4),
        _examples(),
        math_verifier,
        samples=4,
        style="plain",
        progress=False,
        sampling=SamplingConfig(temperature=1.0, max_new_tokens=8),
        select=["majority", "think_format"],
        workers=0,
    )
    assert summary["at_n"]["best-of-4@majority"]["value"] == summary["maj@k"]["4"]
    assert set(summary["best_of_n"]) == {"majority", "think_format"}


@pytest.mark.parametrize(
    "select, samples, message", [("majority", 1, "--samples 2 or more"), ("math", 3, "math needs the gold")]
)
def test_bad_selectors_are_input_errors(math_verifier, select, samples, message):
    with pytest.raises(InputError, match=message):
        run_eval(
            ScriptedEngine(BEST_OF_4),
            _examples(),
            math_verifier,
            samples=samples,
            style="plain",
            progress=False,
            sampling=SamplingConfig(temperature=1.0),
            select=select,
        )


def test_lm_eval_style_prompts_stops_and_stock_metrics(tmp_path, math_verifier, data_dir):
    from rlvr.data.templates import render_prompt

    examples = load_benchmark("gsm8k", data_dir=data_dir, limit=2)
    engine = Recording(
        {
            examples[0].prompt: [f"She sells eggs.\n#### {examples[0].answer}"],  # all three right
            examples[1].prompt: [f"It takes {examples[1].answer} bolts, so 1 more."],
        }
    )  # flexible: 1 ✗
    summary = run_eval(
        engine,
        examples,
        math_verifier,
        sampling=SamplingConfig(temperature=0.0, max_new_tokens=256),
        style="lm-eval",
        output_dir=tmp_path,
        progress=False,
        workers=0,
    )
    assert engine.sampling.stop == ("Question:", "</s>", "<|im_end|>")
    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == [render_prompt(e, None, style="lm-eval") for e in examples]
    assert rows[0]["lm_eval"]["strict-match"] == {"extracted": examples[0].answer, "correct": True}
    assert rows[1]["lm_eval"]["flexible-extract"] == {"extracted": "1", "correct": False}
    assert [r["status"] for r in rows] == ["correct", "wrong"]  # rlvr's verdict: "the last number" is 1 too
    assert (
        summary["lm_eval"]["strict-match"]["accuracy"] == 0.5
        and summary["lm_eval"]["flexible-extract"]["accuracy"] == 0.5
    )
    assert {"completion", "extracted"} <= set(rows[0])


def test_cli_lm_eval_style_and_best_of_n(tmp_path, tiny_model):
    out = tmp_path / "lm"
    base = ["eval", "--model", str(tiny_model), "--benchmark", "gsm8k", "--limit", "2", "--engine", "hf"]
    result = CliRunner().invoke(main, [*base, "--style", "lm-eval", "--output", str(out)])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "gsm8k" / "config.json").read_text())
    assert config["style"] == "lm-eval" and config["sampling"]["max_new_tokens"] == 256  # the task's own length
    assert set(json.loads((out / "gsm8k" / "summary.json").read_text())["lm_eval"]) == {
        "strict-match",
        "flexible-extract",
    }

    out = tmp_path / "best"
    result = CliRunner().invoke(
        main,
        [
            *base,
            "--max-new-tokens",
            "4",
            "--samples",
            "3",
            "--select",
            "think_format",
            "--select",
            "majority",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "gsm8k" / "summary.json").read_text())
    assert set(summary["at_n"]) == {"avg@3", "pass@3", "maj@3", "best-of-3@think_format", "best-of-3@majority"}
    assert "best-of-3@think_format" in result.output

    result = CliRunner().invoke(main, [*base, "--samples", "2", "--select", "math", "--output", str(out)])
    assert result.exit_code == 2 and "math needs the gold" in result.output
