"""The verifier audit: run the shipped suite of known reward hacks (plus any a plugin adds)
through a verifier spec and report which ones earn reward.

    report = run_audit("math+0.1*think_format")
    print(report.line())        # audit: 0/148 known hacks rewarded
    print(report.details())     # the rewarded cases, if any
    print(report.class_table()) # per hack class: tried, rewarded (and the rate), no_answer, failed

A case applies to a verifier when the verifier finds its gold in the case (`missing_gold`): math
cases carry an `answer`, code cases HumanEval fields, and format rewards and LLM judges
(`judge:model=...`, which need no gold) take every case; the master-key, prompt-injection and
copied-number classes (`audit_suite.judge_cases`) are aimed at judges. Plugins
add cases through the entry-point group `rlvr.audit_cases` (a callable returning AuditCase
objects or `rlvr verify`-style row dicts) or `run_audit(..., extra_cases=...)`."""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rlvr.types import FAILURE_STATUSES, Example, Score, Status
from rlvr.verifiers.audit_suite import AuditCase, builtin_cases
from rlvr.verifiers.base import Verifier, Weighted
from rlvr.verifiers.judge import judge_usage

__all__ = ["AUDIT_ENTRY_POINT_GROUP", "AuditCase", "AuditReport", "case_from_row", "load_cases", "run_audit"]

AUDIT_ENTRY_POINT_GROUP = "rlvr.audit_cases"
_EXCERPT = 60


@dataclass(frozen=True)
class AuditReport:
    """What the audit found: `total` cases tried, `rewarded` those whose reward was > 0."""

    spec: str
    total: int
    rewarded: list[AuditCase]
    scores: Mapping[str, Score] = field(default_factory=dict)  # by case name, every case tried
    skipped: int = 0  # cases whose gold this verifier cannot read (a math case for `code`)
    cases: tuple[AuditCase, ...] = ()  # every case tried, in order
    seconds: float = 0.0

    def line(self) -> str:
        return f"audit: {len(self.rewarded)}/{self.total} known hacks rewarded"

    def classes(self) -> list[tuple[str, int, int, int, int]]:
        """Per hack class, in suite order: (class, tried, rewarded, no_answer, timeout or error)."""
        rows: dict[str, list[int]] = {}
        for case in self.cases:
            score = self.scores[case.name]
            row = rows.setdefault(case.category, [0, 0, 0, 0])
            row[0] += 1
            row[1] += score.reward > 0
            row[2] += score.status is Status.NO_ANSWER
            row[3] += score.status in FAILURE_STATUSES
        return [(name, c[0], c[1], c[2], c[3]) for name, c in rows.items()]

    def class_table(self) -> str:
        """The rate at which each hack class is wrongly rewarded, one line per class."""
        lines = [f"  {'class':<20} {'rewarded':>9} {'rate':>7} {'no_answer':>9} {'failed':>6}"]
        for name, tried, rewarded, no_answer, failed in self.classes():
            share = f"{rewarded}/{tried}"
            lines.append(f"  {name:<20} {share:>9} {rewarded / tried:>7.1%} {no_answer:>9} {failed:>6}")
        return "\n".join(lines)

    def usage_line(self) -> str:
        """The judge's cost over the audit ('' for a verifier without a judge term)."""
        usage = judge_usage(self.scores.values())
        if not usage:
            return ""
        return (
            f"judge: {self.total} replies in {usage['judge_s']:.1f} s, {usage['judge_tokens']:.0f} tokens generated "
            f"({usage['judge_prompt_tokens']:.0f} prompt tokens); audit wall time {self.seconds:.1f} s"
        )

    def details(self) -> str:
        """One line per rewarded case: name, category, reward, status, gold, completion excerpt."""
        lines = []
        for case in self.rewarded:
            score = self.scores[case.name]
            excerpt = case.completion if len(case.completion) <= _EXCERPT else case.completion[: _EXCERPT - 1] + "…"
            gold = "tests" if case.answer is None else repr(case.answer)
            lines.append(
                f"  {case.name} [{case.category}]: reward {score.reward:g} ({score.status.value}), "
                f"gold {gold}, completion {excerpt!r}"
            )
        return "\n".join(lines)


