"""DPO / robust DPO / IPO objectives against values worked out by hand, and against TRL's DPOTrainer loss."""

from __future__ import annotations

import collections
import math
from types import SimpleNamespace

import pytest
import torch

from rlvr.objectives.dpo import PAIR_LOSSES, dpo_loss

LN = math.log
LN3 = LN(3)
BETA = 0.5

# Two pairs, β = 0.5.
# pair 0: log-ratios ρ_c = ln3, ρ_r = -ln3, so Δ = 2 ln3 and βΔ = ln3: σ(ln3) = 3/4, σ(-ln3) = 1/4.
# pair 1: policy equals reference, ρ_c = ρ_r = 0, Δ = 0: σ(0) = 1/2 whatever ε.
CHOSEN = [-4.0, -2.0]
REJECTED = [-6.0, -3.0]
REF_CHOSEN = [-4.0 - LN3, -2.0]
REF_REJECTED = [-6.0 + LN3, -3.0]
CHOSEN_TOKENS = torch.tensor([2, 5])
REJECTED_TOKENS = torch.tensor([4, 1])
# (loss_type, label_smoothing, loss, d loss / d chosen_logps); d/d rejected is minus the chosen one
# for sigmoid and robust, and listed for IPO.
CASES = {
    # -ln σ(ln3) = ln(4/3); -ln σ(0) = ln2; dL/dΔ = -β σ(-βΔ) / 2 pairs: -0.5·(1/4)/2, -0.5·(1/2)/2
    "sigmoid": ("sigmoid", 0.0, (LN(4 / 3) + LN(2)) / 2, [-1 / 16, -1 / 8]),
    # cDPO ε = 0.1: pair 0 is 0.9·ln(4/3) + 0.1·(-ln σ(-ln3)) = 0.9 ln(4/3) + 0.1 ln4; pair 1 stays ln2.
    # dL/dΔ = -β(0.9·σ(-βΔ) - 0.1·σ(βΔ)) / 2: pair 0 -0.5(0.9/4 - 0.1·3/4)/2, pair 1 -0.5(0.9/2 - 0.1/2)/2
    "cdpo": ("sigmoid", 0.1, (0.9 * LN(4 / 3) + 0.1 * LN(4) + LN(2)) / 2, [-0.0375, -0.1]),
    # rDPO ε = 0.1: (0.9·ln(4/3) - 0.1·ln4) / 0.8 and (0.9 - 0.1)·ln2 / 0.8 = ln2.
    # dL/dΔ = -β(0.9·σ(-βΔ) + 0.1·σ(βΔ)) / 0.8 / 2:
    #   pair 0 -0.5(0.225 + 0.075)/1.6, pair 1 -0.5(0.45 + 0.05)/1.6
    "robust": ("robust", 0.1, ((0.9 * LN(4 / 3) - 0.1 * LN(4)) / 0.8 + LN(2)) / 2, [-0.09375, -0.15625]),
    # hinge max(0, 1 - βΔ): pair 0 βΔ = ln3 > 1 gives 0 and no gradient; pair 1 gives 1, dL/dΔ = -β / 2
    "hinge": ("hinge", 0.0, (0 + 1) / 2, [0.0, -0.25]),
}


def _leaves():
    return (
        torch.tensor(CHOSEN, dtype=torch.float64, requires_grad=True),
        torch.tensor(REJECTED, dtype=torch.float64, requires_grad=True),
    )


def _refs():
    return torch.tensor(REF_CHOSEN, dtype=torch.float64), torch.tensor(REF_REJECTED, dtype=torch.float64)


