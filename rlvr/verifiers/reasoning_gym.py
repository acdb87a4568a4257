"""The `reasoning_gym` verifier: a reasoning-gym task's own `score_answer` on the completion's final answer
(the last `<answer>` tag, else the last box, `#### N` or "the answer is ..."), never a silent 0."""

from __future__ import annotations

import enum
import importlib.util
import json
import math
import re
import traceback
from collections.abc import Mapping
from typing import Any

from rlvr.types import Example, Score, Status
from rlvr.verifiers.base import Verifier
from rlvr.verifiers.math.extract import Extraction, extract_answer, mask_fences
from rlvr.verifiers.registry import register

__all__ = [
    "FIELD",
    "LIST_SEPARATOR",
    "MISSING_LIBRARY",
    "RESERVED",
    "ReasoningGymVerifier",
    "build_config",
    "build_dataset",
    "find_answer",
    "library_installed",
    "task_names",
]

#: the Example.metadata (or `rlvr verify` row) field with what scoring needs: {"task", "config", "entry"}
FIELD = "reasoning_gym"
MISSING_LIBRARY = "reasoning-gym is not installed (pip install 'rlvr[reasoning-gym]')"

_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_OPEN_TAG = "<answer>"
# tags offered together: nothing between them but space, commas, "or"/"and" (`<answer>3</answer> or <answer>4</answer>`)
_JOINED = re.compile(r"^(?:\s|,|;|\bor\b|\band\b)*$")
# a whole answer wrapped in a text command, as models box words: \boxed{\text{hcnir}}
_TEXT_WRAP = re.compile(r"^\\(?:text|textbf|textrm|mathrm|mbox)\s*\{(?P<inner>[^{}]*)\}$")
_DETAIL_CHARS = 300
#: a list or tuple option's items are joined by this in a spec (`operators=+|-`): commas separate options
LIST_SEPARATOR = "|"
#: options rlvr sets itself (the generator's seed and stream length), never a task's config
RESERVED = ("seed", "size")


def library_installed() -> bool:
    """Whether the reasoning-gym package can be imported here."""
    return importlib.util.find_spec("reasoning_gym") is not None


def task_names() -> list[str]:
    """Every task reasoning-gym registers (its generators), sorted."""
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


