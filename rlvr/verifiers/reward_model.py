"""`reward_model`: a Hugging Face sequence-classification reward model as a scorer, and the runner that
puts it beside the process pool (the model lives once, in the parent; rule-based terms go to workers)."""

from __future__ import annotations

import time
from typing import Any, Sequence

from rlvr.types import Example, Score, Status
from rlvr.verifiers.base import Verifier, Weighted, combine
from rlvr.verifiers.registry import register
from rlvr.verifiers.runner import Runner, RunStats, VerifierFailureRate
from rlvr.verifiers.runner_worker import error_score

__all__ = ["HybridRunner", "RewardModel", "runner_for"]


def _device(choice: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if choice == "auto" else choice


@register("reward_model")
class RewardModel(Verifier):
    """A Hugging Face sequence-classification reward model's score of (problem, completion); needs no gold."""

    needs_gold = False
    #: scored in the parent process, in batches, never pickled into runner workers (see HybridRunner)
    in_process = True

    def __init__(self, model: str = "", batch_size: int = 8, device: str = "auto", max_length: int = 2048,
                 dtype: str = "auto"):
        if not model:
            raise ValueError("reward_model needs model=PATH_OR_HUB_ID")
        if int(batch_size) < 1:
            raise ValueError(f"reward_model batch_size must be >= 1, got {batch_size}")
        self.model, self.batch_size, self.max_length = str(model), int(batch_size), int(max_length)
        self.device, self.dtype = str(device), str(dtype)
        self._loaded: tuple[Any, Any] | None = None

    def __reduce__(self):
        raise TypeError("reward_model holds a torch model in this process and is not sent to worker processes; "
                        "score it with rlvr.verifiers.reward_model.runner_for(verifier, ...) (HybridRunner)")

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            from rlvr.models import resolve_model

            path = str(resolve_model(self.model))
            device = _device(self.device)
            dtype = {"auto": torch.bfloat16 if device.startswith("cuda") else torch.float32,
                     "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[self.dtype]
            tokenizer = AutoTokenizer.from_pretrained(path)
            net = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype).to(device).eval()
            if net.config.num_labels not in (1, 2):
                raise ValueError(f"reward_model {self.model}: {net.config.num_labels} labels; a reward model has 1 "
                                 "(the score) or 2 (score = logit of label 1 - logit of label 0)")
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
            batch = tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                              truncation=True, max_length=self.max_length).to(net.device)
            with torch.inference_mode():
                logits = net(**batch).logits.float()
            values = logits[:, 0] if logits.shape[1] == 1 else logits[:, 1] - logits[:, 0]
            out.extend(values.tolist())
        return out

    def score_batch(self, completions: Sequence[str], examples: Sequence[Example]) -> list[Score]:
        # status: correct when the model prefers the completion (score > 0), so counts stay meaningful
        return [Score(r, Status.CORRECT if r > 0 else Status.WRONG, {"reward_model": r, "model": self.model})
                for r in self.rewards(completions, examples)]

    def score(self, completion: str, example: Example) -> Score:
        return self.score_batch([completion], [example])[0]


def _parts(verifier: Verifier) -> tuple[tuple[float, Verifier], ...]:
    return verifier.parts if isinstance(verifier, Weighted) else ((1.0, verifier),)


def runner_for(verifier: Verifier, **runner_options: Any) -> Any:
    """A `Runner` for `verifier`, or a `HybridRunner` when any of its terms must run in this process."""
    if any(getattr(v, "in_process", False) for _, v in _parts(verifier)):
        return HybridRunner(verifier, **runner_options)
    return Runner(verifier, **runner_options)


class HybridRunner:
    """Scores a spec whose terms run in two places, with Runner's interface (`score`, `last_stats`,
    context manager). Terms marked `in_process` (reward models) are scored here, batched, by one
    model on this process's CPU/GPU; every other term goes to a `Runner`'s worker processes with
    their hard deadlines. The parts are then combined exactly as `Weighted` combines them.

    Why not a model per worker: each worker would hold its own copy of the weights (N× the memory),
    load it N times, and compete with the policy for the GPU; batching across the whole batch is
    also what makes a neural scorer fast. A neural forward pass needs no sandbox or deadline kill:
    it cannot hang on adversarial text the way sympy can. An exception in it makes every item of
    the batch an `error` (counted, never a silent 0)."""

    def __init__(self, verifier: Verifier, *, workers: int | None = None, timeout: float | None = 5.0,
                 max_failure_rate: float | None = 0.05, **options: Any):
        self.verifier, self.max_failure_rate = verifier, max_failure_rate
        self.parts = _parts(verifier)
        self.local = [i for i, (_, v) in enumerate(self.parts) if getattr(v, "in_process", False)]
        pool = tuple(p for i, p in enumerate(self.parts) if i not in self.local)
        self.runner = Runner(Weighted(pool), workers=workers, timeout=timeout, max_failure_rate=None,
                             **options) if pool else None
        self.last_stats: RunStats | None = None

    def __enter__(self) -> "HybridRunner":
        if self.runner is not None:
            self.runner.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()

    def score(self, completions: Sequence[str], examples: Sequence[Example]) -> list[Score]:
        start = time.perf_counter()
        n = len(completions)
        pooled = self._pool_scores(completions, examples)
        local = {i: self._local_scores(self.parts[i][1], completions, examples) for i in self.local}
        scores = []
        for k in range(n):
            parts = [(w, v, local[i][k] if i in local else pooled[k].pop(0)) for i, (w, v) in enumerate(self.parts)]
            scores.append(parts[0][2] if not isinstance(self.verifier, Weighted) else combine(parts))
        counts = {s.value: sum(x.status == s for x in scores) for s in Status}
        self.last_stats = RunStats(n, counts, time.perf_counter() - start,
                                   self.runner.workers if self.runner else 0,
                                   sum(s.reward for s in scores) / n if n else 0.0)
        if self.max_failure_rate is not None and n and self.last_stats.failure_rate > self.max_failure_rate:
            raise VerifierFailureRate(self.verifier.name, self.last_stats, self.max_failure_rate, scores)
        return scores

    def _pool_scores(self, completions: Sequence[str], examples: Sequence[Example]) -> list[list[Score]]:
        """Per item, the pool terms' scores in spec order (a killed item gives its failure to each)."""
        if self.runner is None:
            return [[] for _ in completions]
        width = len(self.parts) - len(self.local)
        out = []
        for score in self.runner.score(completions, examples):
            components = list(score.details.get("components", {}).values())
            if len(components) == width:
                out.append([Score(c["reward"], Status(c["status"]), c["details"]) for c in components])
            else:  # the whole item timed out or its worker died
                out.append([score] * width)
        return out

    @staticmethod
    def _local_scores(verifier: Verifier, completions: Sequence[str], examples: Sequence[Example]) -> list[Score]:
        try:
            return list(verifier.score_batch(completions, examples))
        except Exception as err:  # counted as errors, never a silent 0
            return [error_score(err)] * len(completions)
