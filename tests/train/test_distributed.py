"""Data parallelism: a 2-rank gloo step (DDP and FSDP2) equals a 1-process step on the same global batch."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from rlvr.distributed import (
    DistContext,
    full_state_dict,
    init_distributed,
    reduce_metrics,
    shard_groups,
    wrap_model,
)
from rlvr.errors import InputError
from rlvr.objectives.grpo import LOSSES, group_advantages, loss_normalizer, policy_loss
from rlvr.objectives.logprobs import token_logprobs
from rlvr.rollout.parallel import TensorParallelEngine, vllm_parallel_options

PROMPTS, PER_PROMPT, PROMPT_LEN, COMPLETION_LEN, VOCAB = 4, 2, 3, 5, 64
LR = 0.5  # plain SGD: unlike Adam's first step, its update scales with the gradient, so a missing
#           world_size factor or a wrong normalizer cannot hide


# ---------------------------------------------------------------- single-process behaviour


def _ctx(rank: int, world_size: int) -> DistContext:
    return DistContext(rank, world_size, rank, torch.device("cpu"), rank == 0)


@pytest.mark.parametrize(
    "world_size, rank, expected",
    [
        (1, 0, [0, 1, 2, 3, 4, 5, 6, 7]),
        (2, 0, [0, 1, 2, 3]),
        (2, 1, [4, 5, 6, 7]),
        (4, 3, [6, 7]),
    ],
)
def test_shard_groups_gives_contiguous_equal_shares(world_size, rank, expected):
    assert shard_groups(list(range(8)), _ctx(rank, world_size)) == expected


def test_shard_groups_refuses_uneven_batches():
    with pytest.raises(InputError, match=r"6 prompts .* 4 ranks"):
        shard_groups(list(range(6)), _ctx(0, 4))


def test_single_process_context_outside_torchrun(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = init_distributed()
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    model = torch.nn.Linear(2, 2)
    assert wrap_model(model, ctx, "ddp") is model  # nothing to wrap in a world of one
    assert reduce_metrics({"loss": 1.5, "len_max": 3}, ctx) == {"len_max": 3.0, "loss": 1.5}
    assert full_state_dict(model, ctx)["weight"].data_ptr() == model.weight.data_ptr()  # no copy


@pytest.mark.parametrize(
    "world_size, tp, expected",
    [
        (1, 1, {}),
        (1, 4, {"tensor_parallel_size": 4}),
        (8, 1, {"distributed_executor_backend": "external_launcher"}),
        (8, 2, {"tensor_parallel_size": 2, "distributed_executor_backend": "external_launcher"}),
        (8, 3, InputError),
        (2, 0, InputError),
    ],
)
def test_vllm_parallel_options(world_size, tp, expected):
    if expected is InputError:
        with pytest.raises(InputError, match="tensor_parallel_size"):
            vllm_parallel_options(_ctx(0, world_size), tp)
    else:
        assert vllm_parallel_options(_ctx(0, world_size), tp) == expected


def test_config_strategies_exist():
    from rlvr.config import CHOICES
    from rlvr.distributed import STRATEGIES

    assert set(CHOICES["distributed.strategy"]) <= set(STRATEGIES)


def test_unknown_strategy_is_an_input_error():
    with pytest.raises(InputError, match="fsdp2"):
        wrap_model(torch.nn.Linear(2, 2), _ctx(0, 1), "zero3")


# ---------------------------------------------------------------- one GRPO step, 1 process vs 2 ranks


def _tiny_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlvr.testing import TINY_CONFIG

    torch.manual_seed(0)
    config = LlamaConfig(**{**TINY_CONFIG, "max_position_embeddings": 64}, vocab_size=VOCAB)
    config._attn_implementation = "eager"
    return LlamaForCausalLM(config)


def _global_batch() -> dict[str, torch.Tensor]:
    """Fixed rollouts for PROMPTS × PER_PROMPT sequences (prompt-major), as if sampled: token ids,
    completion masks of different lengths, rewards, and logprob offsets for the old policy and the
    sampler so that ratios and importance weights are not all 1."""
    gen = torch.Generator().manual_seed(123)
    batch = PROMPTS * PER_PROMPT
    lengths = torch.tensor([5, 3, 4, 1, 5, 2, 4, 5])
    return dict(
        input_ids=torch.randint(0, VOCAB, (batch, PROMPT_LEN + COMPLETION_LEN), generator=gen),
        mask=(torch.arange(COMPLETION_LEN) < lengths.unsqueeze(1)).float(),
        rewards=torch.tensor([[1.0, 0.0], [0.0, 0.5], [1.0, 1.0], [0.2, 0.9]]),
        old_offset=0.3 * torch.randn(batch, COMPLETION_LEN, generator=gen),
        behavior_offset=0.3 * torch.randn(batch, COMPLETION_LEN, generator=gen),
    )


def _rows(batch: dict, prompts: list[int]) -> dict:
    rows = torch.tensor([p * PER_PROMPT + j for p in prompts for j in range(PER_PROMPT)])
    return {k: (v[torch.tensor(prompts)] if k == "rewards" else v[rows]) for k, v in batch.items()}


def _grpo_step(model, optimizer, batch: dict, loss_type: str, ctx: DistContext, normalizer=None):
    """The learner's part of a trainer step, as the trainer does it on each rank."""
    from rlvr.distributed import all_reduce_sum

    logits = model(input_ids=batch["input_ids"]).logits[:, PROMPT_LEN - 1 : -1]
    logprobs = token_logprobs(logits, batch["input_ids"][:, PROMPT_LEN:], temperature=0.8)
    advantages = group_advantages(batch["rewards"], "grpo").reshape(-1)
    local = loss_normalizer(loss_type, batch["mask"], COMPLETION_LEN)
    loss, metrics = policy_loss(
        logprobs,
        advantages,
        batch["mask"],
        old_logprobs=logprobs.detach() + batch["old_offset"],
        behavior_logprobs=logprobs.detach() + batch["behavior_offset"],
        loss_type=loss_type,
        clip_eps_low=0.2,
        clip_eps_high=0.28,
        max_completion_length=COMPLETION_LEN,
        normalizer=all_reduce_sum(local, ctx),
        loss_scale=ctx.world_size,
    )
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return metrics


