"""The one table of names (rlvr.names): the registries, the config's choices and the CLI's click
choices all read it; the implementation tables that hold functions agree with it; it imports nothing heavy."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from rlvr import names
from rlvr.config import AUTO_BY_ALGORITHM, CHOICES
from rlvr.types import Example, Status


@pytest.mark.parametrize(
    "registry, table",
    [
        ("rlvr.algorithms:ALGORITHMS", names.ALGORITHMS),
        ("rlvr.rollout.base:ENGINES", names.ENGINES),
        ("rlvr.sandboxes:BACKENDS", names.SANDBOXES),
    ],
)
def test_registries_are_the_names_table(registry, table):
    module, attribute = registry.split(":")
    assert getattr(__import__(module, fromlist=[attribute]), attribute) is table


@pytest.mark.parametrize(
    "table, name, attribute",
    [
        *[(names.ALGORITHMS, n, "name") for n in names.ALGORITHMS],
        *[(names.ENGINES, n, "kind") for n in names.ENGINES],
        *[(names.SANDBOXES, n, "name") for n in names.SANDBOXES],
        *[(names.WEIGHT_TRANSPORTS, n, "name") for n in names.WEIGHT_TRANSPORTS],
    ],
)
def test_every_entry_is_a_class_that_calls_itself_by_its_key(table, name, attribute):
    try:
        cls = names.load(table, name)
    except ImportError as err:  # an optional dependency (vllm, the docker SDK) missing here
        pytest.skip(f"{table[name]}: {err}")
    assert getattr(cls, attribute) == name


def _keys(module: str, attribute: str) -> set[str]:
    return set(getattr(__import__(module, fromlist=[attribute]), attribute))


@pytest.mark.parametrize(
    "implemented, named",
    [
        (("rlvr.data.templates", "STYLES"), names.STYLES),
        (("rlvr.objectives.grpo", "ADVANTAGES"), names.GRPO_ADVANTAGES),
        (("rlvr.objectives.grpo", "LOSSES"), names.GRPO_LOSSES),
        (("rlvr.objectives.grpo", "RATIOS"), names.GRPO_RATIO_LEVELS),
        (("rlvr.objectives.grpo", "KL_ESTIMATORS"), names.GRPO_KL_ESTIMATORS),
        (("rlvr.objectives.sft", "REDUCTIONS"), names.SFT_REDUCTIONS),
        (("rlvr.objectives.dpo", "PAIR_LOSSES"), names.DPO_LOSSES),
        (("rlvr.objectives.kto", "KTO_LOSSES"), names.KTO_LOSSES),
        (("rlvr.algorithms.rm", "PAIRINGS"), names.RM_PAIRINGS),
        (("rlvr.data.arith", "DIFFICULTIES"), names.ARITH_DIFFICULTIES),
        (("rlvr.distributed.wrapping", "STRATEGIES"), ("none", *names.STRATEGIES)),  # none: a single process
    ],
)
def test_implementation_tables_agree_with_the_names(implemented, named):
    assert _keys(*implemented) == set(named)


def test_train_styles_are_the_styles_less_the_eval_only_ones():
    assert set(names.EVAL_ONLY_STYLES) <= set(names.STYLES)
    assert CHOICES["data.style"] == tuple(s for s in names.STYLES if s not in names.EVAL_ONLY_STYLES)


def test_auto_sizes_are_given_only_for_known_algorithms():
    assert set(AUTO_BY_ALGORITHM) <= set(names.ALGORITHMS)


def _choices(command: str, option: str) -> tuple[str, ...]:
    module, attribute = {
        "train": ("rlvr.cli.train", "train"),
        "eval": ("rlvr.cli.eval", "eval_command"),
        "bench": ("rlvr.cli.bench", "bench"),
        "sandbox run": ("rlvr.cli.sandbox", "run"),
    }[command]
    cmd = getattr(__import__(module, fromlist=[attribute]), attribute)
    param = next(p for p in cmd.params if p.name == option)
    assert isinstance(param.type, click.Choice)
    return tuple(param.type.choices)


@pytest.mark.parametrize(
    "command, option, expected",
    [
        ("train", "algorithm", tuple(names.ALGORITHMS)),
        ("train", "engine", CHOICES["rollout.engine"]),
        ("train", "strategy", CHOICES["distributed.strategy"]),
        ("eval", "engine", names.ENGINE_CHOICES),
        ("eval", "style", tuple(names.STYLES)),
        ("eval", "sandbox", names.SANDBOX_CHOICES),
        ("eval", "dtype", CHOICES["rollout.dtype"]),
        ("bench", "engine", names.ENGINE_CHOICES),
        ("sandbox run", "backend", names.SANDBOX_CHOICES),
    ],
)
def test_cli_choices_read_the_names(command, option, expected):
    assert _choices(command, option) == expected


def test_the_names_and_the_config_import_nothing_heavy():
    code = (
        "import sys, rlvr.names, rlvr.config, rlvr.cli.train; "
        "print(sorted(m for m in ('torch', 'transformers', 'vllm', 'click') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['click']"  # the CLI module itself needs click, nothing more


@pytest.mark.parametrize("extra, status", [(0, Status.CORRECT), (1, Status.HEDGED)])
def test_the_hedge_limit_and_the_boxes_read_together_stay_one_apart(extra, status):
    """A list answer of MAX_ANSWERS boxes is graded; one more box is a spray of guesses. Both limits
    must move together: the extractor reads one box past the grader's limit so it can see it passed."""
    from rlvr.verifiers.math.boxes import MAX_ANSWERS
    from rlvr.verifiers.math.verifier import MathVerifier

    k = MAX_ANSWERS + extra
    completion = "The answers are " + ", ".join(f"$\\boxed{{{i}}}$" for i in range(1, k + 1))
    gold = ", ".join(str(i) for i in range(1, k + 1))
    assert MathVerifier().score(completion, Example("1", "p", gold)).status == status
