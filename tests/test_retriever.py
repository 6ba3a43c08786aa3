"""LMIndexerRetriever: training, constrained generation, the ID-only head, construction from an indexer, Hub I/O."""

import json
import logging
import math
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import T5_TOKENIZER_VOCAB_SIZE, tiny_indexer_config, tiny_t5_config
from huggingface_hub import HfApi
from safetensors.torch import load_file
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    EncoderDecoderConfig,
    EncoderDecoderModel,
    T5ForConditionalGeneration,
)

from modeling_lmindexer import (
    LMIndexerForSemanticID,
    LMIndexerRetriever,
    LMIndexerRetrieverConfig,
    SemanticIDs,
)
from modeling_lmindexer.semantic_ids import code_groups


QUERIES = [
    "matte red lipstick for evenings",
    "argan oil shampoo for dry hair",
    "blue ballpoint pen pack",
    "heavy duty office stapler",
    "glossy pink lip colour",
    "dandruff control hair wash",
    "fine black liner for drawing",
    "mini stapler in red",
]
DOC_IDS = [f"doc-{index}" for index in range(len(QUERIES))]
# Two documents share their learned codes, so the table gets a collision level: 3 levels of sizes (4, 3, 2).
LEARNED_CODES = [[0, 0], [0, 1], [1, 2], [2, 0], [0, 0], [3, 1], [2, 2], [1, 0]]
LEARNED_SIZES = [4, 3]
TEXT_VOCAB_SIZE = T5_TOKENIZER_VOCAB_SIZE
GENERATE_INPUT_IDS = [[37, 1782, 19, 3, 9, 1], [8, 1365, 13, 5, 1, 0]]
CODE_FILES = {
    "configuration_retriever.py",
    "modeling_retriever.py",
    "trie.py",
    "logits_process.py",
    "semantic_ids.py",
    "id_beam_search.py",
    "output_head.py",
}


def query_ids() -> SemanticIDs:
    return SemanticIDs.from_learned_codes(DOC_IDS, LEARNED_CODES, LEARNED_SIZES)


def random_ids(num_documents: int, codebook_sizes: tuple[int, ...], seed: int) -> SemanticIDs:
    """`num_documents` distinct random IDs: a sparse subset of all code combinations."""
    rng = np.random.default_rng(seed)
    flat = rng.choice(int(np.prod(codebook_sizes)), size=num_documents, replace=False)
    codes = np.stack(np.unravel_index(flat, codebook_sizes), axis=1)
    return SemanticIDs([f"item-{index}" for index in range(num_documents)], codes, codebook_sizes)


def tiny_bert_config(**overrides) -> BertConfig:
    values = dict(
        vocab_size=TEXT_VOCAB_SIZE,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=64,
    )
    values.update(overrides)
    return BertConfig(**values)


def tiny_backbone(kind: str):
    """A tiny random seq2seq backbone over the T5 tokenizer's ids (pad 0, end 1)."""
    if kind == "t5":
        return T5ForConditionalGeneration(tiny_t5_config())
    if kind == "bert2bert":
        config = EncoderDecoderConfig.from_encoder_decoder_configs(
            tiny_bert_config(), tiny_bert_config(is_decoder=True, add_cross_attention=True)
        )
        config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 2, 0, 1
        return EncoderDecoderModel(config=config)
    config = BartConfig(
        vocab_size=TEXT_VOCAB_SIZE,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        dropout=0.0,
        attention_dropout=0.0,
        max_position_embeddings=64,
        scale_embedding=True,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        decoder_start_token_id=2,
    )
    return BartForConditionalGeneration(config)


def tiny_retriever(kind: str = "t5", semantic_ids: SemanticIDs | None = None, seed: int = 0, **config_kwargs):
    torch.manual_seed(seed)
    semantic_ids = query_ids() if semantic_ids is None else semantic_ids
    return LMIndexerRetriever.from_backbone(tiny_backbone(kind), semantic_ids, max_query_length=16, **config_kwargs)


def training_batch(model: LMIndexerRetriever, tokenizer) -> dict[str, torch.Tensor]:
    batch = tokenizer(QUERIES, padding=True, return_tensors="pt")
    labels = torch.tensor([model.id_tokens(doc_id) for doc_id in DOC_IDS])
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": labels}


def train(model: LMIndexerRetriever, batch: dict[str, torch.Tensor], steps: int, lr: float = 1e-2) -> list[float]:
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module")
def trained_retriever(t5_tokenizer) -> LMIndexerRetriever:
    """A tiny T5 retriever overfitted on the eight (query, document) pairs."""
    model = tiny_retriever("t5", dataset_name="synthetic-queries", retrieval_metrics={"recall@1": 1.0})
    train(model, training_batch(model, t5_tokenizer), steps=60)
    return model.eval()


def state_dicts_equal(first: torch.nn.Module, second: torch.nn.Module) -> None:
    first_state, second_state = first.state_dict(), second.state_dict()
    assert first_state.keys() == second_state.keys()
    for name, tensor in first_state.items():
        assert torch.equal(tensor, second_state[name]), name


