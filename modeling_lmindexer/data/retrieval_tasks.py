"""
The downstream tasks of semantic IDs as plain data: training pairs `(source, target doc id)` and evaluation queries
`(source, {doc id: relevance})`, with no model or tokenizer involved.

- Sequential recommendation ([`recommendation_task`]): the source is a user's history as a tuple of item doc ids,
  oldest first; leave-one-out split (last item test, second-last validation, earlier items training).
- Document retrieval ([`document_retrieval_task`]): the source is a query text. Training always mixes in one indexing
  pair per document (document text -> its ID) and, on request, pseudo-queries made from the document text (its title
  or first sentence, and random word spans; DSI-QG style but without a query generator). SciFact trains on the BEIR
  train qrels and is evaluated on the test qrels; MS MARCO 5k has evaluation queries only; Cranfield and CACM split
  their judged queries 50/50 by id.
- Product search: Amazon ESCI is not available, so [`product_search_substitute_task`] builds a labelled substitute
  from the item catalogue: the query is an item's leaf category and brand (`"Nail Polish OPI"`), the relevant items
  are all the items of that leaf category and brand, and the queries are split 50/50 by a seeded hash.

Every task carries `labels`: notes that must appear in every output made from it (the product-search substitute, the
pseudo-queries, the time order of the recommendation split).
"""

import hashlib
import random
import re
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

from datasets import Dataset
from transformers.utils import logging

from .corpora import (
    DataDir,
    Qrels,
    judged_query_halves,
    load_cacm_queries,
    load_corpus,
    load_cranfield_queries,
    load_msmarco5k_queries,
    load_scifact_queries,
)
from .recommendation import TIME_ORDER_NOTE, leave_one_out_split, load_sequences


logger = logging.get_logger(__name__)

Source = str | tuple[str, ...]

QUERY = "query"
INDEXING = "indexing"
PSEUDO_QUERY = "pseudo-query"
NEXT_ITEM = "next-item"

SEQUENTIAL_RECOMMENDATION = "sequential recommendation"
DOCUMENT_RETRIEVAL = "document retrieval"
PRODUCT_SEARCH_SUBSTITUTE_LABEL = "product search substitute (queries from category path + brand)"
PSEUDO_QUERY_LABEL = "pseudo-queries (text spans, no generator)"

DOCUMENT_RETRIEVAL_DATASETS = ("scifact", "msmarco5k", "cranfield", "cacm")
PRODUCT_SEARCH_DATASETS = ("beauty", "office")
RETRIEVAL_DATASETS = DOCUMENT_RETRIEVAL_DATASETS + PRODUCT_SEARCH_DATASETS
DEFAULT_PSEUDO_QUERIES_PER_DOCUMENT = {"msmarco5k": 3}
# TREC Deep Learning judges passages 0-3 and counts grade 2 and up as relevant for its binary metrics.
TREC_DL_RELEVANCE_THRESHOLD = 2
PSEUDO_QUERY_SPAN_WORDS = (6, 16)
FIRST_SENTENCE_MAX_WORDS = 32

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class TrainingPair:
    """
    One training example of a generative retriever: generate the ID of `target` from `source`.

    Args:
        source (`str` or `tuple[str, ...]`): A query or document text, or a history of item doc ids (oldest first).
        target (`str`): The doc id whose semantic ID is the label.
        kind (`str`): `"query"`, `"indexing"` (document text -> its ID), `"pseudo-query"` or `"next-item"`.
    """

    source: Source
    target: str
    kind: str


@dataclass(frozen=True)
class EvaluationQuery:
    """
    One evaluation query with its judged documents.

    Args:
        query_id (`str`): The query (the user for recommendation).
        source (`str` or `tuple[str, ...]`): The query text, or the history of item doc ids (oldest first).
        relevance (`Mapping[str, int]`): Judged doc ids and their grades (a grade of 0 or less: judged non-relevant).
    """

    query_id: str
    source: Source
    relevance: Mapping[str, int]

    def relevant_doc_ids(self, relevance_threshold: int = 1) -> list[str]:
        """The relevant doc ids (grade of at least `relevance_threshold`), best grade first."""
        return [
            doc_id
            for doc_id, grade in sorted(self.relevance.items(), key=lambda item: -item[1])
            if grade >= relevance_threshold
        ]


