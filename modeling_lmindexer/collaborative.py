"""
Collaborative item embeddings: what users' interaction sequences say about which items go together.

Semantic IDs learned from text alone group items by what they are; a generative recommender also needs items that are
bought together to share ID prefixes. [`cooccurrence_embeddings`] turns the training part of interaction sequences
into item vectors (truncated SVD of the positive pointwise mutual information of items that co-occur within a few
positions of each other), and [`blend_embeddings`] mixes them with text embeddings, so that the cosine similarity of
two items is a weighted sum of their text and collaborative similarities. The blend can stand in wherever the IDs are
computed from fixed embeddings: the k-means baselines, or the targets of the indexer's distillation loss.
"""

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from .semantic_ids import _index_doc_ids


def cooccurrence_embeddings(
    sequences: Iterable[Sequence[str]],
    item_ids: Sequence[str],
    dimension: int = 64,
    window: int = 3,
    seed: int = 0,
) -> np.ndarray:
    """
    Item vectors from co-occurrence: the rank-`dimension` SVD factors `U * sqrt(S)` of the positive PMI matrix of
    pairs of two different items that occur within `window` positions of each other in one sequence (an item
    repeated in a sequence says nothing about which other items go with it), rows L2-normalised.

    Pass only what a model may learn from (the training part of a leave-one-out split), or the validation and test
    items leak into the IDs.

    Args:
        sequences (`Iterable[Sequence[str]]`): Item ids of each user, in time order.
        item_ids (`Sequence[str]`): The catalogue, in the row order of the result; distinct.
        dimension (`int`): Width of the vectors (at most the catalogue size).
        window (`int`): Largest distance in positions at which two items count as co-occurring.
        seed (`int`): Seed of the randomised SVD.

    Returns:
        `np.ndarray` of shape `(len(item_ids), dimension)` and dtype `np.float32`: unit rows, and zero rows for items
        that co-occur with no other item.

    Raises:
        `ValueError`: For an item of `sequences` missing from `item_ids` (naming it), repeated `item_ids`, or a
        `dimension` or `window` out of range.
    """
    try:
        row_of = _index_doc_ids(item_ids)
    except ValueError as error:
        raise ValueError(f"item_ids: {error}") from None
    if not 1 <= dimension <= len(item_ids):
        raise ValueError(f"dimension = {dimension} must lie between 1 and the catalogue size {len(item_ids)}.")
    if window < 1:
        raise ValueError(f"window = {window} must be at least 1.")
    first_rows, second_rows = [], []
    for sequence in sequences:
        try:
            rows = [row_of[item_id] for item_id in sequence]
        except KeyError as error:
            raise ValueError(f"Item '{error.args[0]}' of an interaction sequence is not in the catalogue.") from None
        for distance in range(1, window + 1):
            for first, second in zip(rows[:-distance], rows[distance:]):
                if first != second:
                    first_rows.append(first)
                    second_rows.append(second)
    embeddings = np.zeros((len(item_ids), dimension), dtype=np.float32)
    if not first_rows:
        return embeddings
    pairs = torch.tensor([first_rows + second_rows, second_rows + first_rows])
    num_items = len(item_ids)
    counts = torch.sparse_coo_tensor(
        pairs, torch.ones(pairs.shape[1], dtype=torch.float64), (num_items, num_items), check_invariants=True
    ).coalesce()
    rows, columns = counts.indices()
    totals = torch.zeros(num_items, dtype=torch.float64).index_add_(0, rows, counts.values())
    pmi = torch.log(counts.values() * totals.sum() / (totals[rows] * totals[columns]))
    positive = pmi > 0
    ppmi = torch.sparse_coo_tensor(
        counts.indices()[:, positive], pmi[positive].float(), (num_items, num_items), check_invariants=True
    ).coalesce()
    # A few more directions than kept, as randomised SVD needs for accurate leading factors (Halko et al.).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        left, singular_values, _ = torch.svd_lowrank(ppmi, q=min(dimension + 10, num_items), niter=4)
    factors = (left[:, :dimension] * singular_values[:dimension].sqrt()).numpy()
    # Items without a positive PMI entry have zero rows in exact arithmetic; the SVD leaves rounding noise there.
    has_entries = np.zeros(num_items, dtype=bool)
    has_entries[ppmi.indices()[0].numpy()] = True
    factors[~has_entries] = 0
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    np.divide(factors, norms, out=embeddings, where=norms > 0)
    return embeddings


def blend_embeddings(text: np.ndarray, collaborative: np.ndarray, collaborative_share: float) -> np.ndarray:
    """
    Concatenate `sqrt(1 - s) * text` and `sqrt(s) * collaborative` (`s = collaborative_share`) and renormalise: for two
    items with unit rows in both, the cosine similarity of the blend is `(1 - s) * text cosine + s * collaborative
    cosine`; an item with a zero collaborative row keeps its text direction.

    Args:
        text (`np.ndarray` of shape `(num_items, text_size)`): Unit text embeddings.
        collaborative (`np.ndarray` of shape `(num_items, collaborative_size)`): Unit or zero rows, e.g. from
            [`cooccurrence_embeddings`].
        collaborative_share (`float`): `s` in `[0, 1)`; at 0 every cosine similarity is the text one.

    Returns:
        `np.ndarray` of shape `(num_items, text_size + collaborative_size)` and dtype `np.float32`, unit rows.

    Raises:
        `ValueError`: For a share outside `[0, 1)` or arrays of different numbers of rows.
    """
    if not 0 <= collaborative_share < 1:
        raise ValueError(f"collaborative_share = {collaborative_share} must lie in [0, 1).")
    if len(text) != len(collaborative):
        raise ValueError(f"{len(text)} text embeddings but {len(collaborative)} collaborative ones: one row per item.")
    blend = np.concatenate(
        [np.sqrt(1 - collaborative_share) * text, np.sqrt(collaborative_share) * collaborative], axis=1
    ).astype(np.float32)
    return blend / np.linalg.norm(blend, axis=1, keepdims=True).clip(min=1e-12)


def consecutive_prefix_sharing(
    sequences: Iterable[Sequence[str]], doc_ids: Sequence[str], codes: np.ndarray
) -> list[float]:
    """
    How well ID prefixes group what is consumed together: for `t = 1 .. num_levels`, the fraction of consecutive pairs
    of two different items in `sequences` whose IDs share their first `t` codes.

    Args:
        sequences (`Iterable[Sequence[str]]`): Item ids of each user, in time order (e.g.
            [`~data.recommendation.training_parts`]).
        doc_ids (`Sequence[str]`): The items of the ID table, in row order.
        codes (`np.ndarray` of shape `(len(doc_ids), num_levels)`): Their codes (the learned levels).

    Returns:
        `list[float]` of length `num_levels`, non-increasing; empty when no pair has both items in `doc_ids` (pairs
        with an item outside it are skipped).
    """
    row_of = {doc_id: row for row, doc_id in enumerate(doc_ids)}
    first_rows, second_rows = [], []
    for sequence in sequences:
        rows = [row_of.get(item) for item in sequence]
        for first, second in zip(rows, rows[1:]):
            if first is not None and second is not None and first != second:
                first_rows.append(first)
                second_rows.append(second)
    if not first_rows:
        return []
    shared_prefix = np.cumprod(codes[first_rows] == codes[second_rows], axis=1)
    return [float(share) for share in shared_prefix.mean(axis=0)]


__all__ = ["blend_embeddings", "consecutive_prefix_sharing", "cooccurrence_embeddings"]
