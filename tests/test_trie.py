import time

import numpy as np
import pytest
import torch

from modeling_lmindexer import IDTrie, SemanticIDs


def random_unique_codes(num_ids: int, codebook_sizes: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """`num_ids` distinct random IDs `(num_ids, num_levels)`, in random row order."""
    rng = np.random.default_rng(seed)
    flat_ids = rng.choice(int(np.prod(codebook_sizes)), size=num_ids, replace=False)
    return np.stack(np.unravel_index(flat_ids, codebook_sizes), axis=1).astype(np.int64)


def brute_force_allowed(codes: np.ndarray, prefix: tuple[int, ...], codebook_size: int) -> np.ndarray:
    allowed = np.zeros(codebook_size, dtype=bool)
    for row in codes.tolist():
        if tuple(row[: len(prefix)]) == prefix:
            allowed[row[len(prefix)]] = True
    return allowed


def check_against_brute_force(trie: IDTrie, codes: np.ndarray) -> None:
    """`allowed_next` and `node_index` of every prefix of every ID equal a Python set computation."""
    for depth in range(trie.num_levels + 1):
        prefixes = sorted({tuple(row[:depth]) for row in codes.tolist()})
        nodes = trie.node_index(torch.tensor(prefixes, dtype=torch.long).reshape(len(prefixes), depth))
        assert nodes.tolist() == list(range(len(prefixes)))
        assert trie.num_nodes(depth) == len(prefixes)
        if depth == trie.num_levels:
            continue
        allowed = trie.allowed_next(torch.tensor(prefixes, dtype=torch.long).reshape(len(prefixes), depth))
        assert allowed.dtype == torch.bool and allowed.shape == (len(prefixes), trie.codebook_sizes[depth])
        expected = np.stack([brute_force_allowed(codes, prefix, trie.codebook_sizes[depth]) for prefix in prefixes])
        np.testing.assert_array_equal(allowed.numpy(), expected)


@pytest.mark.parametrize(
    "num_ids, codebook_sizes", [(60, (4, 5, 3)), (300, (8, 8, 8)), (17, (3, 40)), (120, (2, 3, 4, 5)), (50, (50,))]
)
def test_allowed_next_matches_brute_force_for_every_prefix(num_ids, codebook_sizes):
    codes = random_unique_codes(num_ids, codebook_sizes)
    trie = IDTrie.from_codes(codes, codebook_sizes)

    assert len(trie) == num_ids
    assert trie.num_levels == len(codebook_sizes)
    assert trie.codebook_sizes == codebook_sizes
    check_against_brute_force(trie, codes)


def test_invalid_prefixes_have_no_node_and_allow_nothing():
    codebook_sizes = (4, 5, 3)
    codes = random_unique_codes(20, codebook_sizes, seed=1)
    trie = IDTrie.from_codes(codes, codebook_sizes)
    rng = np.random.default_rng(2)
    for depth in (1, 2, 3):
        valid_prefixes = {tuple(row[:depth]) for row in codes.tolist()}
        candidates = rng.integers(-2, 7, size=(400, depth))
        invalid = np.array([row for row in candidates.tolist() if tuple(row) not in valid_prefixes])
        assert len(invalid) > 100
        assert (trie.node_index(torch.from_numpy(invalid)) == -1).all()
        if depth < trie.num_levels:
            assert not trie.allowed_next(torch.from_numpy(invalid)).any()


def test_contains_and_doc_rows():
    codebook_sizes = (6, 6, 6)
    codes = random_unique_codes(100, codebook_sizes, seed=3)
    trie = IDTrie.from_codes(codes, codebook_sizes)
    assert trie.contains(torch.from_numpy(codes)).all()
    assert trie.doc_rows(torch.from_numpy(codes)).tolist() == list(range(100))

    known = {tuple(row) for row in codes.tolist()}
    others = np.array([row for row in random_unique_codes(216, codebook_sizes).tolist() if tuple(row) not in known])
    others = np.concatenate([others, [[6, 0, 0], [0, -1, 0]]])
    assert not trie.contains(torch.from_numpy(others)).any()
    assert (trie.doc_rows(torch.from_numpy(others)) == -1).all()


def test_a_trie_of_one_id():
    trie = IDTrie.from_codes([[3, 0, 1]], [4, 2, 2])
    assert len(trie) == 1
    assert trie.allowed_next(torch.zeros(2, 0, dtype=torch.long)).tolist() == [[False, False, False, True]] * 2
    assert trie.allowed_next(torch.tensor([[3], [2]])).tolist() == [[True, False], [False, False]]
    assert trie.allowed_next(torch.tensor([[3, 0], [3, 1]])).tolist() == [[False, True], [False, False]]
    assert trie.doc_rows(torch.tensor([[3, 0, 1], [3, 0, 0]])).tolist() == [0, -1]


def test_full_code_space():
    codebook_sizes = (3, 4, 2)
    codes = random_unique_codes(24, codebook_sizes)
    trie = IDTrie.from_codes(codes, codebook_sizes)
    for depth in range(3):
        prefixes = torch.from_numpy(codes[:, :depth].copy())
        assert trie.allowed_next(prefixes).all()


def test_collision_level_from_semantic_ids():
    learned = np.array([[0, 1], [0, 1], [2, 3], [0, 1], [1, 1], [2, 3]])
    semantic_ids = SemanticIDs.from_learned_codes([f"doc{row}" for row in range(6)], learned, [3, 4])
    assert semantic_ids.codebook_sizes == (3, 4, 3)

    trie = IDTrie.from_semantic_ids(semantic_ids)

    assert trie.codebook_sizes == (3, 4, 3)
    assert trie.doc_rows(torch.tensor(semantic_ids.codes)).tolist() == list(range(6))
    assert trie.allowed_next(torch.tensor([[0, 1], [2, 3], [1, 1]])).tolist() == [
        [True, True, True],
        [True, True, False],
        [True, False, False],
    ]
    check_against_brute_force(trie, semantic_ids.codes)


def test_repr():
    trie = IDTrie.from_codes([[0, 1, 2]], [4, 5, 3])
    assert "num_ids=1" in repr(trie)


def test_tensors_are_non_persistent_buffers_that_move_with_the_trie():
    trie = IDTrie.from_codes(random_unique_codes(30, (4, 4, 4)), (4, 4, 4))
    buffers = dict(trie.named_buffers())
    assert len(buffers) == 2 * trie.num_levels + 1
    assert trie.state_dict() == {}
    assert trie.nbytes == sum(buffer.numel() * buffer.element_size() for buffer in buffers.values())

    moved = trie.to("meta")

    assert all(buffer.device.type == "meta" for buffer in moved.buffers())


def test_memory_per_id_at_one_hundred_thousand_ids():
    codebook_sizes = (256, 256, 256)
    codes = random_unique_codes(100_000, codebook_sizes)

    trie = IDTrie.from_codes(codes, codebook_sizes)

    # Measured when written: 7.58 bytes per ID (a uint8 code and an int32 document row per leaf, plus 51,277 level-2
    # nodes with a code and an int32 child offset each). The bound leaves about a byte of slack, so that a trie with
    # doubled memory (15.2), int64 leaf rows (11.6), int64 child offsets (9.6) or int16 codes (9.1) fails.
    assert trie.bytes_per_id <= 8.5
    assert trie.node_codes_2.dtype == torch.uint8
    sample = torch.from_numpy(codes[::97])
    assert trie.doc_rows(sample).tolist() == list(range(0, 100_000, 97))


def test_memory_and_build_time_at_one_million_ids():
    codebook_sizes = (256, 256, 256)
    codes = random_unique_codes(1_000_000, codebook_sizes)

    start = time.perf_counter()
    trie = IDTrie.from_codes(codes, codebook_sizes)
    build_seconds = time.perf_counter() - start

    # Measured when written: 5.33 bytes per ID (all 65,536 level-2 prefixes are used, so the leaves dominate: 1 + 4
    # bytes each). A trie with doubled memory (10.7), int64 leaf rows (9.3) or int16 codes (6.4) fails the bound.
    assert trie.bytes_per_id <= 6
    assert build_seconds < 10
    sample = torch.from_numpy(codes[::9973])
    assert trie.doc_rows(sample).tolist() == list(range(0, 1_000_000, 9973))


def test_dtypes_grow_with_the_codebook_size():
    trie = IDTrie.from_codes([[0, 299, 70_000], [1, 0, 0]], [2, 300, 70_001])
    assert [trie.node_codes_0.dtype, trie.node_codes_1.dtype, trie.node_codes_2.dtype] == [
        torch.uint8,
        torch.int16,
        torch.int32,
    ]
    assert trie.contains(torch.tensor([[0, 299, 70_000], [0, 299, 0]])).tolist() == [True, False]


@pytest.mark.parametrize(
    "codes, codebook_sizes, message",
    [
        ([1, 2, 3], [4, 4, 4], "2-D"),
        (np.zeros((0, 3), dtype=np.int64), [4, 4, 4], "empty"),
        ([[0.5, 1.0]], [4, 4], "integers"),
        ([[0, 1]], [4, 4, 4], "columns"),
        ([[0, 4]], [4, 4], r"codes\[0, 1\] = 4 is out of range"),
        ([[0, 1], [-1, 1]], [4, 4], r"codes\[1, 0\] = -1 is out of range"),
        ([[0, 1], [2, 3], [1, 1], [2, 3]], [4, 4], r"rows 1 and 3 of codes are the same ID \(2, 3\)"),
        ([[0, 1]], [4, 1], "at least 2 codes"),
        ([[0, 1]], [], "codebook_sizes is empty"),
    ],
)
def test_bad_codes_are_refused(codes, codebook_sizes, message):
    with pytest.raises(ValueError, match=message):
        IDTrie.from_codes(codes, codebook_sizes)


def test_semantic_ids_with_shared_ids_are_refused():
    semantic_ids = SemanticIDs(["a", "b", "c"], [[0, 1], [1, 1], [0, 1]], [2, 2])
    with pytest.raises(ValueError, match="rows 0 and 2"):
        IDTrie.from_semantic_ids(semantic_ids)


def test_bad_queries_are_refused():
    trie = IDTrie.from_codes([[0, 1, 2]], [4, 5, 3])
    with pytest.raises(ValueError, match="prefix length 3"):
        trie.allowed_next(torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="prefix length 4"):
        trie.node_index(torch.tensor([[0, 1, 2, 0]]))
    with pytest.raises(ValueError, match="integer tensor"):
        trie.allowed_next(torch.tensor([[0.0]]))
    with pytest.raises(ValueError, match="integer tensor"):
        trie.node_index(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"shape \(batch_size, 3\)"):
        trie.contains(torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match=r"shape \(batch_size, 3\)"):
        trie.doc_rows(torch.tensor([[0, 1, 2, 3]]))
