"""The policy: the shared-prompt forward (the same logits and gradients as one dense pass per row), GRPO's
update through it, zero-advantage skipping, and the probes that see updates lost to precision."""

from __future__ import annotations

import pytest
import torch
import transformers.models.llama.modeling_llama as llama

from rlvr.algorithms.grpo import GRPO, Groups, GRPOBatch
from rlvr.config import load_config, resolve_auto
from rlvr.distributed import init_distributed
from rlvr.learner.policy import Policy
from rlvr.types import Example, Rollout, Score, Status

# (prompt length, completion lengths) per group: left padding, right padding, a 1-token completion
GROUPS = [(5, [3, 7, 1]), (9, [6, 2, 7]), (2, [7, 7, 4])]


def _batch() -> Groups:
    gen = torch.Generator().manual_seed(0)
    rollouts, examples = [], []
    for index, (prompt_len, lengths) in enumerate(GROUPS):
        prompt = tuple(torch.randint(10, 1000, (prompt_len,), generator=gen).tolist())
        examples.append(Example(id=str(index), prompt="p", answer="1"))
        for length in lengths:
            tokens = tuple(torch.randint(10, 1000, (length,), generator=gen).tolist())
            rollouts.append(
                Rollout(
                    prompt_index=index,
                    text="t",
                    token_ids=tokens,
                    logprobs=(-1.0,) * length,
                    finish_reason="stop",
                    prompt_token_ids=prompt,
                )
            )
    scores = [Score(1.0, Status.CORRECT, {})] * len(rollouts)
    return Groups(examples, rollouts, scores, torch.zeros(len(GROUPS), 3))


def _config(model_path, share: bool, micro: int, skip: bool = True, **extra):
    return resolve_auto(
        load_config(
            None,
            {
                "model.name": str(model_path),
                "device": "cpu",
                "model.dtype": "float32",
                "optimizer.share_prompt": share,
                "rollout.n": 3,
                "rollout.prompts_per_step": len(GROUPS),
                "rollout.max_new_tokens": 8,
                "optimizer.micro_batch_size": micro,
                "optimizer.skip_zero_advantage": skip,
                **extra,
            },
        ),
        "cpu",
    )


def _learner(model_path, share: bool, micro: int, skip: bool = True) -> Policy:
    policy = Policy(_config(model_path, share, micro, skip), init_distributed(), torch.device("cpu"), model_path)
    policy.module.double()
    return policy


def _learn(policy: Policy, batch: Groups, advantages: torch.Tensor, use_tis: bool) -> dict:
    return GRPO(policy.config).learn(policy, GRPOBatch(batch, advantages, use_tis))


@pytest.fixture
def exact_llama(monkeypatch):
    """HF's Llama computes RMSNorm in float32 whatever the weights' dtype; in float64 throughout,
    the two passes must agree to rounding (1e-10), not to float32's accumulated error."""

    def rms_norm(self, hidden):
        return self.weight * hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)

    monkeypatch.setattr(llama.LlamaRMSNorm, "forward", rms_norm)


@pytest.mark.parametrize("micro", [9, 4])  # whole batch; micro 4 rounds down to one group of 3
def test_shared_prompt_forward_equals_dense_forward(tiny_model, exact_llama, micro):
    batch = _batch()
    results = {}
    for share in (False, True):
        learner = _learner(tiny_model, share, micro)
        tensors = learner.pack(batch.rollouts, 3)
        learner.wrapped.train()
        micro_batches = learner.micro_batches(tensors)
        if share:  # whole groups per micro-batch
            assert {(idx.stop - idx.start) for idx in micro_batches} == {9 if micro == 9 else 3}
        logits = torch.cat([learner._completion_logits(learner.wrapped, tensors, idx) for idx in micro_batches])
        logprobs = torch.log_softmax(logits, -1).gather(-1, tensors["completion"].unsqueeze(-1)).squeeze(-1)
        (logprobs * tensors["mask"]).sum().backward()
        grads = {name: p.grad.clone() for name, p in learner.wrapped.named_parameters()}
        results[share] = (logprobs.detach() * tensors["mask"], grads)
    (dense_lp, dense_grads), (shared_lp, shared_grads) = results[False], results[True]
    torch.testing.assert_close(shared_lp, dense_lp, rtol=0, atol=1e-10)
    for name, grad in dense_grads.items():
        assert grad.abs().max() > 0, name
        torch.testing.assert_close(shared_grads[name], grad, rtol=1e-9, atol=1e-9, msg=name)


