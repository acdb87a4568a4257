"""Format rewards against adversarial completions: tags that are wrong, hidden, doubled or faked."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rlvr.types import Example, Status
from rlvr.verifiers import build_verifier
from rlvr.verifiers.format import BoxedFormat, Overlong, Repetition, ThinkFormat, find_boxed, mask_code

EX = Example("x", "What is 2+2?", "4")

FENCE = "```"

# (completion, reward, what the reason must mention)
THINK_CASES = [
    # well formed
    ("<think>2+2 is 4</think>The answer is \\boxed{4}.", 1.0, "ok"),
    ("  \n<think>\nadd them\n</think>\n\n4", 1.0, "ok"),
    ("<think>a < b and c > d</think> 4", 1.0, "ok"),
    # missing / empty
    ("The answer is 4.", 0.0, "no <think>"),
    ("", 0.0, "no <think>"),
    ("<think></think> 4", 0.0, "empty"),
    ("<think>   \n </think> 4", 0.0, "empty"),
    ("<think>reasoning</think>", 0.0, "no answer"),
    ("<think>reasoning</think>  \n", 0.0, "no answer"),
    ("<think>reasoning that never ends", 0.0, "unclosed"),
    # order
    ("</think>reasoning<think> 4", 0.0, "before"),
    ("4 <think>late thinking</think> 4", 0.0, "text before"),
    ("</think> 4", 0.0, "before"),
    # nested / repeated / stray
    ("<think>a<think>b</think>c</think> 4", 0.0, "nested"),
    ("<think>a</think> 4 <think>b</think> 5", 0.0, "more than one"),
    ("<think>a</think> the answer is 4 </think>", 0.0, "more than one"),
    ("<think>a</think> 4 <think>", 0.0, "more than one"),
    ("<think><think>a</think> 4", 0.0, "nested"),
    # mismatched or malformed spellings
    ("<think>a</thinking> 4", 0.0, "mismatched"),
    ("<thinking>a</thinking> 4", 0.0, "mismatched"),
    ("<think>a</think> 4 </thinking>", 0.0, "mismatched"),
    ("<THINK>a</THINK> 4", 0.0, "mismatched"),
    ("<Think>a</Think> 4", 0.0, "mismatched"),
    ("<think>a</THINK> 4", 0.0, "mismatched"),
    ("<think >a</think> 4", 0.0, "mismatched"),
    ("<think>a</ think> 4", 0.0, "mismatched"),
    ("<think/>a</think> 4", 0.0, "mismatched"),
    ('<think type="x">a</think> 4', 0.0, "mismatched"),
    # tags in code are text, not tags
    (f"<think>the tag is written\n{FENCE}html\n<think>\n{FENCE}\nok</think> 4", 1.0, "ok"),
    ("<think>quote `</think>` inline</think> 4", 1.0, "ok"),
    (f"<think>a</think> Use\n{FENCE}\n</think><think>\n{FENCE}\n to format.", 1.0, "ok"),
    # ...but hiding the real closing tag in code makes it missing
    (f"<think>a\n{FENCE}\n</think> 4", 0.0, "unclosed"),
    ("<think>a `</think>` 4", 0.0, "unclosed"),
    # ...and code cannot create tags either
    (f"{FENCE}\n<think>a</think>\n{FENCE}\n4", 0.0, "no <think>"),
]


@pytest.mark.parametrize("completion, reward, reason", THINK_CASES)
def test_think_format(completion: str, reward: float, reason: str) -> None:
    score = ThinkFormat().score(completion, EX)
    assert score.reward == reward, score.details
    assert score.status == (Status.CORRECT if reward else Status.WRONG)
    assert reason in score.details["reason"]


@pytest.mark.parametrize(
    "completion, reward",
    [
        ("the sum is 4</think> \\boxed{4}", 1.0),  # template opened <think> in the prompt
        ("</think> 4", 0.0),  # empty thinking
        ("<think>again</think> 4", 0.0),  # a second opening tag
        ("a</think> 4 </think>", 0.0),
        ("no closing tag at all", 0.0),
    ],
)
def test_think_format_prefilled(completion: str, reward: float) -> None:
    assert ThinkFormat(prefilled=True).score(completion, EX).reward == reward


def test_mask_code_keeps_positions() -> None:
    text = f"a `x` b\n{FENCE}py\ncode\n{FENCE}\nc"
    masked = mask_code(text)
    assert len(masked) == len(text)
    assert "x" not in masked and "code" not in masked and masked.startswith("a ") and masked.endswith("c")


BOXED_CASES = [
    ("so \\boxed{4}.", 1.0, "4"),
    ("\\boxed{\\frac{1}{2}}", 1.0, "\\frac{1}{2}"),
    ("\\boxed{\\{1,2\\}}", 1.0, "\\{1,2\\}"),  # escaped braces are literal
    ("\\fbox{7}", 1.0, "7"),
    ("<think>maybe \\boxed{3}</think> it is \\boxed{4}", 1.0, "4"),
    ("<think>\\boxed{4}</think> it is 4", 0.0, None),  # a box inside the thinking is not the answer
    ("the answer is 4", 0.0, None),
    ("\\boxed{}", 0.0, None),
    ("\\boxed{  }", 0.0, None),
    ("\\boxed{\\frac{1}{2}", 0.0, None),  # unbalanced
    ("\\boxed{3} then \\boxed{4", 0.0, None),  # the last box is broken
    ("\\boxed{\\}", 0.0, None),  # the only closing brace is escaped
]


@pytest.mark.parametrize("completion, reward, boxed", BOXED_CASES)
def test_boxed_format(completion: str, reward: float, boxed: str | None) -> None:
    score = BoxedFormat().score(completion, EX)
    assert score.reward == reward, score.details
    assert score.details.get("boxed") == boxed


def test_find_boxed_positions_and_unbalanced() -> None:
    assert find_boxed("x \\boxed{a{b}} y \\boxed{c") == [(2, "a{b}"), (17, None)]


@pytest.mark.parametrize(
    "words, reward",
    [(0, 0.0), (50, 0.0), (75, 0.0), (80, -0.2), (90, -0.6), (100, -1.0), (500, -1.0)],
)
def test_overlong_dapo_shape(words: int, reward: float) -> None:
    score = Overlong(max_tokens=100, buffer=25).score(" ".join(["w"] * words), EX)
    assert score.reward == pytest.approx(reward)
    assert score.details["length"] == words
    assert score.status == (Status.CORRECT if reward == 0 else Status.WRONG)


def test_overlong_counts_characters() -> None:
    verifier = build_verifier("overlong:max_tokens=10,buffer=5,unit=chars")
    assert verifier.score("12345", EX).reward == 0.0
    assert verifier.score("1234567", EX).reward == pytest.approx(-0.4)
    assert verifier.score("x" * 11, EX).reward == -1.0


@pytest.mark.parametrize(
    "spec, message",
    [
        ("overlong:max_tokens=10,buffer=20", "overlong: need 0 < buffer <= max_tokens, got buffer=20, max_tokens=10"),
        ("overlong:buffer=0", "overlong: need 0 < buffer <= max_tokens, got buffer=0,"),
        ("overlong:unit=bytes", "overlong: unit must be one of .*, got 'bytes'"),
    ],
)
def test_overlong_rejects_bad_options(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_verifier(spec)


@pytest.mark.parametrize(
    "text, n, fraction",
    [
        ("the cat sat on the mat", 2, 0.0),
        ("a b a b a b", 2, 0.6),  # (a b)(b a)(a b)(b a)(a b): 2 distinct of 5
        ("go go go go go", 1, 0.8),
        ("Go go GO", 1, 2 / 3),  # case-insensitive
        ("too short", 3, 0.0),
        ("", 4, 0.0),
    ],
)
def test_repetition_fraction(text: str, n: int, fraction: float) -> None:
    assert Repetition(n=n).repeated_fraction(text) == pytest.approx(fraction)


def test_repetition_reward_scales_with_max_penalty() -> None:
    loop = "I will check again. " * 20
    strong = build_verifier("repetition:n=3,max_penalty=0.5").score(loop, EX)
    assert -0.5 < strong.reward < -0.4 and strong.status == Status.WRONG
    clean = Repetition().score("Add 2 and 2 to get 4, so the answer is 4.", EX)
    assert clean.reward == 0.0 and clean.status == Status.CORRECT


def test_weighted_format_spec_keeps_components() -> None:
    verifier = build_verifier("think_format+0.5*boxed_format+0.1*repetition:n=2")
    score = verifier.score("<think>x</think> \\boxed{4}", EX)
    assert score.reward == pytest.approx(1.5)
    assert set(score.details["components"]) == {"think_format", "boxed_format", "repetition"}
    assert score.details["components"]["boxed_format"]["weight"] == 0.5


_PLAIN = st.text(alphabet=st.characters(blacklist_characters="`~<>", blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    think=_PLAIN,
    answer=_PLAIN,
    tag=st.sampled_from(["<think>", "</think>", "<THINK>", "</thinking>", "<think >"]),
    where=st.floats(0, 1),
)
def test_one_extra_tag_anywhere_always_scores_zero(think: str, answer: str, tag: str, where: float) -> None:
    """Whatever the text, a stray think-like tag outside code can never be rewarded."""
    good = f"<think>x{think}</think> a{answer}"
    assert ThinkFormat().score(good, EX).reward == 1.0
    cut = int(where * len(good))
    close = good.index("</think>")
    assume(not (0 < cut < len("<think>")) and not (close < cut < close + len("</think>")))  # not inside a tag
    assert ThinkFormat().score(good[:cut] + tag + good[cut:], EX).reward == 0.0
