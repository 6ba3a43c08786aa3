"""Training orders made of small groups of related documents: prefix-sharing hard negatives, or nearest neighbours."""

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from ..semantic_ids import code_groups


class GroupChunkSampler(Sampler[int]):
    """
    Orders the corpus so that every training batch is made of chunks of up to `chunk_size` documents of one group;
    subclasses say what a group is ([`PrefixGroupedSampler`], [`NeighbourGroupedSampler`]).

    The order is random: documents within a group, then the chunks, shuffled with a generator seeded by
    `(seed, level, epoch)`, so that an epoch's order is the same in a resumed run and on any number of processes
    (whose batches are consecutive slices of it). With `lengths`, a group's chunks are cut from its documents sorted by
    length, and the chunks of every mega-batch (`mega_batch_size` documents, as transformers' `LengthGroupedSampler`
    does) are ordered by their longest document, so that a batch pads its documents to similar lengths.

    Args:
        num_documents (`int`): Documents of the corpus.
        chunk_size (`int`): Documents of one group kept together, at least 2.
        level (`int`): The ID level (0-based) whose stages use this order; part of the shuffles' seed.
        seed (`int`): Seed of the shuffles.
        lengths (`np.ndarray` of shape `(num_documents,)`, *optional*): Token count of every document.
        mega_batch_size (`int`, *optional*, defaults to 1600): Documents among which chunks are sorted by length
            (50 batches of 32).
    """

    def __init__(
        self,
        num_documents: int,
        chunk_size: int,
        level: int,
        seed: int = 0,
        lengths: np.ndarray | None = None,
        mega_batch_size: int = 1600,
    ):
        if chunk_size < 2:
            raise ValueError(f"chunk_size must be at least 2 (a document and a related one), got {chunk_size}")
        if lengths is not None and len(lengths) != num_documents:
            raise ValueError(f"got {len(lengths)} lengths for {num_documents} documents")
        if mega_batch_size < 1:
            raise ValueError(f"mega_batch_size must be positive, got {mega_batch_size}")
        self.num_documents = num_documents
        self.lengths = None if lengths is None else np.asarray(lengths)
        self.mega_batch_size = mega_batch_size
        self.level = level
        self.chunk_size = chunk_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of `epoch` (called by the Trainer's data loader at every epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_documents

    def group_ids(self, rng: np.random.Generator) -> np.ndarray:
        """The group `(num_documents,)` of every document in this epoch, drawing any randomness from `rng`."""
        raise NotImplementedError

    def order(self) -> np.ndarray:
        """The document indices `(num_documents,)` of this epoch, in training order."""
        rng = np.random.default_rng((self.seed, self.level, self.epoch))
        group_ids = self.group_ids(rng)
        shuffled = rng.permutation(self.num_documents)
        if self.lengths is None:
            grouped = shuffled[np.argsort(group_ids[shuffled], kind="stable")]
        else:
            # Chunks of documents of similar length: members sorted by length within their group (ties at random).
            grouped = shuffled[np.lexsort((self.lengths[shuffled], group_ids[shuffled]))]
        groups = group_ids[grouped]
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


class PrefixGroupedSampler(GroupChunkSampler):
    """
    From the second ID level on: every training batch is made of chunks of up to `chunk_size` documents that share
    their earlier codes (their prefix). The contrastive loss's in-batch negatives then include, for each document, up
    to `chunk_size - 1` documents of its own prefix group: the hard negatives of LMIndexer, which must get different
    codes at this level, at no extra forward pass. Shuffles and length grouping as in [`GroupChunkSampler`].

    Args:
        prefix_codes (`np.ndarray` of shape `(num_documents, level)`): Frozen codes of the earlier levels.
        chunk_size (`int`): Documents of one prefix group kept together (`num_hard_negatives + 1`), at least 2.
        seed, lengths, mega_batch_size: As in [`GroupChunkSampler`].
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
        super().__init__(len(prefix_codes), chunk_size, prefix_codes.shape[1], seed, lengths, mega_batch_size)
        self.prefix_group_ids = code_groups(prefix_codes)

    def group_ids(self, rng: np.random.Generator) -> np.ndarray:
        return self.prefix_group_ids


class NeighbourGroupedSampler(GroupChunkSampler):
    """
    For the first level's distillation stages: every training batch is made of chunks of up to `chunk_size`
    documents that are nearest neighbours under `embeddings` (the distillation targets), so that the distillation
    loss's in-batch softmax holds, for each document, the documents its targets call closest, not only random ones
    that tell little about where the document belongs. Each epoch partitions the corpus anew: in a random order, every
    document not yet placed starts a group with its nearest neighbours not yet placed (among its
    `num_candidates` nearest), so that every document is trained once per epoch.

    Args:
        embeddings (`np.ndarray` of shape `(num_documents, dim)`): The vectors whose cosine similarity defines the
            neighbours.
        chunk_size (`int`): A document and its neighbours kept together (`num_distillation_neighbours + 1`), at
            least 2.
        seed, lengths, mega_batch_size: As in [`GroupChunkSampler`].
        num_candidates (`int`, *optional*): Neighbours looked up per document. Defaults to `4 * (chunk_size - 1)`.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        chunk_size: int,
        seed: int = 0,
        lengths: np.ndarray | None = None,
        mega_batch_size: int = 1600,
        num_candidates: int | None = None,
    ):
        if embeddings.ndim != 2:
            raise ValueError(f"embeddings must be of shape (num_documents, dim), got {embeddings.shape}")
        super().__init__(len(embeddings), chunk_size, 0, seed, lengths, mega_batch_size)
        num_candidates = 4 * (chunk_size - 1) if num_candidates is None else num_candidates
        self.neighbours = nearest_neighbours(embeddings, num_candidates)

    def group_ids(self, rng: np.random.Generator) -> np.ndarray:
        group_ids = np.full(self.num_documents, -1, dtype=np.int64)
        num_groups = 0
        for document in rng.permutation(self.num_documents):
            if group_ids[document] >= 0:
                continue
            candidates = self.neighbours[document]
            free = candidates[group_ids[candidates] < 0][: self.chunk_size - 1]
            group_ids[document] = group_ids[free] = num_groups
            num_groups += 1
        return group_ids


def nearest_neighbours(embeddings: np.ndarray, k: int) -> np.ndarray:
    """
    The `k` nearest other rows of `embeddings` `(num_rows, dim)` by cosine similarity, most similar first: an
    exact faiss inner-product search, shape `(num_rows, min(k, num_rows - 1))`.
    """
    import faiss

    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    k = min(k, len(vectors) - 1)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    _, found = index.search(vectors, k + 1)
    # Each row's own index is usually its first hit, but ties (duplicate rows) may place it anywhere.
    rows = np.arange(len(vectors))[:, None]
    others = np.where(found == rows, -1, found)
    return np.stack([row[row >= 0][:k] for row in others]) if k > 0 else np.empty((len(vectors), 0), dtype=np.int64)


__all__ = ["GroupChunkSampler", "NeighbourGroupedSampler", "PrefixGroupedSampler", "nearest_neighbours"]
