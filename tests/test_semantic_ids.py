"""Tests of the semantic ID table: collision resolution, validation, tokens, statistics and storage."""

import json
import math

import numpy as np
import pytest
import torch

from modeling_lmindexer.semantic_ids import SemanticIDs, validate_codebook_sizes, validate_corpus


DOC_IDS = ["d0", "d1", "d2", "d3", "d4", "d5"]
# d0, d2 and d5 share (1, 2); d1 and d4 share (0, 3); d3 is alone.
LEARNED_CODES = np.array([[1, 2], [0, 3], [1, 2], [2, 0], [0, 3], [1, 2]])


@pytest.fixture
def collided() -> SemanticIDs:
    return SemanticIDs.from_learned_codes(DOC_IDS, LEARNED_CODES, [4, 5])


@pytest.fixture
def unique() -> SemanticIDs:
    return SemanticIDs(["x", "y", "z"], [[0, 1, 2], [3, 0, 1], [0, 2, 2]], [4, 3, 5])


def test_from_learned_codes_numbers_colliding_documents_in_corpus_order(collided):
    assert collided.num_learned_levels == 2 and collided.num_levels == 3 and collided.has_collision_code
    assert collided.codebook_sizes == (4, 5, 3)
    np.testing.assert_array_equal(collided.codes[:, :2], LEARNED_CODES)
    np.testing.assert_array_equal(collided.codes[:, 2], [0, 0, 1, 0, 1, 2])
    assert collided.collision_rate_before_resolution == pytest.approx(5 / 6)
    assert len({codes for _, codes in collided}) == len(DOC_IDS)
    assert collided["d5"] == (1, 2, 2)
    assert collided.doc_id_for((0, 3, 1)) == "d4"


def test_collision_level_has_at_least_two_codes_and_accepts_tensors():
    semantic_ids = SemanticIDs.from_learned_codes(["a", "b", "c"], torch.tensor([[1], [1], [0]]), [2])
    assert semantic_ids.codebook_sizes == (2, 2)
    assert semantic_ids.to_dict() == {"a": (1, 0), "b": (1, 1), "c": (0, 0)}


def test_no_collision_appends_no_level():
    semantic_ids = SemanticIDs.from_learned_codes(["a", "b"], np.array([[0, 1], [1, 0]]), [2, 2])
    assert semantic_ids.num_levels == semantic_ids.num_learned_levels == 2
    assert not semantic_ids.has_collision_code
    assert semantic_ids.collision_rate_before_resolution == 0.0


def test_extend_numbers_new_collisions_after_the_group_and_keeps_every_indexed_id(collided):
    # n0 joins the (1, 2) group of d0, d2, d5; n1 and n2 share the new prefix (3, 3); n3 is alone.
    extended = collided.extend(["n0", "n1", "n2", "n3"], [[1, 2], [3, 3], [3, 3], [2, 1]])
    assert extended.doc_ids == [*DOC_IDS, "n0", "n1", "n2", "n3"]
    np.testing.assert_array_equal(extended.codes[: len(DOC_IDS)], collided.codes)
    assert [extended[doc_id] for doc_id in ("n0", "n1", "n2", "n3")] == [(1, 2, 3), (3, 3, 0), (3, 3, 1), (2, 1, 0)]
    # The (1, 2) group outgrew the collision codebook of 3 codes.
    assert extended.codebook_sizes == (4, 5, 4) and extended.num_learned_levels == 2
    assert extended.collision_rate_before_resolution == pytest.approx(8 / 10)
    # The table itself is unchanged (immutable).
    assert len(collided) == len(DOC_IDS) and "n0" not in collided


def test_extend_without_collisions_adds_no_level(unique):
    extended = unique.extend(["w"], [[1, 1, 1]])
    assert extended.num_levels == 3 and not extended.has_collision_code
    assert extended["w"] == (1, 1, 1) and extended.codebook_sizes == unique.codebook_sizes