@pytest.mark.parametrize("kind", ["t5", "bert2bert"])
@pytest.mark.parametrize("id_only_head", [True, False])
def test_forward_shapes_and_loss_decreases(kind, id_only_head, t5_tokenizer):
    model = tiny_retriever(kind, id_only_head=id_only_head)
    batch = training_batch(model, t5_tokenizer)
    outputs = model(**batch)
    assert outputs.logits.shape == (len(QUERIES), model.config.num_levels + 1, TEXT_VOCAB_SIZE + 9)
    assert outputs.loss.ndim == 0
    losses = train(model, batch, steps=8)
    assert losses[-1] < 0.9 * losses[0]


@pytest.mark.parametrize("kind", ["t5", "bert2bert"])
def test_vocabulary_is_text_then_id_tokens(kind):
    model = tiny_retriever(kind)
    assert model.config.text_vocab_size == TEXT_VOCAB_SIZE
    assert model.config.vocab_size == TEXT_VOCAB_SIZE + 4 + 3 + 2
    assert model.get_output_embeddings().weight.shape[0] == model.config.vocab_size
    assert model.backbone.get_decoder().get_input_embeddings().num_embeddings == model.config.vocab_size
    assert model.code_token_ids(1) == [TEXT_VOCAB_SIZE + 4, TEXT_VOCAB_SIZE + 5, TEXT_VOCAB_SIZE + 6]
    assert model.semantic_ids["doc-4"] == (0, 0, 1)
    assert model.id_tokens("doc-4") == [TEXT_VOCAB_SIZE, TEXT_VOCAB_SIZE + 4, TEXT_VOCAB_SIZE + 7 + 1, 1]


def test_overfitted_retriever_ranks_the_right_document_first(trained_retriever, t5_tokenizer):
    rankings = trained_retriever.retrieve(QUERIES, t5_tokenizer, k=3, batch_size=3)
    assert [ranking[0] for ranking in rankings] == DOC_IDS
    assert all(len(ranking) == 3 and len(set(ranking)) == 3 for ranking in rankings)


def test_bert2bert_retriever_learns_to_retrieve(t5_tokenizer):
    model = tiny_retriever("bert2bert")
    train(model, training_batch(model, t5_tokenizer), steps=60)
    assert [ranking[0] for ranking in model.retrieve(QUERIES, t5_tokenizer, k=1)] == DOC_IDS


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["t5", "bert2bert"])
def test_generate_returns_only_indexed_ids(seed, kind, t5_tokenizer):
    semantic_ids = random_ids(40, (6, 5, 4), seed)
    model = tiny_retriever(kind, semantic_ids, seed=seed).eval()
    batch = t5_tokenizer(QUERIES[:4], padding=True, return_tensors="pt")
    valid = set(semantic_ids.doc_ids)
    level_starts = np.array(model.config.level_start_token_ids)

    beams = model.generate(**batch, num_beams=10, num_return_sequences=10)
    assert beams.shape == (40, 2 + model.config.num_levels)
    assert (beams[:, -1] == model.config.eos_token_id).all()
    found = model.doc_ids_from_sequences(beams)
    assert set(found) <= valid
    for query in range(4):
        assert len(set(found[10 * query : 10 * (query + 1)])) == 10

    torch.manual_seed(seed)
    samples = model.generate(**batch, do_sample=True, top_k=5, temperature=2.0, num_return_sequences=10)
    assert set(model.doc_ids_from_sequences(samples)) <= valid
    wide_beams = model.generate(**batch, num_beams=20, num_return_sequences=20)
    assert set(model.doc_ids_from_sequences(wide_beams)) <= valid
    assert set(model.doc_ids_from_sequences(model.generate(**batch))) <= valid

    unconstrained = model.generate(**batch, num_beams=10, num_return_sequences=10, constrain_to_trie=False)
    codes = unconstrained[:, 1:-1].numpy() - level_starts
    assert (codes >= 0).all() and (codes < np.array(semantic_ids.codebook_sizes)).all()  # the ID-only head
    assert None in model.doc_ids_from_sequences(unconstrained)  # without the trie, IDs of no document appear


def assert_decoder_is_causal(model: LMIndexerRetriever, batch: dict[str, torch.Tensor]) -> None:
    """Teacher-forced logits of the first position equal those of decoding the start token alone."""
    decoder_input_ids = model.prepare_decoder_input_ids_from_labels(batch["labels"])
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        teacher_forced = model(**inputs, decoder_input_ids=decoder_input_ids).logits[:, 0]
        first_step = model(**inputs, decoder_input_ids=decoder_input_ids[:, :1]).logits[:, 0]
    torch.testing.assert_close(teacher_forced, first_step)


