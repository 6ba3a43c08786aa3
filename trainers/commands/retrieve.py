#!/usr/bin/env python
"""Document retrieval and product search with semantic IDs: `lmindexer-retrieve`, or `accelerate launch
examples/run_retrieval.py`.

A generative retriever learns to generate the ID of a relevant document from a query and is evaluated on the test
queries with beam search (20 beams) constrained to the indexed IDs: Recall@K, NDCG@K and MRR@K.

- Datasets: `scifact` (BEIR train qrels for training, test qrels for evaluation), `msmarco5k` (evaluation queries
  only; training on indexing pairs and pseudo-queries cut from the passages, without a query generator),
  `cranfield` and `cacm` (judged queries split 50/50 by id), and `beauty` / `office`: a product-search SUBSTITUTE
  (Amazon ESCI is not available) whose queries are an item's leaf category and brand. Your own: `--corpus_file` /
  `--dataset_name` (see `lmindexer-index --help`) with `--queries_file` (id, text and optionally a train/test split
  column, `--query_split_column`; without one the judged queries are split 50/50 by id) and `--qrels_file` (TREC
  qrels or BEIR TSV). Training always includes one indexing pair (document text -> its ID) per document.
- IDs: `--indexer <folder>` (a saved `LMIndexerForSemanticID`: the retriever starts from its backbone and codebooks,
  as in the paper, and fine-tunes at learning rate 1e-4 unless `--learning_rate` is given; with `--retriever_init
  backbone` only its IDs are used) or a baseline `--id_scheme random|kmeans|rq_kmeans` on `--backbone` (or on a
  backbone trained from scratch: `--backbone_config`, `--backbone_config_overrides`); these two train at 5e-4.

Writes to `--output_dir` (default `outputs/retrieval-<dataset>`): the retriever (`save_pretrained`, IDs inside) and
its tokenizer, and `retrieval_report.json` + `.md` (metrics, split, labels, training examples, wall time, machine).
Re-running the same command continues from the last checkpoint in `output_dir`; `--max_train_minutes` stops training
after a wall-time budget; `--do_train False` only evaluates. With `--eval_every_minutes`, `--save_strategy best
--load_best_model_at_end True --metric_for_best_model recall@10` evaluates the best validation point's weights instead
of the last (the report's `tested weights`; with `--eval_on_start True` the weights before training are a candidate).
"""

import logging
import sys
import time
from dataclasses import dataclass, field, replace

from datasets import Dataset
from transformers import (
    AutoTokenizer,
    HfArgumentParser,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Seq2SeqTrainingArguments,
    set_seed,
)

from modeling_lmindexer import (
    DEFAULT_BACKBONE,
    LMIndexerRetriever,
    backbone_from_config,
    load_backbone,
    load_tokenizer,
)
from modeling_lmindexer.baselines import BASELINE_ID_SCHEMES
from modeling_lmindexer.data.retrieval_tasks import (
    INDEXING,
    PSEUDO_QUERY,
    QUERY,
    RETRIEVAL_DATASETS,
    RetrievalTask,
    load_retrieval_task,
    queries_file_retrieval_task,
)
from modeling_lmindexer.data.user_files import load_queries_files
from modeling_lmindexer.id_tokens import check_share
from trainers import (
    LMIndexerRetrieverTrainer,
    ResumeError,
    RetrievalReport,
    retrieval_evaluation_dataset,
    retrieval_training_dataset,
)
from trainers.commands.common import (
    CorpusFileArguments,
    HubPush,
    argument_given,
    cached_baseline_semantic_ids,
    checkpoint_to_resume,
    configure_logging,
    load_documents,
    load_indexer,
    parse_command_line,
    time_budget_callback,
)
from trainers.report import machine_info


logger = logging.getLogger(__name__)

START_TIME = time.time()

# How a retriever built with --indexer starts: from the indexer, or from --backbone with the indexer's IDs only.
RETRIEVER_INITS = ("indexer", "backbone")
# The kinds of training pairs --training_pairs chooses from.
TRAINING_PAIR_KINDS = (QUERY, INDEXING, PSEUDO_QUERY)
# Training defaults of the retrieval script; every one can be changed with its flag.
TRAINING_DEFAULTS = dict(
    do_train=True,
    learning_rate=5e-4,
    per_device_train_batch_size=32,
    per_device_eval_batch_size=16,
    save_total_limit=1,
    logging_steps=50,
    report_to="none",
)
# Learning rate of a retriever started from its indexer (unless --learning_rate says otherwise): it already maps a
# document's text to its ID, and at the rate of a retriever that learns its ID embeddings from scratch, fine-tuning
# first washes that mapping out and falls below the retriever with no fine-tuning at all.
INDEXER_START_LEARNING_RATE = 1e-4


