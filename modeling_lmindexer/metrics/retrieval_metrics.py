"""
Ranking metrics for retrieval with semantic IDs: Recall@K, NDCG@K and MRR@K, following the trec_eval conventions.

Every function takes, per query, the ranked list of predicted document ids (best first) and the judged documents:
either a collection of relevant document ids (binary relevance) or a mapping from document id to an integer relevance
grade (graded relevance; a grade of 0 or less means judged non-relevant). Conventions:

- A document id that appears again further down a ranked list is dropped: the documents after it move up one rank, as
  if the retriever had returned each document once (what deduplicating beam search outputs gives).
- A ranked list may be shorter than K: the missing ranks count as non-relevant.
- Recall@K is the number of relevant documents in the top K divided by the number of relevant documents of the query.
- NDCG@K uses the relevance grade as the gain (1 for binary relevance) and the discount `1 / log2(rank + 1)`; the
  ideal DCG@K ranks all relevant documents of the query, retrieved or not, by decreasing grade.
- MRR@K is `1 / rank` of the first relevant document within the top K, 0 when none is there.
- `relevance_threshold` (default 1) is the smallest grade Recall and MRR count as relevant, as trec_eval's `-l`
  option: TREC Deep Learning runs use 2. NDCG stays graded: every positive grade is a gain.
- A query without any relevant document is an error, never skipped silently.
"""

from collections.abc import Collection, Iterable, Mapping, Sequence
from numbers import Integral

import numpy as np


__all__ = ["compute_per_query_retrieval_metrics", "compute_retrieval_metrics"]

DEFAULT_K_VALUES = (1, 5, 10)


def _check_k_values(k_values: Iterable[int]) -> list[int]:
    """Sorted distinct cut-offs, after checking that each one is a positive integer."""
    k_values = list(k_values)
    if not k_values:
        raise ValueError("`k_values` must hold at least one cut-off.")
    for k in k_values:
        if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
            raise ValueError(f"Every value of `k_values` must be a positive int, got {k!r}.")
    return sorted({int(k) for k in k_values})


def _check_relevance_threshold(relevance_threshold: int) -> int:
    if (
        isinstance(relevance_threshold, bool)
        or not isinstance(relevance_threshold, Integral)
        or relevance_threshold < 1
    ):
        raise ValueError(f"`relevance_threshold` must be a positive int, got {relevance_threshold!r}.")
    return int(relevance_threshold)


def _relevance_grades(
    reference: Collection[str] | Mapping[str, int], query_index: int, relevance_threshold: int
) -> dict[str, int]:
    """
    The judged documents of one query as `{doc_id: grade}`.

    Args:
        reference (`Collection[str]` or `Mapping[str, int]`):
            The relevant document ids (each gets grade 1), or the relevance grade of each judged document id.
        query_index (`int`): Position of the query, for the error messages.
        relevance_threshold (`int`): Smallest grade counted as relevant; the query needs one document of that grade.

    Returns:
        `dict[str, int]`: The grade of each judged document id.
    """
    if isinstance(reference, str):
        raise ValueError(
            f"References of query {query_index} must be a collection of document ids or a dict of grades, got the "
            f"string {reference!r}."
        )
    grades = dict(reference) if isinstance(reference, Mapping) else dict.fromkeys(reference, 1)
    for doc_id, grade in grades.items():
        if not isinstance(doc_id, str):
            raise ValueError(f"Document ids must be strings, got {doc_id!r} in the references of query {query_index}.")
        if isinstance(grade, bool) or not isinstance(grade, Integral):
            raise ValueError(
                f"Relevance grades must be ints, got {grade!r} for document {doc_id!r} of query {query_index}."
            )
    if not any(grade >= relevance_threshold for grade in grades.values()):
        grade_note = f" of grade >= {relevance_threshold}" if relevance_threshold > 1 else ""
        raise ValueError(f"Query {query_index} has no relevant document{grade_note}: its metrics are undefined.")
    return grades


def _unique_in_order(ranked_doc_ids: Sequence[str], query_index: int) -> list[str]:
    """The ranked document ids of one query with every repeated id dropped after its first occurrence."""
    if isinstance(ranked_doc_ids, str):
        raise ValueError(
            f"Predictions of query {query_index} must be a list of document ids, got the string {ranked_doc_ids!r}."
        )
    for doc_id in ranked_doc_ids:
        if not isinstance(doc_id, str):
            raise ValueError(
                f"Document ids must be strings, got {doc_id!r} in the predictions of query {query_index}."
            )
    return list(dict.fromkeys(ranked_doc_ids))


