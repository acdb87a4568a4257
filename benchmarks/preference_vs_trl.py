"""rlvr's KTO, CPO, SimPO and ORPO losses against TRL 1.16's on identical inputs (float64): loss and gradient.

    python benchmarks/preference_vs_trl.py

CPO, SimPO (CPOTrainer) and ORPO (ORPOTrainer) compute their losses from the model's logits, so both
sides get the same logits tensor [2P, L, V] (chosen rows first): TRL through its own
`get_batch_loss_metrics` on a stand-in trainer (its `concatenated_forward`, `get_batch_logps`,
`cpo_loss` / `odds_ratio_loss`, NLL included), rlvr through log-softmax → summed response logprobs
and token counts → rlvr.objectives.preference. The gradient compared is d loss / d logits.
KTO (KTOTrainer) reads per-token logprobs from its fused LM head: both sides get the same per-token
logprobs [N, L-1], TRL through `KTOTrainer._compute_loss` with precomputed reference logprobs and
mismatched-pair (KL) logprobs, rlvr through `reference_point` and `kto_loss`.

ORPO's prompts here are one token: TRL 1.16 trains ORPO's NLL on the prompt too, the paper (and rlvr)
on the response only, and the two agree exactly when no prompt token is predicted
(rlvr/objectives/preference.py says why rlvr follows the paper).
"""

from __future__ import annotations

import collections
from types import SimpleNamespace

import torch

from rlvr.objectives.kto import kto_loss, reference_point
from rlvr.objectives.preference import cpo_loss, orpo_loss

VOCAB = 7

#: name -> (family, options). CPO/SimPO options are TRL's CPOConfig names; rlvr maps them below.
CASES: dict[str, tuple[str, dict]] = {
    "cpo sigmoid (alpha 1)": ("cpo", dict(loss_type="sigmoid", beta=0.1, cpo_alpha=1.0)),
    "cpo sigmoid, smoothing 0.1, alpha 0.5": (
        "cpo",
        dict(loss_type="sigmoid", beta=0.5, label_smoothing=0.1, cpo_alpha=0.5),
    ),
    "cpo hinge": ("cpo", dict(loss_type="hinge", beta=0.5, cpo_alpha=1.0)),
    "cpo ipo": ("cpo", dict(loss_type="ipo", beta=0.5, cpo_alpha=1.0)),
    "simpo (alpha 0, beta 2, gamma 1)": ("cpo", dict(loss_type="simpo", beta=2.0, simpo_gamma=1.0, cpo_alpha=0.0)),
    "cpo-simpo (alpha 1, smoothing 0.1)": (
        "cpo",
        dict(loss_type="simpo", beta=2.0, simpo_gamma=0.5, cpo_alpha=1.0, label_smoothing=0.1),
    ),
    "orpo beta 0.1": ("orpo", dict(beta=0.1)),
    "orpo beta 1": ("orpo", dict(beta=1.0)),
    "kto": ("kto", dict(loss_type="kto", beta=0.1, kl_shift=0.3)),
    "kto weighted (1.5 / 0.7), beta 0.5": (
        "kto",
        dict(loss_type="kto", beta=0.5, desirable_weight=1.5, undesirable_weight=0.7, kl_shift=0.3),
    ),
    "kto, reference point clamped to 0": ("kto", dict(loss_type="kto", beta=0.5, kl_shift=-2.0)),
    "apo_zero_unpaired": ("kto", dict(loss_type="apo_zero_unpaired", beta=0.5, kl_shift=0.0)),
}


# ------------------------------------------------------------------------------ CPO / SimPO / ORPO (logits)


def make_pair_batch(pairs: int = 5, length: int = 10, prompt: int = 3, seed: int = 0) -> dict:
    """2·pairs rows (chosen first) of `length` tokens: `prompt` prompt tokens, a completion of 1..rest
    tokens, then padding; labels are the completion's tokens, -100 elsewhere (TRL's tokenized rows)."""
    gen = torch.Generator().manual_seed(seed)
    rows = 2 * pairs
    ids = torch.randint(1, VOCAB, (rows, length), generator=gen)
    lengths = torch.randint(1, length - prompt + 1, (rows,), generator=gen)
    position = torch.arange(length)
    attention = (position < prompt + lengths.unsqueeze(1)).long()
    completion = (position >= prompt) & attention.bool()
    ids = ids * attention  # pad id 0
    labels = ids.masked_fill(~completion, -100)
    logits = 2 * torch.randn(rows, length, VOCAB, generator=gen, dtype=torch.float64)
    return dict(ids=ids, attention=attention, labels=labels, logits=logits, pairs=pairs)


