"""The Bradley-Terry loss on a batch of chosen/rejected pairs and how the batch runs: its pairs
cut into runs backpropagated one after another, each run's sequences into forwards of similar
length; the held-out metrics. What :mod:`rmkit.training.trainer` steps on."""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING

# torch is imported where used, so `rmkit --help` stays fast.
if TYPE_CHECKING:
    import torch


def pair_rewards(
    model, batch: dict, multiple_of: int | None = None, forward_cost: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards of the chosen and rejected replies; both sides' sequences share the forwards,
    grouped by length where another forward costs less than the padding it saves."""
    import torch

    ids = torch.cat([batch["input_ids_chosen"], batch["input_ids_rejected"]])
    mask = torch.cat([batch["attention_mask_chosen"], batch["attention_mask_rejected"]])
    return compute_rewards_in_groups(model, ids, mask, multiple_of, forward_cost).chunk(2)


def pair_tokens(batch: dict) -> list[int]:
    """Real tokens of each pair, chosen plus rejected."""
    return (batch["attention_mask_chosen"].sum(-1) + batch["attention_mask_rejected"].sum(-1)).tolist()


def loss_and_backward(
    model,
    batch: dict,
    backward,
    max_tokens: int | None = None,
    multiple_of: int | None = None,
    forward_cost: float | None = None,
    center_rewards_coefficient: float | None = None,
) -> torch.Tensor:
    """The batch's training loss, its gradient taken run by run (:func:`backward_runs`).

    Each run's loss is weighed by its share of the pairs and handed to ``backward`` before the
    next run's forward, so the gradients are the whole batch's while only one run's
    activations are held. Returns the batch's loss, detached.
    """
    pairs_in_batch = len(batch["input_ids_chosen"])
    total = 0.0
    for pairs in backward_runs(pair_tokens(batch), max_tokens):
        run = batch if len(pairs) == pairs_in_batch else {key: value[pairs] for key, value in batch.items()}
        chosen, rejected = pair_rewards(model, run, multiple_of, forward_cost)
        loss = training_loss(chosen, rejected, run.get("margin"), center_rewards_coefficient) * (len(pairs) / pairs_in_batch)
        backward(loss)
        total = total + loss.detach()
    return total


def forward_cost(accelerator) -> float:
    """What :func:`forward_groups` weighs an extra forward at.

    With more than one process every process must run the same number of forwards (DDP
    syncs buffers and FSDP gathers weights at each one), so each runs its slice in one.
    """
    return FORWARD_COST_TOKENS if accelerator.num_processes == 1 else math.inf


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | None = None) -> torch.Tensor:
    """-log σ(r_chosen - r_rejected - margin), averaged over pairs."""
    import torch.nn.functional as F

    diff = chosen - rejected
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff).mean()


def training_loss(chosen, rejected, margin=None, center_rewards_coefficient: float | None = None) -> torch.Tensor:
    """Bradley-Terry plus, optionally, TRL's pull of the rewards towards zero mean."""
    loss = bradley_terry_loss(chosen, rejected, margin)
    if center_rewards_coefficient:
        loss = loss + center_rewards_coefficient * ((chosen + rejected) ** 2).mean()
    return loss


def preference_metrics(chosen: list[float], rejected: list[float]) -> dict:
    """How rewards order pairs: ``accuracy`` (r_chosen > r_rejected, a tie counts half), ``mean_margin``
    (of r_chosen - r_rejected), and the ``reward_mean`` and ``reward_spread`` of every reward, chosen and rejected."""
    rewards = [*chosen, *rejected]
    wins = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected))
    return {
        "pairs": len(chosen),
        "accuracy": wins / len(chosen),
        "mean_margin": statistics.fmean(c - r for c, r in zip(chosen, rejected)),
        "reward_mean": statistics.fmean(rewards),
        # The population standard deviation (no n - 1): it describes these very rewards, every one
        # of the set, rather than estimating a wider population's spread; one pair has a spread too.
        "reward_spread": statistics.pstdev(rewards),
    }


def pair_metrics(chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | None = None) -> dict:
    """The held-out loss and :func:`preference_metrics`, under the ``eval_*`` names training logs."""
    chosen, rejected = chosen.double(), rejected.double()
    metrics = preference_metrics(chosen.tolist(), rejected.tolist())
    return {
        "eval_loss": bradley_terry_loss(chosen, rejected, None if margin is None else margin.double()).item(),
        "eval_accuracy": metrics["accuracy"],
        "eval_margin": metrics["mean_margin"],
        "eval_reward_mean": metrics["reward_mean"],
        "eval_reward_std": metrics["reward_spread"],
    }


def batch_tokens(
    batch: dict, multiple_of: int | None = None, forward_cost: float | None = None, max_tokens: int | None = None
) -> torch.Tensor:
    """``[real tokens, padded tokens]`` of a batch as :func:`loss_and_backward` runs it."""
    import torch

    chosen, rejected = (batch[f"attention_mask_{side}"].sum(-1).tolist() for side in ("chosen", "rejected"))
    padded = 0
    for pairs in backward_runs([c + r for c, r in zip(chosen, rejected)], max_tokens):
        lengths = [chosen[i] for i in pairs] + [rejected[i] for i in pairs]
        groups = forward_groups(lengths, forward_cost, multiple_of)
        padded += sum(len(g) * padded_width(lengths, g, multiple_of) for g in groups)
    return torch.tensor([sum(chosen) + sum(rejected), padded], device=batch["attention_mask_chosen"].device)


def compute_rewards_in_groups(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    multiple_of: int | None = None,
    forward_cost: float | None = None,
) -> torch.Tensor:
    """:func:`rmkit.models.classifier.compute_rewards` over forwards of similar-length rows, each cut to its own width.

    Rows are independent, so the rewards are those of one forward over the whole batch;
    only the padding (and its compute) goes. See :func:`forward_groups`.
    """
    import torch

    from rmkit.models.classifier import compute_rewards, pad_right

    input_ids, attention_mask = pad_right(input_ids, attention_mask)
    lengths = attention_mask.sum(-1).tolist()
    rows, rewards = [], []
    for group in forward_groups(lengths, forward_cost, multiple_of):
        width = padded_width(lengths, group, multiple_of)
        index = torch.tensor(group, device=input_ids.device)
        rewards.append(compute_rewards(model, input_ids[index, :width], attention_mask[index, :width]))
        rows += group
    return torch.cat(rewards)[torch.argsort(torch.tensor(rows, device=input_ids.device))]


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
