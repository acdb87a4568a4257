"""rlvr's verifiers as a TRL reward function: `GRPOTrainer(reward_funcs=[reward_function("math")], ...)`.

Each call scores the batch through rlvr's runner (worker processes, hard deadlines, statuses, the
failure-rate check), and reports the share of each status through the `log_metric` keyword TRL gives
reward functions (logged beside `rewards/<name>/mean`) and each completion's status through `log_extra`
(a column of the completions table). TRL is never imported here: TRL calls this."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rlvr.errors import InputError
from rlvr.integrations.scorer import Scorer
from rlvr.types import FAILURE_STATUSES, Example, Score, Status
from rlvr.verifiers.base import Verifier
from rlvr.verifiers.feed import Tally
from rlvr.verifiers.math.gold import gold_text

__all__ = ["GOLD_COLUMNS", "RewardFunction", "completion_text", "reward_function"]

log = logging.getLogger(__name__)

#: keywords TRL gives every reward function that are not dataset columns
TRAINER_KEYWORDS = frozenset({"trainer_state", "log_extra", "log_metric", "environments"})
#: the dataset columns read as the gold, the first one present wins (TRL's math sets call it `solution`)
GOLD_COLUMNS = ("answer", "solution")


def reward_function(
    spec: str | Verifier = "math",
    *,
    name: str | None = None,
    workers: int | None = None,
    timeout: float | None = 5.0,
    max_failure_rate: float | None = 0.05,
) -> RewardFunction:
    """A TRL `reward_funcs` entry scoring with the verifier `spec` names (`"math"`,
    `"math+0.1*think_format"`, `"code"`, ...) or a `Verifier` object. `workers`, `timeout` and
    `max_failure_rate` are the runner's (`rlvr.verifiers.runner.Runner`). A bad spec raises here."""
    return RewardFunction(spec, name=name, workers=workers, timeout=timeout, max_failure_rate=max_failure_rate)


class RewardFunction:
    """Called by TRL with `prompts`, `completions` (plain strings or lists of chat messages),
    `completion_ids` and one keyword per dataset column; returns one reward per completion.

    The gold is the `answer` column, else `solution` (read through rlvr's gold parser, so a MATH
    solution's last `\\boxed{}` is its answer); every column goes into the example's metadata (what
    the `code` verifier's tests come in). A completion whose verdict failed (status timeout or error)
    gets `None`: TRL leaves it out of the reward instead of reading it as a wrong answer, and it is
    counted, logged (`rlvr/<name>/error`), warned about, and stops training through
    `VerifierFailureRate` when more than `max_failure_rate` of a batch failed.

    Logged per call: `rlvr/<name>/<status>`, the share of the batch's verdicts with that status (TRL
    averages them over its logging interval). `totals` holds the running counts, `last_scores` the
    last batch's `Score`s."""

    def __init__(self, spec: str | Verifier, *, name: str | None = None, **runner_options: Any):
        self.scorer = Scorer(spec, **runner_options)
        # TRL names a reward function by its `__name__`: rewards/<name>/mean
        self.__name__ = name or "rlvr_" + re.sub(r"\W+", "_", self.scorer.verifier.name).strip("_")
        self.last_scores: list[Score] = []

    @property
    def totals(self) -> Tally:
        return self.scorer.totals

    def close(self) -> None:
        """Stop the verifier's worker processes (they also stop when this object is collected)."""
        self.scorer.close()

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        columns = {k: v for k, v in kwargs.items() if k not in TRAINER_KEYWORDS}
        examples = [self._example(i, prompt, columns) for i, prompt in enumerate(prompts)]
        texts = [completion_text(c) for c in completions]
        scores = self.scorer.score(texts, examples)
        self.last_scores = scores
        self._report(scores, kwargs)
        return [None if s.status in FAILURE_STATUSES else s.reward for s in scores]

    def _example(self, index: int, prompt: Any, columns: Mapping[str, Sequence[Any]]) -> Example:
        row = {k: values[index] for k, values in columns.items()}
        gold_column = next((c for c in GOLD_COLUMNS if c in row), None)
        fields = {**row, "answer": row[gold_column]} if gold_column else row
        if why := self.scorer.verifier.missing_gold(fields):
            given = ", ".join(sorted(columns)) or "none"
            raise InputError(
                f"reward function {self.__name__}: dataset row {index}: {why} "
                f"(the gold is read from the column {' or '.join(map(repr, GOLD_COLUMNS))}; columns given: {given})"
            )
        answer = gold_text(fields["answer"]) if "answer" in fields else None
        metadata = {k: v for k, v in row.items() if k != "answer"}
        return Example(str(index), message_text(prompt, role="user"), answer, metadata)

    def _report(self, scores: list[Score], kwargs: Mapping[str, Any]) -> None:
        counts = Tally.of(scores).counts
        if callable(log_metric := kwargs.get("log_metric")):
            for status in Status:
                log_metric(f"rlvr/{self.__name__}/{status.value}", counts[status.value] / len(scores))
        if callable(log_extra := kwargs.get("log_extra")):
            log_extra(f"{self.__name__}_status", [s.status.value for s in scores])
        failed = [s for s in scores if s.status in FAILURE_STATUSES]
        if failed:
            first = failed[0]
            log.warning(
                "%s: %d of %d verdicts failed (timeout %d, error %d), rewarded None; first: %s %s",
                self.__name__,
                len(failed),
                len(scores),
                counts[Status.TIMEOUT.value],
                counts[Status.ERROR.value],
                first.status.value,
                first.details.get("error", ""),
            )


def message_text(message: Any, *, role: str) -> str:
    """The text of a prompt or completion: a string as is; for a list of chat messages, the last
    `role` message's text (a prompt: the user's question) or, with role "assistant", every assistant
    message's text joined (a completion with tool calls keeps the model's own turns only)."""
    if isinstance(message, str):
        return message
    if isinstance(message, Mapping):
        message = [message]
    if not isinstance(message, Sequence):
        raise TypeError(f"expected a string or a list of chat messages, got {type(message).__name__}")
    turns = [_content(m) for m in message if m.get("role", "assistant") == role]
    if role == "assistant":
        return "\n".join(turns)
    return turns[-1] if turns else "\n".join(_content(m) for m in message)


def completion_text(completion: Any) -> str:
    """What the verifier scores: the completion's text, or its assistant messages' text."""
    return message_text(completion, role="assistant")


def _content(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    # multimodal messages: a list of parts, the text ones {"type": "text", "text": ...}
    return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text")
