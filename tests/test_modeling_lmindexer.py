"""Behaviour of LMIndexerForSemanticID on tiny random backbones (T5, BART, BERT2BERT)."""

from collections import Counter

import numpy as np
import pytest
import torch
from conftest import T5_TOKENIZER_VOCAB_SIZE, tiny_indexer_config
from transformers import BartConfig, BertConfig, EncoderDecoderConfig

from modeling_lmindexer import LMIndexerConfig, LMIndexerForSemanticID, SemanticIDs, kmeans_centroids


def make_model(config: LMIndexerConfig, seed: int = 0) -> LMIndexerForSemanticID:
    torch.manual_seed(seed)
    return LMIndexerForSemanticID(config)


def level_one_inputs(batch, seed: int = 0) -> dict:
    """Level-1 (second level) inputs: random prefix codes."""
    generator = torch.Generator().manual_seed(seed)
    batch_size = batch["input_ids"].shape[0]
    return dict(batch, level=1, prefix_codes=torch.randint(0, 8, (batch_size, 1), generator=generator))


@pytest.mark.parametrize("level", [0, 1])
def test_forward_returns_each_loss_and_codes_in_range(tiny_config, batch, level):
    model = make_model(tiny_config)
    inputs = level_one_inputs(batch) if level else batch
    output = model(**inputs)
    batch_size = batch["input_ids"].shape[0]
    assert output.codes.shape == (batch_size,)
    assert output.codes.dtype == torch.long
    assert int(output.codes.min()) >= 0 and int(output.codes.max()) < tiny_config.codebook_sizes[level]
    assert output.code_scores.shape == (batch_size, tiny_config.codebook_sizes[level])
    assert output.level_representation.shape == (batch_size, tiny_config.hidden_size)
    assert output.reconstruction_loss.ndim == 0 and output.contrastive_loss.ndim == 0
    assert (output.code_prediction_loss is not None) == (level == 1)
    parts = [output.reconstruction_loss, output.contrastive_loss]
    if level:
        parts.append(output.code_prediction_loss)
    torch.testing.assert_close(output.loss, sum(parts))


@pytest.mark.parametrize("adds_means", [True, False])
def test_reconstructor_reads_code_vectors_plus_their_prefix_group_mean(batch, adds_means):
    config = tiny_indexer_config(num_levels=3, codebook_sizes=[4, 4, 4], reconstructor_adds_prefix_means=adds_means)
    model = make_model(config).eval()
    prefix_codes = torch.tensor([[0, 1], [0, 1], [1, 2], [1, 2], [2, 0], [2, 0], [3, 3], [3, 3]])
    generator = torch.Generator().manual_seed(1)
    for level in (1, 2):
        model.prefix_group_means.fit(level, torch.randn(8, 32, generator=generator), prefix_codes[:, :level])
    captured = {}
    reconstruct = model.reconstructor.forward

    def capturing_forward(id_vectors, *args, **kwargs):
        captured["id_vectors"] = id_vectors
        return reconstruct(id_vectors, *args, **kwargs)

    model.reconstructor.forward = capturing_forward
    output = model(**batch, level=2, prefix_codes=prefix_codes, losses=["reconstruction"])

    level_one_mean = model.prefix_group_means(1, prefix_codes[:, :1], torch.zeros(8, 32))
    level_two_mean = model.prefix_group_means(2, prefix_codes, torch.zeros(8, 32))
    assert level_one_mean.abs().sum() > 0 and level_two_mean.abs().sum() > 0
    expected = torch.stack(
        [
            model.codebooks[0].weight[prefix_codes[:, 0]],  # level 1 is never centred
            model.codebooks[1].weight[prefix_codes[:, 1]] + (level_one_mean if adds_means else 0),
            model.codebooks[2].weight[output.codes] + (level_two_mean if adds_means else 0),
        ],
        dim=1,
    )
    torch.testing.assert_close(captured["id_vectors"], expected)