def _rlvr_pair(logits: torch.Tensor, batch: dict, family: str, opts: dict) -> torch.Tensor:
    labels = batch["labels"][:, 1:]
    mask = labels != -100
    per_token = logits[:, :-1].log_softmax(-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    summed, tokens = (per_token * mask).sum(-1), mask.sum(-1)
    chosen, rejected = summed.chunk(2)
    chosen_tokens, rejected_tokens = tokens.chunk(2)
    if family == "orpo":
        loss, _ = orpo_loss(chosen, rejected, chosen_tokens, rejected_tokens, beta=opts["beta"])
        return loss
    loss, _ = cpo_loss(
        chosen,
        rejected,
        chosen_tokens,
        rejected_tokens,
        loss_type=opts["loss_type"],
        beta=opts["beta"],
        label_smoothing=opts.get("label_smoothing", 0.0),
        gamma=opts.get("simpo_gamma", 0.0),
        nll_weight=opts["cpo_alpha"],
    )
    return loss


def _trl_pair(logits: torch.Tensor, batch: dict, family: str, opts: dict) -> torch.Tensor:
    """TRL's `get_batch_loss_metrics` on a stand-in trainer whose model returns `logits`."""
    if family == "orpo":
        from trl.experimental.orpo import ORPOTrainer as Trainer
    else:
        from trl.experimental.cpo import CPOTrainer as Trainer
    accelerator = SimpleNamespace(device=torch.device("cpu"), gather_for_metrics=lambda x: x)
    trainer = SimpleNamespace(
        is_encoder_decoder=False,
        pad_token_id=0,
        padding_value=0,
        accelerator=accelerator,
        aux_loss_enabled=False,
        alpha=0.0,
        label_smoothing=opts.get("label_smoothing", 0.0),
        simpo_gamma=opts.get("simpo_gamma", 0.5),
        loss_type=opts.get("loss_type"),
        beta=opts["beta"],
        cpo_alpha=opts.get("cpo_alpha", 0.0),
        concatenated_inputs=Trainer.concatenated_inputs,
        get_batch_logps=Trainer.get_batch_logps,
    )
    trainer.concatenated_forward = lambda model, b: Trainer.concatenated_forward(trainer, model, b)
    trainer.cpo_loss = lambda c, r: Trainer.cpo_loss(trainer, c, r)
    trainer.odds_ratio_loss = lambda c, r: Trainer.odds_ratio_loss(trainer, c, r)
    p = batch["pairs"]
    trl_batch = {
        f"{side}_{key}": batch[name][rows]
        for side, rows in (("chosen", slice(0, p)), ("rejected", slice(p, 2 * p)))
        for key, name in (("input_ids", "ids"), ("attention_mask", "attention"), ("labels", "labels"))
    }
    loss, _ = Trainer.get_batch_loss_metrics(trainer, lambda *a, **k: SimpleNamespace(logits=logits), trl_batch)
    return loss


# ------------------------------------------------------------------------------ KTO (per-token logprobs)


def make_kto_batch(rows: int = 8, length: int = 9, prompt: int = 2, kl_shift: float = 0.3, seed: int = 0) -> dict:
    """Per-token logprobs of `rows` completions (0 off the completion), their labels (both kinds), the
    reference's summed logprobs, and mismatched-pair (KL) logprobs whose mean log-ratio is about kl_shift."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length - prompt + 1, (rows,), generator=gen)
    position = torch.arange(length)
    completion_mask = ((position >= prompt) & (position < prompt + lengths.unsqueeze(1))).long()
    shifted = completion_mask[:, 1:].double()
    per_token = -3 * torch.rand(rows, length - 1, generator=gen, dtype=torch.float64) * shifted
    ref = per_token.sum(1) + 0.8 * torch.randn(rows, generator=gen, dtype=torch.float64)
    kl_logps = -3 * torch.rand(rows, generator=gen, dtype=torch.float64) * 5
    ref_kl_logps = kl_logps - kl_shift + 0.1 * torch.randn(rows, generator=gen, dtype=torch.float64)
    label = torch.tensor([True, False, False, True, False, True, True, False][:rows])
    return dict(
        per_token=per_token,
        shifted=shifted,
        completion_mask=completion_mask,
        ref_logps=ref,
        kl_logps=kl_logps,
        ref_kl_logps=ref_kl_logps,
        label=label,
    )


def _rlvr_kto(per_token: torch.Tensor, batch: dict, opts: dict) -> torch.Tensor:
    loss, _ = kto_loss(
        (per_token * batch["shifted"]).sum(1),
        batch["ref_logps"],
        batch["label"],
        kl=reference_point(batch["kl_logps"], batch["ref_kl_logps"]),
        loss_type=opts["loss_type"],
        beta=opts["beta"],
        desirable_weight=opts.get("desirable_weight", 1.0),
        undesirable_weight=opts.get("undesirable_weight", 1.0),
    )
    return loss


def _trl_kto(per_token: torch.Tensor, batch: dict, opts: dict) -> torch.Tensor:
    """`KTOTrainer._compute_loss` on a stand-in trainer; its model gives `per_token` for the completions
    and one token carrying each mismatched pair's summed logprob for the KL rows."""
    from trl import KTOTrainer

    rows, width = batch["completion_mask"].shape
    kl_tokens = torch.zeros(rows, width - 1, dtype=torch.float64)
    kl_tokens[:, 0] = batch["kl_logps"]

    def model(input_ids, **kwargs):
        is_kl = bool((input_ids == 1).all())
        return SimpleNamespace(
            log_probs=kl_tokens if is_kl else per_token * batch["shifted"],
            entropy=torch.zeros(rows, width - 1, dtype=torch.float64),
            mean_logits=torch.zeros(rows, width - 1, dtype=torch.float64),
        )

    calculate_kl = opts["loss_type"] != "apo_zero_unpaired"
    accelerator = SimpleNamespace(device=torch.device("cpu"), gather_for_metrics=lambda x: x)
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True),
        accelerator=accelerator,
        calculate_KL=calculate_kl,
        precompute_ref_logps=True,
        aux_loss_enabled=False,
        loss_type=opts["loss_type"],
        beta=opts["beta"],
        desirable_weight=opts.get("desirable_weight", 1.0),
        undesirable_weight=opts.get("undesirable_weight", 1.0),
        _total_train_tokens=0,
        _tp_size=1,
        _metrics={"train": collections.defaultdict(list), "eval": collections.defaultdict(list)},
    )
    trainer._compute_kl_logps = lambda m, b: KTOTrainer._compute_kl_logps(trainer, m, b)
    mask = batch["completion_mask"]
    inputs = dict(
        input_ids=torch.zeros_like(mask),
        attention_mask=torch.ones_like(mask),
        completion_mask=mask,
        label=batch["label"],
        ref_logps=batch["ref_logps"],
        ref_KL_logps=batch["ref_kl_logps"],
    )
    if calculate_kl:
        kl_mask = torch.zeros_like(mask)
        kl_mask[:, 1] = 1
        inputs |= dict(
            KL_input_ids=torch.ones_like(mask), KL_attention_mask=torch.ones_like(mask), KL_completion_mask=kl_mask
        )
    return KTOTrainer._compute_loss(trainer, model, inputs, return_outputs=False)