def test_extend_appends_a_collision_level_when_a_new_document_collides(unique, caplog):
    with caplog.at_level("WARNING"):
        extended = unique.extend(["w"], [[0, 1, 2]])
    assert "a collision level is appended" in caplog.text
    assert extended.num_learned_levels == 3 and extended.codebook_sizes == (4, 3, 5, 2)
    assert extended.to_dict() == {"x": (0, 1, 2, 0), "y": (3, 0, 1, 0), "z": (0, 2, 2, 0), "w": (0, 1, 2, 1)}


@pytest.mark.parametrize(
    "doc_ids, codes, message",
    [
        (["d3"], [[0, 0]], "doc id 'd3' \\(new document 0\\) is already in the table"),
        (["n", "n"], [[0, 0], [0, 1]], "duplicate doc id 'n'"),
        (["n"], [[0, 5]], "code 5 of document 'n' at level 1 is out of range"),
        (["n"], [[0, 0, 0]], "3 columns but codebook_sizes has 2 entries"),
    ],
)
def test_extend_refuses_known_ids_duplicates_and_bad_codes(collided, doc_ids, codes, message):
    with pytest.raises(ValueError, match=message):
        collided.extend(doc_ids, codes)


def test_table_access(unique):
    assert len(unique) == 3 and "y" in unique and "w" not in unique
    assert unique.doc_ids == ["x", "y", "z"]
    assert unique["y"] == (3, 0, 1)
    assert list(unique) == [("x", (0, 1, 2)), ("y", (3, 0, 1)), ("z", (0, 2, 2))]
    assert unique.doc_id_for(np.array([0, 2, 2])) == "z"
    with pytest.raises(KeyError, match="unknown doc id 'w'"):
        unique["w"]
    with pytest.raises(KeyError, match=r"no document has the semantic ID \(1, 1, 1\)"):
        unique.doc_id_for((1, 1, 1))


def test_codes_are_read_only(unique):
    with pytest.raises(ValueError, match="read-only"):
        unique.codes[0, 0] = 1
    with pytest.raises(ValueError):
        unique.codes.flags.writeable = True


def test_collision_rate_is_computed_from_learned_levels():
    codes = [[1, 2, 0], [1, 2, 1], [0, 2, 0]]
    assert SemanticIDs(["a", "b", "c"], codes, [2, 3, 2], 2).collision_rate_before_resolution == pytest.approx(2 / 3)
    assert SemanticIDs(["a", "b", "c"], codes, [2, 3, 2]).collision_rate_before_resolution == 0.0


def test_equality(unique):
    assert unique == SemanticIDs(["x", "y", "z"], np.array(unique.codes), [4, 3, 5])
    assert unique != SemanticIDs(["x", "y", "q"], np.array(unique.codes), [4, 3, 5])
    assert unique != SemanticIDs(["x", "y", "z"], np.array(unique.codes), [4, 3, 6])
    assert unique != SemanticIDs(["x", "y", "z"], np.array(unique.codes), [4, 3, 5], num_learned_levels=2)


@pytest.mark.parametrize(
    ("doc_ids", "codes", "codebook_sizes", "message"),
    [
        ([], np.zeros((0, 2), dtype=int), [2, 2], "at least one document"),
        (["a", 7], [[0], [1]], [2], r"doc_ids\[1\] must be a str, got int"),
        (["a", "b", "a"], [[0], [1], [1]], [2], "duplicate doc id 'a' at positions 0 and 2"),
        (["a"], [0], [2], r"2-D .* got shape \(1,\)"),
        (["a"], [[0], [1]], [2], "codes has 2 rows but there are 1 doc ids"),
        (["a"], [[0, 1]], [2], "codes has 2 columns but codebook_sizes has 1 entries"),
        (["a", "b"], [[0, 1], [1]], [2, 2], "rectangular"),
        (["a"], [[0.5]], [2], "codes must be integers, got dtype float64"),
        (["a"], [[0]], [], "codebook_sizes is empty"),
        (["a"], [[0, 0]], [3, 0], r"codebook_sizes\[1\] = 0: every level needs at least 2 codes"),
        (["a"], [[0, 0]], [3, 1], r"codebook_sizes\[1\] = 1: every level needs at least 2 codes"),
        (["a"], [[0]], [2.0], r"codebook_sizes\[0\] must be an int, got float"),
        (["a"], [[0] * 27], [2] * 27, "at most 26 levels"),
        (
            ["a", "b"],
            [[0, 1], [1, 6]],
            [2, 6],
            "code 6 of document 'b' at level 1 is out of range for codebook size 6",
        ),
        (["a", "b"], [[0, -1], [1, 0]], [2, 6], "code -1 of document 'a' at level 1 is out of range"),
    ],
)
def test_constructor_names_the_offending_entry(doc_ids, codes, codebook_sizes, message):
    with pytest.raises(ValueError, match=message):
        SemanticIDs(doc_ids, codes, codebook_sizes)


