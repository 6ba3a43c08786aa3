"""LMIndexerRecommender: a decoder-only model over semantic-ID tokens that generates the ID of a user's next item."""

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    GenerationConfig,
    GenerationMixin,
    LogitsProcessorList,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.cache_utils import Cache
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.utils.deprecation import deprecate_kwarg

from .configuration_recommender import LMIndexerRecommenderConfig
from .evaluation_mode import evaluation_mode
from .hub_utils import SemanticIDsHubMixin, render_model_card
from .id_beam_search import DecoderOnlySteps, apply_id_generation_defaults, left_padded_positions, ranked_doc_ids
from .id_tokens import IGNORE_INDEX, loss_denominator, smoothed_cross_entropy
from .logits_process import TrieConstrainedLogitsProcessor
from .output_head import output_rows_scores, skip_output_head
from .semantic_ids import SemanticIDs
from .trie import ConstrainedIDsMixin, IDTrie


class LMIndexerRecommender(ConstrainedIDsMixin, SemanticIDsHubMixin, PreTrainedModel, GenerationMixin):
    """
    A generative recommender: a causal language model (any `AutoModelForCausalLM` config, trained from scratch) over
    the semantic-ID tokens of a user's items, oldest first, that generates the ID of the next item. One forward pass
    over a user's sequence trains every next-item prediction in it: the loss is on the ID tokens of every item after
    the first, each scored against its level's codes only (an ID-only head on the output embeddings, tied to the
    token embeddings by default).

    `generate()` continues a history with the IDs of catalogue items only (a [`TrieConstrainedLogitsProcessor`] and
    the ID beam search, which reads the history once per user and keeps the KV cache across levels);
    [`~LMIndexerRecommender.recommend`] takes histories of item doc ids and returns item doc ids.

    Args:
        config ([`LMIndexerRecommenderConfig`]): The configuration.
    """

    config_class = LMIndexerRecommenderConfig
    base_model_prefix = "recommender"
    ids_owner = "recommender"
    ids_items = "catalogue items"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    # The recommender scores raw decoder states: no prefix-group centring.
    prefix_group_means = None

    def __init__(self, config: LMIndexerRecommenderConfig):
        super().__init__(config)
        self.decoder = AutoModelForCausalLM.from_config(config.decoder_config)
        self._semantic_ids: SemanticIDs | None = None
        self.trie: IDTrie | None = None
        self.post_init()

    @classmethod
    def from_semantic_ids(
        cls,
        semantic_ids: SemanticIDs,
        decoder_config: PreTrainedConfig | dict | None = None,
        codebook_vectors: Sequence[torch.Tensor] = (),
        **config_kwargs,
    ) -> "LMIndexerRecommender":
        """
        A new recommender for a catalogue's IDs (learned, k-means or random), its weights drawn at random.

        Args:
            semantic_ids ([`SemanticIDs`]): The IDs of the catalogue's items.
            decoder_config (`PreTrainedConfig` or `dict`, *optional*): The causal language model's config; defaults
                to [`LMIndexerRecommenderConfig`]'s small Llama.
            codebook_vectors (`Sequence[torch.Tensor]`, *optional*): Per level, vectors `(codebook_sizes[t], dim)`
                (an indexer's codebooks) that the level's ID-token embeddings (and output rows, when untied) start
                from, projected to the model's width by a random map drawn from torch's random state (orthonormal rows
                for `dim <= width`, which keeps their dot products; a random orthonormal basis of `width` directions
                otherwise) and rescaled to `config.initializer_range`; `None` or missing levels start random.
            config_kwargs: Any other [`LMIndexerRecommenderConfig`] field.
        """
        config = LMIndexerRecommenderConfig(
            decoder_config=decoder_config, codebook_sizes=list(semantic_ids.codebook_sizes), **config_kwargs
        )
        model = cls(config)
        model.set_semantic_ids(semantic_ids)
        if codebook_vectors:
            model._initialize_id_embeddings_from(codebook_vectors)
        return model

    @torch.no_grad()
    def _initialize_id_embeddings_from(self, codebook_vectors: Sequence[torch.Tensor | None]) -> None:
        layout = self.config.id_token_layout
        if len(codebook_vectors) > layout.num_levels:
            raise ValueError(
                f"codebook_vectors has {len(codebook_vectors)} levels; the recommender's IDs have {layout.num_levels}."
            )
        weights = [self.get_input_embeddings().weight]
        output_weight = self.get_output_embeddings().weight
        if output_weight is not weights[0]:
            weights.append(output_weight)
        width = weights[0].shape[1]
        for level, vectors in enumerate(codebook_vectors):
            if vectors is None:
                continue
            token_ids = layout.level_token_ids(level)
            if vectors.ndim != 2 or vectors.shape[0] != len(token_ids):
                raise ValueError(
                    f"codebook_vectors[{level}] has shape {tuple(vectors.shape)}; level {level} needs one vector per "
                    f"code: ({len(token_ids)}, dim)."
                )
            vectors = vectors.detach().float().cpu()
            dim = vectors.shape[1]
            # Orthonormal rows keep dot products; a wider codebook can only be projected onto `width` directions.
            if dim > width:
                projection = torch.linalg.qr(torch.randn(dim, width))[0]
            else:
                projection = torch.linalg.qr(torch.randn(width, dim))[0].T
            rows = vectors @ projection
            rows = rows / rows.std().clamp(min=1e-12) * self.config.initializer_range
            for weight in weights:
                weight[token_ids.start : token_ids.stop] = rows.to(weight)

    def _init_weights(self, module: nn.Module) -> None:
        # The recommender has no parameters of its own: the causal language model initialises its modules itself.
        return

    def get_input_embeddings(self) -> nn.Module:
        return self.decoder.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.decoder.get_output_embeddings()

    def item_codes(self, items: Sequence[str], source: str = "items") -> np.ndarray:
        """
        The codes `(len(items), num_levels)` of catalogue items.

        Raises:
            `ValueError`: Naming `source` and the items (up to five) that are not in the catalogue.
        """
        semantic_ids = self._require_semantic_ids()
        rows = semantic_ids.rows_of(list(items))
        if (rows < 0).any():
            missing = list(dict.fromkeys(item for item, row in zip(items, rows) if row < 0))
            shown = ", ".join(repr(item) for item in missing[:5])
            raise ValueError(
                f"{source}: {len(missing)} item(s) are not in the recommender's catalogue of {len(semantic_ids)} "
                f"items: {shown}."
            )
        return semantic_ids.codes[rows]

    def sequence_token_ids(self, items: Sequence[str], source: str = "items") -> list[int]:
        """The model's input for a sequence of items, oldest first: `bos_token_id`, then every item's ID tokens."""
        return self._codes_token_ids(self.item_codes(items, source))

    def _codes_token_ids(self, codes: np.ndarray) -> list[int]:
        """`bos_token_id`, then the ID tokens of items' codes `(num_items, num_levels)`."""
        tokens = self.config.id_token_layout.codes_to_tokens(codes.astype(np.int64))
        return [self.config.bos_token_id, *tokens.reshape(-1).tolist()]

    def id_head_states(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> tuple[CausalLMOutputWithPast, torch.Tensor]:
        """
        Run the causal language model without its vocabulary projection.

        Returns:
            The model's outputs (without logits) and the states the ID-only head scores, `(batch_size,
            sequence_length, hidden_size)`: what the output projection reads. `cache` is updated in place when given
            (`use_cache` defaults to whether it is).
        """
        # Without a cache to continue, none is built: training batches of packed sequences (no attention mask,
        # restarting positions) get transformers' packed-sequence masks only when there is no cache.
        use_cache = cache is not None if use_cache is None else use_cache
        with skip_output_head(self.decoder.get_output_embeddings()) as head_inputs:
            outputs = self.decoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                cache=cache,
                use_cache=use_cache,
                **kwargs,
            )
        return outputs, head_inputs[-1]

    @contextmanager
    def attention_implementation(self, name: str) -> Iterator[None]:
        """Run the causal language model with the attention implementation `name` inside the block."""
        config = self.decoder.config
        previous = config._attn_implementation
        config._attn_implementation = name
        try:
            yield
        finally:
            config._attn_implementation = previous

    def step_scores(
        self, head_states: torch.Tensor, level: int, prefix_codes: torch.Tensor | None = None
    ) -> torch.Tensor:
        """
        Scores `(rows, codebook_sizes[level])`, in `float32` (see [`float32_linear`]), of one level's codes for head
        states `(rows, hidden_size)`: their dot products with the level's output rows (the tied ID-token embeddings).
        `prefix_codes` is not used.
        """
        token_ids = self.config.id_token_layout.level_token_ids(level)
        return output_rows_scores(head_states, self.get_output_embeddings(), token_ids.start, token_ids.stop)

    def _id_logits(self, head_states: torch.Tensor, next_levels: torch.LongTensor) -> torch.Tensor:
        """
        Logits `(batch_size, length, vocab_size)` in `float32`: the ID tokens of the level each position predicts
        (`next_levels` `(batch_size, length)`) get their scores, every other token `-inf`.
        """
        config = self.config
        start = config.text_vocab_size
        id_scores = output_rows_scores(head_states, self.get_output_embeddings(), start)
        token_levels = torch.repeat_interleave(
            torch.arange(config.num_levels, device=head_states.device),
            torch.tensor(config.codebook_sizes, device=head_states.device),
            output_size=id_scores.shape[-1],
        )
        id_scores = id_scores.masked_fill(token_levels != next_levels[..., None], -math.inf)
        special = id_scores.new_full((*id_scores.shape[:-1], start), -math.inf)
        return torch.cat([special, id_scores], dim=-1)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
                `bos_token_id` then the ID tokens of a user's items ([`~LMIndexerRecommender.sequence_token_ids`]),
                right-padded for training (left-padded prompts when generating); with a `cache`, the new tokens only.
            attention_mask (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*): 0 on padding.
            position_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*): Position of every
                token in its sequence (`bos_token_id` at 0); position `p` predicts an ID token of level
                `p % num_levels`. Defaults to counting the unmasked tokens of `attention_mask` (which then covers the
                cached tokens too), or to counting from the cache's length without one.
            cache (`Cache`, *optional*): Key/value cache of the earlier positions.
            labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
                The tokens to predict, aligned with `input_ids` (the model shifts them): the ID tokens of every item
                after the first, `-100` elsewhere.
            use_cache (`bool`, *optional*): Return the updated `cache` (default: when a `cache` is given).
            kwargs: `num_items_in_batch` (from `Trainer`) divides the summed loss instead of the number of targets;
                the rest goes to the causal language model.

        Returns:
            [`CausalLMOutputWithPast`]: the mean cross-entropy of the labels, each under the softmax over its level's
            codes (smoothed over them by `config.label_smoothing`), and logits `(batch_size, sequence_length,
            vocab_size)` with `-inf` outside the level each position predicts.
        """
        kwargs.pop("return_dict", None)
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        if position_ids is None:
            position_ids = self._default_position_ids(input_ids, attention_mask, cache)
        outputs, head_states = self.id_head_states(input_ids, attention_mask, position_ids, cache, use_cache, **kwargs)
        logits = self._id_logits(head_states, position_ids % self.config.num_levels)
        loss = None
        if labels is not None:
            loss = self._loss(logits, labels.to(logits.device), num_items_in_batch)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    @staticmethod
    def _default_position_ids(
        input_ids: torch.LongTensor, attention_mask: torch.Tensor | None, cache: Cache | None
    ) -> torch.LongTensor:
        """Positions `(batch_size, length)` of the new tokens `input_ids` when `forward` is given none."""
        past_length = cache.get_seq_length() if cache is not None else 0
        batch_size, length = input_ids.shape
        if attention_mask is None:
            positions = torch.arange(length, device=input_ids.device) + past_length
            return positions.expand(batch_size, -1)
        if attention_mask.shape[-1] != past_length + length:
            raise ValueError(
                f"attention_mask has {attention_mask.shape[-1]} columns for {past_length} cached and {length} new "
                "tokens: it covers both (or pass position_ids)."
            )
        return left_padded_positions(attention_mask)[:, -length:]

    def _loss(
        self, logits: torch.Tensor, labels: torch.LongTensor, num_items_in_batch: int | torch.Tensor | None
    ) -> torch.Tensor:
        """The cross-entropy of `labels` `(batch_size, length)` under `logits` `(batch_size, length, vocab_size)`
        (position `p` predicts `labels[:, p + 1]`), smoothed over the level's codes by `config.label_smoothing`;
        refuses a label that its position cannot produce."""
        targets = labels[:, 1:]
        is_target = targets != IGNORE_INDEX
        in_vocabulary = (targets >= 0) & (targets < logits.shape[-1])
        scores = logits[:, :-1]
        target_scores = scores.gather(-1, torch.where(in_vocabulary, targets, 0)[..., None])[..., 0]
        impossible = is_target & ~(in_vocabulary & target_scores.isfinite())
        if impossible.any():
            row, position = impossible.nonzero()[0].tolist()
            raise ValueError(
                f"labels[{row}, {position + 1}] = {int(targets[row, position])} cannot be produced there (each "
                "position predicts the next ID level, and labels hold ID tokens or -100): build input_ids and labels "
                "with `sequence_token_ids`."
            )
        per_target = smoothed_cross_entropy(scores[is_target], targets[is_target], self.config.label_smoothing)
        return per_target.sum() / loss_denominator(is_target, num_items_in_batch)

    def id_beam_search_unsupported_reason(self, input_ids: torch.LongTensor) -> str | None:
        """Why [`id_beam_search`] cannot decode a request (`None`: it always can for this model)."""
        return None

    def id_decoding_steps(self, input_ids: torch.LongTensor, model_kwargs: dict) -> DecoderOnlySteps:
        """The decoding steps of [`id_beam_search`] continuing the left-padded prompts `(batch_size, length)`."""
        return DecoderOnlySteps(self, input_ids, model_kwargs.get("attention_mask"))

    def trie_logits_processor(self, prompt_length: int) -> TrieConstrainedLogitsProcessor:
        """The [`TrieConstrainedLogitsProcessor`] restricting what follows prompts of `prompt_length` tokens."""
        self._require_semantic_ids()
        layout = self.config.id_token_layout
        return TrieConstrainedLogitsProcessor(
            self.trie,
            text_vocab_size=layout.text_vocab_size,
            eos_token_id=layout.eos_token_id,
            pad_token_id=layout.pad_token_id,
            decoder_start_length=prompt_length,
        )

    def generate(
        self,
        inputs: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        logits_processor: LogitsProcessorList | None = None,
        constrain_to_trie: bool | None = None,
        id_beam_search: bool | None = None,
        **kwargs,
    ):
        r"""
        [`GenerationMixin.generate`] continuing left-padded histories (`input_ids` from
        [`~LMIndexerRecommender.sequence_token_ids`]), with the defaults of [`LMIndexerRetriever.generate`]: the
        prefix-tree constraint (`constrain_to_trie`, defaulting to `config.constrain_to_trie`), `max_new_tokens =
        num_levels + 1`, and beam and greedy search by [`id_beam_search`] (`id_beam_search`, defaulting to
        `config.id_beam_search`) unless a `logits_processor`, `stopping_criteria`, `prefix_allowed_tokens_fn`,
        `streamer`, `assistant_model`, `synced_gpus` or `custom_generate` is passed.

        Returns:
            What `GenerationMixin.generate` returns: sequences `(batch_size * num_return_sequences, prompt_length +
            num_levels + 1)` of the prompt, the ID tokens and `eos_token_id`, or a `ModelOutput` holding them.
            Without the constraint the model never scores `eos_token_id` (it is trained on ID tokens only), so the
            last token is the next item's first code.
        """
        prompts = inputs if inputs is not None else kwargs.get("input_ids")

        def trie_logits_processor() -> TrieConstrainedLogitsProcessor:
            if prompts is None:
                raise ValueError("Pass the histories as input_ids: the constraint starts after the prompt.")
            return self.trie_logits_processor(prompt_length=prompts.shape[1])

        logits_processor = apply_id_generation_defaults(
            self.config.num_levels,
            generation_config,
            logits_processor,
            self.config.constrain_to_trie if constrain_to_trie is None else constrain_to_trie,
            self.config.id_beam_search if id_beam_search is None else id_beam_search,
            trie_logits_processor,
            kwargs,
        )
        return super().generate(
            inputs, generation_config=generation_config, logits_processor=logits_processor, **kwargs
        )

    def history_token_ids(self, histories: Sequence[Sequence[str]]) -> list[list[int]]:
        """
        Every history's prompt tokens (`bos_token_id`, then the ID tokens of its `config.max_history_length` most
        recent items), checking all histories before any is decoded.

        Raises:
            `ValueError`: For one string instead of a list of histories, an empty history or items missing from the
            catalogue (anywhere in the history), naming the history's index.
        """
        if isinstance(histories, str):
            raise ValueError(
                f"histories = {histories!r} is one string: pass a list of histories, e.g. [[{histories!r}]]."
            )
        sequences = []
        for index, history in enumerate(histories):
            if isinstance(history, str) or len(history) == 0:
                raise ValueError(
                    f"histories[{index}] = {history!r}: a history is a non-empty list of item doc ids, oldest first."
                )
            # The whole history is looked up, not only the recent items read, so that no unknown id passes unnoticed.
            codes = self.item_codes(history, source=f"histories[{index}]")
            sequences.append(self._codes_token_ids(codes[-self.config.max_history_length :]))
        return sequences

    def history_prompts(self, histories: Sequence[Sequence[str]]) -> tuple[torch.LongTensor, torch.LongTensor]:
        """
        Left-padded prompts `(batch_size, length)` and their attention mask for histories of item doc ids (oldest
        first; the `config.max_history_length` most recent items are read).

        Raises:
            `ValueError`: As [`~LMIndexerRecommender.recommend`] does for bad histories.
        """
        return self._left_padded(self.history_token_ids(histories))

    def _left_padded(self, sequences: list[list[int]]) -> tuple[torch.LongTensor, torch.LongTensor]:
        """`sequences` as left-padded prompts `(batch_size, length)` and their attention mask, on the model's
        device."""
        length = max(len(sequence) for sequence in sequences)
        prompts = torch.full((len(sequences), length), self.config.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros_like(prompts)
        for row, sequence in enumerate(sequences):
            prompts[row, length - len(sequence) :] = torch.tensor(sequence)
            attention_mask[row, length - len(sequence) :] = 1
        return prompts.to(self.device), attention_mask.to(self.device)

    @torch.no_grad()
    def recommend(
        self,
        histories: Sequence[Sequence[str]],
        k: int = 10,
        num_beams: int | None = None,
        batch_size: int = 128,
        return_scores: bool = False,
    ) -> list[list[str]] | tuple[list[list[str]], list[list[float]]]:
        """
        The `k` items every user is most likely to interact with next, by the ID beam search over catalogue IDs (over
        all IDs with `config.constrain_to_trie = False`, leaving out the beams that are no catalogue item's ID).

        Args:
            histories (`Sequence[Sequence[str]]`): Per user, item doc ids oldest first.
            k (`int`): Items per user; more than the catalogue gives the whole catalogue (with a warning).
            num_beams (`int`, *optional*): Beam width (default `k`), at least the number of items returned.
            batch_size (`int`): Users decoded at once.
            return_scores (`bool`): Also return every item's score: the log-probability of its ID (with
                `generation_config.renormalize_logits`, each level's probability renormalised over the codes the
                trie allows after its prefix).

        Returns:
            `list[list[str]]`: Per user, item doc ids best first; with `return_scores`, also their scores.

        Raises:
            `ValueError`: For an unknown item (naming it and its history's index), an empty history, one string
            instead of a list of histories, `k < 1`, or a recommender without IDs; every history is checked before
            any is decoded.
        """
        k, num_beams = self._ranking_size(k, num_beams, batch_size)
        sequences = self.history_token_ids(histories)
        rankings, scores = [], []
        with evaluation_mode(self):
            for start in range(0, len(sequences), batch_size):
                prompts, attention_mask = self._left_padded(sequences[start : start + batch_size])
                batch_rankings, batch_scores = ranked_doc_ids(
                    self,
                    DecoderOnlySteps(self, prompts, attention_mask),
                    len(prompts),
                    num_beams,
                    k,
                    constrain_to_trie=self.config.constrain_to_trie,
                    renormalize=bool(self.generation_config.renormalize_logits),
                )
                rankings += batch_rankings
                scores += batch_scores
        return (rankings, scores) if return_scores else rankings

    def model_card(self) -> str:
        """Markdown model card: the causal language model, ID levels, catalogue, dataset and metrics when known."""
        config = self.config
        decoder = config.decoder_config
        model_path = config.name_or_path or "path/to/model"
        facts = [
            f"Causal language model: {decoder.model_type}, width {decoder.hidden_size}, "
            f"{decoder.num_hidden_layers} layers, trained from scratch",
            f"ID levels: {config.num_levels}",
            f"Codebook sizes: {', '.join(str(size) for size in config.codebook_sizes)}",
            f"IDs: {config.id_scheme or 'unknown'}",
            f"History length: {config.max_history_length} items",
            f"Dataset: {config.dataset_name or 'unknown'}",
        ]
        if self._semantic_ids is not None:
            facts.append(f"Catalogue: {len(self._semantic_ids)} items")
        return render_model_card(
            dataset_name=config.dataset_name,
            task_tag="generative-recommendation",
            title="LMIndexer generative recommender",
            summary="A causal language model over the semantic IDs of a user's items that generates the ID of the "
            "next item, decoded with beam search constrained to the catalogue's IDs, trained on every position of "
            "every user's sequence with `lmindexer`.",
            facts=facts,
            metrics=config.recommendation_metrics,
            usage=[
                "import modeling_lmindexer",
                "from transformers import AutoModelForCausalLM",
                "",
                f'model = AutoModelForCausalLM.from_pretrained("{model_path}")',
                'model.recommend([["item-1", "item-7"]], k=10)  # item doc ids, best first',
            ],
        )


__all__ = ["LMIndexerRecommender"]
