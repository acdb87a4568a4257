"""The Trainer's build stages (rlvr.train.stages), each run alone, and one GRPO step of the whole loop
pinned to the same step computed independently with plain transformers + torch."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlvr.algorithms import create_algorithm
from rlvr.algorithms.base import DataPlan
from rlvr.config import load_config
from rlvr.distributed import DistContext
from rlvr.errors import InputError, OutputError
from rlvr.train import reward_stages, stages

CPU = torch.device("cpu")
MAIN, OTHER = DistContext(), DistContext(rank=1, world_size=2, is_main=False)


def _config(tiny: Path, out: Path, **extra):
    return load_config(
        None,
        {
            "model.name": str(tiny),
            "device": "cpu",
            "model.dtype": "float32",
            "rollout.engine": "hf",
            "data.dataset": "arith",
            "data.size": 16,
            "reward.workers": 0,
            "reward.audit": False,
            "rollout.n": 4,
            "rollout.prompts_per_step": 2,
            "rollout.max_new_tokens": 12,
            "rollout.temperature": 1.0,
            "optimizer.lr": 1e-3,
            "optimizer.max_steps": 1,
            "optimizer.warmup_steps": 0,
            "logging.output": str(out),
            "logging.progress": False,
            "checkpoint.every": 0,
            "eval.before_after": False,
            "logging.samples_every": 0,
            **extra,
        },
    )


# ------------------------------------------------------------------------------ device and dtype


@pytest.mark.parametrize(
    "device, available, expect",
    [
        ("auto", "cpu", "cpu"),
        ("cpu", "cpu", "cpu"),
        ("cuda", "cpu", "device=cuda, but CUDA is not available"),
    ],
)
def test_the_device_stage_resolves_auto_sizes_for_the_device_or_refuses(
    tiny_model, tmp_path, device, available, expect
):
    config = _config(tiny_model, tmp_path, **{"device": device, "rollout.n": None})
    if expect.startswith("device="):
        with pytest.raises(InputError, match=expect):
            stages.resolve_device(config, torch.device(available))
        return
    resolved, placed = stages.resolve_device(config, torch.device(available))
    assert placed.type == expect and resolved.device == expect and resolved.rollout.n == 8  # the CPU default
    assert config.rollout.n is None  # the stage returns a new config; the one given is left as it was


@pytest.mark.parametrize(
    "extra, compute, rollout",
    [
        ({"model.dtype": "float32"}, "float32", "float32"),
        ({"model.dtype": "bfloat16"}, "bfloat16", "bfloat16"),  # rollout.dtype auto: the engine follows the learner
        ({"model.dtype": "bfloat16", "rollout.dtype": "float32"}, "bfloat16", "float32"),
    ],
)
def test_the_placement_records_the_compute_dtype_and_the_engines(tiny_model, tmp_path, extra, compute, rollout):
    placement = stages.place(_config(tiny_model, tmp_path, **extra), MAIN)
    assert (placement.config.model.dtype, placement.rollout_dtype, placement.device) == (compute, rollout, CPU)


# ------------------------------------------------------------------------------ verifier and audit


@pytest.mark.parametrize(
    "extra, expect",
    [
        ({"reward.verifier": "nosuch"}, "--verifier 'nosuch'"),
        ({"reward.verifier": "boxed_format", "reward.audit": True, "reward.strict_audit": True}, "--strict-audit"),
        ({"reward.verifier": "math", "reward.audit": False}, None),
        ({"reward.verifier": "math", "reward.audit": True}, "rewarded"),
    ],
)
def test_the_verifier_and_audit_stages(tiny_model, tmp_path, extra, expect):
    config = _config(tiny_model, tmp_path, **extra)
    if expect and expect.startswith("--"):
        with pytest.raises(InputError, match=expect):
            reward_stages.audit_reward(config, reward_stages.build_verifier(config))
        return
    report = reward_stages.audit_reward(config, reward_stages.build_verifier(config))
    assert (report is None) == (expect is None)
    if report is not None:
        assert expect in report.line()


@pytest.mark.parametrize(
    "extra, expect",
    [
        ({"reward.cross_check": "nosuch"}, "reward.cross_check 'nosuch'"),
        ({"reward.cross_check": "math:nosuch=1"}, "reward.cross_check 'math:nosuch=1'"),
        (
            {"reward.cross_check": "math_verify", "reward.cross_check_samples": 0},
            "reward.cross_check_samples must be > 0",
        ),
    ],
)
def test_a_bad_second_grader_is_refused_before_any_model_loads(tiny_model, tmp_path, extra, expect):
    with pytest.raises(InputError, match=re.escape(expect)):
        stages.check_config(_config(tiny_model, tmp_path, **extra), CPU)


def test_the_second_grader_wraps_the_runner_only_when_asked(tiny_model, tmp_path):
    plain = reward_stages.build_runner(reward_stages.build_verifier(config := _config(tiny_model, tmp_path)), config)
    assert not hasattr(plain, "take")
    config = _config(tiny_model, tmp_path, **{"reward.cross_check": "math_verify", "reward.cross_check_samples": 5})
    checked = reward_stages.build_runner(reward_stages.build_verifier(config), config)
    assert (checked.reference.verifier.name, checked.samples, checked.timeout) == ("math_verify", 5, plain.timeout)


@pytest.mark.parametrize(
    "engine, spec_engine, expect", [("hf", "", "hf"), ("vllm", "", "vllm"), ("hf", ",engine=vllm", "vllm")]
)
def test_a_judge_term_generates_on_the_run_engine_unless_named(
    tiny_model, tmp_path, monkeypatch, engine, spec_engine, expect
):
    monkeypatch.setattr("rlvr.rollout.base.vllm_available", lambda: True)  # resolving a kind starts nothing
    verifier = f"math+0.5*judge:model={tiny_model}{spec_engine}"
    config = _config(tiny_model, tmp_path, **{"reward.verifier": verifier, "rollout.engine": engine})
    judge = reward_stages.build_verifier(config).parts[1][1]
    assert (judge.name, judge.engine, judge.backend) == ("judge", expect, None)


# ------------------------------------------------------------------------------ data plan and rows


@pytest.mark.parametrize(
    "algorithm, extra, rows, served",
    [
        ("grpo", {}, 16, 16),
        ("grpo", {"eval.before_after": True, "eval.limit": 3}, 16, 19),  # the held-out prompts are served too
        ("sft", {}, 16, 0),  # responses are never sampled: the engine serves no training prompt
        ("sft", {"eval.before_after": True, "eval.limit": 3}, 16, 3),
        ("dpo", {"data.dataset": "{prefs}"}, 0, 0),  # a preference file: read later, with the policy's tokenizer
    ],
)
def test_the_data_stage_reads_what_the_plan_names(tiny_model, tmp_path, algorithm, extra, rows, served):
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(json.dumps({"prompt": "What is 1+1?", "chosen": "2", "rejected": "3"}) + "\n")
    extra = {k: v.format(prefs=prefs) if isinstance(v, str) else v for k, v in extra.items()}
    config = _config(tiny_model, tmp_path, algorithm=algorithm, **extra)
    plan = create_algorithm(algorithm, config).plan
    data = stages.load_data(plan, config)
    assert (len(data.rows), len(data.served(plan))) == (rows, served)


# ------------------------------------------------------------------------------ engine


def test_an_engine_that_generates_with_the_policy_gets_a_plain_spec(tiny_model, tmp_path):
    config = _config(tiny_model, tmp_path)
    spec = stages.engine_spec(config, stages.place(config, MAIN), MAIN, "hf", tiny_model, served=[])
    assert not spec.holds_weights and spec.tensor_parallel == 1 and spec.options == {}
    assert spec.max_model_len == 1024 + 12 and spec.dtype == "float32"
    assert spec.seed != stages.engine_spec(config, stages.place(config, MAIN), OTHER, "hf", tiny_model).seed  # per rank


# ------------------------------------------------------------------------------ seed, policy, resume, stream


@pytest.mark.slow
def test_seeding_comes_after_the_engine_and_the_policy_needs_it(tiny_model, tmp_path):
    seeded = stages.seed_rngs(7, after=None)
    first = torch.rand(3)
    assert seeded == stages.seed_rngs(7, after=object()) and torch.equal(torch.rand(3), first)
    config = _config(tiny_model, tmp_path, **{"grpo.beta": 0.04, "grpo.mu": 2})
    plan = create_algorithm("grpo", config).plan
    policy = stages.build_policy(stages.place(config, MAIN), MAIN, tiny_model, None, plan, seeded)
    assert policy.reference is not None and policy.wrapped is policy.module  # one process: nothing wraps it
    assert stages.resume_state(None, policy, MAIN) == stages.Resumed(0, {}, {})


@pytest.mark.parametrize(
    "algorithm, dataset, field",
    [
        ("grpo", "arith", None),
        ("sft", "arith", "response"),  # the worked answers of the same rows
        ("sft", "{rows}", "response"),  # a file, read with the tokenizer
        ("dpo", "{prefs}", "chosen"),
    ],
)
def test_the_stream_holds_the_algorithms_rows_at_the_resumed_position(tiny_model, tmp_path, algorithm, dataset, field):
    from rlvr.models import load_tokenizer

    files = {"rows": tmp_path / "rows.jsonl", "prefs": tmp_path / "prefs.jsonl"}
    files["rows"].write_text(
        "".join(json.dumps({"prompt": f"{i}+1?", "completion": str(i + 1)}) + "\n" for i in range(4))
    )
    files["prefs"].write_text(
        "".join(json.dumps({"prompt": f"{i}+1?", "chosen": str(i + 1), "rejected": "x"}) + "\n" for i in range(4))
    )
    config = _config(tiny_model, tmp_path, algorithm=algorithm, **{"data.dataset": dataset.format(**files)})
    algo = create_algorithm(algorithm, config)
    data = stages.load_data(algo.plan, config)
    stream = stages.prompt_stream(
        algo, data, load_tokenizer(tiny_model), config, stages.Resumed(1, {"epoch": 0, "index": 2})
    )
    assert stream.position() == {"epoch": 0, "index": 2}
    row = stream.take(1)[0]
    assert field is None or field in row.metadata


# ------------------------------------------------------------------------------ run folder


def test_the_run_folder_is_written_by_rank_0_only_and_a_failure_is_one_error(tiny_model, tmp_path):
    config = _config(tiny_model, tmp_path / "run")
    assert stages.prepare_run_folder(config, 0, OTHER) == tmp_path / "run" and not (tmp_path / "run").exists()
    stages.prepare_run_folder(config, 0, MAIN)
    assert "model:" in (tmp_path / "run" / "config.yaml").read_text()
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="cannot write the run folder"):
        stages.prepare_run_folder(_config(tiny_model, tmp_path / "file" / "run"), 0, MAIN)


def test_check_config_runs_the_stages_that_load_no_model(tiny_model, tmp_path):
    resolved = stages.check_config(_config(tiny_model, tmp_path, **{"rollout.n": None}), CPU)
    assert resolved.rollout.n == 8 and resolved.model.dtype == "float32"
    with pytest.raises(InputError, match="--dataset 'nosuch'"):
        stages.check_config(_config(tiny_model, tmp_path, **{"eval.before_after": True, "eval.dataset": "nosuch"}), CPU)
    assert not (tmp_path / "config.yaml").exists()  # nothing written, no model loaded


def test_plans_are_frozen_dataclasses():
    with pytest.raises(AttributeError):
        DataPlan("prompts", True).samples_online = False  # type: ignore[misc]


# ------------------------------------------------------------------------------ one step, computed again


@pytest.mark.slow
def test_a_grpo_step_matches_the_same_step_computed_with_plain_torch(tiny_model, tmp_path):
    """The loop's GRPO step (shared-prompt pass, chunked LM head, lean layers, micro-batches, zero-advantage
    groups skipped) against the textbook one: Dr. GRPO advantages r - mean, the token-mean (dapo) loss
    -Σ A·ratio / tokens at ratio 1, a dense forward per completion, clipping at 1.0, one AdamW step."""
    from transformers import AutoModelForCausalLM

    from rlvr.train.trainer import Trainer

    config = _config(
        tiny_model,
        tmp_path / "run",
        **{
            "reward.verifier": "overlong:max_tokens=200,buffer=190,unit=chars",  # rewards vary with length
            "grpo.advantage": "dr_grpo",
            "grpo.loss": "dapo",
            "grpo.tis": "off",
            "optimizer.micro_batch_size": 2,
        },
    )
    trainer = Trainer(config)
    batches = []
    learn = trainer.algorithm.learn
    trainer.algorithm.learn = lambda policy, batch: batches.append(batch) or learn(policy, batch)
    trainer.train()
    [batch] = batches
    rewards = batch.groups.rewards
    assert rewards.std() > 0, "no reward signal: the step would not move the weights"
    advantages = (rewards - rewards.mean(1, keepdim=True)).reshape(-1)

    model = AutoModelForCausalLM.from_pretrained(tiny_model, torch_dtype=torch.float32)
    tokens = sum(len(r.token_ids) for r in batch.groups.rollouts)
    loss = torch.zeros(())
    for advantage, rollout in zip(advantages, batch.groups.rollouts, strict=True):
        prompt, completion = list(rollout.prompt_token_ids), list(rollout.token_ids)
        logits = model(input_ids=torch.tensor([prompt + completion])).logits[0, len(prompt) - 1 : -1]
        logprobs = logits.log_softmax(-1).gather(-1, torch.tensor(completion)[:, None]).squeeze(-1)
        loss = loss - (advantage * torch.exp(logprobs - logprobs.detach())).sum() / tokens
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0).step()

    [metrics] = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert metrics["grad_norm"] == pytest.approx(float(grad_norm), rel=1e-4)
    trained = load_file(tmp_path / "run" / "final" / "model.safetensors")
    expected = model.state_dict()
    moved = max((trained[k] - load_file(tiny_model / "model.safetensors")[k]).abs().max().item() for k in trained)
    assert moved > 5e-4  # AdamW's first step moves a weight by about lr
    for name, tensor in trained.items():  # a tenth of a step: far tighter than any wrong sign or row
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=1e-4, msg=name)