@pytest.mark.parametrize("kind", ["t5", "bert2bert"])
def test_generation_uses_the_cache_and_matches_uncached_decoding(kind, t5_tokenizer):
    model = tiny_retriever(kind).eval()
    assert_decoder_is_causal(model, training_batch(model, t5_tokenizer))
    batch = t5_tokenizer(QUERIES[:3], padding=True, return_tensors="pt")
    decoder_lengths = []
    handle = model.backbone.register_forward_pre_hook(
        lambda module, args, kwargs: decoder_lengths.append(kwargs["decoder_input_ids"].shape[1]), with_kwargs=True
    )
    cached = model.generate(
        **batch, num_beams=4, num_return_sequences=4, output_scores=True, return_dict_in_generate=True
    )
    handle.remove()
    assert decoder_lengths == [1] * (model.config.num_levels + 1)
    uncached = model.generate(
        **batch, num_beams=4, num_return_sequences=4, use_cache=False, output_scores=True, return_dict_in_generate=True
    )
    assert torch.equal(cached.sequences, uncached.sequences)
    torch.testing.assert_close(cached.sequences_scores, uncached.sequences_scores)


@pytest.mark.parametrize("kind", ["t5", "bert2bert", "bart"])
def test_id_only_head_scores_allowed_tokens_like_the_full_head(kind, t5_tokenizer):
    model = tiny_retriever(kind).eval()
    with torch.no_grad():
        output_bias = getattr(model.get_output_embeddings(), "bias", None)
        for bias in (output_bias, getattr(model.backbone, "final_logits_bias", None)):
            if bias is not None:
                bias.normal_()  # non-zero biases must be applied by the ID-only head too
    batch = training_batch(model, t5_tokenizer)
    with torch.no_grad():
        id_only = model(**batch).logits
        model.config.id_only_head = False
        full = model(**batch).logits
        model.config.id_only_head = True
    for step in range(model.config.num_levels + 1):
        start, end = model.config.id_token_layout.step_token_range(step)
        torch.testing.assert_close(id_only[:, step, start:end], full[:, step, start:end])
        assert torch.isinf(id_only[:, step, :start]).all() and torch.isinf(id_only[:, step, end:]).all()
        id_only_log_probs = id_only[:, step].log_softmax(-1)[:, start:end]
        full_log_probs = full[:, step].log_softmax(-1)[:, start:end]
        difference = id_only_log_probs - full_log_probs
        torch.testing.assert_close(difference, difference[:, :1].expand_as(difference))  # a constant per row

    inputs = t5_tokenizer(QUERIES[:3], padding=True, return_tensors="pt")
    searches = {}
    for id_only_head in (True, False):
        model.config.id_only_head = id_only_head
        # Renormalising over the tokens the trie allows makes both heads score complete IDs the same way.
        searches[id_only_head] = model.generate(
            **inputs,
            num_beams=6,
            num_return_sequences=6,
            renormalize_logits=True,
            output_scores=True,
            return_dict_in_generate=True,
        )
        greedy = model.generate(**inputs)
        searches[(id_only_head, "greedy")] = greedy
    assert torch.equal(searches[True].sequences, searches[False].sequences)
    torch.testing.assert_close(searches[True].sequences_scores, searches[False].sequences_scores)
    assert torch.equal(searches[(True, "greedy")], searches[(False, "greedy")])


def test_labels_that_a_step_cannot_produce_are_refused(t5_tokenizer):
    model = tiny_retriever()
    batch = training_batch(model, t5_tokenizer)
    batch["labels"][2, 1] = model.config.level_start_token_ids[0]
    with pytest.raises(ValueError, match=r"labels\[2, 1\] = 32100 cannot be generated at decoder position 1"):
        model(**batch)
    batch["labels"][2, 1] = -100
    assert torch.isfinite(model(**batch).loss)


def test_from_indexer_copies_backbone_ids_and_codebooks(t5_tokenizer):
    torch.manual_seed(0)
    indexer = LMIndexerForSemanticID(tiny_indexer_config(dataset_name="synthetic-products")).eval()
    indexer_state = {name: tensor.clone() for name, tensor in indexer.state_dict().items()}
    codes = [[index % 4, index % 2] for index in range(20)]  # repeats: a collision level is appended
    indexer.assign_ids([f"text {index}" for index in range(4)], t5_tokenizer)
    semantic_ids = SemanticIDs.from_learned_codes([f"d{index}" for index in range(20)], codes, [8, 6])
    assert semantic_ids.has_collision_code

    model = LMIndexerRetriever.from_indexer(indexer, semantic_ids)
    assert model.semantic_ids == semantic_ids
    assert model.config.dataset_name == "synthetic-products"
    assert model.config.codebook_sizes == [8, 6, semantic_ids.codebook_sizes[2]]
    embeddings = model.backbone.get_input_embeddings().weight
    assert embeddings is model.get_output_embeddings().weight  # T5 ties input and output rows
    for level, size in enumerate([8, 6]):
        start = model.config.level_start_token_ids[level]
        assert torch.equal(embeddings[start : start + size], indexer.codebooks[level].weight)
    collision_rows = embeddings[model.config.level_start_token_ids[2] :]
    assert collision_rows.abs().sum() > 0 and collision_rows.std() < 5 * model.config.initializer_range
    text_rows = embeddings[:TEXT_VOCAB_SIZE]
    assert torch.equal(text_rows, indexer.backbone.get_input_embeddings().weight)
    for name, tensor in indexer.state_dict().items():  # the indexer is unchanged
        assert torch.equal(tensor, indexer_state[name]), name
    assert indexer.backbone.get_input_embeddings().num_embeddings == TEXT_VOCAB_SIZE

    default_model = LMIndexerRetriever.from_indexer(indexer)
    assert default_model.semantic_ids == indexer.semantic_ids