# ------------------------------------------------------------------------------ one row per case


def compare_case(name: str, seed: int = 0) -> dict:
    """Both losses on identical inputs: rlvr, trl, abs_diff, grad_max_abs_diff, grad_max_abs (the size
    of the gradient compared, so that two zeros cannot pass)."""
    family, opts = CASES[name]
    if family == "kto":
        batch = make_kto_batch(kl_shift=opts.get("kl_shift", 0.3), seed=seed)
        leaf_of, fns = batch["per_token"], (lambda x: _rlvr_kto(x, batch, opts), lambda x: _trl_kto(x, batch, opts))
    else:
        batch = make_pair_batch(prompt=1 if family == "orpo" else 3, seed=seed)
        leaf_of = batch["logits"]
        fns = (lambda x: _rlvr_pair(x, batch, family, opts), lambda x: _trl_pair(x, batch, family, opts))
    results = []
    for fn in fns:
        leaf = leaf_of.clone().requires_grad_(True)
        loss = fn(leaf)
        (grad,) = torch.autograd.grad(loss, leaf)
        results.append((loss.item(), grad))
    (ours, our_grad), (theirs, their_grad) = results
    return dict(
        family=family,
        case=name,
        rlvr=ours,
        trl=theirs,
        abs_diff=abs(ours - theirs),
        grad_max_abs_diff=(our_grad - their_grad).abs().max().item(),
        grad_max_abs=our_grad.abs().max().item(),
    )


def compare(seed: int = 0) -> list[dict]:
    return [compare_case(name, seed) for name in CASES]


if __name__ == "__main__":
    for row in compare():
        print(
            f"{row['case']:<40} rlvr {row['rlvr']:.10f}  trl {row['trl']:.10f}  "
            f"|dloss| {row['abs_diff']:.2e}  |dgrad| {row['grad_max_abs_diff']:.2e}"
        )
