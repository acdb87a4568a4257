"""The one prompt template: chat (instruct models), fewshot (lm-eval's GSM8K format), plain, code, and
lm-eval (byte for byte the prompts of lm-eval 0.4's stock gsm8k and minerva_math tasks)."""

from __future__ import annotations

import hashlib
import json

import pytest

from rlvr.data.benchmarks import load_benchmark
from rlvr.data.templates import CODE_INSTRUCTION, DEFAULT_INSTRUCTION, STYLES, render_prompt, stop_sequences
from rlvr.errors import InputError
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
    assert set(STYLES) == {"chat", "fewshot", "plain", "lm-eval"}
    assert all(style.description for style in STYLES.values())


# The 5 GSM8K train rows (0-based file rows) that stock lm-eval 0.4.13 put in the prompts of test
# documents 0, 1 and 2 (read from its own --log_samples output; its seeded sampler draws them in
# test-document order), and sha256 of the whole prompts it built for documents 0 and 7.
LM_EVAL_GSM8K_SHOTS = [
    (0, [6374, 3610, 957, 61, 742]),
    (1, [7462, 6610, 4769, 286, 5501]),
    (2, [5677, 687, 806, 6279, 2905]),
]
LM_EVAL_PROMPT_SHA256 = [
    ("gsm8k", 0, "32680f263ba83280e98a8a24ceefed10a722a4cdcd9f4d78e93c45d43143ca66"),
    ("gsm8k", 7, "0373c2600e8cfa1275b19a28d5319be71ebe91b628b423e4e4ca1805b4fbd5f7"),
    ("math500", 0, "ac82040a5a5363bfb08d65a0cf04e0a82ad1c89fc5bd0c197d3fded175468f35"),
    ("math500", 7, "0846968f7175236ec5d8988f8650f73b3ceb318227ec3e0a5d99c44b1b6c81cb"),
]


def _raw_rows(data_dir, name):
    return [json.loads(line) for line in (data_dir / name).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("doc, shots", LM_EVAL_GSM8K_SHOTS)
def test_lm_eval_gsm8k_prompt_is_built_by_hand_from_the_raw_rows(data_dir, doc, shots):
    train, test = _raw_rows(data_dir, "gsm8k/train.jsonl"), _raw_rows(data_dir, "gsm8k/test.jsonl")
    expected = ""
    for row in shots:  # target delimiter " ", few-shot delimiter a blank line, no stripping
        expected += "Question: " + train[row]["question"] + "\nAnswer: " + train[row]["answer"] + "\n\n"
    expected += "Question: " + test[doc]["question"] + "\nAnswer:"
    example = load_benchmark("gsm8k", data_dir=data_dir, limit=doc + 1)[doc]
    assert render_prompt(example, NoChatTemplate(), style="lm-eval") == expected


@pytest.mark.parametrize("bench, doc, digest", LM_EVAL_PROMPT_SHA256)
def test_lm_eval_prompts_match_lm_evals_own_bytes(data_dir, bench, doc, digest):
    example = load_benchmark(bench, data_dir=data_dir, limit=doc + 1)[doc]
    text = render_prompt(example, NoChatTemplate(), style="lm-eval", instruction="ignored")
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == digest


def test_lm_eval_minerva_prompt_shape(data_dir):
    example = load_benchmark("math500", data_dir=data_dir, limit=1)[0]
    text = render_prompt(example, NoChatTemplate(), style="lm-eval")
    assert text.startswith(
        "Problem:\nFind the domain of the expression  $\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.\n\n"
        "Solution: The expressions inside each square root"
    )
    assert text.endswith(f"I hope it is correct.\n\nProblem:\n{example.prompt}\n\nSolution:")
    assert text.count("I hope it is correct.\n\n") == 4


@pytest.mark.parametrize(
    "bench, stops",
    [("gsm8k", ("Question:", "</s>", "<|im_end|>")), ("math500", ("Problem:",)), ("math", ("Problem:",))],
)
def test_lm_eval_stops_follow_the_task(data_dir, bench, stops):
    example = load_benchmark(bench, data_dir=data_dir, limit=1)[0]
    assert stop_sequences("lm-eval", example) == stops
    with pytest.raises(InputError, match="depend on the benchmark"):
        stop_sequences("lm-eval")


@pytest.mark.parametrize(
    "example, message",
    [
        (Example("gsm8k/train/3", "q", "1", {"benchmark": "gsm8k"}), "GSM8K test split"),
        (Example("rows/3", "q", "1", {"benchmark": "gsm8k"}), "GSM8K test split"),
        (Example("aime24/1", "q", "1", {"benchmark": "aime24"}), "not 'aime24'"),
    ],
)
def test_lm_eval_style_refuses_what_the_stock_tasks_do_not_cover(example, message):
    with pytest.raises(InputError, match=message):
        render_prompt(example, NoChatTemplate(), style="lm-eval")
