"""
The installed commands (`lmindexer-index`, `lmindexer-recommend`, `lmindexer-retrieve`), which the example scripts
`examples/run_indexing.py`, `run_recommendation.py` and `run_retrieval.py` run, and the argument handling they share.
"""