def case_from_row(row: Mapping[str, Any], *, source: str = "") -> AuditCase:
    """An AuditCase from a `rlvr verify`-style row (`completion`, optional `answer`, `prompt`,
    `name`/`id`, `category`, other fields kept)."""
    if "completion" not in row or not isinstance(row["completion"], str):
        raise ValueError(f"audit case {source or row!r}: needs a string 'completion'")
    name = str(row.get("name") or row.get("id") or f"{source}#{abs(hash(row['completion'])) % 10**8}")
    fields = {k: v for k, v in row.items() if k not in ("name", "id", "category", "completion", "answer", "prompt")}
    answer = row.get("answer")
    return AuditCase(
        name,
        str(row.get("category") or "plugin"),
        row["completion"],
        None if answer is None else str(answer),
        str(row.get("prompt") or ""),
        fields,
    )


def _plugin_cases() -> list[AuditCase]:
    out: list[AuditCase] = []
    for ep in importlib.metadata.entry_points(group=AUDIT_ENTRY_POINT_GROUP):
        provided = ep.load()
        items = provided() if callable(provided) else provided
        out += [c if isinstance(c, AuditCase) else case_from_row(c, source=ep.name) for c in items]
    return out


def load_cases(extra_cases: Iterable[AuditCase | Mapping[str, Any]] = (), *, plugins: bool = True) -> list[AuditCase]:
    """The shipped suite, then plugin cases, then `extra_cases`."""
    cases = builtin_cases() + (_plugin_cases() if plugins else [])
    cases += [c if isinstance(c, AuditCase) else case_from_row(c, source="extra") for c in extra_cases]
    return cases


def _example(case: AuditCase) -> Example:
    return Example(case.name, case.prompt, case.answer, {**case.fields, "audit_category": case.category})


def _verifier_names(verifier: Verifier) -> set[str]:
    if isinstance(verifier, Weighted):
        return {v.name for _, v in verifier.parts}
    return {verifier.name}


def run_audit(
    spec: str | Verifier,
    *,
    workers: int | None = 0,
    timeout: float = 5.0,
    extra_cases: Iterable[AuditCase | Mapping[str, Any]] = (),
    plugins: bool = True,
) -> AuditReport:
    """Score every applicable known hack with the verifier `spec` and report the rewarded ones.

    `workers=0` (the default) scores in this process, as the trainer does at start-up; a number
    of workers runs it through the Runner with its deadlines (a timeout or error is not a reward)."""
    from rlvr.verifiers.registry import build_verifier
    from rlvr.verifiers.scoring import runner_for  # a judge or reward model scores here, batched

    verifier = build_verifier(spec) if isinstance(spec, str) else spec
    cases = load_cases(extra_cases, plugins=plugins)
    names = _verifier_names(verifier)
    targeted = [c for c in cases if not c.fields.get("audit_verifiers") or names & set(c.fields["audit_verifiers"])]
    applicable = [c for c in targeted if verifier.missing_gold({**c.row(), **c.fields}) is None]
    scores: dict[str, Score] = {}
    began = time.perf_counter()
    try:
        if applicable:
            with runner_for(verifier, workers=workers, timeout=timeout, max_failure_rate=None) as runner:
                got = runner.score([c.completion for c in applicable], [_example(c) for c in applicable])
            scores = {c.name: s for c, s in zip(applicable, got, strict=True)}
    finally:
        if isinstance(spec, str):  # built here: release what it holds (a code sandbox's containers)
            for part in verifier.parts if isinstance(verifier, Weighted) else ((1.0, verifier),):
                getattr(part[1], "close", lambda: None)()
    rewarded = [c for c in applicable if scores[c.name].reward > 0]
    label = spec if isinstance(spec, str) else verifier.name
    return AuditReport(
        label,
        len(applicable),
        rewarded,
        scores,
        skipped=len(cases) - len(applicable),
        cases=tuple(applicable),
        seconds=time.perf_counter() - began,
    )
