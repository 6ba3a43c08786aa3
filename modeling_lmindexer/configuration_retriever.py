"""LMIndexer generative retriever configuration."""

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .configuration_lmindexer import DEFAULT_CODEBOOK_SIZE
from .id_tokens import IDTokenLayout, check_share
from .semantic_ids import validate_codebook_sizes


DEFAULT_NUM_LEVELS = 3


def seq2seq_part_config(seq2seq_config: PreTrainedConfig, part: str) -> PreTrainedConfig:
    """The config describing the `part` ("encoder" or "decoder") of a seq2seq config: that sub-config for an
    `EncoderDecoderConfig`, the config itself for T5 or BART."""
    part_config = getattr(seq2seq_config, part, None)
    return part_config if isinstance(part_config, PreTrainedConfig) else seq2seq_config


def seq2seq_decoder_config(seq2seq_config: PreTrainedConfig) -> PreTrainedConfig:
    """The config describing the decoder of a seq2seq config (see [`seq2seq_part_config`])."""
    return seq2seq_part_config(seq2seq_config, "decoder")


@strict
class LMIndexerRetrieverConfig(PreTrainedConfig):
    r"""
    Configuration of [`LMIndexerRetriever`], the generative retriever that maps a query (or a user history) to the
    semantic IDs of documents, decoded with beam search constrained to the IDs that exist.

    The retriever's vocabulary is the backbone's text vocabulary (`text_vocab_size` tokens) followed by one token per
    code per level (its [`IDTokenLayout`], `config.id_token_layout`): code `c` of level `t` is token
    `text_vocab_size + sum(codebook_sizes[:t]) + c`. A decoded ID is the decoder start token, one ID token per level,
    then `eos_token_id`.

    Args:
        seq2seq_config (`PreTrainedConfig` or `dict`, *optional*):
            Configuration of the seq2seq backbone: any `AutoModelForSeq2SeqLM` config (T5, Flan-T5, BART) or an
            `EncoderDecoderConfig`. Its vocabulary is either the text vocabulary (the retriever adds the ID tokens) or
            already the text vocabulary plus the ID tokens (a saved retriever). Defaults to a T5 config.
        backbone_name_or_path (`str`, *optional*):
            Hub id or folder the backbone weights were taken from (informational, shown in the model card).
        text_vocab_size (`int`, *optional*):
            Number of text tokens, before the first ID token. Defaults to the backbone decoder's vocabulary size.
        codebook_sizes (`list[int]`, *optional*):
            Number of codes of every ID level, the collision level included. Defaults to 256 codes for 3 levels.
        max_query_length (`int`, *optional*, defaults to 64):
            Token length queries are truncated to by [`~LMIndexerRetriever.retrieve`].
        id_only_head (`bool`, *optional*, defaults to `True`):
            Score, at every decoding step, only the tokens that step can produce: the codes of the current level, then
            `eos_token_id`. The cost of a step then does not grow with the text vocabulary, and training uses the
            softmax over the current level's codes. With `False`, the backbone's full output head scores every token.
        id_beam_search (`bool`, *optional*, defaults to `True`):
            With the ID-only head, decode beam and greedy search requests with [`id_beam_search`], which runs the first
            decoder step (and the cross-attention keys and values) once per query rather than once per beam, scores
            one level's codes per step and skips the end-token step. It returns the same sequences as the generic
            loop; requests it does not cover (sampling, extra logits processors, scores in the output) use the
            generic loop anyway.
        score_decoder_states (`bool`, *optional*, defaults to `False`):
            With the ID-only head, score the decoder's last hidden state, as the indexer's codebooks do, rather than
            the states the backbone's output projection reads (after BERT's prediction-head transform, T5's
            rescaling). [`~LMIndexerRetriever.from_indexer`] sets it, so that the untrained retriever scores codes
            exactly as its indexer does.
        center_by_prefix (`bool`, *optional*, defaults to `False`):
            With the ID-only head, subtract from the scored state at levels 1 and beyond the mean state of the indexed
            documents sharing the decoded prefix (the indexer's [`PrefixGroupMeans`], kept in
            `model.prefix_group_means` and saved with the IDs). [`~LMIndexerRetriever.from_indexer`] copies the
            indexer's `center_by_prefix`.
        constrain_to_trie (`bool`, *optional*, defaults to `True`):
            Let `generate()` produce only IDs of indexed documents (prefix-tree constrained decoding) unless told
            otherwise per call.
        constraint_num_threads (`int`, *optional*, defaults to 1):
            Torch threads for the prefix-tree masking of every decoding step ([`TrieConstrainedLogitsProcessor`]'s
            `num_threads`); `None` keeps torch's setting.
        label_smoothing (`float`, *optional*, defaults to 0.0):
            Share of every label's probability that the model's loss spreads evenly over the tokens its decoding step
            can produce (with `id_only_head`; over the whole vocabulary otherwise), in `[0, 1)`;
            [`LMIndexerRetrieverTrainer`] sets it from `TrainingArguments.label_smoothing_factor`.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialisation of ID-token embeddings that are not copied from codebooks.
        decoder_start_token_id (`int`, *optional*):
            First decoder token. Defaults to the backbone config's, else to `pad_token_id` (as T5 does).
        pad_token_id (`int`, *optional*):
            Padding token. Defaults to the backbone config's.
        eos_token_id (`int`, *optional*):
            Token ending every ID. Defaults to the backbone config's.
        dataset_name (`str`, *optional*):
            Name of the dataset the retriever was trained on (shown in the model card).
        retrieval_metrics (`dict`, *optional*):
            Evaluation results, e.g. `{"recall@10": 0.41}` (shown in the model card).

    Example:

    ```python
    >>> from transformers import T5Config
    >>> from modeling_lmindexer import LMIndexerRetriever, LMIndexerRetrieverConfig

    >>> config = LMIndexerRetrieverConfig(seq2seq_config=T5Config(num_layers=2), codebook_sizes=[128, 128, 4])
    >>> model = LMIndexerRetriever(config)
    ```"""

    model_type = "lmindexer_retriever"
    sub_configs_defaults = {"seq2seq_config": SubConfigSpec(config_class=AutoConfig, model_type="t5")}

    seq2seq_config: PreTrainedConfig | dict | None = None
    backbone_name_or_path: str | None = None
    text_vocab_size: int | None = None
    codebook_sizes: list[int] | None = None
    max_query_length: int = 64
    id_only_head: bool = True
    id_beam_search: bool = True
    score_decoder_states: bool = False
    center_by_prefix: bool = False
    constrain_to_trie: bool = True
    constraint_num_threads: int | None = 1
    label_smoothing: float = 0.0
    initializer_range: float = 0.02
    decoder_start_token_id: int | None = None
    pad_token_id: int | None = None
    eos_token_id: int | None = None
    is_encoder_decoder: bool = True
    dataset_name: str | None = None
    retrieval_metrics: dict | None = None

    def __post_init__(self, **kwargs):
        if self.codebook_sizes is None:
            self.codebook_sizes = [DEFAULT_CODEBOOK_SIZE] * DEFAULT_NUM_LEVELS
        self.codebook_sizes = list(self.codebook_sizes)
        validate_codebook_sizes(self.codebook_sizes)
        super().__post_init__(**kwargs)
        if not self.is_encoder_decoder:
            raise ValueError("is_encoder_decoder = False: the retriever always wraps an encoder-decoder backbone.")
        decoder_config = seq2seq_decoder_config(self.seq2seq_config)
        if self.text_vocab_size is None:
            self.text_vocab_size = decoder_config.vocab_size
        if self.text_vocab_size < 1:
            raise ValueError(f"text_vocab_size = {self.text_vocab_size}: the text vocabulary cannot be empty.")
        if decoder_config.vocab_size not in (self.text_vocab_size, self.vocab_size):
            raise ValueError(
                f"seq2seq_config has a decoder vocabulary of {decoder_config.vocab_size} tokens, which is neither "
                f"text_vocab_size = {self.text_vocab_size} nor text_vocab_size + sum(codebook_sizes) = "
                f"{self.vocab_size}."
            )
        if not self.id_only_head and (self.score_decoder_states or self.center_by_prefix):
            raise ValueError(
                "score_decoder_states and center_by_prefix change what the ID-only head scores: they need "
                "id_only_head = True."
            )
        check_share("label_smoothing", self.label_smoothing)
        if self.max_query_length < 1:
            raise ValueError(f"max_query_length = {self.max_query_length}: queries need at least one token.")
        max_positions = self.encoder_max_positions
        if max_positions is not None and self.max_query_length > max_positions:
            raise ValueError(
                f"max_query_length = {self.max_query_length} is longer than the encoder's max_position_embeddings = "
                f"{max_positions}: give at most {max_positions}."
            )
        if self.constraint_num_threads is not None and self.constraint_num_threads < 1:
            raise ValueError(
                f"constraint_num_threads = {self.constraint_num_threads}: give at least 1 thread, or None for "
                "torch's setting."
            )
        for name in ("pad_token_id", "eos_token_id", "decoder_start_token_id"):
            self._inherit_token_id(name, decoder_config)

    @property
    def encoder_max_positions(self) -> int | None:
        """The longest input the encoder takes (its `max_position_embeddings`); None for relative positions (T5)."""
        return getattr(seq2seq_part_config(self.seq2seq_config, "encoder"), "max_position_embeddings", None)

    def _inherit_token_id(self, name: str, decoder_config: PreTrainedConfig) -> None:
        """Take a special token id from the backbone config when not given, and check that it is a text token."""
        if getattr(self, name) is None:
            inherited = getattr(self.seq2seq_config, name, None)
            setattr(self, name, inherited if inherited is not None else getattr(decoder_config, name, None))
        if name == "decoder_start_token_id" and self.decoder_start_token_id is None:
            # T5 configs may leave it unset: T5 starts decoding with the padding token.
            self.decoder_start_token_id = self.pad_token_id
        token_id = getattr(self, name)
        if token_id is None:
            if name == "pad_token_id":
                return
            raise ValueError(f"{name} is not set and the backbone config has none: set {name} explicitly.")
        if not isinstance(token_id, int) or not 0 <= token_id < self.text_vocab_size:
            raise ValueError(
                f"{name} = {token_id!r} must be a single text token id, in the range 0 to {self.text_vocab_size - 1}."
            )

    def get_text_config(self, decoder: bool | None = None, encoder: bool | None = None) -> PreTrainedConfig:
        """The backbone's text config (of its decoder with `decoder=True`): what generation caches are built from."""
        return self.seq2seq_config.get_text_config(decoder=decoder, encoder=encoder)

    @property
    def num_levels(self) -> int:
        """Length of every semantic ID (the collision level included)."""
        return len(self.codebook_sizes)

    @property
    def vocab_size(self) -> int:
        """Size of the retriever's vocabulary: the text tokens followed by the ID tokens of every level."""
        return self.text_vocab_size + sum(self.codebook_sizes)

    @property
    def id_token_layout(self) -> IDTokenLayout:
        """Where the ID tokens sit in the vocabulary and which tokens each decoding step produces."""
        return IDTokenLayout(self.text_vocab_size, tuple(self.codebook_sizes), self.eos_token_id, self.pad_token_id)

    @property
    def level_start_token_ids(self) -> tuple[int, ...]:
        """`level_start_token_ids[t]`: the token id of code 0 of level `t`."""
        return self.id_token_layout.level_start_token_ids


__all__ = ["LMIndexerRetrieverConfig"]
