"""The training configuration's sections: one dataclass each (model, data, rollout, reward, grpo,
sft, rft, dpo, optimizer, logging, checkpoint, eval, distributed, env) under `TrainConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "CheckpointConfig",
    "DPOConfig",
    "DataConfig",
    "DistributedConfig",
    "EnvConfig",
    "EvalConfig",
    "GRPOConfig",
    "LoggingConfig",
    "ModelConfig",
    "OptimizerConfig",
    "RFTConfig",
    "RewardConfig",
    "RolloutConfig",
    "SFTConfig",
    "TrainConfig",
]


@dataclass
class ModelConfig:
    name: str = "HuggingFaceTB/SmolLM2-135M-Instruct"  # Hub id, local folder or .gguf file
    # compute dtype of forward/backward (autocast); auto: bfloat16 on GPU, on CPU what this CPU runs
    # fastest (bfloat16 only with AVX-512 BF16/AMX hardware and a measured speed-up: rlvr.learner.precision)
    dtype: str = "auto"
    # the weights the optimizer updates; float32 keeps updates of lr 1e-6 that bfloat16 rounds away.
    # Setting it to the compute dtype gives pure low-precision training (alarm updates_rounded_away)
    master_dtype: str = "float32"
    lora_r: int = 0  # 0 = full fine-tuning; > 0 = LoRA through peft with this rank
    lora_alpha: int | None = None  # None = 2 * lora_r
    lora_dropout: float = 0.0
    lora_target: str = "all-linear"  # peft target_modules (comma-separated names, or all-linear)
    gradient_checkpointing: bool = False
    # backward recomputes SwiGLU and RMSNorm intermediates instead of keeping them (rlvr.learner.lean_layers)
    lean_activations: bool = True
    # on CPU with glibc, malloc reuses freed tensor memory instead of unmapping it (rlvr.learner.allocator)
    keep_freed_memory: bool = True


@dataclass
class DataConfig:
    dataset: str = "arith"  # arith, gsm8k, math, or a .jsonl/.json/.parquet file
    split: str = "train"
    limit: int | None = None  # use only the first N training examples
    prompt_field: str | None = None  # for files: default problem/question/prompt
    answer_field: str = "answer"
    difficulty: str | None = None  # arith only: easy, medium, hard, expert; auto: easy on CPU, medium on GPU
    size: int = 5000  # arith only: number of generated training problems
    style: str = "chat"  # prompt template style (rlvr.data.templates): chat, fewshot, plain
    instruction: str | None = None  # None = the template's default instruction
    shuffle: bool = True
    # files with a `status` column (rlvr eval's samples.jsonl): train only on rows with this status
    # (offline rejection sampling); None = every row
    keep_status: str | None = "correct"


@dataclass
class RolloutConfig:
    engine: str = "auto"  # vllm, hf, or auto (vllm when installed)
    prompts_per_step: int | None = None  # auto: 4 on CPU, 64 on GPU (sft: examples per step)
    n: int | None = None  # completions per prompt (group size); auto: 8 on CPU, 8 on GPU
    temperature: float | None = None  # auto: 0.7 on CPU (small model, short runs), 1.0 on GPU
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int | None = None  # auto: 64 on CPU, 1024 on GPU
    max_model_len: int | None = None  # auto: prompt room + max_new_tokens
    gpu_memory_utilization: float = 0.35  # vllm on GPU: its share, the rest is the trainer's
    tensor_parallel_size: int = 1  # vllm: GPUs one engine is sharded over (under torchrun: consecutive ranks)
    # vllm's weights; auto = model.dtype. bfloat16 under a float32 learner generates faster on CPU,
    # but rounds away updates smaller than its precision (alarm weights_rounded_away); hf
    # generates with the policy itself
    dtype: str = "auto"
    kv_cache_gib: float | None = None  # vllm on CPU: None = room for one step's rollouts at max_model_len


@dataclass
class RewardConfig:
    verifier: str = "math"  # a verifier spec: math, math+0.1*boxed_format, ...
    timeout: float = 5.0  # seconds per verdict (the runner kills and counts slower ones)
    workers: int | None = None  # verifier processes; None = one per CPU core
    max_failure_rate: float = 0.2  # stop training when more verdicts than this time out or error
    truncated: str = "keep"  # completions cut at max_new_tokens: keep, mask (no gradient), penalty
    overlong_buffer: int = 32  # penalty: the last N tokens before the limit fade to -1 (DAPO)
    audit: bool = True  # run the shipped suite of known reward hacks through the verifier at start-up
    strict_audit: bool = False  # refuse to start when the audit finds a hack the reward pays for
    # a second grader (math_verify, any verifier spec, a reward model) that scores a sample of each step's
    # completions: metrics.jsonl gets verifier_disagreement_rate, the alarm verifier_disagreement watches it
    cross_check: str | None = None
    cross_check_samples: int = 16  # completions per generate round scored by reward.cross_check


@dataclass
class GRPOConfig:
    advantage: str = "grpo"  # grpo, dr_grpo, rloo, batch
    loss: str | None = (
        None  # grpo (per-sequence mean), dapo (token mean), dr_grpo (constant); auto: dapo on CPU, grpo on GPU
    )
    ratio_level: str = "token"  # token, or sequence (GSPO)
    clip_eps_low: float = 0.2
    clip_eps_high: float = 0.28  # clip-higher (DAPO)
    mu: int = 1  # inner optimizer iterations per batch, reusing the old logprobs
    beta: float = 0.0  # KL weight; 0 = no reference model is loaded at all
    kl_estimator: str = "k3"  # k1, k2, k3
    tis: str = "auto"  # truncated importance sampling vs the sampler: auto (vllm only), on, off
    tis_cap: float = 2.0
    dynamic_sampling: bool = False  # drop zero-variance groups and refill (DAPO)
    max_refill_rounds: int = 2  # dynamic sampling: extra generate rounds per step at most
    # with an environment: keep, or mask the loss of trajectories with a void turn (neither a tool call
    # nor an answer; SimpleTIR), their rewards staying in the group's statistics
    void_turns: str = "keep"


@dataclass
class SFTConfig:
    reduction: str = "token"  # token (mean over every response token) or sequence (mean of per-row means)


@dataclass
class RFTConfig:
    max_per_prompt: int = 4  # correct, distinct completions kept per prompt at most


@dataclass
class DPOConfig:
    beta: float = 0.1
    loss: str = "sigmoid"  # sigmoid (DPO), robust (rDPO) or ipo (rlvr.objectives.dpo)
    label_smoothing: float = 0.0  # conservative DPO
    reference_free: bool = False  # no reference model: the reference logprobs are taken as 0


@dataclass
class OptimizerConfig:
    lr: float | None = None  # auto: by algorithm and device (config.AUTO)
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    max_grad_norm: float = 1.0
    warmup_steps: int | None = None  # auto: 1 on CPU, 2 on GPU
    schedule: str = "cosine"  # cosine, constant
    min_lr_ratio: float = 0.1  # cosine floor as a fraction of lr
    max_steps: int | None = None  # auto: by algorithm and device (a CPU default run finishes in ~5 min)
    micro_batch_size: int = 8  # sequences per forward/backward pass
    # run each group's prompt once in the learn forward and share its keys/values (with their
    # gradient) among the group's n completions; single process without gradient checkpointing
    share_prompt: bool = True
    # groups whose advantages are all 0 (equal rewards) give no gradient when grpo.beta = 0:
    # skip their forward/backward (the optimizer still steps); single process
    skip_zero_advantage: bool = True


@dataclass
class LoggingConfig:
    output: str = "runs/train"
    wandb: bool = False
    wandb_project: str = "rlvr"
    progress: bool = True  # a rich progress bar with the live reward
    tensorboard: bool = True  # scalars to DIR/tensorboard (false where the tensorboard package is absent)
    samples_every: int = 10  # write one step's completions to samples.jsonl every N steps (0 = never)


@dataclass
class CheckpointConfig:
    every: int = 25  # steps between checkpoints (0 = only at the end and on Ctrl-C)
    keep_last: int = 2


@dataclass
class EvalConfig:
    # held-out accuracy before step 1 and after the last step, written to DIR/summary.json
    before_after: bool = True
    every: int = 0  # steps between further held-out evals (0 = none in between)
    dataset: str | None = None  # None = the training dataset's held-out split
    split: str = "test"
    limit: int = 200
    temperature: float = 0.0
    max_new_tokens: int | None = None  # None = rollout.max_new_tokens


@dataclass
class EnvConfig:
    """A multi-turn environment the policy calls while it reasons (rlvr.environments); None = single turn."""

    name: str | None = None  # None / "none" = today's single-turn path; python = the built-in tool
    max_turns: int = 4  # tool calls per trajectory at most
    timeout: float = 5.0  # seconds per call
    memory: int = 512  # MB per call
    max_output_chars: int = 1024  # a call's output is cut here
    backend: str = "auto"  # sandbox: auto (docker, else bwrap; never local), docker, bwrap, local


@dataclass
class DistributedConfig:
    strategy: str = "ddp"  # under torchrun: ddp (weights replicated) or fsdp2 (weights, grads, Adam state sharded)


@dataclass
class TrainConfig:
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda
    algorithm: str = "grpo"  # grpo, sft, rft, dpo (rlvr.names.ALGORITHMS)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    rft: RFTConfig = field(default_factory=RFTConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
