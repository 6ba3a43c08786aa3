"""The downstream task builders (`modeling_lmindexer.data.retrieval_tasks`) on synthetic data, then on the real data.

The real-data tests read ../shared/data (or `$LMINDEXER_DATA_DIR`) and are skipped with a reason when a file is
missing; each says which dataset file it reads.
"""

import json
from dataclasses import replace
from pathlib import Path

import pytest
from datasets import Dataset

from modeling_lmindexer.data import default_data_dir
from modeling_lmindexer.data.retrieval_tasks import (
    DOCUMENT_RETRIEVAL,
    INDEXING,
    NEXT_ITEM,
    PRODUCT_SEARCH_SUBSTITUTE_LABEL,
    PSEUDO_QUERY,
    PSEUDO_QUERY_LABEL,
    QUERY,
    SEQUENTIAL_RECOMMENDATION,
    RetrievalTask,
    TrainingPair,
    document_retrieval_task,
    load_document_retrieval_task,
    load_recommendation_task,
    load_retrieval_task,
    product_search_substitute_task,
    pseudo_queries,
    recommendation_task,
    split_queries_by_id,
)


DATA_DIR = default_data_dir()

# Synthetic catalogue: (leaf category path, brand) of 12 items; item 11 has no brand.
SYNTHETIC_ITEMS = [
    (["Beauty", "Makeup", "Nails", "Nail Polish"], "OPI"),
    (["Beauty", "Makeup", "Nails", "Nail Polish"], "OPI"),
    (["Beauty", "Makeup", "Nails", "Nail Polish"], "Essie"),
    (["Beauty", "Makeup", "Lips", "Lipstick"], "Revlon"),
    (["Beauty", "Makeup", "Lips", "Lipstick"], "Revlon"),
    (["Beauty", "Makeup", "Lips", "Lipstick"], "OPI"),
    (["Beauty", "Hair Care", "Shampoos"], "Dove"),
    (["Beauty", "Hair Care", "Shampoos"], "Pantene"),
    (["Beauty", "Hair Care", "Conditioners"], "Dove"),
    (["Beauty", "Skin Care", "Face", "Creams"], "Olay"),
    (["Beauty", "Skin Care", "Face", "Creams"], "Nivea"),
    (["Beauty", "Skin Care", "Face", "Creams"], None),
]
SYNTHETIC_SEQUENCES = {
    "0": [0, 1, 2, 5, 3],
    "1": [3, 4, 5, 0],
    "2": [6, 7, 8, 6, 9],
    "3": [9, 10, 11],
    "4": [1, 2, 0, 4, 3, 5],
    "5": [7, 6, 8, 10],
    "6": [11, 9, 10, 2],
}


def write_synthetic_beauty(data_dir: Path) -> Path:
    """The Beauty files (`Beauty.items.derived.json`, `Beauty.inter.json`) with the 12 synthetic items and 7 users."""
    items = {
        str(index): {
            "asin": f"B{index:05d}",
            "title": f"{path[-1]} number {index}",
            "categories": [path],
            "brand": brand,
        }
        for index, (path, brand) in enumerate(SYNTHETIC_ITEMS)
    }
    (data_dir / "amazon-beauty-2014-text").mkdir(parents=True, exist_ok=True)
    (data_dir / "amazon-beauty-2014-text" / "Beauty.items.derived.json").write_text(json.dumps(items))
    (data_dir / "amazon-beauty-2014-interactions").mkdir(parents=True, exist_ok=True)
    (data_dir / "amazon-beauty-2014-interactions" / "Beauty.inter.json").write_text(json.dumps(SYNTHETIC_SEQUENCES))
    return data_dir