@dataclass(frozen=True)
class RetrievalTask:
    """
    A downstream task of semantic IDs: training pairs and evaluation queries.

    Args:
        name (`str`): The dataset, e.g. `"scifact"` or `"beauty"`.
        task_type (`str`): `"sequential recommendation"`, `"document retrieval"` or the product-search substitute
            label.
        train (`list[TrainingPair]`): Training pairs, in a fixed order.
        validation (`list[EvaluationQuery]`): Validation queries (empty when the benchmark has none).
        test (`list[EvaluationQuery]`): Test queries.
        split_description (`str`): How the split was made, for reports.
        labels (`list[str]`): Notes that every output made from this task must show.
        num_dropped_test_queries (`int`): Test queries removed by [`~RetrievalTask.restrict_to_documents`] because
            none of their relevant documents is indexed.
        relevance_threshold (`int`): Smallest grade that the binary metrics (Recall, MRR) of the test queries count
            as relevant (see [`~modeling_lmindexer.metrics.compute_retrieval_metrics`]); NDCG uses every grade.
    """

    name: str
    task_type: str
    train: list[TrainingPair]
    validation: list[EvaluationQuery]
    test: list[EvaluationQuery]
    split_description: str
    labels: list[str] = field(default_factory=list)
    num_dropped_test_queries: int = 0
    relevance_threshold: int = 1

    def training_counts(self) -> dict[str, int]:
        """The number of training pairs of every kind, e.g. `{"query": 919, "indexing": 5183}`."""
        return dict(Counter(pair.kind for pair in self.train))

    def restrict_to_documents(self, doc_ids: Collection[str]) -> "RetrievalTask":
        """
        The task over the documents `doc_ids` only (the documents that have a semantic ID).

        Training pairs are kept when their target and every item of a history source are among `doc_ids`;
        evaluation queries when every item of a history source is and at least one relevant document (of a grade at
        least `relevance_threshold`) is. The
        judgments of a kept query are left whole, so relevant documents outside `doc_ids` still count as missed.

        Args:
            doc_ids (`Collection[str]`): The indexed doc ids.

        Returns:
            [`RetrievalTask`] with `num_dropped_test_queries` increased by the test queries removed.
        """
        indexed = set(doc_ids)

        def source_is_indexed(source: Source) -> bool:
            return isinstance(source, str) or all(item in indexed for item in source)

        def keep_query(query: EvaluationQuery) -> bool:
            relevant = query.relevant_doc_ids(self.relevance_threshold)
            return source_is_indexed(query.source) and any(doc in indexed for doc in relevant)

        train = [pair for pair in self.train if pair.target in indexed and source_is_indexed(pair.source)]
        validation = [query for query in self.validation if keep_query(query)]
        test = [query for query in self.test if keep_query(query)]
        dropped = len(self.test) - len(test)
        if dropped or len(train) < len(self.train):
            logger.warning(
                f"{self.name}: keeping {len(train)} of {len(self.train)} training pairs and {len(test)} of "
                f"{len(self.test)} test queries whose documents are among the {len(indexed)} indexed documents."
            )
        return replace(
            self,
            train=train,
            validation=validation,
            test=test,
            num_dropped_test_queries=self.num_dropped_test_queries + dropped,
        )

    def hold_out_validation(self, num_queries: int, seed: int = 0) -> "RetrievalTask":
        """
        The task with `num_queries` of its training queries moved to `validation`, for tuning without the test split.

        The held-out queries are drawn by `seed` (the same queries in any order of the pairs), and all their `"query"`
        pairs leave `train`; every other pair stays. A validation query's relevant documents are the targets of its
        pairs, each with grade 1 (training pairs keep no grade).

        Args:
            num_queries (`int`): Training queries to hold out, at least 1 and fewer than the distinct training queries.
            seed (`int`): Seed of the draw.

        Returns:
            [`RetrievalTask`] whose `validation` lists the held-out queries (ids `validation-<n>`) after any earlier
            ones.

        Raises:
            `ValueError`: When `num_queries` is not between 1 and the number of distinct training queries minus 1.
        """
        targets: dict[Source, list[str]] = {}
        for pair in self.train:
            if pair.kind == QUERY:
                targets.setdefault(pair.source, []).append(pair.target)
        if not 0 < num_queries < len(targets):
            raise ValueError(
                f"{self.name}: cannot hold out {num_queries} validation queries of {len(targets)} training queries: "
                "keep at least one for training."
            )
        held_out = sorted(targets, key=lambda source: _seeded_hash(seed, str(source)))[:num_queries]
        held_out_set = set(held_out)
        validation = [
            EvaluationQuery(f"validation-{number}", source, dict.fromkeys(targets[source], 1))
            for number, source in enumerate(held_out)
        ]
        train = [pair for pair in self.train if not (pair.kind == QUERY and pair.source in held_out_set)]
        return replace(self, train=train, validation=[*self.validation, *validation])


