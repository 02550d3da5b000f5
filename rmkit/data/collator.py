"""Pad chosen and rejected replies of a batch together (how the batch then runs through the model:
:mod:`rmkit.training.reward_loss`)."""

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
