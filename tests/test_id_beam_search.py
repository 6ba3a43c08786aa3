"""id_beam_search: the retriever's own beam search returns what generic beam search returns, with less work."""

import pytest
import torch
from test_retriever import QUERIES, random_ids, tiny_retriever
from transformers import LogitsProcessorList, TopKLogitsWarper

import modeling_lmindexer.id_beam_search as id_beam_search_module


# (number of IDs, codebook sizes, beams, returned sequences): many IDs; fewer level-0 codes than beams and just
# enough IDs; greedy search; a trie of one ID.
SEARCHES = [
    (200, (8, 8, 8), 10, 10),
    (200, (8, 8, 8), 10, 4),
    (5, (4, 3, 2), 6, 5),
    (200, (8, 8, 8), 1, 1),
    (1, (4, 3, 2), 3, 1),
]


@pytest.fixture
def decoder_step_rows(monkeypatch) -> list[int]:
    """The number of rows of every decoder step `id_beam_search` runs."""
    steps_class = id_beam_search_module.EncoderDecoderSteps
    rows, head_states = [], steps_class._head_states

    def counting_head_states(steps, decoder_input_ids):
        rows.append(decoder_input_ids.shape[0])
        return head_states(steps, decoder_input_ids)

    monkeypatch.setattr(steps_class, "_head_states", counting_head_states)
    return rows


@pytest.mark.parametrize("kind", ["t5", "bert2bert", "bart"])
@pytest.mark.parametrize("constrain_to_trie", [True, False])
def test_same_sequences_as_generic_beam_search(kind, constrain_to_trie, t5_tokenizer, decoder_step_rows):
    inputs = t5_tokenizer(QUERIES, padding=True, return_tensors="pt")
    for num_ids, codebook_sizes, num_beams, num_return_sequences in SEARCHES:
        model = tiny_retriever(kind, random_ids(num_ids, codebook_sizes, seed=num_ids)).eval()
        arguments = dict(
            num_beams=num_beams, num_return_sequences=num_return_sequences, constrain_to_trie=constrain_to_trie
        )
        decoder_step_rows.clear()
        with torch.no_grad():
            fast = model.generate(**inputs, **arguments)
            assert decoder_step_rows == [len(QUERIES)] + [len(QUERIES) * num_beams] * 2  # used, one first step
            generic = model.generate(**inputs, id_beam_search=False, **arguments)
        assert torch.equal(fast, generic), (num_ids, codebook_sizes, num_beams)
        if constrain_to_trie:
            doc_ids = model.doc_ids_from_sequences(fast)
            assert None not in doc_ids
            for query in range(len(QUERIES)):
                ranked = doc_ids[query * num_return_sequences : (query + 1) * num_return_sequences]
                assert len(set(ranked)) == len(ranked)


def test_renormalized_logits_rank_as_in_the_generic_loop(t5_tokenizer, decoder_step_rows):
    # 40 IDs of 8 x 8 x 8 codes: most codes leave the trie, so renormalising over the allowed ones reorders beams.
    model = tiny_retriever("t5", random_ids(40, (8, 8, 8), seed=3)).eval()
    inputs = t5_tokenizer(QUERIES, padding=True, return_tensors="pt")
    arguments = dict(num_beams=10, num_return_sequences=10)
    with torch.no_grad():
        fast = model.generate(**inputs, renormalize_logits=True, **arguments)
        assert decoder_step_rows  # decoded by id_beam_search
        generic = model.generate(**inputs, renormalize_logits=True, id_beam_search=False, **arguments)
        plain = model.generate(**inputs, **arguments)
    assert torch.equal(fast, generic)
    assert not torch.equal(fast, plain)


def test_random_decodes_return_distinct_valid_ids(t5_tokenizer):
    inputs = t5_tokenizer(QUERIES, padding=True, return_tensors="pt")
    generator = torch.Generator().manual_seed(0)
    num_checked = 0
    for seed in range(12):
        codebook_sizes = tuple(int(size) for size in torch.randint(2, 9, (3,), generator=generator))
        num_ids = int(torch.randint(1, 2 * codebook_sizes[0] * codebook_sizes[1], (1,), generator=generator))
        num_ids = min(num_ids, codebook_sizes[0] * codebook_sizes[1] * codebook_sizes[2])
        model = tiny_retriever("t5", random_ids(num_ids, codebook_sizes, seed=seed), seed=seed).eval()
        num_beams = int(torch.randint(1, 21, (1,), generator=generator))
        num_return_sequences = min(num_beams, num_ids)
        with torch.no_grad():
            sequences = model.generate(**inputs, num_beams=num_beams, num_return_sequences=num_return_sequences)
        assert sequences.shape == (len(QUERIES) * num_return_sequences, 2 + model.config.num_levels)
        assert (sequences[:, -1] == model.config.eos_token_id).all()
        doc_ids = model.doc_ids_from_sequences(sequences)
        assert None not in doc_ids
        for query in range(len(QUERIES)):
            ranked = doc_ids[query * num_return_sequences : (query + 1) * num_return_sequences]
            assert len(set(ranked)) == num_return_sequences
        num_checked += len(doc_ids)
    assert num_checked > 500


def test_requests_it_does_not_cover_use_the_generic_loop(t5_tokenizer, decoder_step_rows):
    model = tiny_retriever("t5", random_ids(200, (8, 8, 8), seed=0)).eval()
    inputs = t5_tokenizer(QUERIES[:2], padding=True, return_tensors="pt")
    requests = [
        dict(do_sample=True, num_beams=4, num_return_sequences=4),
        dict(num_beams=4, output_scores=True, return_dict_in_generate=True),
        dict(num_beams=4, repetition_penalty=1.3),
        dict(num_beams=4, logits_processor=LogitsProcessorList([TopKLogitsWarper(3)])),
        dict(num_beams=4, max_new_tokens=2),
    ]
    with torch.no_grad():
        for request in requests:
            outputs = model.generate(**inputs, **request)
            sequences = outputs.sequences if isinstance(outputs, dict) else outputs
            assert sequences.shape[1] == 1 + request.get("max_new_tokens", model.config.num_levels + 1)
        assert decoder_step_rows == []
        model.config.id_only_head = False
        model.generate(**inputs, num_beams=4)
        assert decoder_step_rows == []


def test_tokens_a_text_backbone_forces_are_dropped(t5_tokenizer):
    model = tiny_retriever("bart", random_ids(200, (8, 8, 8), seed=0)).eval()
    assert model.backbone.config.forced_eos_token_id == 2  # BART's default, a text token
    assert model.generation_config.forced_eos_token_id is None
    assert model.generation_config.forced_bos_token_id is None
    inputs = t5_tokenizer(QUERIES[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        outputs = model.generate(
            **inputs, num_beams=5, num_return_sequences=5, output_scores=True, return_dict_in_generate=True
        )
    assert torch.isfinite(outputs.sequences_scores).all() and (outputs.sequences_scores < 0).all()
    assert (outputs.sequences[:, -1] == model.config.eos_token_id).all()
