"""The vLLM engine (in-process `vllm.LLM`, sampled-token logprobs, checked in-place weight sync), its KV-cache
sizing, and the CPU sleep that frees its weights and KV cache while the learner runs."""

from rlvr.rollout.vllm.engine import PROBE_PROMPT, VLLMEngine
from rlvr.rollout.vllm.sizing import kv_budget, kv_cache_gib
from rlvr.rollout.vllm.sleep import SLEEP_LEVELS

__all__ = ["PROBE_PROMPT", "SLEEP_LEVELS", "VLLMEngine", "kv_budget", "kv_cache_gib"]