def tiny_bert2bert_config() -> EncoderDecoderConfig:
    """A 1-layer BERT2BERT over the T5 vocabulary: its output head applies BERT's prediction-head transform."""
    bert = BertConfig(
        vocab_size=TEXT_VOCAB_SIZE, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64
    )
    config = EncoderDecoderConfig.from_encoder_decoder_configs(bert, BertConfig(**bert.to_dict()))
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 2, 0, 1
    return config


def indexer_with_kmeans_codebooks(seq2seq_config, documents: list[str], tokenizer) -> LMIndexerForSemanticID:
    """A random 3-level indexer whose codebooks are k-means centres of its own (prefix-centred) representations,
    with IDs assigned to `documents`, so that its codes spread over the codebooks."""
    torch.manual_seed(0)
    indexer = LMIndexerForSemanticID(
        tiny_indexer_config(seq2seq_config=seq2seq_config, num_levels=3, codebook_sizes=[4, 3, 3])
    ).eval()
    batch = tokenizer(documents, padding=True, return_tensors="pt")
    codes = torch.empty(len(documents), 0, dtype=torch.long)
    for level in range(3):
        prefix_codes = codes if level else None
        representations = indexer.encode_level(batch["input_ids"], batch["attention_mask"], level, prefix_codes)
        indexer.initialize_codebook(level, representations, prefix_codes)
        level_codes = indexer.corpus_level_codes(level, representations, prefix_codes)
        codes = torch.cat([codes, level_codes[:, None]], dim=1)
    indexer.assign_ids(documents, tokenizer)
    return indexer


@pytest.mark.parametrize("kind", ["t5", "bert2bert"])
def test_retriever_from_indexer_generates_the_codes_the_indexer_predicts(t5_tokenizer, documents, kind):
    seq2seq_config = tiny_t5_config() if kind == "t5" else tiny_bert2bert_config()
    indexer = indexer_with_kmeans_codebooks(seq2seq_config, documents, t5_tokenizer)
    batch = t5_tokenizer(documents, padding=True, return_tensors="pt")
    indexer_codes = indexer.predict_codes(batch["input_ids"], batch["attention_mask"])
    assigned_codes = torch.tensor(indexer.semantic_ids.codes[:, :3])
    assert torch.equal(indexer_codes, assigned_codes)
    assert len(set(map(tuple, indexer_codes.tolist()))) >= 6  # the codes are spread, not one ID for all

    model = LMIndexerRetriever.from_indexer(indexer).eval()
    assert model.config.score_decoder_states and model.config.center_by_prefix
    level_starts = torch.tensor(model.config.level_start_token_ids[:3])
    for id_beam_search in (True, False):  # the ID decoding loop and GenerationMixin's generic loop
        sequences = model.generate(
            **batch, num_beams=1, do_sample=False, constrain_to_trie=False, id_beam_search=id_beam_search
        )
        assert torch.equal(sequences[:, 1:4] - level_starts, indexer_codes), id_beam_search

    labels = torch.tensor([model.id_tokens(doc_id) for doc_id in indexer.semantic_ids.doc_ids])
    logits = model(**batch, labels=labels).logits  # teacher forcing: the training path centres by the labels' prefix
    assert torch.equal(logits[:, :3].argmax(-1) - level_starts, indexer_codes)

    if kind == "bert2bert":  # scoring BERT's transformed states, uncentred, loses the indexer's codes
        plain = LMIndexerRetriever.from_indexer(indexer, score_decoder_states=False, center_by_prefix=False).eval()
        plain_sequences = plain.generate(**batch, num_beams=1, do_sample=False, constrain_to_trie=False)
        assert not torch.equal(plain_sequences[:, 1:4] - level_starts, indexer_codes)


def test_zero_shot_retriever_returns_each_document_for_its_own_text(t5_tokenizer, documents):
    indexer = indexer_with_kmeans_codebooks(tiny_t5_config(), documents, t5_tokenizer)
    semantic_ids = indexer.semantic_ids
    model = LMIndexerRetriever.from_indexer(indexer).eval()  # no training step
    # One beam (k = 1): this untrained tiny model scores all IDs almost alike, so a wider beam's order means nothing.
    rankings = model.retrieve(documents, t5_tokenizer, k=1)
    # Documents that share their learned codes differ only in the collision code, which no text predicts.
    group_of = dict(zip(semantic_ids.doc_ids, code_groups(semantic_ids.codes[:, :3]).tolist()))
    group_sizes = Counter(group_of.values())
    for doc_id, (top_hit,) in zip(semantic_ids.doc_ids, rankings):
        assert group_of[top_hit] == group_of[doc_id], doc_id
    documents_alone = sum(group_sizes[group] == 1 for group in group_of.values())
    assert documents_alone >= 15  # most documents have an ID of their own: their top hit is the document itself


