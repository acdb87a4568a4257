"""`rlvr train` (GRPO from a config file and flags) and `rlvr plot` (PNG curves of a run's metrics)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click

from rlvr import names
from rlvr.errors import InputError

#: flag name -> config key; a flag left out keeps the file's (or the default) value
FLAGS = {
    "algorithm": "algorithm",
    "verifier": "reward.verifier",
    "model": "model.name",
    "dataset": "data.dataset",
    "max_steps": "optimizer.max_steps",
    "output": "logging.output",
    "engine": "rollout.engine",
    "lora_r": "model.lora_r",
    "lr": "optimizer.lr",
    "group_size": "rollout.n",
    "prompts_per_step": "rollout.prompts_per_step",
    "max_new_tokens": "rollout.max_new_tokens",
    "seed": "seed",
    "eval_every": "eval.every",
    "strategy": "distributed.strategy",
    "tensor_parallel_size": "rollout.tensor_parallel_size",
    "env": "env.name",
}


@click.command(context_settings={"show_default": True})
@click.option(
    "--algorithm",
    type=click.Choice(tuple(names.ALGORITHMS)),
    default=None,
    help="grpo (RL on verified rewards), sft (supervised on responses), rft (rejection-sampling "
    "fine-tuning), dpo (verifier-labelled or file preference pairs), kto (every sample labelled by its verdict), "
    "orpo, simpo, cpo (DPO's pairs, no reference model), rm (a reward model on such pairs), distill (a teacher's "
    "per-token logprobs) [config: grpo].",
)
@click.option(
    "--verifier", default=None, help="Reward: a verifier spec, e.g. math or math+0.1*boxed_format [config: math]."
)
@click.option(
    "--model", default=None, help="Policy: Hub id, local HF folder or .gguf file [config: SmolLM2-135M-Instruct]."
)
@click.option(
    "--dataset",
    default=None,
    help="Training data: arith, gsm8k, math, reasoning_gym:TASK[:key=value,...] (scored by the reasoning_gym "
    "verifier unless --verifier says otherwise), or a JSONL/JSON/Parquet file [config: arith].",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML config (algorithm, then sections model, data, rollout, reward, grpo, sft, rft, dpo, kto, orpo, "
    "simpo, cpo, rm, distill, env, optimizer, "
    "logging, checkpoint, eval); flags override it.",
)
@click.option("--max-steps", type=int, default=None, help="Training steps (optimizer.max_steps).")
@click.option(
    "--output",
    "-o",
    default=None,
    help="Run folder: metrics.jsonl, config.yaml, checkpoints/, final/ [config: runs/train].",
)
@click.option(
    "--engine",
    type=click.Choice(names.ENGINE_CHOICES),
    default=None,
    help="Rollout engine: vllm (weights pushed after each step), hf (generates with the policy), vllm-server (a "
    "`rlvr serve` at --set rollout.url=http://HOST:PORT), auto.",
)
@click.option("--lora-r", type=int, default=None, help="LoRA rank through peft (0 = full fine-tuning).")
@click.option("--lr", type=float, default=None, help="Peak learning rate (optimizer.lr).")
@click.option("--group-size", "-n", type=int, default=None, help="Completions per prompt (rollout.n).")
@click.option("--prompts-per-step", type=int, default=None, help="Prompts per step (rollout.prompts_per_step).")
@click.option("--max-new-tokens", type=int, default=None, help="Longest completion (rollout.max_new_tokens).")
@click.option("--seed", type=int, default=None, help="Seed of data order, sampling and initialization.")
@click.option("--eval-every", type=int, default=None, help="Held-out eval every N steps (0 = off).")
@click.option(
    "--strategy",
    type=click.Choice(names.STRATEGIES),
    default=None,
    help="Under torchrun: ddp replicates the policy on every rank, fsdp2 shards it [config: ddp].",
)
@click.option(
    "--tensor-parallel-size",
    type=int,
    default=None,
    help="vllm: GPUs one rollout engine is sharded over (under torchrun: that many consecutive ranks) [config: 1].",
)
@click.option(
    "--env",
    default=None,
    help="An environment the policy calls while it reasons, e.g. python (its ```python cells run in a "
    "sandbox; env.backend=auto: docker, else bwrap); none = single turn [config: none].",
)
@click.option(
    "--resume",
    type=click.Path(file_okay=False),
    default=None,
    help="Continue the run in this folder from its latest checkpoint (its config.yaml, then flags).",
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Set any config key, e.g. --set grpo.loss=dapo (repeatable).",
)
@click.option(
    "--strict-audit",
    is_flag=True,
    default=None,
    help="Refuse to start when the reward pays for any known hack of the shipped audit suite.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check the config (algorithm, verifier, datasets; no model is loaded), print the effective config and exit.",
)
@click.option("--verbose", "-v", is_flag=True, help="Debug logging, and the engines' own logs (vLLM, loading bars).")
def train(
    config_file: str | None,
    resume: str | None,
    assignments: tuple[str, ...],
    dry_run: bool,
    verbose: bool,
    strict_audit: bool | None,
    **flags: Any,
) -> None:
    """Train a policy on verifiable rewards (GRPO by default; SFT, RFT, DPO, KTO, ORPO, SimPO, CPO).

    Held-out accuracy is measured before the first step and after the last, with the template,
    extraction and verifier of `rlvr eval`, and written to DIR/summary.json. Each GRPO step: generate
    n completions per prompt, verify them, compute group advantages, take the clipped
    policy-gradient step(s), push the weights to the engine; then log (metrics.jsonl, TensorBoard),
    evaluate and checkpoint. Ctrl-C or SIGTERM saves a checkpoint; --resume DIR continues."""
    from rlvr.config import dump_yaml, load_config, parse_set

    overrides = {FLAGS[name]: value for name, value in flags.items() if value is not None}
    if strict_audit:
        overrides["reward.strict_audit"] = True
    overrides.update(parse_set(assignments))
    _default_verifier(overrides, config_file or resume)
    if resume is not None:
        saved = Path(resume) / "config.yaml"
        if not saved.is_file():
            raise InputError(f"--resume {resume}: no config.yaml there (not a training run folder)")
        if config_file is not None:
            raise InputError("--resume takes the run's own config.yaml; drop --config")
        config_file = str(saved)
        overrides.setdefault("logging.output", resume)
    config = load_config(config_file, overrides)
    if dry_run:  # the build's own stages up to the first model: what would refuse to start refuses here
        import torch

        from rlvr.train.stages import check_config

        click.echo(dump_yaml(check_config(config, torch.device(_auto_device()))), nl=False)
        return
    # under torchrun (RANK set) rank 0 speaks for the run; the other ranks report only problems
    rank = int(os.environ.get("RANK", "0"))
    level = logging.DEBUG if verbose else logging.INFO if rank == 0 else logging.WARNING
    logging.basicConfig(
        level=level, format=f"%(asctime)s %(levelname)s %(name)s{f' [rank {rank}]' if rank else ''}: %(message)s"
    )
    quiet_engines(verbose)
    from rlvr.train.trainer import Trainer

    # only rank 0 writes into the run folder; other ranks' engines keep their (ERROR-level) output on the console
    quiet = not verbose and rank == 0
    trainer = Trainer(config, resume=resume, engine_log=Path(config.logging.output) / "engine.log" if quiet else None)
    trainer.train()
    if rank == 0:
        from rlvr.train.summary import read_summary, summary_table

        summary = read_summary(trainer.out)
        if summary is not None:
            click.echo(summary_table(summary))
        click.echo(f"run folder: {trainer.out}")
    if trainer.stop.received is not None:
        raise SystemExit(
            128 + int(trainer.stop.received)
        )  # 130 after Ctrl-C, 143 after SIGTERM: stopped, checkpoint saved


def _default_verifier(overrides: dict[str, Any], config_file: str | None) -> None:
    """`--dataset reasoning_gym:...` with no --verifier (and no config file to name one): the dataset's own
    verifier, as `rlvr eval` picks it (DEFAULT_VERIFIER), not the config's `math`."""
    from rlvr.cli.eval import DEFAULT_VERIFIER

    head = str(overrides.get("data.dataset", "")).partition(":")[0]
    if head in DEFAULT_VERIFIER and "reward.verifier" not in overrides and config_file is None:
        overrides["reward.verifier"] = DEFAULT_VERIFIER[head]


