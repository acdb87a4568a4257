"""KTO, CPO, SimPO and ORPO objectives against values worked out by hand, and against TRL 1.16's trainers
on identical inputs (the cases of benchmarks/preference_vs_trl.py, which benchmarks/losses_vs_trl.py prints)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from rlvr.objectives.kto import KTO_LOSSES, kto_loss, reference_point
from rlvr.objectives.preference import chosen_nll, cpo_loss, log1mexp, orpo_loss

LN = math.log
LN3 = LN(3)


def _bench():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "preference_vs_trl.py"
    spec = importlib.util.spec_from_file_location("preference_vs_trl", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = _bench()  # imports only torch and rlvr at load; TRL inside each comparison


@pytest.mark.parametrize("case", sorted(BENCH.CASES))
def test_loss_and_gradient_equal_trl(case):
    pytest.importorskip("trl")
    row = BENCH.compare_case(case)
    assert row["abs_diff"] <= 1e-6 and row["grad_max_abs_diff"] <= 1e-6, row
    assert row["rlvr"] > 0 and row["grad_max_abs"] > 1e-3, row  # a real loss and gradient, not two zeros


def test_every_family_and_kto_loss_is_compared_with_trl():
    families = {family for family, _ in BENCH.CASES.values()}
    kto_types = {opts["loss_type"] for family, opts in BENCH.CASES.values() if family == "kto"}
    cpo_types = {opts["loss_type"] for family, opts in BENCH.CASES.values() if family == "cpo"}
    assert families == {"kto", "cpo", "orpo"} and kto_types == set(KTO_LOSSES)
    assert cpo_types == {"sigmoid", "hinge", "ipo", "simpo"}  # TRL's CPOTrainer loss types


# ---------------------------------------------------------------- by hand


def _leaves(*values):
    return [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]


def test_cpo_by_hand():
    # one pair: Δ = -2 - (-2 - 2 ln3) = 2 ln3, β = 0.5 -> βΔ = ln3, -log σ(ln3) = ln(4/3);
    # NLL = 2 / 4 chosen tokens = 0.5; loss = ln(4/3) + 1 · 0.5
    # d/dc = -β σ(-βΔ) - 1/4 = -1/8 - 1/4; d/dr = +1/8
    chosen, rejected = _leaves([-2.0], [-2.0 - 2 * LN3])
    loss, metrics = cpo_loss(chosen, rejected, torch.tensor([4]), torch.tensor([3]), beta=0.5, nll_weight=1.0)
    assert loss.item() == pytest.approx(LN(4 / 3) + 0.5, abs=1e-12) and metrics["nll"] == pytest.approx(0.5)
    loss.backward()
    assert chosen.grad.item() == pytest.approx(-0.375) and rejected.grad.item() == pytest.approx(0.125)


def test_simpo_by_hand():
    # per token: c = -2/2 = -1, r = -9/3 = -3, Δ' = 2; β = 1, gamma = 2 - ln3: βΔ' - gamma = ln3,
    # loss -log σ(ln3) = ln(4/3); d/dc = -β σ(-ln3) / n_c = -1/4 / 2, d/dr = +1/4 / 3
    chosen, rejected = _leaves([-2.0], [-9.0])
    loss, _ = cpo_loss(
        chosen,
        rejected,
        torch.tensor([2]),
        torch.tensor([3]),
        loss_type="simpo",
        beta=1.0,
        gamma=2 - LN3,
        nll_weight=0.0,
    )
    assert loss.item() == pytest.approx(LN(4 / 3), abs=1e-12)
    loss.backward()
    assert chosen.grad.item() == pytest.approx(-1 / 8) and rejected.grad.item() == pytest.approx(1 / 12)


def test_orpo_by_hand():
    # mean token logprobs: chosen ln(3/4) (p = 3/4, odds 3), rejected ln(1/4) (p = 1/4, odds 1/3):
    # log odds ratio = ln 9, -log σ(ln 9) = ln(10/9); NLL = -2 ln(3/4) / 2 tokens; β = 0.5
    chosen, rejected = _leaves([2 * LN(0.75)], [LN(0.25)])
    loss, metrics = orpo_loss(chosen, rejected, torch.tensor([2]), torch.tensor([1]), beta=0.5)
    assert loss.item() == pytest.approx(-LN(0.75) + 0.5 * LN(10 / 9), abs=1e-12)
    assert metrics["log_odds_ratio"] == pytest.approx(LN(9)) and metrics["accuracy"] == 1.0


@pytest.mark.parametrize("x", [-1e-12, -1e-3, -LN(2) + 1e-9, -LN(2) - 1e-9, -5.0, -40.0])
def test_log1mexp_is_log_one_minus_exp(x):
    expected = math.log(-math.expm1(x))
    assert log1mexp(torch.tensor(x, dtype=torch.float64)).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "loss_type, kl, expected",
    [
        # r = (ln3, -ln3) for (desirable, undesirable), β = 1, z0 = 0: 1 - σ(ln3) = 1/4, 1 - σ(ln3) = 1/4
        ("kto", 0.0, (0.25 + 0.25) / 2),
        # z0 = ln3: desirable 1 - σ(0) = 1/2; undesirable 1 - σ(ln3 + ln3) = 1 - 9/10
        ("kto", LN3, (0.5 + 0.1) / 2),
        # APO-zero: 1 - σ(ln3) = 1/4 and σ(-ln3) = 1/4, z0 ignored
        ("apo_zero_unpaired", LN3, (0.25 + 0.25) / 2),
    ],
)
def test_kto_by_hand(loss_type, kl, expected):
    (logps,) = _leaves([-1.0 + LN3, -1.0 - LN3])
    loss, metrics = kto_loss(
        logps, torch.tensor([-1.0, -1.0]), torch.tensor([True, False]), kl=kl, loss_type=loss_type, beta=1.0
    )
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    assert metrics["margin"] == pytest.approx(2 * LN3) and (metrics["desirable"], metrics["undesirable"]) == (1, 1)


def test_kto_weights_and_reference_point():
    # z0 = mean(0.5, -0.1) = 0.2; a negative mean is clamped to 0, and it carries no gradient
    logps = torch.tensor([0.5, -0.1], dtype=torch.float64, requires_grad=True)
    assert reference_point(logps, torch.zeros(2)).item() == pytest.approx(0.2)
    assert reference_point(-logps, torch.zeros(2)).item() == 0.0
    assert not reference_point(logps, torch.zeros(2)).requires_grad
    (x,) = _leaves([LN3, -LN3])
    loss, _ = kto_loss(x, torch.zeros(2), torch.tensor([True, False]), beta=1.0, desirable_weight=3.0)
    assert loss.item() == pytest.approx((3 * 0.25 + 0.25) / 2)


# ---------------------------------------------------------------- micro-batches add up to the full batch


def _full_and_parts(fn, n_rows, **kw):
    torch.manual_seed(0)
    logps = (-20 * torch.rand(n_rows, dtype=torch.float64)).requires_grad_(True)
    tokens = torch.randint(1, 30, (n_rows,))
    full, _ = fn(logps, tokens, slice(0, n_rows), None, **kw)
    (full_grad,) = torch.autograd.grad(full, logps)
    parts = []
    for rows in (slice(0, 4), slice(4, n_rows)):
        part = logps[rows].detach().requires_grad_(True)
        loss, _ = fn(part, tokens[rows], rows, (logps, tokens), **kw)
        parts.append((loss, torch.autograd.grad(loss, part)[0]))
    return full, full_grad, parts


def _pairs(fn):
    def run(logps, tokens, rows, whole, **kw):
        norms = {}
        if whole is not None:
            norms = dict(normalizer=whole[0].numel() // 2, token_normalizer=whole[1][0::2].sum())
        return fn(logps[0::2], logps[1::2], tokens[0::2], tokens[1::2], **norms, **kw)

    return run


def _kto(logps, tokens, rows, whole, **kw):
    ref = torch.linspace(-10, -5, 10, dtype=torch.float64)[rows]
    labels = torch.tensor([True, False, False, True, True, False, True, True, False, False])[rows]
    return kto_loss(logps, ref, labels, normalizer=None if whole is None else 10, kl=0.3, **kw)


@pytest.mark.parametrize(
    "fn, kw",
    [
        (_pairs(cpo_loss), dict(beta=0.3)),
        (_pairs(cpo_loss), dict(loss_type="simpo", beta=2.0, gamma=0.5, nll_weight=0.5)),
        (_pairs(orpo_loss), dict(beta=0.5)),
        (_kto, dict(beta=0.5, desirable_weight=2.0)),
    ],
)
def test_micro_batches_with_global_normalizers_add_up_to_the_full_batch(fn, kw):
    full, full_grad, parts = _full_and_parts(fn, 10, **kw)
    assert sum(loss for loss, _ in parts).item() == pytest.approx(full.item(), abs=1e-12)
    torch.testing.assert_close(torch.cat([g for _, g in parts]), full_grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: kto_loss(torch.zeros(2), torch.zeros(2), torch.tensor([True, False]), loss_type="bco"), "apo_zero"),
        (lambda: kto_loss(torch.zeros(2), torch.zeros(2), torch.tensor([True, False]), beta=0.0), "beta"),
        (lambda: kto_loss(torch.zeros(2), torch.zeros(3), torch.tensor([True, False])), "rows"),
        (lambda: kto_loss(torch.zeros(2), torch.zeros(2), torch.tensor([True, False]), normalizer=0), "no completions"),
        (lambda: cpo_loss(torch.zeros(2), torch.zeros(2), torch.ones(2), torch.ones(3)), "pairs"),
        (lambda: cpo_loss(torch.zeros(2), torch.zeros(2), torch.ones(2), torch.ones(2), gamma=1.0), "no target margin"),
        (lambda: cpo_loss(torch.zeros(2), torch.zeros(2), torch.ones(2), torch.ones(2), nll_weight=-1), "nll_weight"),
        (lambda: orpo_loss(torch.zeros(2), torch.zeros(2), torch.ones(2), torch.ones(2), beta=-1), "beta"),
        (lambda: chosen_nll(torch.zeros(2), torch.zeros(2)), "normalizer is 0"),
    ],
)
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
