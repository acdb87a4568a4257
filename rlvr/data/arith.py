"""Procedurally generated arithmetic problems with exact integer golds: a seeded dataset small models
can partly solve, so a CPU run shows GRPO learning in minutes."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, replace

from rlvr.errors import InputError
from rlvr.types import Example

__all__ = ["DIFFICULTIES", "ArithSpec", "generate_arith", "split_of"]

# Python's own operator precedence gives the gold (`eval` of a string we built from digits and
# these three symbols only); division is left out so every gold is an exact integer.
OPERATORS = ("+", "-", "*")


@dataclass(frozen=True)
class ArithSpec:
    """What a problem looks like: `terms` numbers of 1..`digits` digits joined by `ops`."""

    terms: int = 2
    digits: int = 2
    ops: str = "+-"

    def check(self) -> ArithSpec:
        if not 2 <= self.terms <= 6:
            raise InputError(f"arith: terms must be 2..6, got {self.terms}")
        if not 1 <= self.digits <= 6:
            raise InputError(f"arith: digits must be 1..6, got {self.digits}")
        bad = set(self.ops) - set(OPERATORS)
        if not self.ops or bad:
            raise InputError(f"arith: ops must be a non-empty string of {''.join(OPERATORS)}, got {self.ops!r}")
        return self


DIFFICULTIES: dict[str, ArithSpec] = {
    "easy": ArithSpec(terms=2, digits=2, ops="+"),
    "medium": ArithSpec(terms=2, digits=2, ops="+-"),
    "hard": ArithSpec(terms=3, digits=2, ops="+-*"),
    "expert": ArithSpec(terms=4, digits=3, ops="+-*"),
}

# 1 in SPLIT_MODULUS problems (by a hash of the expression) is reserved for the test split, so
# train and test never share a problem whatever the seeds.
SPLIT_MODULUS = 5


def split_of(expression: str) -> str:
    """The split a problem's text belongs to: test for 1 in SPLIT_MODULUS (by a hash of it), else train."""
    bucket = int.from_bytes(hashlib.sha256(expression.encode()).digest()[:4], "big") % SPLIT_MODULUS
    return "test" if bucket == 0 else "train"


def _expression(rng: random.Random, spec: ArithSpec) -> str:
    numbers = [rng.randint(0 if spec.digits == 1 else 1, 10**spec.digits - 1) for _ in range(spec.terms)]
    text = str(numbers[0])
    for number in numbers[1:]:
        text += f" {rng.choice(spec.ops)} {number}"
    return text


def generate_arith(
    n: int,
    *,
    seed: int = 0,
    difficulty: str = "medium",
    split: str = "train",
    terms: int | None = None,
    digits: int | None = None,
    ops: str | None = None,
) -> list[Example]:
    """`n` distinct arithmetic problems ("What is 37 - 12 * 4?") with exact integer golds.

    Deterministic for (seed, difficulty, split, overrides): example i is the same whatever `n`,
    and its id (`arith/<difficulty>/<split>/<seed>/<i>`) says so. `difficulty` picks a preset in
    DIFFICULTIES; `terms`, `digits`, `ops` override its fields. Train and test splits are
    disjoint by construction (a hash of the expression decides the split)."""
    if difficulty not in DIFFICULTIES:
        raise InputError(f"arith: unknown difficulty {difficulty!r} (known: {', '.join(DIFFICULTIES)})")
    if split not in ("train", "test"):
        raise InputError(f"arith: split must be train or test, got {split!r}")
    if n < 0:
        raise InputError(f"arith: n must be >= 0, got {n}")
    overrides = {k: v for k, v in dict(terms=terms, digits=digits, ops=ops).items() if v is not None}
    spec = replace(DIFFICULTIES[difficulty], **overrides).check()
    rng = random.Random(f"arith/{seed}/{spec}")
    seen: set[str] = set()
    examples: list[Example] = []
    attempts = 0
    while len(examples) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise InputError(f"arith: only {len(examples)} distinct {split} problems exist for {spec}; ask for fewer")
        expression = _expression(rng, spec)
        if expression in seen or split_of(expression) != split:
            continue
        seen.add(expression)
        gold = eval(expression, {"__builtins__": {}})  # digits and + - * only: built above
        ident = f"arith/{difficulty}/{split}/{seed}/{len(examples)}"
        examples.append(
            Example(
                ident,
                f"What is {expression}?",
                str(gold),
                {"benchmark": "arith", "expression": expression, "difficulty": difficulty},
            )
        )
    return examples