def test_continuous_stage_has_no_codes(tiny_config, batch):
    output = make_model(tiny_config)(**batch, quantize=False)
    assert output.codes is None and output.code_scores is None
    assert torch.isfinite(output.loss)


@pytest.mark.parametrize("loss_name", ["reconstruction", "contrastive", "code_prediction"])
def test_one_training_step_lowers_each_loss(tiny_config, batch, loss_name):
    model = make_model(tiny_config)
    inputs = level_one_inputs(batch)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss_value() -> torch.Tensor:
        torch.manual_seed(1234)  # the same reconstruction mask before and after the step
        return model(**inputs, losses=[loss_name]).loss

    before = loss_value()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss_value()
    assert after < before, f"{loss_name} loss did not decrease: {before.item():.4f} -> {after.item():.4f}"


def test_one_training_step_lowers_the_total_loss(tiny_config, batch):
    model = make_model(tiny_config)
    inputs = level_one_inputs(batch)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    torch.manual_seed(7)
    before = model(**inputs)
    before.loss.backward()
    optimizer.step()
    torch.manual_seed(7)
    with torch.no_grad():
        after = model(**inputs)
    assert after.loss < before.loss


def test_gradients_reach_encoder_codebook_and_reconstructor(tiny_config, batch):
    model = make_model(tiny_config)
    model(**level_one_inputs(batch)).loss.backward()

    def has_gradient(prefix: str) -> bool:
        gradients = [p.grad for name, p in model.named_parameters() if name.startswith(prefix)]
        return bool(gradients) and any(g is not None and g.abs().sum() > 0 for g in gradients)

    assert has_gradient("backbone.encoder.")
    assert has_gradient("backbone.decoder.")
    assert has_gradient("codebooks.0.")
    assert has_gradient("codebooks.1.")
    assert has_gradient("reconstructor.")


def test_distillation_loss_is_zero_for_the_same_geometry_and_positive_otherwise(tiny_config):
    model = make_model(tiny_config)
    generator = torch.Generator().manual_seed(0)
    targets = torch.randn(6, 24, generator=generator)
    rotation, _ = torch.linalg.qr(torch.randn(24, 24, generator=generator))
    # Rotated and rescaled targets have the same cosine similarities: nothing to distil, whatever the width.
    assert model.distillation_loss(3.0 * targets @ rotation, targets).item() == pytest.approx(0.0, abs=1e-6)
    assert model.distillation_loss(torch.randn(6, tiny_config.hidden_size, generator=generator), targets) > 0.1


def test_distillation_step_moves_representations_towards_the_targets(tiny_config, batch):
    model = make_model(tiny_config)
    batch_size = batch["input_ids"].shape[0]
    inputs = dict(batch, distillation_targets=torch.randn(batch_size, 7, generator=torch.Generator().manual_seed(1)))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.eval()  # no dropout: the same representations before and after the step
    before = model(**inputs, losses=["distillation"])
    torch.testing.assert_close(before.loss, before.distillation_loss)
    before.loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.encoder.parameters())
    optimizer.step()
    with torch.no_grad():
        after = model(**inputs, losses=["distillation"])
    assert after.loss < before.loss


def test_distillation_needs_targets_for_every_document(tiny_config, batch):
    model = make_model(tiny_config)
    with pytest.raises(ValueError, match="distillation_targets of shape"):
        model(**batch, losses=["distillation"])
    with pytest.raises(ValueError, match="distillation_targets of shape"):
        model(**batch, losses=["distillation"], distillation_targets=torch.zeros(1, 7))


def test_mean_pooled_encoder_states_average_the_encoder_over_real_tokens(tiny_config, batch):
    model = make_model(tiny_config).eval()
    embeddings = model.mean_pooled_encoder_states(batch["input_ids"], batch["attention_mask"])
    first_length = int(batch["attention_mask"][0].sum())
    states = model.backbone.get_encoder()(
        input_ids=batch["input_ids"][:1, :first_length], attention_mask=batch["attention_mask"][:1, :first_length]
    ).last_hidden_state
    torch.testing.assert_close(embeddings[0], states[0].mean(dim=0), atol=1e-5, rtol=1e-5)


