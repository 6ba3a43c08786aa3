"""
Beam search over semantic IDs: the decoding loop that [`LMIndexerRetriever.generate`] and
[`LMIndexerRecommender.generate`] run for beam search and greedy search with an ID-only head.

`GenerationMixin`'s generic beam search does work that fixed-length IDs do not need. It copies every query's encoder
states (or a user's history) to its `num_beams` beams before the first step, so each cross-attention key and value
(or each history position) is computed `num_beams` times; it runs the first step on `num_beams` identical rows; it
masks a `(rows, vocab_size)` score matrix at every step; and it runs one more step to score the end token, whose
ID-only score is always 0. [`search_id_codes`]:

1. runs the first step (the decoder start token over the encoder states, or the whole history) once per query; a
   beam never leaves its query, so what a query's beams share is never reordered: the retriever repeats its cache for
   the beams but never reorders the cross-attention keys and values, and the recommender never copies the history's
   cache at all (its beams attend to one shared copy, [`shared_prefix_attention`]);
2. at step `t`, scores only the `codebook_sizes[t]` codes of level `t` (log-softmax, as generic beam search does),
   masks them with [`IDTrie.allowed_next`] (with `renormalize_logits`, takes the log-softmax again over the codes
   the trie allows, as `LogitNormalization` after the trie processor does), and keeps the `num_beams` best
   extensions of each query;
3. stops after the last level.

[`ranked_doc_ids`] maps the beams to doc ids with their scores (the log-probabilities of the IDs): the ranking the
retriever's `retrieve()` and the recommender's `recommend()` return.

The model side of a step is an [`IDDecodingSteps`]: [`EncoderDecoderSteps`] for the retriever, [`DecoderOnlySteps`]
for the recommender. [`id_beam_search`] wraps the search as a `generate(custom_generate=...)` loop: it returns the
sequences that generic beam search returns with the ID-only head and a [`TrieConstrainedLogitsProcessor`], in the
same order (every ID has the same length, so no length penalty changes a ranking), and hands requests it does not
cover (sampling, logits processors other than the trie's and `renormalize_logits`' normalisation, other stopping
criteria, scores or other outputs in a `ModelOutput`, too few new tokens for a whole ID, a model-specific reason) to
the generic loop.
"""

import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import nn
from transformers import (
    GenerationConfig,
    GenerationMixin,
    LogitNormalization,
    LogitsProcessorList,
    StoppingCriteriaList,
)
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.generation.stopping_criteria import EosTokenCriteria, MaxLengthCriteria
from transformers.generation.utils import GENERATION_MODES_MAPPING
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import logging

from .logits_process import TrieConstrainedLogitsProcessor
from .shared_prefix_attention import SHARED_PREFIX_ATTENTION, SharedPrefix
from .trie import IDTrie


logger = logging.get_logger(__name__)

OUTPUT_FLAGS = (
    "return_dict_in_generate",
    "output_scores",
    "output_logits",
    "output_attentions",
    "output_hidden_states",
)


class IDDecodingSteps(ABC):
    """
    The model's side of [`search_id_codes`]: the states its ID-only head scores at every step, with the cache that
    carries the earlier steps. The first step has one row per query; after [`~IDDecodingSteps.repeat_for_beams`],
    one row per beam.
    """

    @abstractmethod
    def first(self) -> torch.Tensor:
        """The head states `(batch_size, hidden_size)` that score the level-0 codes."""

    @abstractmethod
    def repeat_for_beams(self, num_beams: int) -> None:
        """Repeat every query's rows (cache, masks) `num_beams` times, each query's beams next to each other."""

    @abstractmethod
    def next(self, newest_tokens: torch.LongTensor) -> torch.Tensor:
        """The head states `(rows, hidden_size)` after feeding every row's newest ID token `(rows, 1)`."""

    @abstractmethod
    def reorder(self, parent_rows: torch.LongTensor) -> None:
        """Make row `i` continue the row `parent_rows[i]` `(rows,)` (rows of the same query only)."""


