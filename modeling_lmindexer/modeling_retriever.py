"""LMIndexerRetriever: a seq2seq model that generates the semantic IDs of the documents relevant to a query."""

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    EncoderDecoderModel,
    GenerationConfig,
    GenerationMixin,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput
from transformers.utils import logging
from transformers.utils.deprecation import deprecate_kwarg

from .codebook import PrefixGroupMeans
from .configuration_retriever import LMIndexerRetrieverConfig, seq2seq_decoder_config
from .evaluation_mode import evaluation_mode
from .hub_utils import SemanticIDsHubMixin, render_model_card
from .id_beam_search import EncoderDecoderSteps, apply_id_generation_defaults, ranked_doc_ids
from .id_tokens import IGNORE_INDEX, loss_denominator, smoothed_cross_entropy
from .logits_process import TrieConstrainedLogitsProcessor
from .output_head import output_rows_scores, skip_output_head
from .semantic_ids import SemanticIDs
from .trie import ConstrainedIDsMixin, IDTrie


logger = logging.get_logger(__name__)


def resize_vocabulary(backbone: PreTrainedModel, text_vocab_size: int, vocab_size: int) -> None:
    """
    Give the backbone `vocab_size` token embeddings (and output rows), in place: every embedding of an
    `AutoModelForSeq2SeqLM`, or, for an `EncoderDecoderModel`, the decoder's and, when it shares the decoder's text
    vocabulary, the encoder's. Already resized models are left as they are; new rows are set by the caller.
    """
    models = [backbone]
    if isinstance(backbone, EncoderDecoderModel):
        encoder_vocab_size = backbone.encoder.get_input_embeddings().num_embeddings
        models = [backbone.decoder] + ([backbone.encoder] if encoder_vocab_size == text_vocab_size else [])
    for model in models:
        if model.get_input_embeddings().num_embeddings != vocab_size:
            model.resize_token_embeddings(vocab_size, mean_resizing=False)


