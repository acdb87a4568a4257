"""CISPO, SAPO, GMPO, REINFORCE++ and distillation's advantages against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.objectives.grpo import LOSSES, policy_loss, token_advantages
from rlvr.objectives.grpo_family import TERMS, distill_advantages

LN = math.log


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# The worked example of test_objectives_grpo.py: old logprobs 0, so each token's ratio r is exp(logprob).
# seq 0 (A = +1) ratios 1.5, 1.0, 0.5; seq 1 (A = -1) ratios 1.5, 0.7 and a padded 3.0. eps 0.2 / 0.28.
RATIOS = [[1.5, 1.0, 0.5], [1.5, 0.7, 3.0]]
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
ADV = torch.tensor([1.0, -1.0])
# seq 0, A>0: log-ratios ln1.5 ≈ 0.405 -> min(.405, clamp .28) = .28; 0; ln0.5 -> min(-.693, -.2) = -.693
# seq 1, A<0: ln1.5 -> max(.405, .28) = .405; ln0.7 ≈ -.357 -> max(-.357, -.2) = -.2
GMPO_0, GMPO_1 = math.exp((0.28 + LN(0.5)) / 3), math.exp((LN(1.5) - 0.2) / 2)
FAMILY_CASES = {  # loss_type -> (loss, clip_low_fraction, clip_high_fraction), over 5 real tokens
    # -min(r, 1.28)·A·ln r: ln1 = 0; the two 1.5s (A = ±1, both capped) cancel; left -0.5·ln0.5 + 0.7·ln0.7
    "cispo": ((-0.5 * LN(0.5) + 0.7 * LN(0.7)) / 5, 0.0, 1 / 5),
    # -A·(4/τ)·σ(τ(r-1)): seq 0 (τ+ = 1) -4(σ(.5) + σ(0) + σ(-.5)) = -6 over 3 tokens;
    # seq 1 (τ- = 1.05) (4/1.05)(σ(.525) + σ(-.315)) over 2; then the mean of the two sequences
    "sapo": ((-6 / 3 + 4 / 1.05 * (sig(0.525) + sig(-0.315)) / 2) / 2, 0.0, 0.0),
    # -A·exp(mean clipped log-ratio), one per sequence, mean over sequences; clipped: ln0.7 low, ln1.5 high
    "gmpo": ((-GMPO_0 + GMPO_1) / 2, 1 / 5, 1 / 5),
}


def _logprobs(ratios=RATIOS):
    return torch.tensor(ratios).log().requires_grad_(True)


def test_every_term_and_loss_is_tested():
    assert set(TERMS) == {"clip", *FAMILY_CASES}
    assert {name for name, rule in LOSSES.items() if rule.term != "clip"} == set(FAMILY_CASES)


@pytest.mark.parametrize("loss_type", sorted(FAMILY_CASES))
def test_family_loss_by_hand(loss_type):
    loss, metrics = policy_loss(
        _logprobs(), ADV, MASK, old_logprobs=torch.zeros(2, 3), loss_type=loss_type, clip_eps_high=0.28
    )
    value, low, high = FAMILY_CASES[loss_type]
    assert loss.item() == pytest.approx(value, abs=1e-6)
    assert (metrics["clip_low_fraction"], metrics["clip_high_fraction"]) == pytest.approx((low, high))
    assert metrics["ratio_max"] == pytest.approx(1.5)  # the padded 3.0 is not counted


def test_cispo_keeps_a_gradient_on_every_token():
    # d/dlogp of -sg(min(r, 1.28))·A·logp = -min(r, 1.28)·A, over 5 tokens; the capped 1.5s still move
    logprobs = _logprobs()
    loss, _ = policy_loss(logprobs, ADV, MASK, old_logprobs=torch.zeros(2, 3), loss_type="cispo", clip_eps_high=0.28)
    loss.backward()
    expected = torch.tensor([[-1.28, -1.0, -0.5], [1.28, 0.7, 0.0]]) / 5
    torch.testing.assert_close(logprobs.grad, expected)


def test_sapo_gate_fades_the_gradient_away_from_ratio_one():
    # d/dlogp of -A·(4/τ)σ(τ(r-1)) = -A·4σ(1-σ)·r: exactly -A at r = 1, less as r leaves 1 (one token each)
    logprobs = torch.tensor([[0.0], [LN(1.5)], [LN(3.0)]], requires_grad=True)
    loss, _ = policy_loss(logprobs, torch.ones(3), torch.ones(3, 1), old_logprobs=torch.zeros(3, 1), loss_type="sapo")
    loss.backward()
    weights = [4 * sig(r - 1) * (1 - sig(r - 1)) * r for r in (1.0, 1.5, 3.0)]
    torch.testing.assert_close(logprobs.grad.flatten(), -torch.tensor(weights) / 3)
    assert weights[0] == pytest.approx(1.0) and weights[2] < weights[1] < 1.5


def test_gmpo_is_the_geometric_mean_inside_the_clip_range():
    # log-ratios (0.1, -0.1, 0.3) within ±0.4: the sequence weight is exp(0.1) = the geometric mean of the ratios
    log_ratio = torch.tensor([[0.1, -0.1, 0.3]])
    loss, metrics = policy_loss(
        log_ratio, torch.tensor([2.0]), torch.ones(1, 3), old_logprobs=torch.zeros(1, 3), loss_type="gmpo",
        clip_eps_low=0.4, clip_eps_high=0.4,
    )  # fmt: skip
    geometric = (math.exp(0.1) * math.exp(-0.1) * math.exp(0.3)) ** (1 / 3)
    assert loss.item() == pytest.approx(-2 * geometric)
    assert metrics["clip_fraction"] == 0.0


# ---------------------------------------------------------------- REINFORCE++ and distillation advantages


def test_reinforce_pp_without_kl_whitens_rewards_over_tokens():
    # rewards 1 and 0 on 3 and 2 real tokens: token returns 1,1,1,0,0 -> mean 0.6, population std
    # sqrt(0.24); padding gets 0
    got = token_advantages(torch.tensor([1.0, 0.0]), MASK)
    std = math.sqrt(0.24)
    expected = torch.tensor([[0.4, 0.4, 0.4], [-0.6, -0.6, 0.0]]) / (std + 1e-4)
    expected[1, 2] = 0.0
    torch.testing.assert_close(got, expected)


def test_reinforce_pp_folds_the_kl_into_the_return_to_go():
    # one sequence of 3 tokens, reward 1, per-token KL (0.5, 0.0, 1.0), β 0.1: returns-to-go
    # 1 - 0.1·1.5 = 0.85, 1 - 0.1·1.0 = 0.9, 1 - 0.1·1.0 = 0.9 and a second sequence, reward 0, no KL, 1 token
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    kl = torch.tensor([[0.5, 0.0, 1.0], [0.0, 9.0, 9.0]])  # the 9s are padding: ignored
    got = token_advantages(torch.tensor([1.0, 0.0]), mask, kl, beta=0.1)
    returns = torch.tensor([0.85, 0.9, 0.9, 0.0])
    whitened = (returns - returns.mean()) / (returns.std(unbiased=False) + 1e-4)
    torch.testing.assert_close(got[mask.bool()], whitened)
    assert got[~mask.bool()].abs().sum() == 0


def test_reinforce_pp_statistics_are_the_global_batch():
    # rank 0 holds sequence 0, rank 1 sequence 1; `total` (all_reduce_sum) adds rank 1's share, and rank 0's
    # advantages equal sequence 0's in the whole batch. β 0.5, returns-to-go: seq 0 (r 1, KL .2, .1):
    # .85, .95; seq 1 (r 0, KL .3, 0, .4): -.35, -.2, -.2 -> global mean (.85 + .95 - .75)/5 = .21
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    rewards, kl = torch.tensor([1.0, 0.0]), torch.tensor([[0.2, 0.1, 0.0], [0.3, 0.0, 0.4]])
    whole = token_advantages(rewards, mask, kl, beta=0.5)
    other = torch.tensor([-0.35, -0.2, -0.2])
    shares = [torch.tensor([other.sum(), 3.0]), ((other - 0.21) ** 2).sum().reshape(1)]  # in call order

    def total(values):
        return values + shares.pop(0)

    rank0 = token_advantages(rewards[:1], mask[:1], kl[:1], beta=0.5, total=total)
    torch.testing.assert_close(rank0, whole[:1])
    assert not shares  # both statistics went through `total`


def test_distill_advantages_are_teacher_minus_student_and_detached():
    student = torch.tensor([[LN(0.5), LN(0.25)]], requires_grad=True)
    teacher = torch.tensor([[LN(0.25), LN(0.25)]])
    got = distill_advantages(student, teacher)
    torch.testing.assert_close(got, torch.tensor([[-LN(2), 0.0]]))
    assert not got.requires_grad
    # on policy the loss per token is log π_s - log π_t (the reverse-KL estimate), mean over tokens
    loss, _ = policy_loss(student, got, torch.ones(1, 2), loss_type="dapo")
    assert loss.item() == pytest.approx(LN(2) / 2)
