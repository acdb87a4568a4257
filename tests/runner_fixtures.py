"""Misbehaving verifiers for the runner tests. They live in an importable module (not a test file)
so spawned worker processes can unpickle them."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from rlvr.types import Example, Score, Status
from rlvr.verifiers.base import Verifier


class Scripted(Verifier):
    """Does what the completion says: "ok"/"no" score 1/0, "hang" sleeps forever, "spin" burns
    CPU forever, "raise" raises, "die" exits the worker, "child" starts a grandchild process and
    hangs (its pid goes to the file named in example.metadata["pid_file"]), "sleep:S" sleeps S s."""

    name = "scripted"

    def score(self, completion: str, example: Example) -> Score:
        command, _, arg = completion.partition(":")
        if command == "ok":
            return Score(1.0, Status.CORRECT)
        if command == "no":
            return Score(0.0, Status.WRONG)
        if command == "hang":
            time.sleep(10_000)
        if command == "spin":
            while True:
                pass
        if command == "raise":
            raise ZeroDivisionError(f"scripted failure on {example.id}")
        if command == "die":
            os._exit(7)
        if command == "child":
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(10_000)"])
            with open(example.metadata["pid_file"], "w") as f:
                f.write(str(child.pid))
            time.sleep(10_000)
        if command == "sleep":
            time.sleep(float(arg.split(":")[0]))
            return Score(1.0, Status.CORRECT, {"slept": float(arg.split(":")[0]), "pid": os.getpid()})
        if command == "pid":
            return Score(1.0, Status.CORRECT, {"pid": os.getpid()})
        raise ValueError(f"unknown script {completion!r}")


class Unpicklable(Verifier):
    name = "unpicklable"

    def __init__(self) -> None:
        self.handle = lambda: None  # lambdas cannot be pickled

    def score(self, completion: str, example: Example) -> Score:
        return Score(1.0, Status.CORRECT)


class RawMathVerify(Verifier):
    """math-verify's parse + verify with its own (signal.alarm) timeouts switched off, as they must
    be off the main thread: on a power tower like 9^{9^{9^{9}}} this runs for minutes."""

    name = "raw_math_verify"

    def warmup(self) -> None:
        import math_verify  # noqa: F401  (the import is slow; keep it off the items' clock)

    def score(self, completion: str, example: Example) -> Score:
        from math_verify import parse, verify

        gold = parse(f"${example.answer}$", parsing_timeout=None)
        answer = parse(completion, parsing_timeout=None)
        ok = verify(gold, answer, timeout_seconds=None)
        return Score(float(ok), Status.CORRECT if ok else Status.WRONG)


class BadWarmup(Scripted):
    """Cannot start: its warmup (run once per worker, before any item) raises."""

    name = "bad_warmup"

    def warmup(self) -> None:
        raise RuntimeError("grammar files missing")


class SlowWarmup(Scripted):
    """Warmup takes longer than an item's deadline: it must not count against the first item."""

    name = "slow_warmup"

    def warmup(self) -> None:
        time.sleep(1.5)


class Chatty(Scripted):
    """Prints while scoring, as debugging plugins do."""

    name = "chatty"

    def score(self, completion: str, example: Example) -> Score:
        print("debug: scoring", example.id)
        return super().score(completion, example)