def test_prefix_centring_needs_the_decoded_prefix(t5_tokenizer, documents):
    indexer = indexer_with_kmeans_codebooks(tiny_t5_config(), documents, t5_tokenizer)
    model = LMIndexerRetriever.from_indexer(indexer).eval()
    head_states = torch.zeros(2, 32)
    with pytest.raises(ValueError, match=r"level 1 needs prefix_codes of shape \(2, 1\), got None"):
        model.step_scores(head_states, 1)
    assert model.step_scores(head_states, 0).shape == (2, 4)
    with pytest.raises(ValueError, match="need id_only_head = True"):
        LMIndexerRetriever.from_indexer(indexer, id_only_head=False, center_by_prefix=True)
    assert not LMIndexerRetriever.from_indexer(indexer, id_only_head=False).config.center_by_prefix


def test_prefix_group_means_round_trip_with_the_retriever(t5_tokenizer, documents, tmp_path):
    indexer = indexer_with_kmeans_codebooks(tiny_t5_config(), documents, t5_tokenizer)
    model = LMIndexerRetriever.from_indexer(indexer).eval()
    model.save_pretrained(tmp_path)
    loaded = LMIndexerRetriever.from_pretrained(tmp_path).eval()
    saved_means, loaded_means = model.prefix_group_means.to_tensors(), loaded.prefix_group_means.to_tensors()
    assert (
        saved_means.keys()
        == loaded_means.keys()
        == {f"level_{t}.{name}" for t in (1, 2) for name in ("keys", "means")}
    )
    for name, tensor in saved_means.items():
        assert torch.equal(tensor, loaded_means[name]), name
    batch = t5_tokenizer(documents[:6], padding=True, return_tensors="pt")
    assert torch.equal(model.generate(**batch, num_beams=4), loaded.generate(**batch, num_beams=4))


def test_from_indexer_refuses_ids_of_other_codebook_sizes():
    indexer = LMIndexerForSemanticID(tiny_indexer_config())
    semantic_ids = SemanticIDs(["a", "b"], [[0, 0], [1, 6]], [8, 7])
    with pytest.raises(ValueError, match="learned level 1 has codebook size 7 but the indexer's level 1 has 6"):
        LMIndexerRetriever.from_indexer(indexer, semantic_ids)
    with pytest.raises(ValueError, match="no semantic IDs"):
        LMIndexerRetriever.from_indexer(indexer)


def test_set_semantic_ids_refuses_other_codebook_sizes_naming_the_level():
    model = tiny_retriever()
    with pytest.raises(ValueError, match="level 1 has codebook size 5 but the retriever's level 1 has 3"):
        model.set_semantic_ids(SemanticIDs(["a"], [[0, 4, 1]], [4, 5, 2]))
    with pytest.raises(ValueError, match="the IDs have 2 levels but the retriever has 3"):
        model.set_semantic_ids(SemanticIDs(["a"], [[0, 1]], [4, 3]))
    fewer_documents = SemanticIDs(["a", "b"], [[0, 1, 0], [3, 2, 1]], [4, 3, 2])
    model.semantic_ids = fewer_documents  # assignment rebuilds the trie
    assert model.semantic_ids is fewer_documents and len(model.trie) == 2


def test_save_and_load_round_trip_bit_exactly(trained_retriever, t5_tokenizer, tmp_path):
    trained_retriever.save_pretrained(tmp_path)
    files = {path.name for path in tmp_path.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "semantic_ids.json", "README.md"} <= files
    assert CODE_FILES <= files
    assert not any(name.endswith(".bin") for name in files)

    loaded = LMIndexerRetriever.from_pretrained(tmp_path).eval()
    state_dicts_equal(trained_retriever, loaded)
    assert set(load_file(tmp_path / "model.safetensors")) <= set(trained_retriever.state_dict())
    assert loaded.semantic_ids == trained_retriever.semantic_ids
    assert len(loaded.trie) == len(trained_retriever.semantic_ids)
    assert loaded.config.to_diff_dict().keys() == trained_retriever.config.to_diff_dict().keys()
    queries = QUERIES[::-1] + ["an unrelated query about garden tools"]
    assert loaded.retrieve(queries, t5_tokenizer, k=5) == trained_retriever.retrieve(queries, t5_tokenizer, k=5)

    card = (tmp_path / "README.md").read_text()
    for expected in ("Codebook sizes: 4, 3, 2", "ID levels: 3", "synthetic-queries", "recall@1", "t5"):
        assert expected in card


