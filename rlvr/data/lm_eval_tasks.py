"""lm-evaluation-harness's stock `gsm8k` and `minerva_math` tasks, reproduced: prompts, stops, length, metrics.

What lm-eval 0.4.x does, and what `--style lm-eval` therefore does (checked against lm-eval itself by
`benchmarks/eval_vs_lm_eval.py`):

* gsm8k: 5 shots from the train split, drawn by ONE `random.Random(1234)` (lm-eval's default
  fewshot seed) that draws 5 distinct train documents per test document, in test-document order;
  so the shots of test problem i are the (i+1)-th draw whatever `--limit` is. Each shot is
  "Question: {question}\\nAnswer: {answer}\\n\\n" (the target delimiter is one space, the few-shot
  delimiter a blank line); the prompt ends "Question: {question}\\nAnswer:". No chat template.
  Generation stops at "Question:", "</s>" or "<|im_end|>" (and EOS), at most 256 new tokens.
  Metrics: strict-match (the first "#### N") and flexible-extract (the last number-like run),
  each compared with exact_match after dropping ",", "$", everything up to "#### " and a final ".".
* minerva_math (and minerva_math500): the same 4 fixed worked problems of Lewkowycz et al. (2022)
  for every problem, "Problem:\\n{problem}\\n\\nSolution: {solution}\\n\\n", then
  "Problem:\\n{problem}\\n\\nSolution:"; stops at "Problem:" (and EOS), 256 new tokens. Metric:
  math-verify's `verify(parse(solution), parse(completion))`, its official one.

The functions here are written from that behaviour; no lm-eval code is used or needed.
"""

from __future__ import annotations

import functools
import os
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rlvr.errors import InputError
from rlvr.types import Example, Score, Status
from rlvr.verifiers.base import Verifier

__all__ = ["GSM8K_FEWSHOT_SEED", "TASKS", "Beside", "LmEvalMetrics", "LmEvalTask", "task_for"]

GSM8K_FEWSHOT_SEED = 1234  # lm-eval's DEFAULT_OTHER_SEED, used as fewshot_random_seed
GSM8K_SHOTS = 5
INVALID = "[invalid]"  # lm-eval's regex filter fallback

#: the four worked problems of the Minerva prompt (Lewkowycz et al., 2022, appendix D), as lm-eval serves them
MINERVA_SHOTS: tuple[tuple[str, str], ...] = (
    (
        "Find the domain of the expression  $\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.",
        (
            "The expressions inside each square root must be non-negative. Therefore, $x-2 \\ge 0$, so $x\\ge2$, and "
            "$5 - x \\ge 0$, so $x \\le 5$. Also, the denominator cannot be equal to zero, so $5-x>0$, "
            "which gives $x<5$. "
            "Therefore, the domain of the expression is $\\boxed{[2,5)}$.\nFinal Answer: The final answer is $[2,5)$. "
            "I hope it is correct."
        ),
    ),
    (
        "If $\\det \\mathbf{A} = 2$ and $\\det \\mathbf{B} = 12,$ then find $\\det (\\mathbf{A} \\mathbf{B}).$",
        (
            "We have that $\\det (\\mathbf{A} \\mathbf{B}) = (\\det \\mathbf{A})(\\det \\mathbf{B}) = (2)(12) = "
            "\\boxed{24}.$\nFinal Answer: The final answer is $24$. I hope it is correct."
        ),
    ),
    (
        (
            "Terrell usually lifts two 20-pound weights 12 times. If he uses two 15-pound weights instead, how many "
            "times must Terrell lift them in order to lift the same total weight?"
        ),
        (
            "If Terrell lifts two 20-pound weights 12 times, he lifts a total of $2\\cdot 12\\cdot20=480$ pounds of "
            "weight.  If he lifts two 15-pound weights instead for $n$ times, he will lift a total of "
            "$2\\cdot15\\cdot n=30n$ pounds of weight.  Equating this to 480 pounds, we can solve for $n$:\n"
            "\\begin{align*}\n30n&=480\\\\\n\\Rightarrow\\qquad n&=480/30=\\boxed{16}\n\\end{align*}\n"
            "Final Answer: The final answer is $16$. I hope it is correct."
        ),
    ),
    (
        (
            "If the system of equations\n\n\\begin{align*}\n6x-4y&=a,\\\\\n6y-9x &=b.\n\\end{align*}has a solution "
            "$(x, y)$ where $x$ and $y$ are both nonzero,\nfind $\\frac{a}{b},$ assuming $b$ is nonzero."
        ),
        (
            "If we multiply the first equation by $-\\frac{3}{2}$, we obtain\n\n$$6y-9x=-\\frac{3}{2}a.$$Since we also "
            "know that $6y-9x=b$, we have\n\n$$-\\frac{3}{2}a=b\\Rightarrow\\frac{a}{b}=\\boxed{-\\frac{2}{3}}.$$\n"
            "Final Answer: The final answer is $-\\frac{2}{3}$. I hope it is correct."
        ),
    ),
)


