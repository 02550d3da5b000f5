"""Training data as :mod:`rmkit.training.trainer` consumes it: the encoded train and held-out pairs, and
their loaders of full, length-grouped global batches."""

from __future__ import annotations

import itertools

from rmkit.config.sections import DataConfig, TrainConfig
from rmkit.data.data_report import DataReport
from rmkit.errors import DataError


def load_datasets(cfg: DataConfig, tokenizer, report: DataReport) -> tuple[list[dict], list[dict]]:
    """Encoded ``(train, eval)`` examples; everything skipped or dropped is counted in ``report``."""
    from rmkit.data.encode import encode_pairs
    from rmkit.data.formats import load_pair_split

    train_pairs, eval_pairs = load_pair_split(cfg, report)
    train_set = encode_pairs(tokenizer, train_pairs, cfg.max_length, report)
    eval_set = encode_pairs(tokenizer, eval_pairs, cfg.max_length, report)
    report.kept = len(train_set) + len(eval_set)
    if not train_set:
        longer = "; raise data.max_length" if report.dropped else ""
        raise DataError(f"data.path {cfg.path}: no training pairs left ({report.summary()}){longer}")
    return train_set, eval_set


class FullBatches:
    """Length-grouped global batches, every one full: the short one goes last, topped up
    from the start of the epoch (as Accelerate's ``even_batches`` would).

    Accelerate then hands each process an equal slice of every global batch, so a run on
    N processes sees exactly the batches of a one-process run, and the same gradients.
    The training loop sets ``epoch`` (deliberately not a ``set_epoch`` method, which
    Accelerate would call with its own pass count and break resuming).
    """

    def __init__(self, grouped):
        self.grouped, self.batch_size, self.epoch = grouped, grouped.batch_size, 0

    def __len__(self) -> int:
        return len(self.grouped)

    def __iter__(self):
        self.grouped.set_epoch(self.epoch)
        batches = self.grouped.batches()
        full = [batch for batch in batches if len(batch) == self.batch_size]
        rest = [i for batch in batches if len(batch) < self.batch_size for i in batch]
        if rest:
            pool = itertools.cycle(rest + [i for batch in full for i in batch])
            full += [list(itertools.islice(pool, self.batch_size)) for _ in range(-(-len(rest) // self.batch_size))]
        return iter(full)


def make_loaders(train_set, eval_set, tokenizer, cfg: TrainConfig, num_processes: int):
    """Train and eval loaders yielding global batches (``per-device size x processes``)."""
    import torch
    from torch.utils.data import DataLoader

    from rmkit.data.batching import LengthGroupedBatchSampler, pair_length
    from rmkit.data.collator import RewardDataCollatorWithPadding

    collate = RewardDataCollatorWithPadding(tokenizer.pad_token_id, cfg.pad_to_multiple_of)
    # A mega-batch of one batch is plain random batching: grouping off, same code path.
    grouped = LengthGroupedBatchSampler(
        [pair_length(e) for e in train_set],
        cfg.per_device_batch_size * num_processes,
        seed=cfg.seed,
        mega_batch_factor=50 if cfg.group_by_length else 1,
    )
    # Own generators: iterating a loader (again, when resuming) then draws nothing from the
    # global RNG that dropout uses, so a resumed run sees the same dropout masks.
    train_loader = DataLoader(train_set, batch_sampler=FullBatches(grouped), collate_fn=collate, generator=torch.Generator())
    eval_batches = LengthGroupedBatchSampler(
        [pair_length(e) for e in eval_set], cfg.eval_batch_size * num_processes, shuffle=False
    )
    eval_loader = DataLoader(eval_set, batch_sampler=eval_batches, collate_fn=collate, generator=torch.Generator())
    return train_loader, eval_loader if eval_set else None
