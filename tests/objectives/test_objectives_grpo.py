"""GRPO math against values worked out by hand (arithmetic written next to each expected value)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from rlvr.objectives import grpo
from rlvr.objectives.grpo import (
    ADVANTAGES,
    LOSSES,
    group_advantages,
    loss_normalizer,
    masked_mean,
    overlong_penalty,
    policy_loss,
    truncated_importance_weights,
    zero_variance_groups,
)
from rlvr.objectives.logprobs import (
    chunked_token_logprobs_and_entropy,
    entropy_from_logits,
    token_logprobs,
    token_logprobs_and_entropy,
)

EPS = grpo.STD_EPS
LN = math.log

# Group 0 has one correct answer out of four, group 1 all equal (zero variance).
REWARDS = torch.tensor([[1.0, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
# group 0: mean 0.25, deviations (0.75, -0.25, -0.25, -0.25),
#          unbiased var = (0.75² + 3·0.25²)/3 = 0.75/3 = 0.25 -> std 0.5
# batch of 8: mean 9/8; squared deviations 0.125² + 3·1.125² + 4·0.875² = 6.875 -> var 6.875/7
BATCH_STD = math.sqrt(6.875 / 7)
ADVANTAGE_CASES = {
    "grpo": [[0.75 / (0.5 + EPS), -0.25 / (0.5 + EPS), -0.25 / (0.5 + EPS), -0.25 / (0.5 + EPS)], [0, 0, 0, 0]],
    "dr_grpo": [[0.75, -0.25, -0.25, -0.25], [0, 0, 0, 0]],
    # r_i - mean of the other three: 1 - 0/3, 0 - 1/3
    "rloo": [[1.0, -1 / 3, -1 / 3, -1 / 3], [0, 0, 0, 0]],
    "batch": [[0.75 / (BATCH_STD + EPS)] + [-0.25 / (BATCH_STD + EPS)] * 3, [0, 0, 0, 0]],
    # per-token kinds: the value per completion that token_advantages whitens (test_objectives_grpo_family.py)
    "reinforce_pp": [[1.0, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0]],  # the rewards themselves
    "reinforce_pp_baseline": [[0.75, -0.25, -0.25, -0.25], [0, 0, 0, 0]],  # less the group mean
}


@pytest.mark.parametrize("kind", sorted(ADVANTAGE_CASES))
def test_advantages_by_hand(kind):
    got = group_advantages(REWARDS, kind)
    torch.testing.assert_close(got, torch.tensor(ADVANTAGE_CASES[kind]), rtol=0, atol=1e-6)


def test_every_advantage_kind_is_tested():
    assert set(ADVANTAGES) == set(ADVANTAGE_CASES)


def test_rloo_is_grpo_mean_rescaled():
    # r_i - (S - r_i)/(n-1) = n/(n-1) · (r_i - mean): a second, independent derivation
    rewards = torch.tensor([[0.3, 0.9, 0.1], [1.0, 0.0, 0.5]])
    torch.testing.assert_close(group_advantages(rewards, "rloo"), 1.5 * group_advantages(rewards, "dr_grpo"))


@pytest.mark.parametrize("kind", ["grpo", "rloo"])
def test_single_completion_groups_are_refused(kind):
    with pytest.raises(ValueError, match="at least 2"):
        group_advantages(torch.tensor([[1.0], [0.0]]), kind)


def test_unknown_advantage_kind_names_the_choices():
    with pytest.raises(ValueError, match="rloo"):
        group_advantages(REWARDS, "ppo")


@pytest.mark.parametrize(
    "rewards, expected",
    [
        ([[1.0, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0]], [False, True]),
        ([[0.0, 0.0], [0.5, 0.5], [0.0, 1e-3]], [True, True, False]),
    ],
)
def test_zero_variance_groups(rewards, expected):
    assert zero_variance_groups(torch.tensor(rewards)).tolist() == expected


# ---------------------------------------------------------------- policy loss on a worked example
#
# Two sequences, three positions, the second padded at its last one. old logprobs 0, so the
# ratio of each token is exp(logprob): seq 0 (A = +1) ratios 1.5, 1.0, 0.5; seq 1 (A = -1)
# ratios 1.5, 0.7 (and a padded 3.0 that must be ignored). eps_low 0.2, eps_high 0.28.
#   seq 0, A>0: -min(r, clip(r, 0.8, 1.28)) = -1.28 (clipped), -1.0, -0.5      sum -2.78 over 3
#   seq 1, A<0:  max(r, clip(r))            = 1.5,  0.8 (clipped)               sum  2.3  over 2
RATIOS = [[1.5, 1.0, 0.5], [1.5, 0.7, 3.0]]
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
ADV = torch.tensor([1.0, -1.0])
LOSS_CASES = {
    "grpo": ((-2.78 / 3) + (2.3 / 2)) / 2,  # mean per sequence, then over sequences
    "dapo": (-2.78 + 2.3) / 5,  # every real token weighs the same
    "dr_grpo": (-2.78 + 2.3) / (2 * 4),  # constant: 2 sequences × max_completion_length 4
}


def _logprobs(ratios=RATIOS):
    return torch.tensor(ratios).log().requires_grad_(True)


@pytest.mark.parametrize("loss_type", sorted(LOSS_CASES))
def test_clipped_loss_by_hand(loss_type):
    logprobs = _logprobs()
    loss, metrics = policy_loss(
        logprobs,
        ADV,
        MASK,
        old_logprobs=torch.zeros(2, 3),
        loss_type=loss_type,
        clip_eps_low=0.2,
        clip_eps_high=0.28,
        max_completion_length=4,
    )
    assert loss.item() == pytest.approx(LOSS_CASES[loss_type], abs=1e-6)
    # clipped low: seq 1's 0.7 (A<0); clipped high: seq 0's 1.5 (A>0); 5 real tokens
    assert metrics["clip_low_fraction"] == pytest.approx(1 / 5)
    assert metrics["clip_high_fraction"] == pytest.approx(1 / 5)
    assert metrics["clip_fraction"] == pytest.approx(2 / 5)
    assert metrics["ratio_mean"] == pytest.approx((1.5 + 1.0 + 0.5 + 1.5 + 0.7) / 5)
    assert metrics["ratio_max"] == pytest.approx(1.5)  # the padded 3.0 is not counted
    assert metrics["loss"] == pytest.approx(LOSS_CASES[loss_type], abs=1e-6)


def test_every_clipped_loss_variant_is_tested():
    # the other terms (cispo, sapo, gmpo): tests/objectives/test_objectives_grpo_family.py
    assert {name for name, rule in LOSSES.items() if rule.term == "clip"} == set(LOSS_CASES)


def test_clipped_tokens_get_no_gradient():
    logprobs = _logprobs()
    loss, _ = policy_loss(
        logprobs, ADV, MASK, old_logprobs=torch.zeros(2, 3), loss_type="grpo", clip_eps_low=0.2, clip_eps_high=0.28
    )
    loss.backward()
    # d/dlogp of -A·r = -A·r, divided by the sequence length and by 2 sequences; clipped -> 0
    expected = torch.tensor(
        [
            [0.0, -1.0 / 3 / 2, -0.5 / 3 / 2],  # 1.5 clipped high; 0.5 below 1-eps but A>0: not clipped
            [1.5 / 2 / 2, 0.0, 0.0],  # 0.7 clipped low (A<0); padding
        ]
    )
    torch.testing.assert_close(logprobs.grad, expected)


@pytest.mark.parametrize(
    "eps_low, eps_high, loss",
    [
        (0.2, 0.2, ((-1.2 - 1.0 - 0.5) / 3 + (1.5 + 0.8) / 2) / 2),  # symmetric: 1.5 clipped at 1.2
        (0.2, 0.6, ((-1.5 - 1.0 - 0.5) / 3 + (1.5 + 0.8) / 2) / 2),  # clip-higher lets 1.5 through
        (0.4, 0.28, ((-1.28 - 1.0 - 0.5) / 3 + (1.5 + 0.7) / 2) / 2),  # lower bound 0.6: 0.7 unclipped
    ],
)
def test_separate_low_and_high_eps(eps_low, eps_high, loss):
    got, _ = policy_loss(
        _logprobs(), ADV, MASK, old_logprobs=torch.zeros(2, 3), clip_eps_low=eps_low, clip_eps_high=eps_high
    )
    assert got.item() == pytest.approx(loss, abs=1e-6)


def test_gspo_sequence_ratio_by_hand():
    # seq 0: mean log ratio (ln1.5 + ln1 + ln0.5)/3 = ln(0.75)/3 -> s0 = 0.75^(1/3) ≈ 0.909, unclipped
    # seq 1: (ln1.5 + ln0.7)/2 = ln(1.05)/2 -> s1 = 1.05^(1/2) ≈ 1.025, unclipped (padding ignored)
    loss, metrics = policy_loss(
        _logprobs(),
        ADV,
        MASK,
        old_logprobs=torch.zeros(2, 3),
        ratio_level="sequence",
        clip_eps_low=0.2,
        clip_eps_high=0.28,
    )
    s0, s1 = 0.75 ** (1 / 3), 1.05**0.5
    assert loss.item() == pytest.approx((-s0 + s1) / 2, abs=1e-6)
    assert metrics["ratio_mean"] == pytest.approx((3 * s0 + 2 * s1) / 5)
    assert metrics["clip_fraction"] == 0.0


def test_gspo_clips_whole_sequences():
    # every token doubles its probability: s = 2 > 1.28 with A > 0 -> the sequence is clipped as a whole
    logprobs = torch.full((1, 3), LN(2.0), requires_grad=True)
    loss, metrics = policy_loss(
        logprobs,
        torch.tensor([1.0]),
        torch.ones(1, 3),
        old_logprobs=torch.zeros(1, 3),
        ratio_level="sequence",
        clip_eps_high=0.28,
    )
    loss.backward()
    assert loss.item() == pytest.approx(-1.28)
    assert metrics["clip_fraction"] == 1.0
    assert torch.count_nonzero(logprobs.grad) == 0


def test_truncated_importance_weights_by_hand():
    # old 0, sampler logprobs ln2, 0, -ln3 -> exp(old - behavior) = 0.5, 1, 3 -> capped at 2
    old = torch.zeros(1, 3)
    behavior = torch.tensor([[LN(2), 0.0, -LN(3)]])
    torch.testing.assert_close(truncated_importance_weights(old, behavior, cap=2.0), torch.tensor([[0.5, 1.0, 2.0]]))
    torch.testing.assert_close(truncated_importance_weights(old, behavior, cap=None), torch.tensor([[0.5, 1.0, 3.0]]))


def test_tis_weights_scale_the_loss_and_are_detached():
    # on-policy (ratio 1): per token -A·w. seq 0 (A=1) weights 0.5, 1, 2 -> -3.5; seq 1 (A=-1) 1, 1 -> +2
    logprobs = torch.zeros(2, 3, requires_grad=True)
    behavior = torch.tensor([[LN(2), 0.0, -LN(3)], [0.0, 0.0, 5.0]])
    loss, metrics = policy_loss(
        logprobs, ADV, MASK, old_logprobs=torch.zeros(2, 3), behavior_logprobs=behavior, loss_type="dapo", tis_cap=2.0
    )
    assert loss.item() == pytest.approx((-3.5 + 2.0) / 5)
    assert metrics["tis_weight_mean"] == pytest.approx((0.5 + 1 + 2 + 1 + 1) / 5)
    assert metrics["tis_truncated_fraction"] == pytest.approx(1 / 5)
    loss.backward()
    # the weights only scale the gradient: -A·w/5 per token
    torch.testing.assert_close(logprobs.grad, torch.tensor([[-0.1, -0.2, -0.4], [0.2, 0.2, 0.0]]))


@pytest.mark.parametrize(
    "estimator, value",
    [
        ("k1", LN(2)),  # ln0.5 - ln0.25
        ("k2", 0.5 * LN(2) ** 2),
        ("k3", 0.5 + LN(2) - 1),  # exp(ln0.5) - ln0.5 - 1  with ref - logp = ln0.5
    ],
)
def test_kl_estimators_by_hand(estimator, value):
    got = grpo.KL_ESTIMATORS[estimator](torch.tensor([LN(0.5)]), torch.tensor([LN(0.25)]))
    assert got.item() == pytest.approx(value)


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_k1_and_k3_are_unbiased(estimator):
    # the expectation under pi of k1 and k3 is exactly KL(pi || ref)
    pi = torch.tensor([0.5, 0.3, 0.2])
    ref = torch.tensor([0.2, 0.2, 0.6])
    kl = (pi * (pi / ref).log()).sum()
    estimate = (pi * grpo.KL_ESTIMATORS[estimator](pi.log(), ref.log())).sum()
    assert estimate.item() == pytest.approx(kl.item())


def test_kl_penalty_enters_the_loss():
    # A = 0, so only beta·KL is left; both sequences have k3 = 0.5 + ln2 - 1 per token
    logprobs = torch.full((2, 3), LN(0.5), requires_grad=True)
    ref = torch.full((2, 3), LN(0.25))
    k3 = 0.5 + LN(2) - 1
    loss, metrics = policy_loss(logprobs, torch.zeros(2), MASK, ref_logprobs=ref, beta=0.1, kl_estimator="k3")
    assert loss.item() == pytest.approx(0.1 * k3)
    assert metrics["kl"] == pytest.approx(k3)
    loss.backward()
    # d k3 / d logp = 1 - exp(ref - logp) = 1 - 0.5 > 0: the penalty pulls logp toward ref
    assert (logprobs.grad[MASK.bool()] > 0).all()


def test_beta_without_reference_is_refused():
    with pytest.raises(ValueError, match="ref_logprobs"):
        policy_loss(torch.zeros(1, 2), torch.ones(1), torch.ones(1, 2), beta=0.1)


def test_entropy_by_hand():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, LN(3), -math.inf, -math.inf]])
    # uniform over 4: ln4;  probabilities (1/4, 3/4): -(1/4 ln 1/4 + 3/4 ln 3/4)
    expected = [LN(4), -(0.25 * LN(0.25) + 0.75 * LN(0.75))]
    torch.testing.assert_close(entropy_from_logits(logits), torch.tensor(expected))


def test_entropy_at_temperature():
    # logits (0, 2 ln3) at temperature 2 are (0, ln3): probabilities (1/4, 3/4)
    got = entropy_from_logits(torch.tensor([0.0, 2 * LN(3)]), temperature=2.0)
    assert got.item() == pytest.approx(-(0.25 * LN(0.25) + 0.75 * LN(0.75)))


def test_token_logprobs_by_hand_and_at_temperature():
    logits = torch.tensor([[[0.0, LN(3)], [0.0, 2 * LN(3)]]])
    tokens = torch.tensor([[1, 0]])
    # (0, ln3) at T=1: p(1) = 3/4.  (0, 2ln3) at T=2 is (0, ln3): p(0) = 1/4
    assert token_logprobs(logits[:, :1], tokens[:, :1]).item() == pytest.approx(LN(0.75))
    assert token_logprobs(logits[:, 1:], tokens[:, 1:], temperature=2.0).item() == pytest.approx(LN(0.25))


def test_token_logprobs_match_log_softmax_gather():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11, dtype=torch.bfloat16)
    tokens = torch.randint(0, 11, (3, 5))
    expected = (logits.float() / 0.7).log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(token_logprobs(logits, tokens, temperature=0.7), expected)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_fused_logprobs_and_entropy_equal_the_separate_functions(temperature):
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11) * 3
    logits[0, 1, 4] = -math.inf  # a masked token: contributes 0 to the entropy, not NaN
    tokens = torch.randint(0, 11, (3, 5))
    tokens[0, 1] = 2
    leaf = logits.clone().requires_grad_(True)
    logprobs, entropy = token_logprobs_and_entropy(leaf, tokens, temperature)
    torch.testing.assert_close(logprobs, token_logprobs(logits, tokens, temperature))
    torch.testing.assert_close(entropy, entropy_from_logits(logits, temperature))
    assert not entropy.requires_grad and torch.isfinite(entropy).all()
    (grad,) = torch.autograd.grad(logprobs.sum(), leaf)
    (expected,) = torch.autograd.grad(token_logprobs(leaf, tokens, temperature).sum(), leaf)
    torch.testing.assert_close(grad, expected)


def test_masked_mean_ignores_padding_and_empty_rows():
    values = torch.tensor([[1.0, 3.0, 100.0], [7.0, 7.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert masked_mean(values, mask, dim=-1).tolist() == [2.0, 0.0]
    assert masked_mean(values, mask).item() == 2.0


def test_overlong_penalty_by_hand():
    # max 10, buffer 4: free up to 6 tokens, then -1/4 per token, -1 at 10 and beyond
    got = overlong_penalty(torch.tensor([5, 6, 8, 10, 12]), max_length=10, buffer=4)
    assert got.tolist() == [0.0, 0.0, -0.5, -1.0, -1.0]


@pytest.mark.parametrize("loss_type", sorted(LOSSES))
def test_positive_advantage_raises_its_tokens_probability(loss_type):
    # one SGD step on the logits: the A>0 completion becomes likelier, the A<0 one less likely
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 6, requires_grad=True)
    tokens = torch.randint(0, 6, (2, 4))
    mask = torch.ones(2, 4)
    before = token_logprobs(logits, tokens).detach()
    loss, _ = policy_loss(
        token_logprobs(logits, tokens), torch.tensor([1.0, -1.0]), mask, loss_type=loss_type, max_completion_length=4
    )
    loss.backward()
    with torch.no_grad():
        logits -= 1.0 * logits.grad
    after = token_logprobs(logits, tokens)
    assert (after[0] > before[0]).all() and (after[1] < before[1]).all()


@pytest.mark.parametrize("loss_type", sorted(LOSSES))
@pytest.mark.parametrize("ratio_level", ["token", "sequence"])
def test_split_batch_with_global_normalizer_equals_full_batch(loss_type, ratio_level):
    # What DDP does with 2 ranks: each rank's loss × 2, gradients averaged, must equal the full batch.
    torch.manual_seed(1)
    logprobs = (torch.rand(4, 5) * -2).requires_grad_(True)
    old = logprobs.detach() + 0.3 * torch.randn(4, 5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.float)
    adv = torch.tensor([0.7, -0.7, 1.2, -1.2])
    kw = dict(old_logprobs=old, loss_type=loss_type, ratio_level=ratio_level, max_completion_length=5)
    full, _ = policy_loss(logprobs, adv, mask, **kw)
    (full_grad,) = torch.autograd.grad(full, logprobs)
    normalizer = loss_normalizer(loss_type, mask[:2], 5) + loss_normalizer(loss_type, mask[2:], 5)
    grads, losses = [], []
    for rows in (slice(0, 2), slice(2, 4)):
        part = logprobs[rows].detach().requires_grad_(True)
        loss, metrics = policy_loss(
            part, adv[rows], mask[rows], **{**kw, "old_logprobs": old[rows]}, normalizer=normalizer, loss_scale=2
        )
        assert metrics["loss"] == pytest.approx(loss.item())  # what reduce_metrics averages over ranks
        losses.append(loss)
        grads.append(torch.autograd.grad(loss, part)[0])
    assert (sum(losses) / 2).item() == pytest.approx(full.item(), abs=1e-6)
    torch.testing.assert_close(torch.cat(grads) / 2, full_grad)


# ---------------------------------------------------------------- against TRL's GRPOTrainer loss


def _trl_cases():
    pytest.importorskip("trl")
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "trl_grpo_losses.py"
    spec = importlib.util.spec_from_file_location("trl_grpo_losses", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_loss_and_gradient_match_trl_on_identical_inputs():
    cases = _trl_cases()
    rows = cases.compare()
    assert {row["objective"] for row in rows} == {*LOSSES, "distill"}
    assert len(rows) == 21
    for row in rows:
        assert row["abs_diff"] <= 1e-6, row
        assert row["grad_max_abs_diff"] <= 1e-6, row
    # the harness can tell losses apart: TRL's dapo is not rlvr's cispo on the same inputs
    inputs, settings = cases.make_inputs(), dict(clip_eps_low=0.2, clip_eps_high=0.28)
    mismatch = cases.rlvr_policy_loss(inputs, "cispo", settings) - cases.trl_policy_loss(inputs, "dapo", settings)
    assert abs(mismatch.item()) > 1e-3


# ---------------------------------------------------------------- logprobs from hidden states, in chunks


def _dense_float64(hidden, weight, tokens, temperature):
    logp = ((hidden @ weight.T) / temperature).log_softmax(-1)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1), -(logp.exp() * logp).sum(-1)


def test_chunked_logprobs_by_hand():
    # H = 1, two tokens: the logits of hidden 1 are (0, ln3) -> p = (1/4, 3/4); of hidden 2, (0, 2 ln3)
    # at temperature 2 are (0, ln3) again
    weight = torch.tensor([[0.0], [LN(3)]], dtype=torch.float64)
    entropy = -(0.25 * LN(0.25) + 0.75 * LN(0.75))
    for hidden, temperature in (([[1.0], [1.0]], 1.0), ([[2.0], [2.0]], 2.0)):
        logprobs, got_entropy = chunked_token_logprobs_and_entropy(
            torch.tensor(hidden, dtype=torch.float64), weight, torch.tensor([1, 0]), temperature, chunk_size=1
        )
        torch.testing.assert_close(logprobs, torch.tensor([LN(0.75), LN(0.25)], dtype=torch.float64))
        torch.testing.assert_close(got_entropy, torch.tensor([entropy, entropy], dtype=torch.float64))


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("chunk_size", [1, 4, 7, 15, 64])  # N = 15 positions: uneven last chunk, one chunk, more
@pytest.mark.parametrize("grads", [("hidden", "weight"), ("hidden",), ("weight",)])  # full, frozen head (LoRA)
def test_chunked_logprobs_equal_the_dense_path_in_float64(temperature, chunk_size, grads):
    torch.manual_seed(0)
    hidden = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad="hidden" in grads)
    weight = torch.randn(13, 8, dtype=torch.float64, requires_grad="weight" in grads)
    tokens = torch.randint(0, 13, (3, 5))
    upstream = torch.randn(3, 5, dtype=torch.float64)  # a weighted sum, as a loss is: not only ones
    leaves = [t for t in (hidden, weight) if t.requires_grad]
    logprobs, entropy = chunked_token_logprobs_and_entropy(hidden, weight, tokens, temperature, chunk_size=chunk_size)
    expected, expected_entropy = _dense_float64(hidden, weight, tokens, temperature)
    assert logprobs.dtype == torch.float64 and not entropy.requires_grad
    torch.testing.assert_close(logprobs, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(entropy, expected_entropy.detach(), rtol=0, atol=1e-6)
    got = torch.autograd.grad((logprobs * upstream).sum(), leaves)
    want = torch.autograd.grad((expected * upstream).sum(), leaves)
    for mine, theirs in zip(got, want, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_chunked_logprobs_match_token_logprobs_and_entropy(dtype, tolerance):
    # the learner's dense path: the LM head's logits in the model dtype, then token_logprobs_and_entropy
    torch.manual_seed(1)
    hidden = torch.randn(2, 6, 16).to(dtype).requires_grad_(True)
    weight = torch.randn(40, 16).to(dtype).requires_grad_(True)
    tokens = torch.randint(0, 40, (2, 6))
    logprobs, entropy = chunked_token_logprobs_and_entropy(hidden, weight, tokens, 0.7, chunk_size=5)
    dense, dense_entropy = token_logprobs_and_entropy(torch.nn.functional.linear(hidden, weight), tokens, 0.7)
    assert logprobs.dtype == torch.float32
    torch.testing.assert_close(logprobs, dense, rtol=0, atol=tolerance)
    torch.testing.assert_close(entropy, dense_entropy, rtol=0, atol=tolerance)
    got = torch.autograd.grad(logprobs.sum(), (hidden, weight))
    want = torch.autograd.grad(dense.sum(), (hidden, weight))
    for mine, theirs in zip(got, want, strict=True):
        assert mine.dtype == dtype
        torch.testing.assert_close(mine.float(), theirs.float(), rtol=tolerance, atol=tolerance)


def _largest_saved(fn) -> int:
    """The most elements of any tensor autograd saves for backward while `fn` runs."""
    sizes = [0]
    with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
        fn()
    return max(sizes)


def test_chunked_logprobs_save_no_logits_for_backward():
    # N = 40 positions × V = 50 tokens = 2000 logits; the weight is V × H = 400 elements
    hidden = torch.randn(4, 10, 8, requires_grad=True)
    weight = torch.randn(50, 8, requires_grad=True)
    tokens = torch.randint(0, 50, (4, 10))
    dense = _largest_saved(lambda: token_logprobs_and_entropy(hidden @ weight.T, tokens))
    chunked = _largest_saved(lambda: chunked_token_logprobs_and_entropy(hidden, weight, tokens, chunk_size=8))
    assert dense >= 10 * 50  # the dense path keeps (at least) a row of [T, V] logits per sequence
    assert chunked == 50 * 8  # the weight itself; no logits


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=0.0), "temperature"),
        (dict(chunk_size=0), "chunk_size"),
        (dict(weight=torch.zeros(5, 3)), r"weight \[V, H\]"),
        (dict(token_ids=torch.zeros(2, 2, dtype=torch.long)), r"token_ids \[\.\.\.\]"),
    ],
)
def test_chunked_logprobs_refuse_bad_input(kwargs, message):
    args = dict(hidden=torch.zeros(2, 3, 4), weight=torch.zeros(5, 4), token_ids=torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=message):
        chunked_token_logprobs_and_entropy(**(args | kwargs))
