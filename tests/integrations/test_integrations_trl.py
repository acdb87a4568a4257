"""rlvr's verifiers as a TRL reward function: statuses counted and logged through TRL's `log_metric`,
plain and conversational completions, a failing verifier counted as error (never a silent 0), and one
real `GRPOTrainer` step."""

from __future__ import annotations

import logging
import pickle

import pytest

from rlvr.errors import InputError
from rlvr.integrations.trl import reward_function
from rlvr.types import Status
from rlvr.verifiers.runner import VerifierFailureRate
from runner_fixtures import Scripted


class Logged:
    """Stands in for TRL's `log_metric` / `log_extra` keywords and keeps what they were given."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.extra: dict[str, list] = {}

    def metric(self, name: str, value: float) -> None:
        self.metrics[name] = value

    def column(self, name: str, values: list) -> None:
        self.extra[name] = values

    def keywords(self) -> dict:
        return {"log_metric": self.metric, "log_extra": self.column, "trainer_state": object()}


@pytest.fixture(scope="module")
def math_reward():
    reward = reward_function("math", workers=1, max_failure_rate=None)
    yield reward
    reward.close()


def test_statuses_are_counted_and_logged_through_log_metric(math_reward):
    completions = ["so \\boxed{4}", "so \\boxed{5}", "", "\\boxed{1} or \\boxed{6}"]
    logged = Logged()
    before = math_reward.totals.n
    rewards = math_reward(
        prompts=["2+2?"] * 4,
        completions=completions,
        completion_ids=None,
        answer=["4", "4", "4", "6"],
        **logged.keywords(),
    )
    assert rewards == [1.0, 0.0, 0.0, 0.0]
    assert [s.status for s in math_reward.last_scores] == [
        Status.CORRECT,
        Status.WRONG,
        Status.NO_ANSWER,
        Status.HEDGED,
    ]
    shares = {name.rpartition("/")[2]: v for name, v in logged.metrics.items() if name.startswith("rlvr/rlvr_math/")}
    assert shares == {"correct": 0.25, "wrong": 0.25, "no_answer": 0.25, "hedged": 0.25, "timeout": 0.0, "error": 0.0}
    assert logged.extra == {"rlvr_math_status": ["correct", "wrong", "no_answer", "hedged"]}
    assert math_reward.totals.n - before == 4


@pytest.mark.parametrize(
    "prompt, completion",
    [
        ("What is 6*7?", "6*7 = \\boxed{42}"),
        ([{"role": "user", "content": "What is 6*7?"}], [{"role": "assistant", "content": "It is \\boxed{42}."}]),
        (
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 6*7?"}],
            [
                {"role": "assistant", "content": "Let me compute."},
                {"role": "tool", "content": "\\boxed{41}"},  # the tool's text is not the model's answer
                {"role": "assistant", "content": "So \\boxed{42}."},
            ],
        ),
        (
            [{"role": "user", "content": [{"type": "text", "text": "What is 6*7?"}]}],
            [{"role": "assistant", "content": [{"type": "text", "text": "The answer is 42"}]}],
        ),
    ],
    ids=["plain", "chat", "chat-with-tool-turn", "content-parts"],
)
def test_plain_and_conversational_completions_are_scored_alike(prompt, completion):
    reward = reward_function("math", workers=0)
    assert reward(prompts=[prompt], completions=[completion], answer=[42]) == [1.0]
    assert reward.last_scores[0].details["extracted"] == "42"


@pytest.mark.parametrize(
    "columns, expected",
    [
        ({"answer": ["12"]}, 1.0),
        ({"solution": ["Half of 24 is $\\boxed{12}$."]}, 1.0),  # TRL's math sets: the gold is the last box
        ({"answer": ["12"], "solution": ["so $\\boxed{13}$"]}, 1.0),  # answer wins
        ({"answer": [13.0]}, 0.0),
    ],
)
def test_the_gold_comes_from_the_answer_or_solution_column(columns, expected):
    reward = reward_function("math", workers=0)
    assert reward(prompts=["half of 24?"], completions=["\\boxed{12}"], **columns) == [expected]


def test_a_dataset_without_a_gold_column_is_one_clear_error():
    reward = reward_function("math", workers=0)
    with pytest.raises(InputError, match=r"row 0: missing field 'answer'.*columns given: question"):
        reward(prompts=["q"], completions=["\\boxed{1}"], question=["q"])


@pytest.mark.parametrize(
    "script, status, shown",
    [("raise", Status.ERROR, "ZeroDivisionError"), ("hang", Status.TIMEOUT, "no verdict within 1.5 s")],
)
def test_a_failing_verdict_is_counted_logged_and_warned_never_a_silent_zero(caplog, script, status, shown):
    reward = reward_function(Scripted(), workers=1, timeout=1.5, max_failure_rate=None)
    logged = Logged()
    try:
        with caplog.at_level(logging.WARNING, logger="rlvr.integrations.trl"):
            rewards = reward(prompts=["p", "p"], completions=["ok", script], answer=["-", "-"], **logged.keywords())
    finally:
        reward.close()
    assert rewards == [1.0, None]  # None: TRL leaves it out of the reward, it is not a wrong answer
    assert reward.last_scores[1].status is status and shown in reward.last_scores[1].details["error"]
    assert reward.totals.counts[status.value] == 1
    assert logged.metrics[f"rlvr/rlvr_scripted/{status.value}"] == 0.5
    assert logged.extra["rlvr_scripted_status"] == ["correct", status.value]
    assert "1 of 2 verdicts failed" in caplog.text and shown in caplog.text


def test_too_many_failures_stop_training_through_the_failure_rate_guard():
    reward = reward_function(Scripted(), workers=0, max_failure_rate=0.25)
    with pytest.raises(VerifierFailureRate, match="2 of 4 verdicts failed"):
        reward(prompts=["p"] * 4, completions=["ok", "raise", "no", "raise"], answer=["-"] * 4)


def test_it_pickles_as_its_settings_and_scores_after_unpickling(math_reward):
    copy = pickle.loads(pickle.dumps(math_reward))
    try:
        assert copy.__name__ == "rlvr_math" and copy.scorer._runner is None  # settings only: not started yet
        assert copy(prompts=["q"], completions=["\\boxed{3}"], answer=["3"]) == [1.0]
    finally:
        copy.close()


@pytest.mark.slow
def test_one_real_grpo_trainer_step_with_rlvr_math_as_the_reward(tiny_model, tmp_path):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    reward = reward_function("math", workers=1)
    dataset = Dataset.from_list([{"prompt": "What is 2+2?", "answer": "4"}, {"prompt": "What is 3+3?", "answer": "6"}])
    args = GRPOConfig(
        output_dir=str(tmp_path),
        use_vllm=False,
        use_cpu=True,
        max_completion_length=8,
        num_generations=2,
        per_device_train_batch_size=2,
        max_steps=1,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
    )
    trainer = GRPOTrainer(model=str(tiny_model), reward_funcs=[reward], args=args, train_dataset=dataset)
    try:
        trainer.train()
    finally:
        reward.close()
    logs = trainer.state.log_history[0]
    shares = {s.value: logs[f"rlvr/rlvr_math/{s.value}"] for s in Status}
    assert sum(shares.values()) == pytest.approx(1.0)
    assert reward.totals.n == 2 and sum(reward.totals.counts.values()) == 2
    assert shares == {k: v / 2 for k, v in reward.totals.counts.items()}
    assert "rewards/rlvr_math/mean" in logs