@pytest.mark.parametrize("case", sorted(CASES))
def test_pair_losses_and_gradients_by_hand(case):
    loss_type, eps, value, chosen_grad = CASES[case]
    chosen, rejected = _leaves()
    loss, metrics = dpo_loss(chosen, rejected, *_refs(), loss_type=loss_type, beta=BETA, label_smoothing=eps)
    assert loss.item() == pytest.approx(value, abs=1e-12)
    loss.backward()
    torch.testing.assert_close(chosen.grad, torch.tensor(chosen_grad, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(rejected.grad, -chosen.grad, rtol=0, atol=1e-12)
    # implicit rewards β·ρ: chosen (0.5 ln3, 0), rejected (-0.5 ln3, 0); pair 1's tie is not "accurate"
    assert metrics == pytest.approx(
        {
            "loss": value,
            "rewards/chosen": BETA * LN3 / 2,
            "rewards/rejected": -BETA * LN3 / 2,
            "accuracy": 0.5,
            "margin": LN3 / 2,
            "pairs": 2,
        }
    )


@pytest.mark.parametrize(
    "tokens, value, chosen_grad, rejected_grad",
    [
        # per token: pair 0 Δ' = ln3/2 + ln3/4 = 0.75 ln3, pair 1 Δ' = 0; target 1/(2β) = 1.
        # dL/dρ_c = 2(Δ' - 1) / n_c / 2 pairs, dL/dρ_r = -2(Δ' - 1) / n_r / 2
        (
            (CHOSEN_TOKENS, REJECTED_TOKENS),
            ((0.75 * LN3 - 1) ** 2 + 1) / 2,
            [(0.75 * LN3 - 1) / 2, -1 / 5],
            [-(0.75 * LN3 - 1) / 4, 1.0],
        ),
        # token counts of 1: the paper's unnormalized Δ = 2 ln3 and 0
        ((torch.ones(2), torch.ones(2)), ((2 * LN3 - 1) ** 2 + 1) / 2, [2 * LN3 - 1, -1.0], [-(2 * LN3 - 1), 1.0]),
    ],
)
def test_ipo_by_hand(tokens, value, chosen_grad, rejected_grad):
    chosen, rejected = _leaves()
    loss, _ = dpo_loss(
        chosen, rejected, *_refs(), loss_type="ipo", beta=BETA, chosen_tokens=tokens[0], rejected_tokens=tokens[1]
    )
    assert loss.item() == pytest.approx(value, abs=1e-12)
    loss.backward()
    torch.testing.assert_close(chosen.grad, torch.tensor(chosen_grad, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(rejected.grad, torch.tensor(rejected_grad, dtype=torch.float64), rtol=0, atol=1e-12)


def test_every_pair_loss_is_tested():
    # simpo (per token, with a margin) by hand in test_objectives_preference.py, through cpo_loss
    assert {case[0] for case in CASES.values()} | {"ipo", "simpo"} == set(PAIR_LOSSES)


def test_reference_free_uses_the_policy_logprobs_as_rewards():
    # no reference: Δ = (-1) - (-1 - 2 ln3) = 2 ln3, βΔ = ln3 -> loss ln(4/3); rewards β·log π
    chosen = torch.tensor([-1.0], dtype=torch.float64, requires_grad=True)
    rejected = torch.tensor([-1.0 - 2 * LN3], dtype=torch.float64, requires_grad=True)
    loss, metrics = dpo_loss(chosen, rejected, beta=BETA)
    assert loss.item() == pytest.approx(LN(4 / 3), abs=1e-12)
    assert metrics["rewards/chosen"] == pytest.approx(-0.5)
    assert metrics["rewards/rejected"] == pytest.approx(-0.5 - LN3)
    assert metrics["accuracy"] == 1.0


def test_the_reference_gets_no_gradient():
    chosen, rejected = _leaves()
    refs = [ref.clone().requires_grad_(True) for ref in _refs()]
    loss, _ = dpo_loss(chosen, rejected, *refs, beta=BETA)
    loss.backward()
    assert all(ref.grad is None for ref in refs) and chosen.grad is not None


@pytest.mark.parametrize("loss_type, eps", [("sigmoid", 0.0), ("sigmoid", 0.2), ("robust", 0.2), ("ipo", 0.0)])
@pytest.mark.parametrize("loss_scale", [1.0, 2.0])
def test_micro_batches_with_the_global_normalizer_add_up_to_the_full_batch(loss_type, eps, loss_scale):
    torch.manual_seed(0)
    chosen, rejected = (
        (-20 * torch.rand(8, dtype=torch.float64)).requires_grad_(True),
        (-20 * torch.rand(8, dtype=torch.float64)).requires_grad_(True),
    )
    ref_chosen, ref_rejected = chosen.detach() + torch.randn(8), rejected.detach() + torch.randn(8)
    tokens = torch.randint(1, 30, (2, 8))
    kw = dict(loss_type=loss_type, beta=0.3, label_smoothing=eps)
    full, _ = dpo_loss(
        chosen, rejected, ref_chosen, ref_rejected, chosen_tokens=tokens[0], rejected_tokens=tokens[1], **kw
    )
    full_grads = torch.autograd.grad(full, (chosen, rejected))
    losses, grads = [], []
    for rows in (slice(0, 3), slice(3, 8)):
        parts = [chosen[rows].detach().requires_grad_(True), rejected[rows].detach().requires_grad_(True)]
        loss, metrics = dpo_loss(
            *parts,
            ref_chosen[rows],
            ref_rejected[rows],
            chosen_tokens=tokens[0, rows],
            rejected_tokens=tokens[1, rows],
            normalizer=8,
            loss_scale=loss_scale,
            **kw,
        )
        assert metrics["loss"] == pytest.approx(loss.item())
        losses.append(loss)
        grads.append(torch.autograd.grad(loss, parts))
    assert (sum(losses) / loss_scale).item() == pytest.approx(full.item(), abs=1e-12)
    for side in range(2):
        got = torch.cat([g[side] for g in grads]) / loss_scale
        torch.testing.assert_close(got, full_grads[side], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(loss_type="kto"), "robust"),
        (dict(loss_type="ipo"), "chosen_tokens"),
        (
            dict(loss_type="ipo", label_smoothing=0.1, chosen_tokens=torch.ones(2), rejected_tokens=torch.ones(2)),
            "no label_smoothing",
        ),
        (dict(loss_type="robust", label_smoothing=0.5), r"\[0, 0.5\)"),
        (dict(gamma=0.5), "no target margin"),
        (dict(beta=0.0), "beta"),
        (dict(ref_rejected_logps=None), "neither"),
        (dict(normalizer=0), "no preference pairs"),
    ],
)
def test_bad_input_is_refused(kwargs, message):
    args = dict(ref_chosen_logps=torch.zeros(2), ref_rejected_logps=torch.zeros(2)) | kwargs
    with pytest.raises(ValueError, match=message):
        dpo_loss(torch.zeros(2), torch.ones(2), **args)


# ---------------------------------------------------------------- against TRL's DPOTrainer._compute_loss
#
# TRL (>= 1.0) computes its DPO losses inside `DPOTrainer._compute_loss(model, inputs)`, which runs
# the model with `fused_lm_head=True` and reads per-token logprobs (0 off the completion) from its
# output. Here the "model" returns fixed per-token logprobs, the reference ones are precomputed, and
# both sides get the same tensors; rlvr gets their masked sums and token counts.


def _make_pairs(pairs=6, length=9, seed=0):
    gen = torch.Generator().manual_seed(seed)
    prompt = 2  # the first two input positions are prompt; completions of 1..7 tokens follow, then padding
    lengths = torch.randint(1, length - prompt + 1, (2 * pairs,), generator=gen)
    position = torch.arange(length)
    completion_mask = ((position >= prompt) & (position < prompt + lengths.unsqueeze(1))).long()
    shifted = completion_mask[:, 1:].double()  # log_probs[:, t] predicts input t + 1
    per_token = -3 * torch.rand(2 * pairs, length - 1, generator=gen, dtype=torch.float64) * shifted
    ref = (per_token + 0.5 * torch.randn(2 * pairs, length - 1, generator=gen, dtype=torch.float64)) * shifted
    return dict(per_token=per_token, completion_mask=completion_mask, shifted=shifted, ref_logps=ref.sum(1))


def _trl_loss(per_token, pairs, trl_loss_type, eps, ref_logps):
    from trl import DPOTrainer

    def model(**kwargs):  # the fused LM head gives 0 off the labelled (completion) positions
        return SimpleNamespace(
            log_probs=per_token * pairs["shifted"],
            entropy=torch.zeros_like(per_token),
            mean_logits=torch.zeros_like(per_token),
            is_top1=torch.zeros_like(per_token).bool(),
        )

    accelerator = SimpleNamespace(device=torch.device("cpu"), gather=lambda x: x, gather_for_metrics=lambda x: x)
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True),
        accelerator=accelerator,
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=[trl_loss_type],
        loss_weights=[1.0],
        beta=BETA,
        label_smoothing=eps,
        use_weighting=False,
        _total_train_tokens=0,
        _tp_size=1,
        _metrics={"train": collections.defaultdict(list), "eval": collections.defaultdict(list)},
    )
    mask = pairs["completion_mask"]
    ref_chosen, ref_rejected = ref_logps.chunk(2)
    inputs = dict(
        input_ids=torch.zeros_like(mask),
        attention_mask=torch.ones_like(mask),
        completion_mask=mask,
        ref_chosen_logps=ref_chosen,
        ref_rejected_logps=ref_rejected,
    )
    loss = DPOTrainer._compute_loss(trainer, model, inputs, return_outputs=False)
    return loss, {key: values[-1] for key, values in trainer._metrics["train"].items()}


