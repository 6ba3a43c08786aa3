"""Training order from the second ID level on: batches built from small groups of documents sharing a prefix."""

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from ..semantic_ids import code_groups


class PrefixGroupedSampler(Sampler[int]):
    """
    Orders the corpus so that every training batch is made of chunks of up to `chunk_size` documents that share their
    earlier codes (their prefix). The contrastive loss's in-batch negatives then include, for each document, up to
    `chunk_size - 1` documents of its own prefix group: the hard negatives of LMIndexer, which must get different codes
    at this level, at no extra forward pass.

    The order is random: documents within a group, then the chunks, shuffled with a generator seeded by
    `(seed, level, epoch)`, so that an epoch's order is the same in a resumed run and on any number of processes
    (whose batches are consecutive slices of it). With `lengths`, a group's chunks are cut from its documents sorted by
    length, and the chunks of every mega-batch (`mega_batch_size` documents, as transformers' `LengthGroupedSampler`
    does) are ordered by their longest document, so that a batch pads its documents to similar lengths.

    Args:
        prefix_codes (`np.ndarray` of shape `(num_documents, level)`): Frozen codes of the earlier levels.
        chunk_size (`int`): Documents of one prefix group kept together (`num_hard_negatives + 1`), at least 2.
        seed (`int`): Seed of the shuffles.
        lengths (`np.ndarray` of shape `(num_documents,)`, *optional*): Token count of every document.
        mega_batch_size (`int`, *optional*, defaults to 1600): Documents among which chunks are sorted by length
            (50 batches of 32).
    """

    def __init__(
        self,
        prefix_codes: np.ndarray,
        chunk_size: int,
        seed: int = 0,
        lengths: np.ndarray | None = None,
        mega_batch_size: int = 1600,
    ):
        if prefix_codes.ndim != 2 or prefix_codes.shape[1] == 0:
            raise ValueError(f"prefix_codes must be of shape (num_documents, level >= 1), got {prefix_codes.shape}")
        if chunk_size < 2:
            raise ValueError(f"chunk_size must be at least 2 (a document and a hard negative), got {chunk_size}")
        if lengths is not None and len(lengths) != len(prefix_codes):
            raise ValueError(f"got {len(lengths)} lengths for {len(prefix_codes)} documents")
        if mega_batch_size < 1:
            raise ValueError(f"mega_batch_size must be positive, got {mega_batch_size}")
        self.lengths = None if lengths is None else np.asarray(lengths)
        self.mega_batch_size = mega_batch_size
        self.group_ids = code_groups(prefix_codes)
        self.level = prefix_codes.shape[1]
        self.chunk_size = chunk_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of `epoch` (called by the Trainer's data loader at every epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.group_ids)

    def order(self) -> np.ndarray:
        """The document indices `(num_documents,)` of this epoch, in training order."""
        rng = np.random.default_rng((self.seed, self.level, self.epoch))
        shuffled = rng.permutation(len(self.group_ids))
        if self.lengths is None:
            grouped = shuffled[np.argsort(self.group_ids[shuffled], kind="stable")]
        else:
            # Chunks of documents of similar length: members sorted by length within their group (ties at random).
            grouped = shuffled[np.lexsort((self.lengths[shuffled], self.group_ids[shuffled]))]
        groups = self.group_ids[grouped]
        group_starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
        group_sizes = np.diff(np.r_[group_starts, len(grouped)])
        position_in_group = np.arange(len(grouped)) - np.repeat(group_starts, group_sizes)
        starts_chunk = position_in_group % self.chunk_size == 0
        chunk_of_document = np.cumsum(starts_chunk) - 1
        chunk_rank_of_document = rng.permutation(int(starts_chunk.sum()))[chunk_of_document]
        by_chunk_rank = np.argsort(chunk_rank_of_document, kind="stable")
        order = grouped[by_chunk_rank]
        if self.lengths is None:
            return order
        return self._sorted_by_length_within_mega_batches(order, chunk_rank_of_document[by_chunk_rank])

    def _sorted_by_length_within_mega_batches(self, order: np.ndarray, chunk_ranks: np.ndarray) -> np.ndarray:
        """
        `order` with the chunks of every mega-batch sorted by their longest document, longest first; `chunk_ranks`
        `(num_documents,)` is the chunk of every position of `order` (non-decreasing).
        """
        chunk_starts = np.flatnonzero(np.r_[True, chunk_ranks[1:] != chunk_ranks[:-1]])
        chunk_sizes = np.diff(np.r_[chunk_starts, len(order)])
        chunk_lengths = np.maximum.reduceat(self.lengths[order], chunk_starts)
        mega_batch_of_chunk = chunk_starts // self.mega_batch_size
        chunk_order = np.lexsort((-chunk_lengths, mega_batch_of_chunk))
        return np.concatenate(
            [order[start : start + size] for start, size in zip(chunk_starts[chunk_order], chunk_sizes[chunk_order])]
        )

    def __iter__(self) -> Iterator[int]:
        return iter(self.order().tolist())


__all__ = ["PrefixGroupedSampler"]
