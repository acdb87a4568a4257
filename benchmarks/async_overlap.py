"""Would an asynchronous one-step-off-policy mode (generate step t+1 while learning step t) pay on this
machine? Measured, not predicted: the CPU default step's generation (vLLM, 4 prompts x 8 samples, <= 64 new
tokens, T 0.7, float32) and its learn pass (GRPO, 32 rows, every group forward/backward), each in its own
process, timed (a) one after the other with all the cores each, as the loop runs today, and (b) at the
same time, the cores split between them, as an overlapped loop would run.

    flock /tmp/rlvr-heavy.lock python benchmarks/async_overlap.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from learning_curve import cpu_kind

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
PROMPTS, N, NEW, PROMPT_TOKENS = 4, 8, 64, 57


def _wait_for_go(folder: Path, role: str) -> None:
    (folder / f"{role}.ready").touch()
    while not (folder / "go").exists():
        time.sleep(0.01)


def _generate(threads: int, repeat: int, folder: Path) -> list[float]:
    from rlvr.config import load_config
    from rlvr.data.specs import load_examples
    from rlvr.data.templates import render_prompt
    from rlvr.models import load_tokenizer, resolve_model
    from rlvr.rollout import SamplingConfig, create_engine

    path = resolve_model(MODEL)
    examples = load_examples(load_config(None, {"data.dataset": "arith", "data.difficulty": "easy", "data.size": 64}))
    tokenizer = load_tokenizer(path)
    engine = create_engine("vllm", path, seed=0, max_model_len=256, dtype="float32", kv_cache_gib=0.25)
    times = []
    _wait_for_go(folder, "generate")
    for i in range(repeat):
        prompts = [render_prompt(e, tokenizer) for e in examples[i * PROMPTS : (i + 1) * PROMPTS]]
        start = time.perf_counter()
        engine.generate(prompts, N, SamplingConfig(temperature=0.7, max_new_tokens=NEW, seed=i))
        times.append(time.perf_counter() - start)
    return times


def _learn(threads: int, repeat: int, folder: Path) -> list[float]:
    import torch

    from rlvr.algorithms.grpo import GRPO, Groups, GRPOBatch
    from rlvr.config import load_config, resolve_auto
    from rlvr.distributed import init_distributed
    from rlvr.learner.policy import Policy
    from rlvr.models import resolve_model
    from rlvr.types import Example, Rollout, Score, Status

    path = resolve_model(MODEL)
    config = resolve_auto(
        load_config(
            None,
            {
                "model.name": str(path),
                "device": "cpu",
                "model.dtype": "float32",
                "rollout.n": N,
                "rollout.prompts_per_step": PROMPTS,
                "rollout.max_new_tokens": NEW,
                "optimizer.micro_batch_size": PROMPTS * N,
                "optimizer.skip_zero_advantage": False,
                "grpo.loss": "dapo",
                "optimizer.lr": 1e-6,
            },
        ),
        "cpu",
    )
    policy = Policy(config, init_distributed(), torch.device("cpu"), path)
    gen = torch.Generator().manual_seed(0)
    examples, rollouts = [], []
    for g in range(PROMPTS):  # the default step's shapes: 57-token prompts, completions up to 64 tokens
        prompt = tuple(torch.randint(100, 40000, (PROMPT_TOKENS,), generator=gen).tolist())
        examples.append(Example(str(g), "p", "1"))
        for _ in range(N):
            length = int(torch.randint(16, NEW + 1, (1,), generator=gen))
            tokens = tuple(torch.randint(100, 40000, (length,), generator=gen).tolist())
            rollouts.append(
                Rollout(
                    prompt_index=g,
                    text="t",
                    token_ids=tokens,
                    logprobs=(-2.0,) * length,
                    finish_reason="stop",
                    prompt_token_ids=prompt,
                )
            )
    rewards = torch.randint(0, 2, (PROMPTS, N), generator=gen).float()
    batch = Groups(examples, rollouts, [Score(1.0, Status.CORRECT, {})] * len(rollouts), rewards)
    advantages = (rewards - rewards.mean(1, keepdim=True)).flatten()
    algorithm = GRPO(config)
    times = []
    _wait_for_go(folder, "learn")
    for _ in range(repeat):
        start = time.perf_counter()
        algorithm.learn(policy, GRPOBatch(batch, advantages, False))
        times.append(time.perf_counter() - start)
    return times


def _start(role: str, threads: int, repeat: int, folder: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
    }
    return subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--child",
            role,
            "--threads",
            str(threads),
            "--repeat",
            str(repeat),
            "--folder",
            str(folder),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(roles: list[str], threads: int, repeat: int) -> dict[str, list[float]]:
    """Start `roles` together; once every one has set up, let them go at the same moment."""
    with tempfile.TemporaryDirectory() as folder:
        procs = {role: _start(role, threads, repeat, Path(folder)) for role in roles}
        while not all((Path(folder) / f"{role}.ready").exists() for role in roles):
            for role, proc in procs.items():
                if proc.poll() is not None:
                    sys.exit(f"{role} failed:\n{proc.stderr.read()[-3000:]}")
            time.sleep(0.05)
        (Path(folder) / "go").touch()
        out = {}
        for role, proc in procs.items():
            stdout, stderr = proc.communicate()
            if proc.returncode != 0:
                sys.exit(f"{role} failed:\n{stderr[-3000:]}")
            out[role] = json.loads(stdout.strip().splitlines()[-1])
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--child", choices=["generate", "learn"], help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        times = (_generate if args.child == "generate" else _learn)(args.threads, args.repeat, args.folder)
        print(json.dumps(times))
        return
    half = max(1, args.cores // 2)
    seq = {role: _run([role], args.cores, args.repeat)[role] for role in ("generate", "learn")}
    both = _run(["generate", "learn"], half, args.repeat)
    med = {k: statistics.median(v) for k, v in seq.items()}
    sync_step = med["generate"] + med["learn"]
    # overlapped, each step waits for the slower of the two; over the repeats both ran at the same time
    async_step = max(sum(both["generate"]), sum(both["learn"])) / args.repeat
    kind = cpu_kind()
    print(
        f"{datetime.date.today()}  CPU {kind['model']} ({kind['capability']}, avx512_bf16={kind['avx512_bf16']}, "
        f"amx={kind['amx']}), torch {kind['torch']}, {args.cores} cores; the CPU default GRPO step's shapes"
    )
    print("| mode | generate s | learn s | s per step | x today |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| one after the other, {args.cores} threads each (today) | {med['generate']:.2f} | {med['learn']:.2f} | "
        f"{sync_step:.2f} | 1.00 |"
    )
    print(
        f"| at the same time, {half} thread(s) each (one-step off-policy) | "
        f"{statistics.median(both['generate']):.2f} | "
        f"{statistics.median(both['learn']):.2f} | {async_step:.2f} | {async_step / sync_step:.2f} |"
    )


if __name__ == "__main__":
    main()
