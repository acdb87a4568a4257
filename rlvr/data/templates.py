"""The one prompt template shared by eval and training: how an Example becomes model input text."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlvr import names
from rlvr.errors import InputError
from rlvr.types import Example

__all__ = [
    "CODE_INSTRUCTION",
    "DEFAULT_INSTRUCTION",
    "STYLES",
    "Style",
    "render_prompt",
    "stop_sequences",
    "style_task",
]

DEFAULT_INSTRUCTION = "Reason step by step and put your final answer within \\boxed{}."
CODE_INSTRUCTION = (
    "Complete the following Python function. Write the whole function, with any imports it needs, "
    "in a single ```python code block."
)
#: lm-evaluation-harness's GSM8K format: "Question: ...\nAnswer: <worked solution ending in #### N>"
FEWSHOT_SHOTS = 5


@dataclass(frozen=True)
class Style:
    """How to render one example, and where generation must stop for that rendering. A style that
    reproduces another tool's task per benchmark (lm-eval) gives its stops, generation length and
    that tool's own metrics per example (`task`); the others have one fixed set of stops."""

    render: Callable[[Example, Any, str, int], str]
    stop: tuple[str, ...] = ()
    description: str = ""
    task: Callable[[Example], Any] | None = None  # Example -> rlvr.data.lm_eval_tasks.LmEvalTask


def _is_code(example: Example) -> bool:
    return example.metadata.get("task") == "code"


def _instruction_for(example: Example, instruction: str | None) -> str:
    if instruction is not None:
        return instruction
    return CODE_INSTRUCTION if _is_code(example) else DEFAULT_INSTRUCTION


def _user_text(example: Example, instruction: str) -> str:
    if _is_code(example):
        return f"{instruction}\n\n```python\n{example.prompt.rstrip()}\n```"
    return f"{example.prompt.strip()}\n\n{instruction}".strip()


def _chat(example: Example, tokenizer: Any, instruction: str, shots: int) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise InputError("the model's tokenizer has no chat template: use --style fewshot (base models) or plain")
    messages = [{"role": "user", "content": _user_text(example, instruction)}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _plain(example: Example, tokenizer: Any, instruction: str, shots: int) -> str:
    return _user_text(example, instruction) + "\n"


@functools.cache
def _fewshot_block(shots: int, data_dir: str | None) -> str:
    # The first k GSM8K train problems, as lm-eval's gsm8k task with sampler first_n renders them.
    from rlvr.data.benchmarks import load_benchmark

    worked = load_benchmark("gsm8k", "train", data_dir=data_dir, limit=shots)
    return "".join(f"Question: {e.prompt}\nAnswer: {e.metadata['solution']}\n\n" for e in worked)


def _fewshot(example: Example, tokenizer: Any, instruction: str, shots: int) -> str:
    if _is_code(example):
        raise InputError(f"{example.id}: the fewshot style has no code examples; use --style chat or plain")
    return _fewshot_block(shots, os.environ.get("RLVR_DATA_DIR")) + f"Question: {example.prompt.strip()}\nAnswer:"


def _lm_eval(example: Example, tokenizer: Any, instruction: str, shots: int) -> str:
    from rlvr.data.lm_eval_tasks import task_for

    return task_for(example).render(example)


def _lm_eval_task(example: Example) -> Any:
    from rlvr.data.lm_eval_tasks import task_for

    return task_for(example)


CHAT = Style(_chat, (), "the model's chat template, zero-shot, with the instruction (instruct models)")
FEWSHOT = Style(
    _fewshot,
    ("Question:", "</s>", "<|im_end|>"),
    f"no chat template: {FEWSHOT_SHOTS} GSM8K train examples as 'Question: ... Answer: ...' (base models; "
    "lm-eval's GSM8K format)",
)
PLAIN = Style(_plain, (), "no chat template: the problem and the instruction, zero-shot")
LM_EVAL = Style(
    _lm_eval,
    (),
    "exactly lm-eval 0.4's stock gsm8k (5-shot, seeded sampler) or minerva_math (4-shot) "
    "prompt, stops and length; their metrics reported beside the verdict",
    _lm_eval_task,
)

#: every style by name, from the one table of names (rlvr.names.STYLES)
STYLES: dict[str, Style] = {name: names.load(names.STYLES, name) for name in names.STYLES}


def _style(name: str) -> Style:
    if name not in STYLES:
        raise InputError(f"unknown prompt style {name!r} (known: {', '.join(STYLES)})")
    return STYLES[name]


def render_prompt(
    example: Example, tokenizer: Any, *, style: str = "chat", instruction: str | None = None, shots: int = FEWSHOT_SHOTS
) -> str:
    """The text given to the engine for `example`. `instruction=None` picks the task's default
    (DEFAULT_INSTRUCTION for math, CODE_INSTRUCTION for code); the fewshot style ignores it, since
    its worked examples already show the answer format (`#### N`), and so does `lm-eval`."""
    return _style(style).render(example, tokenizer, _instruction_for(example, instruction), shots)


def stop_sequences(style: str, example: Example | None = None) -> tuple[str, ...]:
    """Strings that end a completion in this style (the fewshot style must stop at the next question).
    The lm-eval style's stops depend on the task, so it needs the `example`."""
    chosen = _style(style)
    if chosen.task is None:
        return chosen.stop
    if example is None:
        raise InputError(f"the stops of style {style!r} depend on the benchmark: pass the example")
    return chosen.task(example).stop


def style_task(style: str, example: Example) -> Any:
    """The other tool's task a style reproduces for this example (an `rlvr.data.lm_eval_tasks.LmEvalTask`:
    stops, generation length, its own metrics), or None for rlvr's own styles."""
    chosen = _style(style)
    return chosen.task(example) if chosen.task else None
