"""The Bradley-Terry reward-model loss (rlvr.objectives.reward) against TRL 1.16's RewardTrainer on the
same rewards, with and without its margin and centering term, and the pairwise accuracy it reports."""

from __future__ import annotations

import collections
from types import SimpleNamespace

import pytest
import torch

from rlvr.objectives.reward import pair_accuracy, reward_loss


def _rewards(pairs: int = 9, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    chosen = torch.randn(pairs, generator=gen, dtype=torch.float64) * 2
    rejected = torch.randn(pairs, generator=gen, dtype=torch.float64) * 2
    margin = torch.rand(pairs, generator=gen, dtype=torch.float64)
    return chosen, rejected, margin


def _trl_loss(chosen, rejected, margin, center):
    """TRL's own RewardTrainer.compute_loss, its model replaced by one returning these rewards as logits."""
    from trl import RewardTrainer

    logits = torch.cat([chosen, rejected]).unsqueeze(-1)  # TRL stacks chosen then rejected rows

    def model(**kwargs):
        return SimpleNamespace(logits=logits)

    trainer = SimpleNamespace(
        model=SimpleNamespace(training=False),
        args=SimpleNamespace(center_rewards_coefficient=center),
        accelerator=SimpleNamespace(gather=lambda x: x, gather_for_metrics=lambda x: x),
        _total_train_tokens=0,
        _tp_size=1,
        _metrics={"train": collections.defaultdict(list), "eval": collections.defaultdict(list)},
    )
    inputs = {"input_ids": torch.zeros(2 * len(chosen), 3, dtype=torch.long)}
    if margin is not None:
        inputs["margin"] = margin
    loss = RewardTrainer.compute_loss(trainer, model, inputs)
    return loss, {key: values[-1] for key, values in trainer._metrics["eval"].items()}


@pytest.mark.parametrize(
    "use_margin, center",
    [(False, None), (True, None), (False, 0.01), (True, 0.5)],
    ids=["plain", "margin", "centering", "margin+centering"],
)
def test_loss_gradient_and_metrics_equal_trl_reward_trainer(use_margin, center):
    pytest.importorskip("trl")
    chosen, rejected, margin = _rewards()
    margin = margin if use_margin else None
    theirs = [t.clone().requires_grad_(True) for t in (chosen, rejected)]
    ours = [t.clone().requires_grad_(True) for t in (chosen, rejected)]
    their_loss, their_metrics = _trl_loss(*theirs, margin, center)
    our_loss, our_metrics = reward_loss(*ours, margin=margin, center_rewards_coefficient=center)
    assert our_loss.dtype == torch.float64
    assert our_loss.item() == pytest.approx(their_loss.item(), abs=1e-6)
    their_loss.backward()
    our_loss.backward()
    for mine, theirs_ in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine.grad, theirs_.grad, atol=1e-6, rtol=0)
    assert our_metrics["accuracy"] == pytest.approx(their_metrics["accuracy"], abs=1e-6)
    assert our_metrics["margin"] == pytest.approx(their_metrics["margin"], abs=1e-6)


def test_micro_batches_with_the_global_normalizer_add_up_to_the_full_batch_loss():
    chosen, rejected, margin = _rewards(pairs=10, seed=1)
    full, _ = reward_loss(chosen, rejected, margin=margin, center_rewards_coefficient=0.1)
    parts = [
        reward_loss(chosen[s], rejected[s], margin=margin[s], center_rewards_coefficient=0.1, normalizer=10)[0]
        for s in (slice(0, 3), slice(3, 10))
    ]
    assert sum(p.item() for p in parts) == pytest.approx(full.item(), abs=1e-12)


@pytest.mark.parametrize(
    "chosen, rejected, expected",
    [
        ([1.0, 2.0, 0.5], [0.0, 3.0, 0.4], [1.0, 0.0, 1.0]),
        ([0.0, -1.0], [0.0, -2.0], [0.0, 1.0]),  # a tie is not a win
    ],
)
def test_pair_accuracy_counts_strict_wins(chosen, rejected, expected):
    assert pair_accuracy(torch.tensor(chosen), torch.tensor(rejected)).tolist() == expected


@pytest.mark.parametrize(
    "chosen, rejected, kwargs, message",
    [
        ([1.0, 2.0], [1.0], {}, r"\[pairs\]"),
        ([], [], {}, "no preference pairs"),
        ([1.0], [0.0], {"normalizer": 0}, "no preference pairs"),
    ],
)
def test_bad_inputs_raise(chosen, rejected, kwargs, message):
    with pytest.raises(ValueError, match=message):
        reward_loss(torch.tensor(chosen), torch.tensor(rejected), **kwargs)
