"""Retrieval metrics (Recall@K, NDCG@K, MRR@K) as an `evaluate` metric: `evaluate.load(<this folder>)`."""

import datasets
import evaluate

from modeling_lmindexer.metrics.retrieval_metrics import DEFAULT_K_VALUES, compute_retrieval_metrics


_DESCRIPTION = """
Ranking metrics of a retriever that returns, per query, a ranked list of document ids (for example the documents
decoded from semantic IDs by constrained beam search): Recall@K, NDCG@K (binary gains, log2 discount, ideal DCG from
all relevant documents of the query, as trec_eval computes it) and MRR@K, averaged over the queries. A document id
repeated in a ranked list is dropped after its first occurrence; a ranked list may be shorter than K.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[str]]`): For each query, the retrieved document ids from best to worst.
    references (`list[list[str]]`): For each query, the relevant document ids (at least one).
    k_values (`list[int]`, *optional*, defaults to `[1, 5, 10]`): The cut-offs K, positive ints.

Returns:
    `dict[str, float]`: The mean over queries of `recall@K`, `ndcg@K` and `mrr@K` for each K.

Examples:
    >>> from modeling_lmindexer.metrics import load_retrieval_metric
    >>> retrieval = load_retrieval_metric()
    >>> retrieval.compute(predictions=[["d3", "d1", "d7"]], references=[["d1"]], k_values=[1, 10])
    {'recall@1': 0.0, 'recall@10': 1.0, 'ndcg@1': 0.0, 'ndcg@10': 0.6309297535714575, 'mrr@1': 0.0, 'mrr@10': 0.5}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Retrieval(evaluate.Metric):
    """Recall@K, NDCG@K and MRR@K of ranked document ids against the relevant document ids of each query."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
            reference_urls=["https://github.com/usnistgov/trec_eval"],
        )

    def _compute(
        self, predictions: list[list[str]], references: list[list[str]], k_values: list[int] = DEFAULT_K_VALUES
    ) -> dict[str, float]:
        return compute_retrieval_metrics(predictions, [set(relevant) for relevant in references], k_values)
