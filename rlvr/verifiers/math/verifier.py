"""The `math` verifier: extract the final answer (math_extract), grade it against the gold
(math_grade), and say in the Score how the verdict was reached."""

from __future__ import annotations

import re
import threading
import time
import traceback

from rlvr.types import Example, Score, Status
from rlvr.verifiers.base import Verifier
from rlvr.verifiers.math.boxes import MAX_ANSWERS, MAX_TOGETHER
from rlvr.verifiers.math.extract import Extraction, extract_answer
from rlvr.verifiers.math.forms import percent_as_fraction
from rlvr.verifiers.math.gold import gold_answer
from rlvr.verifiers.math.grade import Gold, GoldError, Match, equivalent, normalize, prepare_gold
from rlvr.verifiers.math.numeric import Unsupported, split_top_level
from rlvr.verifiers.math.symbolic import warm_up_steps
from rlvr.verifiers.registry import register

__all__ = ["MathVerifier"]

_OR = re.compile(r"(?<![\\\w])or\b")  # "3 or 4", "3 \text{ or } 4"; not \lor
#: the background warm-up waits while the process scored within this many seconds
_IDLE_S = 0.05
#: how much of the extracted answer details keep
_DETAIL_CHARS = 300
#: math:percent=: `number` (default) reads `25\%` as 25 only; `fraction` also as 0.25 (README, "What it refuses")
PERCENT = ("number", "fraction")


@register("math")
class MathVerifier(Verifier):
    """Math answer equivalence: last \\boxed / #### / "the answer is" (else the last math or number), exact numbers, then math-verify + sympy."""  # noqa: E501 - this first line is `rlvr verifiers list`'s description

    name = "math"
    description = (
        "math answer equivalence (boxed / #### / 'the answer is' / last math; exact numbers, then math-verify + sympy)"
    )
    needs_gold = True

    def __init__(self, require_marker: bool = False, percent: str = "number"):
        if percent not in PERCENT:
            raise ValueError(f"math: percent must be one of {', '.join(PERCENT)}, got {percent!r}")
        self.require_marker, self.percent = bool(require_marker), percent
        self.__setstate__(self.__getstate__())

    # the warm-up thread belongs to one process: pickling ships only the settings
    def __getstate__(self) -> dict:
        return {"require_marker": self.require_marker, "percent": self.percent}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _warming=None, _needed=threading.Event(), _last_score=0.0)

    def warmup(self) -> None:
        """Import math-verify + sympy and parse WARMUP_ANSWERS in a background thread, a step at a
        time and only while this process has not scored for a moment: the worker takes work at
        once, and most verdicts never need sympy. The first verdict that does wakes the thread and
        waits for it (so that one verdict's clock pays what is left of the warm-up)."""
        if self._warming is None:
            self._warming = threading.Thread(target=self._warm_when_idle, name="rlvr-math-warmup", daemon=True)
            self._warming.start()

    def _warm_when_idle(self) -> None:
        for step in warm_up_steps():
            while not self._needed.is_set() and time.monotonic() - self._last_score < _IDLE_S:
                self._needed.wait(_IDLE_S)
            step()

    def _symbolic_ready(self) -> None:
        if self._warming is not None:
            self._needed.set()
            self._warming.join()

    def score(self, completion: str, example: Example) -> Score:
        self._last_score = time.monotonic()
        gold_text = gold_answer(example.answer)
        details: dict = {"extracted": None, "gold": gold_text, "method": None, "found_by": None}
        try:
            gold = prepare_gold(gold_text)
            found = extract_answer(
                completion or "",
                numeric_fallback=gold.number is not None,
                fallbacks=not self.require_marker,
                prompt=example.prompt or "",
                word_fallback=gold.is_text,
            )
            details.update(extracted=_excerpt(found.answer), method=found.method, found_by=found.found_by)
            if found.answer is None:
                return Score(0.0, Status.NO_ANSWER, details)
            status, match = _grade(gold, found, symbolic=False)
            if match.path == "fast_only":  # only sympy can decide: wait for the warm-up, then ask it
                self._symbolic_ready()
                status, match = _grade(gold, found, symbolic=True)
            if status is Status.WRONG and self.percent == "fraction":
                status, match = _as_fraction(gold_text, found.answer, status, match)
        except GoldError as err:
            return Score(0.0, Status.ERROR, {**details, "error": f"bad gold: {err}"})
        except RecursionError:  # a safety net behind the size and depth limits: a verdict on the input
            return Score(
                0.0, Status.WRONG, {**details, "path": "refused", "note": "answer nested too deeply to evaluate"}
            )
        except Exception as err:  # noqa: BLE001 - a verifier turns any exception into status error, never a silent wrong
            last = traceback.format_exception_only(type(err), err)[-1].strip()
            return Score(0.0, Status.ERROR, {**details, "error": f"internal: {last}"})
        details["path"] = match.path
        if match.note:
            details["note"] = match.note
        return Score(1.0 if status is Status.CORRECT else 0.0, status, details)