def _reference_params(loss_type: str) -> tuple[dict, dict]:
    model = _tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    metrics = _grpo_step(model, optimizer, _global_batch(), loss_type, _ctx(0, 1))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, metrics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world_size: int, port: int, strategy: str, out: str) -> None:
    """One rank of the gloo world: the step for every loss aggregation, full weights saved."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    ctx = init_distributed("gloo")
    try:
        results = {}
        for loss_type in sorted(LOSSES):
            model = wrap_model(_tiny_model(), ctx, strategy)
            optimizer = torch.optim.SGD(model.parameters(), lr=LR)
            local = _rows(_global_batch(), shard_groups(list(range(PROMPTS)), ctx))
            metrics = _grpo_step(model, optimizer, local, loss_type, ctx)
            reduced = reduce_metrics(metrics, ctx)
            state = full_state_dict(model, ctx, to_cpu=True)
            torch.save(state, Path(out) / f"{strategy}-{loss_type}-rank{rank}.pt")
            results[loss_type] = reduced
        if ctx.is_main:
            (Path(out) / f"{strategy}-metrics.json").write_text(json.dumps(results))
    finally:
        from rlvr.distributed import shutdown_distributed

        shutdown_distributed(ctx)


def _spawn(fn, *args) -> None:
    torch.set_num_threads(1)
    mp.start_processes(fn, args=(2, _free_port(), *args), nprocs=2, start_method="spawn", join=True)


class EchoEngine:
    """Records what it was asked; completion j of prompt p is "p#j"."""

    kind = "hf"
    tokenizer = None

    def __init__(self):
        self.calls = []

    def generate(self, prompts, n=1, sampling=None):
        from rlvr.types import Rollout

        self.calls.append([list(prompts), sampling])
        return [Rollout(i, f"{p}#{j}", (j,), (0.0,), "stop", ()) for i, p in enumerate(prompts) for j in range(n)]


def _collectives_main(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank)
    )
    from rlvr.distributed import (
        agree,
        all_reduce_sum,
        barrier,
        broadcast_object,
        gather_cat,
        gather_object,
        scatter_object,
        shutdown_distributed,
    )

    ctx = init_distributed()  # no backend given: gloo on a CPU machine
    echo = EchoEngine()
    tp_engine = TensorParallelEngine(echo, ctx, 2)  # both ranks form one tensor-parallel group
    mine = tp_engine.generate([["a", "b"], ["c"]][rank], 2, {"seed": 10 + rank})
    result = {
        "ctx": [ctx.rank, ctx.world_size, ctx.is_main, str(ctx.device)],
        "shard": shard_groups(["p0", "p1", "p2", "p3"], ctx),
        "metrics": reduce_metrics(
            {
                "reward_mean": [0.2, 0.6][rank],
                "length_max": [7, 3][rank],
                "tokens": [10, 20][rank],
                "loss": [1.0, 2.0][rank],
            },
            ctx,
            how={"loss": "sum"},
        ),
        "sum": all_reduce_sum(torch.tensor(rank + 1.0), ctx).item(),
        "gathered": gather_cat(torch.tensor([[rank, rank]]), ctx).tolist(),
        "broadcast": broadcast_object({"from": rank}, ctx),
        "gather_object": gather_object(f"rng-{rank}", ctx),
        "scatter_object": scatter_object([f"for-{r}" for r in range(world_size)] if ctx.is_main else None, ctx),
        "agree": [agree([3, 5][rank], ctx, op) for op in ("min", "max", "sum")],
        "tp_engine_saw": echo.calls,
        "tp_rollouts": [[r.prompt_index, r.text] for r in mine],
    }
    barrier(ctx)
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(result))
    shutdown_distributed(ctx)


def test_collectives_on_two_gloo_ranks(tmp_path):
    _spawn(_collectives_main, str(tmp_path))
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["ctx"] == [0, 2, True, "cpu"] and r1["ctx"] == [1, 2, False, "cpu"]
    assert (r0["shard"], r1["shard"]) == (["p0", "p1"], ["p2", "p3"])
    expected = {"length_max": 7.0, "loss": 3.0, "reward_mean": pytest.approx(0.4), "tokens": 30.0}
    assert r0["metrics"] == expected and r1["metrics"] == expected
    assert r0["sum"] == r1["sum"] == 3.0
    assert r0["gathered"] == r1["gathered"] == [[0, 0], [1, 1]]
    assert r0["broadcast"] == r1["broadcast"] == {"from": 0}
    assert (r0["gather_object"], r1["gather_object"]) == (["rng-0", "rng-1"], None)
    assert (r0["scatter_object"], r1["scatter_object"]) == ("for-0", "for-1")
    assert r0["agree"] == r1["agree"] == [3.0, 5.0, 8.0]
    # a tensor-parallel group: both engines get all the group's prompts and the leader's sampling,
    # and each rank gets back the rollouts of its own prompts, indexed from 0
    assert r0["tp_engine_saw"] == r1["tp_engine_saw"] == [[["a", "b", "c"], {"seed": 10}]]
    assert r0["tp_rollouts"] == [[0, "a#0"], [0, "a#1"], [1, "b#0"], [1, "b#1"]]
    assert r1["tp_rollouts"] == [[0, "c#0"], [0, "c#1"]]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_rank_step_equals_one_process_step(strategy, tmp_path):
    _spawn(_rank_main, strategy, str(tmp_path))
    reduced = json.loads((tmp_path / f"{strategy}-metrics.json").read_text())
    for loss_type in sorted(LOSSES):
        expected, metrics = _reference_params(loss_type)
        initial = _tiny_model().state_dict()
        moved = max((expected[k] - initial[k]).abs().max().item() for k in expected)
        assert moved > 1e-3, "the step must change the weights for the comparison to mean anything"
        for rank in (0, 1):
            got = torch.load(tmp_path / f"{strategy}-{loss_type}-rank{rank}.pt")
            assert got.keys() == expected.keys()
            for name in expected:
                torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-5, msg=f"{loss_type} {name}")
        # the mean of the ranks' (world_size-scaled) losses is the full-batch loss
        assert reduced[loss_type]["loss"] == pytest.approx(metrics["loss"], abs=1e-6)
        assert reduced[loss_type]["tokens"] == metrics["tokens"]  # summed by its suffix rule


# ---------------------------------------------------------------- the trainer under torchrun


DRIVER = Path(__file__).resolve().parents[1] / "_dist_driver.py"
TRAIN_ARGS = [
    "--engine",
    "hf",
    "--dataset",
    "arith",
    "--verifier",
    "think_format",
    "--group-size",
    "2",
    "--prompts-per-step",
    "4",
    "--max-new-tokens",
    "16",
    "--lr",
    "1e-4",
    "--seed",
    "0",
    "--set",
    "reward.workers=1",
    "--set",
    "logging.progress=false",
    "--set",
    "optimizer.warmup_steps=0",
    "--set",
    "checkpoint.every=1",
    "--set",
    "logging.samples_every=0",
    "--set",
    "model.dtype=float32",
    "--set",
    "eval.before_after=false",
]


def _run_driver(tmp: Path, ranks: int, args: list[str], name: str) -> list:
    """`rlvr train ARGS` on `ranks` processes (torchrun for 2) with fixed rollouts; returns what
    ranks other than 0 wrote under the output folder."""
    import subprocess
    import sys

    audit = tmp / f"{name}-audit.json"
    launcher = (
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(ranks),
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(_free_port()),
        ]
        if ranks > 1
        else [sys.executable]
    )
    root = str(DRIVER.parent.parent)  # the checkout, importable even where rlvr is not installed
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [*launcher, str(DRIVER), str(audit), "--", *args],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return json.loads(audit.read_text()) if ranks > 1 else []


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run / "final" / "model.safetensors")


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_write_audit_sees_writes(tmp_path):
    """The audit the trainer test relies on does record writes (it runs in a child: hooks are forever)."""
    import subprocess
    import sys

    code = (
        "import json, os, sys; sys.path.insert(0, sys.argv[1]); import _dist_driver as d; rec = []; "
        "d._watch_writes(sys.argv[2], rec); os.mkdir(sys.argv[2] + '/sub'); open(sys.argv[2] + '/sub/x', 'w').close(); "
        "open(sys.argv[2] + '/sub/x').read(); open(sys.argv[3], 'w').close(); print(json.dumps(rec))"
    )
    (tmp_path / "run").mkdir()
    out = subprocess.run(
        [sys.executable, "-c", code, str(DRIVER.parent), str(tmp_path / "run"), str(tmp_path / "run-log")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert [event for event, _ in json.loads(out)] == ["os.mkdir", "open"]  # reads and outside writes are not listed


@pytest.mark.slow
def test_torchrun_trainer_matches_one_process_and_resumes(tmp_path):
    from rlvr.testing import make_tiny_model

    model = make_tiny_model(tmp_path / "tiny")
    base = [*TRAIN_ARGS, "--model", str(model)]
    # 1 process and 2 ranks, 2 steps each, on the same prompts and the same (fixed) completions
    _run_driver(tmp_path, 1, [*base, "--max-steps", "2", "--output", str(tmp_path / "one")], "one")
    writes = _run_driver(tmp_path, 2, [*base, "--max-steps", "2", "--output", str(tmp_path / "two")], "two")
    assert writes == [], f"rank 1 wrote into the run folder: {writes[:5]}"
    one, two = _final_weights(tmp_path / "one"), _final_weights(tmp_path / "two")
    start = _final_weights_of(model)
    assert max((one[k] - start[k]).abs().max().item() for k in one) > 5e-5, "training must move the weights"
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-5, msg=name)
    m1, m2 = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
    assert [m["step"] for m in m2] == [1, 2]  # one line per step: rank 1 logged nothing
    for a, b in zip(m1, m2, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-6)
        assert b["tokens"] == a["tokens"]
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)

    # 2 ranks: 1 step, stop, resume to step 2 -> the uninterrupted 2-rank run's weights
    _run_driver(tmp_path, 2, [*base, "--max-steps", "1", "--output", str(tmp_path / "cut")], "cut")
    writes = _run_driver(tmp_path, 2, ["--resume", str(tmp_path / "cut"), "--max-steps", "2"], "resumed")
    assert writes == []
    resumed = _final_weights(tmp_path / "cut")
    for name in two:
        torch.testing.assert_close(resumed[name], two[name], rtol=0, atol=1e-5, msg=name)
    assert [m["step"] for m in _metrics(tmp_path / "cut")] == [1, 2]

    # FSDP2: the policy sharded over the 2 ranks (the hf engine keeps a full copy, pushed each step);
    # checkpoints hold gathered weights and Adam state, re-sharded on resume
    fsdp = [*base, "--strategy", "fsdp2", "--output", str(tmp_path / "fsdp")]
    assert _run_driver(tmp_path, 2, [*fsdp, "--max-steps", "1"], "fsdp-cut") == []
    assert _run_driver(tmp_path, 2, ["--resume", str(tmp_path / "fsdp"), "--max-steps", "2"], "fsdp-resumed") == []
    sharded = _final_weights(tmp_path / "fsdp")
    for name in one:
        torch.testing.assert_close(sharded[name], one[name], rtol=0, atol=1e-5, msg=name)
    assert [m["step"] for m in _metrics(tmp_path / "fsdp")] == [1, 2]


def _final_weights_of(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(model_dir / "model.safetensors")


@pytest.mark.slow
def test_torchrun_sft_matches_one_process(tmp_path):
    """A non-GRPO algorithm under torchrun (gloo, 2 ranks): SFT on worked arith answers, each rank its share
    of the rows, the loss normalized over both: the same weights as one process, to 1e-5."""
    from rlvr.testing import make_tiny_model

    model = make_tiny_model(tmp_path / "tiny")
    args = [*TRAIN_ARGS, "--model", str(model), "--algorithm", "sft", "--max-steps", "2"]
    _run_driver(tmp_path, 1, [*args, "--output", str(tmp_path / "one")], "sft-one")
    assert _run_driver(tmp_path, 2, [*args, "--output", str(tmp_path / "two")], "sft-two") == []
    one, two, start = _final_weights(tmp_path / "one"), _final_weights(tmp_path / "two"), _final_weights_of(model)
    assert max((one[k] - start[k]).abs().max().item() for k in one) > 5e-5, "training must move the weights"
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-5, msg=name)
    m1, m2 = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
    assert [m["step"] for m in m2] == [1, 2]
    for a, b in zip(m1, m2, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-5) and b["tokens"] == a["tokens"]


@pytest.mark.slow
def test_batch_advantages_use_the_whole_batchs_statistics_under_ddp(tmp_path):
    """advantage=batch normalizes by the std of every rank's rewards: 2 ranks train like 1 process."""
    from rlvr.testing import make_tiny_model

    model = make_tiny_model(tmp_path / "tiny")
    # groups of 3 canned completions: ranks see different reward mixes, so a per-rank std would differ
    args = [
        *TRAIN_ARGS,
        "--model",
        str(model),
        "--set",
        "grpo.advantage=batch",
        "--max-steps",
        "1",
        "--set",
        "checkpoint.every=0",
        "--group-size",
        "3",
    ]
    _run_driver(tmp_path, 1, [*args, "--output", str(tmp_path / "one")], "batch-one")
    _run_driver(tmp_path, 2, [*args, "--output", str(tmp_path / "two")], "batch-two")
    # the same advantages, hence the same loss; weights agree to well under one step of lr 1e-4 (Adam's first
    # step is ~lr·sign(g), so float noise in near-zero gradients moves some entries by up to ~lr/2)
    (m1,), (m2,) = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
    assert m2["loss"] == pytest.approx(m1["loss"], abs=1e-7) and m2["advantage_mean"] == pytest.approx(
        m1["advantage_mean"], abs=1e-7
    )
    one, two = _final_weights(tmp_path / "one"), _final_weights(tmp_path / "two")
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-4, msg=name)
