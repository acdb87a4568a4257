"""Raw generation speed of the hf and vllm engines: the same prompts, generated tokens per second.

    flock /tmp/rlvr-heavy.lock python benchmarks/engine_speed.py [--prompts 64] [--max-new-tokens 128]

Each engine/dtype runs in its own process (in-process vLLM pins the OpenMP threads and disables
torch.set_num_threads for the whole process). Prompts: the first N GSM8K test questions through
the model's chat template. Greedy and T=1 sampling; tokens/s counts generated tokens (EOS
included) over the wall time of one `generate` call with all prompts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

RUNS = [("hf", "float32"), ("hf", "bfloat16"), ("vllm", "float32"), ("vllm", "bfloat16")]


def prompts(count: int, tokenizer) -> list[str]:
    from rlvr.data import load_benchmark

    examples = load_benchmark("gsm8k", "test", limit=count)
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": e.prompt}], tokenize=False, add_generation_prompt=True
        )
        for e in examples
    ]


def measure(kind: str, dtype: str, args) -> dict:
    import torch

    if kind == "hf":
        torch.set_num_threads(args.threads)
    from rlvr.rollout import SamplingConfig, create_engine

    started = time.perf_counter()
    engine = create_engine(kind, args.model, dtype=dtype, max_model_len=1024, seed=0)
    startup = time.perf_counter() - started
    texts = prompts(args.prompts, engine.tokenizer)
    result = {"engine": kind, "dtype": dtype, "startup_s": round(startup, 1)}
    for label, temperature in (("greedy", 0.0), ("T1", 1.0)):
        sampling = SamplingConfig(temperature=temperature, max_new_tokens=args.max_new_tokens, seed=0)
        started = time.perf_counter()
        rollouts = engine.generate(texts, 1, sampling)
        seconds = time.perf_counter() - started
        tokens = sum(len(r.token_ids) for r in rollouts)
        result[label] = {"seconds": round(seconds, 2), "tokens": tokens, "tok_s": round(tokens / seconds, 1)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--one", help="internal: run only ENGINE:DTYPE and print JSON")
    args = parser.parse_args()
    if args.one:
        kind, dtype = args.one.split(":")
        print("RESULT " + json.dumps(measure(kind, dtype, args)), flush=True)
        return
    results = []
    for kind, dtype in RUNS:
        command = [sys.executable, __file__, "--one", f"{kind}:{dtype}", "--model", args.model,
                   "--prompts", str(args.prompts), "--max-new-tokens", str(args.max_new_tokens),
                   "--threads", str(args.threads)]
        out = subprocess.run(command, capture_output=True, text=True)
        line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            print(f"{kind}/{dtype} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        results.append(json.loads(line[len("RESULT "):]))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    base = next((r for r in results if r["engine"] == "hf" and r["dtype"] == "float32"), None)
    print(f"\n{args.prompts} GSM8K prompts, max_new_tokens={args.max_new_tokens}, {args.model}\n")
    print("| engine | dtype | start s | greedy tok/s | T=1 tok/s | T=1 vs hf-fp32 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        ratio = f"{r['T1']['tok_s'] / base['T1']['tok_s']:.1f}x" if base else "-"
        print(f"| {r['engine']} | {r['dtype']} | {r['startup_s']} | {r['greedy']['tok_s']} "
              f"({r['greedy']['tokens']} tok) | {r['T1']['tok_s']} ({r['T1']['tokens']} tok) | {ratio} |")


if __name__ == "__main__":
    main()
