"""PrefixGroupMeans: per-prefix means of level representations, lookup, and the file round trip."""

import pytest
import torch

from modeling_lmindexer import PrefixGroupMeans


def test_fit_stores_means_of_groups_with_two_or_more_documents():
    representations = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0], [0.0, 4.0], [2.0, 2.0]])
    prefix_codes = torch.tensor([[0, 1], [0, 1], [2, 3], [1, 0], [1, 0]])
    group_means = PrefixGroupMeans([3, 4, 8])
    group_means.fit(2, representations, prefix_codes)

    offsets = group_means(2, prefix_codes, representations)
    expected = torch.tensor([[2.0, 1.0], [2.0, 1.0], [0.0, 0.0], [1.0, 3.0], [1.0, 3.0]])
    torch.testing.assert_close(offsets, expected)
    # The lone document of prefix (2, 3) and a prefix no document has get no offset.
    unseen = group_means(2, torch.tensor([[2, 3], [2, 2]]), torch.ones(2, 2))
    torch.testing.assert_close(unseen, torch.zeros(2, 2))


def test_level_zero_centres_by_the_corpus_mean_and_unfitted_levels_by_nothing():
    representations = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    group_means = PrefixGroupMeans([4, 4])
    group_means.fit(0, representations, None)
    torch.testing.assert_close(group_means(0, None, representations), representations.mean(0).expand(10, 3))
    assert not group_means.has_level(1)
    torch.testing.assert_close(
        group_means(1, torch.zeros(10, 1, dtype=torch.long), representations), torch.zeros(10, 3)
    )


def test_tensor_round_trip_and_bad_tensors():
    group_means = PrefixGroupMeans([4, 4])
    group_means.fit(1, torch.randn(6, 3), torch.tensor([[0], [0], [1], [1], [2], [3]]))
    tensors = group_means.to_tensors()
    assert set(tensors) == {"level_1.keys", "level_1.means"}
    restored = PrefixGroupMeans.from_tensors([4, 4], tensors)
    prefixes = torch.tensor([[0], [1], [2]])
    torch.testing.assert_close(restored(1, prefixes, torch.zeros(3, 3)), group_means(1, prefixes, torch.zeros(3, 3)))

    with pytest.raises(ValueError, match="means.safetensors: level 1 needs 1-D keys"):
        PrefixGroupMeans.from_tensors([4, 4], {"level_1.keys": tensors["level_1.keys"]}, source="means.safetensors")
    with pytest.raises(ValueError, match="level 1 is beyond the model's 1 levels"):
        PrefixGroupMeans.from_tensors([4], tensors)