def _rlvr_loss(per_token, pairs, loss_type, eps, ref_logps):
    chosen, rejected = (per_token * pairs["shifted"]).sum(1).chunk(2)
    chosen_tokens, rejected_tokens = pairs["completion_mask"].sum(1).chunk(2)
    ref_chosen, ref_rejected = ref_logps.chunk(2) if ref_logps is not None else (None, None)
    return dpo_loss(
        chosen,
        rejected,
        ref_chosen,
        ref_rejected,
        loss_type=loss_type,
        beta=BETA,
        label_smoothing=eps,
        chosen_tokens=chosen_tokens,
        rejected_tokens=rejected_tokens,
    )


# (rlvr loss, TRL loss, ε, reference). TRL >= 1.0 has no label smoothing in "sigmoid"; its "aot"
# loss is cDPO on sorted log-ratios, which is cDPO itself when every pair's reference log-ratio is
# the same constant (sorting then only permutes the pairs of a mean). Reference-free in TRL is a
# reference whose logprobs are 0.
TRL_CASES = {
    "sigmoid": ("sigmoid", "sigmoid", 0.0, "ref"),
    "sigmoid, reference-free": ("sigmoid", "sigmoid", 0.0, None),
    "ipo": ("ipo", "ipo", 0.0, "ref"),
    "robust": ("robust", "robust", 0.1, "ref"),
    "cdpo vs aot": ("sigmoid", "aot", 0.1, "constant"),
}