def write_synthetic_office(data_dir: Path) -> Path:
    """`Office.item.json` and `Office.inter.json` with the same 12 synthetic items and 7 users."""
    items = {
        str(index): {
            "title": f"{path[-1]} number {index}",
            "description": f"A {path[-1].lower()} for the office.",
            "brand": brand or "",
            "categories": ", ".join(path),
        }
        for index, (path, brand) in enumerate(SYNTHETIC_ITEMS)
    }
    (data_dir / "amazon-office-2014").mkdir(parents=True, exist_ok=True)
    (data_dir / "amazon-office-2014" / "Office.item.json").write_text(json.dumps(items))
    (data_dir / "amazon-office-2014" / "Office.inter.json").write_text(json.dumps(SYNTHETIC_SEQUENCES))
    return data_dir


CRANFIELD_TOPICS = ["boundary layer flow", "supersonic wing lift", "heat transfer in nozzles", "shock wave drag"]


def write_synthetic_cranfield(data_dir: Path) -> Path:
    """Cranfield files: 12 documents (3 per topic), 8 queries whose `.I` ids skip numbers, graded qrels."""
    folder = data_dir / "cranfield"
    folder.mkdir(parents=True, exist_ok=True)
    documents = []
    for doc in range(1, 13):
        topic = CRANFIELD_TOPICS[(doc - 1) % 4]
        documents.append(
            f".I {doc}\n.T\n{topic} study {doc}\n.A\nauthor {doc}\n.B\nreport {doc}\n.W\n{topic} study {doc}"
        )
    (folder / "cran.all.1400").write_text("\n".join(documents) + "\n")
    queries = [f".I {3 * query:03d}\n.W\nwhat is known about {CRANFIELD_TOPICS[query % 4]} ?" for query in range(8)]
    (folder / "cran.qry").write_text("\n".join(queries) + "\n")
    # cranqrel numbers the queries 1..8 in file order; relevance 1 (best) .. 4, and -1 (skipped by the loader).
    qrels = [f"{query + 1} {doc} {1 + doc % 3}" for query in range(8) for doc in range(1 + query % 4, 13, 4)]
    (folder / "cranqrel").write_text("\n".join([*qrels, "8 1 -1"]) + "\n")
    return data_dir


def require_data(*relative_paths: str) -> None:
    for relative_path in relative_paths:
        if not (DATA_DIR / relative_path).is_file():
            pytest.skip(f"needs the real data file {DATA_DIR / relative_path}")


def test_recommendation_task_follows_the_leave_one_out_split():
    sequences = {"a": ["1", "2", "3", "4", "5"], "b": ["3", "1", "2"], "c": ["9", "8", "7", "6"]}
    task = recommendation_task(sequences, "synthetic", max_history_length=2, time_order_note="file order")
    assert task.task_type == SEQUENTIAL_RECOMMENDATION
    assert task.training_counts() == {NEXT_ITEM: 2 + 0 + 1}
    assert [(pair.source, pair.target) for pair in task.train] == [(("1",), "2"), (("1", "2"), "3"), (("9",), "8")]
    assert [(query.query_id, query.source, dict(query.relevance)) for query in task.test] == [
        ("a", ("3", "4"), {"5": 1}),
        ("b", ("3", "1"), {"2": 1}),
        ("c", ("8", "7"), {"6": 1}),
    ]
    assert [query.relevant_doc_ids() for query in task.validation] == [["4"], ["1"], ["7"]]
    assert task.labels == ["time order: file order"]
    assert "histories of at most 2 items, oldest first" in task.split_description


def test_recommendation_task_refuses_short_sequences():
    with pytest.raises(ValueError, match="User 'b' has 2 interactions"):
        recommendation_task({"a": ["1", "2", "3"], "b": ["1", "2"]}, "synthetic")


def synthetic_corpus() -> Dataset:
    texts = [
        "Boundary layers. They separate at high angles of attack.",
        "Heat transfer in nozzles is studied here",
        "Shock waves raise the drag of wings. Sweep lowers it.",
        "Supersonic lift of thin wings",
    ]
    return Dataset.from_dict({"doc_id": ["d1", "d2", "d3", "d4"], "text": texts, "title": ["", "Nozzle heat", "", ""]})


