"""
Beam search over semantic IDs: the decoding loop [`LMIndexerRetriever.generate`] runs for beam search and greedy
search with the ID-only head.

`GenerationMixin`'s generic beam search does work that fixed-length IDs do not need. It copies every query's encoder
states to its `num_beams` beams before the first step, so each cross-attention key and value is computed `num_beams`
times; it runs the first step on `num_beams` identical rows; it masks a `(rows, vocab_size)` score matrix at every
step; and it runs one more decoder step to score the end token, whose ID-only score is always 0. [`id_beam_search`]:

1. runs the first decoder step once per query, then repeats its cache for the beams: cross-attention keys and values
   are computed once per query, and never reordered (a beam never leaves its query);
2. at step `t`, scores only the `codebook_sizes[t]` codes of level `t` (log-softmax, as generic beam search does),
   masks them with [`IDTrie.allowed_next`], and keeps the `num_beams` best extensions of each query;
3. stops after the last level and appends `eos_token_id`.

It returns the sequences that generic beam search returns with the ID-only head and a
[`TrieConstrainedLogitsProcessor`], in the same order: every ID has the same length, so no length penalty changes a
ranking. Requests it does not cover (sampling, other logits processors or stopping criteria, scores or other outputs
in a `ModelOutput`, a longer decoder prompt, too few new tokens for a whole ID) go to the generic loop.
"""

import math

import torch
from torch import nn
from transformers import GenerationConfig, GenerationMixin, LogitsProcessorList, StoppingCriteriaList
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.generation.stopping_criteria import EosTokenCriteria, MaxLengthCriteria
from transformers.generation.utils import GENERATION_MODES_MAPPING
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import logging

from .logits_process import TrieConstrainedLogitsProcessor
from .trie import IDTrie


logger = logging.get_logger(__name__)

OUTPUT_FLAGS = (
    "return_dict_in_generate",
    "output_scores",
    "output_logits",
    "output_attentions",
    "output_hidden_states",
)


def _trie_of(model, logits_processor: LogitsProcessorList) -> tuple[IDTrie | None, str | None]:
    """
    The trie the request is constrained to (`None` when unconstrained), or the reason why the processors are not
    ones this loop applies.
    """
    if len(logits_processor) == 0:
        return None, None
    processor = logits_processor[0]
    if len(logits_processor) > 1 or not isinstance(processor, TrieConstrainedLogitsProcessor):
        return None, f"logits processors {[type(processor).__name__ for processor in logits_processor]}"
    config = model.config
    layout = (processor.text_vocab_size, processor.eos_token_id, processor.decoder_start_length)
    if layout != (config.text_vocab_size, config.eos_token_id, 1) or processor.trie.codebook_sizes != tuple(
        config.codebook_sizes
    ):
        return None, "a trie processor with another token layout than the model's"
    return processor.trie, None


def _unsupported_reason(
    model,
    input_ids: torch.LongTensor,
    logits_processor: LogitsProcessorList,
    stopping_criteria: StoppingCriteriaList,
    generation_config: GenerationConfig,
) -> str | None:
    """Why this request needs the generic loop, or `None` when [`id_beam_search`] decodes it."""
    if not model.config.id_only_head:
        return "the full-vocabulary output head (config.id_only_head = False)"
    if generation_config.do_sample:
        return "sampling"
    requested_outputs = [flag for flag in OUTPUT_FLAGS if getattr(generation_config, flag, False)]
    if requested_outputs:
        return f"requested outputs {requested_outputs}"
    if input_ids.shape[1] != 1:
        return f"a decoder prompt of {input_ids.shape[1]} tokens"
    if generation_config.max_length < 2 + model.config.num_levels:
        return f"max_length = {generation_config.max_length}, too short for a whole ID and its end token"
    other_criteria = [
        type(criterion).__name__
        for criterion in stopping_criteria
        if not isinstance(criterion, (MaxLengthCriteria, EosTokenCriteria))
    ]
    if other_criteria:
        return f"stopping criteria {other_criteria}"
    return _trie_of(model, logits_processor)[1]


def _head_states(
    model,
    decoder_input_ids: torch.LongTensor,
    encoder_states: torch.Tensor,
    encoder_attention_mask: torch.Tensor | None,
    cache: EncoderDecoderCache,
) -> torch.Tensor:
    """
    One decoder step (the cache is updated in place).

    Args:
        decoder_input_ids (`torch.LongTensor` of shape `(rows, 1)`): The newest token of every row.
        encoder_states (`torch.FloatTensor` of shape `(rows, source_length, hidden_size)`)
        encoder_attention_mask (`torch.LongTensor` of shape `(rows, source_length)`, *optional*)
        cache (`EncoderDecoderCache`): The rows' earlier decoder positions and cross-attention keys and values.

    Returns:
        `torch.FloatTensor` of shape `(rows, hidden_size)`: what the ID-only head scores at this step.
    """
    _, head_states = model.id_head_states(
        encoder_outputs=BaseModelOutput(last_hidden_state=encoder_states),
        attention_mask=encoder_attention_mask,
        decoder_input_ids=decoder_input_ids,
        cache=cache,
        use_cache=True,
    )
    return head_states[:, -1]


