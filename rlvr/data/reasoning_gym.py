"""reasoning-gym's procedural tasks as Examples (`reasoning_gym:countdown:seed=0,min_numbers=3`): seeded, and
split into train and test by a hash of the question as `arith` is, so a held-out set never overlaps training."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from rlvr.data.arith import split_of
from rlvr.errors import InputError
from rlvr.types import Example
from rlvr.verifiers.reasoning_gym import (
    FIELD,
    MISSING_LIBRARY,
    RESERVED,
    build_config,
    build_dataset,
    library_installed,
)

__all__ = ["NAME", "STREAM_SIZE", "format_options", "generate_reasoning_gym", "parse_options"]

#: the benchmark name of a spec: `reasoning_gym:TASK[:key=value,...]`
NAME = "reasoning_gym"
#: items generated per (task, seed, config) unless the spec sets `size=`; train and test both draw from this
#: one stream (several tasks build their items from `size`, so it is fixed, not derived from how many are asked)
STREAM_SIZE = 20_000


def _seed_of(task: str, seed: int) -> int:
    """The generator seed for rlvr seed `seed`: reasoning-gym seeds item i with seed + i, so consecutive rlvr
    seeds would share all but one item; a hash makes their streams unrelated."""
    return int.from_bytes(hashlib.sha256(f"{NAME}/{task}/{seed}".encode()).digest()[:8], "big")


def _integer(spec: str, key: str, text: str, least: int) -> int:
    value = text.strip()
    if not value.lstrip("-").isdigit() or int(value) < least:
        raise InputError(f"benchmark spec {spec!r}: {key} must be an integer >= {least}, got {text!r}")
    return int(value)


def parse_options(spec: str, text: str, *, seed: int = 0) -> dict[str, Any]:
    """`TASK[:key=value,...]` (the part after `reasoning_gym:`) as options: task, seed (default `seed`), size when
    given, and the task's config fields as text (`config`). An unknown task, an unknown key or a value of the
    wrong type is an InputError naming it; nothing is generated."""
    task, *rest = re.split(r"[:,]", text.strip(), maxsplit=1)  # `countdown:k=v` or `countdown,k=v`
    if not task.strip():
        raise InputError(f"benchmark spec {spec!r}: name a reasoning-gym task, e.g. {NAME}:countdown")
    if not library_installed():
        raise InputError(f"benchmark spec {spec!r}: {MISSING_LIBRARY}")
    options: dict[str, Any] = {"task": task.strip(), "seed": seed}
    config: dict[str, str] = {}
    for part in (p.strip() for p in "".join(rest).split(",") if p.strip()):
        key, eq, value = (s.strip() for s in part.partition("="))
        if not eq:
            raise InputError(f"benchmark spec {spec!r}: option {part!r} is not key=value")
        if key in RESERVED:
            options[key] = _integer(spec, key, value, 0 if key == "seed" else 1)
        else:
            config[key] = value
    try:
        build_config(options["task"], config, size=1)  # checks the task, the keys and the values
    except ValueError as err:
        raise InputError(f"benchmark spec {spec!r}: {err}") from None
    return {**options, "config": config}


def format_options(options: dict[str, Any]) -> str:
    """The canonical spec text: `reasoning_gym:TASK:seed=N[,size=N][,key=value sorted]`."""
    parts = [f"seed={options['seed']}"] + ([f"size={options['size']}"] if "size" in options else [])
    parts += [f"{k}={v}" for k, v in sorted(options.get("config", {}).items())]
    return f"{NAME}:{options['task']}:" + ",".join(parts)


def _plain(value: Any) -> Any:
    """A value JSON cannot hold as what it can: numpy scalars and arrays as numbers and lists, else its text."""
    for method in ("item", "tolist"):
        if callable(getattr(value, method, None)):
            return getattr(value, method)()
    return str(value)


def generate_reasoning_gym(
    n: int,
    *,
    task: str,
    seed: int = 0,
    split: str = "train",
    size: int | None = None,
    config: dict[str, str] | None = None,
) -> list[Example]:
    """`n` distinct problems of a reasoning-gym task, each carrying in metadata[FIELD] what its verifier needs
    (task, config, the JSON-safe entry).

    Deterministic for (task, seed, split, size, config): the first `size` (default STREAM_SIZE) items of the
    task's generator, seeded from `seed`, are read in order, and an item goes to the test split when a hash of
    its question says so (1 in 5, the rule of `arith`): train and test never share a question."""
    if split not in ("train", "test"):
        raise InputError(f"{NAME}: split must be train or test, got {split!r}")
    if n < 0:
        raise InputError(f"{NAME}: n must be >= 0, got {n}")
    config = dict(config or {})
    stream = size or STREAM_SIZE
    try:
        dataset = build_dataset(task, config, seed=_seed_of(task, seed), size=stream)
    except ValueError as err:
        raise InputError(f"{NAME}: {err}") from None
    seen: set[str] = set()
    examples: list[Example] = []
    for index in range(stream):
        if len(examples) >= n:
            break
        entry = json.loads(json.dumps(dataset[index], default=_plain))
        question = str(entry["question"])
        if question in seen or split_of(question) != split:
            continue
        seen.add(question)
        answer = entry.get("answer")
        examples.append(
            Example(
                f"{NAME}/{task}/{split}/{seed}/{len(examples)}",
                question,
                None if answer is None else str(answer),
                {"benchmark": NAME, FIELD: {"task": task, "config": config, "entry": entry}},
            )
        )
    if len(examples) < n:
        raise InputError(
            f"{NAME}:{task}: only {len(examples)} distinct {split} problems among the first {stream} generated; "
            "ask for fewer or set size= higher"
        )
    return examples
