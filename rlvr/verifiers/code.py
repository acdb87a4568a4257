"""The `code` verifier: run the completion's last python block against the example's tests
(HumanEval `prompt`/`test`/`entry_point`, or MBPP-style `tests`) in a sandbox."""

from __future__ import annotations

import ast
import re
import secrets
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rlvr import names
from rlvr.sandboxes import ExecResult, Limits, Sandbox, SandboxError, get_sandbox
from rlvr.types import Example, Score, Status
from rlvr.verifiers.base import Verifier
from rlvr.verifiers.registry import register

__all__ = ["CodeVerifier", "build_program", "extract_code"]

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3"}
_COUNTS = "__rlvr_asserts"


def extract_code(completion: str) -> str:
    """The last fenced python (or untagged) block; an unclosed last fence counts (truncated
    output); with no fence at all, the whole completion."""
    blocks = [body for tag, body in _FENCE.findall(completion) if tag.lower() in _PYTHON_TAGS]
    return blocks[-1] if blocks else completion


class _CountAsserts(ast.NodeTransformer):
    """`assert x` → try it, count it passed or failed, go on (for partial credit)."""

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        code = f"try:\n    pass\nexcept BaseException:\n    {_COUNTS}[1] += 1\nelse:\n    {_COUNTS}[0] += 1"
        wrapper = ast.parse(code).body[0]
        wrapper.body = [node]
        return ast.copy_location(wrapper, node)


_GUARD = "__rlvr_plain"
# Defined after the solution, used by every comparison inside a test's asserts: a value whose type
# brings its own Python-level comparison or arithmetic (`__eq__ = lambda *a: True`) fails the check
# instead of passing it. Containers are checked item by item (to a bounded size and depth).
_GUARD_SOURCE = f"""
def {_GUARD}(value, _depth=0):
    import types as _t
    kind = type(value)
    for name in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__sub__", "__rsub__", "__abs__",
                 "__bool__", "__float__", "__contains__", "__hash__"):
        if isinstance(getattr(kind, name, None), _t.FunctionType):
            raise AssertionError(f"{{kind.__name__}} defines its own {{name}}: not a plain value")
    if _depth < 4 and kind in (list, tuple, set, frozenset) and len(value) < 10_000:
        for item in value:
            {_GUARD}(item, _depth + 1)
    if _depth < 4 and kind is dict and len(value) < 10_000:
        for item in value.items():
            {_GUARD}(item, _depth + 1)
    return value
"""


class _GuardComparisons(ast.NodeTransformer):
    """Inside asserts, every operand of a comparison goes through the plain-value guard."""

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        for compare in [n for n in ast.walk(node.test) if isinstance(n, ast.Compare)]:
            compare.left = _guarded(compare.left)
            compare.comparators = [_guarded(c) for c in compare.comparators]
        return node


def _guarded(expr: ast.expr) -> ast.expr:
    return ast.copy_location(ast.Call(ast.Name(_GUARD, ast.Load()), [expr], []), expr)


def _tests(metadata: Mapping[str, Any]) -> tuple[str, str, str | None]:
    """(test code, code to put before the solution, entry point) from HumanEval or MBPP fields."""
    if metadata.get("test") and metadata.get("entry_point"):
        test = f"{metadata['test']}\n\ncheck({metadata['entry_point']})\n"
        return test, str(metadata.get("prompt") or ""), str(metadata["entry_point"])
    asserts = metadata.get("tests") or metadata.get("test_list")
    if isinstance(asserts, str):
        asserts = [asserts]
    if asserts:
        setup = "\n".join(filter(None, [metadata.get("test_setup_code") or "", *(metadata.get("test_imports") or [])]))
        return setup + "\n" + "\n".join(str(a) for a in asserts) + "\n", "", None
    raise ValueError("example has no tests: expected HumanEval fields 'test' + 'entry_point' or a list 'tests'")


def build_program(code: str, metadata: Mapping[str, Any], *, partial: bool, nonce: str) -> str:
    """Solution, then tests, then a line only reached when the tests ran to the end. The nonce
    keeps a solution that exits early with status 0 (os._exit(0)) from looking like a pass."""
    test, prompt, entry_point = _tests(metadata)
    if entry_point is None:
        solution = code
    elif re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE):
        # the whole function rewritten (chat models): keep the prompt's imports and helpers
        solution = _prompt_header(prompt, entry_point) + code
    else:
        solution = prompt + code  # a body continuing the prompt (base models)
    tree = _GuardComparisons().visit(ast.parse(test))
    if partial:
        tree = ast.fix_missing_locations(_CountAsserts().visit(tree))
        test = f"{_GUARD_SOURCE}\n{_COUNTS} = [0, 0]\n{ast.unparse(tree)}\n"
        done = f"print('\\n{nonce}', {_COUNTS}[0], {_COUNTS}[1])\n"
    else:
        test = f"{_GUARD_SOURCE}\n{ast.unparse(ast.fix_missing_locations(tree))}\n"
        done = f"print('\\n{nonce}')\n"
    return f"{solution}\n\n{test}\n{done}"