def test_duplicate_ids_despite_collision_level_are_refused():
    with pytest.raises(ValueError, match="documents 'b' and 'c' have the same semantic ID \\(1, 0\\)"):
        SemanticIDs(["a", "b", "c"], [[0, 0], [1, 0], [1, 0]], [2, 2], num_learned_levels=1)


@pytest.mark.parametrize("num_learned_levels", [0, 1, 4])
def test_num_learned_levels_must_leave_at_most_one_collision_level(num_learned_levels):
    with pytest.raises(ValueError, match=f"num_learned_levels = {num_learned_levels} does not fit"):
        SemanticIDs(["a"], [[0, 0, 0]], [2, 2, 2], num_learned_levels)


@pytest.mark.parametrize(
    ("doc_ids", "texts", "message"),
    [
        (["a", "b"], ["x"], "got 2 doc ids but 1 texts"),
        ([], [], "the corpus is empty"),
        (["a", 3], ["x", "y"], r"doc_ids\[1\] must be a str, got int"),
        (["a", "b", "a"], ["x", "y", "z"], "duplicate doc id 'a' at positions 0 and 2"),
        (["a", "b"], ["x", None], r"text of document 'b' \(position 1\) must be a str, got NoneType"),
        (["a", "b"], ["x", " \n\t"], r"text of document 'b' \(position 1\) is empty"),
        (["a", "b"], ["", "y"], r"text of document 'a' \(position 0\) is empty"),
    ],
)
def test_validate_corpus_names_the_offending_entry(doc_ids, texts, message):
    with pytest.raises(ValueError, match=message):
        validate_corpus(doc_ids, texts)


def test_validate_corpus_accepts_a_valid_corpus():
    validate_corpus(["a", "b"], ["some text", "more text"])


def test_validate_codebook_sizes():
    validate_codebook_sizes([2, np.int64(256)])
    with pytest.raises(ValueError, match=r"codebook_sizes\[0\] must be an int, got bool"):
        validate_codebook_sizes([True])


def test_tokens_and_parsing_round_trip(collided):
    assert SemanticIDs.level_token(0, 12) == "<a_12>"
    assert collided.level_token(25, 0) == "<z_0>"
    assert collided.id_tokens("d2") == ["<a_1>", "<b_2>", "<c_1>"]
    assert collided.id_string("d2") == "<a_1><b_2><c_1>"
    for doc_id, codes in collided:
        assert collided.parse_id_string(collided.id_string(doc_id)) == codes
    tokens = collided.all_id_tokens()
    assert len(tokens) == len(set(tokens)) == 4 + 5 + 3
    assert tokens[:5] == ["<a_0>", "<a_1>", "<a_2>", "<a_3>", "<b_0>"] and tokens[-1] == "<c_2>"


@pytest.mark.parametrize(
    ("level", "code", "message"),
    [
        (26, 0, "level 26 is out of range for a semantic ID with 26 levels"),
        (-1, 0, "level -1 is out of range"),
        (0, -3, "code -3 at level 0 must be a non-negative int"),
    ],
)
def test_level_token_refuses_invalid_levels_and_codes(level, code, message):
    with pytest.raises(ValueError, match=message):
        SemanticIDs.level_token(level, code)


