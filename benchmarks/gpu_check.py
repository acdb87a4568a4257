"""The GPU check: a few GRPO steps per configuration on one CUDA device, as one table.

Run by `scripts/gpu_check.sh` on the lent `device` machine (torch, transformers and peft; no vLLM, no
network). Each configuration runs in its own process (a crash or an out-of-memory is that row's
result, not the end of the check):

    full    bfloat16 compute, float32 master weights, full fine-tuning
    lora    the same with LoRA (rank 16)
    qlora   LoRA over a 4-bit base (bitsandbytes nf4), when `model.quantization` and bitsandbytes exist
    fsdp2   full fine-tuning sharded with FSDP2, under torchrun with one process
    packed  full, on packed rows (row attention over SDPA; flash-attention's varlen kernel if flash_attn is there)

All use the hf engine. The model is SmolLM2-135M's architecture with random weights and SmolLM2's
tokenizer (the machine cannot download the trained one), so the reward is one a random model's
samples differ on: the DAPO overlong penalty on completion length in characters. The table:
step time (median after the first step), peak CUDA memory, the weights' relative change over the
run (`param_delta` summed), and whether every loss was finite.

    python benchmarks/gpu_check.py --tokenizer DIR [--device cuda] [--steps 4] [--rows full,lora,...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: SmolLM2-135M's shape (config.json of HuggingFaceTB/SmolLM2-135M-Instruct)
SMOLLM2_135M = dict(
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    max_position_embeddings=8192,
    tie_word_embeddings=True,
    rms_norm_eps=1e-5,
)

#: row -> (config overrides, launched under torchrun)
ROWS: dict[str, tuple[dict[str, object], bool]] = {
    "full": ({"model.lora_r": 0}, False),
    "lora": ({"model.lora_r": 16}, False),
    "qlora": ({"model.lora_r": 16, "model.quantization": "4bit"}, False),
    "fsdp2": ({"model.lora_r": 0, "distributed.strategy": "fsdp2"}, True),
    "packed": ({"model.lora_r": 0, "optimizer.packing": True}, False),
}


def overrides(model: Path, out: Path, device: str, steps: int, small: bool) -> dict[str, object]:
    """What every row shares: a short GRPO run on arith prompts with the overlong reward."""
    return {
        "model.name": str(model),
        "device": device,
        "model.dtype": "bfloat16" if device == "cuda" else "float32",
        "model.master_dtype": "float32",
        "rollout.engine": "hf",
        "rollout.prompts_per_step": 2 if small else 16,
        "rollout.n": 2 if small else 8,
        "rollout.max_new_tokens": 8 if small else 128,
        "rollout.temperature": 1.0,
        "reward.verifier": "overlong:max_tokens=200,buffer=150,unit=chars",
        "reward.audit": False,
        "reward.workers": 0,
        "optimizer.max_steps": steps,
        "optimizer.warmup_steps": 0,
        "optimizer.lr": 1e-5,
        "optimizer.skip_zero_advantage": False,
        "eval.before_after": False,
        "checkpoint.every": 0,
        "logging.output": str(out),
        "logging.progress": False,
        "logging.tensorboard": False,
        "logging.samples_every": 0,
    }


def run_row(args: argparse.Namespace) -> None:
    """One row, in this process: train, then write its measurements as JSON to args.result."""
    import torch

    from rlvr.config import load_config
    from rlvr.train.trainer import Trainer

    settings, _ = ROWS[args.row]
    out = Path(args.work) / args.row
    config = load_config(None, {**overrides(Path(args.model), out, args.device, args.steps, args.small), **settings})
    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(config)
    trainer.train()
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    rank = int(os.environ.get("RANK", "0"))
    if rank == 0:
        steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
        times = [s["time_step"] for s in steps[1:]] or [s["time_step"] for s in steps]
        result = {
            "row": args.row,
            "steps": len(steps),
            "step_s": statistics.median(times),
            "peak_gib": peak,
            "weights_moved": sum(s.get("param_delta") or 0.0 for s in steps),
            "loss_finite": all(math.isfinite(s["loss"]) for s in steps if s.get("loss") is not None),
        }
        Path(args.result).write_text(json.dumps(result))


def launch(row: str, args: argparse.Namespace, model: Path, work: Path) -> dict[str, object]:
    """Run one row in a child process (under torchrun for the distributed ones); its result or its error."""
    result = work / f"{row}.json"
    script = [
        str(Path(__file__).resolve()),
        "--row", row, "--model", str(model), "--work", str(work), "--result", str(result),
        "--device", args.device, "--steps", str(args.steps),
    ] + (["--small"] if args.small else [])  # fmt: skip
    distributed = ROWS[row][1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", *script] if distributed else [
        sys.executable, *script]  # fmt: skip
    started = time.perf_counter()
    try:
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=args.row_timeout)
    except subprocess.TimeoutExpired:
        return {"row": row, "error": f"over {args.row_timeout:.0f} s (--row-timeout)", "wall_s": args.row_timeout}
    wall = time.perf_counter() - started
    if done.returncode == 0 and result.is_file():
        return {**json.loads(result.read_text()), "wall_s": wall}
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return {"row": row, "error": (lines[-1] if lines else f"exit {done.returncode}")[:160], "wall_s": wall}


def table(results: list[dict[str, object]], device: str) -> str:
    head = f"{'row':<6} {'step s':>8} {'peak GiB':>9} {'weights moved':>14} {'loss finite':>11} {'wall s':>7}"
    lines = [f"GPU check on {device}", head, "-" * len(head)]
    for r in results:
        if "error" in r:
            lines.append(f"{r['row']:<6} failed: {r['error']}")
        else:
            lines.append(
                f"{r['row']:<6} {r['step_s']:>8.3f} {r['peak_gib']:>9.2f} {r['weights_moved']:>14.3e} "
                f"{r['loss_finite']!s:>11} {r['wall_s']:>7.0f}"
            )
    return "\n".join(lines)


def device_name(device: str) -> str:
    import torch

    if device == "cuda" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    return f"{device} (torch {torch.__version__})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", help="a folder holding SmolLM2's tokenizer (scripts/gpu_check.sh --prepare)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--small", action="store_true", help="tiny model and batches (to try the script on a CPU)")
    parser.add_argument("--row-timeout", type=float, default=110.0)
    parser.add_argument("--json", help="also write the results here")
    # one row in this process (what launch() runs)
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        run_row(args)
        return
    if not args.tokenizer:
        parser.error("--tokenizer DIR is required")
    from rlvr.testing import make_tiny_model

    with tempfile.TemporaryDirectory(prefix="rlvr-gpu-check-") as tmp:
        work = Path(tmp)
        shape = {} if args.small else {**SMOLLM2_135M, "eos_boost": 2.0}
        model = make_tiny_model(work / "model", tokenizer_dir=args.tokenizer, **shape)
        results = []
        for row in args.rows.split(","):
            results.append(launch(row, args, model, work))
            print(f"{row}: done", file=sys.stderr, flush=True)
    print(table(results, device_name(args.device)))
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device_name(args.device), "rows": results}, indent=2))


if __name__ == "__main__":
    main()
