"""How an LLM judge generates its replies: greedy, batched, in this process, on the engines generation uses
(`hf`: transformers' generate; `vllm`: an in-process `vllm.LLM`). `rlvr.verifiers.judge` picks one by name."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = ["JUDGE_ENGINES", "HFJudgeEngine", "JudgeEngine", "Reply", "VLLMJudgeEngine", "chat_text"]


@dataclass(frozen=True)
class Reply:
    """One judge reply: its text and what it cost in tokens."""

    text: str
    prompt_tokens: int
    new_tokens: int


class JudgeEngine(Protocol):
    """Replies to judge prompts (user-turn texts), one per prompt, greedy, in order."""

    def replies(self, prompts: Sequence[str], prefix: str) -> list[Reply]: ...


def chat_text(tokenizer: Any, prompt: str, prefix: str) -> str:
    """The prompt as the judge's user turn (its chat template's generation prompt added), or the prompt
    alone without a template, followed by `prefix`: the start the judge's reply is given."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    else:
        text = f"{prompt}\n\n"
    return text + prefix


def _device(choice: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if choice == "auto" else choice


class HFJudgeEngine:
    """transformers' `generate`, greedy, `batch_size` prompts at a time (left-padded)."""

    def __init__(self, path: Path, *, max_new_tokens: int, batch_size: int, device: str = "auto"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = _device(device)
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.net = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(self.device).eval()
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size

    def replies(self, prompts: Sequence[str], prefix: str) -> list[Reply]:
        import torch

        texts = [chat_text(self.tokenizer, p, prefix) for p in prompts]
        out: list[Reply] = []
        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                texts[start : start + self.batch_size], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(self.device)
            with torch.inference_mode():
                ids = self.net.generate(
                    **batch, do_sample=False, max_new_tokens=self.max_new_tokens, pad_token_id=pad, eos_token_id=eos
                )
            prompt_lengths = batch["attention_mask"].sum(dim=1).tolist()
            for row, used in zip(ids[:, batch["input_ids"].shape[1] :].tolist(), prompt_lengths, strict=True):
                new = row[: row.index(eos) + 1] if eos in row else row
                text = self.tokenizer.decode(new, skip_special_tokens=True)
                out.append(Reply(text, int(used), len(new)))
        return out


class VLLMJudgeEngine:
    """An in-process `vllm.LLM`, greedy; all prompts in one call (vLLM batches them itself)."""

    def __init__(self, path: Path, *, max_new_tokens: int, batch_size: int, device: str = "auto"):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # as the rollout engine: in this process
        import vllm

        on_cpu = _device(device) == "cpu"
        options: dict[str, Any] = {"enforce_eager": on_cpu, "max_num_seqs": batch_size}
        if on_cpu and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            options["kv_cache_memory_bytes"] = 2**30  # vLLM-CPU's 4 GiB default is a lot beside a policy
        elif not on_cpu:
            options["gpu_memory_utilization"] = 0.2  # beside the policy's engine and learner
        self.llm = vllm.LLM(model=str(path), **options)
        self.tokenizer = self.llm.get_tokenizer()
        self.sampling = vllm.SamplingParams(temperature=0.0, max_tokens=max_new_tokens)

    def replies(self, prompts: Sequence[str], prefix: str) -> list[Reply]:
        texts = [chat_text(self.tokenizer, p, prefix) for p in prompts]
        outputs = self.llm.generate(texts, self.sampling, use_tqdm=False)
        return [Reply(o.outputs[0].text, len(o.prompt_token_ids or []), len(o.outputs[0].token_ids)) for o in outputs]


#: judge engine kind -> class (the kinds of rlvr.names.ENGINES)
JUDGE_ENGINES: dict[str, type] = {"hf": HFJudgeEngine, "vllm": VLLMJudgeEngine}
