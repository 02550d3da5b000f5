"""Length-grouped batches: sequences of similar length share a batch, so padding stays small."""

from __future__ import annotations

import random
from collections.abc import Iterator

from torch.utils.data import Sampler


def pair_length(example: dict) -> int:
    return max(len(example["input_ids_chosen"]), len(example["input_ids_rejected"]))


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Yields batches of indices grouped by length, in a seeded random order.

    Each epoch: shuffle, cut into mega-batches of ``mega_batch_factor`` batches, sort each
    by length (longest first), slice into batches, then shuffle the batches. The order
    depends only on ``seed`` and the epoch (``set_epoch``), so a resumed run sees the same
    batches as an uninterrupted one.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0, mega_batch_factor: int = 50, shuffle: bool = True):
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
        self.mega_batch_factor, self.shuffle, self.epoch = mega_batch_factor, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def batches(self) -> list[list[int]]:
        rng = random.Random(self.seed + self.epoch)
        order = list(range(len(self.lengths)))
        if not self.shuffle:
            order.sort(key=lambda i: -self.lengths[i])
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        rng.shuffle(order)
        mega = self.batch_size * self.mega_batch_factor
        batches = []
        for start in range(0, len(order), mega):
            group = sorted(order[start : start + mega], key=lambda i: -self.lengths[i])
            batches += [group[i : i + self.batch_size] for i in range(0, len(group), self.batch_size)]
        rng.shuffle(batches)
        return batches