@dataclass
class RetrieverArguments:
    indexer: str | None = field(
        default=None, metadata={"help": "Folder of a saved LMIndexerForSemanticID whose IDs and weights to use."}
    )
    id_scheme: str | None = field(
        default=None,
        metadata={"help": "Baseline IDs instead of an indexer: random, kmeans (hierarchical), rq_kmeans (residual)."},
    )
    retriever_init: str = field(
        default="indexer",
        metadata={
            "help": "With --indexer: 'indexer' starts the retriever from the indexer's weights, ID-token embeddings "
            "from its codebooks (the paper), fine-tuned at 1e-4 by default; 'backbone' takes only its IDs, on "
            "--backbone with random ID-token embeddings, as the baselines (compares the IDs alone), at 5e-4."
        },
    )
    backbone: str = field(
        default=DEFAULT_BACKBONE,
        metadata={
            "help": "Seq2seq backbone of a baseline retriever, or of --retriever_init backbone (Hub id or folder);"
            " with --backbone_config, only its tokenizer is used."
        },
    )
    backbone_config: str | None = field(
        default=None,
        metadata={
            "help": "Train the backbone from scratch instead of loading --backbone's weights: a model type (t5, bart) "
            "or a config's Hub id, folder or config.json. For baseline IDs and --retriever_init backbone."
        },
    )
    backbone_config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "Changes to --backbone_config, e.g. 'num_layers=4,d_model=128,d_ff=1024,num_heads=6,d_kv=64' "
            "(the size of TIGER's retriever)."
        },
    )
    codebook_sizes: list[int] = field(
        default_factory=lambda: [256, 256, 256], metadata={"help": "Codes per level of the baseline IDs."}
    )
    k_values: list[int] = field(default_factory=lambda: [1, 5, 10], metadata={"help": "Cut-offs K of the metrics."})
    num_beams: int = field(default=20, metadata={"help": "Beam width of the constrained beam search."})
    max_train_minutes: float | None = field(
        default=None,
        metadata={"help": "Stop training after this many minutes (a resumed run counts the time already spent)."},
    )
    eval_every_minutes: float | None = field(
        default=None,
        metadata={
            "help": "Rank the validation queries (--validation_queries) every this many training minutes (with "
            "--max_train_minutes): the report's curve of validation metrics against training minutes."
        },
    )
    lr_decay_over_budget: str | None = field(
        default=None,
        metadata={
            "help": "linear or cosine: after the warm-up steps, decay the learning rate to 0 over --max_train_minutes "
            "of training time (a step schedule cannot end with a time budget)."
        },
    )
    auto_resume: bool = field(
        default=True, metadata={"help": "Continue from the last checkpoint in output_dir (False starts over)."}
    )


@dataclass
class RetrievalArguments:
    dataset: str = field(
        default="scifact",
        metadata={"help": f"One of {', '.join(RETRIEVAL_DATASETS)} (beauty/office: the product-search substitute)."},
    )
    data_dir: str | None = field(default=None, metadata={"help": "Folder holding the corpora (../shared/data)."})
    queries_file: str | None = field(
        default=None,
        metadata={"help": "Your own queries (.jsonl, .csv, .tsv or .parquet), with --qrels_file and --corpus_file."},
    )
    qrels_file: str | None = field(
        default=None,
        metadata={"help": "Judgments of your queries: TREC qrels or BEIR TSV (query-id corpus-id score)."},
    )
    query_id_column: str = field(default="id", metadata={"help": "Column of the query ids."})
    query_text_column: str = field(default="text", metadata={"help": "Column of the query texts."})
    query_split_column: str | None = field(
        default=None,
        metadata={"help": "Column saying train or test per query; without it, judged queries split 50/50 by id."},
    )
    max_documents: int | None = field(default=None, metadata={"help": "Index only the first N documents."})
    max_test_queries: int | None = field(default=None, metadata={"help": "Evaluate on the first N test queries."})
    pseudo_queries_per_document: int | None = field(
        default=None,
        metadata={"help": "Pseudo-queries per document (title or first sentence, then spans); msmarco5k: 3, else 0."},
    )
    training_pairs: list[str] = field(
        default_factory=lambda: list(TRAINING_PAIR_KINDS),
        metadata={
            "help": "Kinds of training pairs to train on: query, indexing (document text -> its ID), pseudo-query; "
            "e.g. 'query pseudo-query' leaves out the indexing pairs, whose mapping a retriever started from its "
            "indexer already holds."
        },
    )
    validation_queries: int = field(
        default=0,
        metadata={
            "help": "Hold out this many training queries (drawn by --seed) as the validation split that "
            "--eval_every_minutes ranks, for tuning without the test split."
        },
    )
    max_query_length: int = field(default=64, metadata={"help": "Tokens kept per query."})
    max_document_length: int = field(default=128, metadata={"help": "Tokens kept per document (indexing pairs)."})


