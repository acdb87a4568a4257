"""Every user-facing config key has a row here that runs the tiny model through the trainer (a few through
`rlvr train`) and asserts the option's effect; a key without a row fails the suite. Keys that need a GPU,
torchrun or a service get a row that checks the refusal or the value reaching its consumer, with why."""

from __future__ import annotations

import math
import platform
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from option_runs import (
    VARIED,
    Runs,
    adapter_config,
    batches,
    engine_options,
    final_weights,
    ids,
    loss_kwargs,
    moved,
    optimizer_steps,
    prompts,
    refused,
    series,
    summary,
    value_at,
)
from rlvr.config import TrainConfig, config_keys, load_config
from rlvr.data.templates import DEFAULT_INSTRUCTION
from rlvr.errors import InputError
from rlvr.types import Score, Status


@pytest.fixture(scope="module")
def runs(tiny_model, tmp_path_factory) -> Runs:
    return Runs(tiny_model, tmp_path_factory.mktemp("options"))


# ------------------------------------------------------------------------------ the multi-assert checks


def _check_device(runs: Runs) -> None:
    assert runs["base"].trainer.device.type == "cpu" and runs["base"].saved_config()["device"] == "cpu"
    if not torch.cuda.is_available():  # asking for a GPU this machine lacks: refused, not a CPU run with GPU sizes
        from rlvr.train.trainer import Trainer

        with pytest.raises(InputError, match="device=cuda, but CUDA is not available"):
            Trainer(load_config(None, runs.overrides("base", device="cuda")))


def _check_cross_check(runs: Runs) -> None:
    """Every completion (4 a step, under the 16 sampled) graded again: the logged rate is the share of a step's
    completions where the second grader's verdict and the reward disagree, recomputed here from samples.jsonl."""
    from rlvr.types import Example
    from rlvr.verifiers.cross_check import agree
    from rlvr.verifiers.registry import build_verifier

    reference = build_verifier(runs.config("flat").reward.cross_check)
    rates = []
    for m in runs["flat"].metrics:
        rows = [s for s in runs["flat"].samples() if s["step"] == m["step"]]
        theirs = [reference.score(s["completion"], Example(id=s["id"], prompt="", answer=s["gold"])) for s in rows]
        ours = [Score(s["reward"], Status(s["status"]), {}) for s in rows]
        assert m["cross_checked"] == len(rows) == 4 and m["cross_check_failures"] == 0
        rates.append(sum(not agree(o, t) for o, t in zip(ours, theirs, strict=True)) / len(rows))
    assert series(runs, "flat", "verifier_disagreement_rate") == rates
    assert "verifier_disagreement_rate" not in runs["base"].metrics[0]


def _check_beta(runs: Runs) -> None:
    full, lora, off = runs["kl_full"].trainer.policy, runs["kl_lora"].trainer.policy, runs["base"].trainer.policy
    assert full.reference is not None and full.reference is not full.module
    assert not any(p.requires_grad for p in full.reference.parameters())
    assert lora.reference is None and runs["kl_lora"].count("disable_adapter") > 0  # the base model, adapters off
    assert off.reference is None and "kl" not in runs["base"].metrics[0]  # β = 0: no reference at all
    for name in ("kl_full", "kl_lora"):  # step 1 learns from the initial policy: KL 0; after an update: > 0
        kl = series(runs, name, "kl")
        assert kl[0] == pytest.approx(0.0, abs=1e-6) and kl[1] > 1e-6, (name, kl)
        assert all(k["ref_logprobs"] is not None for k in loss_kwargs(runs, name))


def _check_mu(runs: Runs) -> None:
    assert optimizer_steps(runs, "mu") == 2 * 2 and optimizer_steps(runs, "base") == 2
    assert runs["mu"].count("frozen_logprobs") == 2 and runs["base"].count("frozen_logprobs") == 0
    assert all(k["old_logprobs"] is not None for k in loss_kwargs(runs, "mu"))


def _check_dynamic(runs: Runs) -> None:
    refill = runs["refill"].metrics[0]  # one group of two had equal rewards: one refill round filled it
    assert refill["zero_variance_fraction"] == 0.5 and refill["generate_rounds"] == 2 and refill["groups_trained"] == 2
    assert [c.step for c in runs["refill"].generations()].count(1) == 2
    bound = runs["refill_bound"]  # greedy: never any signal; stops after max_refill_rounds, no step at all
    assert series(runs, "refill_bound", "groups_trained") == [0, 0]
    assert optimizer_steps(runs, "refill_bound") == 0 and moved(runs, "refill_bound") == 0.0
    assert [c.step for c in bound.generations()] == [1, 1, 2, 2]


def _check_mask(runs: Runs) -> None:
    for batch, record in zip(batches(runs, "flat_masked"), runs["flat_masked"].metrics, strict=True):
        kept = sum(len(r.token_ids) for r in batch.groups.rollouts if not r.truncated)
        assert any(r.truncated for r in batch.groups.rollouts) and record["tokens"] == kept
    plain = runs["plain"].metrics[0]  # keep: every completion token counts
    assert plain["truncation_rate"] > 0 and plain["tokens"] == plain["completion_tokens"]
    # every completion cut off: nothing to learn from, and the weights stay finite (0 tokens, not 0/0)
    assert series(runs, "mask_all", "truncation_rate") == [1.0, 1.0] and series(runs, "mask_all", "loss") == [0.0, 0.0]
    assert moved(runs, "mask_all") == 0.0


def _check_overlong_buffer(runs: Runs) -> None:
    lengths = []
    for groups in runs["penalty"].calls["groups"]:
        for rollout, score, shaped in zip(
            groups.rollouts, groups.scores, groups.rewards.flatten().tolist(), strict=True
        ):
            over = (len(rollout.token_ids) - (8 - 6)) / 6  # DAPO: fades over the last 6 of 8 tokens
            assert shaped == pytest.approx(score.reward - min(1.0, max(0.0, over)))
            lengths.append(len(rollout.token_ids))
    assert min(lengths) <= 2 < max(lengths) == 8  # both sides of the fade (buffer 32 would punish length 1 too)
    with pytest.raises(InputError, match="overlong_buffer must be > 0"):
        load_config(None, runs.overrides("penalty", **{"reward.overlong_buffer": 0}))