def test_document_retrieval_task_mixes_queries_indexing_and_pseudo_queries():
    corpus = synthetic_corpus()
    train_queries = Dataset.from_dict({"query_id": ["q1", "q2", "q3"], "text": ["separation", "nozzle", "nothing"]})
    train_qrels = {"q1": {"d1": 2, "d3": 1, "missing": 1}, "q2": {"d2": 1, "d4": 0}, "q3": {"d1": 0}}
    test_queries = Dataset.from_dict({"query_id": ["t1", "t2"], "text": ["wing drag", "unjudged"]})
    test_qrels = {"t1": {"d3": 3, "d4": 1, "d9": 2}}
    task = document_retrieval_task(
        "synthetic",
        corpus,
        test_queries,
        test_qrels,
        "split",
        train_queries,
        train_qrels,
        pseudo_queries_per_document=2,
    )
    assert task.task_type == DOCUMENT_RETRIEVAL and task.labels == [PSEUDO_QUERY_LABEL]
    query_pairs = [(pair.source, pair.target) for pair in task.train if pair.kind == QUERY]
    assert query_pairs == [("separation", "d1"), ("separation", "d3"), ("nozzle", "d2")]  # grade 0, missing: dropped
    assert [(pair.source, pair.target) for pair in task.train if pair.kind == INDEXING] == list(
        zip(corpus["text"], corpus["doc_id"])
    )
    pseudo = [pair for pair in task.train if pair.kind == PSEUDO_QUERY]
    assert {pair.target for pair in pseudo} == {"d1", "d2", "d3", "d4"} and len(pseudo) <= 8
    assert [(query.query_id, query.relevant_doc_ids()) for query in task.test] == [("t1", ["d3", "d9", "d4"])]
    assert task.validation == []

    without_pseudo = document_retrieval_task("synthetic", corpus, test_queries, test_qrels, "split")
    assert without_pseudo.training_counts() == {INDEXING: 4} and without_pseudo.labels == []


def test_pseudo_queries_are_the_title_or_first_sentence_then_seeded_spans():
    text = " ".join(f"word{index}" for index in range(40)) + ". Second sentence."
    first = pseudo_queries("d1", text, num_queries=4, seed=0)
    assert first[0] == " ".join(f"word{index}" for index in range(32))  # the first sentence, at most 32 words
    assert len(first) == 4 and all(span in text for span in first[1:])
    assert all(6 <= len(span.split()) <= 16 for span in first[1:])
    assert pseudo_queries("d1", text, num_queries=4, seed=0) == first
    assert pseudo_queries("d1", text, num_queries=4, seed=1) != first
    assert pseudo_queries("d1", text, title="A title", num_queries=1) == ["A title"]
    assert pseudo_queries("d1", text, num_queries=0) == []
    # A document's pseudo-queries do not depend on the corpus order.
    corpus = synthetic_corpus()
    reversed_corpus = corpus.select(range(len(corpus) - 1, -1, -1))
    empty = Dataset.from_dict({"query_id": [], "text": []})

    def by_document(documents: Dataset) -> set:
        task = document_retrieval_task("s", documents, empty, {}, "split", pseudo_queries_per_document=3)
        return {(pair.target, pair.source) for pair in task.train if pair.kind == PSEUDO_QUERY}

    assert by_document(corpus) == by_document(reversed_corpus)


def product_corpus() -> Dataset:
    return Dataset.from_dict(
        {
            "doc_id": [str(index) for index in range(len(SYNTHETIC_ITEMS))],
            "text": [f"{path[-1]} {brand}" for path, brand in SYNTHETIC_ITEMS],
            "category": [path[-1] for path, _ in SYNTHETIC_ITEMS],
            "brand": [brand or "" for _, brand in SYNTHETIC_ITEMS],
        }
    )


