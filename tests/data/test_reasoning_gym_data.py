"""`reasoning_gym:TASK[:key=value,...]` datasets: specs, seeds, the train/test split that never overlaps, the rows
the verifier scores, and one line + exit 2 for an unknown task or key (rlvr eval and rlvr train)."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from rlvr.cli import main
from rlvr.config import TrainConfig
from rlvr.data.benchmarks import load_benchmark
from rlvr.data.reasoning_gym import generate_reasoning_gym
from rlvr.data.specs import held_out_spec, load_examples, load_spec, parse_spec
from rlvr.errors import InputError
from rlvr.eval.spec import EvalSpec
from rlvr.types import Example, Status
from rlvr.verifiers import reasoning_gym as rg
from rlvr.verifiers.registry import build_verifier


@pytest.fixture(autouse=True)
def _library():
    from conftest import need

    need("reasoning_gym", rg.library_installed(), "pip install 'rlvr[reasoning-gym]'")


SMALL_SUMS = "reasoning_gym:chain_sum:min_terms=2,max_terms=2,max_digits=2"


@pytest.mark.parametrize(
    "spec, canonical",
    [
        ("reasoning_gym:countdown", "reasoning_gym:countdown:seed=0"),
        ("reasoning_gym:countdown,seed=3", "reasoning_gym:countdown:seed=3"),
        ("reasoning_gym:countdown:seed=3", "reasoning_gym:countdown:seed=3"),
        (
            "reasoning_gym:basic_arithmetic:operators=+|-,max_terms=3,seed=2",
            "reasoning_gym:basic_arithmetic:seed=2,max_terms=3,operators=+|-",
        ),
        (
            "reasoning_gym:chain_sum:size=500,allow_negation=true",
            "reasoning_gym:chain_sum:seed=0,size=500,allow_negation=true",
        ),
    ],
)
def test_a_spec_has_one_canonical_text(spec, canonical):
    assert EvalSpec(benchmark=spec).benchmark == canonical
    assert EvalSpec(benchmark=canonical).benchmark == canonical


@pytest.mark.parametrize(
    "spec, says",
    [
        ("reasoning_gym:countdwn", "unknown reasoning-gym task 'countdwn' (did you mean countdown"),
        ("reasoning_gym:no_such_task_at_all", "unknown reasoning-gym task 'no_such_task_at_all' (known: ab, acre"),
        ("reasoning_gym:countdown:min_numbrs=3", "task 'countdown' has no option 'min_numbrs' (options: max_numbers"),
        ("reasoning_gym:countdown:min_numbers=three", "option min_numbers='three'"),
        ("reasoning_gym:countdown:min_numbers=1", "refuses {'min_numbers': '1'}: min_numbers must be greater than 1"),
        ("reasoning_gym:countdown:shuffle=maybe", "option shuffle='maybe': expected true or false"),
        ("reasoning_gym:countdown:seed=x", "seed must be an integer >= 0"),
        ("reasoning_gym:countdown:size=0", "size must be an integer >= 1"),
        ("reasoning_gym:countdown:min_numbers", "option 'min_numbers' is not key=value"),
        ("reasoning_gym:", "name a reasoning-gym task"),
    ],
)
def test_a_bad_spec_is_one_input_error_naming_it(spec, says):
    with pytest.raises(InputError, match=r"^benchmark spec") as err:
        parse_spec(spec)
    assert says in str(err.value) and repr(spec) in str(err.value)


@pytest.mark.parametrize(
    "command",
    [
        ["eval", "--model", "unused", "--benchmark", "{spec}"],
        ["eval", "--model", "unused", "--benchmark", "gsm8k,{spec}"],
        ["train", "--dry-run", "--engine", "hf", "--dataset", "{spec}"],
        ["train", "--dry-run", "--engine", "hf", "--set", "eval.dataset={spec}"],
    ],
)
@pytest.mark.parametrize(
    "spec, says",
    [
        ("reasoning_gym:countdwn", "unknown reasoning-gym task 'countdwn'"),
        ("reasoning_gym:countdown:colour=red", "task 'countdown' has no option 'colour'"),
    ],
)
def test_the_cli_says_it_in_one_line_and_exits_2(command, spec, says):
    result = CliRunner().invoke(main, [part.format(spec=spec) for part in command])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], result.output


def _questions(examples):
    return [e.prompt for e in examples]


def test_seeded_and_split_like_arith():
    """Example i is the same whatever n; seeds give unrelated streams; the test split never shares a question
    with the train split, whatever the seeds."""
    options = parse_spec(SMALL_SUMS)[1]
    train = generate_reasoning_gym(300, **{**options, "seed": 0})
    test = {seed: generate_reasoning_gym(60, split="test", **{**options, "seed": seed}) for seed in (0, 1)}
    assert _questions(generate_reasoning_gym(10, **{**options, "seed": 0})) == _questions(train[:10])
    assert _questions(train) == _questions(generate_reasoning_gym(300, **{**options, "seed": 0}))
    assert len(set(_questions(train))) == 300
    assert not set(_questions(train)) & set(_questions(test[0]) + _questions(test[1]))
    assert _questions(test[0])[:20] != _questions(test[1])[:20]
    assert [e.id for e in test[1][:2]] == ["reasoning_gym/chain_sum/test/1/0", "reasoning_gym/chain_sum/test/1/1"]


def test_too_few_distinct_problems_is_an_input_error():
    one_digit_sums = "reasoning_gym:basic_arithmetic:min_terms=2,max_terms=2,max_digits=1,operators=+,size=2000"
    assert len(load_spec(one_digit_sums, "test", limit=40)) == 40
    with pytest.raises(InputError, match=r"only \d+ distinct test problems among the first 2000 generated"):
        load_spec(one_digit_sums, "test", limit=400)


@pytest.mark.parametrize(
    "spec, n",
    [
        (SMALL_SUMS, 20),
        ("reasoning_gym:basic_arithmetic:max_terms=3,operators=+|-|*", 20),
        ("reasoning_gym:leg_counting:max_animals=3", 20),
        ("reasoning_gym:spell_backward", 20),
        ("reasoning_gym:countdown:min_numbers=3,max_numbers=3", 5),
    ],
)
def test_each_row_carries_what_its_verifier_needs_as_json(spec, n):
    examples = load_spec(spec, "test", limit=n)
    rows = [json.loads(json.dumps(dict(e.metadata))) for e in examples]  # as samples.jsonl / rlvr verify read it
    assert all(r["benchmark"] == "reasoning_gym" and r[rg.FIELD]["task"] == parse_spec(spec)[1]["task"] for r in rows)
    verifier = build_verifier("reasoning_gym")
    scores = [
        verifier.score(f"<answer>{e.answer}</answer>", Example(e.id, e.prompt, e.answer, r))
        for e, r in zip(examples, rows, strict=True)
    ]
    assert [s.status for s in scores] == [Status.CORRECT] * n
    wrong = verifier.score("<answer>surely not this</answer>", examples[0])
    assert wrong.status is Status.WRONG


def test_a_training_config_gets_its_rows_and_a_held_out_set_that_never_overlaps():
    config = TrainConfig()
    config.seed = 4
    config.data.dataset = SMALL_SUMS
    config.data.size = 200
    config.eval.limit = 50
    assert held_out_spec(config) == ("reasoning_gym:chain_sum:seed=4,max_digits=2,max_terms=2,min_terms=2", "test", 50)
    train, held_out = load_examples(config), load_examples(config, held_out=True)
    assert len(train) == 200 and len(held_out) == 50
    assert all(e.id.startswith("reasoning_gym/chain_sum/train/4/") for e in train)
    assert not set(_questions(train)) & set(_questions(held_out))
    config.data.dataset = SMALL_SUMS + ",seed=9"  # a seed in the spec is its own
    assert held_out_spec(config)[0].startswith("reasoning_gym:chain_sum:seed=9,")
    assert load_benchmark("reasoning_gym", "test", limit=3, **parse_spec(SMALL_SUMS)[1])[0].id.endswith("/test/0/0")


@pytest.mark.parametrize(
    "flags, verifier",
    [
        ([], "reasoning_gym"),  # the dataset's own verifier, as rlvr eval picks it
        (["--verifier", "reasoning_gym+0.1*think_format"], "reasoning_gym+0.1*think_format"),
        (["--set", "reward.verifier=math"], "math"),
    ],
)
def test_rlvr_train_dry_run_takes_the_dataset_and_its_verifier(flags, verifier):
    args = ["train", "--dry-run", "--engine", "hf", "--dataset", SMALL_SUMS, "--set", "data.limit=16"]
    result = CliRunner().invoke(main, [*args, "--set", "eval.limit=8", *flags])
    assert result.exit_code == 0, result.output
    tree = yaml.safe_load(result.output)
    assert tree["reward"]["verifier"] == verifier and tree["data"]["dataset"] == SMALL_SUMS