def _check_rft(runs: Runs) -> None:
    widest = 0
    for call in runs["rft"].calls["make_step"]:
        examples, rollouts, scores = call.made.samples
        n = len(rollouts) // len(examples)
        candidates = [
            len(
                {
                    r.text.strip()
                    for r, s in zip(rollouts[g * n : (g + 1) * n], scores[g * n : (g + 1) * n], strict=True)
                    if s.status.value == "correct" and not r.truncated
                }
            )
            for g in range(len(examples))
        ]
        kept = [r.prompt_index for r in call.made.batch.rollouts]
        assert len(kept) == sum(min(1, c) for c in candidates) and len(set(kept)) == len(kept)
        widest = max(widest, *candidates)
    assert widest >= 2, "a prompt with several candidates shows the cap"


def _check_betas(runs: Runs) -> None:
    optimizer = runs["clipped"].trainer.policy.optimizer
    assert optimizer.param_groups[0]["betas"] == (0.5, 0.9)
    for state in optimizer.state.values():  # after one step: m = (1-β1)·g, v = (1-β2)·g², so v/m² = 0.1/0.25
        m, v = state["exp_avg"].flatten(), state["exp_avg_sq"].flatten()
        real = m.abs() > 1e-15
        torch.testing.assert_close(v[real] / m[real] ** 2, torch.full_like(v[real], 0.4), rtol=1e-3, atol=0)


def _check_engine_memory(runs: Runs) -> None:
    _, on_gpu = engine_options(runs.tiny, {"rollout.gpu_memory_utilization": 0.5}, "cuda")
    _, on_cpu = engine_options(runs.tiny, {"rollout.gpu_memory_utilization": 0.5}, "cpu")
    assert on_gpu["gpu_memory_utilization"] == 0.5 and "kv_cache_gib" not in on_gpu
    assert "gpu_memory_utilization" not in on_cpu


SERVER = {"rollout.engine": "vllm-server", "rollout.url": "http://10.0.0.7:8000"}
#: a server key's bad value, refused by the config with this message
SERVER_REFUSED = {
    "rollout.transport": ("pigeon", "rollout.transport must be one of file, nccl"),
    "rollout.server_timeout": (0, "rollout.server_timeout must be > 0"),
    "rollout.server_retries": (-1, "rollout.server_retries must be >= 0"),
}


def _check_server_key(key: str, value: Any) -> Callable[[Runs], None]:
    """What a vllm-server engine is started with: the key's value as its argument, none of the in-process
    engine's sizing (the server sized itself; tests/train/test_train_vllm_server.py trains on a real one),
    and a bad value refused."""

    def check(runs: Runs) -> None:
        _, seen = engine_options(runs.tiny, {**SERVER, key: value}, "cpu", kind="vllm-server")
        assert seen[key.split(".")[1]] == value and seen["max_model_len"] is None and "kv_cache_gib" not in seen
        if key in SERVER_REFUSED:
            bad, message = SERVER_REFUSED[key]
            with pytest.raises(InputError, match=re.escape(message)):
                load_config(None, {**SERVER, key: bad})

    return check


def _check_env(runs: Runs) -> None:
    from rlvr.environments.registry import environment_from_config

    config = load_config(
        None,
        {
            "env.name": "python",
            "env.backend": "local",
            "env.max_turns": 3,
            "env.timeout": 2.5,
            "env.memory": 128,
            "env.max_output_chars": 50,
        },
    )
    env = environment_from_config(config.env)
    try:
        assert (env.name, env.backend, env.max_turns) == ("python", "local", 3)
        assert (env.timeout, env.memory, env.max_output_chars) == (2.5, 128, 50)
    finally:
        env.close()
    assert environment_from_config(load_config(None, {}).env) is None  # no env: the single-turn path


def _check_void_turns(runs: Runs) -> None:
    assert load_config(None, {"grpo.void_turns": "mask"}).grpo.void_turns == "mask"
    with pytest.raises(InputError, match=r"grpo\.void_turns"):
        load_config(None, {"grpo.void_turns": "drop"})


def _check_kv_cache(runs: Runs) -> None:
    assert engine_options(runs.tiny, {"rollout.kv_cache_gib": 1.5}, "cpu")[1]["kv_cache_gib"] == 1.5
    assert engine_options(runs.tiny, {}, "cpu")[1]["kv_cache_gib"] == 0.25  # auto: the tiny model's floor
    # sized from the prompts it will serve: the longest templated prompt + the longest generation
    from rlvr.data.templates import render_prompt
    from rlvr.models import load_tokenizer
    from rlvr.types import Example

    short, long = Example("a", "1+1?", "2"), Example("b", "What is " + "7 + " * 40 + "7?", "287")
    tokenizer = load_tokenizer(runs.tiny)
    longest = len(tokenizer(render_prompt(long, tokenizer, style="chat"), add_special_tokens=False)["input_ids"])
    seen = engine_options(runs.tiny, {"eval.max_new_tokens": 20}, "cpu", examples=[short, long])[1]
    assert seen["max_model_len"] == longest + 20 and longest > 80  # eval's 20 new tokens > rollout's 8
    assert engine_options(runs.tiny, {"rollout.max_model_len": 300}, "cpu", examples=[short])[1]["max_model_len"] == 300


def _check_tensor_parallel(runs: Runs) -> None:
    from rlvr.rollout.parallel import TensorParallelEngine

    engine, seen = engine_options(runs.tiny, {"rollout.tensor_parallel_size": 2}, "cuda")
    assert seen["tensor_parallel_size"] == 2 and isinstance(engine, TensorParallelEngine)
    with pytest.raises(InputError, match="must be >= 1 and divide the 3 ranks"):
        engine_options(runs.tiny, {"rollout.tensor_parallel_size": 2}, "cuda", world_size=3)