def _prompt_header(prompt: str, entry_point: str) -> str:
    """The prompt up to the entry point's `def` (imports, helper functions), else its imports."""
    m = re.search(rf"^def\s+{re.escape(entry_point)}\s*\(", prompt, re.MULTILINE)
    if m:
        return prompt[: m.start()]
    return "".join(line + "\n" for line in prompt.splitlines() if line.startswith(("import ", "from ")))


@register("code")
class CodeVerifier(Verifier):
    """Run the last python block against the example's tests in a sandbox (HumanEval or MBPP)."""

    description = "run the completion's code against the example's tests in a sandbox (docker/bwrap/local)"
    needs_gold = True
    gold_fields = (("test", "entry_point"), ("tests",), ("test_list",))

    def __init__(
        self, partial: bool = False, backend: str = "auto", timeout: float = 3.0, memory: int = 512, workers: int = 4
    ):
        if backend not in names.SANDBOX_CHOICES:
            raise ValueError(f"code: unknown backend {backend!r} ({', '.join(names.SANDBOX_CHOICES)})")
        self.partial, self.backend, self.workers = bool(partial), backend, int(workers)
        self.limits = Limits(timeout_s=float(timeout), memory_mb=int(memory))
        self._sandbox: Sandbox | None = None
        self._lock = threading.Lock()

    # a sandbox (containers, threads) belongs to one process: pickling ships only the settings
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_sandbox", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _sandbox=None, _lock=threading.Lock())

    @property
    def sandbox(self) -> Sandbox:
        with self._lock:
            if self._sandbox is None:
                # docker: a container for each run in flight, and a spare for when one is recycled
                self._sandbox = get_sandbox(self.backend, **({"pool_size": self.workers + 1} if self._docker() else {}))
            return self._sandbox

    def _docker(self) -> bool:
        from rlvr.sandboxes.docker import DockerSandbox

        return self.backend == "docker" or (self.backend == "auto" and DockerSandbox.available()[0])

    def warmup(self) -> None:
        """Start the sandbox before the first verdict is on anyone's clock (runner workers call
        this): docker gets two ready containers, so a recycled one is replaced off the clock.
        Raises SandboxError when the sandbox cannot work at all."""
        sandbox = self.sandbox
        if hasattr(sandbox, "prestart"):
            sandbox.prestart(self.limits, count=2)
        sandbox.run("pass", limits=self.limits)

    def close(self) -> None:
        with self._lock:
            if self._sandbox is not None:
                self._sandbox.close()
                self._sandbox = None

    def score(self, completion: str, example: Example) -> Score:
        """Raises SandboxError when the sandbox itself is broken: never a wrong answer."""
        prepared = self._prepare(completion, example)
        if isinstance(prepared, Score):
            return prepared
        program, nonce = prepared
        return self._verdict(self.sandbox.run(program, limits=self.limits), nonce)

    def _prepare(self, completion: str, example: Example) -> Score | tuple[str, str]:
        """The program to run and its nonce, or the verdict when there is nothing to run."""
        code = extract_code(completion)
        if not code.strip():
            return Score(0.0, Status.NO_ANSWER, {"reason": "no code in the completion"})
        nonce = secrets.token_hex(12)
        try:
            return build_program(code, example.metadata, partial=self.partial, nonce=nonce), nonce
        except (ValueError, SyntaxError) as err:  # the example's own tests are broken: bad gold
            return Score(0.0, Status.ERROR, {"error": f"example {example.id}: {err}"})

    def score_batch(self, completions: Sequence[str], examples: Sequence[Example]) -> list[Score]:
        """In parallel across the sandbox (`workers` runs at once); a broken sandbox gives status
        error for the items it broke, never wrong. Programs are built on the calling thread:
        CPython 3.11's ast.parse is not safe in threads ("AST constructor recursion depth
        mismatch"), so only the sandbox runs go to the pool."""
        prepared = [self._prepare(c, e) for c, e in zip(completions, examples, strict=True)]
        _ = self.sandbox  # start it once, not in every thread

        def one(item: Score | tuple[str, str]) -> Score:
            if isinstance(item, Score):
                return item
            program, nonce = item
            try:
                return self._verdict(self.sandbox.run(program, limits=self.limits), nonce)
            except SandboxError as err:
                return Score(0.0, Status.ERROR, {"error": f"sandbox: {err}"})

        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            return list(pool.map(one, prepared))

    def _verdict(self, result: ExecResult, nonce: str) -> Score:
        details: dict[str, Any] = {
            "exec_status": result.status.value,
            "exit_code": result.exit_code,
            "backend": result.backend,
            "duration_s": round(result.duration_s, 3),
        }
        finished = [line.split() for line in result.stdout.splitlines() if line.startswith(nonce)]
        if not result.ok or not finished:
            details["stderr"] = result.stderr[-1000:]
            if result.ok:
                details["reason"] = "exited before the tests finished"
            if not self.partial or not finished:
                return Score(0.0, Status.WRONG, details)
        if not self.partial:
            return Score(1.0, Status.CORRECT, details)
        passed, failed = int(finished[-1][1]), int(finished[-1][2])
        total = passed + failed
        details.update(asserts_passed=passed, asserts_total=total)
        reward = passed / total if total else 0.0
        return Score(reward, Status.CORRECT if total and not failed and result.ok else Status.WRONG, details)