def test_one_learn_step_moves_the_weights_alike_either_way(tiny_model):
    """In float32, a whole update with and without sharing: the same weights to float32 noise."""
    batch = _batch()
    batch.rewards = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    advantages = torch.tensor([0.8, -0.4, -0.4, -0.8, 0.4, 0.4, 0.4, -0.8, 0.4])
    after = {}
    for share in (False, True):
        learner = _learner(tiny_model, share, 9)
        learner.module.float()
        metrics = _learn(learner, batch, advantages, use_tis=True)
        assert metrics["grad_norm"] > 0
        after[share] = {k: v.detach().clone() for k, v in learner.module.state_dict().items()}
    for name, value in after[False].items():
        torch.testing.assert_close(after[True][name], value, rtol=1e-4, atol=1e-6, msg=name)


def _learned(model_path, batch, advantages, skip: bool, steps: int = 1):
    learner = _learner(model_path, True, 9, skip)
    learner.module.float()
    for _ in range(steps):
        metrics = _learn(learner, batch, advantages, use_tis=False)
    return metrics, {k: v.detach().clone() for k, v in learner.module.state_dict().items()}


def test_zero_advantage_groups_are_skipped_without_changing_the_update(tiny_model):
    batch = _batch()
    advantages = torch.tensor([0.0, 0.0, 0.0, -0.8, 0.4, 0.4, 0.4, -0.8, 0.4])  # group 0: equal rewards
    skipped, with_skip = _learned(tiny_model, batch, advantages, skip=True)
    ran, without = _learned(tiny_model, batch, advantages, skip=False)
    assert (skipped["groups_skipped"], ran["groups_skipped"]) == (1, 0)
    assert skipped["loss"] == pytest.approx(ran["loss"], abs=1e-6)  # on-policy: ~0 either way
    for name, value in without.items():
        torch.testing.assert_close(with_skip[name], value, rtol=1e-4, atol=1e-6, msg=name)


def test_an_all_zero_batch_still_takes_the_optimizer_step(tiny_model):
    """Two steps: the first moves the weights, the second has no signal at all. Adam's momentum
    still moves them on the second, exactly as a full forward/backward of zeros would."""
    batch = _batch()
    signal, nothing = torch.tensor([1.0, -1.0, 0.0] * 3), torch.zeros(9)
    results = {}
    for skip in (True, False):
        learner = _learner(tiny_model, True, 9, skip)
        learner.module.float()
        _learn(learner, batch, signal, use_tis=False)
        before = {k: v.detach().clone() for k, v in learner.module.state_dict().items()}
        metrics = _learn(learner, batch, nothing, use_tis=False)
        after = {k: v.detach().clone() for k, v in learner.module.state_dict().items()}
        assert max((after[k] - before[k]).abs().max().item() for k in after) > 0, "momentum moves the weights"
        results[skip] = (metrics, after)
    assert results[True][0]["groups_skipped"] == 3 and results[True][0]["loss"] == 0.0
    for name, value in results[False][1].items():
        torch.testing.assert_close(results[True][1][name], value, rtol=0, atol=1e-7, msg=name)


