"""
Training and evaluation of the generative retriever: a `Seq2SeqTrainer` whose evaluation decodes ranked documents
with trie-constrained beam search and scores them with Recall@K, NDCG@K and MRR@K.

- [`retrieval_training_dataset`] / [`retrieval_evaluation_dataset`]: the `datasets.Dataset` layouts the trainer
  reads (token ids of the source; ID tokens as labels; for evaluation, the judged documents of every query).
- [`LMIndexerRetrieverTrainer`]: trains on `input_ids -> ID tokens`; `evaluate()` and `predict()` run `generate()`
  on every query and log `eval_recall@10`, `eval_ndcg@10`, `eval_mrr@10`, ...
- [`TimeBudgetCallback`]: stops training after a wall-time budget, at the same step on every process, counting the
  time of the runs a resumed run continues.
- [`RetrievalReport`]: what a downstream run reached and cost, as JSON and Markdown.
"""

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
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
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.distributed.fsdp import is_fsdp_managed_module
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import EvalLoopOutput, EvalPrediction, PredictionOutput, unwrap_peft_model
from transformers.utils import logging

from modeling_lmindexer import LMIndexerRetriever
from modeling_lmindexer.metrics import compute_retrieval_metrics
from modeling_lmindexer.modeling_retriever import IGNORE_INDEX

from .report import _markdown_table, write_report_files


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


class LMIndexerRetrieverTrainer(Seq2SeqTrainer):
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
    prefix: `eval_recall@10`, `eval_ndcg@10`, `eval_mrr@10`, ... (`test_...` from `predict()`).

    `predict()` returns the generated sequences `(num_queries, num_return_sequences, num_levels + 2)` as
    `predictions` and the query positions `(num_queries,)` as `label_ids`; [`~LMIndexerRetrieverTrainer.rankings`]
    turns the sequences into ranked doc ids.

    Works with `accelerate launch` on any number of processes: predictions are gathered with
    `gather_for_metrics`, which drops the queries repeated to even out the last batch.

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
        return super().evaluate(
            self._with_query_index(dataset), ignore_keys, metric_key_prefix, **self._generation_kwargs(gen_kwargs)
        )

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