def test_product_search_substitute_queries_relevance_split_and_labels():
    task = product_search_substitute_task(product_corpus(), "synthetic", seed=0)
    assert task.task_type == PRODUCT_SEARCH_SUBSTITUTE_LABEL and task.labels == [PRODUCT_SEARCH_SUBSTITUTE_LABEL]
    assert task.split_description.startswith(PRODUCT_SEARCH_SUBSTITUTE_LABEL)
    train_queries = {pair.source for pair in task.train if pair.kind == QUERY}
    test_queries = {query.source: query.relevant_doc_ids() for query in task.test}
    # 9 (leaf category, brand) pairs among the 11 branded items: 4 for training, 5 for evaluation, disjoint.
    assert len(train_queries) == 4 and len(test_queries) == 5 and not train_queries & set(test_queries)
    all_queries = {**test_queries}
    for pair in task.train:
        if pair.kind == QUERY:
            all_queries.setdefault(pair.source, []).append(pair.target)
    assert all_queries["Nail Polish OPI"] == ["0", "1"] and all_queries["Lipstick Revlon"] == ["3", "4"]
    assert all_queries["Lipstick OPI"] == ["5"] and all_queries["Creams Olay"] == ["9"]
    assert not any("11" in items for items in all_queries.values())  # item 11 has no brand
    assert sum(pair.kind == INDEXING for pair in task.train) == len(SYNTHETIC_ITEMS)

    again = product_search_substitute_task(product_corpus(), "synthetic", seed=0)
    assert [query.query_id for query in again.test] == [query.query_id for query in task.test]
    other_seeds = [product_search_substitute_task(product_corpus(), "synthetic", seed) for seed in range(1, 4)]
    assert any({q.query_id for q in other.test} != {q.query_id for q in task.test} for other in other_seeds)


def test_product_search_substitute_refuses_catalogues_without_brands():
    corpus = product_corpus().remove_columns("brand")
    with pytest.raises(ValueError, match="'category' and 'brand'"):
        product_search_substitute_task(corpus, "synthetic")


def test_cranfield_split_by_id_is_fixed(tmp_path):
    data_dir = write_synthetic_cranfield(tmp_path)
    task = load_document_retrieval_task("cranfield", data_dir)
    assert load_document_retrieval_task("cranfield", data_dir) == task
    # Queries are numbered 1..8 in file order; the first half of the judged ids trains, the second half tests.
    assert [query.query_id for query in task.test] == ["5", "6", "7", "8"]
    assert {pair.source for pair in task.train if pair.kind == QUERY} == {
        f"what is known about {CRANFIELD_TOPICS[query % 4]} ?" for query in range(4)
    }
    assert dict(task.test[0].relevance) == {"1": 3, "5": 2, "9": 4}  # gain = 5 - relevance
    assert task.training_counts() == {QUERY: 12, INDEXING: 12} and task.labels == []
    assert "50/50 by id" in task.split_description


def test_split_queries_by_id_sorts_judged_ids_numerically():
    queries = Dataset.from_dict({"query_id": ["10", "2", "33", "4", "5"], "text": ["a", "b", "c", "d", "e"]})
    train, test = split_queries_by_id(queries, {"10": {"x": 1}, "2": {"x": 1}, "33": {"x": 1}, "4": {"x": 1}})
    assert list(train["query_id"]) == ["2", "4"] and list(test["query_id"]) == ["10", "33"]


def test_restrict_to_documents_drops_what_cannot_be_generated():
    sequences = {"a": ["1", "2", "3", "4"], "b": ["1", "5", "2", "3"]}
    task = recommendation_task(sequences, "synthetic", time_order_note="file order")
    restricted = task.restrict_to_documents({"1", "2", "3", "4"})
    assert [(pair.source, pair.target) for pair in restricted.train] == [(("1",), "2")]
    assert [query.query_id for query in restricted.test] == ["a"] and restricted.num_dropped_test_queries == 1
    corpus = synthetic_corpus()
    test_queries = Dataset.from_dict({"query_id": ["t1", "t2"], "text": ["drag", "lift"]})
    documents = document_retrieval_task("s", corpus, test_queries, {"t1": {"d3": 1, "d4": 1}, "t2": {"d4": 1}}, "")
    kept = documents.restrict_to_documents({"d1", "d3"})
    assert [query.query_id for query in kept.test] == ["t1"] and dict(kept.test[0].relevance) == {"d3": 1, "d4": 1}
    assert [pair.target for pair in kept.train] == ["d1", "d3"]


