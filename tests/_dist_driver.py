"""Runs the `rlvr train` CLI (as `torchrun -m rlvr train` does) with fixed rollouts for tests/train/test_distributed.py.

    torchrun --nproc_per_node 2 tests/_dist_driver.py AUDIT_FILE -- <rlvr train arguments>

The engine is replaced by one whose completions depend only on the prompt text and the sample
index, never on the rank, the seed or the world size: a 2-rank run then trains on exactly the
samples a 1-process run does. On every rank but 0, an audit hook records each write, directory
creation, rename or removal under the run's --output folder into AUDIT_FILE (a JSON list).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

# think_format rewards: 1, 0, 1, 0 — any two consecutive ones differ, so no group has zero variance
CANNED = (
    "<think>add the digits</think> 7",
    "the answer is 7",
    "<think>carry the one</think> \\boxed{12}",
    "<think></think>",
)


class FixedEngine:
    """The Engine interface (rlvr.rollout.base.Engine) with canned completions."""

    kind = "hf"
    sampler_logprobs = False
    can_sleep = False

    def __init__(self, model_path, holds_weights: bool = False):
        from rlvr.models import load_tokenizer

        self.tokenizer = load_tokenizer(model_path)
        self.holds_weights = holds_weights  # FSDP2: the trainer pushes full weights to it

    def _ids(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, prompts, n=1, sampling=None):
        from rlvr.types import Rollout

        rollouts = []
        for index, prompt in enumerate(prompts):
            start = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
            for j in range(n):
                text = CANNED[(start + j) % len(CANNED)]
                ids = self._ids(text)
                rollouts.append(Rollout(index, text, ids, tuple(-1.0 for _ in ids), "stop", self._ids(prompt)))
        return rollouts

    def sync_weights(self, state_dict):
        return {}

    def close(self):
        pass


def _watch_writes(output: str, record: list) -> None:
    root = os.path.abspath(output)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

    def inside(path) -> bool:
        try:
            absolute = os.path.abspath(os.fsdecode(path))
            return absolute == root or absolute.startswith(root + os.sep)
        except TypeError:  # a file descriptor
            return False

    def hook(event, args):
        if (event == "open" and args[0] is not None and inside(args[0]) and (args[2] or 0) & write_flags) or (
            event
            in (
                "os.mkdir",
                "os.rename",
                "os.replace",
                "os.remove",
                "os.rmdir",
                "shutil.rmtree",
                "os.truncate",
                "os.symlink",
                "os.link",
            )
            and args
            and inside(args[0])
        ):
            record.append([event, os.fsdecode(args[0])])

    sys.addaudithook(hook)


def _run_folder(train_args: list[str]) -> str:
    """The folder the run writes to: --output, else the folder --resume continues in."""
    for flag in ("--output", "-o", "--resume"):
        if flag in train_args:
            return train_args[train_args.index(flag) + 1]
    raise SystemExit(f"_dist_driver: no --output or --resume among {train_args}")


def main() -> None:
    audit_file, separator, *train_args = sys.argv[1:]
    assert separator == "--"
    import rlvr.train.stages
    from rlvr.cli import main as cli

    rlvr.train.stages.start_engine = lambda spec, ctx, policy=None, **_: FixedEngine(spec.model_path, policy is None)
    writes: list = []
    if int(os.environ.get("RANK", "0")) != 0:
        _watch_writes(_run_folder(train_args), writes)
    try:
        cli(["train", *train_args], standalone_mode=False)
    finally:
        if int(os.environ.get("RANK", "0")) != 0:
            with open(audit_file, "w") as handle:
                json.dump(writes, handle)


if __name__ == "__main__":
    main()
