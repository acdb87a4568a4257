"""`rlvr sandbox`: check which backends work here, run one file in a sandbox, build the image."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rlvr import names
from rlvr.errors import InputError


@click.group("sandbox")
def sandbox() -> None:
    """Run untrusted Python in a sandbox (docker, bwrap, local: rlvr.names.SANDBOXES) and inspect the backends."""


@sandbox.command("check")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per backend instead of a table.")
def check(as_json: bool) -> None:
    """Report which sandbox backends work on this machine, why not, and what each guarantees."""
    from rlvr.sandboxes import check_backends

    found = check_backends()
    if as_json:
        for name, info in found.items():
            click.echo(json.dumps({"backend": name, **info}))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="rlvr sandbox backends")
    for column in ("backend", "state", "guarantees"):
        table.add_column(column, overflow="fold")
    for name, info in found.items():
        state = "[green]works[/]" if info["available"] else f"[red]unavailable:[/] {escape(info['why'])}"
        note = "" if name != "local" else "\n[yellow]not a security boundary[/]"
        table.add_row(name, state + note, ", ".join(info["claims"]))
    Console().print(table)


@sandbox.command("run")
@click.option(
    "--backend",
    "-b",
    type=click.Choice(names.SANDBOX_CHOICES),
    default="auto",
    show_default=True,
    help="Sandbox to run in; auto = docker, else bwrap, else local.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Wall-clock limit in seconds.",
)
@click.option("--memory", type=click.IntRange(min=16), default=512, show_default=True, help="Memory limit in MiB.")
@click.option(
    "--stdin",
    "stdin_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File whose text is the program's standard input.",
)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def run(backend: str, timeout: float, memory: int, stdin_path: Path | None, file: Path) -> None:
    """Run the Python program FILE and print its ExecResult as one JSON object: status (ok,
    runtime_error, timeout, memory, output_limit, killed), exit_code, stdout, stderr, truncated,
    duration_s, overhead_s, backend. Exit code 0 whatever the program did; 1 when the sandbox
    itself failed; 2 for bad input."""
    from rlvr.sandboxes import Limits, SandboxError, get_sandbox

    program = _read(file, "FILE")
    stdin = _read(stdin_path, "--stdin") if stdin_path else ""
    try:
        with get_sandbox(backend) as box:
            result = box.run(program, stdin=stdin, limits=Limits(timeout_s=timeout, memory_mb=memory))
    except SandboxError as err:
        raise click.ClickException(f"sandbox failed: {err}") from None
    click.echo(json.dumps(result.to_json(), ensure_ascii=False))


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{what} {path}: cannot read: {err}") from None


@sandbox.command("build-image")
@click.option("--tag", default=None, help="Image name (default: rlvr-sandbox:latest).")
@click.option(
    "--method",
    type=click.Choice(["debootstrap", "dockerfile"]),
    default="debootstrap",
    show_default=True,
    help="debootstrap a minimal Debian with python3 and `docker import` it (no registry needed), "
    "or build from a Dockerfile (needs a registry for python:3.11-slim).",
)
@click.option("--suite", default="bookworm", show_default=True, help="Debian release for debootstrap.")
@click.option("--mirror", default=None, help="Debian mirror (default: the one apt uses here).")
def build_image(tag: str | None, method: str, suite: str, mirror: str | None) -> None:
    """Build the docker sandbox image (root; about half a minute with debootstrap)."""
    from rlvr.sandboxes import SandboxError
    from rlvr.sandboxes.image import DEFAULT_IMAGE
    from rlvr.sandboxes.image import build_image as build

    try:
        info = build(
            tag or DEFAULT_IMAGE, method=method, suite=suite, mirror=mirror, log=lambda line: click.echo(line, err=True)
        )
    except SandboxError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"built {info['tag']} ({info['id'][:19]}, {info['size_mb']} MiB) in {info['seconds']} s")