def test_hold_out_validation_moves_whole_training_queries_drawn_by_the_seed():
    train = [TrainingPair(f"query {q}", f"d{q}-{r}", QUERY) for q in range(6) for r in range(2)]
    train += [TrainingPair("the text of d0-0", "d0-0", INDEXING), TrainingPair("d0-0 span", "d0-0", PSEUDO_QUERY)]
    task = RetrievalTask("synthetic", DOCUMENT_RETRIEVAL, train, [], [], "split")
    held_out = task.hold_out_validation(2, seed=3)
    sources = [query.source for query in held_out.validation]
    assert len(set(sources)) == 2 and [query.query_id for query in held_out.validation] == [
        "validation-0", "validation-1"
    ]  # fmt: skip
    for query in held_out.validation:  # every pair of a held-out query leaves training, and becomes its judgments
        number = query.source.split()[-1]
        assert dict(query.relevance) == {f"d{number}-0": 1, f"d{number}-1": 1}
    assert [pair for pair in train if pair.source not in sources] == held_out.train
    assert held_out.training_counts() == {QUERY: 8, INDEXING: 1, PSEUDO_QUERY: 1}
    # The same draw in any order of the pairs; other seeds draw other queries.
    reordered = replace(task, train=train[::-1]).hold_out_validation(2, seed=3)
    assert {query.source for query in reordered.validation} == set(sources)
    assert any(
        {query.source for query in task.hold_out_validation(2, seed).validation} != set(sources) for seed in range(8)
    )
    for num_queries in (0, 6):
        with pytest.raises(ValueError, match=f"cannot hold out {num_queries} validation queries of 6 training"):
            task.hold_out_validation(num_queries)


def test_unknown_datasets_are_refused():
    with pytest.raises(ValueError, match="Unknown retrieval dataset 'nq320k'"):
        load_retrieval_task("nq320k", DATA_DIR)
    with pytest.raises(ValueError, match="Unknown recommendation dataset 'ml-20m'"):
        load_recommendation_task("ml-20m")


def test_real_beauty_recommendation_task():
    """Reads amazon-beauty-2014-interactions/Beauty.inter.json (TIGER's Beauty split)."""
    require_data("amazon-beauty-2014-interactions/Beauty.inter.json")
    task = load_recommendation_task("beauty", DATA_DIR)
    assert len(task.test) == len(task.validation) == 22363
    assert len(task.train) == 198502 - 3 * 22363
    assert max(len(query.source) for query in task.test) == 20
    assert "9,719 users" in task.labels[0] and "9,719 users" in task.split_description


def test_real_scifact_task():
    """Reads scifact/scifact.zip and scifact/qrels.{train,test}.tsv (BEIR SciFact)."""
    require_data("scifact/scifact.zip", "scifact/qrels.train.tsv", "scifact/qrels.test.tsv")
    task = load_retrieval_task("scifact", DATA_DIR)
    assert task.training_counts() == {QUERY: 919, INDEXING: 5183}
    assert len(task.test) == 300 and sum(len(query.relevant_doc_ids()) for query in task.test) == 339
    assert task.labels == []


