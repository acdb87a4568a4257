"""Does `rlvr train` learn? SmolLM2-135M-Instruct on the procedural `arith` dataset (CPU, vllm engine):
held-out accuracy (greedy, through rlvr.eval.run_eval) before and after N GRPO steps, 95% CIs, PNG curve.

    flock /tmp/rlvr-heavy.lock python benchmarks/learning_curve.py --eval-every 5 --output runs/learning_curve
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument("--difficulty", default="easy")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--verifier", default="math+0.5*boxed_format", help="accuracy is always math's verdict")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--eval-limit", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=0, help="0 = before and after only")
    parser.add_argument("--engine", default="vllm")
    parser.add_argument("--rollout-dtype", default="auto", help="vllm's weights (rollout.dtype)")
    parser.add_argument("--output", default="runs/learning_curve")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

    from rlvr.cli.train import plot_metrics
    from rlvr.config import load_config
    from rlvr.monitor import read_metrics
    from rlvr.trainer import Trainer

    out = Path(args.output)
    config = load_config(None, {
        "seed": 0, "device": "cpu", "model.name": args.model, "model.dtype": "float32",
        "data.dataset": "arith", "data.difficulty": args.difficulty, "rollout.engine": args.engine, "rollout.dtype": args.rollout_dtype,
        "rollout.prompts_per_step": args.prompts, "rollout.n": args.group,
        "rollout.max_new_tokens": args.max_new_tokens, "reward.verifier": args.verifier,
        "rollout.temperature": args.temperature, "reward.workers": 1,
        "algorithm.loss": "dapo", "optimizer.lr": args.lr, "optimizer.max_steps": args.steps,
        "optimizer.warmup_steps": 1, "optimizer.micro_batch_size": 8, "logging.output": str(out),
        "logging.progress": False, "checkpoint.every": 0, "eval.every": args.eval_every or args.steps,
        "eval.limit": args.eval_limit, "eval.temperature": 0.0,
    })
    started = time.perf_counter()
    Trainer(config).train()
    wall = time.perf_counter() - started
    evals, steps = read_metrics(out, "eval.jsonl"), read_metrics(out)
    before, after = evals[0], evals[-1]
    plot_metrics(steps, evals, out / "learning_curve.png", title=f"{Path(args.model).name} on arith ({args.difficulty})")
    gain = after["eval_accuracy"] - before["eval_accuracy"]
    separated = after["eval_ci95"][0] > before["eval_ci95"][1]
    print(f"\nrlvr train, reward {args.verifier}, T={args.temperature}, {args.steps} steps x {args.prompts} prompts x {args.group} samples, lr {args.lr}, "
          f"engine {args.engine}, {wall:.0f} s wall")
    print(f"{'':<22}{'accuracy':>10}  95% CI")
    for name, rec in (("before (step 0)", before), (f"after (step {after['step']})", after)):
        lo, hi = rec["eval_ci95"]
        print(f"{name:<22}{rec['eval_accuracy']:>10.1%}  [{lo:.1%}, {hi:.1%}]  n={rec['eval_n']}")
    print(f"gain {gain * 100:+.1f} points; intervals separated: {separated} (target: >= +10 points, separated)")
    summary = {"args": vars(args), "wall_s": wall, "before": before, "after": after, "gain": gain,
               "separated": separated, "median_step_s": sorted(s["time_step"] for s in steps)[len(steps) // 2],
               "reward_first": steps[0]["reward_mean"], "reward_last": steps[-1]["reward_mean"]}
    (out / "learning_curve.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("median_step_s", "reward_first", "reward_last")}))


if __name__ == "__main__":
    main()
