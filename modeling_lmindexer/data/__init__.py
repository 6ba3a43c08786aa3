"""
Benchmark corpora as `datasets.Dataset` document tables, with the queries and qrels of the retrieval corpora, and the
downstream tasks built from them as (source, target doc id) pairs.
"""

from .corpora import (
    CORPUS_LOADERS,
    default_data_dir,
    load_amazon_beauty,
    load_amazon_office,
    load_cacm_corpus,
    load_cacm_queries,
    load_corpus,
    load_cranfield_corpus,
    load_cranfield_queries,
    load_movielens_1m,
    load_msmarco5k_corpus,
    load_msmarco5k_queries,
    load_scifact_corpus,
    load_scifact_queries,
)
from .retrieval_tasks import (
    PRODUCT_SEARCH_SUBSTITUTE_LABEL,
    PSEUDO_QUERY_LABEL,
    EvaluationQuery,
    RetrievalTask,
    TrainingPair,
    load_recommendation_task,
    load_retrieval_task,
)


__all__ = [
    "CORPUS_LOADERS",
    "EvaluationQuery",
    "PRODUCT_SEARCH_SUBSTITUTE_LABEL",
    "PSEUDO_QUERY_LABEL",
    "RetrievalTask",
    "TrainingPair",
    "default_data_dir",
    "load_amazon_beauty",
    "load_amazon_office",
    "load_cacm_corpus",
    "load_cacm_queries",
    "load_corpus",
    "load_cranfield_corpus",
    "load_cranfield_queries",
    "load_movielens_1m",
    "load_msmarco5k_corpus",
    "load_msmarco5k_queries",
    "load_recommendation_task",
    "load_retrieval_task",
    "load_scifact_corpus",
    "load_scifact_queries",
]