@pytest.mark.parametrize(
    ("id_string", "message"),
    [
        ("", "malformed semantic ID ''"),
        ("<a_1><b_2>", "expected the levels 'abc' in order, got 'ab'"),
        ("<a_1><c_2><b_0>", "got 'acb'"),
        ("<a_1><b_2><c_0><d_0>", "got 'abcd'"),
        ("<a_1> <b_2><c_0>", "malformed semantic ID '<a_1> <b_2><c_0>'"),
        ("<a_01><b_2><c_0>", "malformed"),
        ("<a_1><b_2><c_3>", "code 3 at level 2 is out of range for codebook size 3"),
    ],
)
def test_parse_id_string_names_malformed_input(collided, id_string, message):
    with pytest.raises(ValueError, match=message):
        collided.parse_id_string(id_string)


def test_code_usage_perplexity():
    num_codes = 8
    codes = np.stack([np.arange(4 * num_codes) % num_codes, np.full(4 * num_codes, 3)], axis=1)
    semantic_ids = SemanticIDs([str(i) for i in range(len(codes))], codes, [num_codes, 5])
    assert semantic_ids.code_usage_perplexity(0) == pytest.approx(num_codes)
    assert semantic_ids.code_usage_perplexity(1) == pytest.approx(1.0)
    skewed = SemanticIDs(["a", "b", "c", "d"], [[0], [0], [0], [1]], [2])
    assert (
        1
        < skewed.code_usage_perplexity(0)
        == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))
    )
    with pytest.raises(ValueError, match="level 2 is out of range"):
        semantic_ids.code_usage_perplexity(2)


def test_level_prefix_groups(collided):
    np.testing.assert_array_equal(collided.level_prefix_groups(0), np.zeros(6))
    first_level = collided.level_prefix_groups(1)
    np.testing.assert_array_equal(first_level, [1, 0, 1, 2, 0, 1])
    two_levels = collided.level_prefix_groups(2)
    assert [two_levels[0] == two_levels[i] for i in range(6)] == [True, False, True, False, False, True]
    assert len(set(collided.level_prefix_groups(3).tolist())) == 6
    with pytest.raises(ValueError, match="level 4 is out of range"):
        collided.level_prefix_groups(4)