def recommendation_task(
    sequences: Mapping[str, Sequence[str]],
    name: str,
    max_history_length: int = 20,
    time_order_note: str | None = None,
) -> RetrievalTask:
    """
    Sequential recommendation as a retrieval task, from interaction sequences.

    Args:
        sequences (`Mapping[str, Sequence[str]]`): Item doc ids of every user in time order, at least 3 each.
        name (`str`): The dataset name.
        max_history_length (`int`): Most recent items kept in a history.
        time_order_note (`str`, *optional*): How the time order was obtained; defaults to `TIME_ORDER_NOTE[name]`.

    Returns:
        [`RetrievalTask`] whose training pairs are every `split.train` example (`kind="next-item"`, source = history
        tuple, oldest first), and whose validation and test queries are one per user, with the target as the only
        relevant item.

    Raises:
        `ValueError`: For a user with fewer than 3 items or a non-positive `max_history_length`.
    """
    split = leave_one_out_split({user: list(items) for user, items in sequences.items()}, max_history_length)
    time_order_note = time_order_note or TIME_ORDER_NOTE.get(name, "the given order")
    description = (
        "leave-one-out: each user's last item is the test target, the second-last the validation target, every "
        f"earlier item a training target; histories of at most {max_history_length} items, oldest first; "
        f"time order: {time_order_note}"
    )
    return RetrievalTask(
        name=name,
        task_type=SEQUENTIAL_RECOMMENDATION,
        train=[TrainingPair(example.history, example.target, NEXT_ITEM) for example in split.train],
        validation=[EvaluationQuery(ex.user_id, ex.history, {ex.target: 1}) for ex in split.validation],
        test=[EvaluationQuery(ex.user_id, ex.history, {ex.target: 1}) for ex in split.test],
        split_description=description,
        labels=[f"time order: {time_order_note}"],
    )


def load_recommendation_task(
    name: str, data_dir: DataDir | None = None, max_history_length: int = 20, max_users: int | None = None
) -> RetrievalTask:
    """
    [`recommendation_task`] of a benchmark by name (`beauty`, `office` or `movielens`, see [`load_sequences`]).

    Args:
        name (`str`): The dataset.
        data_dir (`str` or `os.PathLike`, *optional*): The data folder (not needed for `movielens`).
        max_history_length (`int`): Most recent items kept in a history.
        max_users (`int`, *optional*): Keep only the first users in file order (quick runs).
    """
    sequences = load_sequences(name, data_dir)
    if max_users is not None:
        sequences = dict(list(sequences.items())[:max_users])
    return recommendation_task(sequences, name, max_history_length)