def test_kmeans_initialisation_sets_codebook_to_faiss_centres(tiny_config):
    model = make_model(tiny_config)
    representations = torch.randn(200, tiny_config.hidden_size, generator=torch.Generator().manual_seed(0))
    centroids = model.initialize_codebook(0, representations, seed=3)
    # Level 1 is not centred (its only prefix group is the corpus).
    centred = model.center_by_prefix(0, representations, None)
    assert torch.equal(centred, representations)
    expected = kmeans_centroids(centred, 8, num_iterations=10, num_restarts=1, spherical=True, seed=3)
    torch.testing.assert_close(model.codebooks[0].weight.detach(), expected)
    torch.testing.assert_close(centroids, expected)
    # Dot-product code selection agrees with the cosine k-means assignment.
    codes = model.codebooks[0].scores(model.center_by_prefix(0, representations, None)).argmax(-1)
    unit = torch.nn.functional.normalize(centred, dim=-1)
    cosine_assignment = (unit @ torch.nn.functional.normalize(expected, dim=-1).t()).argmax(-1)
    assert torch.equal(codes, cosine_assignment)


def test_kmeans_refuses_fewer_documents_than_codes():
    with pytest.raises(ValueError, match="at least as many documents as codes: got 5 documents for 8 codes"):
        kmeans_centroids(torch.randn(5, 4), 8)


def test_assign_ids_appends_a_collision_code_to_the_predicted_codes(tiny_config, t5_tokenizer, documents):
    model = make_model(tiny_indexer_config(codebook_sizes=[2, 2]))
    doc_ids = [f"doc-{i}" for i in range(40)]
    semantic_ids = model.assign_ids(documents, t5_tokenizer, doc_ids=doc_ids, batch_size=16)
    assert isinstance(semantic_ids, SemanticIDs) and model.semantic_ids is semantic_ids
    assert semantic_ids.doc_ids == doc_ids
    # 40 documents cannot fit in 2 x 2 learned IDs: a collision code is appended.
    assert semantic_ids.num_learned_levels == 2 and semantic_ids.num_levels == 3
    # Uniqueness alone holds by construction; the values can be wrong. The learned levels are the model's greedy
    # codes, and the collision code numbers the documents of each learned group 0, 1, ... in corpus order.
    encoded = t5_tokenizer(documents, padding=True, truncation=True, max_length=32, return_tensors="pt")
    learned = model.predict_codes(encoded["input_ids"], encoded["attention_mask"]).numpy()
    np.testing.assert_array_equal(semantic_ids.codes[:, :2], learned)
    group_sizes = Counter()
    expected_collision_codes = []
    for row in map(tuple, learned.tolist()):
        expected_collision_codes.append(group_sizes[row])
        group_sizes[row] += 1
    np.testing.assert_array_equal(semantic_ids.codes[:, 2], expected_collision_codes)
    shared = sum(size for size in group_sizes.values() if size > 1)
    assert semantic_ids.collision_rate_before_resolution == pytest.approx(shared / 40)
    assert semantic_ids.codebook_sizes == (2, 2, max(group_sizes.values()))


def test_assign_ids_matches_batched_predict_codes(tiny_config, t5_tokenizer, documents):
    model = make_model(tiny_config).eval()
    semantic_ids = model.assign_ids(documents[:10], t5_tokenizer, batch_size=3)
    encoded = t5_tokenizer(documents[:10], padding=True, truncation=True, max_length=32, return_tensors="pt")
    codes = model.predict_codes(encoded["input_ids"], encoded["attention_mask"])
    assert codes.shape == (10, 2)
    np.testing.assert_array_equal(semantic_ids.codes[:, :2], codes.numpy())


