"""The training configuration's sections: one dataclass each (model, data, rollout, reward, grpo, sft, rft,
dpo, kto, orpo, simpo, cpo, rm, distill, optimizer, logging, checkpoint, eval, distributed, env) under `TrainConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "CPOConfig",
    "CheckpointConfig",
    "DPOConfig",
    "DataConfig",
    "DistillConfig",
    "DistributedConfig",
    "EnvConfig",
    "EvalConfig",
    "GRPOConfig",
    "KTOConfig",
    "LoggingConfig",
    "ModelConfig",
    "ORPOConfig",
    "OptimizerConfig",
    "RFTConfig",
    "RMConfig",
    "RewardConfig",
    "RolloutConfig",
    "SFTConfig",
    "SimPOConfig",
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
    # 4bit = QLoRA: the frozen base through bitsandbytes (nf4, double quantization, computing in model.dtype)
    # under float32 LoRA adapters (needs lora_r > 0; refused where bitsandbytes has no 4-bit backend)
    quantization: str = "none"
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
    dataset: str = "arith"  # arith, gsm8k, math, reasoning_gym:TASK[:key=value,...], or a .jsonl/.json/.parquet file
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
    # vllm's weights; auto = model.dtype. bfloat16 under a float32 learner generates faster on CPU; re-cast
    # from the float32 masters at each sync, it shows small updates once they add up (metric engine_lag;
    # alarm sampler_mismatch when the sampler's logprobs drift); hf generates with the policy itself
    dtype: str = "auto"
    kv_cache_gib: float | None = None  # vllm on CPU: None = room for one step's rollouts at max_model_len
    # vllm-server: the server's http://HOST:PORT (started with `rlvr serve`); under torchrun a comma-separated
    # list, rank r generating on the (r mod count)-th
    url: str | None = None
    transport: str = "file"  # vllm-server: how weights reach it: file (a folder it reads) or nccl (GPUs)
    # vllm-server, file transport: a folder the server reads at this same path (rank r writes in its rank-r/);
    # None = a temporary one (one machine only)
    weights_dir: str | None = None
    server_timeout: float = 300.0  # vllm-server: seconds one request may take before it is retried
    server_retries: int = 4  # vllm-server: retries (with backoff) of a failed request before the run stops
    # rollout.async (the key; `async_` only here, async being a Python keyword): 1 = one step off-policy, step
    # t+1 generated while step t learns (an engine with its own weights and sampler logprobs: vllm, vllm-server;
    # TIS corrects the staleness, metric `staleness`); 0 = generate, then learn
    async_: int = 0


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
    # grpo, dr_grpo, rloo, batch; reinforce_pp(_baseline): per token, β·KL folded into the reward, whitened
    # over the batch (rlvr.objectives.grpo_family)
    advantage: str = "grpo"
    # grpo (per-sequence mean), dapo (token mean), dr_grpo (constant); cispo, sapo, gmpo (their own terms,
    # rlvr.objectives.grpo_family; gmpo reads the clip eps as log-space bounds); auto: dapo on CPU, grpo on GPU
    loss: str | None = None
    ratio_level: str = "token"  # token, or sequence (GSPO)
    clip_eps_low: float = 0.2
    clip_eps_high: float = 0.28  # clip-higher (DAPO); cispo: the importance weight's cap is 1 + this
    sapo_tau_pos: float = 1.0  # sapo: the gate's temperature for tokens with A > 0
    sapo_tau_neg: float = 1.05  # sapo: for A <= 0
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
    loss: str = "sigmoid"  # sigmoid (DPO), robust (rDPO), ipo, hinge or simpo (rlvr.objectives.dpo)
    label_smoothing: float = 0.0  # conservative DPO
    reference_free: bool = False  # no reference model: the reference logprobs are taken as 0
    gamma: float = 0.0  # target margin of the simpo loss


@dataclass
class KTOConfig:
    """Online: every sampled completion is labelled by its reward; offline: a preference file's rows unpaired."""

    beta: float = 0.1
    loss: str = "kto"  # kto, apo_zero_unpaired (rlvr.objectives.kto)
    threshold: float = 1.0  # online: a completion is desirable when its reward is at least this
    # λ_D; None = each step's undesirable/desirable count ratio (equal total weight, the paper's advice)
    desirable_weight: float | None = None
    undesirable_weight: float = 1.0  # λ_U


@dataclass
class ORPOConfig:
    beta: float = 0.1  # λ, the odds-ratio term's weight beside the NLL (rlvr.objectives.preference)


@dataclass
class SimPOConfig:
    beta: float = 2.0
    gamma: float = 1.0  # target reward margin
    label_smoothing: float = 0.0
    nll_weight: float = 0.0  # > 0: CPO-SimPO (an NLL term on the chosen completions)


@dataclass
class CPOConfig:
    beta: float = 0.1
    loss: str = "sigmoid"  # a DPO pair loss without a reference: sigmoid, robust, ipo, hinge, simpo
    label_smoothing: float = 0.0
    gamma: float = 0.0  # target margin of the simpo loss
    nll_weight: float = 1.0  # the chosen completions' token-mean NLL weight (TRL's cpo_alpha)


@dataclass
class DistillConfig:
    teacher: str | None = None  # the teacher causal LM (a folder, Hub id or .gguf); same tokenizer as the student


@dataclass
class RMConfig:
    """Reward-model training (`--algorithm rm`, rlvr.objectives.reward); a pair file's `margin` column: TRL's."""

    center_rewards_coefficient: float | None = None  # TRL's: + λ·mean((r_chosen + r_rejected)²); None = off
    max_length: int = 1024  # tokens a (prompt, completion) is cut at (TRL's default)
    held_out: float = 0.1  # a pair file without eval.dataset: the share of its rows held out (every k-th)
    # sampled pairs per prompt: all (every higher- vs lower-reward completion of distinct text: up to n²/4 from one
    # group) or one (DPO's: the first best vs the first worst)
    pairs: str = "all"


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
    micro_batch_size: int = 8  # sequences per forward/backward pass (padded rows, or packed under torchrun)
    # with packing in one process: a micro-batch takes whole groups (rows, when no prompt is shared) while they
    # hold at most this many tokens, in place of micro_batch_size rows: packed activations grow with tokens, and
    # fewer, larger matmuls run faster (benchmarks/RESULTS.md, "Packed rows"); 0: micro_batch_size rows
    micro_batch_tokens: int = 2048
    # run each group's prompt once in the learn forward and share its keys/values (with their
    # gradient) among the group's n completions; single process without gradient checkpointing
    share_prompt: bool = True
    # the learn pass runs a micro-batch's rows end to end in one sequence, each row attending to itself only,
    # instead of padding them to the longest prompt and completion (same logprobs and gradients in float64).
    # Off by default: 0.67x the learn pass's time, but over ten seeds the bfloat16 default run learned less with
    # it in 7 (in float32 both layouts take the identical trajectory; benchmarks/RESULTS.md, "Packed rows")
    packing: bool = False
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
    algorithm: str = "grpo"  # grpo, sft, rft, dpo, kto, orpo, simpo, cpo, rm, distill (rlvr.names.ALGORITHMS)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    rft: RFTConfig = field(default_factory=RFTConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    kto: KTOConfig = field(default_factory=KTOConfig)
    orpo: ORPOConfig = field(default_factory=ORPOConfig)
    simpo: SimPOConfig = field(default_factory=SimPOConfig)
    cpo: CPOConfig = field(default_factory=CPOConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    rm: RMConfig = field(default_factory=RMConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