def _first_sentence(text: str) -> str:
    return " ".join(_SENTENCE_END.split(text.strip(), maxsplit=1)[0].split()[:FIRST_SENTENCE_MAX_WORDS])


def pseudo_queries(doc_id: str, text: str, title: str = "", num_queries: int = 3, seed: int = 0) -> list[str]:
    """
    Pseudo-queries of a document without a query generator: its title (or, without a title, its first sentence, at
    most 32 words), then random spans of 6 to 16 words of the text. The spans depend only on `seed` and `doc_id`, so
    a document gets the same pseudo-queries in any corpus order or subset. Duplicates are dropped.

    Args:
        doc_id (`str`): The document, seeding its spans.
        text (`str`): The document text.
        title (`str`): The document title, `""` when it has none.
        num_queries (`int`): The title or first sentence plus `num_queries - 1` spans.
        seed (`int`): Seed of the spans.

    Returns:
        `list[str]`: At most `num_queries` distinct non-empty pseudo-queries.
    """
    if num_queries < 1:
        return []
    queries = [title.strip() or _first_sentence(text)]
    words = text.split()
    generator = random.Random(f"{seed}:{doc_id}")
    for _ in range(num_queries - 1):
        length = min(len(words), generator.randint(*PSEUDO_QUERY_SPAN_WORDS))
        start = generator.randrange(len(words) - length + 1)
        queries.append(" ".join(words[start : start + length]))
    return list(dict.fromkeys(query for query in queries if query))


def _evaluation_queries(queries: Dataset, qrels: Qrels) -> list[EvaluationQuery]:
    """Queries that have at least one relevant document, with their judgments."""
    return [
        EvaluationQuery(query_id, text, dict(qrels[query_id]))
        for query_id, text in zip(queries["query_id"], queries["text"])
        if any(grade > 0 for grade in qrels.get(query_id, {}).values())
    ]


def document_retrieval_task(
    name: str,
    corpus: Dataset,
    test_queries: Dataset,
    test_qrels: Qrels,
    split_description: str,
    train_queries: Dataset | None = None,
    train_qrels: Qrels | None = None,
    pseudo_queries_per_document: int = 0,
    seed: int = 0,
    relevance_threshold: int = 1,
) -> RetrievalTask:
    """
    Document retrieval as a retrieval task.

    Args:
        name (`str`): The dataset name.
        corpus (`Dataset`): Documents with the columns `doc_id` and `text` (and `title`, used by pseudo-queries).
        test_queries (`Dataset`): Evaluation queries with the columns `query_id` and `text`.
        test_qrels (`dict[str, dict[str, int]]`): Their judgments `{query_id: {doc_id: grade}}`.
        split_description (`str`): How the queries were split, for reports.
        train_queries (`Dataset`, *optional*): Training queries with the columns `query_id` and `text`.
        train_qrels (`dict[str, dict[str, int]]`, *optional*): Their judgments.
        pseudo_queries_per_document (`int`): Pseudo-queries per document (see [`pseudo_queries`]); 0 for none.
        seed (`int`): Seed of the pseudo-query spans.
        relevance_threshold (`int`): Smallest grade Recall and MRR count as relevant (a label says so when above 1).

    Returns:
        [`RetrievalTask`]: training pairs are one `"query"` pair per training query and relevant corpus document,
        then one `"indexing"` pair per document, then the `"pseudo-query"` pairs; test queries are those with at
        least one relevant document. Validation is empty.
    """
    doc_ids, texts = list(corpus["doc_id"]), list(corpus["text"])
    in_corpus = set(doc_ids)
    train = []
    if train_queries is not None:
        for query in _evaluation_queries(train_queries, train_qrels or {}):
            train += [TrainingPair(query.source, doc, QUERY) for doc in query.relevant_doc_ids() if doc in in_corpus]
    train += [TrainingPair(text, doc_id, INDEXING) for doc_id, text in zip(doc_ids, texts)]
    labels = []
    if pseudo_queries_per_document > 0:
        titles = list(corpus["title"]) if "title" in corpus.column_names else [""] * len(doc_ids)
        for doc_id, text, title in zip(doc_ids, texts, titles):
            queries = pseudo_queries(doc_id, text, title, pseudo_queries_per_document, seed)
            train += [TrainingPair(query, doc_id, PSEUDO_QUERY) for query in queries]
        labels.append(PSEUDO_QUERY_LABEL)
    if relevance_threshold > 1:
        labels.append(
            f"Recall and MRR count relevance grade >= {relevance_threshold} as relevant (trec_eval -l "
            f"{relevance_threshold}); NDCG is graded"
        )
    return RetrievalTask(
        name=name,
        task_type=DOCUMENT_RETRIEVAL,
        train=train,
        validation=[],
        test=_evaluation_queries(test_queries, test_qrels),
        split_description=split_description,
        labels=labels,
        relevance_threshold=relevance_threshold,
    )


