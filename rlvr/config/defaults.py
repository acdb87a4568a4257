"""What the config's "auto" (None) values become: per device (CPU or GPU), then per algorithm."""

from __future__ import annotations

from typing import Any

__all__ = ["AUTO", "AUTO_BY_ALGORITHM", "AUTO_WITH_ENV", "AUTO_WITH_ENV_BY_ALGORITHM"]

#: what "auto" (None) resolves to, by device: small enough for 2 CPU cores, or a GPU's worth. The CPU
#: values were picked from measured runs (README: "Why these defaults"); the GPU ones are production sizes.
AUTO: dict[str, dict[str, Any]] = {
    "cpu": {
        "rollout.prompts_per_step": 4,
        "rollout.n": 8,
        "rollout.max_new_tokens": 64,
        "rollout.temperature": 0.7,
        "data.difficulty": "easy",
        "grpo.loss": "dapo",
        "optimizer.lr": 5e-5,
        "optimizer.max_steps": 10,
        "optimizer.warmup_steps": 1,
    },
    "cuda": {
        "rollout.prompts_per_step": 64,
        "rollout.n": 8,
        "rollout.max_new_tokens": 1024,
        "rollout.temperature": 1.0,
        "data.difficulty": "medium",
        "grpo.loss": "grpo",
        "optimizer.lr": 1e-5,
        "optimizer.max_steps": 50,
        "optimizer.warmup_steps": 2,
    },
}

#: DPO's measured sizes (benchmarks/RESULTS.md, "Every algorithm's default run"), where the preference family starts
_DPO: dict[str, dict[str, Any]] = {
    "cpu": {"rollout.prompts_per_step": 16, "optimizer.lr": 3e-5, "optimizer.max_steps": 10},
    "cuda": {"optimizer.lr": 1e-6, "optimizer.max_steps": 50},
}

#: per algorithm, what differs from AUTO (applied first): SFT/RFT/DPO are supervised-style steps;
#: an algorithm without an entry takes AUTO as it is
AUTO_BY_ALGORITHM: dict[str, dict[str, dict[str, Any]]] = {
    "sft": {
        "cpu": {"rollout.prompts_per_step": 16, "optimizer.lr": 2e-5, "optimizer.max_steps": 20},
        "cuda": {"rollout.prompts_per_step": 64, "optimizer.lr": 1e-5, "optimizer.max_steps": 200},
    },
    "rft": {
        "cpu": {"rollout.prompts_per_step": 8, "optimizer.lr": 3e-5, "optimizer.max_steps": 10},
        "cuda": {"optimizer.lr": 1e-5, "optimizer.max_steps": 50},
    },
    "dpo": _DPO,
    # the preference family keeps DPO's sizes (the same pairs, or every completion for KTO): on CPU kto, orpo and
    # simpo gain +47.5, +45.5 and +37.5 points with them in 3-7 minutes (benchmarks/RESULTS.md, "preference family")
    "orpo": {"cpu": _DPO["cpu"], "cuda": {**_DPO["cuda"], "optimizer.lr": 5e-6}},
    "simpo": _DPO,
    "cpo": _DPO,
    "kto": {"cpu": {**_DPO["cpu"], "rollout.prompts_per_step": 8}, "cuda": _DPO["cuda"]},
    # measured on CPU (benchmarks/RESULTS.md, "Reward-model training"): pairwise accuracy 46% -> 68.7% on 374 held-out
    # pairs in 8.7 min (lr 2e-5 over 20 steps: 68.4% in 12.5 min); best-of-8 with the head +6.4 points over avg@8
    "rm": {
        "cpu": {"rollout.prompts_per_step": 16, "optimizer.lr": 5e-5, "optimizer.max_steps": 12},
        "cuda": {"rollout.prompts_per_step": 64, "optimizer.lr": 1e-5, "optimizer.max_steps": 100},
    },
}

#: with an environment (env.name set), what differs from AUTO (applied after AUTO_BY_ALGORITHM, before
#: AUTO): arith `expert` (4 terms, 3 digits, +-*: beyond a small model's head, easy with the tool), and
#: room for a cell, its output and the answer (model and tool tokens share max_new_tokens)
AUTO_WITH_ENV: dict[str, dict[str, Any]] = {
    "cpu": {"data.difficulty": "expert", "rollout.max_new_tokens": 96},
    "cuda": {"data.difficulty": "expert", "rollout.max_new_tokens": 2048},
}

#: with an environment, per algorithm (applied first): SFT is the cold start of the two-stage tool pipeline
#: (README: "Reasoning with tools"). Measured on CPU: 5 steps teach the protocol (0% -> 68.5% with the tool on
#: 200 held-out arith expert problems) and GRPO from there gains +31.5 points to 100%; 20 steps reach 100%
#: themselves and leave GRPO groups with no signal.
AUTO_WITH_ENV_BY_ALGORITHM: dict[str, dict[str, dict[str, Any]]] = {
    "sft": {"cpu": {"optimizer.max_steps": 5}},
}