def _code_log_probs(model, head_states: torch.Tensor, level: int, trie: IDTrie | None, prefix_codes) -> torch.Tensor:
    """
    Log-probabilities `(rows, codebook_sizes[level])` of the level's codes under the ID-only head, `-inf` for codes
    that leave the trie after `prefix_codes` `(rows, level)`.
    """
    log_probs = nn.functional.log_softmax(model.step_scores(head_states, level, prefix_codes).float(), dim=-1)
    if trie is not None:
        log_probs = log_probs.masked_fill(~trie.allowed_next(prefix_codes), -math.inf)
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


def id_beam_search(
    model,
    input_ids: torch.LongTensor,
    logits_processor: LogitsProcessorList,
    stopping_criteria: StoppingCriteriaList,
    generation_config: GenerationConfig,
    **model_kwargs,
) -> torch.LongTensor:
    r"""
    Beam search (greedy search for one beam) over the IDs of an [`LMIndexerRetriever`] with the ID-only head, as a
    `GenerationMixin.generate(custom_generate=...)` decoding function: `generate()` has already run the encoder and
    repeated its outputs for the beams. Requests this loop does not cover run the generic loop instead (see the module
    docstring).

    Args:
        model ([`LMIndexerRetriever`]): The retriever.
        input_ids (`torch.LongTensor` of shape `(batch_size * num_beams, 1)`): The decoder start tokens.
        logits_processor (`LogitsProcessorList`): Empty (unconstrained) or the model's
            [`TrieConstrainedLogitsProcessor`].
        stopping_criteria (`StoppingCriteriaList`): `generate()`'s length and end-token criteria.
        generation_config (`GenerationConfig`): `num_beams` and `num_return_sequences` are read.
        model_kwargs: `encoder_outputs` (`(batch_size * num_beams, source_length, hidden_size)`) and
            `attention_mask`, repeated for the beams.

    Returns:
        `torch.LongTensor` of shape `(batch_size * num_return_sequences, 2 + num_levels)`: decoder start token, one
        ID token per level and `eos_token_id`, every query's best sequences first.
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
    trie = _trie_of(model, logits_processor)[0]
    num_beams = generation_config.num_beams
    num_return_sequences = generation_config.num_return_sequences
    batch_size = input_ids.shape[0] // num_beams
    # generate() repeated the encoder outputs for the beams: the first step needs one row per query.
    encoder_states = model_kwargs["encoder_outputs"].last_hidden_state[::num_beams]
    encoder_attention_mask = model_kwargs.get("attention_mask")
    if encoder_attention_mask is not None:
        encoder_attention_mask = encoder_attention_mask[::num_beams]
    start_tokens = input_ids[::num_beams]
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    no_prefix = start_tokens.new_zeros((batch_size, 0))

    head_states = _head_states(model, start_tokens, encoder_states, encoder_attention_mask, cache)
    log_probs = _code_log_probs(model, head_states, 0, trie, no_prefix)
    beam_scores, _, codes = _best_extensions(log_probs.new_zeros((batch_size, 1)), log_probs, num_beams)
    prefix_codes = codes.reshape(-1, 1)
    if model.config.num_levels > 1:
        cache.batch_repeat_interleave(num_beams)
        encoder_states = encoder_states.repeat_interleave(num_beams, dim=0)
        if encoder_attention_mask is not None:
            encoder_attention_mask = encoder_attention_mask.repeat_interleave(num_beams, dim=0)
    level_start_token_ids = torch.tensor(model.config.level_start_token_ids, device=prefix_codes.device)
    first_beam_rows = torch.arange(batch_size, device=prefix_codes.device)[:, None] * num_beams
    for level in range(1, model.config.num_levels):
        newest_tokens = prefix_codes[:, -1:] + level_start_token_ids[level - 1]
        head_states = _head_states(model, newest_tokens, encoder_states, encoder_attention_mask, cache)
        log_probs = _code_log_probs(model, head_states, level, trie, prefix_codes)
        beam_scores, parent_beams, codes = _best_extensions(beam_scores, log_probs, num_beams)
        parent_rows = (first_beam_rows + parent_beams).reshape(-1)
        prefix_codes = torch.cat([prefix_codes[parent_rows], codes.reshape(-1, 1)], dim=1)
        if level + 1 < model.config.num_levels:
            # Only the self-attention cache: the cross-attention rows of a query's beams are all the same.
            cache.self_attention_cache.reorder_cache(parent_rows)

    best_codes = prefix_codes.reshape(batch_size, num_beams, -1)[:, :num_return_sequences].reshape(
        batch_size * num_return_sequences, -1
    )
    end_tokens = torch.full_like(best_codes[:, :1], model.config.eos_token_id)
    start_tokens = start_tokens.repeat_interleave(num_return_sequences, dim=0)
    return torch.cat([start_tokens, best_codes + level_start_token_ids, end_tokens], dim=1)


__all__ = ["id_beam_search"]
