"""`rlvr verify` (score a JSONL file of completions with a verifier) and `rlvr verifiers list`."""

from __future__ import annotations

import json
import sys
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
    "--input", "-i", "input_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL file, one object per line with 'completion' (the model's text) and the gold the verifier needs "
    "('answer' for math; HumanEval 'prompt'/'test'/'entry_point' or MBPP 'tests' for code; none for format rewards); "
    "every other field is kept and given to the verifier as example metadata.",
)
@click.option(
    "--output", "-o", "output_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Where to write the scored rows (JSONL: each input row plus 'reward', 'status', 'details', written "
    "and flushed as they are scored). Default: standard output, with the summary on standard error.",
)
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Worker processes (default: one per CPU core; 0 scores in this process, without deadlines). "
              "With --audit the default is 0.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True,
              help="Hard deadline in seconds per verdict; a stuck verdict's worker is killed and the row gets status 'timeout'.")
@click.option("--max-failure-rate", type=click.FloatRange(0, 1), default=None,
              help="Exit with code 1 (after writing every row and the summary) when more than this share of "
              "rows got status timeout or error. Default: report only.")
@click.option("--audit", "audit_spec", default=None, metavar="NAME|SPEC",
              help="Instead of scoring a file, run the shipped suite of known reward hacks (plus plugin cases) "
              "through this verifier spec, print 'audit: K/N known hacks rewarded' and the rewarded ones; exit 1 if K > 0.")
def verify(spec: str | None, input_path: Path | None, output_path: Path | None, workers: int | None, timeout: float,
           max_failure_rate: float | None, audit_spec: str | None) -> None:
    """Score completions in a JSONL file with a verifier and print a summary, or audit a verifier.

    Example: rlvr verify --verifier 'math+0.1*think_format' --input rows.jsonl --output scored.jsonl

    Audit: rlvr verify --audit 'math+0.1*think_format'
    """
    if audit_spec is not None:
        return _audit(audit_spec, workers=workers or 0, timeout=timeout)
    if spec is None or input_path is None:
        raise InputError("--verifier and --input are required (or --audit SPEC)")
    from rlvr.verifiers.scoring import runner_for  # a reward-model term scores here, batched
    from rlvr.verifiers.runner import VerifierFailureRate, VerifierStartupError

    verifier = _build(spec)
    runner = runner_for(verifier, workers=workers, timeout=timeout, max_failure_rate=max_failure_rate)
    out: IO[str] | None = None
    failure = None
    try:
        runner.start()  # spawned now: the workers import and warm up while the input is read
        rows, examples = _read_rows(input_path, verifier)
        completions = [row["completion"] for row in rows]
        out = sys.stdout if output_path is None else _open_output(output_path)
        try:
            # not zip(rows, ...): it would stop before the generator finishes and sets last_stats
            for i, score in enumerate(runner.imap(completions, examples)):
                out.write(json.dumps({**rows[i], **score.to_json()}, ensure_ascii=False, default=str) + "\n")
                out.flush()
        except VerifierFailureRate as err:
            failure = err
        # a failed batch's stats travel with its error (the runner raises before keeping them)
        stats = failure.stats if failure is not None else runner.last_stats
    except VerifierStartupError as err:  # the verifier cannot run at all: nothing was scored
        raise click.ClickException(str(err)) from None
    finally:
        runner.close()
        if out is not None and out is not sys.stdout:
            out.close()
    assert stats is not None
    _print_summary(verifier.name, stats, to_stderr=output_path is None)
    if failure is not None:
        raise click.ClickException(str(failure))


def _audit(spec: str, *, workers: int, timeout: float) -> None:
    from rlvr.verifiers.audit import run_audit
    from rlvr.verifiers.registry import UnknownVerifier

    try:
        report = run_audit(spec, workers=workers, timeout=timeout)
    except (UnknownVerifier, ValueError, TypeError) as err:
        raise InputError(f"--audit {spec!r}: {err}") from None
    click.echo(report.line())
    if report.rewarded:
        click.echo(report.details())
        raise SystemExit(1)


def _build(spec: str):
    from rlvr.verifiers.registry import UnknownVerifier, build_verifier

    try:
        return build_verifier(spec)
    except (UnknownVerifier, ValueError, TypeError) as err:
        raise InputError(f"--verifier {spec!r}: {err}") from None


def _open_output(path: Path) -> IO[str]:
    try:
        return path.open("w", encoding="utf-8")
    except OSError as err:
        raise InputError(f"--output {path}: cannot write: {err.strerror}") from None


def _read_rows(path: Path, verifier=None) -> tuple[list[dict[str, Any]], list]:
    """Every row checked before anything is scored, so a bad row fails fast and names itself. The
    gold's fields are required only when the verifier needs a gold (`Verifier.missing_gold`)."""
    from rlvr.types import Example
    from rlvr.verifiers.math.gold import gold_text

    rows, examples = [], []
    from rlvr.io import read_jsonl

    for line_no, row in read_jsonl(path, label="--input"):
        if "completion" not in row:
            raise InputError(f"{path} line {line_no}: missing field 'completion'")
        if verifier is not None and (why := verifier.missing_gold(row)):
            raise InputError(f"{path} line {line_no}: {why}")
        if not isinstance(row["completion"], str):
            raise InputError(f"{path} line {line_no}: field 'completion' must be a string, got {type(row['completion']).__name__}")
        metadata = {k: v for k, v in row.items() if k not in ("completion", "answer")}
        rows.append(row)
        examples.append(Example(
            id=str(row.get("id", line_no)),
            prompt=str(row.get("prompt") or ""),
            answer=gold_text(row.get("answer")),  # 27.0 → "27", the loaders' rule
            metadata=metadata,
        ))
    if not rows:
        raise InputError(f"{path}: no rows")
    return rows, examples




def _print_summary(name: str, stats, *, to_stderr: bool) -> None:
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
            record = {"name": e.name, "source": e.source, "description": e.description,
                      "broken": e.broken, "error": e.error, "clash": e.clash, "shadowed": e.shadowed}
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
