"""Benchmark corpora as `datasets.Dataset` document tables, with the queries and qrels of the retrieval corpora."""

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


__all__ = [
    "CORPUS_LOADERS",
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
    "load_scifact_corpus",
    "load_scifact_queries",
]
