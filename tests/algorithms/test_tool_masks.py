"""Multi-turn rollouts in the learner: tool tokens get no gradient, entropy, KL or TIS weight, and
grpo.void_turns=mask drops the loss of trajectories with a void turn (an all-void batch: no NaN)."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.algorithms.grpo import GRPO, Groups, GRPOBatch
from rlvr.config import load_config, resolve_auto
from rlvr.distributed import init_distributed
from rlvr.learner.policy import Policy
from rlvr.rollout.stats import is_void, tool_metrics
from rlvr.types import Example, Rollout, Score, Status

N = 2  # completions per group


def _config(model_path, **extra):
    return resolve_auto(load_config(None, {
        "model.name": str(model_path), "device": "cpu", "model.dtype": "float32", "rollout.n": N,
        "rollout.prompts_per_step": 2, "rollout.max_new_tokens": 16, "optimizer.micro_batch_size": 4,
        "optimizer.lr": 1e-2, "optimizer.warmup_steps": 0, "optimizer.skip_zero_advantage": False, **extra}), "cpu")


def _trajectory(index: int, model: list[int], tool: list[int], calls=({"status": "ok"},), finish="length") -> Rollout:
    """A model turn, then a tool output the trajectory ended in (so the tool tokens precede nothing)."""
    ids = (*model, *tool)
    return Rollout(index, "text", ids, (*(-1.5 for _ in model), *(0.0 for _ in tool)), finish, (7, 8, 9 + index),
                   loss_mask=(1,) * len(model) + (0,) * len(tool),
                   segments=(("model", 0, len(model)), ("tool", len(model), len(ids))), tool_calls=tuple(calls))


def _groups(tool_ids: list[int], statuses=(Status.CORRECT, Status.WRONG)) -> Groups:
    rollouts = [_trajectory(g, [11 + g, 12 + j, 13], tool_ids) for g in range(2) for j in range(N)]
    scores = [Score(1.0 if statuses[j] is Status.CORRECT else 0.0, statuses[j]) for _ in range(2) for j in range(N)]
    return Groups([Example(str(g), "p", "1") for g in range(2)], rollouts, scores, torch.tensor([[1.0, 0.0]] * 2))


def _learn(model_path, groups: Groups, use_tis: bool, **extra) -> tuple[dict, dict[str, torch.Tensor]]:
    config = _config(model_path, **extra)
    policy = Policy(config, init_distributed(), torch.device("cpu"), model_path, reference=bool(config.grpo.beta))
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])
    metrics = GRPO(config).learn(policy, GRPOBatch(groups, advantages, use_tis))
    return metrics, {k: v.detach().clone() for k, v in policy.module.state_dict().items()}


@pytest.mark.parametrize("use_tis, extra", [
    (False, {"grpo.loss": "dapo"}),
    (True, {"grpo.loss": "grpo"}),  # the sampler's logprob 0 on tool tokens would be a TIS weight of e^lp
    (False, {"grpo.loss": "dr_grpo", "grpo.beta": 0.1}),  # KL to the reference on tool tokens
])
def test_changing_the_tool_tokens_changes_neither_loss_nor_update(tiny_model, use_tis, extra):
    a_metrics, a_weights = _learn(tiny_model, _groups([21, 22, 23, 24]), use_tis, **extra)
    b_metrics, b_weights = _learn(tiny_model, _groups([900, 901, 902, 903]), use_tis, **extra)
    for key in ("loss", "entropy", "tokens", *(("kl",) if "grpo.beta" in extra else ()),
                *(("tis_weight_mean",) if use_tis else ())):
        assert a_metrics[key] == pytest.approx(b_metrics[key], abs=1e-7), key
    assert a_metrics["tokens"] == 12  # 4 rows × 3 model tokens: the tool's 4 per row are not counted
    for name, weight in a_weights.items():
        torch.testing.assert_close(weight, b_weights[name], rtol=0, atol=1e-7, msg=name)


def test_the_packed_mask_is_the_rollouts_loss_mask(tiny_model):
    policy = Policy(_config(tiny_model), init_distributed(), torch.device("cpu"), tiny_model)
    groups = _groups([21, 22])
    tensors = policy.pack(groups.rollouts, N)
    assert tensors["mask"].tolist() == [[1.0, 1.0, 1.0, 0.0, 0.0]] * 4
    logprobs, entropy = policy.logprobs(tensors, slice(0, 4), entropy=True)
    assert logprobs[:, 3:].abs().max() == 0 and entropy[:, 3:].abs().max() == 0  # the learner's logprob 0 there


# ------------------------------------------------------------------------------ void turns


@pytest.mark.parametrize("calls, finish, status, void", [
    (({"status": "ok"},), "stop", Status.CORRECT, False),
    (({"status": "ok"},), "stop", Status.NO_ANSWER, True),  # ended its turn with neither a call nor an answer
    (({"status": "ok"},), "length", Status.NO_ANSWER, True),  # cut off without an answer
    (({"status": "invalid"},), "stop", Status.WRONG, True),  # opened an output block with no code
    (({"status": "error"},), "tool_budget", Status.NO_ANSWER, False),  # every turn called the tool
    ((), "stop", Status.WRONG, False),
])
def test_void_trajectories(calls, finish, status, void):
    assert is_void(_trajectory(0, [1, 2], [3], calls, finish), Score(0.0, status)) is void


def test_void_masking_keeps_rewards_and_an_all_void_batch_gives_no_nan(tiny_model):
    config = _config(tiny_model, **{"grpo.void_turns": "mask"})
    policy = Policy(config, init_distributed(), torch.device("cpu"), tiny_model)
    mixed = _groups([21], (Status.CORRECT, Status.NO_ANSWER))
    mask = GRPO(config)._loss_mask(policy.pack(mixed.rollouts, N), mixed)
    assert mask.sum(-1).tolist() == [3.0, 0.0, 3.0, 0.0]  # the void rows: no loss
    assert mixed.rewards.tolist() == [[1.0, 0.0]] * 2  # their rewards still count in the group
    before = {k: v.clone() for k, v in policy.module.state_dict().items()}
    void = _groups([21], (Status.NO_ANSWER, Status.NO_ANSWER))
    metrics = GRPO(config).learn(policy, GRPOBatch(void, torch.tensor([1.0, -1.0, 1.0, -1.0]), False))
    assert all(math.isfinite(v) for v in metrics.values()) and metrics["loss"] == 0
    for name, weight in policy.module.state_dict().items():
        assert torch.equal(weight, before[name]), name


def test_tool_metrics_of_a_step():
    rollouts = [_trajectory(0, [1, 2], [3], ({"status": "ok"}, {"status": "timeout"}), "stop"),
                _trajectory(0, [1, 2, 3], [4, 5], ({"status": "invalid"},), "stop")]
    metrics = tool_metrics([Score(1.0, Status.CORRECT), Score(0.0, Status.WRONG)], rollouts)
    assert metrics["tool_calls_mean"] == 1.5
    assert metrics["tool_error_rate"] == pytest.approx(2 / 3) and metrics["tool_timeout_rate"] == pytest.approx(1 / 3)
    assert metrics["void_rate"] == 0.5
    assert (metrics["model_tokens"], metrics["tool_tokens"]) == (5.0, 3.0)
