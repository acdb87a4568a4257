"""The GRPO learn pass on packed rows against padded rows: seconds and padding, interleaved in one process.

    flock /tmp/rlvr-heavy.lock python benchmarks/packing.py [--rounds 5] [--seed 0] [--warmup 1]

The batch is the default `rlvr train --verifier math` step on the CPU: SmolLM2-135M-Instruct (float32, via
`rlvr.models.resolve_model`), 4 arith-easy prompts of the training split rendered in the chat style, 8 completions
each, dapo loss, β 0, each group's prompt shared. Padded, a micro-batch is optimizer.micro_batch_size rows (8: one
group); packed, whole groups up to optimizer.micro_batch_tokens tokens (2048: every group of this step). The
completions are random tokens with the default run's lengths: in each group half stop early (lengths drawn
uniformly from 8..63) and the rest hit the 64-token limit. Every group gets non-zero advantages, so none is
skipped and both ways run all 32 rows.

One policy runs GRPO's whole learn (forward, backward, AdamW step) on the same batch, padded and packed in turn
(`Policy.packing`, each with its default micro-batches), `--rounds` times each, the order alternating per round,
so the shared machine's load falls on both alike. Reported: the median learn seconds of each way and the step's
`padding_fraction` metric; before timing, the packed and padded logprobs of the batch are compared; after it,
each way's peak RSS, two learn passes alone in a process of its own (`--only`). The last line is
`packed learn pass: X.XXx padded time, padding P% -> Q%`."""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rlvr.algorithms.grpo import GRPO, Groups, GRPOBatch
from rlvr.config import load_config, resolve_auto
from rlvr.data.specs import load_examples
from rlvr.data.templates import render_prompt
from rlvr.distributed import init_distributed
from rlvr.learner.policy import Policy
from rlvr.learner.precision import cpu_kind
from rlvr.models import resolve_model
from rlvr.types import Rollout, Score, Status


def _batch(policy: Policy, seed: int) -> GRPOBatch:
    """The default step's 4 prompts x 8 completions: half of each group stop early, the rest at the limit."""
    cfg = policy.config
    prompts, n, limit = cfg.rollout.prompts_per_step, cfg.rollout.n, cfg.rollout.max_new_tokens
    examples = load_examples(cfg)[:prompts]
    gen = torch.Generator().manual_seed(seed)
    rollouts = []
    for index, example in enumerate(examples):
        text = render_prompt(example, policy.tokenizer, style=cfg.data.style, instruction=cfg.data.instruction)
        prompt = tuple(policy.tokenizer(text, add_special_tokens=False)["input_ids"])
        for row in range(n):
            length = int(torch.randint(8, limit, (), generator=gen)) if row % 2 else limit
            rollouts.append(
                Rollout(
                    prompt_index=index,
                    text="",
                    token_ids=tuple(torch.randint(0, len(policy.tokenizer), (length,), generator=gen).tolist()),
                    logprobs=(-1.0,) * length,
                    finish_reason="length" if length == limit else "stop",
                    prompt_token_ids=prompt,
                )
            )
    rewards = (torch.arange(prompts * n) % 2).float().reshape(prompts, n)
    scores = [Score(float(r), Status.CORRECT if r else Status.WRONG, {}) for r in rewards.flatten().tolist()]
    advantages = (rewards - rewards.mean(1, keepdim=True)).flatten()
    return GRPOBatch(Groups(examples, rollouts, scores, rewards), advantages, False)


def _learn(policy: Policy, batch: GRPOBatch, packed: bool) -> tuple[float, float]:
    policy.packing = packed
    start = time.perf_counter()
    metrics = GRPO(policy.config).learn(policy, batch)
    return time.perf_counter() - start, metrics["padding_fraction"]


@torch.no_grad()
def _logprob_gap(policy: Policy, batch: GRPOBatch) -> float:
    rows = batch.groups.rollouts
    tensors = policy.pack(rows, policy.config.rollout.n)
    micro = policy.micro_batches(tensors)
    ways = []
    for packed in (False, True):
        policy.packing = packed
        ways.append(policy.frozen_logprobs(tensors, micro) * tensors["mask"])
    policy.step([], None)  # clears the padding counts (a zero-gradient step)
    return float((ways[0] - ways[1]).abs().max())


def _peak_rss(way: str, seed: int) -> str:
    """The peak RSS of a process that loads the policy and runs two learn passes of `way` alone."""
    run = subprocess.run(
        [sys.executable, __file__, "--only", way, "--seed", str(seed)], capture_output=True, text=True, check=True
    )
    return run.stdout.strip().rpartition(" ")[2]


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=1, help="untimed packed learn passes first")
    parser.add_argument("--only", choices=("packed", "padded"), help="two learn passes of this way; print peak RSS")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    config = resolve_auto(load_config(None, {"reward.verifier": "math", "device": "cpu"}), "cpu")
    model = resolve_model(config.model.name)
    policy = Policy(config, init_distributed(), torch.device("cpu"), model, optimizer_steps=1)
    batch = _batch(policy, args.seed)
    if args.only:
        for _ in range(2):
            _learn(policy, batch, args.only == "packed")
        print(f"peak RSS GiB: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f}")
        return
    lengths = [len(r.token_ids) for r in batch.groups.rollouts]
    prompt_lengths = sorted({len(r.prompt_token_ids) for r in batch.groups.rollouts})
    kind = cpu_kind()
    print(
        f"# packed vs padded learn pass, {datetime.date.today()}, {kind['model']} (amx: {kind['amx']}), "
        f"{os.cpu_count()} cores, torch {torch.__version__}, attention {policy.module.config._attn_implementation}"
    )
    print(f"# uptime: {_uptime()}")
    print(
        f"# batch: {len(lengths)} rows, prompt tokens {prompt_lengths},"
        f" completion tokens mean {statistics.mean(lengths):.1f} (half at {max(lengths)})"
    )
    print(f"# packed vs padded logprobs ({policy.compute_dtype} compute): max |diff| {_logprob_gap(policy, batch):.2e}")
    for _ in range(args.warmup):  # the first pass allocates what the later ones reuse
        _learn(policy, batch, True)
    seconds: dict[bool, list[float]] = {False: [], True: []}
    padding: dict[bool, float] = {}
    for round_ in range(args.rounds):
        for packed in (False, True) if round_ % 2 == 0 else (True, False):
            took, padding[packed] = _learn(policy, batch, packed)
            seconds[packed].append(took)
            print(f"round {round_ + 1}: {'packed' if packed else 'padded'} {took:.2f} s, padding {padding[packed]:.1%}")
    print(f"# uptime: {_uptime()}")
    print("| learn pass | median s | all s | padding_fraction |")
    print("| --- | --- | --- | --- |")
    for packed, name in ((False, "padded"), (True, "packed")):
        runs = ", ".join(f"{s:.2f}" for s in seconds[packed])
        print(f"| {name} | {statistics.median(seconds[packed]):.2f} | {runs} | {padding[packed]:.1%} |")
    peaks = {way: _peak_rss(way, args.seed) for way in ("padded", "packed")}
    print(f"peak RSS, each way alone: padded {peaks['padded']} GiB, packed {peaks['packed']} GiB")
    ratio = statistics.median(seconds[True]) / statistics.median(seconds[False])
    print(f"packed learn pass: {ratio:.2f}x padded time, padding {padding[False]:.0%} -> {padding[True]:.0%}")


if __name__ == "__main__":
    main()