def trl_comparison(case: str) -> dict:
    """One TRL_CASES case on both sides: losses, gradients (d loss / d per-token logprobs) and metrics
    (benchmarks/losses_vs_trl.py prints these rows too)."""
    ours_type, trl_type, eps, reference = TRL_CASES[case]
    pairs = _make_pairs()
    ref_logps = {
        "ref": pairs["ref_logps"],
        None: None,
        "constant": pairs["per_token"].sum(1).detach() + torch.tensor([0.7] * 6 + [-0.4] * 6),
    }[reference]
    results = []
    for fn, loss_type, refs in (
        (_rlvr_loss, ours_type, ref_logps),
        (_trl_loss, trl_type, torch.zeros(12, dtype=torch.float64) if ref_logps is None else ref_logps),
    ):
        leaf = pairs["per_token"].clone().requires_grad_(True)
        loss, metrics = fn(leaf, pairs, loss_type, eps, refs)
        (grad,) = torch.autograd.grad(loss, leaf)
        results.append((loss.item(), grad, metrics))
    (ours, our_grad, our_metrics), (theirs, their_grad, their_metrics) = results
    return dict(
        case=case,
        rlvr=ours,
        trl=theirs,
        abs_diff=abs(ours - theirs),
        grad_max_abs_diff=(our_grad - their_grad).abs().max().item(),
        grad_max_abs=our_grad.abs().max().item(),
        metrics=(our_metrics, their_metrics),
    )


@pytest.mark.parametrize("case", sorted(TRL_CASES))
def test_loss_gradient_and_metrics_match_trl(case):
    pytest.importorskip("trl")
    row = trl_comparison(case)
    assert row["abs_diff"] < 1e-6 and row["rlvr"] > 0
    assert row["grad_max_abs_diff"] < 1e-6
    assert row["grad_max_abs"] > 1e-3  # a real gradient, not two zeros
    our_metrics, their_metrics = row["metrics"]
    for mine, trl_name in (
        ("rewards/chosen", "rewards/chosen"),
        ("rewards/rejected", "rewards/rejected"),
        ("accuracy", "rewards/accuracies"),
        ("margin", "rewards/margins"),
    ):
        assert our_metrics[mine] == pytest.approx(their_metrics[trl_name], abs=1e-6), mine