def quiet_engines(verbose: bool) -> None:
    """Without -v, the engines' own logs (vLLM's INFO and WARNING lines, weight-loading bars) stay out
    of the console; rlvr's lines (start-up, alarms, progress, summary) remain."""
    if verbose:
        return
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    for name in ("vllm", "transformers", "torch.distributed", "huggingface_hub", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _auto_device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


#: panels of `rlvr plot`: title -> metrics drawn in it (missing ones are skipped)
PANELS = {
    "reward": ("reward_mean", "accuracy"),
    "held-out accuracy": ("eval_accuracy",),
    "completion length": ("completion_len_mean", "completion_len_max"),
    "signal": ("zero_variance_fraction", "truncation_rate", "clip_fraction"),
    "policy": ("entropy", "kl"),
    "optimizer": ("grad_norm", "lr"),
    "step time (s)": ("time_generate", "time_verify", "time_learn", "time_sync", "time_tool"),
}


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False), default=None, help="PNG path [default: RUN_DIR/curves.png]."
)
def plot(run_dir: str, output: str | None) -> None:
    """Write PNG learning curves of a training run from RUN_DIR/metrics.jsonl (and eval.jsonl)."""
    from rlvr.train.monitor import read_metrics

    steps = read_metrics(run_dir)
    if not steps:
        raise InputError(f"{run_dir}: no metrics.jsonl records (not a training run folder, or no step finished)")
    target = Path(output) if output else Path(run_dir) / "curves.png"
    evals = [r for r in read_metrics(run_dir, "eval.jsonl") if r.get("eval_tool") != "off"]  # with the run's tool
    plot_metrics(steps, evals, target, title=str(run_dir))
    click.echo(f"wrote {target}")


def plot_metrics(steps: list[dict], evals: list[dict], target: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = {"eval_accuracy": evals}
    panels = [
        (name, keys) for name, keys in PANELS.items() if any(k in r for k in keys for r in records.get(keys[0], steps))
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.4 * len(panels)), sharex=True, squeeze=False)
    for ax, (name, keys) in zip(axes[:, 0], panels, strict=True):
        for key in keys:
            source = records.get(key, steps)
            points = [(r["step"], r[key]) for r in source if r.get(key) is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=key)
            if key == "eval_accuracy":
                bands = [(r["step"], *r["eval_ci95"]) for r in source if r.get("eval_ci95")]
                if bands:
                    xs, lo, hi = zip(*bands, strict=True)
                    ax.fill_between(xs, lo, hi, alpha=0.2, label="95% CI")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)
    plt.close(fig)
