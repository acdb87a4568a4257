"""Resident memory of the colocated vLLM engine with its KV cache sized from max_model_len vs from the real prompts.

    python benchmarks/vllm_kv_cache.py [--dataset arith] [--prompts 4] [--group 8] [--max-new-tokens 64]

Each sizing starts the engine in its own process (RSS cannot be given back inside one) and runs one
training step's generate: `--prompts` prompts x `--group` samples at temperature 1. "before" is what
the trainer sized until now, `kv_cache_gib(model, rows, 1024 + max_new_tokens)`; "after" is
`kv_budget(model, prompts, rows, max_new_tokens)`: the longest prompt of the whole dataset (chat
template) plus max_new_tokens, at least 0.25 GiB; "exact" is the same without that floor. Prints RSS
after start-up, after the generate, the peak (VmHWM), and the saving. Take /tmp/rlvr-heavy.lock
around it on a shared machine (`flock`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def rss_gib() -> dict[str, float]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 2**20 for key in ("VmRSS", "VmHWM")}


def prompts_of(args) -> list[str]:
    from types import SimpleNamespace

    from rlvr.data.specs import load_examples
    from rlvr.data.templates import render_prompt
    from rlvr.models import load_tokenizer, resolve_model

    config = SimpleNamespace(
        seed=0,
        data=SimpleNamespace(
            dataset=args.dataset, split="train", limit=None, size=args.size, difficulty=args.difficulty
        ),
        eval=SimpleNamespace(dataset=None, split="test", limit=None),
    )
    tokenizer = load_tokenizer(resolve_model(args.model))
    return [render_prompt(e, tokenizer, style="chat") for e in load_examples(config)]


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from rlvr.models import resolve_model
    from rlvr.rollout import SamplingConfig, create_engine
    from rlvr.rollout.vllm.sizing import kv_budget, kv_cache_gib

    model = resolve_model(args.model)
    prompts = prompts_of(args)
    rows = args.prompts * args.group
    if args.one == "before":
        max_len = 1024 + args.max_new_tokens
        gib = kv_cache_gib(model, rows, max_len, dtype="bfloat16")
    else:  # "after": kv_budget as the trainer calls it; "exact": without its 0.25 GiB floor
        floor = {"after": 0.25, "exact": 0.0}[args.one]
        max_len, gib = kv_budget(model, prompts, rows, args.max_new_tokens, dtype="bfloat16", minimum=floor)
    started = rss_gib()["VmRSS"]
    engine = create_engine("vllm", model, seed=0, max_model_len=max_len, dtype="bfloat16", kv_cache_gib=gib)
    after_start = rss_gib()["VmRSS"]
    t0 = time.perf_counter()
    rollouts = engine.generate(
        prompts[: args.prompts], args.group, SamplingConfig(temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    )
    seconds = time.perf_counter() - t0
    memory = rss_gib()
    report = {
        "sizing": args.one,
        "max_model_len": max_len,
        "kv_cache_gib": gib,
        "rss_before_engine": started,
        "rss_after_start": after_start,
        "rss_after_generate": memory["VmRSS"],
        "peak": memory["VmHWM"],
        "generate_s": seconds,
        "tokens": sum(len(r.token_ids) for r in rollouts),
        "longest_prompt": max(len(engine.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts),
    }
    print("@@" + json.dumps(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument("--dataset", default="arith")
    parser.add_argument("--difficulty", default="easy")
    parser.add_argument("--size", type=int, default=2000, help="arith: examples generated")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", choices=["before", "after", "exact"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("RLVR_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    if args.one:
        child(args)
        return
    repo = str(Path(__file__).resolve().parents[1])
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])),
    }
    reports = {}
    for sizing in ("before", "after", "exact"):
        out = subprocess.run(
            [sys.executable, __file__, "--one", sizing, *sys.argv[1:]],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        line = next((x for x in out.stdout.splitlines() if x.startswith("@@")), None)
        if out.returncode or line is None:
            sys.exit(f"the {sizing} run failed:\n{out.stderr[-3000:]}")
        reports[sizing] = json.loads(line[2:])
        print(sizing, line[2:], flush=True)  # each as it comes: a run cut short keeps what it measured
    import torch

    print(
        f"\n{args.model} (vllm, bfloat16), {args.dataset} prompts (longest {reports['after']['longest_prompt']} "
        f"tokens), {args.prompts}x{args.group} rows, max_new_tokens {args.max_new_tokens}, {args.threads} threads; "
        f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
    )
    print(
        "| KV sizing | max_model_len | KV cache GiB | RSS after start GiB | RSS after generate GiB | peak RSS GiB "
        "| generate s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for sizing, r in reports.items():
        print(
            f"| {sizing} | {r['max_model_len']} | {r['kv_cache_gib']:.3f} | {r['rss_after_start']:.3f} | "
            f"{r['rss_after_generate']:.3f} | {r['peak']:.3f} | {r['generate_s']:.1f} |"
        )
    print()
    for sizing in ("after", "exact"):
        saving = reports["before"]["peak"] - reports[sizing]["peak"]
        print(f"- peak RSS saving, {sizing} vs before: {saving:.3f} GiB ({saving / reports['before']['peak']:.0%})")


if __name__ == "__main__":
    main()
