"""The `reward_model` scorer on a tiny random classifier built here, and the hybrid runner that keeps it
in this process while rule-based terms go to worker processes."""

from __future__ import annotations

import pickle

import pytest

from rlvr.eval.best_of_n import build_selector, chosen
from rlvr.types import Example, Status
from rlvr.verifiers import build_verifier
from rlvr.verifiers.reward_model import RewardModel
from rlvr.verifiers.runner import Runner, VerifierFailureRate, VerifierStartupError
from rlvr.verifiers.scoring import HybridRunner, runner_for

COMPLETIONS = [
    "<think>2 and 2</think> 4",
    "five",
    "<think>hm</think> The answer is \\boxed{4}, surely, after a long think.",
]
EXAMPLES = [Example("x", "What is 2+2?", "4"), Example("x", "What is 2+2?", "4"), Example("y", "What is 3+3?", "6")]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A 2-layer random LlamaForSequenceClassification (1 label) with SmolLM2's tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from rlvr.models import load_tokenizer, smollm2_tokenizer_dir
    from rlvr.testing import TINY_CONFIG

    directory = tmp_path_factory.mktemp("tiny-rm")
    tokenizer = load_tokenizer(smollm2_tokenizer_dir())
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        **{**TINY_CONFIG, "tie_word_embeddings": False},
    )
    LlamaForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _by_hand(directory, completion, example):
    """The score computed without rlvr: the chat-formatted pair, alone (no padding), last token's logit."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    net = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": example.prompt}, {"role": "assistant", "content": completion}], tokenize=False
    )
    with torch.no_grad():
        return net(**tokenizer(text, return_tensors="pt")).logits[0, 0].item()


@pytest.mark.slow
def test_scores_match_a_hand_computed_forward_pass_in_any_batch_size(classifier):
    expected = [_by_hand(classifier, c, e) for c, e in zip(COMPLETIONS, EXAMPLES, strict=True)]
    assert len({round(x, 4) for x in expected}) == 3, "a random classifier still tells the three apart"
    for batch_size in (1, 2, 3):  # batch 2 and 3 pad the shorter texts: padding must not move the score
        rm = build_verifier(f"reward_model:model={classifier},batch_size={batch_size}")
        scores = rm.score_batch(COMPLETIONS, EXAMPLES)
        assert [s.reward for s in scores] == pytest.approx(expected, abs=1e-5)
        assert all(s.status is (Status.CORRECT if s.reward > 0 else Status.WRONG) for s in scores)
    assert rm.needs_gold is False and rm.score(COMPLETIONS[0], EXAMPLES[0]).reward == pytest.approx(
        expected[0], abs=1e-5
    )


def test_it_is_never_pickled_into_worker_processes(classifier):
    rm = RewardModel(model=str(classifier))
    with pytest.raises(TypeError, match="HybridRunner"):
        pickle.dumps(rm)
    with (
        pytest.raises(VerifierStartupError, match="cannot be pickled for worker processes"),
        Runner(rm, workers=1) as runner,
    ):
        runner.score(COMPLETIONS[:1], EXAMPLES[:1])
    assert isinstance(runner_for(rm, workers=1), HybridRunner)
    assert isinstance(runner_for(build_verifier("think_format"), workers=1), Runner)


@pytest.mark.slow
def test_hybrid_runner_combines_pool_terms_and_the_model(classifier):
    spec = f"think_format+0.5*reward_model:model={classifier},batch_size=2"
    rm = [_by_hand(classifier, c, e) for c, e in zip(COMPLETIONS, EXAMPLES, strict=True)]
    with runner_for(build_verifier(spec), workers=1, timeout=30) as runner:
        assert runner.runner.verifier.name == "think_format", "only the rule-based term goes to the worker"
        scores = runner.score(COMPLETIONS, EXAMPLES)
    think = [1.0, 0.0, 1.0]
    assert [s.reward for s in scores] == pytest.approx([t + 0.5 * r for t, r in zip(think, rm, strict=True)], abs=1e-5)
    assert [s.status for s in scores] == [Status.CORRECT, Status.WRONG, Status.CORRECT]  # the first term's
    assert set(scores[0].details["components"]) == {"think_format", "reward_model"}
    assert runner.last_stats.n == 3


def test_a_model_that_cannot_load_gives_counted_errors(tmp_path):
    verifier = build_verifier(f"reward_model:model={tmp_path / 'missing'}")
    with runner_for(verifier, max_failure_rate=None) as runner:
        scores = runner.score(COMPLETIONS, EXAMPLES)
    assert {s.status for s in scores} == {Status.ERROR} and all("error" in s.details for s in scores)
    with runner_for(verifier, max_failure_rate=0.5) as runner, pytest.raises(VerifierFailureRate):
        runner.score(COMPLETIONS, EXAMPLES)


@pytest.mark.slow
def test_reward_model_as_a_best_of_n_selector(classifier):
    rm = [_by_hand(classifier, c, e) for c, e in zip(COMPLETIONS, EXAMPLES, strict=True)]
    with build_selector(f"reward_model:model={classifier}") as selector:
        scores = selector.scores(COMPLETIONS, EXAMPLES, [None] * 3, [0, 0, 1])
    assert scores == pytest.approx(rm, abs=1e-5) and chosen(scores[:2]) == (0 if rm[0] >= rm[1] else 1)


@pytest.mark.parametrize(
    "spec, message", [("reward_model", "needs model="), ("reward_model:model=x,batch_size=0", "batch_size")]
)
def test_bad_options(spec, message):
    with pytest.raises(ValueError, match=message):
        build_verifier(spec)
