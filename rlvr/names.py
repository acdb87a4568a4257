"""The one table of names: every name a user may choose (algorithm, engine, prompt style, sandbox, ...).

The config's allowed values (`rlvr.config.CHOICES`), the CLI's click choices and the registries
(`rlvr.algorithms.ALGORITHMS`, `rlvr.rollout.base.ENGINES`, `rlvr.sandboxes.BACKENDS`) all read these
tables; none lists a name of its own. This module imports nothing heavy (`rlvr train --dry-run` and
`rlvr --help` stay free of torch), so an implementation is named by "module:attribute" and imported
only when chosen.

To add one:
- an algorithm: copy rlvr/algorithms/rft.py to rlvr/algorithms/NAME.py, then add the line
  `"NAME": "rlvr.algorithms.NAME:ClassName"` to ALGORITHMS below. `--algorithm NAME`, the config's
  `algorithm: NAME` and `rlvr.algorithms.create_algorithm` then know it (its auto sizes default to
  GRPO's until it has an entry in rlvr.config.defaults.AUTO_BY_ALGORITHM).
- a rollout engine: copy rlvr/rollout/hf.py to rlvr/rollout/NAME.py (an `Engine`), then add
  `"NAME": "rlvr.rollout.NAME:ClassName"` to ENGINES.
- a sandbox backend: copy rlvr/sandboxes/local.py to rlvr/sandboxes/NAME.py (a `Sandbox`), then add
  `"NAME": "rlvr.sandboxes.NAME:ClassName"` to SANDBOXES (`auto` tries them in this order).
- a prompt style: write a `Style` (a render function and its stops) in rlvr/data/templates.py, as CHAT
  there, then add `"NAME": "rlvr.data.templates:NAME"` to STYLES below (a style the trainer cannot use
  goes into EVAL_ONLY_STYLES too).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ALGORITHMS",
    "ARITH_DIFFICULTIES",
    "AUTO",
    "DEVICES",
    "DPO_LOSSES",
    "DTYPES",
    "ENGINES",
    "ENGINE_CHOICES",
    "EVAL_ONLY_STYLES",
    "GRPO_ADVANTAGES",
    "GRPO_KL_ESTIMATORS",
    "GRPO_LOSSES",
    "GRPO_RATIO_LEVELS",
    "GRPO_VOID_TURNS",
    "KTO_LOSSES",
    "NO_ENV",
    "RM_PAIRINGS",
    "SANDBOXES",
    "SANDBOX_CHOICES",
    "SCHEDULES",
    "SFT_REDUCTIONS",
    "STRATEGIES",
    "STYLES",
    "TRAIN_STYLES",
    "TRUNCATED",
    "WEIGHT_TRANSPORTS",
    "load",
]

#: the choice that lets rlvr pick (per device, or the first that works here)
AUTO = "auto"

#: training algorithms: name -> "module:class" (rlvr.algorithms.create_algorithm)
ALGORITHMS: dict[str, str] = {
    "grpo": "rlvr.algorithms.grpo:GRPO",
    "sft": "rlvr.algorithms.sft:SFT",
    "rft": "rlvr.algorithms.rft:RFT",
    "dpo": "rlvr.algorithms.dpo:DPO",
    "kto": "rlvr.algorithms.kto:KTO",
    "orpo": "rlvr.algorithms.orpo:ORPO",
    "simpo": "rlvr.algorithms.simpo:SimPO",
    "cpo": "rlvr.algorithms.cpo:CPO",
    "distill": "rlvr.algorithms.distill:Distill",
    "rm": "rlvr.algorithms.rm:RM",
}

#: rollout engines: kind -> "module:class" (rlvr.rollout.base.create_engine); auto = vllm when importable
ENGINES: dict[str, str] = {
    "hf": "rlvr.rollout.hf:HFEngine",
    "vllm": "rlvr.rollout.vllm.engine:VLLMEngine",
    "vllm-server": "rlvr.rollout.vllm.server:ServerEngine",
}
ENGINE_CHOICES: tuple[str, ...] = (AUTO, *ENGINES)

#: how the trainer's weights reach a vllm-server engine: name -> "module:class" (rlvr.rollout.vllm.transport)
WEIGHT_TRANSPORTS: dict[str, str] = {
    "file": "rlvr.rollout.vllm.transport:FileTransport",
    "nccl": "rlvr.rollout.vllm.transport:NcclTransport",
}

#: sandbox backends: name -> "module:class" (rlvr.sandboxes.get_sandbox); auto = the first that works
#: here, in this order, so the strongest isolation comes first and the fallback last
SANDBOXES: dict[str, str] = {
    "docker": "rlvr.sandboxes.docker:DockerSandbox",
    "bwrap": "rlvr.sandboxes.bwrap:BwrapSandbox",
    "local": "rlvr.sandboxes.local:LocalSandbox",
}
SANDBOX_CHOICES: tuple[str, ...] = (AUTO, *SANDBOXES)

#: prompt styles: name -> "module:Style" (rlvr.data.templates.STYLES is built from this table)
STYLES: dict[str, str] = {
    "chat": "rlvr.data.templates:CHAT",
    "fewshot": "rlvr.data.templates:FEWSHOT",
    "plain": "rlvr.data.templates:PLAIN",
    "lm-eval": "rlvr.data.templates:LM_EVAL",
}
#: styles that reproduce another tool's per-benchmark task: `rlvr eval` only
EVAL_ONLY_STYLES: tuple[str, ...] = ("lm-eval",)
TRAIN_STYLES: tuple[str, ...] = tuple(s for s in STYLES if s not in EVAL_ONLY_STYLES)

#: compute / weight dtypes by name (auto: chosen per device)
DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")

#: multi-process training strategies (rlvr.distributed.wrapping.STRATEGIES)
STRATEGIES: tuple[str, ...] = ("ddp", "fsdp2")

#: where training runs
DEVICES: tuple[str, ...] = ("cpu", "cuda")

#: objectives' variants, implemented by the tables of rlvr.objectives (grpo.ADVANTAGES, grpo.LOSSES,
#: grpo.RATIOS, grpo.KL_ESTIMATORS, sft.REDUCTIONS, dpo.PAIR_LOSSES,
#: kto.KTO_LOSSES; tests/test_names.py checks they agree)
GRPO_ADVANTAGES: tuple[str, ...] = ("grpo", "dr_grpo", "rloo", "batch", "reinforce_pp", "reinforce_pp_baseline")
GRPO_LOSSES: tuple[str, ...] = ("grpo", "dapo", "dr_grpo", "cispo", "sapo", "gmpo")
GRPO_RATIO_LEVELS: tuple[str, ...] = ("token", "sequence")
GRPO_KL_ESTIMATORS: tuple[str, ...] = ("k1", "k2", "k3")
SFT_REDUCTIONS: tuple[str, ...] = ("token", "sequence")
DPO_LOSSES: tuple[str, ...] = ("sigmoid", "robust", "ipo", "hinge", "simpo")
KTO_LOSSES: tuple[str, ...] = ("kto", "apo_zero_unpaired")
#: how a reward model's sampled completions become pairs (rlvr.algorithms.rm.PAIRINGS)
RM_PAIRINGS: tuple[str, ...] = ("all", "one")

#: GRPO with an environment: trajectories with a void turn (no call, no answer) keep or mask their loss
GRPO_VOID_TURNS: tuple[str, ...] = ("keep", "mask")
#: `env.name` that means no environment (the single-turn path)
NO_ENV = "none"

#: what becomes of a completion cut at max_new_tokens (rlvr.algorithms.grpo)
TRUNCATED: tuple[str, ...] = ("keep", "mask", "penalty")
#: learning-rate schedules (rlvr.train)
SCHEDULES: tuple[str, ...] = ("cosine", "constant")
#: generated arithmetic problems' levels (rlvr.data.arith.DIFFICULTIES; a test checks they agree)
ARITH_DIFFICULTIES: tuple[str, ...] = ("easy", "medium", "hard", "expert")


def load(table: dict[str, str], name: str) -> Any:
    """The implementation of `name` in a "module:attribute" table, imported now (KeyError when unknown)."""
    module, _, attribute = table[name].partition(":")
    return getattr(importlib.import_module(module), attribute)
