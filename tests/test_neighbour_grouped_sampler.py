"""NeighbourGroupedSampler: first-level training batches made of small groups of nearest neighbours."""

import numpy as np
import pytest

from modeling_lmindexer.data.sampler import NeighbourGroupedSampler, nearest_neighbours


def clustered_embeddings(num_clusters: int, cluster_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tight clusters around random directions, rows shuffled: (embeddings, cluster of every row)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_clusters, 16))
    clusters = np.repeat(np.arange(num_clusters), cluster_size)
    embeddings = centres[clusters] + 0.01 * rng.normal(size=(len(clusters), 16))
    order = rng.permutation(len(clusters))
    return embeddings[order], clusters[order]


def test_nearest_neighbours_are_the_most_similar_other_rows():
    embeddings = np.random.default_rng(1).normal(size=(50, 8))
    found = nearest_neighbours(embeddings, k=5)
    normed = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    cosines = normed @ normed.T
    np.fill_diagonal(cosines, -np.inf)
    np.testing.assert_array_equal(found, np.argsort(-cosines, axis=1)[:, :5])
    assert nearest_neighbours(embeddings[:3], k=5).shape == (3, 2)


def test_every_document_once_in_chunks_of_nearest_neighbours():
    embeddings, clusters = clustered_embeddings(num_clusters=12, cluster_size=4)
    sampler = NeighbourGroupedSampler(embeddings, chunk_size=4, seed=0)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        order = sampler.order()
        assert sorted(order.tolist()) == list(range(len(embeddings)))
        # The first document of a group takes its 3 nearest neighbours: its own cluster, so every chunk of 4
        # consecutive documents is one cluster. A random order almost never is.
        chunks = clusters[order].reshape(-1, 4)
        assert (chunks == chunks[:, :1]).all(), chunks
    random_chunks = clusters[np.random.default_rng(0).permutation(len(clusters))].reshape(-1, 4)
    assert not (random_chunks == random_chunks[:, :1]).all()


def test_groups_change_with_the_epoch_and_are_fixed_by_seed_and_epoch():
    embeddings = np.random.default_rng(2).normal(size=(60, 8))
    sampler = NeighbourGroupedSampler(embeddings, chunk_size=3, seed=5)
    first = list(sampler)
    assert list(NeighbourGroupedSampler(embeddings, chunk_size=3, seed=5)) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and sorted(second) == sorted(first)
    # Not only the chunks' order: the groups themselves are drawn anew, from a new order of their first documents.
    first_chunks = {frozenset(first[start : start + 3]) for start in range(0, 60, 3)}
    second_chunks = {frozenset(second[start : start + 3]) for start in range(0, 60, 3)}
    assert first_chunks != second_chunks
    assert list(NeighbourGroupedSampler(embeddings, chunk_size=3, seed=6)) != first


@pytest.mark.parametrize(
    "embeddings, chunk_size, message",
    [(np.zeros(4), 3, "num_documents, dim"), (np.zeros((4, 2)), 1, "at least 2")],
)
def test_bad_arguments(embeddings, chunk_size, message):
    with pytest.raises(ValueError, match=message):
        NeighbourGroupedSampler(embeddings, chunk_size)