def parse_arguments(dataclass_types: tuple, output_prefix: str, default_dataset: str, **defaults) -> tuple:
    """
    Parse the script's dataclasses, with `TRAINING_DEFAULTS`, `output_dir` defaulting to `<prefix>-<dataset>`, and
    `INDEXER_START_LEARNING_RATE` as the learning rate of a retriever started from its indexer.
    """
    parser = HfArgumentParser(dataclass_types)
    parser.set_defaults(**TRAINING_DEFAULTS, **defaults)
    parsed = parse_command_line(parser, output_prefix, default_dataset)
    training_args = parsed[-1]
    retriever_args = next(arguments for arguments in parsed if isinstance(arguments, RetrieverArguments))
    starts_from_indexer = retriever_args.indexer is not None and retriever_args.retriever_init == "indexer"
    if starts_from_indexer and not argument_given(parser, "learning_rate"):
        training_args.learning_rate = INDEXER_START_LEARNING_RATE
    # CPU threads are left to OMP_NUM_THREADS (`accelerate launch --num_cpu_threads_per_process`): on a busy
    # machine, more threads than free cores made every step tens of times slower.
    configure_logging(training_args)
    set_seed(training_args.seed)
    return parsed


def build_retriever(
    args: RetrieverArguments,
    corpus: Dataset,
    dataset: str,
    training_args: Seq2SeqTrainingArguments,
    max_query_length: int = 64,
) -> tuple[LMIndexerRetriever, PreTrainedTokenizerBase, str]:
    """
    The retriever and its tokenizer: from a saved indexer (`--indexer`) or from a backbone with baseline IDs over
    `corpus` (`--id_scheme`), with a description of the IDs. Bad input ends the run with one error line.
    """
    if (args.indexer is None) == (args.id_scheme is None):
        sys.exit(
            "error: pass either --indexer <folder of a saved LMIndexerForSemanticID> or --id_scheme "
            f"{'|'.join(BASELINE_ID_SCHEMES)}"
        )
    if args.retriever_init not in RETRIEVER_INITS:
        sys.exit(f"error: unknown --retriever_init '{args.retriever_init}'; choose from {', '.join(RETRIEVER_INITS)}.")
    if args.indexer is not None and args.retriever_init == "indexer" and args.backbone_config is not None:
        sys.exit(
            "error: --backbone_config trains a backbone from scratch, but --retriever_init indexer starts from the "
            "indexer's own backbone; add --retriever_init backbone to put the indexer's IDs on a new backbone."
        )
    if args.indexer is not None:
        indexer = load_indexer(args.indexer)
        try:
            tokenizer = AutoTokenizer.from_pretrained(args.indexer)
        except (OSError, ValueError) as error:
            sys.exit(f"error: cannot load the tokenizer of the indexer '{args.indexer}': {str(error).splitlines()[0]}")
        if args.retriever_init == "backbone":
            backbone, tokenizer = retriever_backbone(args)
            retriever = LMIndexerRetriever.from_backbone(
                backbone, indexer.semantic_ids, max_query_length=max_query_length, dataset_name=dataset
            )
            return retriever, tokenizer, f"LMIndexer IDs ({args.indexer}) on {backbone.name_or_path}"
        retriever = LMIndexerRetriever.from_indexer(indexer, max_query_length=max_query_length, dataset_name=dataset)
        return retriever, tokenizer, f"LMIndexer ({args.indexer})"
    if args.id_scheme not in BASELINE_ID_SCHEMES:
        sys.exit(f"error: unknown --id_scheme '{args.id_scheme}'; choose from {', '.join(BASELINE_ID_SCHEMES)}.")
    backbone, tokenizer = retriever_backbone(args)
    try:
        semantic_ids = cached_baseline_semantic_ids(args.id_scheme, corpus, args.codebook_sizes, training_args)
    except ValueError as error:
        sys.exit(f"error: {args.id_scheme} IDs: {error}")
    retriever = LMIndexerRetriever.from_backbone(
        backbone, semantic_ids, max_query_length=max_query_length, dataset_name=dataset
    )
    return retriever, tokenizer, BASELINE_ID_SCHEMES[args.id_scheme]


