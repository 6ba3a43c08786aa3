"""LMIndexer generative recommender configuration."""

import copy

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .configuration_lmindexer import DEFAULT_CODEBOOK_SIZE
from .id_tokens import IDTokenLayout, check_share
from .semantic_ids import validate_codebook_sizes


# The vocabulary's special tokens, before the ID tokens.
PAD_TOKEN_ID, BOS_TOKEN_ID, EOS_TOKEN_ID = 0, 1, 2
NUM_SPECIAL_TOKENS = 3
# A small Llama trained from scratch: its cost per step is dominated by the sequence, not by a large vocabulary.
DEFAULT_DECODER_CONFIG = {
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 1024,
    "attention_dropout": 0.1,
    "tie_word_embeddings": True,
}


@strict
class LMIndexerRecommenderConfig(PreTrainedConfig):
    r"""
    Configuration of [`LMIndexerRecommender`], the decoder-only generative recommender that reads a user's items as
    semantic-ID tokens and generates the ID of the next item, decoded with beam search constrained to the catalogue.

    The vocabulary is 3 special tokens (`pad_token_id` 0, `bos_token_id` 1, `eos_token_id` 2) followed by one token per
    code per level (its [`IDTokenLayout`], `config.id_token_layout`). A user's sequence is `bos_token_id` then the
    `num_levels` ID tokens of every item, oldest first; position `p` predicts an ID token of level `p % num_levels`,
    scored against that level's codes only.

    Args:
        decoder_config (`PreTrainedConfig` or `dict`, *optional*):
            Configuration of the causal language model: any `AutoModelForCausalLM` config (Llama, Qwen2, GPT-2, ...),
            trained from scratch; its vocabulary size is set to the recommender's. Defaults to a Llama of width 128
            with 4 layers and tied input and output embeddings; a `dict` without `model_type` overrides fields of
            that default (not of a full-size Llama).
        codebook_sizes (`list[int]`, *optional*):
            Number of codes of every ID level, the collision level included. Defaults to 256 codes for 3 levels.
        max_history_length (`int`, *optional*, defaults to 20):
            Most recent items of a history the model reads; training cuts longer sequences into windows of
            `max_history_length + 1` items.
        constrain_to_trie (`bool`, *optional*, defaults to `True`):
            Let `generate()` produce only the IDs of catalogue items unless told otherwise per call.
        id_beam_search (`bool`, *optional*, defaults to `True`):
            Decode beam and greedy search requests with [`id_beam_search`]: the history runs once per user rather than
            once per beam, and each step scores one level's codes. Requests it does not cover use the generic loop.
        label_smoothing (`float`, *optional*, defaults to 0.0):
            Share of every label's probability that the loss spreads evenly over the codes of its level (the tokens
            its position can produce), in `[0, 1)`; [`LMIndexerRecommenderTrainer`] sets it from
            `TrainingArguments.label_smoothing_factor`.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialisation of the weights.
        dataset_name (`str`, *optional*):
            Name of the dataset the recommender was trained on (shown in the model card).
        id_scheme (`str`, *optional*):
            Where the IDs come from, e.g. `"lmindexer"` or `"kmeans"` (shown in the model card).
        recommendation_metrics (`dict`, *optional*):
            Evaluation results, e.g. `{"recall@10": 0.06}` (shown in the model card).

    Example:

    ```python
    >>> from transformers import LlamaConfig
    >>> from modeling_lmindexer import LMIndexerRecommender, LMIndexerRecommenderConfig

    >>> config = LMIndexerRecommenderConfig(decoder_config=LlamaConfig(hidden_size=64, num_hidden_layers=2,
    ...     num_attention_heads=2, intermediate_size=128), codebook_sizes=[64, 64, 4])
    >>> model = LMIndexerRecommender(config)
    ```"""

    model_type = "lmindexer_recommender"
    sub_configs_defaults = {
        "decoder_config": SubConfigSpec(
            config_class=AutoConfig, model_type="llama", init_kwargs=DEFAULT_DECODER_CONFIG
        )
    }

    decoder_config: PreTrainedConfig | dict | None = None
    codebook_sizes: list[int] | None = None
    max_history_length: int = 20
    constrain_to_trie: bool = True
    id_beam_search: bool = True
    label_smoothing: float = 0.0
    initializer_range: float = 0.02
    pad_token_id: int | None = PAD_TOKEN_ID
    bos_token_id: int | None = BOS_TOKEN_ID
    eos_token_id: int | None = EOS_TOKEN_ID
    dataset_name: str | None = None
    id_scheme: str | None = None
    recommendation_metrics: dict | None = None

    def __post_init__(self, **kwargs):
        if isinstance(self.decoder_config, PreTrainedConfig):
            # A copy: a config passed in may be shared with other models, whose vocabulary is not this one.
            self.decoder_config = copy.deepcopy(self.decoder_config)
        elif isinstance(self.decoder_config, dict) and "model_type" not in self.decoder_config:
            self.decoder_config = {**DEFAULT_DECODER_CONFIG, **self.decoder_config}
        if self.codebook_sizes is None:
            self.codebook_sizes = [DEFAULT_CODEBOOK_SIZE] * 3
        self.codebook_sizes = list(self.codebook_sizes)
        validate_codebook_sizes(self.codebook_sizes)
        super().__post_init__(**kwargs)
        check_share("label_smoothing", self.label_smoothing)
        if self.max_history_length < 1:
            raise ValueError(f"max_history_length = {self.max_history_length}: a history needs at least one item.")
        for name, expected in (("pad_token_id", 0), ("bos_token_id", 1), ("eos_token_id", 2)):
            if getattr(self, name) != expected:
                raise ValueError(
                    f"{name} = {getattr(self, name)!r}: the recommender's special tokens are fixed (pad 0, bos 1, "
                    "eos 2), before the ID tokens."
                )
        self.decoder_config.vocab_size = self.vocab_size
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            setattr(self.decoder_config, name, getattr(self, name))
        longest = 1 + (self.max_history_length + 1) * self.num_levels
        max_positions = getattr(self.decoder_config, "max_position_embeddings", None)
        if max_positions is not None and max_positions < longest:
            raise ValueError(
                f"decoder_config.max_position_embeddings = {max_positions} is shorter than a sequence of "
                f"max_history_length + 1 = {self.max_history_length + 1} items ({longest} tokens)."
            )

    def get_text_config(self, decoder: bool | None = None, encoder: bool | None = None) -> PreTrainedConfig:
        """The causal language model's config: what generation caches are built from."""
        return self.decoder_config.get_text_config(decoder=decoder, encoder=encoder)

    @property
    def num_levels(self) -> int:
        """Length of every semantic ID (the collision level included)."""
        return len(self.codebook_sizes)

    @property
    def text_vocab_size(self) -> int:
        """Number of tokens before the first ID token: the special tokens."""
        return NUM_SPECIAL_TOKENS

    @property
    def vocab_size(self) -> int:
        """Size of the vocabulary: the special tokens followed by the ID tokens of every level."""
        return NUM_SPECIAL_TOKENS + sum(self.codebook_sizes)

    @property
    def id_token_layout(self) -> IDTokenLayout:
        """Where the ID tokens sit in the vocabulary and which tokens each decoding step produces."""
        return IDTokenLayout(NUM_SPECIAL_TOKENS, tuple(self.codebook_sizes), self.eos_token_id, self.pad_token_id)


__all__ = ["LMIndexerRecommenderConfig"]
