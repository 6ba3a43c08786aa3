"""
Training and evaluation of the generative retriever: a `Seq2SeqTrainer` whose evaluation decodes ranked documents
with trie-constrained beam search and scores them with Recall@K, NDCG@K and MRR@K.

- [`retrieval_training_dataset`] / [`retrieval_evaluation_dataset`]: the `datasets.Dataset` layouts the trainer
  reads (token ids of the source; ID tokens as labels; for evaluation, the judged documents of every query).
- [`LMIndexerRetrieverTrainer`]: trains on `input_ids -> ID tokens`; `evaluate()` and `predict()` run `generate()`
  on every query and log `eval_recall@10`, `eval_ndcg@10`, `eval_mrr@10`, ...
"""

import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel
from transformers import (
    DataCollatorForSeq2Seq,
    PreTrainedTokenizerBase,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
)
from transformers.distributed.fsdp import is_fsdp_managed_module
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
from transformers.trainer_utils import EvalLoopOutput, EvalPrediction, PredictionOutput, unwrap_peft_model
from transformers.utils import logging

from modeling_lmindexer import LMIndexerRetriever
from modeling_lmindexer.id_tokens import IGNORE_INDEX
from modeling_lmindexer.metrics import compute_retrieval_metrics

from .callbacks import LearningCurveMixin
from .training_args import move_label_smoothing_to_model


logger = logging.get_logger(__name__)

QUERY_INDEX_COLUMN = "query_index"
RELEVANT_DOC_IDS_COLUMN = "relevant_doc_ids"
RELEVANCE_COLUMN = "relevance"
DEFAULT_K_VALUES = (1, 5, 10)
DEFAULT_NUM_BEAMS = 20


def retrieval_training_dataset(
    model: LMIndexerRetriever, input_ids: Sequence[Sequence[int]], target_doc_ids: Sequence[str]
) -> Dataset:
    """
    Training examples of the retriever: generate the ID of `target_doc_ids[i]` from `input_ids[i]`.

    Args:
        model ([`LMIndexerRetriever`]): The retriever, for [`~LMIndexerRetriever.id_tokens`].
        input_ids (`Sequence[Sequence[int]]` of length `num_examples`): Token ids of every source (query text or
            item ID tokens), unpadded.
        target_doc_ids (`Sequence[str]` of length `num_examples`): The document of every example.

    Returns:
        `Dataset` with the columns `input_ids` and `labels` (the target's ID tokens then `eos_token_id`,
        `num_levels + 1` tokens).
    """
    if len(input_ids) != len(target_doc_ids):
        raise ValueError(f"Got {len(input_ids)} sources but {len(target_doc_ids)} targets: one of each per example.")
    return Dataset.from_dict(
        {"input_ids": [list(ids) for ids in input_ids], "labels": [model.id_tokens(doc) for doc in target_doc_ids]}
    )


def retrieval_evaluation_dataset(
    model: LMIndexerRetriever, input_ids: Sequence[Sequence[int]], relevance: Sequence[Mapping[str, int]]
) -> Dataset:
    """
    Evaluation queries of the retriever with their judged documents.

    Args:
        model ([`LMIndexerRetriever`]): The retriever, for [`~LMIndexerRetriever.id_tokens`].
        input_ids (`Sequence[Sequence[int]]` of length `num_queries`): Token ids of every query, unpadded.
        relevance (`Sequence[Mapping[str, int]]` of length `num_queries`): The judged doc ids of every query and
            their grades (> 0: relevant). Every query needs a relevant document with an ID; relevant documents
            without one still count in the metrics (as missed).

    Returns:
        `Dataset` with the columns `input_ids`, `labels` (ID tokens of the query's best-graded relevant document
        that has an ID, for the evaluation loss), `relevant_doc_ids` (`list[str]`) and `relevance` (`list[int]`).

    Raises:
        `ValueError`: For a query without any relevant document that has an ID (naming its position).
    """
    if len(input_ids) != len(relevance):
        raise ValueError(f"Got {len(input_ids)} queries but {len(relevance)} judgments: one of each per query.")
    semantic_ids = model.semantic_ids
    labels = []
    for position, judged in enumerate(relevance):
        indexed = [(grade, doc) for doc, grade in judged.items() if grade > 0 and doc in semantic_ids]
        if not indexed:
            raise ValueError(f"Query {position} has no relevant document with a semantic ID: {dict(judged)}.")
        labels.append(model.id_tokens(max(indexed, key=lambda graded: graded[0])[1]))
    return Dataset.from_dict(
        {
            "input_ids": [list(ids) for ids in input_ids],
            "labels": labels,
            RELEVANT_DOC_IDS_COLUMN: [list(judged) for judged in relevance],
            RELEVANCE_COLUMN: [[int(grade) for grade in judged.values()] for judged in relevance],
        }
    )


