"""Training the generative recommender on every position of every user's sequence, and ranking with it."""

import time
from collections.abc import Sequence

import torch
from accelerate.utils import gather_object
from datasets import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.utils import logging

from modeling_lmindexer import LMIndexerRecommender
from modeling_lmindexer.data.recommendation import RecommendationExample
from modeling_lmindexer.id_tokens import IGNORE_INDEX, check_share
from modeling_lmindexer.metrics import compute_retrieval_metrics

from .callbacks import LearningCurveMixin
from .training_args import move_label_smoothing_to_model


logger = logging.get_logger(__name__)


class RecommendationCollator:
    """
    Batches sequences `{"input_ids": [bos, ID tokens of every item ...]}` with `labels` on the ID tokens of every item
    after the first (`-100` on `bos`, the first item and the padding), so that one forward pass trains every
    next-item prediction of every sequence.

    With `pack_sequences` (the default), short sequences share a row: each row, as long as the batch's longest
    sequence, holds several sequences one after another (first-fit, longest first), and `position_ids` restart at 0
    for every sequence and for the padding at a row's end, with no `attention_mask`: transformers then attends within
    each sequence only (its packed-sequence masks), so the losses are exactly those of one sequence per row, while the
    rows to compute shrink by the padding saved (most users' histories are far shorter than the longest).

    With `item_dropout` > 0, every item of a sequence is left out with that probability each time the sequence is
    batched (its ID tokens removed, the items after it moved up), so that every epoch trains on other sub-sequences of
    the same histories instead of repeating them; a sequence keeps at least two items (it is used whole when fewer
    would remain). The draws use torch's random state (seeded by `Trainer`; each dataloader worker's own with
    `dataloader_num_workers > 0`).

    Args:
        num_levels (`int`): ID tokens per item.
        pad_token_id (`int`): The padding token.
        pack_sequences (`bool`): Pack several sequences into a row; otherwise one right-padded sequence per row with
            an `attention_mask`.
        item_dropout (`float`): Probability of leaving an item out of a training sequence, in `[0, 1)`.
    """

    def __init__(self, num_levels: int, pad_token_id: int, pack_sequences: bool = True, item_dropout: float = 0.0):
        check_share("item_dropout", item_dropout)
        self.num_levels = num_levels
        self.pad_token_id = pad_token_id
        self.pack_sequences = pack_sequences
        self.item_dropout = item_dropout

    def _drop_items(self, sequence: list[int]) -> list[int]:
        """`sequence` (`bos` then `num_levels` tokens per item) without the items that `item_dropout` leaves out."""
        num_items = (len(sequence) - 1) // self.num_levels
        kept = (torch.rand(num_items) >= self.item_dropout).nonzero()[:, 0].tolist()
        if len(kept) < 2:
            return sequence
        tokens = [sequence[0]]
        for item in kept:
            tokens.extend(sequence[1 + item * self.num_levels : 1 + (item + 1) * self.num_levels])
        return tokens

    def _rows(self, sequences: list[list[int]]) -> list[list[list[int]]]:
        """The sequences of every row: first-fit, longest first, in rows of the longest sequence's length."""
        if not self.pack_sequences:
            return [[sequence] for sequence in sequences]
        row_length = max(len(sequence) for sequence in sequences)
        rows, free = [], []
        for sequence in sorted(sequences, key=len, reverse=True):
            row = next((index for index, space in enumerate(free) if space >= len(sequence)), None)
            if row is None:
                rows.append([])
                free.append(row_length)
                row = len(rows) - 1
            rows[row].append(sequence)
            free[row] -= len(sequence)
        return rows

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        sequences = [list(feature["input_ids"]) for feature in features]
        if self.item_dropout > 0.0:
            sequences = [self._drop_items(sequence) for sequence in sequences]
        rows = self._rows(sequences)
        length = max(sum(len(sequence) for sequence in row) for row in rows)
        input_ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        position_ids = torch.zeros_like(input_ids)
        attention_mask = torch.zeros_like(input_ids)
        for index, row in enumerate(rows):
            start = 0
            for sequence in row:
                end = start + len(sequence)
                input_ids[index, start:end] = torch.as_tensor(sequence)
                labels[index, start + 1 + self.num_levels : end] = input_ids[index, start + 1 + self.num_levels : end]
                position_ids[index, start:end] = torch.arange(len(sequence))
                attention_mask[index, start:end] = 1
                start = end
            # The padding is a sequence of its own: it attends to nothing real, and no real token attends to it.
            position_ids[index, start:] = torch.arange(length - start)
        if self.pack_sequences:
            return {"input_ids": input_ids, "position_ids": position_ids, "labels": labels}
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def recommendation_training_dataset(model: LMIndexerRecommender, windows: Sequence[Sequence[str]]) -> Dataset:
    """The `input_ids` of training windows of items (see [`training_windows`]); unknown items raise `ValueError`."""
    return Dataset.from_dict(
        {
            "input_ids": [
                model.sequence_token_ids(window, source=f"training window {index}")
                for index, window in enumerate(windows)
            ]
        }
    )