class LMIndexerRetriever(ConstrainedIDsMixin, SemanticIDsHubMixin, PreTrainedModel, GenerationMixin):
    """
    A generative retriever: a seq2seq backbone whose vocabulary is extended with one token per code per level reads a
    query (or a user history) and generates the semantic ID of a relevant document. `generate()` is restricted to the
    IDs of the indexed documents by a [`TrieConstrainedLogitsProcessor`], so beam search returns real documents,
    best first; [`~LMIndexerRetriever.retrieve`] maps the beams back to doc ids.

    With `config.id_only_head` (the default), every decoding step scores only the tokens it can produce (the current
    level's codes, then `eos_token_id`) with the backbone's own output rows, so a step costs `O(K_t)` rather than
    `O(vocabulary)`, and the training loss is the softmax over the current level's codes.

    Build it from a trained indexer with [`~LMIndexerRetriever.from_indexer`] (the paper's initialisation) or from any
    backbone and ID table with [`~LMIndexerRetriever.from_backbone`]; the IDs are kept in `model.semantic_ids` and
    saved with the model.

    Args:
        config ([`LMIndexerRetrieverConfig`]): The configuration.
        backbone (`PreTrainedModel`, *optional*): An `AutoModelForSeq2SeqLM` matching `config.seq2seq_config`, used
            as it is (resized in place to the retriever's vocabulary). Defaults to a new one built from the config.
    """

    config_class = LMIndexerRetrieverConfig
    base_model_prefix = "retriever"
    ids_owner = "retriever"
    ids_items = "indexed documents"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: LMIndexerRetrieverConfig, backbone: PreTrainedModel | None = None):
        super().__init__(config)
        if backbone is None:
            backbone = AutoModelForSeq2SeqLM.from_config(config.seq2seq_config)
        elif backbone.config._attn_implementation is None:
            # Building a config around the backbone's config unset the attention implementation they share.
            backbone.config._attn_implementation = config._attn_implementation
        resize_vocabulary(backbone, config.text_vocab_size, config.vocab_size)
        # Keep the saved backbone config in step with the resized vocabulary.
        config.seq2seq_config = backbone.config
        self.backbone = backbone
        self._semantic_ids: SemanticIDs | None = None
        self.trie: IDTrie | None = None
        self.prefix_group_means = PrefixGroupMeans(config.codebook_sizes)
        # The tokenizer saved next to the model, loaded by `retrieve` when it is given none.
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self.post_init()
        # An ID starts with a level-0 code and ends with eos_token_id: the text tokens a backbone forces there (BART's
        # forced_bos_token_id and forced_eos_token_id) would break it.
        self.generation_config.forced_bos_token_id = None
        self.generation_config.forced_eos_token_id = None

    @classmethod
    def from_backbone(
        cls, backbone: str | PreTrainedModel, semantic_ids: SemanticIDs, **config_kwargs
    ) -> "LMIndexerRetriever":
        """
        Build a retriever around pretrained backbone weights for any ID table (random, k-means or learned IDs): every
        ID-token embedding starts random (normal with standard deviation `config.initializer_range`).

        Args:
            backbone (`str` or `PreTrainedModel`): An `AutoModelForSeq2SeqLM` instance, resized in place and used by
                the retriever, or its Hub id / folder (an unreachable Hub id falls back to the offline BERT2BERT).
            semantic_ids ([`SemanticIDs`]): The documents' IDs; they set `codebook_sizes`.
            config_kwargs: Any other [`LMIndexerRetrieverConfig`] field, e.g. `max_query_length=32`.
        """
        if isinstance(backbone, str):
            from .backbones import load_backbone

            backbone, _ = load_backbone(backbone)
        model = cls._around_backbone(backbone, semantic_ids, config_kwargs)
        model._initialize_id_embeddings()
        return model

    @classmethod
    def from_indexer(
        cls, indexer: PreTrainedModel, semantic_ids: SemanticIDs | None = None, **config_kwargs
    ) -> "LMIndexerRetriever":
        """
        Build a retriever from a trained [`LMIndexerForSemanticID`]: a copy of its backbone, its IDs, and the
        ID-token embeddings (input and output rows) of every learned level set to the level's codebook vectors, as
        in the paper. Collision-level tokens start random. With the ID-only head (the default), the retriever also
        scores codes as the indexer does (`config.score_decoder_states`, and `config.center_by_prefix` with a copy
        of the indexer's prefix-group means), so before any training it generates for a document's text the codes
        the indexer predicts for it.

        Args:
            indexer ([`LMIndexerForSemanticID`]): The trained indexer (left unchanged).
            semantic_ids ([`SemanticIDs`], *optional*): IDs to retrieve; defaults to `indexer.semantic_ids`. Their
                learned levels must have the indexer's codebook sizes.
            config_kwargs: Any other [`LMIndexerRetrieverConfig`] field. The backbone name and dataset name default
                to the indexer's.
        """
        semantic_ids = indexer.semantic_ids if semantic_ids is None else semantic_ids
        if semantic_ids is None:
            raise ValueError("The indexer has no semantic IDs: run `indexer.assign_ids(...)` or pass semantic_ids.")
        indexer.check_semantic_ids(semantic_ids, source="semantic_ids", model_name="indexer")
        config_kwargs.setdefault("backbone_name_or_path", indexer.config.backbone_name_or_path)
        config_kwargs.setdefault("dataset_name", indexer.config.dataset_name)
        if config_kwargs.get("id_only_head", True):
            config_kwargs.setdefault("score_decoder_states", True)
            config_kwargs.setdefault("center_by_prefix", indexer.config.center_by_prefix)
        model = cls._around_backbone(copy.deepcopy(indexer.backbone), semantic_ids, config_kwargs)
        learned_levels = range(semantic_ids.num_learned_levels)
        model._initialize_id_embeddings([indexer.codebooks[level].weight for level in learned_levels])
        model.prefix_group_means = PrefixGroupMeans.from_tensors(
            model.config.codebook_sizes, indexer.prefix_group_means.to_tensors()
        )
        return model

    @classmethod
    def _around_backbone(
        cls, backbone: PreTrainedModel, semantic_ids: SemanticIDs, config_kwargs: dict
    ) -> "LMIndexerRetriever":
        config_kwargs.setdefault("backbone_name_or_path", str(backbone.name_or_path) or None)
        config_kwargs.setdefault("codebook_sizes", list(semantic_ids.codebook_sizes))
        # Keep the backbone's attention implementation (the new config sets it on the backbone config it shares).
        config_kwargs.setdefault("attn_implementation", backbone.config._attn_implementation)
        config = LMIndexerRetrieverConfig(seq2seq_config=backbone.config, **config_kwargs)
        model = cls(config, backbone=backbone)
        model.set_semantic_ids(semantic_ids)
        return model

    def _id_embedding_matrices(self) -> list[tuple[torch.Tensor, float]]:
        """
        Every distinct embedding matrix with ID-token rows, `(vocab_size, width)`, with the factor its lookups are
        multiplied by (BART's `embed_scale`; 1 otherwise): decoder input, encoder input, output.
        """
        modules = [
            self.backbone.get_decoder().get_input_embeddings(),
            self.backbone.get_encoder().get_input_embeddings(),
            self.backbone.get_output_embeddings(),
        ]
        matrices, seen = [], set()
        for module in modules:
            weight = module.weight
            if id(weight) in seen or weight.shape[0] != self.config.vocab_size:
                continue
            seen.add(id(weight))
            matrices.append((weight, float(getattr(module, "embed_scale", 1.0))))
        return matrices

    @torch.no_grad()
    def _initialize_id_embeddings(self, codebook_vectors: Sequence[torch.Tensor] = ()) -> None:
        """
        Set the ID-token rows of every embedding matrix: level `t` from `codebook_vectors[t]`
        `(codebook_sizes[t], width)` when given and of the matrix's width, else normal with standard deviation
        `config.initializer_range`. Output biases of ID tokens are set to zero.
        """
        layout = self.config.id_token_layout
        for weight, embed_scale in self._id_embedding_matrices():
            for level in range(layout.num_levels):
                token_ids = layout.level_token_ids(level)
                rows = weight[token_ids.start : token_ids.stop]
                vectors = codebook_vectors[level] if level < len(codebook_vectors) else None
                if vectors is not None and tuple(vectors.shape) == tuple(rows.shape):
                    rows.copy_(vectors.to(rows) / embed_scale)
                else:
                    rows.normal_(mean=0.0, std=self.config.initializer_range)
        output_bias = getattr(self.backbone.get_output_embeddings(), "bias", None)
        for bias in (output_bias, getattr(self.backbone, "final_logits_bias", None)):
            if bias is not None:
                bias[..., self.config.text_vocab_size :] = 0.0

    def _init_weights(self, module: nn.Module) -> None:
        # The retriever has no parameters of its own: the backbone initialises its modules itself.
        return

    def get_encoder(self) -> nn.Module:
        return self.backbone.get_encoder()

    def get_decoder(self) -> nn.Module:
        return self.backbone.get_decoder()

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.backbone.get_output_embeddings()

    def resize_token_embeddings(self, *args, **kwargs):
        """Refused: the ID tokens sit at fixed positions after the text vocabulary."""
        raise RuntimeError(
            "The retriever's vocabulary is fixed by text_vocab_size and codebook_sizes; build a new retriever for "
            "other IDs."
        )

    def code_token_ids(self, level: int) -> list[int]:
        """The token ids of the codes `0 .. codebook_sizes[level] - 1` of one ID level."""
        return list(self.config.id_token_layout.level_token_ids(level))

    def id_tokens(self, doc_id: str) -> list[int]:
        """
        The token ids a document's ID is generated as: one ID token per level, then `eos_token_id` (the training
        labels of a query whose answer is `doc_id`).
        """
        return self.config.id_token_layout.id_token_ids(self._require_semantic_ids()[doc_id])

    def doc_ids_from_sequences(self, sequences: torch.LongTensor) -> list[str | None]:
        """
        The document of every generated sequence.

        Args:
            sequences (`torch.LongTensor` of shape `(num_sequences, sequence_length)`): Outputs of `generate()`:
                decoder start token, then the ID tokens.

        Returns:
            `list[str | None]`: The doc id of each sequence, `None` for a sequence that is not an indexed ID (only
            possible without the prefix-tree constraint).
        """
        semantic_ids = self._require_semantic_ids()
        num_levels = self.config.num_levels
        if sequences.shape[1] < 1 + num_levels:
            return [None] * sequences.shape[0]
        codes = self.config.id_token_layout.tokens_to_codes(sequences[:, 1 : 1 + num_levels])
        codes = codes.to(self.trie.leaf_doc_rows.device)
        doc_ids = semantic_ids.doc_ids
        return [doc_ids[row] if row >= 0 else None for row in self.trie.doc_rows(codes).tolist()]

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        decoder_prefix_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
                Query tokens (text tokens, or ID tokens for histories of items).
            attention_mask (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*)
            decoder_input_ids (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*):
                The decoder start token followed by ID tokens; with a `cache`, only the new tokens. Built from
                `labels` when not given.
            decoder_attention_mask (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*)
            encoder_outputs (`BaseModelOutput`, *optional*): Encoder states, as `generate()` passes them.
            cache (`Cache`, *optional*): Key/value cache of the earlier decoder positions (an `EncoderDecoderCache`).
            inputs_embeds (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`, *optional*)
            decoder_inputs_embeds (`torch.FloatTensor` of shape `(batch_size, target_length, hidden_size)`,
                *optional*)
            labels (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*):
                Target tokens: [`~LMIndexerRetriever.id_tokens`] of the relevant document (ID tokens then
                `eos_token_id`); `-100` is ignored.
            use_cache (`bool`, *optional*): Return the updated `cache`.
            decoder_prefix_ids (`torch.LongTensor` of shape `(batch_size, cached_length + target_length)`,
                *optional*): Every decoder token so far, the cached ones included: the decoded prefixes that
                `config.center_by_prefix` centres by. Needed with a non-empty `cache` only (`generate()` passes
                them); defaults to `decoder_input_ids`.
            kwargs: Passed to the backbone (`output_attentions`, `output_hidden_states`, ...); `num_items_in_batch`
                (from `Trainer`) divides the summed loss instead of the number of targets.

        Returns:
            [`Seq2SeqLMOutput`] whose `logits` `(batch_size, target_length, vocab_size)` are the backbone's logits,
            or, with `config.id_only_head`, the scores of the tokens each position's decoding step can produce
            and `-inf` elsewhere. Decoder position `p` (counting cached positions) predicts ID level `p`.
        """
        kwargs.pop("return_dict", None)
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        if labels is not None and decoder_input_ids is None and decoder_inputs_embeds is None:
            decoder_input_ids = self.backbone.prepare_decoder_input_ids_from_labels(labels=labels)
        first_step = cache.get_seq_length() if cache is not None else 0
        backbone_inputs = dict(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=cache,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        if self.config.id_only_head:
            outputs, head_states = self.id_head_states(**backbone_inputs)
            prefix_codes = self._decoded_prefix_codes(
                decoder_input_ids if decoder_prefix_ids is None else decoder_prefix_ids, first_step
            )
            logits, loss = self._id_only_logits_and_loss(
                head_states, first_step, prefix_codes, labels, num_items_in_batch
            )
        else:
            outputs = self.backbone(**backbone_inputs)
            logits, loss = outputs.logits, None
            if labels is not None:
                labels = labels.to(logits.device)
                token_losses = nn.functional.cross_entropy(
                    logits.flatten(0, 1).float(),
                    labels.flatten(),
                    ignore_index=IGNORE_INDEX,
                    reduction="sum",
                    label_smoothing=self.config.label_smoothing,
                )
                loss = token_losses / loss_denominator(labels != IGNORE_INDEX, num_items_in_batch)
        return Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
        )

    def id_head_states(self, **backbone_inputs) -> tuple[Seq2SeqLMOutput, torch.Tensor]:
        """
        Run the backbone without its vocabulary projection.

        Args:
            backbone_inputs: The backbone's forward arguments.

        Returns:
            The backbone outputs (without logits) and the states the ID-only head scores, `(batch_size,
            target_length, hidden_size)`: the decoder's last hidden state with `config.score_decoder_states`, else
            what the backbone's output projection reads.
        """
        if self.config.score_decoder_states:
            backbone_inputs["output_hidden_states"] = True
        with skip_output_head(self.backbone.get_output_embeddings()) as head_inputs:
            outputs = self.backbone(**backbone_inputs)
        if self.config.score_decoder_states:
            return outputs, outputs.decoder_hidden_states[-1]
        return outputs, head_inputs[-1]

    def _decoded_prefix_codes(
        self, decoder_token_ids: torch.LongTensor | None, first_step: int
    ) -> torch.Tensor | None:
        """
        The codes `(batch_size, num_levels - 1)` decoded before the last level, from decoder tokens `(batch_size,
        length)` (start token, then ID tokens), as far as they go; `None` when `config.center_by_prefix` is off.
        """
        if not self.config.center_by_prefix:
            return None
        if decoder_token_ids is None:
            raise ValueError("config.center_by_prefix needs the decoder tokens: pass decoder_input_ids, not embeds.")
        if decoder_token_ids.shape[1] <= first_step:
            raise ValueError(
                "config.center_by_prefix needs the decoded prefix: with a cache, pass every decoder token so far as "
                "decoder_prefix_ids (generate() does)."
            )
        return self.config.id_token_layout.tokens_to_codes(decoder_token_ids[:, 1 : self.config.num_levels])

    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor, **kwargs) -> dict:
        """`GenerationMixin`'s inputs, plus every decoder token so far as `decoder_prefix_ids` when
        `config.center_by_prefix` centres by the decoded prefix."""
        model_inputs = super().prepare_inputs_for_generation(input_ids, **kwargs)
        if self.config.center_by_prefix:
            model_inputs["decoder_prefix_ids"] = input_ids
        return model_inputs

    def _id_only_logits_and_loss(
        self,
        head_states: torch.Tensor,
        first_step: int,
        prefix_codes: torch.Tensor | None,
        labels: torch.LongTensor | None,
        num_items_in_batch: int | torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """
        The ID-only head: each decoder position is scored against the output rows of the tokens its decoding step
        can produce only, by [`~LMIndexerRetriever.step_scores`].

        Args:
            head_states (`torch.FloatTensor` of shape `(batch_size, target_length, hidden_size)`):
                The states the ID-only head scores (see [`~LMIndexerRetriever.id_head_states`]).
            first_step (`int`): Decoding step of the first position (the number of cached decoder positions).
            prefix_codes (`torch.LongTensor` of shape `(batch_size, num_decoded)`, *optional*): The codes decoded so
                far (needed with `config.center_by_prefix`).
            labels (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*)
            num_items_in_batch (`int` or `torch.Tensor`, *optional*): Denominator of the summed loss.

        Returns:
            The logits `(batch_size, target_length, vocab_size)` in `float32`, `-inf` outside each step's tokens, and
            the mean cross-entropy of the labels under the softmax over each step's tokens (`None` without labels).
        """
        batch_size, target_length, _ = head_states.shape
        logits = head_states.new_full(
            (batch_size, target_length, self.config.vocab_size), -math.inf, dtype=torch.float32
        )
        summed_loss = head_states.new_zeros((), dtype=torch.float32)
        if labels is not None:
            labels = labels.to(head_states.device)
        layout = self.config.id_token_layout
        for position in range(target_length):
            step = first_step + position
            start, end = layout.step_token_range(step)
            step_prefix = None if prefix_codes is None else prefix_codes[:, :step]
            scores = self.step_scores(head_states[:, position], step, step_prefix)
            logits[:, position, start:end] = scores
            if labels is not None:
                summed_loss = summed_loss + self._step_loss(scores, labels[:, position], start, end, position)
        if labels is None:
            return logits, None
        return logits, summed_loss / loss_denominator(labels != IGNORE_INDEX, num_items_in_batch)

    def step_scores(
        self, head_states: torch.Tensor, step: int, prefix_codes: torch.Tensor | None = None
    ) -> torch.Tensor:
        """
        The ID-only head at one decoding step: scores of the tokens that step can produce (see
        [`IDTokenLayout.step_token_range`]), from the backbone's own output rows, output bias and BART's
        `final_logits_bias`. With `config.center_by_prefix`, the mean state of the indexed documents sharing the
        decoded prefix is subtracted from the states at levels 1 and beyond first, as the indexer does. Centring and
        scores are in `float32` whatever the model's dtype, as the indexer's code scores are (see [`float32_linear`]).

        Args:
            head_states (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
                The states the ID-only head scores (see [`~LMIndexerRetriever.id_head_states`]), at that step.
            step (`int`): The decoding step (0 generates the level-0 code).
            prefix_codes (`torch.LongTensor` of shape `(batch_size, step)`, *optional*): The codes decoded before
                this step; needed at levels 1 and beyond with `config.center_by_prefix`.

        Returns:
            `torch.FloatTensor` of shape `(batch_size, num_step_tokens)`, `float32`: `codebook_sizes[step]` scores
            for an ID level, one for the end steps.
        """
        start, end = self.config.id_token_layout.step_token_range(step)
        head_states = head_states.float()
        if self.config.center_by_prefix and 0 < step < self.config.num_levels:
            if prefix_codes is None or tuple(prefix_codes.shape) != (head_states.shape[0], step):
                shape = None if prefix_codes is None else tuple(prefix_codes.shape)
                raise ValueError(
                    f"config.center_by_prefix: level {step} needs prefix_codes of shape ({head_states.shape[0]}, "
                    f"{step}), got {shape}."
                )
            head_states = head_states - self.prefix_group_means(step, prefix_codes, head_states)
        scores = output_rows_scores(head_states, self.backbone.get_output_embeddings(), start, end)
        final_logits_bias = getattr(self.backbone, "final_logits_bias", None)
        if final_logits_bias is not None:
            scores = scores + final_logits_bias[0, start:end].float()
        return scores

    def _step_loss(
        self, scores: torch.Tensor, targets: torch.Tensor, start: int, end: int, position: int
    ) -> torch.Tensor:
        """Summed cross-entropy of `targets` `(batch_size,)` among the tokens `start .. end - 1` scored by
        `scores` `(batch_size, end - start)`, smoothed over those tokens by `config.label_smoothing`; refuses
        targets that this step cannot produce."""
        is_target = targets != IGNORE_INDEX
        impossible = is_target & ((targets < start) | (targets >= end))
        if impossible.any():
            row = int(impossible.nonzero()[0, 0])
            raise ValueError(
                f"labels[{row}, {position}] = {int(targets[row])} cannot be generated at decoder position "
                f"{position}, which produces the tokens {start} to {end - 1}; build labels with `id_tokens`."
            )
        losses = smoothed_cross_entropy(scores[is_target], targets[is_target] - start, self.config.label_smoothing)
        return losses.sum()

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return self.backbone.prepare_decoder_input_ids_from_labels(labels=labels)

    def id_beam_search_unsupported_reason(self, decoder_input_ids: torch.LongTensor) -> str | None:
        """Why [`id_beam_search`] cannot decode for this retriever (`None` when it can)."""
        if not self.config.id_only_head:
            return "the full-vocabulary output head (config.id_only_head = False)"
        if decoder_input_ids.shape[1] != 1:
            return f"a decoder prompt of {decoder_input_ids.shape[1]} tokens"
        return None

    def id_decoding_steps(self, decoder_input_ids: torch.LongTensor, model_kwargs: dict) -> EncoderDecoderSteps:
        """The decoder steps of [`id_beam_search`] from the start tokens `(batch_size, 1)` and `generate()`'s
        `encoder_outputs` and `attention_mask` (one row per query)."""
        return EncoderDecoderSteps(
            self,
            decoder_input_ids,
            model_kwargs["encoder_outputs"].last_hidden_state,
            model_kwargs.get("attention_mask"),
        )

    def trie_logits_processor(self) -> TrieConstrainedLogitsProcessor:
        """The [`TrieConstrainedLogitsProcessor`] restricting `generate()` to the indexed IDs."""
        self._require_semantic_ids()
        return TrieConstrainedLogitsProcessor(
            self.trie,
            text_vocab_size=self.config.text_vocab_size,
            eos_token_id=self.config.eos_token_id,
            pad_token_id=self.config.pad_token_id,
            decoder_start_length=1,
            num_threads=self.config.constraint_num_threads,
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
        [`GenerationMixin.generate`] (every `GenerationConfig` field works: beam search, `num_return_sequences`,
        sampling, ...) with two defaults for IDs:

        - with the prefix-tree constraint (`constrain_to_trie`, defaulting to `config.constrain_to_trie`), a
          [`TrieConstrainedLogitsProcessor`] is put before the given `logits_processor`, so that only the IDs of
          indexed documents are generated;
        - `max_new_tokens` is `num_levels + 1` (the ID and its end token) unless `max_new_tokens` or `max_length` is
          passed, or `generation_config.max_new_tokens` is set;
        - with the ID-only head, beam and greedy search run [`id_beam_search`] (`id_beam_search`, defaulting to
          `config.id_beam_search`): the same sequences as the generic loop, several times faster. It is not used
          when a `logits_processor`, `stopping_criteria`, `prefix_allowed_tokens_fn`, `streamer`, `assistant_model`,
          `synced_gpus` or `custom_generate` is passed, and hands requests it does not cover (sampling, scores in the
          output, ...) to the generic loop.

        Returns:
            What `GenerationMixin.generate` returns: sequences `(batch_size * num_return_sequences, 2 + num_levels)`
            of the decoder start token, the ID tokens and `eos_token_id`, or a `ModelOutput` holding them.
        """
        id_beam_search = self.config.id_beam_search if id_beam_search is None else id_beam_search
        logits_processor = apply_id_generation_defaults(
            self.config.num_levels,
            generation_config,
            logits_processor,
            self.config.constrain_to_trie if constrain_to_trie is None else constrain_to_trie,
            id_beam_search and self.config.id_only_head,
            self.trie_logits_processor,
            kwargs,
        )
        return super().generate(
            inputs, generation_config=generation_config, logits_processor=logits_processor, **kwargs
        )

    @torch.no_grad()
    def retrieve(
        self,
        queries: Sequence[str],
        tokenizer: PreTrainedTokenizerBase | None = None,
        k: int = 10,
        num_beams: int | None = None,
        batch_size: int = 16,
        return_scores: bool = False,
        **generate_kwargs,
    ) -> list[list[str]] | tuple[list[list[str]], list[list[float]]]:
        """
        The `k` best documents of every query, by constrained beam search.

        With the ID-only head and nothing in `generate_kwargs` but `constrain_to_trie`, `id_beam_search` and
        `renormalize_logits` (default: `generation_config.renormalize_logits`), the queries are decoded by
        [`ranked_doc_ids`] (the search `generate()` runs with [`id_beam_search`], without its
        copies of the encoder states for the beams); otherwise by `generate()`, ranked by the log-probabilities of
        the generated sequences.

        Args:
            queries (`Sequence[str]`): Query texts; those longer than `config.max_query_length` tokens are truncated
                (one warning says how many).
            tokenizer (`PreTrainedTokenizerBase`, *optional*): The backbone's tokenizer. Defaults to the tokenizer
                saved next to the model, loaded once from the folder or Hub repository the model was loaded from.
            k (`int`): Documents per query; more than the indexed documents gives all of them (with a warning).
            num_beams (`int`, *optional*): Beam width (default `k`), at least the number of documents returned.
            batch_size (`int`): Queries decoded at once.
            return_scores (`bool`): Also return every document's score: the log-probability of its ID (with a
                full-vocabulary head, of the ID and its end token; with `renormalize_logits`, each level's
                probability renormalised over the codes the trie allows after its prefix).
            generate_kwargs: Other `generate()` arguments, e.g. `constrain_to_trie=False` or `repetition_penalty`.

        Returns:
            `list[list[str]]`: For every query, distinct doc ids best first; with `return_scores`, also
            `list[list[float]]`: their scores, in descending order.

        Raises:
            `ValueError`: For an empty query (naming its index), one string instead of a list of queries, `k < 1`,
            a retriever without IDs, or no `tokenizer` for a retriever saved without one.
        """
        num_return_sequences, num_beams = self._ranking_size(k, num_beams, batch_size)
        if isinstance(queries, str):
            raise ValueError(f"queries = {queries!r} is one string: pass a list of queries, e.g. [{queries!r}].")
        queries = list(queries)
        for index, query in enumerate(queries):
            if not isinstance(query, str) or not query.strip():
                raise ValueError(f"queries[{index}] = {query!r} is empty: every query needs some text.")
        if tokenizer is None:
            tokenizer = self._saved_tokenizer()
        self._warn_about_truncation(queries, tokenizer)
        rankings, scores = [], []
        with evaluation_mode(self):
            for batch_start in range(0, len(queries), batch_size):
                batch = tokenizer(
                    queries[batch_start : batch_start + batch_size],
                    max_length=self.config.max_query_length,
                    truncation=True,
                    padding=True,
                    return_tensors="pt",
                ).to(self.device)
                batch_rankings, batch_scores = self._rank_batch(
                    batch["input_ids"], batch["attention_mask"], num_beams, num_return_sequences, generate_kwargs
                )
                rankings += batch_rankings
                scores += batch_scores
        return (rankings, scores) if return_scores else rankings

    def _rank_batch(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.LongTensor,
        num_beams: int,
        num_return_sequences: int,
        generate_kwargs: dict,
    ) -> tuple[list[list[str]], list[list[float]]]:
        """Every query's doc ids and scores, best first, for [`~LMIndexerRetriever.retrieve`]."""
        start_tokens = input_ids.new_full((input_ids.shape[0], 1), self.generation_config.decoder_start_token_id)
        use_id_beam_search = generate_kwargs.get("id_beam_search")
        if use_id_beam_search is None:
            use_id_beam_search = self.config.id_beam_search
        # The search generate() runs as id_beam_search, called directly: generate() does not return its scores.
        if (
            use_id_beam_search
            and set(generate_kwargs) <= {"constrain_to_trie", "id_beam_search", "renormalize_logits"}
            and self.id_beam_search_unsupported_reason(start_tokens) is None
        ):
            encoder_outputs = self.get_encoder()(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
            steps = self.id_decoding_steps(
                start_tokens, {"encoder_outputs": encoder_outputs, "attention_mask": attention_mask}
            )
            constrain_to_trie = generate_kwargs.get("constrain_to_trie")
            if constrain_to_trie is None:
                constrain_to_trie = self.config.constrain_to_trie
            renormalize = generate_kwargs.get("renormalize_logits")
            if renormalize is None:
                renormalize = self.generation_config.renormalize_logits
            return ranked_doc_ids(
                self, steps, input_ids.shape[0], num_beams, num_return_sequences, constrain_to_trie, bool(renormalize)
            )
        outputs = self.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            num_beams=num_beams,
            num_return_sequences=num_return_sequences,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            **generate_kwargs,
        )
        # generate() ranks beams by log-probability / length ** length_penalty: rank them by log-probability.
        transition_scores = self.compute_transition_scores(
            outputs.sequences, outputs.scores, outputs.get("beam_indices")
        )
        log_probs = transition_scores.sum(-1).tolist()
        doc_ids = self.doc_ids_from_sequences(outputs.sequences)
        rankings, scores = [], []
        for query_start in range(0, len(doc_ids), num_return_sequences):
            query_rows = range(query_start, query_start + num_return_sequences)
            beams = [(doc_ids[row], log_probs[row]) for row in query_rows if doc_ids[row] is not None]
            # Without the constraint, sequences that differ after the ID name the same document: keep its best.
            best_scores = {}
            for doc_id, score in sorted(beams, key=lambda beam: beam[1], reverse=True):
                best_scores.setdefault(doc_id, score)
            rankings.append(list(best_scores))
            scores.append(list(best_scores.values()))
        return rankings, scores

    def _saved_tokenizer(self) -> PreTrainedTokenizerBase:
        """
        The tokenizer saved next to the model, loaded with `AutoTokenizer` from the folder or Hub repository the model
        was loaded from (`self.name_or_path`) on first use, then kept.

        Raises:
            `ValueError`: Naming the folder, when the model was not loaded from a folder or Hub repository, or that
            has no tokenizer.
        """
        if self._tokenizer is None:
            advice = "pass `tokenizer=` or save the tokenizer next to the model (`tokenizer.save_pretrained(folder)`)"
            if not self.name_or_path:
                raise ValueError(
                    f"The retriever was not loaded from a folder, so it has no saved tokenizer: {advice}."
                )
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.name_or_path)
            except (OSError, ValueError) as error:
                raise ValueError(
                    f"No tokenizer could be loaded from {self.name_or_path!r}, the folder (or Hub repository) the "
                    f"retriever was loaded from: {advice}."
                ) from error
        return self._tokenizer

    def _warn_about_truncation(self, queries: list[str], tokenizer: PreTrainedTokenizerBase) -> None:
        lengths = [len(token_ids) for token_ids in tokenizer(queries)["input_ids"]]
        num_truncated = sum(length > self.config.max_query_length for length in lengths)
        if num_truncated:
            logger.warning(
                f"{num_truncated} of {len(queries)} queries are longer than max_query_length = "
                f"{self.config.max_query_length} tokens and were truncated (longest: {max(lengths)} tokens)."
            )

    def model_card(self) -> str:
        """Markdown model card: backbone, ID levels, codebook sizes, dataset and retrieval metrics when known."""
        config = self.config
        seq2seq_type = config.seq2seq_config.model_type
        model_path = config.name_or_path or "path/to/model"
        facts = [
            f"Backbone: `{config.backbone_name_or_path or seq2seq_type}` ({seq2seq_type}, decoder width "
            f"{seq2seq_decoder_config(config.seq2seq_config).hidden_size})",
            f"ID levels: {config.num_levels}",
            f"Codebook sizes: {', '.join(str(size) for size in config.codebook_sizes)}",
            f"Vocabulary: {config.text_vocab_size} text tokens + {sum(config.codebook_sizes)} ID tokens",
            f"Output head: {self._output_head_description()}",
            f"Dataset: {config.dataset_name or 'unknown'}",
        ]
        if self._semantic_ids is not None:
            ids = self._semantic_ids
            collision = "with a collision level" if ids.has_collision_code else "without a collision level"
            facts.append(f"Indexed documents: {len(ids)} ({ids.num_learned_levels} learned levels, {collision})")
        return render_model_card(
            dataset_name=config.dataset_name,
            task_tag="generative-retrieval",
            title="LMIndexer generative retriever",
            summary="A seq2seq model that generates the semantic IDs of the documents relevant to a query, decoded "
            "with beam search constrained to the indexed IDs, as in *Language Models as Semantic Indexers* (Jin et "
            "al., ICML 2024), trained with `lmindexer`.",
            facts=facts,
            metrics=config.retrieval_metrics,
            usage=[
                "import modeling_lmindexer",
                "from transformers import AutoModelForSeq2SeqLM",
                "",
                f'model = AutoModelForSeq2SeqLM.from_pretrained("{model_path}")',
                "# Queries are tokenized with the tokenizer saved next to the model (or pass tokenizer=...).",
                'model.retrieve(["a query"], k=10)  # doc ids, best first',
                'doc_ids, scores = model.retrieve(["a query"], k=10, return_scores=True)  # and ID log-probabilities',
            ],
        )

    def _output_head_description(self) -> str:
        if not self.config.id_only_head:
            return "full vocabulary"
        details = ["current level codes"]
        if self.config.score_decoder_states:
            details.append("scoring the decoder's last hidden state, as the indexer does")
        if self.config.center_by_prefix:
            details.append("centred by the prefix-group means of the indexed documents")
        return f"ID-only ({'; '.join(details)})"


__all__ = ["LMIndexerRetriever"]