@pytest.mark.parametrize(
    "steps, dtype, low, high",
    [
        (1, torch.float32, 0.0, 0.0),  # a float32 engine sees every change
        (1, torch.bfloat16, 0.95, 1.0),  # one step of 1e-4 relative: far under bfloat16's 2^-8
        (200, torch.bfloat16, 0.0, 0.15),  # 200 such steps add up past it: the copy shows most of the change
    ],
)
def test_engine_lag_is_the_cumulative_change_an_engine_copy_misses(tiny_model, steps, dtype, low, high):
    learner = _learner(tiny_model, True, 9)
    learner.module.float()
    start = learner.probe()
    with torch.no_grad():
        for _ in range(steps):
            for p in learner.module.parameters():
                p.mul_(1 + 1e-4)  # each step far under bfloat16's rounding step, far over float32's 2^-23
    assert low <= learner.engine_lag(start, dtype) <= high


def _one_step(model_path, tmp_path, **settings) -> tuple[Policy, dict, dict, dict]:
    """One GRPO step at lr 1e-6: the policy, its metrics, and every weight before and after."""
    config = _config(model_path, True, 9, **{"optimizer.lr": 1e-6, "optimizer.warmup_steps": 0, **settings})
    policy = Policy(config, init_distributed(), torch.device("cpu"), model_path)
    before = {k: v.detach().clone() for k, v in policy.module.state_dict().items()}
    advantages = torch.tensor([0.8, -0.4, -0.4, -0.8, 0.4, 0.4, 0.4, -0.8, 0.4])
    metrics = GRPO(config).learn(policy, GRPOBatch(_batch(), advantages, False))
    after = {k: v.detach().clone() for k, v in policy.module.state_dict().items()}
    return policy, metrics, before, after


def _moved_fraction(before: dict, after: dict) -> float:
    moved = sum(int((after[k] != before[k]).sum()) for k in before)
    return moved / sum(v.numel() for v in before.values())


def test_bfloat16_compute_keeps_the_whole_update_in_float32_master_weights(tiny_model, tmp_path):
    """lr 1e-6 in bfloat16 compute: >= 99% of the float32 master weights that an all-float32 step moves
    move too (weights with no gradient, e.g. embeddings of unseen tokens, move in neither), and a
    checkpoint holds the float32 master weights."""
    _, _, reference_before, reference_after = _one_step(tiny_model, tmp_path, **{"model.dtype": "float32"})
    policy, metrics, before, after = _one_step(tiny_model, tmp_path, **{"model.dtype": "bfloat16"})
    assert policy.compute_dtype == torch.bfloat16 and policy.master_dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in after.values())
    should = {k: reference_after[k] != reference_before[k] for k in before}
    moved = sum(int(((after[k] != before[k]) & should[k]).sum()) for k in before)
    assert moved / sum(int(m.sum()) for m in should.values()) >= 0.99
    assert metrics["update_rounded_away"] < 0.01
    from safetensors.torch import load_file

    from rlvr.train.checkpoint import save_checkpoint

    saved = save_checkpoint(
        tmp_path,
        model=policy.module,
        tokenizer=policy.tokenizer,
        optimizer=policy.optimizer,
        scheduler=policy.scheduler,
        state={"step": 1},
    )
    weights = load_file(saved / "model.safetensors")
    assert {v.dtype for v in weights.values()} == {torch.float32}
    for name, value in weights.items():
        torch.testing.assert_close(value, after[name], rtol=0, atol=0, msg=name)


def test_pure_bfloat16_weights_lose_the_update_and_say_so(tiny_model, tmp_path):
    from rlvr.train.alarms import AlarmState, check_alarms, settings_of

    policy, metrics, before, after = _one_step(
        tiny_model, tmp_path, **{"model.dtype": "bfloat16", "model.master_dtype": "bfloat16"}
    )
    assert _moved_fraction(before, after) < 0.5
    assert metrics["update_rounded_away"] > 0.5, metrics
    fired = check_alarms({**metrics, "lr": policy.lr}, AlarmState(), settings_of(policy.config))
    assert "model.master_dtype=float32" in fired["updates_rounded_away"]
