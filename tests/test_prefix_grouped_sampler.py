"""PrefixGroupedSampler: training batches made of small groups of documents that share their earlier codes."""

import numpy as np
import pytest

from modeling_lmindexer.data.sampler import PrefixGroupedSampler


def prefix_codes(group_sizes: list[int], seed: int = 0) -> np.ndarray:
    """Two-level prefixes, one distinct prefix per group, rows shuffled."""
    prefixes = np.array([[group // 3, group % 3] for group, size in enumerate(group_sizes) for _ in range(size)])
    return prefixes[np.random.default_rng(seed).permutation(len(prefixes))]


def test_every_document_once_in_chunks_of_one_prefix():
    group_sizes = [11, 5, 1, 3, 9, 2]
    codes = prefix_codes(group_sizes)
    chunk_size = 5
    order = np.array(list(PrefixGroupedSampler(codes, chunk_size=chunk_size, seed=0)))
    assert sorted(order.tolist()) == list(range(len(codes)))
    # A group of g documents is cut into ceil(g / chunk_size) chunks of consecutive documents, which give at least
    # g - ceil(g / chunk_size) neighbours sharing a prefix (more when two chunks of a group land side by side).
    prefixes = [tuple(row) for row in codes[order]]
    neighbours_sharing_a_prefix = sum(first == second for first, second in zip(prefixes, prefixes[1:]))
    expected = sum(size - -(-size // chunk_size) for size in group_sizes)
    assert neighbours_sharing_a_prefix >= expected
    random_prefixes = [tuple(row) for row in codes[np.random.default_rng(0).permutation(len(codes))]]
    assert neighbours_sharing_a_prefix > sum(a == b for a, b in zip(random_prefixes, random_prefixes[1:]))


def test_order_is_fixed_by_seed_and_epoch():
    codes = prefix_codes([8, 8, 8, 8])
    sampler = PrefixGroupedSampler(codes, chunk_size=4, seed=7)
    first = list(sampler)
    assert list(PrefixGroupedSampler(codes, chunk_size=4, seed=7)) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first
    assert list(PrefixGroupedSampler(codes, chunk_size=4, seed=8)) != first


def test_batches_hold_same_prefix_pairs_far_above_random_order():
    codes = prefix_codes([16] * 12, seed=1)
    batch_size = 16
    order = np.array(list(PrefixGroupedSampler(codes, chunk_size=5, seed=0)))
    random_order = np.random.default_rng(0).permutation(len(codes))

    def same_prefix_pairs(order: np.ndarray) -> int:
        pairs = 0
        for start in range(0, len(order), batch_size):
            _, counts = np.unique(codes[order[start : start + batch_size]], axis=0, return_counts=True)
            pairs += int((counts * (counts - 1)).sum())
        return pairs

    assert same_prefix_pairs(order) >= 2 * same_prefix_pairs(random_order)


@pytest.mark.parametrize(
    "codes, chunk_size, message",
    [(np.zeros((4, 0), dtype=int), 3, "level >= 1"), (np.zeros((4, 1), dtype=int), 1, "at least 2")],
)
def test_bad_arguments(codes, chunk_size, message):
    with pytest.raises(ValueError, match=message):
        PrefixGroupedSampler(codes, chunk_size)


def test_lengths_sort_chunks_within_mega_batches_and_cut_padding():
    group_sizes = [10] * 160
    codes = prefix_codes(group_sizes, seed=2)
    # Short documents with a long tail, like product texts (Beauty: median 40 tokens, 90th percentile 51).
    lengths = np.clip(np.random.default_rng(3).lognormal(3.7, 0.35, size=len(codes)).astype(int), 5, 128)
    chunk_size, batch_size, mega_batch_size = 5, 32, 800
    plain = PrefixGroupedSampler(codes, chunk_size, seed=0).order()
    by_length = PrefixGroupedSampler(codes, chunk_size, seed=0, lengths=lengths, mega_batch_size=mega_batch_size)
    order = by_length.order()
    assert sorted(order.tolist()) == list(range(len(codes)))
    prefixes = [tuple(row) for row in codes[order]]
    assert sum(a == b for a, b in zip(prefixes, prefixes[1:])) >= sum(
        size - size // chunk_size for size in group_sizes
    )
    by_length.set_epoch(1)
    assert not np.array_equal(by_length.order(), order)

    def padded_tokens(order: np.ndarray) -> int:
        return sum(
            len(order[start : start + batch_size]) * int(lengths[order[start : start + batch_size]].max())
            for start in range(0, len(order), batch_size)
        )

    assert padded_tokens(order) < 0.75 * padded_tokens(plain)
