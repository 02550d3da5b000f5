import math

import torch

from rmkit.data.batching import LengthGroupedBatchSampler, pair_length
from rmkit.data.collator import RewardDataCollatorWithPadding
from rmkit.training.reward_loss import backward_runs, forward_groups, padded_width

EXAMPLES = [
    {"input_ids_chosen": [5, 6, 7], "input_ids_rejected": [5, 8]},
    {"input_ids_chosen": [5], "input_ids_rejected": [5, 9, 9, 9, 9]},
]


def test_pads_both_sides_to_the_batch_longest_not_max_length():
    batch = RewardDataCollatorWithPadding(pad_token_id=0)(EXAMPLES)
    assert set(batch) == {"input_ids_chosen", "attention_mask_chosen", "input_ids_rejected", "attention_mask_rejected"}
    assert batch["input_ids_chosen"].shape == batch["input_ids_rejected"].shape == (2, 5)
    assert batch["input_ids_chosen"][0].tolist() == [5, 6, 7, 0, 0]
    assert batch["attention_mask_chosen"][0].tolist() == [1, 1, 1, 0, 0]
    assert batch["attention_mask_rejected"][1].tolist() == [1, 1, 1, 1, 1]


def test_left_padding_and_pad_to_multiple_of():
    batch = RewardDataCollatorWithPadding(pad_token_id=0, pad_to_multiple_of=4, padding_side="left")(EXAMPLES)
    assert batch["input_ids_chosen"].shape == (2, 8)
    assert batch["input_ids_chosen"][1].tolist() == [0] * 7 + [5]
    assert batch["attention_mask_chosen"][1].sum() == 1


def test_margin_collated_when_present():
    examples = [dict(EXAMPLES[0], margin=1.5), EXAMPLES[1]]
    batch = RewardDataCollatorWithPadding(pad_token_id=0)(examples)
    assert torch.equal(batch["margin"], torch.tensor([1.5, 0.0]))


def test_length_grouped_batches_cover_everything_once_and_reduce_padding():
    lengths = [(i * 37) % 200 + 1 for i in range(400)]
    sampler = LengthGroupedBatchSampler(lengths, batch_size=8, seed=3)
    batches = sampler.batches()
    assert sorted(i for b in batches for i in b) == list(range(400))
    assert sampler.batches() == batches  # deterministic for a seed and epoch
    sampler.set_epoch(1)
    assert sampler.batches() != batches

    def padded(bs):
        return sum(max(lengths[i] for i in b) * len(b) for b in bs)

    random_batches = [list(range(i, i + 8)) for i in range(0, 400, 8)]
    assert sum(lengths) / padded(batches) > 0.9 > sum(lengths) / padded(random_batches)


def test_pair_length_is_the_longer_side():
    assert pair_length(EXAMPLES[1]) == 5


def test_forward_groups_cover_every_row_once_and_cut_padding():
    lengths = [200, 40, 190, 35, 120, 38, 195, 118]

    def padded(groups, multiple_of=None):
        return sum(len(g) * padded_width(lengths, g, multiple_of) for g in groups)

    groups = forward_groups(lengths, forward_cost=32)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert groups == [[0, 6, 2], [4, 7], [1, 5, 3]]  # longest first, runs of similar length
    assert padded(groups) + 32 * len(groups) < len(lengths) * max(lengths) + 32  # cheaper than one forward
    assert forward_groups(lengths, forward_cost=math.inf) == [[0, 6, 2, 4, 7, 1, 5, 3]]  # one forward
    assert padded(forward_groups(lengths, forward_cost=0)) == sum(lengths)  # no padding at all
    assert all(padded_width(lengths, g, 64) % 64 == 0 for g in forward_groups(lengths, multiple_of=64))


def test_batch_tokens_count_the_padding_of_the_forwards_run():
    from rmkit.training.reward_loss import batch_tokens

    examples = [
        {"input_ids_chosen": [1] * 100, "input_ids_rejected": [1] * 10},
        {"input_ids_chosen": [1] * 98, "input_ids_rejected": [1] * 12},
    ]
    real, padded = batch_tokens(RewardDataCollatorWithPadding(pad_token_id=0)(examples), forward_cost=32).tolist()
    assert real == 220 and padded == 2 * 100 + 2 * 12  # two forwards, not 4 rows of 100


def test_backward_runs_cover_every_pair_once_within_the_budget():
    tokens = [300, 40, 120, 700, 90, 250, 60]
    runs = backward_runs(tokens, max_tokens=400)
    assert sorted(i for run in runs for i in run) == list(range(len(tokens)))
    assert runs[0] == [3]  # longer than the budget: a run of its own, never dropped
    assert all(sum(tokens[i] for i in run) <= 400 for run in runs[1:])
    assert [tokens[i] for run in runs for i in run] == sorted(tokens, reverse=True)  # similar lengths share a run
    assert backward_runs(tokens, None) == [[3, 0, 5, 2, 4, 6, 1]]  # one run, the whole batch
    assert backward_runs(tokens, 1) == [[i] for i in [3, 0, 5, 2, 4, 6, 1]]


def test_batch_tokens_count_the_runs_forwards():
    from rmkit.training.reward_loss import batch_tokens

    examples = [{"input_ids_chosen": [1] * n, "input_ids_rejected": [1] * m} for n, m in [(100, 20), (90, 80), (10, 12)]]
    batch = RewardDataCollatorWithPadding(pad_token_id=0)(examples)
    real, whole = batch_tokens(batch, forward_cost=10**6).tolist()  # one forward of 6 rows at width 100
    assert (real, whole) == (312, 600)
    real, one_pair_a_run = batch_tokens(batch, forward_cost=10**6, max_tokens=1).tolist()
    assert one_pair_a_run == 2 * 100 + 2 * 90 + 2 * 12  # each run padded to its own longest


def test_forward_cost_none_is_the_default_and_zero_is_honoured():
    from rmkit.training.reward_loss import FORWARD_COST_TOKENS, batch_tokens

    lengths = [30, 500, 120, 90, 480, 60]
    assert forward_groups(lengths, None) == forward_groups(lengths, FORWARD_COST_TOKENS)
    examples = [{"input_ids_chosen": [1] * n, "input_ids_rejected": [1] * m} for n, m in [(100, 20), (90, 80), (10, 12)]]
    real, padded = batch_tokens(RewardDataCollatorWithPadding(pad_token_id=0)(examples), forward_cost=0).tolist()
    assert padded == real  # a free forward per length: no padding (a cost of 0 once fell back to the default)