def test_save_load_round_trip(collided, tmp_path):
    path = tmp_path / "semantic_ids.json"
    collided.save(path)
    content = json.loads(path.read_text())
    assert content["format"] == "lmindexer-semantic-ids" and content["version"] == 1
    assert content["codebook_sizes"] == [4, 5, 3] and content["num_learned_levels"] == 2
    loaded = SemanticIDs.load(path)
    assert loaded == collided
    assert loaded.collision_rate_before_resolution == collided.collision_rate_before_resolution
    assert loaded.to_dict() == collided.to_dict()


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda content: "{not json", "invalid semantic IDs file"),
        (lambda content: {**content, "format": "other"}, "not a 'lmindexer-semantic-ids' JSON object"),
        (lambda content: {**content, "version": 2}, "unsupported version 2"),
        (
            lambda content: {key: value for key, value in content.items() if key != "codes"},
            r"missing fields \['codes'\]",
        ),
        (lambda content: {**content, "doc_ids": "d0"}, "'doc_ids' must be a list, got str"),
        (lambda content: {**content, "codebook_sizes": [4, 1, 3]}, r"codebook_sizes\[1\] = 1"),
        (lambda content: {**content, "doc_ids": ["d0"] * 6}, "duplicate doc id 'd0' at positions 0 and 1"),
        (lambda content: {**content, "codes": [[1, 2, 0]] * 6}, "documents 'd0' and 'd1' have the same semantic ID"),
        (lambda content: {**content, "codes": content["codes"][:5]}, "codes has 5 rows but there are 6 doc ids"),
        (lambda content: {**content, "collision_rate_before_resolution": 2.0}, r"must be a number in \[0, 1\]"),
    ],
)
def test_load_names_file_and_problem_of_corrupted_files(collided, tmp_path, corrupt, message):
    path = tmp_path / "semantic_ids.json"
    collided.save(path)
    corrupted = corrupt(json.loads(path.read_text()))
    path.write_text(corrupted if isinstance(corrupted, str) else json.dumps(corrupted))
    with pytest.raises(ValueError, match=message) as error:
        SemanticIDs.load(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("as_mapping", [False, True])
def test_jsonl_round_trip(collided, tmp_path, as_mapping):
    path = tmp_path / "semantic_ids.jsonl"
    texts = [f"text of {doc_id} ü" for doc_id in DOC_IDS]
    collided.to_jsonl(path, texts=dict(zip(DOC_IDS, texts)) if as_mapping else texts)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert records[2] == {"doc_id": "d2", "codes": [1, 2, 1], "id": "<a_1><b_2><c_1>", "text": "text of d2 ü"}
    loaded = SemanticIDs.from_jsonl(path, collided.codebook_sizes, num_learned_levels=2)
    assert loaded == collided
    assert loaded.collision_rate_before_resolution == collided.collision_rate_before_resolution


def test_jsonl_without_texts(unique, tmp_path):
    path = tmp_path / "semantic_ids.jsonl"
    unique.to_jsonl(path)
    assert "text" not in json.loads(path.read_text().splitlines()[0])
    assert SemanticIDs.from_jsonl(path, unique.codebook_sizes) == unique


def test_to_jsonl_checks_texts(unique, tmp_path):
    with pytest.raises(ValueError, match="texts has no entry for doc id 'z'"):
        unique.to_jsonl(tmp_path / "ids.jsonl", texts={"x": "a", "y": "b"})
    with pytest.raises(ValueError, match="got 2 texts for 3 documents"):
        unique.to_jsonl(tmp_path / "ids.jsonl", texts=["a", "b"])


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{oops", "Expecting property name"),
        ('["y", [3, 0, 1]]', "expected a JSON object with 'doc_id' and 'codes'"),
        ('{"doc_id": 5, "codes": [3, 0, 1]}', "'doc_id' must be a str, got int"),
        ('{"doc_id": "y", "codes": [3, 0]}', "'codes' of 'y' must be a list of 3 ints"),
        ('{"doc_id": "y", "codes": [3, 0, "1"]}', "'codes' of 'y' must be a list of 3 ints"),
        ('{"doc_id": "y", "codes": [3, 0, 1], "id": "<a_3><b_0><c_2>"}', "does not match its codes"),
    ],
)
def test_from_jsonl_names_file_and_line(unique, tmp_path, bad_line, message):
    path = tmp_path / "semantic_ids.jsonl"
    unique.to_jsonl(path)
    lines = path.read_text().splitlines()
    lines[1] = bad_line
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message) as error:
        SemanticIDs.from_jsonl(path, unique.codebook_sizes)
    assert f"{path}, line 2" in str(error.value)


def test_from_jsonl_names_file_on_table_errors(unique, tmp_path):
    path = tmp_path / "semantic_ids.jsonl"
    unique.to_jsonl(path)
    with pytest.raises(ValueError, match="code 2 of document 'x' at level 2 is out of range") as error:
        SemanticIDs.from_jsonl(path, [4, 3, 2])
    assert str(path) in str(error.value)


def test_a_million_ids_build_quickly():
    num_documents = 10**6
    doc_ids = [f"doc-{position}" for position in range(num_documents)]
    learned_codes = np.random.default_rng(0).integers(0, 32, size=(num_documents, 3))
    semantic_ids = SemanticIDs.from_learned_codes(doc_ids, learned_codes, [32, 32, 32])
    assert semantic_ids.has_collision_code and len(semantic_ids) == num_documents
    assert semantic_ids.collision_rate_before_resolution > 0.9
    assert semantic_ids[doc_ids[-1]][:3] == tuple(learned_codes[-1].tolist())