def _as_fraction(gold_text: str, answer: str, status: Status, match: Match) -> tuple[Status, Match]:
    """`math:percent=fraction`: a wrong verdict where exactly one side is a percentage (`25\\%`) is asked again
    with that side as its fraction (`0.25`, `\\frac14`); the verdict stands unless that makes them equal."""
    pair = percent_as_fraction(gold_text, answer)
    if pair is None or not (again := equivalent(prepare_gold(pair[0]), pair[1], symbolic=False)).equal:
        return status, match
    return Status.CORRECT, Match(True, "percent", f"{again.path}, a percentage read as its fraction")


def _is_list(clean: str) -> bool:
    """A gold of several answers: `1, -2`, `(1,2), (3,4)`, `1 \\pm \\sqrt{2}` (not one tuple)."""
    try:
        return "\\pm" in clean or len(split_top_level(clean)) > 1
    except Unsupported:
        return False


def _excerpt(answer: str | None) -> str | None:
    if answer is None or len(answer) <= _DETAIL_CHARS:
        return answer
    return answer[:_DETAIL_CHARS] + f"… ({len(answer)} chars)"


def _grade(gold: Gold, found: Extraction, *, symbolic: bool) -> tuple[Status, Match]:
    """Verdict on the final answer, refusing hedges: several different answers offered together,
    or "3 or 4", score 0 as hedged unless together they are exactly the gold (a list answer)."""
    offered = list(dict.fromkeys(normalize(a).replace(" ", "") for a in found.together[-MAX_TOGETHER:]))
    if len(offered) > MAX_ANSWERS:  # more answers than this is a spray of guesses, not a list answer
        return Status.HEDGED, Match(False, "hedged", f"more than {MAX_ANSWERS} answers offered together")
    if len(offered) > 1:
        if _is_list(gold.clean):  # a list gold, boxed piece by piece
            joined = equivalent(gold, ", ".join(found.together), symbolic=symbolic)
            if joined.equal:
                return Status.CORRECT, Match(True, joined.path, "answer given as several boxes")
            if joined.path == "fast_only":  # only sympy can tell: the caller asks again with it
                return Status.WRONG, joined
        # one answer in several forms (4 and 4.0); forms only sympy could tell apart are a hedge
        if all(equivalent(gold, a, symbolic=False).equal for a in found.together):
            return Status.CORRECT, equivalent(gold, found.answer, symbolic=symbolic)
        return Status.HEDGED, Match(False, "hedged", f"{len(offered)} different answers offered together")
    if _OR.search(normalize(found.answer)) and not _OR.search(gold.clean):
        return Status.HEDGED, Match(False, "hedged", "answer offers alternatives joined by 'or'")
    match = equivalent(gold, found.answer, symbolic=symbolic)
    return (Status.CORRECT if match.equal else Status.WRONG), match