@pytest.mark.parametrize(
    "documents, doc_ids, message",
    [
        (["a text", ""], None, "empty"),
        (["a text", 42], None, "int"),
        (["a text", "another"], ["x", "x"], "'x'"),
    ],
)
def test_assign_ids_rejects_bad_documents(tiny_config, t5_tokenizer, documents, doc_ids, message):
    with pytest.raises(ValueError, match=message):
        make_model(tiny_config).assign_ids(documents, t5_tokenizer, doc_ids=doc_ids)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"codebook_sizes": [8, 0]}, r"codebook_sizes\[1\] = 0"),
        ({"codebook_sizes": [1, 8]}, r"codebook_sizes\[0\] = 1"),
        ({"codebook_sizes": [8, 8, 8]}, "3 entries but num_levels = 2"),
        ({"mask_ratios": [0.5, 1.0]}, r"mask_ratios\[1\] = 1.0"),
        ({"reconstructor_num_heads": 5}, "must divide the backbone width 32"),
    ],
)
def test_config_rejects_bad_hyper_parameters(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_indexer_config(**overrides)


def test_forward_rejects_missing_prefix_codes(tiny_config, batch):
    with pytest.raises(ValueError, match=r"Level 1 needs prefix_codes of shape \(8, 1\)"):
        make_model(tiny_config)(**batch, level=1)


def test_forward_rejects_unknown_loss(tiny_config, batch):
    with pytest.raises(ValueError, match="Unknown loss names"):
        make_model(tiny_config)(**batch, losses=["commitment"])


def tiny_bart_config() -> BartConfig:
    """A 1-layer BART over the T5 vocabulary (so that the real T5 tokenizer can index text with it)."""
    return BartConfig(
        vocab_size=T5_TOKENIZER_VOCAB_SIZE,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        dropout=0.0,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
        decoder_start_token_id=0,
    )


def tiny_bert2bert_config() -> EncoderDecoderConfig:
    """A 1-layer BERT2BERT over the T5 vocabulary, padded with the T5 tokenizer's pad token 0."""
    bert = BertConfig(
        vocab_size=T5_TOKENIZER_VOCAB_SIZE,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        pad_token_id=0,
    )
    config = EncoderDecoderConfig.from_encoder_decoder_configs(bert, BertConfig(**bert.to_dict()))
    config.decoder_start_token_id = 2
    config.pad_token_id = 0
    return config


@pytest.mark.parametrize("seq2seq_config", [tiny_bart_config(), tiny_bert2bert_config()], ids=["bart", "bert2bert"])
def test_other_seq2seq_backbones_train_and_assign(seq2seq_config, t5_tokenizer, documents):
    model = make_model(tiny_indexer_config(seq2seq_config=seq2seq_config))
    encoded = t5_tokenizer(documents[:12], padding=True, truncation=True, max_length=32, return_tensors="pt")
    prefix_codes = torch.randint(0, 8, (12, 1), generator=torch.Generator().manual_seed(0))
    output = model(**encoded, level=1, prefix_codes=prefix_codes)
    output.loss.backward()

    # A gradient that exists can still be all zeros (a detached path gives zeros or None): every trained part, the
    # backbone's encoder and decoder included, must get a non-zero one. BART's decoder shares its token embeddings
    # with the encoder, so only the decoder's own parameters tell whether the decoder itself is trained.
    def has_gradient(parameters) -> bool:
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in parameters)

    encoder_parameters = {id(p) for p in model.backbone.get_encoder().parameters()}
    assert has_gradient(model.backbone.get_encoder().parameters())
    assert has_gradient(p for p in model.backbone.get_decoder().parameters() if id(p) not in encoder_parameters)
    assert has_gradient(model.codebooks[0].parameters()) and has_gradient(model.codebooks[1].parameters())
    assert has_gradient(model.reconstructor.parameters())
    # The stored IDs are the codes the model predicts, as for T5 (test_assign_ids_matches_batched_predict_codes).
    model.eval()
    semantic_ids = model.assign_ids(documents[:12], t5_tokenizer, batch_size=5)
    codes = model.predict_codes(encoded["input_ids"], encoded["attention_mask"])
    assert codes.shape == (12, 2)
    np.testing.assert_array_equal(semantic_ids.codes[:, :2], codes.numpy())
