"""Retrieval metrics: hand-computed cases, a cross-check against trec_eval through ir-measures, the `evaluate` path."""

import math
import random

import evaluate
import ir_measures
import numpy as np
import pytest

from modeling_lmindexer.metrics import (
    compute_per_query_retrieval_metrics,
    compute_retrieval_metrics,
    load_retrieval_metric,
)


def test_perfect_ranking_scores_one():
    metrics = compute_retrieval_metrics([["a", "b", "c"]], [{"a", "b", "c"}], k_values=[1, 3, 5])

    assert metrics == pytest.approx({**dict.fromkeys(metrics, 1.0), "recall@1": 1 / 3})
    assert list(metrics) == [
        "recall@1",
        "recall@3",
        "recall@5",
        "ndcg@1",
        "ndcg@3",
        "ndcg@5",
        "mrr@1",
        "mrr@3",
        "mrr@5",
    ]


def test_no_hit_scores_zero():
    metrics = compute_retrieval_metrics([["x", "y", "z"]], [{"a"}], k_values=[1, 10])

    assert metrics == dict.fromkeys(metrics, 0.0)


def test_hit_at_rank_three():
    metrics = compute_retrieval_metrics([["x", "y", "a", "z"]], [{"a", "b"}], k_values=[1, 3])

    assert metrics["recall@1"] == 0.0
    assert metrics["recall@3"] == pytest.approx(0.5)
    assert metrics["ndcg@1"] == 0.0
    assert metrics["ndcg@3"] == pytest.approx((1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert metrics["mrr@1"] == 0.0
    assert metrics["mrr@3"] == pytest.approx(1 / 3)


def test_fewer_predictions_than_k():
    metrics = compute_retrieval_metrics([["x", "a"]], [["a", "b"]], k_values=[10])

    assert metrics["recall@10"] == pytest.approx(0.5)
    assert metrics["ndcg@10"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert metrics["mrr@10"] == pytest.approx(0.5)


def test_empty_prediction_list_scores_zero():
    metrics = compute_retrieval_metrics([[]], [{"a"}], k_values=[1, 5])

    assert metrics == dict.fromkeys(metrics, 0.0)


def test_repeated_predictions_are_dropped_after_their_first_occurrence():
    with_duplicates = compute_retrieval_metrics([["x", "x", "y", "x", "a"]], [{"a"}], k_values=[3])
    deduplicated = compute_retrieval_metrics([["x", "y", "a"]], [{"a"}], k_values=[3])

    assert with_duplicates == deduplicated
    assert with_duplicates["mrr@3"] == pytest.approx(1 / 3)


def test_repeated_relevant_prediction_counts_once():
    metrics = compute_retrieval_metrics([["a", "a", "a"]], [{"a", "b"}], k_values=[3])

    assert metrics["recall@3"] == pytest.approx(0.5)
    assert metrics["ndcg@3"] == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_graded_relevance_uses_the_grade_as_gain():
    grades = {"a": 3, "b": 1, "c": 0, "d": -1}
    metrics = compute_retrieval_metrics([["b", "c", "a", "d"]], [grades], k_values=[1, 3])

    assert metrics["ndcg@1"] == pytest.approx(1 / 3)
    assert metrics["ndcg@3"] == pytest.approx((1 + 3 / math.log2(4)) / (3 + 1 / math.log2(3)))
    assert metrics["recall@3"] == pytest.approx(1.0)
    assert metrics["mrr@1"] == pytest.approx(1.0)


def test_mean_over_queries_and_per_query_values():
    predictions = [["a", "x"], ["x", "b"], ["x", "y"]]
    references = [{"a"}, {"b"}, {"c"}]

    per_query = compute_per_query_retrieval_metrics(predictions, references, k_values=[2])
    metrics = compute_retrieval_metrics(predictions, references, k_values=[2])

    np.testing.assert_allclose(per_query["mrr@2"], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(per_query["recall@2"], [1.0, 1.0, 0.0])
    assert all(values.shape == (3,) for values in per_query.values())
    assert metrics["mrr@2"] == pytest.approx(0.5)
    assert metrics["recall@2"] == pytest.approx(2 / 3)


def test_k_values_are_sorted_and_deduplicated():
    metrics = compute_retrieval_metrics([["a"]], [{"a"}], k_values=[10, np.int64(1), 10])

    assert list(metrics) == ["recall@1", "recall@10", "ndcg@1", "ndcg@10", "mrr@1", "mrr@10"]


@pytest.mark.parametrize("k_values", [[0], [-1], [1.5], ["5"], [True], []])
def test_bad_k_values_raise(k_values):
    with pytest.raises(ValueError, match="k_values"):
        compute_retrieval_metrics([["a"]], [{"a"}], k_values=k_values)


@pytest.mark.parametrize("reference", [set(), [], {"a": 0, "b": -1}])
def test_query_without_relevant_document_raises_with_its_index(reference):
    with pytest.raises(ValueError, match="Query 1 has no relevant document"):
        compute_retrieval_metrics([["a"], ["a"]], [{"a"}, reference])


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [
        ([["a"]], [{"a"}, {"b"}], "1 predictions but 2 references"),
        ([], [], "no queries"),
        (["abc"], [{"a"}], "must be a list of document ids"),
        ([["a"]], ["a"], "must be a collection of document ids"),
        ([[1, 2]], [{"1"}], "Document ids must be strings"),
        ([["a"]], [{1}], "Document ids must be strings"),
        ([["a"]], [{"a": 0.5}], "Relevance grades must be ints"),
    ],
)
def test_bad_inputs_raise(predictions, references, message):
    with pytest.raises(ValueError, match=message):
        compute_retrieval_metrics(predictions, references)


def random_run(num_queries: int, num_docs: int, max_grade: int, seed: int) -> tuple[list[list[str]], list[dict]]:
    """Random rankings of up to `num_docs` documents per query, with 1 to 5 relevant documents each."""
    rng = random.Random(seed)
    doc_ids = [f"d{index}" for index in range(num_docs)]
    predictions, references = [], []
    for _ in range(num_queries):
        predictions.append(rng.sample(doc_ids, rng.randint(1, num_docs)))
        relevant = rng.sample(doc_ids, rng.randint(1, 5))
        non_relevant = rng.sample([doc_id for doc_id in doc_ids if doc_id not in relevant], 3)
        grades = {doc_id: rng.randint(1, max_grade) for doc_id in relevant}
        references.append({**grades, **dict.fromkeys(non_relevant, 0)})
    return predictions, references


@pytest.mark.parametrize("max_grade", [1, 3], ids=["binary", "graded"])
def test_agrees_with_trec_eval_through_ir_measures(max_grade):
    predictions, references = random_run(num_queries=200, num_docs=30, max_grade=max_grade, seed=max_grade)
    qrels = [
        ir_measures.Qrel(str(query_index), doc_id, grade)
        for query_index, grades in enumerate(references)
        for doc_id, grade in grades.items()
    ]
    # trec_eval ranks by score: strictly decreasing scores keep our order.
    run = [
        ir_measures.ScoredDoc(str(query_index), doc_id, float(len(ranked_doc_ids) - rank))
        for query_index, ranked_doc_ids in enumerate(predictions)
        for rank, doc_id in enumerate(ranked_doc_ids)
    ]
    measures = {
        "recall@1": ir_measures.R @ 1,
        "recall@5": ir_measures.R @ 5,
        "recall@10": ir_measures.R @ 10,
        "ndcg@5": ir_measures.nDCG @ 5,
        "ndcg@10": ir_measures.nDCG @ 10,
        "mrr@10": ir_measures.RR @ 10,
    }
    expected = np.full((len(measures), len(predictions)), np.nan)
    rows = {measure: row for row, measure in enumerate(measures.values())}
    for metric in ir_measures.iter_calc(list(measures.values()), qrels, run):
        expected[rows[metric.measure], int(metric.query_id)] = metric.value

    per_query = compute_per_query_retrieval_metrics(predictions, references, k_values=[1, 5, 10])
    metrics = compute_retrieval_metrics(predictions, references, k_values=[1, 5, 10])

    for row, name in enumerate(measures):
        np.testing.assert_allclose(per_query[name], expected[row], rtol=0, atol=1e-9, err_msg=name)
        assert metrics[name] == pytest.approx(expected[row].mean(), rel=0, abs=1e-9)


def test_relevance_threshold_agrees_with_trec_eval_relevance_level():
    """Recall and MRR count grades >= 2 as relevant, as trec_eval -l 2 does (TREC DL); NDCG stays graded."""
    predictions, references = random_run(num_queries=300, num_docs=30, max_grade=3, seed=11)
    kept = [index for index, grades in enumerate(references) if max(grades.values()) >= 2]
    predictions, references = [predictions[index] for index in kept], [references[index] for index in kept]
    qrels = [
        ir_measures.Qrel(str(query_index), doc_id, grade)
        for query_index, grades in enumerate(references)
        for doc_id, grade in grades.items()
    ]
    run = [
        ir_measures.ScoredDoc(str(query_index), doc_id, float(len(ranked_doc_ids) - rank))
        for query_index, ranked_doc_ids in enumerate(predictions)
        for rank, doc_id in enumerate(ranked_doc_ids)
    ]
    measures = {
        "recall@5": ir_measures.R(rel=2) @ 5,
        "recall@10": ir_measures.R(rel=2) @ 10,
        "mrr@10": ir_measures.RR(rel=2) @ 10,
        "ndcg@10": ir_measures.nDCG @ 10,
    }
    expected = {name: np.full(len(predictions), np.nan) for name in measures}
    names = {measure: name for name, measure in measures.items()}
    for metric in ir_measures.iter_calc(list(measures.values()), qrels, run):
        expected[names[metric.measure]][int(metric.query_id)] = metric.value

    thresholded = compute_per_query_retrieval_metrics(predictions, references, [5, 10], relevance_threshold=2)
    for name in measures:
        np.testing.assert_allclose(thresholded[name], expected[name], rtol=0, atol=1e-9, err_msg=name)
    # The threshold matters here: with every positive grade relevant, recall and MRR differ.
    unthresholded = compute_per_query_retrieval_metrics(predictions, references, [5, 10])
    assert not np.allclose(unthresholded["recall@10"], thresholded["recall@10"])
    assert not np.allclose(unthresholded["mrr@10"], thresholded["mrr@10"])
    np.testing.assert_allclose(unthresholded["ndcg@10"], thresholded["ndcg@10"])


@pytest.mark.parametrize("threshold", [0, 1.5, True])
def test_bad_relevance_threshold_raises(threshold):
    with pytest.raises(ValueError, match="relevance_threshold"):
        compute_retrieval_metrics([["a"]], [{"a": 2}], relevance_threshold=threshold)


def test_query_without_document_at_the_threshold_raises():
    with pytest.raises(ValueError, match="Query 1 has no relevant document of grade >= 2"):
        compute_retrieval_metrics([["a"], ["a"]], [{"a": 2}, {"a": 1}], relevance_threshold=2)


@pytest.fixture(scope="module")
def retrieval_metric(tmp_path_factory):
    offline = pytest.MonkeyPatch()
    offline.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)
    yield load_retrieval_metric(cache_dir=str(tmp_path_factory.mktemp("evaluate_cache")))
    offline.undo()


def test_evaluate_module_equals_the_functions(retrieval_metric):
    predictions, references = random_run(num_queries=50, num_docs=30, max_grade=1, seed=0)
    relevant_doc_ids = [[doc_id for doc_id, grade in grades.items() if grade > 0] for grades in references]
    predictions[0] = ["d1", "d1", *predictions[0]]

    result = retrieval_metric.compute(predictions=predictions, references=relevant_doc_ids, k_values=[1, 10])

    assert result == compute_retrieval_metrics(predictions, relevant_doc_ids, k_values=[1, 10])
    assert list(result) == ["recall@1", "recall@10", "ndcg@1", "ndcg@10", "mrr@1", "mrr@10"]


def test_evaluate_module_default_k_values(retrieval_metric):
    result = retrieval_metric.compute(predictions=[["a", "b"]], references=[["b"]])

    assert result == compute_retrieval_metrics([["a", "b"]], [{"b"}], k_values=[1, 5, 10])


def test_evaluate_module_raises_on_query_without_relevant_document(retrieval_metric):
    with pytest.raises(ValueError, match="Query 1 has no relevant document"):
        retrieval_metric.compute(predictions=[["a"], ["a"]], references=[["a"], []])