class EncoderDecoderSteps(IDDecodingSteps):
    """
    Decoder steps of an encoder-decoder model ([`LMIndexerRetriever`]) over fixed encoder states.

    Args:
        model: The model; `model.id_head_states(...)` runs its decoder.
        start_tokens (`torch.LongTensor` of shape `(batch_size, 1)`): The decoder start tokens.
        encoder_states (`torch.FloatTensor` of shape `(batch_size, source_length, hidden_size)`)
        encoder_attention_mask (`torch.LongTensor` of shape `(batch_size, source_length)`, *optional*)
    """

    def __init__(self, model, start_tokens, encoder_states, encoder_attention_mask=None):
        self.model = model
        self.start_tokens = start_tokens
        self.encoder_states = encoder_states
        self.encoder_attention_mask = encoder_attention_mask
        self.cache = EncoderDecoderCache(DynamicCache(), DynamicCache())

    def _head_states(self, decoder_input_ids: torch.LongTensor) -> torch.Tensor:
        _, head_states = self.model.id_head_states(
            encoder_outputs=BaseModelOutput(last_hidden_state=self.encoder_states),
            attention_mask=self.encoder_attention_mask,
            decoder_input_ids=decoder_input_ids,
            cache=self.cache,
            use_cache=True,
        )
        return head_states[:, -1]

    def first(self) -> torch.Tensor:
        return self._head_states(self.start_tokens)

    def repeat_for_beams(self, num_beams: int) -> None:
        self.cache.batch_repeat_interleave(num_beams)
        self.encoder_states = self.encoder_states.repeat_interleave(num_beams, dim=0)
        if self.encoder_attention_mask is not None:
            self.encoder_attention_mask = self.encoder_attention_mask.repeat_interleave(num_beams, dim=0)

    def next(self, newest_tokens: torch.LongTensor) -> torch.Tensor:
        return self._head_states(newest_tokens)

    def reorder(self, parent_rows: torch.LongTensor) -> None:
        # Only the self-attention cache: the cross-attention rows of a query's beams are all the same.
        self.cache.self_attention_cache.reorder_cache(parent_rows)


