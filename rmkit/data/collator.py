"""Pad chosen and rejected replies of a batch together; cut a batch's pairs into runs
backpropagated one after another, and each run's sequences into forwards of similar length."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RewardDataCollatorWithPadding:
    """Collate ``{"input_ids_chosen", "input_ids_rejected"[, "margin"]}`` examples.

    Both sides are padded to the longest sequence of the batch (never to ``max_length``)
    so they can run through the model in one forward; ``padding_side`` only moves the
    pads, the reward is read at the last real token either way.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None
    padding_side: str = "right"

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        width = max(max(len(e["input_ids_chosen"]), len(e["input_ids_rejected"])) for e in examples)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = {}
        for side in ("chosen", "rejected"):
            ids, mask = zip(*(self._pad(e[f"input_ids_{side}"], width) for e in examples))
            batch[f"input_ids_{side}"] = torch.tensor(ids, dtype=torch.long)
            batch[f"attention_mask_{side}"] = torch.tensor(mask, dtype=torch.long)
        if any("margin" in e for e in examples):
            batch["margin"] = torch.tensor([float(e.get("margin", 0.0)) for e in examples])
        return batch

    def _pad(self, ids: list[int], width: int) -> tuple[list[int], list[int]]:
        pad = [self.pad_token_id] * (width - len(ids))
        mask = [1] * len(ids)
        if self.padding_side == "left":
            return pad + list(ids), [0] * len(pad) + mask
        return list(ids) + pad, mask + [0] * len(pad)


# What one more forward (and its backward) costs, in padded tokens, measured on a 2-core CPU
# for SmolLM2-135M with LoRA under bf16 autocast (docs/benchmarks.md): a batch of 8 pairs cut
# into ~6 padding-tight forwards ran at 278 padded tokens/s, in one forward at 485, i.e. ~0.9 s
# of fixed work a forward against ~2 ms a token. So a batch is split only where it saves
# hundreds of padded tokens.
FORWARD_COST_TOKENS = 448


def forward_groups(lengths: list[int], forward_cost: float | None = None, multiple_of: int | None = None) -> list[list[int]]:
    """Cut sequences into forwards, each padded to its own longest, at the least cost.

    Chosen and rejected replies of a batch share one list: sorted by length (longest
    first), they are cut into runs that minimise padded tokens plus ``forward_cost`` per
    forward (an exact dynamic programme over the cut points; ``None``: :data:`FORWARD_COST_TOKENS`).
    Returns row indices per forward; every row appears once. ``forward_cost=math.inf`` gives
    one forward over all rows.
    """
    if forward_cost is None:
        forward_cost = FORWARD_COST_TOKENS
    if forward_cost == float("inf"):
        return [sorted(range(len(lengths)), key=lambda i: -lengths[i])]
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    best, cut = [0] + [None] * len(order), [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        for start in range(end):
            cost = best[start] + (end - start) * padded_width(lengths, [order[start]], multiple_of) + forward_cost
            if best[end] is None or cost < best[end]:
                best[end], cut[end] = cost, start
    groups, end = [], len(order)
    while end:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]


def padded_width(lengths: list[int], rows: list[int], multiple_of: int | None = None) -> int:
    width = max(lengths[i] for i in rows)
    return -(-width // multiple_of) * multiple_of if multiple_of else width


def backward_runs(pair_tokens: list[int], max_tokens: int | None) -> list[list[int]]:
    """Cut a batch's pairs into runs of at most ``max_tokens`` tokens (chosen plus rejected).

    The training loss is a mean over pairs, so each run's share can be backpropagated before
    the next run's forward: the gradients are the whole batch's, and only one run's
    activations are held at a time. Pairs are taken longest first, so a run's sequences are
    of similar length; a pair longer than ``max_tokens`` is a run of its own. ``None``: one
    run. Returns pair indices per run; every pair appears once.
    """
    order = sorted(range(len(pair_tokens)), key=lambda i: -pair_tokens[i])
    if max_tokens is None:
        return [order]
    runs, tokens = [[]], 0
    for i in order:
        if runs[-1] and tokens + pair_tokens[i] > max_tokens:
            runs.append([])
            tokens = 0
        runs[-1].append(i)
        tokens += pair_tokens[i]
    return runs
