"""The `rlvr` command: a click group whose subcommands live in sibling modules, imported only when
used so that `rlvr --help` stays fast (no torch import)."""

from __future__ import annotations

import importlib

import click

# command name -> "module:attribute"; each module keeps its heavy imports inside the command.
COMMANDS = {
    "verify": "rlvr.cli.verify:verify",
    "verifiers": "rlvr.cli.verify:verifiers",
    "sandbox": "rlvr.cli.sandbox:sandbox",
    "eval": "rlvr.cli.eval:eval_command",
    "bench": "rlvr.cli.eval:bench",
    "train": "rlvr.cli.train:train",
    "plot": "rlvr.cli.train:plot",
}


class LazyGroup(click.Group):
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