def test_real_msmarco5k_task():
    """Reads msmarco-passage-5k-trecdl/{corpus,queries}.jsonl and qrels.test.tsv (TREC DL 2019 judged queries)."""
    require_data(
        *(f"msmarco-passage-5k-trecdl/{name}" for name in ("corpus.jsonl", "queries.jsonl", "qrels.test.tsv"))
    )
    task = load_retrieval_task("msmarco5k", DATA_DIR)
    counts = task.training_counts()
    assert QUERY not in counts and counts[INDEXING] == 5000 and 5000 < counts[PSEUDO_QUERY] <= 15000
    assert len(task.test) == 43 and task.labels[0] == PSEUDO_QUERY_LABEL
    assert {grade for query in task.test for grade in query.relevance.values()} <= {1, 2, 3}
    # TREC DL binary metrics count grade >= 2 as relevant, and the task's reports say so.
    assert task.relevance_threshold == 2 and "grade >= 2" in task.labels[1]
    assert all(query.relevant_doc_ids(2) for query in task.test)


def test_restricting_documents_keeps_queries_with_an_indexed_document_at_the_threshold():
    queries = Dataset.from_dict({"query_id": ["q1", "q2"], "text": ["first query", "second query"]})
    corpus = Dataset.from_dict({"doc_id": ["a", "b", "c"], "text": ["doc a", "doc b", "doc c"]})
    qrels = {"q1": {"a": 2, "b": 1}, "q2": {"b": 1, "c": 3}}
    task = document_retrieval_task("toy", corpus, queries, qrels, "toy split", relevance_threshold=2)
    assert task.relevance_threshold == 2 and "grade >= 2" in task.labels[-1]
    # Without "c", q2's only indexed relevant document has grade 1: it is dropped at threshold 2, kept at 1.
    assert [query.query_id for query in task.restrict_to_documents(["a", "b"]).test] == ["q1"]
    binary = document_retrieval_task("toy", corpus, queries, qrels, "toy split")
    assert [query.query_id for query in binary.restrict_to_documents(["a", "b"]).test] == ["q1", "q2"]


def test_real_cranfield_task():
    """Reads cranfield/cran.all.1400, cran.qry and cranqrel."""
    require_data("cranfield/cran.all.1400", "cranfield/cran.qry", "cranfield/cranqrel")
    task = load_retrieval_task("cranfield", DATA_DIR)
    test_ids = [int(query.query_id) for query in task.test]
    train_sources = {pair.source for pair in task.train if pair.kind == QUERY}
    assert min(test_ids) == 113 and max(test_ids) == 225 and len(test_ids) == 225 - 112
    assert len(train_sources) == 112 and not train_sources & {query.source for query in task.test}
    assert task.training_counts()[INDEXING] == 1398
    assert load_retrieval_task("cranfield", DATA_DIR).test == task.test


def test_real_cacm_task():
    """Reads cacm/cacm.all, query.text and qrels.text."""
    require_data("cacm/cacm.all", "cacm/query.text", "cacm/qrels.text")
    task = load_retrieval_task("cacm", DATA_DIR)
    assert len(task.test) == 26 and task.training_counts()[INDEXING] == 3204
    assert min(int(query.query_id) for query in task.test) > 0


@pytest.mark.parametrize("name, relative_path, num_queries", [
    ("beauty", "amazon-beauty-2014-text/Beauty.items.derived.json", 6990),
    ("office", "amazon-office-2014/Office.item.json", 763),
])  # fmt: skip
def test_real_product_search_substitute(name, relative_path, num_queries):
    """Reads the item catalogue (Beauty.items.derived.json or Office.item.json) of the product-search substitute."""
    require_data(relative_path)
    task = load_retrieval_task(name, DATA_DIR)
    assert len(task.test) == num_queries - num_queries // 2
    assert len({pair.source for pair in task.train if pair.kind == QUERY}) == num_queries // 2
    assert task.labels == [PRODUCT_SEARCH_SUBSTITUTE_LABEL] and PRODUCT_SEARCH_SUBSTITUTE_LABEL in task.task_type
    if name == "beauty":
        opi = [query for query in task.test if query.query_id == "Nail Polish | OPI"]
        opi_pairs = [pair for pair in task.train if pair.source == "Nail Polish OPI"]
        assert len(opi[0].relevance) == 161 if opi else len(opi_pairs) == 161
