"""`rlvr verify` (score a JSONL file of completions with a verifier) and `rlvr verifiers list`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click

from rlvr.errors import InputError

SPEC_HELP = (
    "Verifier name or weighted spec: 'math', 'math+0.1*think_format', options after a colon "
    "as key=value pairs: 'overlong:max_tokens=512,buffer=128'. See `rlvr verifiers list`."
)


@click.command("verify")
@click.option("--verifier", "-v", "spec", default=None, metavar="NAME|SPEC", help=SPEC_HELP)
@click.option(
    "--input",
    "-i",
    "input_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL file, one object per line with 'completion' (the model's text) and the gold the verifier needs "
    "('answer' for math; HumanEval 'prompt'/'test'/'entry_point' or MBPP 'tests' for code; none for format rewards); "
    "every other field is kept and given to the verifier as example metadata.",
)
@click.option(
    "--output",
    "-o",
    "output_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the scored rows (JSONL: each input row plus 'reward', 'status', 'details', written "
    "and flushed as they are scored). Default: standard output, with the summary on standard error.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Worker processes (default: one per CPU core; 0 scores in this process, without deadlines). "
    "With --audit the default is 0.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Hard deadline in seconds per verdict; a stuck verdict's worker is killed and the row gets status 'timeout'.",
)
@click.option(
    "--max-failure-rate",
    type=click.FloatRange(0, 1),
    default=None,
    help="Exit with code 1 (after writing every row and the summary) when more than this share of "
    "rows got status timeout or error. Default: report only.",
)
@click.option(
    "--audit",
    "audit_spec",
    default=None,
    metavar="NAME|SPEC",
    help="Instead of scoring a file, run the shipped suite of known reward hacks (plus plugin cases) "
    "through this verifier spec, print 'audit: K/N known hacks rewarded' and the rewarded ones; exit 1 if K > 0.",
)
@click.option(
    "--cross-check",
    "cross_spec",
    default=None,
    metavar="NAME|SPEC",
    help="Also score every row with this second grader ('math_verify': raw math-verify; any verifier spec; "
    "a reward model). Each output row gains cross_check {reward, status, agree}; the summary says how many "
    "rows disagree, each way, by extraction method and grading path.",
)
@click.option(
    "--disagreements",
    "disagreements_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --cross-check: where to write the disagreeing rows (both verdicts, 'expected': null for a "
    "person to fill in, then usable with --labelled). Default: beside --output (else --input), "
    "NAME.disagreements.jsonl.",
)
@click.option(
    "--labelled",
    "labelled_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Score this JSONL file (instead of --input), whose rows also carry 'expected' (true/false or 1/0; "
    "'label' is read too), and print false-positive / false-negative rates per class (the row's 'class', "
    "else the extraction method); for the --cross-check grader too when given.",
)
def verify(
    spec: str | None,
    input_path: Path | None,
    output_path: Path | None,
    workers: int | None,
    timeout: float,
    max_failure_rate: float | None,
    audit_spec: str | None,
    cross_spec: str | None,
    disagreements_path: Path | None,
    labelled_path: Path | None,
) -> None:
    """Score completions in a JSONL file with a verifier and print a summary, or audit a verifier.

    Example: rlvr verify --verifier 'math+0.1*think_format' --input rows.jsonl --output scored.jsonl

    Cross-check against raw math-verify: rlvr verify -v math -i rows.jsonl -o scored.jsonl --cross-check math_verify

    Error rates on labelled rows: rlvr verify -v math --labelled labelled.jsonl

    Audit: rlvr verify --audit 'math+0.1*think_format'
    """
    if audit_spec is not None:
        return _audit(audit_spec, workers=workers or 0, timeout=timeout)
    if labelled_path is not None and input_path is not None:
        raise InputError("give --input or --labelled, not both (--labelled FILE is the input)")
    input_path = input_path or labelled_path
    if spec is None or input_path is None:
        raise InputError("--verifier and --input are required (or --labelled FILE, or --audit SPEC)")
    if disagreements_path is not None and cross_spec is None:
        raise InputError("--disagreements needs --cross-check SPEC")
    from rlvr.types import Score
    from rlvr.verifiers.cross_check import CrossCheck, default_disagreements_path
    from rlvr.verifiers.feed import RowFeed
    from rlvr.verifiers.judge import judge_usage
    from rlvr.verifiers.labelled import LabelTally
    from rlvr.verifiers.runner import VerifierFailureRate, VerifierStartupError
    from rlvr.verifiers.scoring import runner_for  # a reward-model term scores here, batched

    verifier = _build(spec, "--verifier")
    reference = _build(cross_spec, "--cross-check") if cross_spec is not None else None
    labelled = labelled_path is not None
    runner = runner_for(verifier, workers=workers, timeout=timeout, max_failure_rate=max_failure_rate)
    ref_runner = runner_for(reference, workers=workers, timeout=timeout, max_failure_rate=None) if reference else None
    out: IO[str] | None = None
    side: IO[str] | None = None
    failure = None
    check, labels = None, LabelTally() if labelled else None
    usage: dict[str, float] = {}  # a judge term's seconds and tokens over the run
    try:
        for r in (runner, ref_runner):  # spawned now: the workers import and warm up while the input is checked
            if r is not None:
                r.start()
        for _ in _rows(input_path, verifier, reference, labelled):  # every row checked before anything is scored
            pass
        if ref_runner is not None and reference is not None:  # both or neither
            side = _open_output(
                disagreements_path or default_disagreements_path(output_path, input_path), "--disagreements"
            )
            check = CrossCheck(ref_runner, reference.name, side)
        out = sys.stdout if output_path is None else _open_output(output_path, "--output")
        rows = RowFeed(_rows(input_path, verifier, reference, labelled))
        try:
            for score in runner.stream(rows):  # read lazily, written in input order as scored
                theirs: dict[str, Score] = {}  # the reference's score, by its name
                if check is not None:
                    theirs[check.name] = check.next_score(rows)  # before rows.take()
                row, _ = rows.take()
                for key, value in judge_usage([score]).items():
                    usage[key] = usage.get(key, 0.0) + value
                record = {**row, **score.to_json()}
                if check is not None:
                    record["cross_check"] = check.add(row, score, theirs[check.name])
                if labels is not None:
                    labels.add(row, {"ours": score, **theirs})
                out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
                out.flush()
        except VerifierFailureRate as err:
            failure = err
        # a failed batch's stats travel with its error (the runner raises before keeping them)
        stats = failure.stats if failure is not None else runner.last_stats
    except VerifierStartupError as err:  # the verifier cannot run at all: nothing was scored
        raise click.ClickException(str(err)) from None
    finally:
        for r in (runner, ref_runner):
            if r is not None:
                r.close()
        for f in (out, side):
            if f is not None and f is not sys.stdout:
                f.close()
    assert stats is not None
    to_stderr = output_path is None
    _print_summary(verifier.name, stats, usage, to_stderr=to_stderr)
    if check is not None:
        click.echo("\n".join(check.lines()), err=to_stderr)
    if labels is not None:
        _print_rates(labels, to_stderr=to_stderr)
    if failure is not None:
        raise click.ClickException(str(failure))
    return None


def _audit(spec: str, *, workers: int, timeout: float) -> None:
    from rlvr.verifiers.audit import run_audit
    from rlvr.verifiers.registry import UnknownVerifier

    try:
        report = run_audit(spec, workers=workers, timeout=timeout)
    except (UnknownVerifier, ValueError, TypeError) as err:
        raise InputError(f"--audit {spec!r}: {err}") from None
    click.echo(report.line())
    click.echo(report.class_table())
    if usage := report.usage_line():
        click.echo(usage)
    if report.rewarded:
        click.echo("rewarded:\n" + report.details())
        raise SystemExit(1)


def _build(spec: str, option: str):
    from rlvr.verifiers.registry import UnknownVerifier, build_verifier

    try:
        return build_verifier(spec)
    except (UnknownVerifier, ValueError, TypeError) as err:
        raise InputError(f"{option} {spec!r}: {err}") from None


def _open_output(path: Path, option: str) -> IO[str]:
    try:
        return path.open("w", encoding="utf-8")
    except OSError as err:
        raise InputError(f"{option} {path}: cannot write: {err.strerror}") from None


def _rows(path: Path, verifier, reference=None, labelled: bool = False) -> Iterator[tuple[dict[str, Any], Any]]:
    """(row, example) pairs, read lazily; a bad row fails with its file and line. The gold's fields
    are required only when a verifier needs a gold (`Verifier.missing_gold`); `expected` only
    for --labelled."""
    from rlvr.io import read_jsonl
    from rlvr.types import Example
    from rlvr.verifiers.labelled import expected_of
    from rlvr.verifiers.math.gold import gold_text

    empty = True
    for line_no, row in read_jsonl(path, label="--input"):
        if "completion" not in row:
            raise InputError(f"{path} line {line_no}: missing field 'completion'")
        for v in (verifier, reference):
            if v is not None and (why := v.missing_gold(row)):
                raise InputError(f"{path} line {line_no}: {why}")
        if not isinstance(row["completion"], str):
            raise InputError(
                f"{path} line {line_no}: field 'completion' must be a string, got {type(row['completion']).__name__}"
            )
        if labelled:
            try:
                expected_of(row)
            except ValueError as err:
                raise InputError(f"{path} line {line_no}: {err}") from None
        metadata = {k: v for k, v in row.items() if k not in ("completion", "answer")}
        empty = False
        yield (
            row,
            Example(
                id=str(row.get("id", line_no)),
                prompt=str(row.get("prompt") or ""),
                answer=gold_text(row.get("answer")),  # 27.0 → "27", the loaders' rule
                metadata=metadata,
            ),
        )
    if empty:
        raise InputError(f"{path}: no rows")


def _print_rates(labels, *, to_stderr: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="error rates on labelled rows (rewarded = reward >= 0.5)")
    for column in ("grader", "class", "rows", "FP", "FP rate", "FN", "FN rate", "accuracy", "timeout/error"):
        table.add_column(column, justify="left" if column in ("grader", "class") else "right")
    for grader, cls, r in labels.table():
        table.add_row(
            grader,
            cls,
            str(r.rows),
            str(r.fp),
            f"{r.fp_rate:.1%}",
            str(r.fn),
            f"{r.fn_rate:.1%}",
            f"{r.accuracy:.1%}",
            str(r.failed),
        )
    Console(stderr=to_stderr, width=120).print(table)


def _print_summary(name: str, stats, usage: dict[str, float], *, to_stderr: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"rlvr verify: {name}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("rows", str(stats.n))
    table.add_row("mean reward", f"{stats.mean_reward:.4f}")
    for status, count in stats.counts.items():
        style = "red" if count and status in ("timeout", "error") else ""
        table.add_row(status, f"[{style}]{count}[/]" if style else str(count))
    table.add_row("verdicts/s", f"{stats.verdicts_per_s:.1f}")
    table.add_row("seconds", f"{stats.seconds:.2f}")
    table.add_row("workers", str(stats.workers))
    if usage:  # a judge term: what its replies cost
        table.add_row("judge seconds", f"{usage['judge_s']:.2f}")
        table.add_row("judge tokens", f"{usage['judge_tokens']:.0f}")
        table.add_row("judge prompt tokens", f"{usage['judge_prompt_tokens']:.0f}")
    Console(stderr=to_stderr).print(table)


@click.group("verifiers")
def verifiers() -> None:
    """Inspect the verifiers rlvr can find (built-in and plugins)."""


@verifiers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per verifier instead of a table.")
def list_verifiers(as_json: bool) -> None:
    """List every verifier: name, source (built-in, or plugin distribution and version), one-line
    description. Plugins that fail to import are shown as broken with their error; a name claimed
    by more than one source is shown on each side."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from rlvr.verifiers.registry import default_registry

    entries = default_registry().entries()
    if as_json:
        for e in entries:
            record = {
                "name": e.name,
                "source": e.source,
                "description": e.description,
                "broken": e.broken,
                "error": e.error,
                "clash": e.clash,
                "shadowed": e.shadowed,
            }
            click.echo(json.dumps(record))
        return
    table = Table(title="rlvr verifiers")
    for column in ("name", "source", "description", "state"):
        table.add_column(column, overflow="fold")
    for e in entries:
        state = f"[red]broken: {escape(e.error or '')}[/]" if e.broken else "ok"
        if e.clash:
            state += f"\n[yellow]clash: {escape(e.clash)}[/]"
        table.add_row(escape(e.name), escape(e.source), escape(e.description), state)
    Console().print(table)