def test_auto_classes_return_the_retriever(trained_retriever, tmp_path):
    trained_retriever.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "lmindexer_retriever"
    assert config["auto_map"] == {
        "AutoConfig": "configuration_retriever.LMIndexerRetrieverConfig",
        "AutoModelForSeq2SeqLM": "modeling_retriever.LMIndexerRetriever",
    }
    assert isinstance(AutoConfig.from_pretrained(tmp_path), LMIndexerRetrieverConfig)
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert isinstance(model, LMIndexerRetriever)
    assert model.semantic_ids == trained_retriever.semantic_ids


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_trust_remote_code_loads_without_the_package(trained_retriever, tmp_path):
    trained_retriever.save_pretrained(tmp_path / "saved")
    repo_root = str(Path(__file__).resolve().parents[1])
    script = f"""
import importlib.abc, json, sys
sys.path = [entry for entry in sys.path if entry not in ("", {repo_root!r}) and "__editable__" not in entry]

class BlockPackage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("modeling_lmindexer", "trainers"):
            raise ImportError("the lmindexer package must not be imported here")

sys.meta_path.insert(0, BlockPackage())
import torch
from transformers import AutoModelForSeq2SeqLM
model = AutoModelForSeq2SeqLM.from_pretrained({str(tmp_path / "saved")!r}, trust_remote_code=True).eval()
sequences = model.generate(input_ids=torch.tensor({GENERATE_INPUT_IDS}), num_beams=4, num_return_sequences=4)
print(json.dumps({{"module": type(model).__module__, "doc_ids": model.doc_ids_from_sequences(sequences)}}))
"""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "PYTHONPATH"))}
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    completed = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["module"].startswith("transformers_modules.")
    sequences = trained_retriever.generate(
        input_ids=torch.tensor(GENERATE_INPUT_IDS), num_beams=4, num_return_sequences=4
    )
    assert result["doc_ids"] == trained_retriever.doc_ids_from_sequences(sequences)


def test_bert2bert_round_trip(t5_tokenizer, tmp_path):
    model = tiny_retriever("bert2bert").eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    state_dicts_equal(model, loaded)
    assert_decoder_is_causal(loaded, training_batch(loaded, t5_tokenizer))
    assert loaded.retrieve(QUERIES[:3], t5_tokenizer, k=4) == model.retrieve(QUERIES[:3], t5_tokenizer, k=4)


def test_loading_refuses_ids_of_other_codebook_sizes(trained_retriever, tmp_path):
    trained_retriever.save_pretrained(tmp_path)
    ids = json.loads((tmp_path / "semantic_ids.json").read_text())
    ids["codebook_sizes"][1] = 5
    (tmp_path / "semantic_ids.json").write_text(json.dumps(ids))
    with pytest.raises(ValueError, match="level 1 has codebook size 5 but the retriever's level 1 has 3"):
        LMIndexerRetriever.from_pretrained(tmp_path)


def test_retrieve_refuses_empty_queries_one_string_and_a_retriever_without_ids(trained_retriever, t5_tokenizer):
    with pytest.raises(ValueError, match=r"queries\[1\] = '  ' is empty"):
        trained_retriever.retrieve(["red lipstick", "  ", "pen"], t5_tokenizer)
    with pytest.raises(ValueError, match=r"queries = 'pen' is one string: pass a list of queries, e.g. \['pen'\]"):
        trained_retriever.retrieve("pen", t5_tokenizer)
    with pytest.raises(ValueError, match="The retriever has no semantic IDs"):
        LMIndexerRetriever(trained_retriever.config).retrieve(["pen"], t5_tokenizer)


def test_max_query_length_must_fit_the_encoder_positions():
    backbone = tiny_backbone("bert2bert")
    positions = backbone.config.encoder.max_position_embeddings
    with pytest.raises(ValueError, match=f"max_query_length = {positions + 1} is longer than the encoder's"):
        LMIndexerRetriever.from_backbone(backbone, query_ids(), max_query_length=positions + 1)
    assert LMIndexerRetriever.from_backbone(backbone, query_ids(), max_query_length=positions).config.max_query_length


def test_retrieve_warns_once_about_truncated_queries(trained_retriever, t5_tokenizer, caplog):
    long_query = " ".join(["lipstick"] * 40)
    with caplog.at_level(logging.WARNING, logger="modeling_lmindexer.modeling_retriever"):
        rankings = trained_retriever.retrieve([long_query, "pen", long_query], t5_tokenizer, k=2)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 of 3 queries are longer than max_query_length = 16 tokens and were truncated" in warnings[0]
    assert len(rankings) == 3 and rankings[0] == rankings[2]


def test_retrieve_caps_k_at_the_number_of_documents(trained_retriever, t5_tokenizer, caplog):
    with caplog.at_level(logging.WARNING, logger="modeling_lmindexer.trie"):
        (ranking,) = trained_retriever.retrieve(QUERIES[:1], t5_tokenizer, k=20)
    assert sorted(ranking) == sorted(DOC_IDS)
    assert f"k = 20 is more than the {len(DOC_IDS)} indexed documents: ranking all of them." in caplog.text


