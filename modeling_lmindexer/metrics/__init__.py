"""Retrieval metrics: pure functions, and the same metrics as an `evaluate` module."""

from pathlib import Path

import evaluate

from .retrieval_metrics import compute_per_query_retrieval_metrics, compute_retrieval_metrics


__all__ = [
    "RETRIEVAL_METRIC_PATH",
    "compute_per_query_retrieval_metrics",
    "compute_retrieval_metrics",
    "load_retrieval_metric",
]

RETRIEVAL_METRIC_PATH = Path(__file__).with_name("retrieval")


def load_retrieval_metric(**load_kwargs) -> evaluate.EvaluationModule:
    """
    The `Retrieval` metric (Recall@K, NDCG@K, MRR@K) of this package, loaded from its local script (works offline).

    Args:
        **load_kwargs: Forwarded to `evaluate.load`, e.g. `keep_in_memory=True`, or `num_process` / `process_id` /
            `experiment_id` for distributed evaluation.

    Returns:
        `evaluate.EvaluationModule`: Call `.compute(predictions=..., references=..., k_values=[1, 10])` on it.
    """
    return evaluate.load(str(RETRIEVAL_METRIC_PATH), **load_kwargs)