def split_queries_by_id(queries: Dataset, qrels: Qrels) -> tuple[Dataset, Dataset]:
    """
    The fixed 50/50 split by id of Cranfield and CACM: the judged queries sorted by numeric id, the first half for
    training and the rest for evaluation.

    Args:
        queries (`Dataset`): Queries with a numeric string column `query_id`.
        qrels (`dict[str, dict[str, int]]`): Their judgments; unjudged queries are left out.

    Returns:
        `tuple[Dataset, Dataset]`: The training and evaluation queries, each in file order.
    """
    query_ids = list(queries["query_id"])
    judged = {query_id: qrels[query_id] for query_id in query_ids if query_id in qrels}
    train_ids, test_ids = judged_query_halves(judged)
    train_rows = [row for row, query_id in enumerate(query_ids) if query_id in train_ids]
    test_rows = [row for row, query_id in enumerate(query_ids) if query_id in test_ids]
    return queries.select(train_rows), queries.select(test_rows)


def queries_file_retrieval_task(
    name: str,
    corpus: Dataset,
    queries: Dataset,
    qrels: Qrels,
    pseudo_queries_per_document: int = 0,
    seed: int = 0,
) -> RetrievalTask:
    """
    [`document_retrieval_task`] of your own queries (see [`~modeling_lmindexer.data.user_files.load_queries_files`]):
    split by their `split` column (`"train"` / `"test"`) when it is filled, else 50/50 by id as Cranfield and CACM.

    Raises:
        `ValueError`: When no judged query is left for evaluation.
    """
    splits = list(queries["split"])
    if any(splits):
        train_queries = queries.select([row for row, split in enumerate(splits) if split == "train"])
        test_queries = queries.select([row for row, split in enumerate(splits) if split == "test"])
        description = f"{name}: the queries file's split column (train / test)"
    else:
        train_queries, test_queries = split_queries_by_id(queries, qrels)
        description = f"{name}: judged queries split 50/50 by id (first half training, second half test), fixed"
    task = document_retrieval_task(
        name,
        corpus,
        test_queries,
        qrels,
        description,
        train_queries=train_queries,
        train_qrels=qrels,
        pseudo_queries_per_document=pseudo_queries_per_document,
        seed=seed,
    )
    if not task.test:
        raise ValueError(f"{name}: no test query has a relevant document; give some queries the split 'test'.")
    return task


