"""The prompt stream: training rows in a seeded order, epoch after epoch, whose position a checkpoint saves
(so a resumed run neither replays nor skips a row)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from rlvr.errors import InputError
from rlvr.types import Example

__all__ = ["PromptStream"]


class PromptStream:
    """Training rows in a seeded order, epoch after epoch; its position is saved in checkpoints."""

    def __init__(self, examples: Sequence[Example], seed: int, shuffle: bool, epoch: int = 0, index: int = 0):
        if not examples:
            raise InputError("the training dataset is empty")
        self.examples, self.seed, self.shuffle = list(examples), seed, shuffle
        self.epoch, self.index = epoch, index

    def _order(self) -> list[int]:
        order = list(range(len(self.examples)))
        if self.shuffle:
            random.Random(f"{self.seed}/{self.epoch}").shuffle(order)
        return order

    def take(self, k: int) -> list[Example]:
        taken: list[Example] = []
        order = self._order()
        while len(taken) < k:
            if self.index >= len(order):
                self.epoch, self.index = self.epoch + 1, 0
                order = self._order()
            taken.append(self.examples[order[self.index]])
            self.index += 1
        return taken

    def position(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}