def left_padded_positions(attention_mask: torch.Tensor) -> torch.LongTensor:
    """
    The position of every token `(batch_size, length)` in its own sequence for an `attention_mask` `(batch_size,
    length)` (0 on padding): counted from the first unmasked token, so left padding does not shift a sequence's
    positions (0 on the padding itself).
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class DecoderOnlySteps(IDDecodingSteps):
    """
    Steps of a decoder-only model ([`LMIndexerRecommender`]) that continues left-padded prompts.

    The prompts' key/value cache is never copied to the beams: it stays at `batch_size` rows as a [`SharedPrefix`],
    the beams' own cache holds only their generated tokens, and the steps after the first run with the
    [`shared_prefix_attention`] implementation (every beam of a prompt shares its history, so copying it per beam,
    and reordering the copies at every step, is all the generic cache would add).

    Args:
        model: The model; `model.id_head_states(input_ids, attention_mask, position_ids, cache, **kwargs)` runs it
            (returning its outputs and the ID-only head's states) and `model.attention_implementation(name)`
            switches its decoder's attention for the block.
        prompt_ids (`torch.LongTensor` of shape `(batch_size, prompt_length)`): The prompts, left-padded.
        attention_mask (`torch.LongTensor` of shape `(batch_size, prompt_length)`, *optional*): 0 on padding.
    """

    def __init__(self, model, prompt_ids, attention_mask=None):
        self.model = model
        self.prompt_ids = prompt_ids
        self.attention_mask = torch.ones_like(prompt_ids) if attention_mask is None else attention_mask
        self.prompt_positions = left_padded_positions(self.attention_mask)
        self.positions = self.prompt_positions[:, -1:]
        self.prefix: SharedPrefix | None = None
        self.cache = DynamicCache()

    def first(self) -> torch.Tensor:
        prompt_cache = DynamicCache()
        _, head_states = self.model.id_head_states(
            input_ids=self.prompt_ids,
            attention_mask=self.attention_mask,
            position_ids=self.prompt_positions,
            cache=prompt_cache,
        )
        self.prefix = SharedPrefix.from_cache(prompt_cache, self.attention_mask)
        return head_states[:, -1]

    def repeat_for_beams(self, num_beams: int) -> None:
        # Only the positions: the beams' cache is still empty and the prefix is shared.
        self.positions = self.positions.repeat_interleave(num_beams, dim=0)

    def next(self, newest_tokens: torch.LongTensor) -> torch.Tensor:
        self.positions = self.positions + 1
        with self.model.attention_implementation(SHARED_PREFIX_ATTENTION):
            _, head_states = self.model.id_head_states(
                input_ids=newest_tokens,
                position_ids=self.positions,
                cache=self.cache,
                shared_prefix=self.prefix,
            )
        return head_states[:, -1]

    def reorder(self, parent_rows: torch.LongTensor) -> None:
        self.cache.reorder_cache(parent_rows)


def _code_log_probs(
    model, head_states: torch.Tensor, level: int, trie: IDTrie | None, prefix_codes, renormalize: bool = False
) -> torch.Tensor:
    """
    Log-probabilities `(rows, codebook_sizes[level])` of the level's codes under the ID-only head, `-inf` for codes
    that leave the trie after `prefix_codes` `(rows, level)`; with `renormalize`, over the allowed codes only (a row
    without any, a padding beam's, stays `-inf`).
    """
    log_probs = nn.functional.log_softmax(model.step_scores(head_states, level, prefix_codes), dim=-1)
    if trie is not None:
        allowed = trie.allowed_next(prefix_codes)
        log_probs = log_probs.masked_fill(~allowed, -math.inf)
        if renormalize:
            renormalized = nn.functional.log_softmax(log_probs, dim=-1)
            log_probs = torch.where(allowed.any(dim=-1, keepdim=True), renormalized, log_probs)
    return log_probs


def _best_extensions(
    beam_scores: torch.Tensor, log_probs: torch.Tensor, num_beams: int
) -> tuple[torch.Tensor, torch.LongTensor, torch.LongTensor]:
    """
    The `num_beams` best one-code extensions of every query's beams.

    Args:
        beam_scores (`torch.FloatTensor` of shape `(batch_size, width)`): Summed log-probabilities of the beams.
        log_probs (`torch.FloatTensor` of shape `(batch_size * width, codebook_size)`): Next-code log-probabilities.
        num_beams (`int`)

    Returns:
        The new scores `(batch_size, num_beams)` (best first; `-inf` where fewer extensions exist), the parent beam
        `(batch_size, num_beams)` and the code `(batch_size, num_beams)` of every new beam.
    """
    batch_size, width = beam_scores.shape
    codebook_size = log_probs.shape[-1]
    candidates = (beam_scores.reshape(-1, 1) + log_probs).reshape(batch_size, width * codebook_size)
    if candidates.shape[1] < num_beams:
        padding = candidates.new_full((batch_size, num_beams - candidates.shape[1]), -math.inf)
        candidates = torch.cat([candidates, padding], dim=1)
    scores, flat_indices = candidates.topk(num_beams, dim=1)
    flat_indices = flat_indices.clamp(max=width * codebook_size - 1)
    return scores, flat_indices // codebook_size, flat_indices % codebook_size


def search_id_codes(
    model, steps: IDDecodingSteps, batch_size: int, num_beams: int, trie: IDTrie | None, renormalize: bool = False
) -> tuple[torch.LongTensor, torch.Tensor]:
    """
    Beam search (greedy search for one beam) over the codes of whole IDs.

    Args:
        model: The model; `model.step_scores(head_states, level, prefix_codes)` scores one level's codes (in
            `float32`, whatever the model's dtype) and `model.config.id_token_layout` maps codes to tokens.
        steps ([`IDDecodingSteps`]): The model's decoding steps for the batch.
        batch_size (`int`): Number of queries.
        num_beams (`int`): Beams kept per query.
        trie ([`IDTrie`], *optional*): The valid IDs; `None` for unconstrained search.
        renormalize (`bool`): Score each level's codes by their log-softmax over the codes the trie allows
            (`generate(renormalize_logits=True)`), so that every prefix passes its whole probability on.

    Returns:
        The codes `(batch_size, num_beams, num_levels)` and summed log-probabilities `(batch_size, num_beams)` of
        every query's beams, best first (`-inf` for beams past the number of valid IDs).
    """
    layout = model.config.id_token_layout
    num_levels = layout.num_levels
    head_states = steps.first()
    no_prefix = torch.zeros((batch_size, 0), dtype=torch.long, device=head_states.device)
    log_probs = _code_log_probs(model, head_states, 0, trie, no_prefix, renormalize)
    beam_scores, _, codes = _best_extensions(log_probs.new_zeros((batch_size, 1)), log_probs, num_beams)
    prefix_codes = codes.reshape(-1, 1)
    if num_levels > 1:
        steps.repeat_for_beams(num_beams)
    first_beam_rows = torch.arange(batch_size, device=prefix_codes.device)[:, None] * num_beams
    for level in range(1, num_levels):
        newest_tokens = layout.codes_to_tokens(prefix_codes[:, -1:], first_level=level - 1)
        log_probs = _code_log_probs(model, steps.next(newest_tokens), level, trie, prefix_codes, renormalize)
        beam_scores, parent_beams, codes = _best_extensions(beam_scores, log_probs, num_beams)
        parent_rows = (first_beam_rows + parent_beams).reshape(-1)
        prefix_codes = torch.cat([prefix_codes[parent_rows], codes.reshape(-1, 1)], dim=1)
        if level + 1 < num_levels:
            steps.reorder(parent_rows)
    return prefix_codes.reshape(batch_size, num_beams, num_levels), beam_scores


def ranked_doc_ids(
    model,
    steps: IDDecodingSteps,
    batch_size: int,
    num_beams: int,
    k: int,
    constrain_to_trie: bool = True,
    renormalize: bool = False,
) -> tuple[list[list[str]], list[list[float]]]:
    """
    [`search_id_codes`] read as documents, the ranking that [`LMIndexerRetriever.retrieve`] and
    [`LMIndexerRecommender.recommend`] return: the doc ids of every query's `k` best beams with their scores, best
    first. Beams that are not indexed IDs (possible only without the constraint) and beams past the number of valid
    IDs (scored `-inf`) are left out.

    Args:
        model: The model; `model.semantic_ids` and `model.trie` map codes to doc ids, and [`search_id_codes`] reads
            the rest.
        steps ([`IDDecodingSteps`]): The model's decoding steps for the batch.
        batch_size (`int`): Number of queries.
        num_beams (`int`): Beams kept per query, at least `k`.
        k (`int`): Best beams read per query.
        constrain_to_trie (`bool`): Search the indexed IDs only.
        renormalize (`bool`): See [`search_id_codes`].

    Returns:
        `tuple[list[list[str]], list[list[float]]]`: For every query, at most `k` distinct doc ids and their scores,
        the log-probability of the ID (the summed log-probabilities of its codes), in descending order.
    """
    trie = model.trie
    codes, beam_scores = search_id_codes(
        model, steps, batch_size, num_beams, trie if constrain_to_trie else None, renormalize
    )
    best_codes = codes[:, :k].reshape(batch_size * k, -1).to(trie.leaf_doc_rows.device)
    rows = trie.doc_rows(best_codes).reshape(batch_size, k)
    doc_ids = model.semantic_ids.doc_ids
    rankings, scores = [], []
    for query_rows, query_scores in zip(rows.tolist(), beam_scores[:, :k].tolist()):
        kept = [(row, score) for row, score in zip(query_rows, query_scores) if row >= 0 and score > -math.inf]
        rankings.append([doc_ids[row] for row, _ in kept])
        scores.append([score for _, score in kept])
    return rankings, scores


# generate() arguments that only the generic loop serves.
GENERIC_ONLY_ARGUMENTS = (
    "stopping_criteria",
    "prefix_allowed_tokens_fn",
    "streamer",
    "assistant_model",
    "synced_gpus",
    "custom_generate",
)


def apply_id_generation_defaults(
    num_levels: int,
    generation_config: GenerationConfig | None,
    logits_processor: LogitsProcessorList | None,
    constrain_to_trie: bool,
    use_id_beam_search: bool,
    trie_logits_processor: Callable[[], TrieConstrainedLogitsProcessor],
    generate_kwargs: dict,
) -> LogitsProcessorList | None:
    """
    The defaults that the retriever's and the recommender's `generate()` add for IDs: [`id_beam_search`] as the
    `custom_generate` loop when `use_id_beam_search` and nothing only the generic loop serves is passed; the trie
    processor (`trie_logits_processor()`) before the given `logits_processor` when `constrain_to_trie`; and
    `max_new_tokens = num_levels + 1` (the ID and its end token) unless a length is given. Updates
    `generate_kwargs` in place and returns the logits processors to pass.
    """
    if (
        use_id_beam_search
        and not logits_processor
        and not any(generate_kwargs.get(name) for name in GENERIC_ONLY_ARGUMENTS)
    ):
        generate_kwargs["custom_generate"] = id_beam_search
    if constrain_to_trie:
        logits_processor = LogitsProcessorList([trie_logits_processor(), *(logits_processor or [])])
    length_is_given = (
        generate_kwargs.get("max_new_tokens") is not None or generate_kwargs.get("max_length") is not None
    )
    if not length_is_given and (generation_config is None or generation_config.max_new_tokens is None):
        generate_kwargs["max_new_tokens"] = num_levels + 1
    return logits_processor


def _trie_of(
    model, input_ids: torch.LongTensor, logits_processor: LogitsProcessorList
) -> tuple[IDTrie | None, bool, str | None]:
    """
    The trie the request is constrained to (`None` when unconstrained) and whether the scores are renormalised after
    it (`renormalize_logits`: `generate()` puts `LogitNormalization` last), or the reason why the processors are not
    ones this loop applies.
    """
    processors = list(logits_processor)
    renormalize = bool(processors) and isinstance(processors[-1], LogitNormalization)
    if renormalize:
        processors = processors[:-1]
    if not processors:
        return None, renormalize, None
    processor = processors[0]
    if len(processors) > 1 or not isinstance(processor, TrieConstrainedLogitsProcessor):
        return None, renormalize, f"logits processors {[type(processor).__name__ for processor in logits_processor]}"
    if processor.layout != model.config.id_token_layout or processor.decoder_start_length != input_ids.shape[1]:
        return None, renormalize, "a trie processor with another token layout than the model's"
    return processor.trie, renormalize, None


def _unsupported_reason(
    model,
    input_ids: torch.LongTensor,
    logits_processor: LogitsProcessorList,
    stopping_criteria: StoppingCriteriaList,
    generation_config: GenerationConfig,
) -> str | None:
    """Why this request needs the generic loop, or `None` when [`id_beam_search`] decodes it."""
    model_reason = model.id_beam_search_unsupported_reason(input_ids)
    if model_reason is not None:
        return model_reason
    if generation_config.do_sample:
        return "sampling"
    requested_outputs = [flag for flag in OUTPUT_FLAGS if getattr(generation_config, flag, False)]
    if requested_outputs:
        return f"requested outputs {requested_outputs}"
    if generation_config.max_length < input_ids.shape[1] + 1 + model.config.num_levels:
        return f"max_length = {generation_config.max_length}, too short for a whole ID and its end token"
    other_criteria = [
        type(criterion).__name__
        for criterion in stopping_criteria
        if not isinstance(criterion, (MaxLengthCriteria, EosTokenCriteria))
    ]
    if other_criteria:
        return f"stopping criteria {other_criteria}"
    return _trie_of(model, input_ids, logits_processor)[2]


def id_beam_search(
    model,
    input_ids: torch.LongTensor,
    logits_processor: LogitsProcessorList,
    stopping_criteria: StoppingCriteriaList,
    generation_config: GenerationConfig,
    **model_kwargs,
) -> torch.LongTensor:
    r"""
    Beam search (greedy search for one beam) over the IDs of an [`LMIndexerRetriever`] or [`LMIndexerRecommender`]
    with its ID-only head, as a `GenerationMixin.generate(custom_generate=...)` decoding function: `generate()` has
    already repeated the inputs (and the retriever's encoder outputs) for the beams. Requests this loop does not
    cover run the generic loop instead (see the module docstring).

    Args:
        model: The model; `model.id_decoding_steps(input_ids, model_kwargs)` gives its [`IDDecodingSteps`] for one
            row per query, and `model.id_beam_search_unsupported_reason(input_ids)` says what it cannot decode.
        input_ids (`torch.LongTensor` of shape `(batch_size * num_beams, prompt_length)`): The decoder start tokens
            (encoder-decoder) or the prompts (decoder-only).
        logits_processor (`LogitsProcessorList`): Empty (unconstrained) or the model's
            [`TrieConstrainedLogitsProcessor`], followed by `LogitNormalization` with `renormalize_logits`.
        stopping_criteria (`StoppingCriteriaList`): `generate()`'s length and end-token criteria.
        generation_config (`GenerationConfig`): `num_beams` and `num_return_sequences` are read.
        model_kwargs: The model inputs `generate()` prepared, repeated for the beams: `attention_mask` and, for an
            encoder-decoder model, `encoder_outputs` are read.

    Returns:
        `torch.LongTensor` of shape `(batch_size * num_return_sequences, prompt_length + num_levels + 1)`: the
        prompt, one ID token per level and `eos_token_id`, every query's best sequences first.
    """
    reason = _unsupported_reason(model, input_ids, logits_processor, stopping_criteria, generation_config)
    if reason is not None:
        logger.debug(f"Generic decoding loop for {reason}.")
        generic_loop = getattr(GenerationMixin, GENERATION_MODES_MAPPING[generation_config.get_generation_mode()])
        return generic_loop(
            model,
            input_ids,
            logits_processor=logits_processor,
            stopping_criteria=stopping_criteria,
            generation_config=generation_config,
            **model_kwargs,
        )
    trie, renormalize, _ = _trie_of(model, input_ids, logits_processor)
    num_beams = generation_config.num_beams
    num_return_sequences = generation_config.num_return_sequences
    batch_size = input_ids.shape[0] // num_beams
    # generate() repeated the inputs for the beams: the first step needs one row per query.
    query_kwargs = {}
    if model_kwargs.get("attention_mask") is not None:
        query_kwargs["attention_mask"] = model_kwargs["attention_mask"][::num_beams]
    if model_kwargs.get("encoder_outputs") is not None:
        states = model_kwargs["encoder_outputs"].last_hidden_state[::num_beams]
        query_kwargs["encoder_outputs"] = BaseModelOutput(last_hidden_state=states)
    prompts = input_ids[::num_beams]
    steps = model.id_decoding_steps(prompts, query_kwargs)
    codes, _ = search_id_codes(model, steps, batch_size, num_beams, trie, renormalize)
    best_codes = codes[:, :num_return_sequences].reshape(batch_size * num_return_sequences, -1)
    layout = model.config.id_token_layout
    end_tokens = torch.full_like(best_codes[:, :1], layout.eos_token_id)
    prompts = prompts.repeat_interleave(num_return_sequences, dim=0)
    return torch.cat([prompts, layout.codes_to_tokens(best_codes), end_tokens], dim=1)


__all__ = [
    "DecoderOnlySteps",
    "EncoderDecoderSteps",
    "IDDecodingSteps",
    "id_beam_search",
    "left_padded_positions",
    "ranked_doc_ids",
    "search_id_codes",
]