def recommendation_evaluation_dataset(examples: Sequence[RecommendationExample]) -> Dataset:
    """The histories and next items of evaluation examples, as [`LMIndexerRecommenderTrainer.evaluate`] reads them."""
    return Dataset.from_dict(
        {
            "user_id": [example.user_id for example in examples],
            "history": [list(example.history) for example in examples],
            "target": [example.target for example in examples],
        }
    )


class LMIndexerRecommenderTrainer(LearningCurveMixin, Trainer):
    """
    [`Trainer`] for [`LMIndexerRecommender`]: batches of whole sequences with the loss on every position
    ([`RecommendationCollator`]), and an `evaluate()` that ranks the catalogue for every history of an evaluation
    dataset ([`recommendation_evaluation_dataset`]) with [`~LMIndexerRecommender.recommend`] and reports item-level
    Recall@K and NDCG@K (a hit is the target item itself). Every evaluation during training adds a point to
    `self.curve` at the training minutes spent (a [`TimeBudgetCallback`] among the callbacks keeps that clock and does
    not count evaluation time).

    Args:
        model ([`LMIndexerRecommender`]): The recommender, with its IDs.
        args (`TrainingArguments`): The usual arguments (`train_sampling_strategy="group_by_length"` batches
            sequences of similar lengths; `per_device_eval_batch_size` users are ranked at once).
        train_dataset (`Dataset`, *optional*): [`recommendation_training_dataset`] rows.
        eval_dataset (`Dataset`, *optional*): [`recommendation_evaluation_dataset`] rows.
        k_values (`Sequence[int]`): Cut-offs of the metrics.
        num_beams (`int`): Beam width of the rankings (at least the largest cut-off).
        item_dropout (`float`): Probability of leaving an item out of a training sequence each time it is batched
            (see [`RecommendationCollator`]).
        callbacks: As for [`Trainer`].

    `args.label_smoothing_factor` sets the model's `config.label_smoothing` (smoothing over the codes of the level
    each position predicts; saved with the model): `Trainer`'s own label smoother would spread probability onto the
    tokens a position cannot produce, an infinite loss.
    """

    def __init__(
        self,
        model: LMIndexerRecommender,
        args: TrainingArguments,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | None = None,
        k_values: Sequence[int] = (5, 10),
        num_beams: int = 20,
        item_dropout: float = 0.0,
        callbacks: list[TrainerCallback] | None = None,
    ):
        if not k_values or min(k_values) < 1:
            raise ValueError(f"k_values = {list(k_values)}: give at least one cut-off, each at least 1.")
        if num_beams < max(k_values):
            raise ValueError(f"num_beams = {num_beams} must be at least the largest cut-off {max(k_values)}.")
        super().__init__(
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            data_collator=RecommendationCollator(
                model.config.num_levels, model.config.pad_token_id, item_dropout=item_dropout
            ),
            callbacks=callbacks,
        )
        move_label_smoothing_to_model(self, model.config)
        self.k_values = list(k_values)
        self.num_beams = num_beams

    def rankings(self, histories: Sequence[Sequence[str]]) -> list[list[str]]:
        """The top `max(k_values)` items of every history."""
        return self.model.recommend(
            histories, k=max(self.k_values), num_beams=self.num_beams, batch_size=self.args.per_device_eval_batch_size
        )

    def evaluate(
        self,
        eval_dataset: Dataset | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """Item-level `recall@K` and `ndcg@K` of the rankings of `eval_dataset` (default: the trainer's), prefixed
        with `metric_key_prefix`, plus the seconds the evaluation took and the number of users. With several
        processes, each ranks its share of the users and every process returns the metrics of all of them (so every
        process calls `evaluate`, as `Trainer` does)."""
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        if dataset is None:
            raise ValueError("Nothing to evaluate: pass an eval_dataset (recommendation_evaluation_dataset).")
        start = time.monotonic()
        histories = list(dataset["history"])
        process, processes = self.args.process_index, self.args.world_size
        if processes > 1:
            # Every process checks every history: a bad one raises everywhere (naming its row of the dataset)
            # instead of on one process while the others wait for its rankings.
            self.model.history_token_ids(histories)
        # Every `processes`-th user: shares within one user of each other whatever the order of the dataset.
        rankings = self.rankings(histories[process::processes])
        if processes > 1:
            shards = gather_object([rankings])
            rankings = [shards[index % processes][index // processes] for index in range(len(histories))]
        scores = compute_retrieval_metrics(rankings, [{target} for target in dataset["target"]], self.k_values)
        seconds = time.monotonic() - start
        metrics = {
            f"{metric_key_prefix}_{name}": value
            for name, value in scores.items()
            if name.split("@")[0] in ("recall", "ndcg")
        }
        metrics[f"{metric_key_prefix}_seconds"] = seconds
        metrics[f"{metric_key_prefix}_users"] = len(dataset)
        self.record_evaluation(metrics, seconds, metric_key_prefix)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


__all__ = [
    "LMIndexerRecommenderTrainer",
    "RecommendationCollator",
    "recommendation_evaluation_dataset",
    "recommendation_training_dataset",
]