def _unknown_task(task: str) -> ValueError:
    import difflib

    known = task_names()
    close = difflib.get_close_matches(task, known, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
    return ValueError(f"unknown reasoning-gym task {task!r} ({hint})")


def _truth(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise ValueError("expected true or false")


def _guess(text: str) -> Any:
    """A value whose default is None: an integer, a number, true/false, else the text."""
    for kind in (int, float, _truth):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _coerce(default: Any, text: str) -> Any:
    """`text` as a value of the default's type: bool, int, float, str, a `|`-separated list or tuple, an
    enum or a date/time (ISO); ValueError when it is not one."""
    if isinstance(default, bool):
        return _truth(text)
    if isinstance(default, (list, tuple)):
        items = [_coerce(default[0], t) if default else _guess(t) for t in text.split(LIST_SEPARATOR)]
        return type(default)(items)
    if default is None:
        return _guess(text)
    if hasattr(default, "fromisoformat"):
        return type(default).fromisoformat(text)
    if isinstance(default, (int, float, str, enum.Enum)):
        return type(default)(text)
    raise ValueError(f"a {type(default).__name__} cannot be given in a spec")


def build_config(task: str, options: Mapping[str, str], **fixed: Any) -> tuple[Any, Any]:
    """(dataset class, config) for `task` with its config fields set from spec text (`options`, each value read
    as its field's type) and `fixed` (seed, size). One-line ValueError for an unknown task, an unknown or
    reserved key, a value of the wrong type or a config the task's own validation refuses."""
    import dataclasses

    from reasoning_gym.factory import DATASETS

    if task not in DATASETS:
        raise _unknown_task(task)
    dataset_cls, config_cls = DATASETS[task]
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    values: dict[str, Any] = {}
    for key, text in options.items():
        if key not in fields or key in RESERVED:
            known = ", ".join(sorted(k for k in fields if k not in RESERVED)) or "none"
            raise ValueError(f"reasoning-gym task {task!r} has no option {key!r} (options: {known})")
        field = fields[key]
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        try:
            values[key] = _coerce(None if default is dataclasses.MISSING else default, str(text))
        except (ValueError, TypeError) as err:
            raise ValueError(f"reasoning-gym task {task!r}: option {key}={text!r}: {err}") from None
    try:
        config = config_cls(**values, **fixed)
        if hasattr(config, "validate"):
            config.validate()
    except (AssertionError, ValueError, TypeError) as err:  # the task's own validation refuses the config
        raise ValueError(
            f"reasoning-gym task {task!r} refuses {dict(options)}: {str(err) or type(err).__name__}"
        ) from None
    return dataset_cls, config


def build_dataset(task: str, options: Mapping[str, str], **fixed: Any) -> Any:
    """reasoning-gym's dataset object for `task` (build_config's checks and errors, then its constructor)."""
    dataset_cls, config = build_config(task, options, **fixed)
    return dataset_cls(config=config)


def _unwrap(answer: str) -> str:
    m = _TEXT_WRAP.match(answer.strip())
    return m["inner"].strip() if m else answer.strip()


def _from_tags(text: str) -> Extraction | None:
    tags = list(_TAG.finditer(text))
    if not tags:
        return Extraction(None, "truncated") if _OPEN_TAG in text else None
    if _OPEN_TAG in text[tags[-1].end() :]:  # a later tag that never closes: cut off mid-answer
        return Extraction(None, "truncated")
    last = tags[-1][1].strip()
    if not last:
        return Extraction(None, "empty_tag")
    together = [last]
    for before, after in zip(reversed(tags[:-1]), reversed(tags[1:]), strict=True):
        if not _JOINED.match(text[before.end() : after.start()]) or not before[1].strip():
            break
        together.insert(0, before[1].strip())
    return Extraction(last, "answer_tag", tuple(together))


def find_answer(completion: str) -> Extraction:
    """The final answer a completion gives: its last `<answer>...</answer>` (reasoning-gym's own format), else
    the math extractor's box / `####` / "the answer is" with no last-number guess; text after the last `</think>`
    only, fenced code never. `together` holds the answers offered with it (a hedge has more than one)."""
    if not completion or not completion.strip():
        return Extraction(None, "empty")
    text = mask_fences(completion.rsplit("</think>", 1)[-1])
    found = _from_tags(text) or extract_answer(text, fallbacks=False)
    if found.answer is None:
        return found
    return Extraction(_unwrap(found.answer), found.method, tuple(_unwrap(a) for a in found.together))


def _record(example: Example) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(task, config, entry) from the example's FIELD; ValueError saying what is wrong."""
    record = example.metadata.get(FIELD)
    if isinstance(record, str):  # a row read from a file that stored it as JSON text
        record = json.loads(record)
    if not isinstance(record, Mapping):
        raise ValueError(f"no {FIELD!r} field (a dict with task, config, entry)")
    task, config, entry = record.get("task"), record.get("config") or {}, record.get("entry")
    if not isinstance(task, str) or not isinstance(config, Mapping) or not isinstance(entry, Mapping):
        raise ValueError(f"field {FIELD!r} needs a task name, a config dict and an entry dict")
    return task, dict(config), dict(entry)


def _excerpt(answer: str | None) -> str | None:
    return answer if answer is None or len(answer) <= _DETAIL_CHARS else answer[:_DETAIL_CHARS] + "…"


@register("reasoning_gym")
class ReasoningGymVerifier(Verifier):
    """A reasoning-gym task's own score_answer on the last <answer> tag (else \\boxed / #### / "the answer is")."""

    name = "reasoning_gym"
    description = "reasoning-gym's score_answer for the row's task (last <answer> tag, else box / #### / answer is)"
    gold_fields = ((FIELD,),)

    def __init__(self, partial: bool = False):
        """`partial=false` (default): reward 1 only for a full score; `partial=true`: the task's graded score
        (many tasks give 0.01-0.05 to any well-formed wrong answer, which `partial` rewards)."""
        if not library_installed():
            raise ValueError(f"verifier 'reasoning_gym': {MISSING_LIBRARY}")
        self.partial = bool(partial)
        self._datasets: dict[str, Any] = {}

    # a built dataset belongs to one process: pickling ships only the settings
    def __getstate__(self) -> dict[str, Any]:
        return {"partial": self.partial}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _datasets={})

    def warmup(self) -> None:
        """Import reasoning-gym (about a second) before the first deadline starts."""
        import reasoning_gym  # noqa: F401

    def _dataset(self, task: str, config: dict[str, Any]) -> Any:
        """The task's dataset object whose score_answer judges (built once per task and config, per process)."""
        key = json.dumps([task, config], sort_keys=True, default=str)
        if key not in self._datasets:
            self._datasets[key] = build_dataset(task, {k: str(v) for k, v in config.items()})
        return self._datasets[key]

    def score(self, completion: str, example: Example) -> Score:
        details: dict[str, Any] = {"task": None, "extracted": None, "method": None}
        try:
            task, config, entry = _record(example)
        except ValueError as err:
            return Score(0.0, Status.ERROR, {**details, "error": f"bad gold: {err}"})
        details["task"] = task
        found = find_answer(completion or "")
        details.update(extracted=_excerpt(found.answer), method=found.method)
        if found.answer is None:
            return Score(0.0, Status.NO_ANSWER, details)
        if (offered := len(set(found.together))) > 1:
            return Score(0.0, Status.HEDGED, {**details, "note": f"{offered} answers offered together"})
        try:
            raw = self._dataset(task, config).score_answer(found.answer, entry)
        except Exception as err:  # noqa: BLE001 - a verifier turns any exception (the task's own code) into status error
            last = traceback.format_exception_only(type(err), err)[-1].strip()
            return Score(0.0, Status.ERROR, {**details, "error": f"score_answer raised: {last}"})
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw) or not 0 <= raw <= 1:
            why = f"score_answer returned {raw!r}, not a score in [0, 1]"
            return Score(0.0, Status.ERROR, {**details, "error": why})
        correct = raw >= 1.0 - 1e-9
        reward = float(raw) if self.partial else float(correct)
        return Score(reward, Status.CORRECT if correct else Status.WRONG, {**details, "task_score": float(raw)})