def _check_quantization(runs: Runs) -> None:
    assert load_config(None, {"model.quantization": "4bit", "model.lora_r": 4}).model.quantization == "4bit"
    for wrong, says in (({}, "set model.lora_r"), ({"model.quantization": "8bit"}, "must be one of none, 4bit")):
        with pytest.raises(InputError, match=says):
            load_config(None, {"model.quantization": "4bit", **wrong})


def _check_wandb(runs: Runs) -> None:
    fake = runs["wandb"].calls["wandb"][0]
    assert len(fake.inits) == 1 and fake.finished == 1
    assert [step for data, step in fake.logged if "reward_mean" in data] == [1, 2]


def _check_strategy(runs: Runs) -> None:
    run = runs["wandb"]
    assert run.saved_config()["distributed"]["strategy"] == "fsdp2" and run.trainer.sharded is False
    assert run.engine_kwargs["policy"] is run.trainer.policy.module and moved(runs, "wandb") > 0
    with pytest.raises(InputError, match=r"distributed\.strategy must be one of ddp, fsdp2"):
        load_config(None, runs.overrides("base", **{"distributed.strategy": "zero3"}))


def _check_cli_output(runs: Runs) -> None:
    run = runs["cmd_train"]
    assert run.returncode == 0, run.stdout[-2000:]
    assert f"run folder: {run.out}" in run.stdout and [r["step"] for r in run.metrics] == [1]
    assert (run.out / "config.yaml").exists() and (run.out / "final" / "model.safetensors").exists()


# ------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Row:
    key: str
    value: Any  # placeholders {tiny}, {out}, {prompts}, {samples}, {prefs} are the scenario's
    scenarios: tuple[str, ...]  # the runs that set key = value (none: no run can show it here, see `why`)
    check: Callable[[Runs], None]
    why: str = ""


def _all(*conditions: Any) -> None:
    for number, condition in enumerate(conditions):
        assert condition, f"condition {number} failed"