def test_ranking_size_caps_k_at_the_ids_and_checks_k_before_the_queries():
    """`recommend` and `retrieve` return `min(k, N)` IDs with `num_beams` beams (default `k`); a bad `k` is named
    before anything else is checked or loaded (here: the tokenizer a retriever saved without one lacks)."""
    model = tiny_retriever()
    assert model._ranking_size(3, None, 4) == (3, 3)
    assert model._ranking_size(3, 10, 4) == (3, 10)
    assert model._ranking_size(20, None, 4) == (len(DOC_IDS), 20)
    assert model._ranking_size(20, 2, 4) == (len(DOC_IDS), len(DOC_IDS))
    with pytest.raises(ValueError, match="k = 0 and batch_size = 4 must both be at least 1"):
        model.retrieve(["a query"], k=0, batch_size=4)


def teacher_forced_log_probs(model: LMIndexerRetriever, tokenizer, query: str, doc_ids: list[str]) -> list[float]:
    """log p(ID tokens, end token | query) of every document, from one forward pass with the IDs as labels."""
    inputs = tokenizer([query] * len(doc_ids), return_tensors="pt")
    labels = torch.tensor([model.id_tokens(doc_id) for doc_id in doc_ids])
    with torch.no_grad():
        logits = model(**inputs, labels=labels).logits
    return logits.log_softmax(-1).gather(-1, labels[..., None]).sum((1, 2)).tolist()


def test_retrieve_scores_are_the_log_probabilities_of_its_ranking(trained_retriever, t5_tokenizer):
    queries = QUERIES[:4] + ["an unrelated query about garden tools"]
    rankings, scores = trained_retriever.retrieve(queries, t5_tokenizer, k=5, batch_size=2, return_scores=True)
    assert rankings == trained_retriever.retrieve(queries, t5_tokenizer, k=5, batch_size=2)
    assert [ranking[0] for ranking in rankings[:4]] == DOC_IDS[:4]
    for query, ranking, query_scores in zip(queries, rankings, scores):
        assert len(ranking) == len(set(ranking)) == len(query_scores) == 5
        assert query_scores == sorted(query_scores, reverse=True)
        assert all(math.isfinite(score) and score <= 0 for score in query_scores)
        expected = teacher_forced_log_probs(trained_retriever, t5_tokenizer, query, ranking)
        torch.testing.assert_close(torch.tensor(query_scores), torch.tensor(expected), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["t5", "bart", "bert2bert"])
@pytest.mark.parametrize("constrain_to_trie", [True, False])
@pytest.mark.parametrize("renormalize", [False, True])
def test_retrieve_ranks_and_scores_as_generate_does(kind, constrain_to_trie, renormalize, t5_tokenizer, monkeypatch):
    model = tiny_retriever(kind, random_ids(60, (6, 5, 4), seed=1)).eval()
    arguments = dict(k=6, num_beams=8, batch_size=3, return_scores=True, constrain_to_trie=constrain_to_trie)
    with monkeypatch.context() as patch:
        patch.setattr(model, "generate", lambda *args, **kwargs: pytest.fail("retrieve ran generate()"))
        # The model's generation config sets the fast search's default, as it sets generate()'s.
        patch.setattr(model.generation_config, "renormalize_logits", renormalize)
        fast_rankings, fast_scores = model.retrieve(QUERIES, t5_tokenizer, **arguments)
    generic_rankings, generic_scores = model.retrieve(
        QUERIES, t5_tokenizer, id_beam_search=False, renormalize_logits=renormalize, **arguments
    )
    assert fast_rankings == generic_rankings
    assert all(fast_rankings)  # without the constraint too, some beams of every query are indexed IDs
    for fast, generic in zip(fast_scores, generic_scores):
        assert fast == sorted(fast, reverse=True)
        torch.testing.assert_close(torch.tensor(fast), torch.tensor(generic))


def test_save_config_and_model_card_writes_what_a_full_save_would(t5_tokenizer, tmp_path):
    model = tiny_retriever("t5", dataset_name="synthetic-queries")
    model.save_pretrained(tmp_path / "updated")
    weights = (tmp_path / "updated" / "model.safetensors").read_bytes()
    model.config.retrieval_metrics = {"recall@10": 0.5}
    model.save_config_and_model_card(tmp_path / "updated")
    model.save_pretrained(tmp_path / "full")
    for name in ("config.json", "README.md"):
        assert (tmp_path / "updated" / name).read_text() == (tmp_path / "full" / name).read_text(), name
    assert "| recall@10 | 0.5 |" in (tmp_path / "updated" / "README.md").read_text()
    assert (tmp_path / "updated" / "model.safetensors").read_bytes() == weights


def test_retrieve_uses_the_tokenizer_saved_next_to_the_model(trained_retriever, t5_tokenizer, tmp_path, monkeypatch):
    trained_retriever.save_pretrained(tmp_path)
    t5_tokenizer.save_pretrained(tmp_path)
    reloaded = LMIndexerRetriever.from_pretrained(tmp_path)
    loaded_from = []
    load_tokenizer = AutoTokenizer.from_pretrained

    def counting_load(source, *args, **kwargs):
        loaded_from.append(source)
        return load_tokenizer(source, *args, **kwargs)

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", counting_load)
    queries = QUERIES[:3] + ["an unrelated query about garden tools"]
    expected = trained_retriever.retrieve(queries, t5_tokenizer, k=4)
    assert reloaded.retrieve(queries, k=4) == expected
    assert reloaded.retrieve(queries, k=4, return_scores=True)[0] == expected
    assert loaded_from == [str(tmp_path)]  # once, from the model's folder


