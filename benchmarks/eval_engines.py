"""`rlvr eval` with the vllm and hf engines on the same problems: accuracy, wall time, tokens/s.

    python benchmarks/eval_engines.py [--gsm8k 200] [--math500 100] [--max-new-tokens 256]

Greedy decoding, the chat template, the `math` verifier, exactly as `rlvr eval` runs. The script
takes /tmp/rlvr-heavy.lock itself around every chunk of problems (do not wrap it in `flock`), so
the long hf runs let other heavy jobs in between; results resume from --out, so an interrupted
run continues where it stopped. Prints a markdown table with the vllm/hf tokens/s ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import time
from pathlib import Path

LOCK = "/tmp/rlvr-heavy.lock"


@contextlib.contextmanager
def heavy_lock():
    with open(LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def evaluate(kind: str, model: str, plan: dict[str, int], args) -> dict[str, dict]:
    import torch

    from rlvr.data import load_benchmark
    from rlvr.eval import run_eval
    from rlvr.rollout import SamplingConfig, create_engine
    from rlvr.verifiers import build_verifier

    torch.set_num_threads(args.threads)
    verifier = build_verifier("math")
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=args.max_new_tokens, seed=0)
    with heavy_lock():
        started = time.perf_counter()
        engine = create_engine(kind, model, seed=0, max_model_len=2048)
        startup = time.perf_counter() - started
    results = {}
    try:
        for name, n in plan.items():
            examples = load_benchmark(name, limit=n)
            step = args.chunk if kind == "hf" else n  # vllm is fast enough to hold the lock once
            for limit in range(step, n + step, step):
                with heavy_lock():
                    summary = run_eval(engine, examples[:limit], verifier, sampling=sampling, style="chat",
                                       output_dir=Path(args.out) / kind / name, chunk_size=args.batch,
                                       run_info={"model": model, "benchmark": name}, name=f"{kind} {name}")
            summary["startup_s"] = round(startup, 2)
            results[name] = summary
    finally:
        engine.close()
    return results


def agreement(out: Path, name: str) -> tuple[float, float]:
    """Fraction of problems where both engines wrote the identical completion / extracted answer."""
    rows = {}
    for kind in ("vllm", "hf"):
        path = out / kind / name / "samples.jsonl"
        rows[kind] = {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}
    common = sorted(set(rows["vllm"]) & set(rows["hf"]))
    same_text = sum(rows["vllm"][i]["completion"] == rows["hf"][i]["completion"] for i in common)
    same_answer = sum(rows["vllm"][i]["extracted"] == rows["hf"][i]["extracted"] for i in common)
    return same_text / len(common), same_answer / len(common)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument("--gsm8k", type=int, default=200, help="GSM8K test problems")
    parser.add_argument("--math500", type=int, default=100, help="MATH-500 problems")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--engines", default="vllm,hf")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64, help="completions per generate call")
    parser.add_argument("--chunk", type=int, default=50, help="hf: problems per lock hold")
    parser.add_argument("--out", default="/tmp/rlvr-bench/eval_engines")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("RLVR_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    plan = {name: n for name, n in (("gsm8k", args.gsm8k), ("math500", args.math500)) if n > 0}
    results = {kind: evaluate(kind, args.model, plan, args) for kind in args.engines.split(",")}

    print(f"\nSmolLM2-135M-Instruct ({args.model}), greedy, max_new_tokens {args.max_new_tokens}, chat template, "
          f"math verifier; {platform.machine()} {os.cpu_count()}-core CPU, torch threads {args.threads}\n")
    print("| benchmark | engine | problems | accuracy [95% CI] | completion tokens | generate s | tokens/s | wall s | startup s |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for name in plan:
        for kind, per in results.items():
            s, t = per[name], per[name]["timing"]
            print(f"| {name} | {kind} | {s['n_problems']} | {s['accuracy']:.1%} [{s['ci95'][0]:.1%}, {s['ci95'][1]:.1%}] | "
                  f"{t['completion_tokens']} | {t['generate_s']:.1f} | {t['tokens_per_s']:.1f} | {t['wall_s']:.1f} | {s['startup_s']:.1f} |")
    if {"vllm", "hf"} <= set(results):
        print()
        for name in plan:
            ratio = results["vllm"][name]["timing"]["tokens_per_s"] / results["hf"][name]["timing"]["tokens_per_s"]
            text, answer = agreement(Path(args.out), name)
            verdict = "met" if ratio >= 5 else "MISSED"
            print(f"{name}: vllm/hf tokens/s = {ratio:.1f}x (target >= 5x: {verdict}); identical completions "
                  f"{text:.0%}, identical extracted answers {answer:.0%}")


if __name__ == "__main__":
    main()