# ----------------------------------------------------------------------------------- gsm8k prompt


@functools.cache
def _gsm8k_draws(pool: int, count: int) -> tuple[tuple[int, ...], ...]:
    """The first `count` draws of 5 distinct train indices out of `pool`, from one seeded stream."""
    rng = random.Random(GSM8K_FEWSHOT_SEED)
    return tuple(tuple(rng.sample(range(pool), GSM8K_SHOTS)) for _ in range(count))


@functools.cache
def _gsm8k_train(data_dir: str | None) -> tuple[tuple[str, str], ...]:
    from rlvr.data.benchmarks import load_benchmark

    return tuple((e.prompt, e.metadata["solution"]) for e in load_benchmark("gsm8k", "train", data_dir=data_dir))


def _doc_index(example: Example, prefix: str) -> int:
    """The example's position in the split lm-eval iterates (the row number in its id)."""
    head, _, number = example.id.rpartition("/")
    if head != prefix or not number.isdigit():
        raise InputError(
            f"{example.id}: --style lm-eval reproduces lm-eval's stock gsm8k task, which needs the "
            f"GSM8K test split loaded as a benchmark (ids {prefix}/N), not a data file or another split"
        )
    return int(number)


def gsm8k_shots(index: int, data_dir: str | None = None) -> list[tuple[str, str]]:
    """(question, worked answer) of the 5 train shots lm-eval gives test document `index`."""
    train = _gsm8k_train(data_dir)
    draws = _gsm8k_draws(len(train), max(index + 1, 2048))
    return [train[j] for j in draws[index]]


def _gsm8k_prompt(example: Example) -> str:
    shots = gsm8k_shots(_doc_index(example, "gsm8k/test"), os.environ.get("RLVR_DATA_DIR"))
    return "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in shots) + f"Question: {example.prompt}\nAnswer:"


def _minerva_prompt(example: Example) -> str:
    shots = "".join(f"Problem:\n{p}\n\nSolution: {s}\n\n" for p, s in MINERVA_SHOTS)
    return shots + f"Problem:\n{example.prompt}\n\nSolution:"


# ---------------------------------------------------------------------------------- the metrics

_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
_IGNORED = (",", "\\$", "(?s).*#### ", "\\.$")  # gsm8k's exact_match regexes_to_ignore


def _regex_answer(pattern: re.Pattern, text: str, which: int) -> str:
    """lm-eval's regex filter: the `which`-th match (a tuple match: its first non-empty group), stripped."""
    found = pattern.findall(text)
    if not found:
        return INVALID
    match = found[which]
    if isinstance(match, tuple):
        match = next((m for m in match if m), INVALID)
    return match.strip()


def _exact_match(prediction: str, reference: str) -> bool:
    """gsm8k's exact_match: both sides lose the ignored regexes, case is ignored."""
    for pattern in _IGNORED:
        prediction, reference = re.sub(pattern, "", prediction), re.sub(pattern, "", reference)
    return prediction.lower() == reference.lower()


