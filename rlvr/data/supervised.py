"""Supervised and preference data as `Example`s: prompt→response rows for SFT (TRL's prompt/completion
and chat `messages` formats, rlvr eval's samples.jsonl, worked solutions of gsm8k/math, worked arith
answers) and prompt/chosen/rejected rows for offline DPO.

The response an SFT row trains on is in `metadata["response"]`; a prompt that is already rendered
(chat messages, samples.jsonl) is in `metadata["rendered_prompt"]` and is used as is, otherwise the
run's template renders `Example.prompt` exactly as `rlvr eval` will.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlvr.errors import InputError
from rlvr.types import Example

__all__ = [
    "PREFERENCE_FIELDS",
    "boxed_response",
    "is_preference_file",
    "preference_examples",
    "preference_rows",
    "sft_examples",
]

PREFERENCE_FIELDS = ("prompt", "chosen", "rejected")
_CALCULATOR = re.compile(r"<<[^>]*>>")  # GSM8K's calculator annotations: 48/2=<<48/2=24>>24


def boxed_response(reasoning: str, answer: str) -> str:
    """A worked response that ends in the template's final-answer form (a box)."""
    reasoning = reasoning.strip()
    return (
        f"{reasoning}\nThe final answer is \\boxed{{{answer}}}."
        if reasoning
        else f"The final answer is \\boxed{{{answer}}}."
    )


def _gsm8k_response(example: Example) -> str:
    solution = _CALCULATOR.sub("", str(example.metadata["solution"]))
    return boxed_response(solution.rsplit("####", 1)[0], example.answer or "")


def _math_response(example: Example) -> str:
    return str(example.metadata["solution"]).strip()  # MATH's solutions already end in \boxed{}


def _arith_response(example: Example) -> str:
    expression = example.metadata["expression"]
    return boxed_response(f"We compute {expression} = {example.answer}.", example.answer or "")


#: benchmark -> how its row becomes a worked response
WORKED: dict[str, Callable[[Example], str]] = {
    "gsm8k": _gsm8k_response,
    "math": _math_response,
    "arith": _arith_response,
}


def _with_response(example: Example, response: str, rendered: str | None = None) -> Example:
    meta = {**example.metadata, "response": response}
    if rendered is not None:
        meta["rendered_prompt"] = rendered
    return Example(example.id, example.prompt, example.answer, meta)


def _text(value: Any, source: str, number: int, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):  # conversational
        return str(value[-1].get("content", ""))
    raise InputError(f"{source}: row {number}: field {field!r} must be text or a list of chat messages")


def _turn_text(messages: list[dict[str, Any]]) -> str:
    """The messages of a tool-using turn as one trace: a tool message is the output block of the
    ```python cell before it (opened, where the assistant's text did not already, and closed)."""
    text = ""
    for message in messages:
        content = str(message.get("content", ""))
        if message.get("role") != "tool":
            text += content
            continue
        if not text.rstrip().endswith("```output"):
            text = text.rstrip("\n") + "\n```output"
        text += f"\n{content.strip(chr(10))}\n```\n"
    return text