def _gain_matrices(
    predictions: Sequence[Sequence[str]],
    references: Sequence[Collection[str] | Mapping[str, int]],
    depth: int,
    relevance_threshold: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Gains of the retrieved and of the ideal rankings down to `depth`.

    Returns:
        `tuple(np.ndarray)`:
        - **gains** (`np.ndarray` of shape `(num_queries, depth)`): grade of the document at each rank (0 for a
          non-relevant or missing document).
        - **ideal_gains** (`np.ndarray` of shape `(num_queries, depth)`): the grades of the query's relevant documents
          in decreasing order, padded with 0.
        - **num_relevant** (`np.ndarray` of shape `(num_queries,)`): number of documents of each query with a grade
          of at least `relevance_threshold`.
    """
    gains = np.zeros((len(predictions), depth))
    ideal_gains = np.zeros((len(predictions), depth))
    num_relevant = np.zeros(len(predictions))
    for query_index, (ranked_doc_ids, reference) in enumerate(zip(predictions, references)):
        grades = _relevance_grades(reference, query_index, relevance_threshold)
        top_doc_ids = _unique_in_order(ranked_doc_ids, query_index)[:depth]
        gains[query_index, : len(top_doc_ids)] = [max(grades.get(doc_id, 0), 0) for doc_id in top_doc_ids]
        relevant_grades = sorted((grade for grade in grades.values() if grade > 0), reverse=True)
        ideal_gains[query_index, : min(len(relevant_grades), depth)] = relevant_grades[:depth]
        num_relevant[query_index] = sum(grade >= relevance_threshold for grade in relevant_grades)
    return gains, ideal_gains, num_relevant


def compute_per_query_retrieval_metrics(
    predictions: Sequence[Sequence[str]],
    references: Sequence[Collection[str] | Mapping[str, int]],
    k_values: Iterable[int] = DEFAULT_K_VALUES,
    relevance_threshold: int = 1,
) -> dict[str, np.ndarray]:
    """
    Recall@K, NDCG@K and MRR@K of each query, e.g. for paired significance tests between two systems.

    Args:
        predictions (`Sequence[Sequence[str]]` of length `num_queries`):
            For each query, the retrieved document ids from best to worst. May be shorter than K; repeated ids are
            dropped after their first occurrence (the documents after them move up).
        references (`Sequence` of length `num_queries`):
            For each query, either a collection of relevant document ids (`set[str]`, `list[str]`, ...) or a dict
            `{doc_id: grade}` of integer relevance grades (grade <= 0: judged non-relevant). Each query needs at least
            one relevant document.
        k_values (`Iterable[int]`, *optional*, defaults to `(1, 5, 10)`):
            The cut-offs K, positive ints.
        relevance_threshold (`int`, *optional*, defaults to 1):
            Smallest grade that Recall@K and MRR@K count as relevant (trec_eval's `-l`; 2 for TREC Deep Learning).
            NDCG@K uses every positive grade as its gain whatever the threshold. Each query needs a document of at
            least this grade.

    Returns:
        `dict[str, np.ndarray]`: For each metric and cut-off (`"recall@10"`, `"ndcg@10"`, `"mrr@10"`, ...), the values
        of the queries, a float array of shape `(num_queries,)`.

    Raises:
        `ValueError`: If the inputs differ in length or are empty, a cut-off or the threshold is not a positive
        int, a document id is not a string, a grade is not an int, or a query has no relevant document (the error
        names its index).
    """
    k_values = _check_k_values(k_values)
    relevance_threshold = _check_relevance_threshold(relevance_threshold)
    if len(predictions) != len(references):
        raise ValueError(
            f"Got {len(predictions)} predictions but {len(references)} references: one of each per query."
        )
    if len(predictions) == 0:
        raise ValueError("Got no queries: retrieval metrics need at least one.")

    depth = k_values[-1]
    gains, ideal_gains, num_relevant = _gain_matrices(predictions, references, depth, relevance_threshold)
    discounts = 1.0 / np.log2(np.arange(2, depth + 2))
    dcg = np.cumsum(gains * discounts, axis=1)
    ideal_dcg = np.cumsum(ideal_gains * discounts, axis=1)
    relevant = gains >= relevance_threshold
    hits = np.cumsum(relevant, axis=1)
    first_hit_rank = np.where(hits[:, -1] > 0, np.argmax(relevant, axis=1) + 1, np.inf)

    metrics = {}
    for k in k_values:
        metrics[f"recall@{k}"] = hits[:, k - 1] / num_relevant
    for k in k_values:
        metrics[f"ndcg@{k}"] = dcg[:, k - 1] / ideal_dcg[:, k - 1]
    for k in k_values:
        metrics[f"mrr@{k}"] = np.where(first_hit_rank <= k, 1.0 / first_hit_rank, 0.0)
    return metrics


def compute_retrieval_metrics(
    predictions: Sequence[Sequence[str]],
    references: Sequence[Collection[str] | Mapping[str, int]],
    k_values: Iterable[int] = DEFAULT_K_VALUES,
    relevance_threshold: int = 1,
) -> dict[str, float]:
    """
    Recall@K, NDCG@K and MRR@K averaged over the queries.

    Takes the same arguments as [`compute_per_query_retrieval_metrics`] and raises the same errors.

    Returns:
        `dict[str, float]`: The mean over queries of each metric and cut-off, e.g. `{"recall@1": ..., "recall@10": ...,
        "ndcg@1": ..., "ndcg@10": ..., "mrr@1": ..., "mrr@10": ...}`.
    """
    per_query = compute_per_query_retrieval_metrics(predictions, references, k_values, relevance_threshold)
    return {name: float(values.mean()) for name, values in per_query.items()}
