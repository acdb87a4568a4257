"""The `rlvr` command: a click group whose subcommands live in sibling modules, imported only when
used so that `rlvr --help` stays fast (no torch import). The library's errors (rlvr.errors) end a
command with one line on stderr and their exit code."""

from __future__ import annotations

import importlib

import click

from rlvr.errors import RlvrError

# command name -> "module:attribute"; each module keeps its heavy imports inside the command.
COMMANDS = {
    "verify": "rlvr.cli.verify:verify",
    "verifiers": "rlvr.cli.verify:verifiers",
    "sandbox": "rlvr.cli.sandbox:sandbox",
    "eval": "rlvr.cli.eval:eval_command",
    "bench": "rlvr.cli.bench:bench",
    "train": "rlvr.cli.train:train",
    "plot": "rlvr.cli.train:plot",
    "serve": "rlvr.cli.serve:serve",
}


class _Failed(click.ClickException):
    """An RlvrError as click shows it: `error: <message>` on stderr, exit with the error's code."""

    def __init__(self, error: RlvrError):
        super().__init__(str(error))
        # click declares exit_code a class variable; each RlvrError carries its own
        self.exit_code = error.exit_code  # type: ignore[misc]

    def show(self, file=None) -> None:  # one clear line, no usage dump
        click.echo(f"error: {self.format_message()}", err=True, file=file)


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RlvrError as err:
            raise _Failed(err) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="rlvr")
def main() -> None:
    """rlvr: reinforcement learning from verifiable rewards.

    Train with GRPO (`rlvr train`), score completions with a verifier (`rlvr verify`), run code
    in a sandbox (`rlvr sandbox`), and evaluate checkpoints with the same verifiers (`rlvr eval`,
    `rlvr bench`)."""