class TimeBudgetCallback(TrainerCallback, ExportableState):
    """
    Stops training once `max_minutes` of training wall time have been spent, checked after every optimizer step. The
    time spent is saved in every checkpoint (`trainer_state.json`, as an [`~transformers.ExportableState`]) and read
    back when training resumes from one, so a run stopped and resumed gets the same budget as an uninterrupted one
    (the time between the last checkpoint and the stop is not counted: those steps are trained again). Under several
    processes the decision is shared (any process over budget stops all of them at the same step), so no process
    waits forever for the others.

    Args:
        max_minutes (`float`): The training budget in minutes, positive.
    """

    def __init__(self, max_minutes: float):
        if max_minutes <= 0:
            raise ValueError(f"max_minutes = {max_minutes}: the training budget must be positive.")
        self.max_minutes = max_minutes
        # Training seconds of the earlier runs this one resumes (read from the checkpoint at train begin).
        self.spent_seconds = 0.0
        self.start_time: float | None = None
        self.stopped_training = False

    @property
    def elapsed_seconds(self) -> float:
        """Training seconds spent so far, earlier runs resumed from included."""
        running = time.monotonic() - self.start_time if self.start_time is not None else 0.0
        return self.spent_seconds + running

    def state(self) -> dict:
        return {"args": {"max_minutes": self.max_minutes}, "attributes": {"spent_seconds": self.elapsed_seconds}}

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        # The Trainer has loaded the checkpoint's state (if it resumes) before this event.
        saved = state.stateful_callbacks.get(type(self).__name__) or {}
        self.spent_seconds = float(saved.get("attributes", {}).get("spent_seconds", 0.0))
        if self.spent_seconds > 0:
            logger.info(
                f"Resuming with {self.spent_seconds / 60:.1f} of the {self.max_minutes:g} training minutes spent."
            )
        self.start_time = time.monotonic()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        over_budget = self.elapsed_seconds >= 60.0 * self.max_minutes
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor(float(over_budget), device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            over_budget = bool(flag.item())
        if over_budget and not control.should_training_stop:
            logger.warning(
                f"Training stopped by the time budget of {self.max_minutes:g} minutes at step "
                f"{state.global_step} (epoch {state.epoch:.2f})."
            )
            self.stopped_training = True
            control.should_training_stop = True
        return control

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self.spent_seconds = self.elapsed_seconds
        self.start_time = None


@dataclass
class RetrievalReport:
    """
    What a downstream retrieval or recommendation run reached and cost.

    Args:
        dataset (`str`): The dataset.
        task_type (`str`): `"sequential recommendation"`, `"document retrieval"` or the product-search substitute
            label.
        split_description (`str`): How training and evaluation queries were made.
        labels (`list[str]`): Notes shown at the top of every output (substitutes, pseudo-queries, time order).
        id_scheme (`str`): Where the IDs come from (`"LMIndexer (<path>)"`, `"random"`, ...).
        backbone (`str`): The retriever's backbone.
        num_documents (`int`): Indexed documents (IDs the retriever can generate).
        codebook_sizes (`list[int]`): Codebook size of every ID level, the collision level included.
        k_values (`list[int]`): The cut-offs K.
        num_beams (`int`): Beam width of the constrained beam search.
        num_test_queries (`int`): Evaluated queries.
        num_dropped_test_queries (`int`): Test queries left out because no relevant document has an ID.
        training_examples (`dict[str, int]`): Training pairs by kind.
        metrics (`dict[str, float]`): Test metrics, e.g. `{"recall@10": 0.06}`.
        published (`dict[str, dict[str, float]]`): Published results to compare with, by system.
        wall_time_seconds (`dict[str, float]`): `training`, `evaluation` and `total`.
        stopped_by_time_budget (`bool`): Whether training was cut by the time budget.
        training (`dict`): Epochs, steps, learning rate, batch size, budget, ...
        machine (`dict`): Where the run happened (see [`machine_info`]).
    """

    dataset: str
    task_type: str
    split_description: str
    labels: list[str]
    id_scheme: str
    backbone: str
    num_documents: int
    codebook_sizes: list[int]
    k_values: list[int]
    num_beams: int
    num_test_queries: int
    num_dropped_test_queries: int
    training_examples: dict[str, int]
    metrics: dict[str, float]
    published: dict[str, dict[str, float]] = field(default_factory=dict)
    wall_time_seconds: dict[str, float] = field(default_factory=dict)
    stopped_by_time_budget: bool = False
    training: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-serialisable dict of every field."""
        return asdict(self)

    def _metric_names(self) -> list[str]:
        return [f"{name}@{k}" for name in ("recall", "ndcg", "mrr") for k in self.k_values]

    def to_markdown(self) -> str:
        """The readable report: the labels, a summary, and our metrics next to any published ones."""
        names = self._metric_names()
        rows = [[f"{self.id_scheme} IDs (this run)", *(self.metrics.get(name) for name in names)]]
        rows += [[system, *(values.get(name) for name in names)] for system, values in self.published.items()]
        summary = {
            "task": self.task_type,
            "split": self.split_description,
            "IDs": self.id_scheme,
            "backbone": self.backbone,
            "indexed documents": self.num_documents,
            "codebook sizes": ", ".join(str(size) for size in self.codebook_sizes),
            "test queries": self.num_test_queries,
            "test queries dropped (no relevant document with an ID)": self.num_dropped_test_queries,
            "training examples": ", ".join(f"{kind}: {count}" for kind, count in self.training_examples.items()),
            "decoding": f"beam search constrained to the indexed IDs, {self.num_beams} beams",
            "wall time (s)": ", ".join(f"{name}: {value:.1f}" for name, value in self.wall_time_seconds.items()),
            "stopped by the time budget": self.stopped_by_time_budget,
            **{name: f"{value:g}" if isinstance(value, float) else value for name, value in self.training.items()},
            **{name: value for name, value in self.machine.items()},
        }
        sections = [
            [f"# Retrieval report: {self.dataset} ({self.task_type})"],
            *([f"> **{label}**"] for label in self.labels),
            ["## Metrics", "", *_markdown_table(["system", *names], rows)],
            ["## Run", "", *_markdown_table(["field", "value"], list(summary.items()))],
        ]
        return "\n\n".join("\n".join(section) for section in sections) + "\n"

    def write(self, output_dir: str | os.PathLike, name: str = "retrieval_report") -> tuple[Path, Path]:
        """
        Write `{name}.json` (indent 2) and `{name}.md` into `output_dir`, creating it if needed.

        Returns:
            `tuple[Path, Path]`: The JSON and Markdown files.
        """
        return write_report_files(self.to_dict(), self.to_markdown(), output_dir, name)


__all__ = [
    "LMIndexerRetrieverTrainer",
    "RetrievalReport",
    "TimeBudgetCallback",
    "retrieval_evaluation_dataset",
    "retrieval_training_dataset",
]
