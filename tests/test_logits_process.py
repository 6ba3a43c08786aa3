import math

import numpy as np
import pytest
import torch
from transformers import LogitsProcessorList, T5Config, T5ForConditionalGeneration

from modeling_lmindexer import IDTrie, TrieConstrainedLogitsProcessor
from modeling_lmindexer.dict_trie import DictTrie


TEXT_VOCAB_SIZE = 100
CODEBOOK_SIZES = (8, 6, 4)
NUM_LEVELS = len(CODEBOOK_SIZES)
LEVEL_STARTS = TEXT_VOCAB_SIZE + np.cumsum((0, *CODEBOOK_SIZES[:-1]))
PAD_TOKEN_ID = 0
EOS_TOKEN_ID = 1
VOCAB_SIZE = TEXT_VOCAB_SIZE + sum(CODEBOOK_SIZES)


def random_unique_codes(num_ids: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    flat_ids = rng.choice(int(np.prod(CODEBOOK_SIZES)), size=num_ids, replace=False)
    return np.stack(np.unravel_index(flat_ids, CODEBOOK_SIZES), axis=1).astype(np.int64)


def id_tokens(codes: np.ndarray) -> torch.LongTensor:
    """The ID tokens `(num_ids, num_levels)` of codes `(num_ids, num_levels)` in the retriever's token layout."""
    return torch.from_numpy(codes + LEVEL_STARTS)


def returned_codes(sequences: torch.LongTensor) -> np.ndarray:
    """The codes `(num_sequences, num_levels)` of generated sequences: drop the start token, keep `num_levels`."""
    return sequences[:, 1 : 1 + NUM_LEVELS].numpy() - LEVEL_STARTS


def make_processor(codes: np.ndarray, pad_token_id: int | None = PAD_TOKEN_ID, **kwargs):
    trie = IDTrie.from_codes(codes, CODEBOOK_SIZES)
    return TrieConstrainedLogitsProcessor(trie, TEXT_VOCAB_SIZE, EOS_TOKEN_ID, pad_token_id, **kwargs)


def make_dict_trie(codes: np.ndarray, pad_token_id: int | None = PAD_TOKEN_ID, **kwargs) -> DictTrie:
    return DictTrie(codes, CODEBOOK_SIZES, TEXT_VOCAB_SIZE, EOS_TOKEN_ID, pad_token_id, **kwargs)


@pytest.fixture(scope="module")
def model() -> T5ForConditionalGeneration:
    config = T5Config(
        vocab_size=VOCAB_SIZE,
        d_model=32,
        d_ff=64,
        num_layers=1,
        num_heads=2,
        d_kv=16,
        dropout_rate=0.0,
        decoder_start_token_id=0,
        pad_token_id=PAD_TOKEN_ID,
        eos_token_id=EOS_TOKEN_ID,
    )
    torch.manual_seed(0)
    return T5ForConditionalGeneration(config).eval()


def random_queries(batch_size: int, seed: int) -> torch.LongTensor:
    return torch.randint(2, TEXT_VOCAB_SIZE, (batch_size, 7), generator=torch.Generator().manual_seed(seed))


def constrained_generate(model, codes: np.ndarray, input_ids: torch.LongTensor, **kwargs):
    processor = make_processor(codes)
    return model.generate(
        input_ids=input_ids,
        max_new_tokens=NUM_LEVELS + 1,
        logits_processor=LogitsProcessorList([processor]),
        return_dict_in_generate=True,
        output_scores=True,
        **kwargs,
    )


def assert_valid_ids(sequences: torch.LongTensor, codes: np.ndarray) -> None:
    """Every sequence is a start token, a valid ID, then EOS."""
    valid_ids = {tuple(row) for row in codes.tolist()}
    assert all(tuple(row) in valid_ids for row in returned_codes(sequences).tolist())
    assert (sequences[:, 1 + NUM_LEVELS] == EOS_TOKEN_ID).all()


def test_the_unconstrained_model_rarely_produces_valid_ids(model):
    codes = random_unique_codes(60, seed=0)
    sequences = model.generate(input_ids=random_queries(16, 0), max_new_tokens=NUM_LEVELS + 1, do_sample=False)
    valid_ids = {tuple(row) for row in codes.tolist()}
    generated_codes = returned_codes(sequences[:, : 1 + NUM_LEVELS]).tolist()

    assert sum(tuple(row) in valid_ids for row in generated_codes) < 4


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_beam_search_returns_distinct_valid_ids(model, seed):
    codes = random_unique_codes(60, seed)
    output = constrained_generate(model, codes, random_queries(16, seed), num_beams=10, num_return_sequences=10)

    assert output.sequences.shape == (160, 2 + NUM_LEVELS)
    assert_valid_ids(output.sequences, codes)
    for query_codes in returned_codes(output.sequences).reshape(16, 10, NUM_LEVELS):
        assert len({tuple(row) for row in query_codes.tolist()}) == 10


def test_beam_search_with_twenty_beams(model):
    codes = random_unique_codes(60, seed=4)
    output = constrained_generate(model, codes, random_queries(16, 4), num_beams=20, num_return_sequences=20)

    assert_valid_ids(output.sequences, codes)
    for query_codes in returned_codes(output.sequences).reshape(16, 20, NUM_LEVELS):
        assert len({tuple(row) for row in query_codes.tolist()}) == 20


def test_beam_search_with_fewer_ids_than_beams_returns_only_valid_ids(model):
    codes = random_unique_codes(4, seed=5)
    output = constrained_generate(model, codes, random_queries(16, 5), num_beams=10, num_return_sequences=10)

    assert_valid_ids(output.sequences, codes)
    # The best 4 beams are the 4 IDs; the remaining slots repeat IDs with scores near -1e9 (beam search's filler).
    best_codes = returned_codes(output.sequences).reshape(16, 10, NUM_LEVELS)[:, :4]
    for query_codes in best_codes:
        assert {tuple(row) for row in query_codes.tolist()} == {tuple(row) for row in codes.tolist()}
    assert (output.sequences_scores.reshape(16, 10)[:, :4] > -1e3).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_matches_the_prefix_allowed_tokens_fn_baseline(model, seed):
    codes = random_unique_codes(40, seed)
    input_ids = random_queries(16, seed)
    output = constrained_generate(model, codes, input_ids, num_beams=10, num_return_sequences=10)
    baseline = model.generate(
        input_ids=input_ids,
        max_new_tokens=NUM_LEVELS + 1,
        num_beams=10,
        num_return_sequences=10,
        prefix_allowed_tokens_fn=make_dict_trie(codes).prefix_allowed_tokens_fn,
        return_dict_in_generate=True,
        output_scores=True,
    )

    torch.testing.assert_close(output.sequences, baseline.sequences, rtol=0, atol=0)
    torch.testing.assert_close(output.sequences_scores, baseline.sequences_scores)


def test_greedy_search_matches_the_baseline(model):
    codes = random_unique_codes(30, seed=6)
    input_ids = random_queries(32, 6)
    output = constrained_generate(model, codes, input_ids)
    baseline = model.generate(
        input_ids=input_ids,
        max_new_tokens=NUM_LEVELS + 1,
        prefix_allowed_tokens_fn=make_dict_trie(codes).prefix_allowed_tokens_fn,
    )

    assert_valid_ids(output.sequences, codes)
    torch.testing.assert_close(output.sequences, baseline, rtol=0, atol=0)


@pytest.mark.parametrize(
    "seed, sampling_options",
    [(0, {}), (1, {"top_k": 0}), (2, {"temperature": 2.0, "top_k": 0}), (3, {"top_p": 0.9, "temperature": 0.7})],
)
def test_sampling_returns_valid_ids(model, seed, sampling_options):
    codes = random_unique_codes(50, seed)
    torch.manual_seed(seed)
    output = constrained_generate(
        model, codes, random_queries(16, seed), do_sample=True, num_return_sequences=16, **sampling_options
    )

    assert output.sequences.shape == (256, 2 + NUM_LEVELS)
    assert_valid_ids(output.sequences, codes)


def test_beam_sampling_returns_valid_ids(model):
    codes = random_unique_codes(50, seed=7)
    torch.manual_seed(7)
    output = constrained_generate(
        model, codes, random_queries(16, 7), do_sample=True, num_beams=5, num_return_sequences=5
    )

    assert_valid_ids(output.sequences, codes)


def test_a_trie_of_one_id_always_returns_it(model):
    codes = np.array([[5, 2, 3]])
    input_ids = random_queries(8, 8)
    beam_output = constrained_generate(model, codes, input_ids, num_beams=10, num_return_sequences=10)
    greedy_output = constrained_generate(model, codes, input_ids)
    torch.manual_seed(8)
    sampled_output = constrained_generate(model, codes, input_ids, do_sample=True, num_return_sequences=4)

    for output in (beam_output, greedy_output, sampled_output):
        assert (returned_codes(output.sequences) == codes).all()
        assert (output.sequences[:, 1 + NUM_LEVELS] == EOS_TOKEN_ID).all()


def allowed_tokens(processed_scores: torch.Tensor) -> list[list[int]]:
    return [torch.isfinite(row).nonzero().flatten().tolist() for row in processed_scores]


def test_rows_after_an_id_allow_only_eos_then_pad():
    codes = random_unique_codes(20, seed=9)
    tokens = id_tokens(codes[:3])
    start = torch.zeros(3, 1, dtype=torch.long)
    complete = torch.cat([start, tokens], dim=1)
    finished = torch.cat([complete, torch.full((3, 1), EOS_TOKEN_ID)], dim=1)
    padded = torch.cat([finished, torch.full((3, 2), PAD_TOKEN_ID)], dim=1)
    scores = torch.randn(3, VOCAB_SIZE)

    assert allowed_tokens(make_processor(codes)(complete, scores)) == [[EOS_TOKEN_ID]] * 3
    assert allowed_tokens(make_processor(codes)(finished, scores)) == [[PAD_TOKEN_ID]] * 3
    assert allowed_tokens(make_processor(codes)(padded, scores)) == [[PAD_TOKEN_ID]] * 3
    assert allowed_tokens(make_processor(codes, pad_token_id=None)(finished, scores)) == [[EOS_TOKEN_ID]] * 3


def test_prefixes_allow_exactly_their_continuations_with_unchanged_scores():
    codes = np.array([[0, 1, 2], [0, 1, 3], [0, 4, 0], [7, 5, 1]])
    processor = make_processor(codes)
    scores = torch.randn(2, VOCAB_SIZE + 28)
    input_ids = torch.tensor(
        [[0, LEVEL_STARTS[0] + 0, LEVEL_STARTS[1] + 1], [0, LEVEL_STARTS[0] + 7, LEVEL_STARTS[1] + 5]]
    )

    processed = processor(input_ids, scores)

    assert allowed_tokens(processed) == [[LEVEL_STARTS[2] + 2, LEVEL_STARTS[2] + 3], [LEVEL_STARTS[2] + 1]]
    allowed = torch.isfinite(processed)
    torch.testing.assert_close(processed[allowed], scores[allowed])
    first_step = processor(torch.zeros(2, 1, dtype=torch.long), scores)
    assert allowed_tokens(first_step) == [[LEVEL_STARTS[0] + 0, LEVEL_STARTS[0] + 7]] * 2


def test_prefixes_outside_the_trie_may_only_end():
    codes = np.array([[0, 1, 2], [3, 4, 1]])
    input_ids = torch.tensor(
        [
            [0, 50, LEVEL_STARTS[1] + 1],  # a text token instead of a level-0 token
            [0, LEVEL_STARTS[1] + 1, LEVEL_STARTS[1] + 1],  # a level-1 token at level 0
            [0, LEVEL_STARTS[0] + 0, LEVEL_STARTS[1] + 4],  # a valid code that no ID continues with
            [0, VOCAB_SIZE - 1, LEVEL_STARTS[1] + 1],  # the last token of the vocabulary
        ]
    )

    processed = make_processor(codes)(input_ids, torch.randn(4, VOCAB_SIZE))

    assert allowed_tokens(processed) == [[EOS_TOKEN_ID]] * 4


def test_no_row_is_ever_fully_masked_even_after_another_processor():
    codes = random_unique_codes(20, seed=10)
    complete = torch.cat([torch.zeros(2, 1, dtype=torch.long), id_tokens(codes[:2])], dim=1)
    scores = torch.randn(2, VOCAB_SIZE)
    scores[:, EOS_TOKEN_ID] = -math.inf  # e.g. a minimum length processor

    processed = make_processor(codes)(complete, scores)

    assert allowed_tokens(processed) == [[EOS_TOKEN_ID]] * 2
    assert (processed[:, EOS_TOKEN_ID] == 0).all()


def random_rows(codes: np.ndarray, num_generated: int, rng: np.random.Generator) -> torch.LongTensor:
    """Rows of `1 + num_generated` tokens: valid ID prefixes, corrupted prefixes, and finished rows."""
    rows = []
    for _ in range(64):
        ids = id_tokens(codes[rng.integers(len(codes))][None])[0].tolist()
        generated = (ids + [EOS_TOKEN_ID] + [PAD_TOKEN_ID] * num_generated)[:num_generated]
        kind = rng.integers(3)
        if kind == 1 and num_generated > 0:
            generated[rng.integers(num_generated)] = int(rng.integers(VOCAB_SIZE))
        elif kind == 2 and num_generated > 0:
            generated[rng.integers(num_generated)] = int(rng.choice([EOS_TOKEN_ID, PAD_TOKEN_ID]))
        rows.append([0, *generated])
    return torch.tensor(rows)


@pytest.mark.parametrize("pad_token_id", [PAD_TOKEN_ID, None, EOS_TOKEN_ID])
def test_processor_allows_the_same_tokens_as_the_dict_trie_baseline(pad_token_id):
    rng = np.random.default_rng(11)
    codes = random_unique_codes(25, seed=11)
    processor = make_processor(codes, pad_token_id=pad_token_id)
    dict_trie = make_dict_trie(codes, pad_token_id=pad_token_id)
    for num_generated in range(NUM_LEVELS + 3):
        input_ids = random_rows(codes, num_generated, rng)

        processed = processor(input_ids, torch.randn(len(input_ids), VOCAB_SIZE))

        expected = [sorted(dict_trie.prefix_allowed_tokens_fn(0, row)) for row in input_ids]
        assert allowed_tokens(processed) == expected


def test_prompt_tokens_before_the_id_are_ignored():
    codes = np.array([[2, 3, 1]])
    processor = make_processor(codes, decoder_start_length=3)
    prompt = torch.tensor([[17, EOS_TOKEN_ID, PAD_TOKEN_ID]])
    scores = torch.randn(1, VOCAB_SIZE)

    assert allowed_tokens(processor(prompt, scores)) == [[LEVEL_STARTS[0] + 2]]
    complete = torch.cat([prompt, id_tokens(codes)], dim=1)
    assert allowed_tokens(processor(complete, scores)) == [[EOS_TOKEN_ID]]


def test_bad_arguments_are_refused():
    trie = IDTrie.from_codes([[0, 1, 2]], CODEBOOK_SIZES)
    with pytest.raises(ValueError, match="eos_token_id = 100 must be a text token"):
        TrieConstrainedLogitsProcessor(trie, TEXT_VOCAB_SIZE, eos_token_id=TEXT_VOCAB_SIZE)
    with pytest.raises(ValueError, match="pad_token_id = -1 must be a text token"):
        TrieConstrainedLogitsProcessor(trie, TEXT_VOCAB_SIZE, EOS_TOKEN_ID, pad_token_id=-1)
    with pytest.raises(ValueError, match="decoder_start_length"):
        TrieConstrainedLogitsProcessor(trie, TEXT_VOCAB_SIZE, EOS_TOKEN_ID, decoder_start_length=-1)
    with pytest.raises(ValueError, match="columns"):
        DictTrie([[0, 1]], CODEBOOK_SIZES, TEXT_VOCAB_SIZE, EOS_TOKEN_ID)

    processor = TrieConstrainedLogitsProcessor(trie, TEXT_VOCAB_SIZE, EOS_TOKEN_ID, decoder_start_length=2)
    with pytest.raises(ValueError, match="scores cover 110 tokens but the ID tokens end at 118"):
        processor(torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 110))
    with pytest.raises(ValueError, match="fewer than decoder_start_length = 2"):
        processor(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, VOCAB_SIZE))


def test_masking_runs_on_its_own_thread_count_and_restores_torch_s(monkeypatch):
    codes = random_unique_codes(20, seed=0)
    input_ids = torch.cat([torch.zeros(4, 1, dtype=torch.long), id_tokens(codes[:4, :1])], dim=1)
    scores = torch.randn(4, VOCAB_SIZE)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        expected = make_processor(codes, num_threads=None)(input_ids, scores)
        seen_threads = []
        original_mask = TrieConstrainedLogitsProcessor._mask

        def recording_mask(self, *args):
            seen_threads.append(torch.get_num_threads())
            return original_mask(self, *args)

        monkeypatch.setattr(TrieConstrainedLogitsProcessor, "_mask", recording_mask)
        single = make_processor(codes)(input_ids, scores)
        kept = make_processor(codes, num_threads=None)(input_ids, scores)
        assert seen_threads == [1, 2] and torch.get_num_threads() == 2
        assert torch.equal(single, expected) and torch.equal(kept, expected)
    finally:
        torch.set_num_threads(previous)
    with pytest.raises(ValueError, match="num_threads = 0"):
        make_processor(codes, num_threads=0)