class LMIndexerRetrieverTrainer(LearningCurveMixin, Seq2SeqTrainer):
    """
    A [`Seq2SeqTrainer`] for [`LMIndexerRetriever`]: training minimises the loss of the ID tokens (`labels`) given
    `input_ids`; evaluation generates, for every query, the `max(k_values)` best documents with beam search
    constrained to the indexed IDs and computes Recall@K, NDCG@K and MRR@K with
    [`~modeling_lmindexer.metrics.compute_retrieval_metrics`] (IDCG over all judged relevant documents).

    Evaluation datasets are made by [`retrieval_evaluation_dataset`]: besides `input_ids` (and optionally `labels`,
    for the evaluation loss) they hold the judged documents of every query in the columns `relevant_doc_ids` and
    `relevance` (optional, grade 1 for all when missing). `evaluate()` and `predict()` read these columns, then add
    a `query_index` column that travels through the data loader and the gathering across processes, so every ranking
    is matched with its own query whatever the sampler or the number of processes. Metrics are logged with the usual
    prefix: `eval_recall@10`, `eval_ndcg@10`, `eval_mrr@10`, ... (`test_...` from `predict()`). Every evaluation during
    training adds a point to `self.curve` at the training minutes spent, and its time is not counted by a
    [`TimeBudgetCallback`] among the callbacks ([`LearningCurveMixin`]).

    `predict()` returns the generated sequences `(num_queries, num_return_sequences, num_levels + 2)` as
    `predictions` and the query positions `(num_queries,)` as `label_ids`; [`~LMIndexerRetrieverTrainer.rankings`]
    turns the sequences into ranked doc ids.

    Works with `accelerate launch` on any number of processes: predictions are gathered with
    `gather_for_metrics`, which drops the queries repeated to even out the last batch.

    `args.label_smoothing_factor` sets the model's `config.label_smoothing` (with the ID-only head: smoothing over
    the tokens each decoding step can produce; saved with the model): `Trainer`'s own label smoother would spread
    probability onto the tokens the ID-only head scores `-inf`, an infinite loss.

    Args:
        model ([`LMIndexerRetriever`]): The retriever, with its semantic IDs.
        args ([`Seq2SeqTrainingArguments`], *optional*): `generation_num_beams`, when set, is the beam width.
        data_collator (`DataCollator`, *optional*): Defaults to `DataCollatorForSeq2Seq(processing_class)`, padding
            `input_ids` with the tokenizer and `labels` with -100.
        train_dataset (`Dataset`, *optional*): Made by [`retrieval_training_dataset`].
        eval_dataset (`Dataset` or `dict[str, Dataset]`, *optional*): Made by [`retrieval_evaluation_dataset`].
        processing_class (`PreTrainedTokenizerBase`, *optional*): The tokenizer (needed without `data_collator`).
        k_values (`Sequence[int]`, *optional*, defaults to `(1, 5, 10)`): The cut-offs K.
        num_beams (`int`, *optional*): Beam width, at least `max(k_values)`; defaults to
            `args.generation_num_beams`, else to `max(20, max(k_values))` (the paper decodes with 20 beams).
        relevance_threshold (`int`, *optional*, defaults to 1): Smallest grade Recall and MRR count as relevant
            (2 for TREC Deep Learning); NDCG uses every positive grade.
        kwargs: Any other [`Seq2SeqTrainer`] argument but `compute_metrics` (`callbacks`, `optimizers`, ...).
    """

    def __init__(
        self,
        model: LMIndexerRetriever | nn.Module,
        args: Seq2SeqTrainingArguments | None = None,
        data_collator: Any | None = None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | dict[str, Dataset] | None = None,
        processing_class: PreTrainedTokenizerBase | None = None,
        k_values: Sequence[int] = DEFAULT_K_VALUES,
        num_beams: int | None = None,
        relevance_threshold: int = 1,
        **kwargs,
    ):
        if "compute_metrics" in kwargs:
            raise ValueError("LMIndexerRetrieverTrainer computes its retrieval metrics itself: drop compute_metrics.")
        if data_collator is None:
            if processing_class is None:
                raise ValueError("Pass processing_class (the tokenizer, to pad input_ids) or a data_collator.")
            data_collator = DataCollatorForSeq2Seq(processing_class, label_pad_token_id=IGNORE_INDEX)
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            compute_metrics=self._compute_retrieval_metrics,
            **kwargs,
        )
        if self.retriever.semantic_ids is None:
            raise ValueError("The retriever has no semantic IDs: build it with from_indexer or from_backbone.")
        move_label_smoothing_to_model(self, self.retriever.config)
        if not k_values or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in k_values):
            raise ValueError(f"k_values must be positive ints, got {list(k_values)}.")
        self.k_values = sorted(set(k_values))
        self.relevance_threshold = relevance_threshold
        self.num_beams = num_beams or self.args.generation_num_beams or max(DEFAULT_NUM_BEAMS, self.k_values[-1])
        if self.num_beams < self.k_values[-1]:
            raise ValueError(f"num_beams = {self.num_beams} is below the largest cut-off K = {self.k_values[-1]}.")
        if self.args.batch_eval_metrics:
            raise ValueError("batch_eval_metrics is not supported: retrieval metrics need every query at once.")
        # The query positions are kept by the column filter and returned as the "labels" of evaluation.
        self.label_names = [*self.label_names, QUERY_INDEX_COLUMN]
        self._references: list[dict[str, int]] = []

    @property
    def retriever(self) -> LMIndexerRetriever:
        """The retriever, unwrapped from any distributed or PEFT wrapper."""
        return unwrap_peft_model(self.accelerator.unwrap_model(self.model))

    def _generation_kwargs(self, gen_kwargs: dict) -> dict:
        """Beam search for the `max(k_values)` best IDs (fewer when fewer documents are indexed), then `gen_kwargs`."""
        num_return_sequences = min(self.k_values[-1], len(self.retriever.semantic_ids))
        defaults = {"num_beams": self.num_beams, "num_return_sequences": num_return_sequences, "do_sample": False}
        return {**defaults, **gen_kwargs}

    def _with_query_index(self, dataset: Dataset) -> Dataset:
        """Keep the judged documents of every query in `self._references`; return the dataset with `query_index`."""
        if not isinstance(dataset, Dataset) or RELEVANT_DOC_IDS_COLUMN not in dataset.column_names:
            raise ValueError(
                f"Evaluation needs a datasets.Dataset with a '{RELEVANT_DOC_IDS_COLUMN}' column (the judged documents "
                "of every query): build it with retrieval_evaluation_dataset."
            )
        relevant = dataset[RELEVANT_DOC_IDS_COLUMN]
        grades = dataset[RELEVANCE_COLUMN] if RELEVANCE_COLUMN in dataset.column_names else None
        self._references = [
            dict(zip(doc_ids, grades[position] if grades is not None else [1] * len(doc_ids)))
            for position, doc_ids in enumerate(relevant)
        ]
        if QUERY_INDEX_COLUMN in dataset.column_names:
            dataset = dataset.remove_columns(QUERY_INDEX_COLUMN)
        return dataset.add_column(QUERY_INDEX_COLUMN, list(range(len(dataset))))

    def evaluate(
        self,
        eval_dataset: Dataset | dict[str, Dataset] | str | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
        **gen_kwargs,
    ) -> dict[str, float]:
        """
        Rank documents for every evaluation query and return the metrics (`eval_recall@10`, ..., `eval_loss` when
        the dataset has `labels`).

        Args:
            eval_dataset (`Dataset`, `dict[str, Dataset]` or `str`, *optional*): Defaults to `self.eval_dataset`.
            ignore_keys (`list[str]`, *optional*): Ignored model output keys.
            metric_key_prefix (`str`): Prefix of the metric names.
            gen_kwargs: `generate()` arguments overriding the beam search defaults.
        """
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        if isinstance(dataset, str):
            dataset = self.eval_dataset[dataset]
        if dataset is None or isinstance(dataset, dict):
            # Trainer.evaluate calls evaluate() again for every dataset of a dict.
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix, **gen_kwargs)
        start = time.monotonic()
        metrics = super().evaluate(
            self._with_query_index(dataset), ignore_keys, metric_key_prefix, **self._generation_kwargs(gen_kwargs)
        )
        self.record_evaluation(metrics, time.monotonic() - start, metric_key_prefix)
        return metrics

    def predict(
        self,
        test_dataset: Dataset,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "test",
        **gen_kwargs,
    ) -> PredictionOutput:
        """
        Rank documents for every query of `test_dataset`.

        Returns:
            `PredictionOutput` whose `predictions` are the generated sequences `(num_queries, num_return_sequences,
            num_levels + 2)` in dataset order, `label_ids` the query positions `(num_queries,)`, and `metrics` the
            retrieval metrics (`test_recall@10`, ...).
        """
        return super().predict(
            self._with_query_index(test_dataset), ignore_keys, metric_key_prefix, **self._generation_kwargs(gen_kwargs)
        )

    def evaluation_loop(
        self,
        dataloader: torch.utils.data.DataLoader,
        description: str,
        prediction_loss_only: bool | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> EvalLoopOutput:
        # Seq2SeqTrainer gathers with `gather`, which keeps the queries repeated to even out the last batch across
        # processes; `gather_for_metrics` drops them, so that every query counts once.
        self.gather_function = self.accelerator.gather_for_metrics
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        if isinstance(output.label_ids, np.ndarray):
            # Back to dataset order, whatever order the sampler and the processes produced.
            order = np.argsort(output.label_ids, kind="stable")
            output = output._replace(predictions=output.predictions[order], label_ids=output.label_ids[order])
        return output

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
        **gen_kwargs,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """
        The evaluation loss (when `labels` are given) and the constrained beam search of one batch.

        Returns:
            `tuple`: the loss (scalar or `None`), the generated sequences `(batch_size, num_return_sequences,
            num_levels + 2)` (decoder start token, ID tokens, `eos_token_id`; shorter ones padded with
            `pad_token_id`), and the query positions `(batch_size,)`. The last two are `None` when only the loss is
            asked for or the batch has no `query_index`.
        """
        inputs = self._prepare_inputs(inputs)
        query_index = inputs.pop(QUERY_INDEX_COLUMN, None)
        loss = None
        if "labels" in inputs:
            with torch.no_grad(), self.compute_loss_context_manager():
                loss = model(**inputs).loss.detach()
        if prediction_loss_only or query_index is None:
            return loss, None, None

        gen_kwargs = {**getattr(self, "_gen_kwargs", {}), **gen_kwargs}
        gen_kwargs = {name: value for name, value in gen_kwargs.items() if value is not None}
        gen_kwargs.setdefault("synced_gpus", is_deepspeed_zero3_enabled() or is_fsdp_managed_module(self.model))
        generation_inputs = {
            name: value
            for name, value in inputs.items()
            if name not in ("labels", "decoder_input_ids", "decoder_attention_mask")
        }
        summon_full_params = (
            FullyShardedDataParallel.summon_full_params(self.model)
            if isinstance(self.model, FullyShardedDataParallel)
            else contextlib.nullcontext()
        )
        with torch.no_grad(), summon_full_params:
            sequences = self.model.generate(**generation_inputs, **gen_kwargs)
        config = self.retriever.config
        id_length = config.num_levels + 2
        sequences = sequences[:, :id_length]
        if sequences.shape[1] < id_length:
            pad_token_id = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id
            sequences = nn.functional.pad(sequences, (0, id_length - sequences.shape[1]), value=pad_token_id)
        batch_size = query_index.shape[0]
        return loss, sequences.reshape(batch_size, -1, id_length), query_index

    def rankings(self, sequences: np.ndarray | torch.Tensor) -> list[list[str]]:
        """
        Ranked doc ids of every query from the generated sequences.

        Args:
            sequences (`np.ndarray` or `torch.LongTensor` of shape `(num_queries, num_return_sequences, length)`):
                `predict().predictions`.

        Returns:
            `list[list[str]]`: For every query, its doc ids best first, from
            [`~LMIndexerRetriever.doc_ids_from_sequences`], without `None` (not an indexed ID) or repeated ids.
        """
        sequences = torch.as_tensor(np.asarray(sequences), dtype=torch.long)
        num_queries, num_returned, length = sequences.shape
        doc_ids = self.retriever.doc_ids_from_sequences(sequences.reshape(-1, length))
        return [
            list(dict.fromkeys(doc for doc in doc_ids[start : start + num_returned] if doc is not None))
            for start in range(0, num_queries * num_returned, num_returned)
        ]

    def _compute_retrieval_metrics(self, prediction: EvalPrediction) -> dict[str, float]:
        query_index = np.asarray(prediction.label_ids).reshape(-1)
        if not np.array_equal(np.sort(query_index), np.arange(len(self._references))):
            raise RuntimeError(
                f"Evaluation returned {len(query_index)} rankings for {len(self._references)} queries, not one per "
                "query: the predictions were not gathered correctly."
            )
        references = [self._references[position] for position in query_index]
        return compute_retrieval_metrics(
            self.rankings(prediction.predictions), references, self.k_values, self.relevance_threshold
        )


__all__ = [
    "LMIndexerRetrieverTrainer",
    "retrieval_evaluation_dataset",
    "retrieval_training_dataset",
]