def load_document_retrieval_task(
    name: str,
    data_dir: DataDir | None,
    corpus: Dataset | None = None,
    pseudo_queries_per_document: int | None = None,
    seed: int = 0,
) -> RetrievalTask:
    """
    [`document_retrieval_task`] of a benchmark: `scifact` (BEIR train qrels for training, test qrels for
    evaluation), `msmarco5k` (the 43 judged TREC DL 2019 queries for evaluation only; training is indexing and
    pseudo-query pairs), `cranfield` and `cacm` (judged queries split 50/50 by id).

    Args:
        name (`str`): The dataset.
        data_dir (`str` or `os.PathLike`): The data folder.
        corpus (`Dataset`, *optional*): The documents; defaults to `load_corpus(name, data_dir)`.
        pseudo_queries_per_document (`int`, *optional*): Defaults to 3 for `msmarco5k` (title or first sentence and
            two spans), else 0.
        seed (`int`): Seed of the pseudo-query spans.

    Raises:
        `ValueError`: For an unknown dataset. `FileNotFoundError`: For missing files.
    """
    if name not in DOCUMENT_RETRIEVAL_DATASETS:
        raise ValueError(
            f"Unknown document retrieval dataset '{name}'; choose from {list(DOCUMENT_RETRIEVAL_DATASETS)}."
        )
    corpus = load_corpus(name, data_dir) if corpus is None else corpus
    if pseudo_queries_per_document is None:
        pseudo_queries_per_document = DEFAULT_PSEUDO_QUERIES_PER_DOCUMENT.get(name, 0)
    train_queries, train_qrels = None, None
    relevance_threshold = 1
    if name == "scifact":
        train_queries, train_qrels = load_scifact_queries(data_dir, "train")
        test_queries, test_qrels = load_scifact_queries(data_dir, "test")
        description = "BEIR SciFact: training queries with the train qrels, evaluation on the test qrels"
    elif name == "msmarco5k":
        test_queries, test_qrels = load_msmarco5k_queries(data_dir)
        description = (
            "MS MARCO passage 5k: the judged TREC DL 2019 queries for evaluation only (graded qrels); no training "
            "queries, training on indexing pairs and pseudo-queries"
        )
        relevance_threshold = TREC_DL_RELEVANCE_THRESHOLD
    elif name == "cranfield":
        train_queries, train_qrels = load_cranfield_queries(data_dir, "train")
        test_queries, test_qrels = load_cranfield_queries(data_dir, "test")
        description = "Cranfield: judged queries split 50/50 by id (first half training, second half test), fixed"
    else:
        queries, qrels = load_cacm_queries(data_dir)
        train_queries, test_queries = split_queries_by_id(queries, qrels)
        train_qrels = test_qrels = qrels
        description = "CACM: judged queries split 50/50 by id (first half training, second half test), fixed"
    return document_retrieval_task(
        name,
        corpus,
        test_queries,
        test_qrels,
        description,
        train_queries=train_queries,
        train_qrels=train_qrels,
        pseudo_queries_per_document=pseudo_queries_per_document,
        seed=seed,
        relevance_threshold=relevance_threshold,
    )


