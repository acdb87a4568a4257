"""`reward_model`: a Hugging Face sequence-classification reward model as a scorer, and the runner that
is scored in the parent process, batched (see `rlvr.verifiers.scoring`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlvr.types import Example, Score, Status
from rlvr.verifiers.base import Verifier
from rlvr.verifiers.registry import register

__all__ = ["RewardModel", "reward_inputs", "reward_text"]


def reward_text(tokenizer: Any, prompt: str, completion: str) -> str:
    """What a reward model reads (in training, `rlvr train --algorithm rm`, and in scoring): the problem
    as the user turn and the completion as the assistant turn of its chat template, or
    "problem\n\ncompletion" without one."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
        return str(tokenizer.apply_chat_template(messages, tokenize=False))
    return f"{prompt}\n\n{completion}"


def reward_inputs(tokenizer: Any, texts: Sequence[str], max_length: int) -> Any:
    """`texts` tokenized for a sequence-classification head: padded on the right and cut at `max_length`
    (the head reads the last token that is not padding)."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        return tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True, max_length=max_length)
    finally:
        tokenizer.padding_side = side


def _device(choice: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if choice == "auto" else choice


@register("reward_model")
class RewardModel(Verifier):
    """A Hugging Face sequence-classification reward model's score of (problem, completion); needs no gold."""

    needs_gold = False
    #: scored in the parent process, in batches, never pickled into runner workers (see HybridRunner)
    in_process = True

    def __init__(
        self, model: str = "", batch_size: int = 8, device: str = "auto", max_length: int = 2048, dtype: str = "auto"
    ):
        if not model:
            raise ValueError("reward_model needs model=PATH_OR_HUB_ID")
        if int(batch_size) < 1:
            raise ValueError(f"reward_model batch_size must be >= 1, got {batch_size}")
        self.model, self.batch_size, self.max_length = str(model), int(batch_size), int(max_length)
        self.device, self.dtype = str(device), str(dtype)
        self._loaded: tuple[Any, Any] | None = None

    def __reduce__(self):
        raise TypeError(
            "reward_model holds a torch model in this process and is not sent to worker processes; "
            "score it with rlvr.verifiers.scoring.runner_for(verifier, ...) (HybridRunner)"
        )

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            from rlvr.models import resolve_model

            path = str(resolve_model(self.model))
            device = _device(self.device)
            dtype = {
                "auto": torch.bfloat16 if device.startswith("cuda") else torch.float32,
                "float32": torch.float32,
                "bfloat16": torch.bfloat16,
                "float16": torch.float16,
            }[self.dtype]
            tokenizer = AutoTokenizer.from_pretrained(path)
            net = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype).to(device).eval()
            if net.config.num_labels not in (1, 2):
                raise ValueError(
                    f"reward_model {self.model}: {net.config.num_labels} labels; a reward model has 1 "
                    "(the score) or 2 (score = logit of label 1 - logit of label 0)"
                )
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            net.config.pad_token_id = tokenizer.pad_token_id  # the classifier reads the last non-pad token
            tokenizer.padding_side = "right"
            self._loaded = (tokenizer, net)
        return self._loaded

    def warmup(self) -> None:
        self._load()

    def text(self, tokenizer: Any, completion: str, example: Example) -> str:
        """What the reward model reads: the problem as the user turn and the completion as the
        assistant turn of its chat template, or "problem\\n\\ncompletion" without one."""
        if getattr(tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": example.prompt}, {"role": "assistant", "content": completion}]
            return tokenizer.apply_chat_template(messages, tokenize=False)
        return f"{example.prompt}\n\n{completion}"

    def rewards(self, completions: Sequence[str], examples: Sequence[Example]) -> list[float]:
        """One float per pair, `batch_size` pairs per forward pass."""
        import torch

        tokenizer, net = self._load()
        texts = [self.text(tokenizer, c, e) for c, e in zip(completions, examples, strict=True)]
        out: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            batch = reward_inputs(tokenizer, texts[start : start + self.batch_size], self.max_length).to(net.device)
            with torch.inference_mode():
                logits = net(**batch).logits.float()
            values = logits[:, 0] if logits.shape[1] == 1 else logits[:, 1] - logits[:, 0]
            out.extend(values.tolist())
        return out

    def score_batch(self, completions: Sequence[str], examples: Sequence[Example]) -> list[Score]:
        # status: correct when the model prefers the completion (score > 0), so counts stay meaningful
        return [
            Score(r, Status.CORRECT if r > 0 else Status.WRONG, {"reward_model": r, "model": self.model})
            for r in self.rewards(completions, examples)
        ]

    def score(self, completion: str, example: Example) -> Score:
        return self.score_batch([completion], [example])[0]
