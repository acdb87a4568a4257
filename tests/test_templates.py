"""The one prompt template: chat (instruct models), fewshot (lm-eval's GSM8K format), plain, code."""

from __future__ import annotations

import pytest

from rlvr.data import load_benchmark
from rlvr.errors import InputError
from rlvr.templates import CODE_INSTRUCTION, DEFAULT_INSTRUCTION, STYLES, render_prompt, stop_sequences
from rlvr.types import Example


@pytest.fixture(scope="module")
def tokenizer():
    from rlvr.models import load_tokenizer, smollm2_tokenizer_dir

    return load_tokenizer(smollm2_tokenizer_dir())


class NoChatTemplate:
    chat_template = None


def test_chat_style_uses_the_models_chat_template(tokenizer, data_dir):
    example = load_benchmark("gsm8k", data_dir=data_dir, limit=1)[0]
    text = render_prompt(example, tokenizer)
    assert text.startswith("<|im_start|>system\n")
    assert f"<|im_start|>user\n{example.prompt}\n\n{DEFAULT_INSTRUCTION}<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")  # generation prompt: the model answers next


def test_chat_style_custom_instruction(tokenizer):
    text = render_prompt(Example("x", "What is 1+1?", "2"), tokenizer, instruction="Answer with a number.")
    assert "What is 1+1?\n\nAnswer with a number.<|im_end|>" in text and DEFAULT_INSTRUCTION not in text


def test_fewshot_style_is_lm_eval_gsm8k_format(tokenizer, data_dir):
    train = load_benchmark("gsm8k", "train", data_dir=data_dir, limit=5)
    example = load_benchmark("gsm8k", data_dir=data_dir, limit=1)[0]
    text = render_prompt(example, tokenizer, style="fewshot")
    shots = "".join(f"Question: {e.prompt}\nAnswer: {e.metadata['solution']}\n\n" for e in train)
    assert text == shots + f"Question: {example.prompt}\nAnswer:"
    assert "<|im_start|>" not in text and DEFAULT_INSTRUCTION not in text
    assert render_prompt(example, tokenizer, style="fewshot", shots=2).count("Question:") == 3
    assert "Question:" in stop_sequences("fewshot")  # generation must stop before the next question


def test_code_examples_get_the_code_instruction(tokenizer, data_dir):
    human = load_benchmark("humaneval", data_dir=data_dir, limit=1)[0]
    text = render_prompt(human, tokenizer)
    assert CODE_INSTRUCTION in text and f"```python\n{human.prompt.rstrip()}\n```" in text
    with pytest.raises(InputError, match="fewshot style has no code examples"):
        render_prompt(human, tokenizer, style="fewshot")


def test_plain_style_needs_no_tokenizer():
    text = render_prompt(Example("x", "What is 1+1?", "2"), NoChatTemplate(), style="plain")
    assert text == f"What is 1+1?\n\n{DEFAULT_INSTRUCTION}\n"


@pytest.mark.parametrize("style, message", [("chat", "no chat template"), ("chatty", "unknown prompt style 'chatty'")])
def test_bad_styles_are_input_errors(style, message):
    with pytest.raises(InputError, match=message):
        render_prompt(Example("x", "q", "1"), NoChatTemplate(), style=style)


def test_every_style_is_described():
    assert set(STYLES) == {"chat", "fewshot", "plain"}
    assert all(style.description for style in STYLES.values())