def retriever_backbone(args: RetrieverArguments) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The pretrained `--backbone` and its tokenizer, or a backbone of `--backbone_config` trained from scratch."""
    if args.backbone_config is None:
        return load_backbone(args.backbone)
    tokenizer = load_tokenizer(args.backbone)
    try:
        backbone = backbone_from_config(args.backbone_config, tokenizer, args.backbone_config_overrides)
    except (OSError, ValueError) as error:
        sys.exit(f"error: --backbone_config '{args.backbone_config}': {str(error).splitlines()[0]}")
    logger.info(f"Training the backbone from scratch: {backbone.name_or_path}, {backbone.num_parameters():,} weights.")
    return backbone, tokenizer


def train_evaluate_and_report(
    task: RetrievalTask,
    retriever: LMIndexerRetriever,
    tokenizer: PreTrainedTokenizerBase,
    datasets: dict[str, Dataset | None],
    args: RetrieverArguments,
    training_args: Seq2SeqTrainingArguments,
    id_scheme: str,
    published: dict[str, dict[str, float]] | None = None,
    resume_from: str | None = None,
) -> dict[str, float]:
    """
    Train on `datasets["train"]` (evaluating on `datasets["validation"]` as `eval_strategy` says; continuing the
    checkpoint `resume_from`, if any), evaluate on `datasets["test"]`, then, on the main process, save the retriever
    and tokenizer and write the report.

    Returns:
        `dict[str, float]`: The test metrics, e.g. `{"recall@10": ...}`.
    """
    for label in task.labels:
        logger.warning(f"{task.name}: {label}")
    training_args, hub_push = HubPush.take_from(training_args)
    budget = time_budget_callback(args)
    trainer = LMIndexerRetrieverTrainer(
        retriever,
        training_args,
        train_dataset=datasets["train"],
        eval_dataset=datasets.get("validation"),
        processing_class=tokenizer,
        callbacks=[budget] if budget is not None else None,
        k_values=args.k_values,
        num_beams=args.num_beams,
        relevance_threshold=task.relevance_threshold,
    )
    training_seconds = 0.0
    if training_args.do_train:
        train_start = time.time()
        try:
            trainer.train(resume_from_checkpoint=resume_from)
        except ResumeError as error:
            sys.exit(f"error: {error}")
        training_seconds = time.time() - train_start
        if budget is not None:
            # Training time of every run this one continues, as counted against the budget.
            budget = trainer.time_budget
            training_seconds = budget.elapsed_seconds
    # Saved before the test ranking, so that a failure there (e.g. out of memory) loses no training.
    trainer.save_model(training_args.output_dir)
    evaluation_start = time.time()
    test_metrics = trainer.evaluate(datasets["test"], metric_key_prefix="test")
    evaluation_seconds = time.time() - evaluation_start
    metric_names = [f"{name}@{k}" for name in ("recall", "ndcg", "mrr") for k in trainer.k_values]
    metrics = {name: test_metrics[f"test_{name}"] for name in metric_names}
    logger.info(f"Test metrics ({task.name}, {id_scheme} IDs): {metrics}")

    retriever.config.retrieval_metrics = {name: round(value, 4) for name, value in metrics.items()}
    if trainer.is_world_process_zero():
        retriever.save_config_and_model_card(training_args.output_dir)
        report = RetrievalReport(
            dataset=task.name,
            task_type=task.task_type,
            split_description=task.split_description,
            labels=task.labels,
            id_scheme=id_scheme,
            backbone=retriever.config.backbone_name_or_path or retriever.config.seq2seq_config.model_type,
            num_documents=len(retriever.semantic_ids),
            codebook_sizes=list(retriever.config.codebook_sizes),
            k_values=trainer.k_values,
            num_beams=trainer.num_beams,
            num_test_queries=len(datasets["test"]),
            num_dropped_test_queries=task.num_dropped_test_queries,
            training_examples=task.training_counts(),
            metrics=metrics,
            published=published or {},
            wall_time_seconds={
                "training": training_seconds,
                "evaluation": evaluation_seconds,
                "total": time.time() - START_TIME,
            },
            stopped_by_time_budget=budget is not None and budget.stopped_training,
            training={
                "trained": training_args.do_train,
                "optimizer steps": trainer.state.global_step,
                "epochs done": round(trainer.state.epoch or 0.0, 3),
                "learning rate": training_args.learning_rate,
                "label smoothing": training_args.label_smoothing_factor,
                "global train batch size": training_args.train_batch_size
                * training_args.gradient_accumulation_steps
                * training_args.world_size,
                "processes": training_args.world_size,
                "max train minutes": args.max_train_minutes,
                "seed": training_args.seed,
            },
            machine=machine_info(),
            curve=trainer.curve,
            tested_weights=trainer.tested_weights(),
        )
        report.write(training_args.output_dir)
        if hub_push is not None:
            hub_push.push(retriever, tokenizer)
    # The main process writes the report alone; the others wait, so that no process tears the group down early.
    trainer.accelerator.wait_for_everyone()
    trainer.end()
    return metrics


def load_task(args: RetrievalArguments, corpus_args: CorpusFileArguments, seed: int) -> tuple[Dataset, RetrievalTask]:
    """
    The corpus and the retrieval task: a benchmark's, or your corpus with `--queries_file` and `--qrels_file`; bad
    input ends the run with one error line.
    """
    own_queries = args.queries_file is not None or args.qrels_file is not None
    if own_queries and (args.queries_file is None or args.qrels_file is None or corpus_args.source is None):
        sys.exit(
            "error: your own queries need all of --corpus_file (or --dataset_name), --queries_file and --qrels_file."
        )
    if not own_queries and corpus_args.source is not None:
        sys.exit("error: --corpus_file / --dataset_name need --queries_file and --qrels_file to retrieve for.")
    if not own_queries and args.dataset not in RETRIEVAL_DATASETS:
        sys.exit(f"error: unknown retrieval dataset '{args.dataset}'; choose from {', '.join(RETRIEVAL_DATASETS)}.")
    try:
        documents = load_documents(args.dataset, args.data_dir, corpus_args)
        corpus = documents.documents
        if args.max_documents is not None:
            corpus = corpus.select(range(min(args.max_documents, len(corpus))))
        if not own_queries:
            return corpus, load_retrieval_task(
                args.dataset, args.data_dir, corpus, args.pseudo_queries_per_document, seed=seed
            )
        queries = load_queries_files(
            args.queries_file,
            args.qrels_file,
            documents.documents["doc_id"],
            args.query_id_column,
            args.query_text_column,
            args.query_split_column,
            corpus_args.skip_bad_rows,
        )
        task = queries_file_retrieval_task(
            documents.name, corpus, queries.queries, queries.qrels, args.pseudo_queries_per_document or 0, seed
        )
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    skipped = documents.skipped_rows + sum(queries.skipped_rows.values())
    if skipped:
        task = replace(task, labels=[*task.labels, f"{skipped} bad rows left out (--skip_bad_rows)"])
    return corpus, task


def check_training_choices(
    args: RetrievalArguments, retriever_args: RetrieverArguments, training_args: Seq2SeqTrainingArguments
) -> None:
    """End the run with one error line for training choices that contradict each other, before any loading."""
    unknown = [kind for kind in args.training_pairs if kind not in TRAINING_PAIR_KINDS]
    if unknown or not args.training_pairs:
        kinds = ", ".join(TRAINING_PAIR_KINDS)
        sys.exit(f"error: --training_pairs takes kinds among {kinds}, got {unknown or 'none'}.")
    if args.validation_queries < 0:
        sys.exit(f"error: --validation_queries must be 0 or more, got {args.validation_queries}.")
    if training_args.eval_strategy != "no" and not args.validation_queries:
        sys.exit("error: evaluating during training needs validation queries: pass --validation_queries N.")
    if retriever_args.eval_every_minutes is not None:
        if retriever_args.eval_every_minutes <= 0:
            sys.exit(f"error: --eval_every_minutes must be positive, got {retriever_args.eval_every_minutes}.")
        if not args.validation_queries or retriever_args.max_train_minutes is None:
            sys.exit("error: --eval_every_minutes needs --validation_queries N and --max_train_minutes.")
    try:
        check_share("label_smoothing_factor", training_args.label_smoothing_factor)
    except ValueError as error:
        sys.exit(f"error: {error}")


def select_training_pairs(task: RetrievalTask, args: RetrievalArguments, seed: int) -> RetrievalTask:
    """The task with `--validation_queries` held out of its training queries and only the `--training_pairs` kinds
    left to train on (a label says so); bad choices end the run with one error line."""
    if args.validation_queries:
        try:
            task = task.hold_out_validation(args.validation_queries, seed)
        except ValueError as error:
            sys.exit(f"error: --validation_queries: {error}")
        label = f"{len(task.validation)} training queries held out for validation (--validation_queries, seed {seed})"
        task = replace(task, labels=[*task.labels, label])
    if set(args.training_pairs) != set(TRAINING_PAIR_KINDS):
        train = [pair for pair in task.train if pair.kind in args.training_pairs]
        if not train:
            sys.exit(f"error: '{task.name}' has no training pairs of the kinds {', '.join(args.training_pairs)}.")
        label = f"trained on {', '.join(args.training_pairs)} pairs only (--training_pairs)"
        task = replace(task, train=train, labels=[*task.labels, label])
    return task


def main() -> None:
    args, corpus_args, retriever_args, training_args = parse_arguments(
        (RetrievalArguments, CorpusFileArguments, RetrieverArguments, Seq2SeqTrainingArguments), "retrieval", "scifact"
    )
    check_training_choices(args, retriever_args, training_args)
    checkpoint = checkpoint_to_resume(training_args, retriever_args.auto_resume) if training_args.do_train else None
    corpus, task = load_task(args, corpus_args, training_args.seed)
    try:
        retriever, tokenizer, id_scheme = build_retriever(
            retriever_args, corpus, task.name, training_args, args.max_query_length
        )
    except ValueError as error:
        sys.exit(f"error: {error}")
    max_positions = retriever.config.encoder_max_positions
    if max_positions is not None and args.max_document_length > max_positions:
        sys.exit(
            f"error: --max_document_length {args.max_document_length} is longer than the encoder's "
            f"max_position_embeddings = {max_positions}: give at most {max_positions}."
        )
    task = task.restrict_to_documents(retriever.semantic_ids.doc_ids)
    task = select_training_pairs(task, args, training_args.seed)
    if args.max_test_queries is not None:
        task = replace(task, test=task.test[: args.max_test_queries])
    if args.max_documents is not None or args.max_test_queries is not None:
        subset = (
            f"quick run on a subset ({len(retriever.semantic_ids)} documents, {len(task.test)} test queries): not "
            "comparable with full-dataset results"
        )
        task = replace(task, labels=[*task.labels, subset])
    if not task.test:
        sys.exit(f"error: no test query of '{task.name}' has a relevant document with a semantic ID.")

    def tokenize(texts: list[str], max_length: int) -> list[list[int]]:
        # A fast tokenizer fails on an empty batch (no pairs of a kind left out by --training_pairs).
        return tokenizer(texts, max_length=max_length, truncation=True)["input_ids"] if texts else []

    # Documents (indexing pairs) keep max_document_length tokens, queries and pseudo-queries max_query_length.
    train_input_ids: list[list[int]] = [[] for _ in task.train]
    for is_document, max_length in ((True, args.max_document_length), (False, args.max_query_length)):
        positions = [row for row, pair in enumerate(task.train) if (pair.kind == INDEXING) == is_document]
        for row, input_ids in zip(positions, tokenize([task.train[row].source for row in positions], max_length)):
            train_input_ids[row] = input_ids

    def evaluation_dataset(queries: list) -> Dataset | None:
        if not queries:
            return None
        return retrieval_evaluation_dataset(
            retriever,
            tokenize([query.source for query in queries], args.max_query_length),
            [query.relevance for query in queries],
        )

    datasets = {
        "train": retrieval_training_dataset(retriever, train_input_ids, [pair.target for pair in task.train]),
        "validation": evaluation_dataset(task.validation),
        "test": evaluation_dataset(task.test),
    }
    logger.info(
        f"{task.name}: {len(task.train)} training pairs {task.training_counts()}, {len(task.validation)} validation "
        f"and {len(task.test)} test queries, {len(retriever.semantic_ids)} indexed documents."
    )
    train_evaluate_and_report(
        task, retriever, tokenizer, datasets, retriever_args, training_args, id_scheme, resume_from=checkpoint
    )


if __name__ == "__main__":
    main()