def _file_example(
    row: dict[str, Any], number: int, source: str, tokenizer: Any, keep_status: str | None
) -> Example | None:
    stem = Path(source).name.split(".")[0]
    ident = str(row.get("id", f"{stem}/{number - 1}"))
    gold = row.get("answer", row.get("gold"))
    gold = None if gold is None else str(gold)
    if "messages" in row:  # TRL's conversational format: the last assistant turn is the response
        messages = row["messages"]
        if not isinstance(messages, list) or not messages or messages[-1].get("role") != "assistant":
            raise InputError(f"{source}: row {number}: 'messages' must end with an assistant message")
        # a tool-using turn: the assistant and tool messages after the last user message are one response
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=len(messages) - 2)
        turn = (
            messages[last_user + 1 :]
            if any(m.get("role") == "tool" for m in messages[last_user + 1 :])
            else messages[-1:]
        )
        rendered = tokenizer.apply_chat_template(
            messages[: len(messages) - len(turn)], tokenize=False, add_generation_prompt=True
        )
        user = next((m["content"] for m in reversed(messages[:-1]) if m.get("role") == "user"), "")
        return Example(ident, str(user), gold, {"response": _turn_text(turn), "rendered_prompt": rendered})
    if "completion" not in row or "prompt" not in row:
        raise InputError(
            f"{source}: row {number}: an SFT row needs 'prompt' and 'completion', or 'messages' "
            f"(has: {', '.join(sorted(row))})"
        )
    if "status" in row and keep_status is not None and row["status"] != keep_status:
        return None  # rejection sampling: only rows with the kept verdict
    prompt = row["prompt"]
    if isinstance(prompt, list):  # conversational prompt
        rendered = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        return Example(
            ident,
            _text(prompt, source, number, "prompt"),
            gold,
            {"response": _text(row["completion"], source, number, "completion"), "rendered_prompt": rendered},
        )
    # samples.jsonl of rlvr eval holds the prompt exactly as the model saw it
    rendered = str(prompt) if "sample" in row and "status" in row else None
    return Example(
        ident,
        str(prompt),
        gold,
        {
            "response": _text(row["completion"], source, number, "completion"),
            **({"rendered_prompt": rendered} if rendered else {}),
        },
    )


def sft_examples(
    examples: list[Example] | None,
    *,
    path: str | None = None,
    tokenizer: Any = None,
    keep_status: str | None = "correct",
) -> list[Example]:
    """SFT rows: from a file (`path`), or worked responses for benchmark/arith `examples`."""
    if path is not None:
        from rlvr.data.benchmarks import read_rows

        rows = read_rows(path)
        made = [_file_example(row, i, path, tokenizer, keep_status) for i, row in enumerate(rows, 1)]
        kept = [e for e in made if e is not None]
        if not kept:
            raise InputError(f"{path}: no rows left to train on (data.keep_status={keep_status!r} kept none)")
        return kept
    out = []
    for example in examples or []:
        benchmark = example.metadata.get("benchmark")
        if benchmark not in WORKED:
            raise InputError(
                f"{example.id}: no worked responses for {benchmark!r}: use arith, gsm8k, math, or a "
                "file with prompt/completion or messages"
            )
        out.append(_with_response(example, WORKED[benchmark](example)))
    return out


def is_preference_file(path: str | None) -> bool:
    """Whether `path` is a file of prompt/chosen/rejected rows (TRL's preference format)."""
    if path is None or not Path(path).is_file():
        return False
    from rlvr.data.benchmarks import read_rows

    first = read_rows(path)[0]
    return all(field in first for field in PREFERENCE_FIELDS)


def preference_rows(path: str) -> list[dict[str, Any]]:
    """The rows of a preference file, each checked for prompt, chosen and rejected (an InputError names
    the first row without one)."""
    from rlvr.data.benchmarks import read_rows

    rows = read_rows(path)
    if not rows:
        raise InputError(f"{path}: no rows (a preference row needs prompt, chosen, rejected)")
    for number, row in enumerate(rows, 1):
        missing = [f for f in PREFERENCE_FIELDS if f not in row]
        if missing:
            raise InputError(
                f"{path}: row {number}: missing field {missing[0]!r} (a preference row needs prompt, chosen, rejected)"
            )
    return rows


def preference_examples(path: str, tokenizer: Any) -> list[Example]:
    """Offline DPO rows: `metadata["chosen"]`, `metadata["rejected"]`, the prompt rendered if conversational."""
    out = []
    for number, row in enumerate(preference_rows(path), 1):
        prompt = row["prompt"]
        meta: dict[str, Any] = {
            "chosen": _text(row["chosen"], path, number, "chosen"),
            "rejected": _text(row["rejected"], path, number, "rejected"),
        }
        if "margin" in row:  # TRL's reward-model margin
            meta["margin"] = float(row["margin"])
        if isinstance(prompt, list):
            meta["rendered_prompt"] = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        answer = row.get("answer")
        out.append(
            Example(
                str(row.get("id", f"{Path(path).name.split('.')[0]}/{number - 1}")),
                _text(prompt, path, number, "prompt"),
                None if answer is None else str(answer),
                meta,
            )
        )
    return out