def test_retrieve_without_a_saved_tokenizer_says_how_to_give_one(trained_retriever, tmp_path):
    trained_retriever.save_pretrained(tmp_path)
    reloaded = LMIndexerRetriever.from_pretrained(tmp_path)
    message = rf"No tokenizer could be loaded from '{re.escape(str(tmp_path))}'.*`tokenizer.save_pretrained\(folder\)`"
    with pytest.raises(ValueError, match=message):
        reloaded.retrieve(QUERIES[:1])
    with pytest.raises(ValueError, match="not loaded from a folder, so it has no saved tokenizer: pass `tokenizer=`"):
        trained_retriever.retrieve(QUERIES[:1])


def test_push_to_hub_sends_config_weights_ids_card_and_code(trained_retriever, monkeypatch):
    sent = {}

    def create_repo(self, repo_id, **kwargs):
        return SimpleNamespace(repo_id=repo_id)

    def create_commit(self, repo_id, operations, **kwargs):
        sent["repo_id"] = repo_id
        sent["files"] = {operation.path_in_repo for operation in operations}
        card = next(op for op in operations if op.path_in_repo == "README.md")
        sent["card"] = Path(card.path_or_fileobj).read_text()
        return "https://huggingface.co/org/retriever/commit/0"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    trained_retriever.push_to_hub("org/retriever", tags=["beauty"])
    assert sent["repo_id"] == "org/retriever"
    assert {"config.json", "model.safetensors", "semantic_ids.json", "README.md"} | CODE_FILES <= sent["files"]
    assert "- beauty" in sent["card"] and "- generative-retrieval" in sent["card"]
    assert "Codebook sizes: 4, 3, 2" in sent["card"]


def test_model_card_usage_runs_with_the_tokenizer_saved_next_to_the_model(trained_retriever, t5_tokenizer, tmp_path):
    trained_retriever.save_pretrained(tmp_path)
    t5_tokenizer.save_pretrained(tmp_path)
    card = LMIndexerRetriever.from_pretrained(tmp_path).model_card()
    usage = card.split("```python\n")[1].split("```")[0]
    assert f'AutoModelForSeq2SeqLM.from_pretrained("{tmp_path}")' in usage
    assert 'model.retrieve(["a query"], k=10)' in usage and "return_scores=True" in usage
    namespace = {}
    exec(usage, namespace)
    assert namespace["doc_ids"] == trained_retriever.retrieve(["a query"], t5_tokenizer, k=10)
    assert len(namespace["scores"][0]) == len(namespace["doc_ids"][0]) == len(DOC_IDS)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"codebook_sizes": [4, 1]}, r"codebook_sizes\[1\] = 1"),
        ({"max_query_length": 0}, "max_query_length = 0"),
        ({"constraint_num_threads": 0}, "constraint_num_threads = 0"),
        ({"label_smoothing": 1.0}, "label_smoothing = 1.0"),
        ({"eos_token_id": TEXT_VOCAB_SIZE + 3}, "eos_token_id = 32103 must be a single text token id"),
        ({"text_vocab_size": 100}, "neither text_vocab_size = 100"),
        ({"is_encoder_decoder": False}, "is_encoder_decoder = False"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        LMIndexerRetrieverConfig(seq2seq_config=tiny_t5_config(), **overrides)


@pytest.mark.parametrize("id_only_head", [True, False])
def test_label_smoothing_spreads_over_the_tokens_each_step_can_produce(id_only_head, t5_tokenizer):
    """With the ID-only head the smoothed loss is torch's label smoothing applied to each step's scores alone (the
    level's codes, then the end token); with the full head, to the whole vocabulary. Both are finite."""
    model = tiny_retriever(id_only_head=id_only_head).eval()
    batch = training_batch(model, t5_tokenizer)
    with torch.no_grad():
        plain = model(**batch).loss
        model.config.label_smoothing = 0.2
        outputs = model(**batch)
    labels = batch["labels"]
    layout = model.config.id_token_layout
    expected = []
    for position in range(labels.shape[1]):
        start, end = layout.step_token_range(position) if id_only_head else (0, model.config.vocab_size)
        scores = outputs.logits[:, position, start:end]
        expected.append(
            torch.nn.functional.cross_entropy(
                scores, labels[:, position] - start, label_smoothing=0.2, reduction="sum"
            )
        )
    assert torch.isfinite(outputs.loss)
    assert outputs.loss.item() == pytest.approx(torch.stack(expected).sum().item() / labels.numel(), rel=1e-5)
    assert outputs.loss.item() != pytest.approx(plain.item(), rel=1e-5)