def _seeded_hash(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def product_search_substitute_task(corpus: Dataset, name: str, seed: int = 0) -> RetrievalTask:
    """
    A labelled product-search substitute over an item catalogue (Amazon ESCI is not available).

    Every distinct (leaf category, brand) pair of the items with a known brand is one query, whose text is
    `"<leaf category> <brand>"` (e.g. `"Nail Polish OPI"`) and whose relevant items are all the items with that leaf
    category and brand. The queries are ordered by the SHA-256 of `"<seed>:<query_id>"`; the first half (rounded
    down) is for training, the rest for evaluation. Training pairs are one `"query"` pair per training query and
    relevant item, then one `"indexing"` pair per item (item text -> its ID). The item texts contain the brand and
    the category path, so this substitute is far easier than real product search.

    Args:
        corpus (`Dataset`): Items with the columns `doc_id`, `text`, `category` (the leaf category) and `brand`
            (`""` when unknown).
        name (`str`): The dataset name.
        seed (`int`): Seed of the split.

    Returns:
        [`RetrievalTask`] of type and label `PRODUCT_SEARCH_SUBSTITUTE_LABEL`.

    Raises:
        `ValueError`: When the corpus lacks the `category` or `brand` column or yields fewer than 2 queries.
    """
    missing = {"category", "brand"} - set(corpus.column_names)
    if missing:
        raise ValueError(f"{name}: product search needs the item columns 'category' and 'brand'; missing {missing}.")
    items_by_query: dict[tuple[str, str], list[str]] = {}
    for doc_id, category, brand in zip(corpus["doc_id"], corpus["category"], corpus["brand"]):
        if category.strip() and brand.strip():
            items_by_query.setdefault((category.strip(), brand.strip()), []).append(doc_id)
    if len(items_by_query) < 2:
        raise ValueError(f"{name}: only {len(items_by_query)} (leaf category, brand) queries; product search needs 2.")
    queries = [
        EvaluationQuery(f"{category} | {brand}", f"{category} {brand}", dict.fromkeys(items, 1))
        for (category, brand), items in items_by_query.items()
    ]
    queries.sort(key=lambda query: _seeded_hash(seed, query.query_id))
    half = len(queries) // 2
    train = [TrainingPair(query.source, doc_id, QUERY) for query in queries[:half] for doc_id in query.relevance]
    train += [TrainingPair(text, doc_id, INDEXING) for doc_id, text in zip(corpus["doc_id"], corpus["text"])]
    description = (
        f"{PRODUCT_SEARCH_SUBSTITUTE_LABEL}: Amazon ESCI is not available; one query per (leaf category, brand) of "
        "the catalogue, text '<leaf category> <brand>', relevant items = every item with that leaf category and "
        f"brand; queries split 50/50 by a SHA-256 hash seeded with {seed}"
    )
    return RetrievalTask(
        name=name,
        task_type=PRODUCT_SEARCH_SUBSTITUTE_LABEL,
        train=train,
        validation=[],
        test=queries[half:],
        split_description=description,
        labels=[PRODUCT_SEARCH_SUBSTITUTE_LABEL],
    )


def load_retrieval_task(
    name: str,
    data_dir: DataDir | None,
    corpus: Dataset | None = None,
    pseudo_queries_per_document: int | None = None,
    seed: int = 0,
) -> RetrievalTask:
    """
    The retrieval task of a dataset: document retrieval for `scifact`, `msmarco5k`, `cranfield` and `cacm`, the
    product-search substitute for `beauty` and `office`.

    Args:
        name (`str`): The dataset.
        data_dir (`str` or `os.PathLike`): The data folder.
        corpus (`Dataset`, *optional*): The documents; defaults to `load_corpus(name, data_dir)`.
        pseudo_queries_per_document (`int`, *optional*): See [`load_document_retrieval_task`] (document retrieval
            only).
        seed (`int`): Seed of pseudo-query spans and of the product-search split.

    Raises:
        `ValueError`: For an unknown dataset. `FileNotFoundError`: For missing files.
    """
    if name in PRODUCT_SEARCH_DATASETS:
        corpus = load_corpus(name, data_dir) if corpus is None else corpus
        return product_search_substitute_task(corpus, name, seed)
    if name in DOCUMENT_RETRIEVAL_DATASETS:
        return load_document_retrieval_task(name, data_dir, corpus, pseudo_queries_per_document, seed)
    raise ValueError(f"Unknown retrieval dataset '{name}'; choose from {list(RETRIEVAL_DATASETS)}.")


__all__ = [
    "DOCUMENT_RETRIEVAL",
    "DOCUMENT_RETRIEVAL_DATASETS",
    "EvaluationQuery",
    "INDEXING",
    "NEXT_ITEM",
    "PRODUCT_SEARCH_DATASETS",
    "PRODUCT_SEARCH_SUBSTITUTE_LABEL",
    "PSEUDO_QUERY",
    "PSEUDO_QUERY_LABEL",
    "QUERY",
    "RETRIEVAL_DATASETS",
    "RetrievalTask",
    "SEQUENTIAL_RECOMMENDATION",
    "TrainingPair",
    "document_retrieval_task",
    "load_document_retrieval_task",
    "load_recommendation_task",
    "load_retrieval_task",
    "product_search_substitute_task",
    "queries_file_retrieval_task",
    "pseudo_queries",
    "recommendation_task",
    "split_queries_by_id",
]
