import numpy as np
import pytest
import torch

from modeling_lmindexer.collaborative import (
    blend_embeddings,
    consecutive_prefix_sharing,
    cooccurrence_embeddings,
)
from modeling_lmindexer.data.recommendation import training_parts


ITEMS = ["a", "b", "c", "d", "e", "f", "lonely"]
# Two groups of items bought together; "lonely" is in the catalogue but in no sequence.
SEQUENCES = [["a", "b", "c"], ["b", "a"], ["c", "a", "b"], ["d", "e", "f"], ["f", "d"], ["e", "f", "d"]] * 3


def cosine(embeddings: np.ndarray, first: str, second: str) -> float:
    return float(embeddings[ITEMS.index(first)] @ embeddings[ITEMS.index(second)])


def test_items_bought_together_are_closer_than_items_of_other_groups():
    embeddings = cooccurrence_embeddings(SEQUENCES, ITEMS, dimension=2, window=2)
    assert embeddings.shape == (7, 2) and embeddings.dtype == np.float32
    within = [cosine(embeddings, *pair) for pair in (("a", "b"), ("a", "c"), ("d", "e"), ("e", "f"))]
    across = [cosine(embeddings, *pair) for pair in (("a", "d"), ("b", "e"), ("c", "f"))]
    assert min(within) > 0.9 and max(across) < 0.1
    assert np.allclose(np.linalg.norm(embeddings[:6], axis=1), 1.0, atol=1e-5)
    assert not embeddings[ITEMS.index("lonely")].any()


def test_co_occurrence_embeddings_are_seeded_and_leave_the_global_generator_alone():
    torch.manual_seed(7)
    expected_draw = torch.rand(3)
    torch.manual_seed(7)
    first = cooccurrence_embeddings(SEQUENCES, ITEMS, dimension=3, seed=1)
    assert torch.equal(torch.rand(3), expected_draw)
    assert np.array_equal(first, cooccurrence_embeddings(SEQUENCES, ITEMS, dimension=3, seed=1))


def test_an_item_repeated_in_a_sequence_does_not_co_occur_with_itself():
    embeddings = cooccurrence_embeddings([["a", "a"], ["b", "c"]], ITEMS, dimension=2)
    assert not embeddings[ITEMS.index("a")].any()
    assert np.allclose(np.linalg.norm(embeddings[[ITEMS.index("b"), ITEMS.index("c")]], axis=1), 1.0, atol=1e-5)


def test_no_co_occurrence_gives_zero_rows():
    assert not cooccurrence_embeddings([["a"], []], ITEMS, dimension=2).any()


@pytest.mark.parametrize("sequences, item_ids, dimension, window, message", [
    ([["a", "zzz"]], ITEMS, 2, 1, "Item 'zzz' of an interaction sequence is not in the catalogue"),
    (SEQUENCES, ["a", "b", "a"], 2, 1, "item_ids: duplicate doc id 'a' at positions 0 and 2"),
    (SEQUENCES, ITEMS, 8, 1, "dimension = 8 must lie between 1 and the catalogue size 7"),
    (SEQUENCES, ITEMS, 0, 1, "dimension = 0"),
    (SEQUENCES, ITEMS, 2, 0, "window = 0 must be at least 1"),
])  # fmt: skip
def test_co_occurrence_embeddings_refuse_bad_input(sequences, item_ids, dimension, window, message):
    with pytest.raises(ValueError, match=message):
        cooccurrence_embeddings(sequences, item_ids, dimension=dimension, window=window)


def unit_rows(rows: int, columns: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(rows, columns))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("share", [0.0, 0.3, 0.8])
def test_blended_cosines_are_the_share_weighted_sum_of_text_and_collaborative_cosines(share):
    text, collaborative = unit_rows(5, 6, seed=0), unit_rows(5, 3, seed=1)
    blend = blend_embeddings(text, collaborative, share)
    assert blend.shape == (5, 9) and blend.dtype == np.float32
    expected = (1 - share) * text @ text.T + share * collaborative @ collaborative.T
    np.testing.assert_allclose(blend @ blend.T, expected, atol=1e-5)


def test_an_item_without_collaborative_signal_keeps_its_text_direction():
    text, collaborative = unit_rows(3, 4, seed=2), unit_rows(3, 2, seed=3)
    collaborative[1] = 0
    blend = blend_embeddings(text, collaborative, 0.5)
    np.testing.assert_allclose(blend[1, :4], text[1], atol=1e-6)
    assert not blend[1, 4:].any()


@pytest.mark.parametrize("share, collaborative_rows, message", [
    (1.0, 3, r"collaborative_share = 1.0 must lie in \[0, 1\)"),
    (-0.1, 3, "collaborative_share = -0.1"),
    (0.5, 2, "3 text embeddings but 2 collaborative ones"),
])  # fmt: skip
def test_blend_refuses_bad_input(share, collaborative_rows, message):
    with pytest.raises(ValueError, match=message):
        blend_embeddings(unit_rows(3, 4, seed=0), unit_rows(collaborative_rows, 2, seed=1), share)


def test_training_parts_leave_out_every_user_s_last_two_items():
    assert training_parts({"u1": ["a", "b", "c", "d"], "u2": ["e", "f"], "u3": ["g"]}) == [["a", "b"], [], []]


def test_consecutive_prefix_sharing_counts_pairs_of_different_items_by_shared_prefix_length():
    doc_ids = ["a", "b", "c", "d"]
    codes = np.array([[0, 0, 1], [0, 0, 2], [0, 1, 0], [1, 0, 0]])
    # Pairs: a-b (2 codes), b-c (1), c-d (0), d-d (same item, skipped), a-x (unknown item, skipped).
    sequences = [["a", "b", "c", "d", "d"], ["a", "x"]]
    assert consecutive_prefix_sharing(sequences, doc_ids, codes) == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert consecutive_prefix_sharing([["a"], ["x", "y"]], doc_ids, codes) == []