ROWS = [
    Row(
        "seed",
        7,
        ("order",),
        lambda r: _all(all("/7/" in i for i in ids(r, "order")), all("/0/" in i for i in ids(r, "base"))),
    ),
    Row("device", "cpu", ("base",), _check_device),
    Row(
        "model.name",
        "{tiny}",
        ("base",),
        lambda r: _all(
            r["base"].trainer.model_path == r.tiny, r["base"].trainer.policy.module.config.hidden_size == 64
        ),
    ),
    Row(
        "model.dtype",
        "bfloat16",
        ("lowprec",),
        lambda r: _all(
            r["lowprec"].trainer.policy.compute_dtype == torch.bfloat16,
            r["lowprec"].saved_config()["model"]["dtype"] == "bfloat16",
            r["base"].saved_config()["model"]["dtype"] == "float32",
        ),
    ),
    Row(
        "model.master_dtype",
        "bfloat16",
        ("lowprec",),
        lambda r: _all(
            {p.dtype for p in r["lowprec"].trainer.policy.module.parameters()} == {torch.bfloat16},
            {t.dtype for t in final_weights(r, "lowprec").values()} == {torch.bfloat16},
            {t.dtype for t in final_weights(r, "base").values()} == {torch.float32},
        ),
    ),
    Row(
        "model.lora_r",
        4,
        ("lora",),
        lambda r: _all(
            adapter_config(r, "lora")["r"] == 4,
            not (r["lora"].out / "checkpoints" / "step_000002" / "model.safetensors").exists(),
            not any("lora" in k for k in final_weights(r, "lora")),
            moved(r, "lora") > 0,
        ),
    ),
    Row(
        "model.lora_alpha",
        16,
        ("lora",),
        lambda r: _all(adapter_config(r, "lora")["lora_alpha"] == 16, adapter_config(r, "kl_lora")["lora_alpha"] == 8),
    ),
    Row("model.lora_dropout", 0.1, ("lora",), lambda r: _all(adapter_config(r, "lora")["lora_dropout"] == 0.1)),
    Row(
        "model.lora_target",
        "q_proj,v_proj",
        ("lora",),
        lambda r: _all(
            set(adapter_config(r, "lora")["target_modules"]) == {"q_proj", "v_proj"},
            {n.split(".")[-4] for n, p in r["lora"].trainer.policy.module.named_parameters() if p.requires_grad}
            == {"q_proj", "v_proj"},
        ),
    ),
    Row(
        "model.gradient_checkpointing",
        True,
        ("wandb",),
        lambda r: _all(
            r["wandb"].trainer.policy.module.is_gradient_checkpointing,
            r["wandb"].count("shared_prompt") == 0,
            r["base"].count("shared_prompt") > 0,
        ),
    ),
    Row(
        "model.lean_activations",
        False,
        ("dense",),
        lambda r: _all(
            r["dense"].trainer.policy.lean_layers == {},
            not any("forward" in vars(m) for m in r["dense"].trainer.policy.module.modules()),
            r["base"].trainer.policy.lean_layers["mlp"] == r["base"].trainer.policy.module.config.num_hidden_layers,
            r["base"].trainer.policy.module.model.layers[0].mlp.forward.__name__ == "<lambda>",
        ),
    ),
    Row(
        "model.keep_freed_memory",
        False,
        ("dense",),
        lambda r: _all(  # glibc's effect: tests/learner/test_allocator.py
            r["dense"].trainer.policy.keeps_freed_memory is False,
            r["base"].trainer.policy.keeps_freed_memory is (platform.libc_ver()[0] == "glibc"),
        ),
    ),
    Row(
        "data.dataset",
        "{prompts}",
        ("file",),
        lambda r: _all(
            all(i.startswith("prompts/") for i in ids(r, "file")), any("Add 0 and 2." in p for p in prompts(r, "file"))
        ),
    ),
    Row(
        "data.split",
        "test",
        ("order",),
        lambda r: _all(all("/test/" in i for i in ids(r, "order")), all("/train/" in i for i in ids(r, "base"))),
    ),
    Row("data.limit", 3, ("file",), lambda r: _all(len(r["file"].trainer.stream.examples) == 3)),
    Row(
        "data.prompt_field",
        "q",
        ("file",),
        lambda r: _all(
            [e.prompt for e in r["file"].trainer.stream.examples] == ["Add 0 and 2.", "Add 1 and 3.", "Add 2 and 4."]
        ),
    ),
    Row(
        "data.answer_field",
        "gold",
        ("file",),
        lambda r: _all(
            [e.answer for e in r["file"].trainer.stream.examples] == ["2", "4", "6"],
            {s["gold"] for s in r["file"].samples()} <= {"2", "4", "6"},
        ),
    ),
    Row(
        "data.difficulty",
        "hard",
        ("order",),
        lambda r: _all(
            all(i.startswith("arith/hard/") for i in ids(r, "order")),
            all(i.startswith("arith/easy/") for i in ids(r, "base")),
        ),
    ),
    Row(
        "data.size",
        12,
        ("order",),
        lambda r: _all(len(r["order"].trainer.stream.examples) == 12, len(r["base"].trainer.stream.examples) == 32),
    ),
    Row(
        "data.style",
        "plain",
        ("plain",),
        lambda r: _all(
            all("<|im_start|>" not in p and p.endswith(DEFAULT_INSTRUCTION + "\n") for p in prompts(r, "plain")),
            all("<|im_start|>user" in p for p in prompts(r, "base")),
        ),
    ),
    Row(
        "data.instruction",
        "Answer in one word.",
        ("order",),
        lambda r: _all(all("Answer in one word." in p and DEFAULT_INSTRUCTION not in p for p in prompts(r, "order"))),
    ),
    Row(
        "data.shuffle",
        False,
        ("order",),
        lambda r: _all(
            [i.rsplit("/", 1)[1] for i in ids(r, "order", 1) + ids(r, "order", 2)] == ["0", "1", "2", "3"],
            [i.rsplit("/", 1)[1] for i in ids(r, "base", 1)] != ["0", "1"],
        ),
    ),
    Row(
        "data.keep_status",
        "wrong",
        ("sft",),
        lambda r: _all([e.id for e in r["sft"].trainer.stream.examples] == ["s/1", "s/3"]),
    ),
    Row(
        "rollout.engine",
        "hf",
        ("base",),
        lambda r: _all(
            r["base"].engine_kwargs["kind"] == "hf",
            r["base"].engine_kwargs["policy"] is r["base"].trainer.policy.module,
            not r["base"].trainer.pushes_weights,
            "sync_changed" not in r["base"].metrics[0],
        ),
    ),
    Row(
        "rollout.prompts_per_step",
        3,
        ("plain",),
        lambda r: _all(
            all(len(c.prompts) == 3 for c in r["plain"].generations()), series(r, "plain", "groups_trained") == [3, 3]
        ),
    ),
    Row(
        "rollout.n",
        3,
        ("plain",),
        lambda r: _all(all(c.n == 3 for c in r["plain"].generations()), series(r, "plain", "completions") == [9, 9]),
    ),
    Row(
        "rollout.temperature",
        0.5,
        ("plain",),
        lambda r: _all(all(c.sampling.temperature == 0.5 for c in r["plain"].generations())),
    ),
    Row(
        "rollout.top_p",
        0.9,
        ("plain",),
        lambda r: _all(all(c.sampling.top_p == 0.9 for c in r["plain"].generations())),
        why="the hf engine's top-p warper is tested against transformers in test_rollout_hf.py",
    ),
    Row(
        "rollout.top_k",
        1,
        ("flat",),
        lambda r: _all(
            all(c.sampling.top_k == 1 for c in r["flat"].generations()),
            series(r, "flat", "zero_variance_fraction") == [1.0, 1.0],
            all(
                len({s["completion"] for s in r["flat"].samples() if (s["step"], s["id"]) == key}) == 1
                for key in {(s["step"], s["id"]) for s in r["flat"].samples()}
            ),
        ),
    ),
    Row(
        "rollout.max_new_tokens",
        5,
        ("plain",),
        lambda r: _all(
            series(r, "plain", "completion_len_max") == [5, 5],
            all(c.sampling.max_new_tokens == 5 for c in r["plain"].generations()),
        ),
    ),
    Row(
        "rollout.max_model_len",
        16,
        ("short_context",),
        lambda r: _all(
            r["short_context"].engine_kwargs["max_model_len"] == 16,
            refused(r, "short_context", InputError, "max_model_len is 16") is None,
        ),
    ),
    Row(
        "model.quantization",
        "4bit",
        (),
        _check_quantization,
        why="QLoRA runs in tests/learner/test_quantize.py (it learns as LoRA over the dequantized base; exit 2 "
        "where bitsandbytes cannot run)",
    ),
    Row(
        "rollout.gpu_memory_utilization",
        0.5,
        (),
        _check_engine_memory,
        why="vLLM on a GPU only: the engine's arguments",
    ),
    Row(
        "rollout.tensor_parallel_size",
        2,
        (),
        _check_tensor_parallel,
        why="several GPUs: the engine's arguments, the refusal",
    ),
    Row(
        "rollout.dtype",
        "bfloat16",
        ("dense",),
        lambda r: _all(r["dense"].engine_kwargs["dtype"] == "bfloat16", r["base"].engine_kwargs["dtype"] == "float32"),
        why="hf generates with the policy itself; only vLLM keeps its own weights in this dtype",
    ),
    Row("rollout.kv_cache_gib", 1.5, (), _check_kv_cache, why="vLLM on CPU only: the engine's arguments"),
    Row(
        "rollout.async",
        1,
        ("async_hf",),
        lambda r: refused(r, "async_hf", InputError, "rollout.async=1 needs an engine that samples from its own copy"),
        why="hf samples with the live policy: refused here; a one-step-ahead vllm run is tests/train/test_async.py's",
    ),
    *(
        Row(
            key,
            value,
            (),
            _check_server_key(key, value),
            why="a real vllm serve: tests/train/test_train_vllm_server.py",
        )
        for key, value in (
            ("rollout.url", "http://10.0.0.7:8000"),
            ("rollout.transport", "nccl"),
            ("rollout.weights_dir", "/shared/rlvr-weights"),
            ("rollout.server_timeout", 30.0),
            ("rollout.server_retries", 7),
        )
    ),
    *(
        Row(
            key, value, (), _check_env, why="a tool run is tests/train/test_env_train.py's; here the env is built alone"
        )
        for key, value in (
            ("env.name", "python"),
            ("env.backend", "local"),
            ("env.max_turns", 3),
            ("env.timeout", 2.5),
            ("env.memory", 128),
            ("env.max_output_chars", 50),
        )
    ),
    Row(
        "grpo.void_turns",
        "mask",
        (),
        _check_void_turns,
        why="void turns need a tool run: tests/algorithms/test_tool_masks.py masks them in a real step",
    ),
    Row(
        "reward.verifier",
        VARIED,
        ("base",),
        lambda r: _all(
            *(
                m["reward_mean"] == pytest.approx(m["reward_math_mean"] + m["reward_overlong_mean"])
                for m in r["base"].metrics
            )
        ),
    ),
    Row(
        "reward.timeout",
        2.5,
        ("workers",),
        lambda r: _all(r["workers"].trainer.runner.timeout == 2.5),
        why="the deadline itself (a slow verdict killed) is tested in test_runner.py",
    ),
    Row(
        "reward.workers",
        1,
        ("workers",),
        lambda r: _all(
            all(len(c) == 1 for c in r["workers"].calls["worker_pids"]),
            all(c == [] for c in r["base"].calls["worker_pids"]),
        ),
    ),
    Row(
        "reward.max_failure_rate",
        1.0,
        ("failures",),
        lambda r: _all(
            r["failures"].error is None,
            r["failures"].metrics[0]["verifier_failure_rate"] > 0.2,
            type(r["failures_stop"].error).__name__ == "VerifierFailureRate",
        ),
    ),
    Row("reward.cross_check", "-1*" + VARIED.split("+")[1], ("flat",), _check_cross_check),
    Row(
        "reward.cross_check_samples",
        3,
        ("plain",),
        lambda r: _all(
            all(m["cross_checked"] == 3 and m["verifier_disagreement_rate"] == 0.0 for m in r["plain"].metrics),
            len(r["plain"].samples()) > 3 * len(r["plain"].metrics),  # a sample, not every completion
        ),
    ),
    Row("reward.truncated", "mask", ("flat_masked", "mask_all"), _check_mask),
    Row("reward.overlong_buffer", 6, ("penalty",), _check_overlong_buffer),
    Row(
        "reward.audit",
        True,
        ("order",),
        lambda r: _all(
            summary(r, "order")["audit"]["total"] > 0,
            summary(r, "order")["audit"]["rewarded"] == 0,
            "audit" not in summary(r, "base"),
        ),
    ),
    Row(
        "reward.strict_audit",
        True,
        ("cmd_strict",),
        lambda r: _all(
            r["cmd_strict"].returncode == 2,
            "--strict-audit" in r["cmd_strict"].stdout,
            not (r["cmd_strict"].out / "metrics.jsonl").exists(),
        ),
    ),
    Row(
        "algorithm",
        "sft",
        ("sft",),
        lambda r: _all(
            r["sft"].count("generate") == 0,
            all(m["nll"] > 0 for m in r["sft"].metrics),
            "clip_fraction" in r["base"].metrics[0],
        ),
    ),
    Row(
        "grpo.advantage",
        "rloo",
        ("tis",),
        lambda r: _all(
            *(
                torch.allclose(
                    b.advantages.reshape(b.groups.rewards.shape),
                    b.groups.rewards - (b.groups.rewards.sum(1, keepdim=True) - b.groups.rewards) / 2,
                )
                for b in batches(r, "tis")
            )
        ),
    ),
    Row(
        "grpo.loss",
        "dr_grpo",
        ("tis",),
        lambda r: _all(
            *(k["loss_type"] == "dr_grpo" and float(k["normalizer"]) == 2 * 3 * 8 for k in loss_kwargs(r, "tis"))
        ),
    ),
    Row(
        "rm.center_rewards_coefficient",
        0.25,
        ("rm_file",),
        lambda r: _all(
            [c.kwargs["center_rewards_coefficient"] for c in r["rm_file"].calls["reward_loss"]] == [0.25],
        ),
        why="the centering term's formula is tested in tests/objectives/test_objectives_reward.py",
    ),
    Row(
        "rm.max_length",
        12,
        ("rm_file",),
        lambda r: _all(
            {c.args[2] for c in r["rm_file"].calls["reward_inputs"]} == {12},
            all(c.result["input_ids"].shape[1] <= 12 for c in r["rm_file"].calls["reward_inputs"]),
        ),
    ),
    Row(
        "rm.pairs",
        "one",
        ("rm_one",),
        lambda r: _all(0 < len(batches(r, "rm_one")[0].texts) // 2 <= 2),  # at most one pair for each of 2 prompts
        why="`all` is the default every other rm run uses; both pairings: tests/algorithms/test_rm.py",
    ),
    Row(
        "rm.held_out",
        0.5,
        ("rm_file",),
        lambda r: _all(
            len(r["rm_file"].trainer.algorithm._held_out_rows) == 2,  # every 2nd of the 4 pairs
            summary(r, "rm_file")["before"]["n"] == 2,
        ),
    ),
    Row(
        "grpo.sapo_tau_pos",
        0.5,
        ("sapo",),
        lambda r: _all(*(k["loss_type"] == "sapo" and k["sapo_tau_pos"] == 0.5 for k in loss_kwargs(r, "sapo"))),
        why="the gate's formula itself is tested in test_objectives_grpo_family.py",
    ),
    Row(
        "grpo.sapo_tau_neg",
        2.0,
        ("sapo",),
        lambda r: _all(*(k["sapo_tau_neg"] == 2.0 for k in loss_kwargs(r, "sapo")), len(loss_kwargs(r, "sapo")) > 0),
    ),
    Row(
        "distill.teacher",
        "{tiny}",
        ("distill",),
        lambda r: _all(
            r["distill"].trainer.policy.reference is not None,
            r["base"].trainer.policy.reference is None,
            abs(series(r, "distill", "teacher_kl")[0]) < 1e-5,  # the teacher is the student: no divergence
        ),
        why="a teacher that differs from the student: tests/algorithms/test_distill.py",
    ),
    Row(
        "grpo.ratio_level",
        "sequence",
        ("tis",),
        lambda r: _all({k["ratio_level"] for k in loss_kwargs(r, "tis")} == {"sequence"}),
        why="GSPO's ratio itself is tested in test_objectives_grpo.py",
    ),
    Row(
        "grpo.clip_eps_low",
        0.0,
        ("mu",),
        lambda r: _all(
            {k["clip_eps_low"] for k in loss_kwargs(r, "mu")} == {0.0}, series(r, "mu", "clip_low_fraction")[0] > 0
        ),
    ),
    Row(
        "grpo.clip_eps_high",
        0.0,
        ("mu",),
        lambda r: _all(
            {k["clip_eps_high"] for k in loss_kwargs(r, "mu")} == {0.0}, series(r, "mu", "clip_high_fraction")[0] > 0
        ),
    ),
    Row("grpo.mu", 2, ("mu",), _check_mu),
    Row("grpo.beta", 0.1, ("kl_full", "kl_lora"), _check_beta),
    Row(
        "grpo.kl_estimator",
        "k2",
        ("kl_full",),
        lambda r: _all(
            {k["kl_estimator"] for k in loss_kwargs(r, "kl_full")} == {"k2"}, min(series(r, "kl_full", "kl")) >= 0
        ),
    ),
    Row(
        "grpo.tis",
        "on",
        ("tis",),
        lambda r: _all(
            all(k["behavior_logprobs"] is not None for k in loss_kwargs(r, "tis")),
            "tis_weight_mean" in r["tis"].metrics[0],
            "tis_weight_mean" not in r["base"].metrics[0],
        ),
    ),
    Row(
        "grpo.tis_cap",
        1.5,
        ("tis",),
        lambda r: _all(
            {k["tis_cap"] for k in loss_kwargs(r, "tis")} == {1.5}, max(series(r, "tis", "tis_weight_mean")) <= 1.5
        ),
    ),
    Row("grpo.dynamic_sampling", True, ("refill", "refill_bound"), _check_dynamic),
    Row(
        "grpo.max_refill_rounds",
        1,
        ("refill_bound",),
        lambda r: _all(series(r, "refill_bound", "generate_rounds") == [2, 2]),
    ),
    Row(
        "sft.reduction",
        "sequence",
        ("sft",),
        lambda r: _all(
            [float(c.result) for c in r["sft"].calls["sft_normalizer"]] == [2.0, 2.0],
            series(r, "sft", "tokens") != [2.0, 2.0],
        ),
    ),
    Row("rft.max_per_prompt", 1, ("rft",), _check_rft),
    Row(
        "dpo.beta",
        0.25,
        ("dpo_ipo",),
        lambda r: _all(  # IPO at π = π_ref: (0 - 1/(2β))² = 4
            r["dpo_ipo"].calls["dpo_loss"][0].kwargs["beta"] == 0.25,
            series(r, "dpo_ipo", "loss")[0] == pytest.approx(4.0),
        ),
    ),
    Row(
        "dpo.loss",
        "ipo",
        ("dpo_ipo",),
        lambda r: _all(
            series(r, "dpo_ipo", "loss")[0] == pytest.approx(4.0),
            series(r, "dpo_smooth", "loss")[0] == pytest.approx(math.log(2)),
        ),
    ),
    Row(
        "dpo.label_smoothing",
        0.5,
        ("dpo_smooth",),
        lambda r: _all(  # ε = ½ at Δ = 0: the two terms' gradients cancel
            series(r, "dpo_smooth", "grad_norm") == [0.0],
            moved(r, "dpo_smooth") == 0.0,
            series(r, "dpo_ipo", "grad_norm")[0] > 0,
        ),
    ),
    Row(
        "dpo.reference_free",
        True,
        ("dpo_free",),
        lambda r: _all(
            r["dpo_free"].trainer.policy.reference is None,
            r["dpo_free"].calls["dpo_loss"][0].args[2] is None,
            r["dpo_ipo"].trainer.policy.reference is not None,
        ),
    ),
    Row(
        "dpo.gamma",
        0.5,
        ("dpo_margin",),
        lambda r: _all(  # SimPO's margin at π = π_ref (Δ' = 0): -log σ(-gamma) = softplus(0.5)
            loss_kwargs(r, "dpo_margin", "dpo_loss")[0]["gamma"] == 0.5,
            series(r, "dpo_margin", "loss")[0] == pytest.approx(math.log1p(math.exp(0.5))),
        ),
    ),
    *[
        Row(
            f"{section}.{key}",
            value,
            (scenario,),
            lambda r, scenario=scenario, objective=objective, argument=argument, value=value: _all(
                {k[argument] for k in loss_kwargs(r, scenario, objective)} == {value}
            ),
        )
        for section, scenario, objective, settings in (
            ("simpo", "simpo_file", "cpo_loss", {"beta": 1.5, "gamma": 0.3, "label_smoothing": 0.1, "nll_weight": 0.5}),
            ("cpo", "cpo_file", "cpo_loss", {"beta": 0.2, "gamma": 0.4, "label_smoothing": 0.1, "nll_weight": 0.0}),
            ("orpo", "orpo_file", "orpo_loss", {"beta": 0.5}),
            ("kto", "kto_file", "kto_loss", {"beta": 0.25}),
        )
        for key, value in settings.items()
        for argument in [key]
    ],
    Row(
        "cpo.loss",
        "simpo",
        ("cpo_file",),
        lambda r: _all(
            {k["loss_type"] for k in loss_kwargs(r, "cpo_file", "cpo_loss")} == {"simpo"},
            {k["loss_type"] for k in loss_kwargs(r, "simpo_file", "cpo_loss")} == {"simpo"},
        ),
    ),
    Row(
        "kto.loss",
        "apo_zero_unpaired",
        ("kto_online",),
        lambda r: _all(
            loss_kwargs(r, "kto_online", "kto_loss")[0]["loss_type"] == "apo_zero_unpaired",
            series(r, "kto_online", "kto_kl") == [0.0],
        ),
    ),
    Row(
        "kto.threshold",
        -100.0,
        ("kto_online",),
        lambda r: _all(  # every completion's reward reaches -100: all desirable, none undesirable
            series(r, "kto_online", "desirable") == series(r, "kto_online", "rows") == [4.0],
            series(r, "kto_online", "kto_undesirable") == [0.0],
        ),
    ),
    *[
        Row(
            f"kto.{key}",
            value,
            ("kto_file",),
            lambda r, key=key, value=value: _all(  # at π = π_ref (z0 = 0) each row's loss is λ · ½:
                loss_kwargs(r, "kto_file", "kto_loss")[0][key] == value,  # (2·½·2 + 0.5·½·2) / 4 rows
                series(r, "kto_file", "loss")[0] == pytest.approx(0.625),
            ),
        )
        for key, value in (("desirable_weight", 2.0), ("undesirable_weight", 0.5))
    ],
    Row(
        "optimizer.lr",
        2e-3,
        ("cosine",),
        lambda r: _all(  # Adam's first steps move each weight by about lr
            max(series(r, "cosine", "lr")) == pytest.approx(2e-3),
            series(r, "cosine", "param_delta")[1] == pytest.approx(2e-3, rel=0.05),
        ),
    ),
    Row(
        "optimizer.weight_decay",
        0.1,
        ("flat_masked",),
        lambda r: _all(  # no gradient at all, yet the weights decay
            series(r, "flat_masked", "grad_norm") == [0.0, 0.0],
            min(series(r, "flat_masked", "param_delta")) > 0,
            series(r, "flat", "param_delta") == [0.0, 0.0],
        ),
    ),
    Row("optimizer.beta1", 0.5, ("clipped",), _check_betas),
    Row("optimizer.beta2", 0.9, ("clipped",), _check_betas),
    Row(
        "optimizer.max_grad_norm",
        1e-9,
        ("clipped",),
        lambda r: _all(  # |g| far under Adam's eps: a tiny step
            series(r, "clipped", "grad_norm")[0] > 1e-3,
            series(r, "clipped", "param_delta")[0] < 0.1 * 1e-3,
            series(r, "base", "param_delta")[0] == pytest.approx(1e-3, rel=0.05),
        ),
    ),
    Row(
        "optimizer.warmup_steps",
        1,
        ("cosine",),
        lambda r: _all(series(r, "cosine", "lr")[0] == pytest.approx(2e-3 / 2)),
    ),
    Row(
        "optimizer.schedule",
        "constant",
        ("checkpoints",),
        lambda r: _all(
            series(r, "checkpoints", "lr") == pytest.approx([1e-3] * 3),
            series(r, "base", "lr") == pytest.approx([1e-3, 0.55e-3]),
        ),
    ),
    Row(
        "optimizer.min_lr_ratio",
        0.5,
        ("cosine",),
        lambda r: _all(  # 0.5 + 0.5 · ½(1 + cos(π/2)) of 2e-3
            series(r, "cosine", "lr")[2] == pytest.approx(1.5e-3)
        ),
    ),
    Row(
        "optimizer.max_steps",
        2,
        ("base",),
        lambda r: _all(
            series(r, "base", "step") == [1, 2],
            optimizer_steps(r, "base") == 2,
            summary(r, "base")["steps"] == 2,
            (r["base"].out / "final" / "model.safetensors").exists(),
        ),
    ),
    Row(
        "optimizer.micro_batch_size",
        3,
        ("plain",),
        lambda r: _all([c.args[0].shape[0] for c in r["plain"].calls["policy_loss"]] == [3] * 6),
    ),  # 9 rows: 3 passes a step
    Row(
        "optimizer.micro_batch_tokens",
        1,
        ("tis",),
        lambda r: _all(
            {c.args[0].shape[0] for c in r["tis"].calls["policy_loss"]} == {3},  # one group of 3, not 8 rows
            len(r["tis"].calls["policy_loss"]) == sum(series(r, "tis", "groups_trained")) > 2,
        ),
    ),
    Row(
        "optimizer.share_prompt",
        False,
        ("dense",),
        lambda r: _all(
            not r["dense"].trainer.policy.share_prompt,
            r["dense"].count("shared_prompt") == 0,
            r["base"].count("shared_prompt") > 0,
        ),
    ),
    Row(
        "optimizer.packing",
        True,
        ("plain",),
        lambda r: _all(
            r["plain"].trainer.policy.packing,
            not r["base"].trainer.policy.packing,
            r["plain"].count("packed") > 0,
            r["base"].count("packed") == 0,
            series(r, "plain", "padding_fraction") == [0.0, 0.0],
            max(series(r, "base", "padding_fraction")) > 0,
        ),
    ),
    Row(
        "optimizer.skip_zero_advantage",
        False,
        ("flat_masked",),
        lambda r: _all(
            series(r, "flat_masked", "groups_skipped") == [0, 0],
            len(loss_kwargs(r, "flat_masked")) == 2,
            series(r, "flat", "groups_skipped") == [2, 2],
            loss_kwargs(r, "flat") == [],
        ),
    ),
    Row("logging.output", "{out}", ("cmd_train",), _check_cli_output),
    Row("logging.wandb", True, ("wandb",), _check_wandb, why="no network: a stand-in wandb module records the calls"),
    Row(
        "logging.wandb_project",
        "rlvr-options",
        ("wandb",),
        lambda r: _all(r["wandb"].calls["wandb"][0].inits[0]["project"] == "rlvr-options"),
    ),
    Row(
        "logging.progress",
        True,
        ("order",),
        lambda r: _all(
            "step 1/2" in r["order"].stdout and "step 2/2" in r["order"].stdout, "step 1/2" not in r["base"].stdout
        ),
    ),
    Row(
        "logging.tensorboard",
        False,
        ("plain",),
        lambda r: _all(
            not (r["plain"].out / "tensorboard").exists(),
            (r["plain"].out / "metrics.jsonl").is_file(),
            (r["base"].out / "tensorboard").is_dir(),
        ),
    ),
    Row(
        "logging.samples_every",
        2,
        ("checkpoints",),
        lambda r: _all(
            sorted({s["step"] for s in r["checkpoints"].samples()}) == [1, 2], len(r["checkpoints"].samples()) == 2 * 4
        ),
    ),
    Row(
        "checkpoint.every",
        1,
        ("checkpoints",),
        lambda r: _all(r["checkpoints"].calls["save"] == [1, 2, 3], r["base"].calls["save"] == [2]),
    ),
    Row(
        "checkpoint.keep_last",
        1,
        ("checkpoints",),
        lambda r: _all(
            sorted(p.name for p in (r["checkpoints"].out / "checkpoints").glob("step_*")) == ["step_000003"]
        ),
    ),
    Row(
        "eval.before_after",
        True,
        ("eval_gsm8k",),
        lambda r: _all(
            [e["step"] for e in r["eval_gsm8k"].evals()] == [0, 2],
            summary(r, "eval_gsm8k")["after"]["n"] == 2,
            r["base"].count("evaluate") == 0,
        ),
    ),
    Row(
        "eval.every",
        1,
        ("eval_every",),
        lambda r: _all(
            [e["step"] for e in r["eval_every"].evals()] == [0, 1, 2],
            r["eval_every"].calls["evaluate"] == [0, 1, 2],
            (r["eval_every"].out / "eval" / "step_000001").is_dir(),
        ),
    ),
    Row(
        "eval.dataset",
        "gsm8k",
        ("eval_gsm8k",),
        lambda r: _all(
            all(e.id.startswith("gsm8k/test/") for e in r["eval_gsm8k"].trainer.eval_examples),
            all(i.startswith("arith/") for i in ids(r, "eval_gsm8k")),
        ),
    ),
    Row(
        "eval.split",
        "train",
        ("eval_every",),
        lambda r: _all(all("/train/" in e.id for e in r["eval_every"].trainer.eval_examples)),
    ),
    Row(
        "eval.limit",
        3,
        ("eval_every",),
        lambda r: _all(
            [e["eval_n"] for e in r["eval_every"].evals()] == [3, 3, 3], len(r["eval_every"].trainer.eval_examples) == 3
        ),
    ),
    Row(
        "eval.temperature",
        0.5,
        ("eval_every",),
        lambda r: _all(
            {c.sampling.temperature for c in r["eval_every"].generations(training=False)} == {0.5},
            {c.sampling.temperature for c in r["eval_every"].generations()} == {1.0},
        ),
    ),
    Row(
        "eval.max_new_tokens",
        4,
        ("eval_every",),
        lambda r: _all(
            {c.sampling.max_new_tokens for c in r["eval_every"].generations(training=False)} == {4},
            max(len(x.token_ids) for c in r["eval_every"].generations(training=False) for x in c.rollouts) <= 4,
        ),
    ),
    Row(
        "distributed.strategy",
        "fsdp2",
        ("wandb",),
        _check_strategy,
        why="sharding needs torchrun (tests/train/test_distributed.py); in one process it is accepted and inert",
    ),
]


def test_every_config_key_has_exactly_one_row():
    keys, rows = config_keys(TrainConfig()), [row.key for row in ROWS]
    assert len(keys) > 80 and len(rows) == len(set(rows)), "one row per key"
    assert not set(keys) - set(rows), (
        f"config keys without a row in tests/train/test_options.py: {sorted(set(keys) - set(rows))}"
    )
    assert not set(rows) - set(keys), f"rows for keys that are not config keys: {sorted(set(rows) - set(keys))}"


@pytest.mark.slow
@pytest.mark.parametrize("row", ROWS, ids=[row.key for row in ROWS])
def test_option_has_its_effect(row: Row, runs: Runs):
    for name in row.scenarios:  # the run that shows the effect really sets the option
        assert value_at(runs.config(name), row.key) == runs.place(row.value, name), (name, row.key)
    assert row.scenarios or row.why, f"{row.key}: a row that runs nothing must say why"
    row.check(runs)


# ------------------------------------------------------------------------------ paths the table names only in part


def test_truncated_penalty_shapes_the_rewards_the_trainer_learns_from(runs: Runs):
    for groups in runs["penalty"].calls["groups"]:  # math scores the tiny model 0: the rewards are the penalty
        for rollout, shaped in zip(groups.rollouts, groups.rewards.flatten().tolist(), strict=True):
            assert shaped == (-1.0 if rollout.truncated else 0.0) or 2 < len(rollout.token_ids) < 8
    assert value_at(runs.config("penalty"), "reward.truncated") == "penalty"


@pytest.mark.slow
def test_a_resumed_lora_run_ends_with_the_uninterrupted_weights(runs: Runs):
    cut = runs["lora_cut"]
    assert (cut.out / "checkpoints" / "step_000001" / "adapter_config.json").exists()
    resumed = runs.run("lora", resume=cut.out, **{"logging.output": str(cut.out)})
    assert resumed.error is None and [r["step"] for r in resumed.metrics] == [1, 2]
    whole, again = final_weights(runs, "lora"), load_file(cut.out / "final" / "model.safetensors")
    for name, tensor in whole.items():
        torch.testing.assert_close(again[name], tensor, rtol=0, atol=1e-6, msg=name)
    assert moved(runs, "lora") > 1e-4