def _gsm8k_metrics(completion: str, example: Example) -> dict[str, dict[str, Any]]:
    reference = str(example.metadata.get("solution") or f"#### {example.answer}")
    out = {}
    for name, pattern, which in (("strict-match", _STRICT, 0), ("flexible-extract", _FLEXIBLE, -1)):
        answer = _regex_answer(pattern, completion, which)
        out[name] = {"extracted": answer, "correct": _exact_match(answer, reference)}
    return out


_MINERVA_FINAL = re.compile(r"Final Answer: The final answer is(.*?). I hope it is correct.")


def _minerva_metrics(completion: str, example: Example) -> dict[str, dict[str, Any]]:
    from rlvr.verifiers.math.grade import _math_verify  # math-verify, its "timeout disabled" warning quieted

    parse, verify = _math_verify().parse, _math_verify().verify
    solution = str(example.metadata.get("solution") or f"$\\boxed{{{example.answer}}}$")
    final = _MINERVA_FINAL.search(completion + "I hope it is correct.")
    # the runner owns deadlines: math-verify's own (signal-based) timeouts are switched off
    same = verify(parse(solution, parsing_timeout=None), parse(completion, parsing_timeout=None), timeout_seconds=None)
    return {"math_verify": {"extracted": final.group(1).strip() if final else "[invalidanswer]", "correct": bool(same)}}


# ----------------------------------------------------------------------------------- the tasks


@dataclass(frozen=True)
class LmEvalTask:
    """One stock lm-eval task: how it prompts, where it stops, how long it generates, what it reports."""

    name: str
    render: Callable[[Example], str]
    stop: tuple[str, ...]
    metrics: Callable[[str, Example], dict[str, dict[str, Any]]]
    max_new_tokens: int = 256  # lm-eval's default max_gen_toks; neither task sets its own


TASKS: dict[str, LmEvalTask] = {
    "gsm8k": LmEvalTask("gsm8k", _gsm8k_prompt, ("Question:", "</s>", "<|im_end|>"), _gsm8k_metrics),
    "math": LmEvalTask("minerva_math", _minerva_prompt, ("Problem:",), _minerva_metrics),
}
#: benchmark name (Example.metadata["benchmark"]) -> task; MATH-500 rows say "math" too (minerva_math500)
_BY_BENCHMARK = {"gsm8k": "gsm8k", "math": "math", "math500": "math"}


def task_for(example: Example) -> LmEvalTask:
    benchmark = str(example.metadata.get("benchmark"))
    if benchmark not in _BY_BENCHMARK:
        raise InputError(
            f"{example.id}: --style lm-eval reproduces lm-eval's stock gsm8k and minerva_math tasks "
            f"(benchmarks gsm8k, math, math500), not {benchmark!r}"
        )
    return TASKS[_BY_BENCHMARK[benchmark]]


class LmEvalMetrics(Verifier):
    """The stock task's own metrics (strict-match/flexible-extract, math_verify); they need the gold."""

    name = "lm_eval_metrics"

    def score(self, completion: str, example: Example) -> Score:
        metrics = task_for(example).metrics(completion, example)
        ok = all(m["correct"] for m in metrics.values())
        return Score(float(ok), Status.CORRECT if ok else Status.WRONG, {"lm_eval": metrics})


@dataclass(frozen=True)
class Beside(Verifier):
    """`primary`'s score, with `reference`'s details added under details["lm_eval"]: the stock
    metrics are computed in the same runner item (same deadline) and never change the verdict."""

    primary: Verifier
    reference: Verifier

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.primary.name

    @property
    def needs_gold(self) -> bool:  # type: ignore[override]
        return getattr(self.primary, "needs_gold", True)

    def missing_gold(self, fields: Mapping[str, Any]) -> str | None:
        return self.primary.missing_gold(fields)

    def warmup(self) -> None:
        self.primary.warmup()
        self.reference.warmup()

    def score(self, completion: str, example: Example) -> Score:
        score = self.primary.score(completion, example)
        extra: Mapping[str, Any] = self.reference.score(completion, example).details
        return Score(score.reward, score.status, {**score.details, "lm_eval": extra["lm_eval"]})
