"""Generation engines (hf, vllm) behind one `generate(prompts, n, sampling) -> list[Rollout]`."""

from rlvr.rollout.base import (
    CAPABILITIES,
    Engine,
    SamplingConfig,
    TokenPrompt,
    capabilities,
    create_engine,
    normalize_state_dict,
    resolve_kind,
    vllm_available,
)

__all__ = [
    "CAPABILITIES",
    "Engine",
    "SamplingConfig",
    "TokenPrompt",
    "capabilities",
    "create_engine",
    "normalize_state_dict",
    "resolve_kind",
    "vllm_available",
]
