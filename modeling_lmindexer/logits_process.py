"""
The logits processor that restricts `generate()` to valid semantic IDs.

Token layout ([`IDTokenLayout`]): a model's vocabulary is `text_vocab_size` text tokens followed by one token per code
per level. A decoded ID is the decoder start token(s) (or the prompt), exactly `num_levels` ID tokens (level 0 first),
`eos_token_id`, then padding for finished rows.
"""

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import LogitsProcessor
from transformers.generation.logits_process import LOGITS_PROCESSOR_INPUTS_DOCSTRING
from transformers.utils import add_start_docstrings

from .id_tokens import IDTokenLayout
from .trie import IDTrie


def check_decoder_start_length(decoder_start_length: int) -> None:
    if decoder_start_length < 0:
        raise ValueError(f"decoder_start_length must be non-negative, got {decoder_start_length}")


@contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the block with `num_threads` torch intra-op threads, restoring the setting after; `None` keeps it."""
    previous = torch.get_num_threads()
    if num_threads is None or num_threads == previous:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class TrieConstrainedLogitsProcessor(LogitsProcessor):
    r"""
    [`LogitsProcessor`] that only lets `generate()` produce valid semantic IDs: at every step it masks (sets to
    `-inf`) every token that would leave the [`IDTrie`], for all rows at once with a few tensor operations.

    Each row may continue with the ID tokens of the codes that some ID continues its prefix with; after `num_levels`
    ID tokens only `eos_token_id`; once finished (`eos_token_id` or `pad_token_id` generated) only `pad_token_id`
    (`eos_token_id` when there is no pad token). A row whose prefix left the trie, which only another processor can
    cause, may only end with `eos_token_id`. No row is ever fully masked: if an earlier processor already set all the
    allowed tokens of a row to `-inf`, they get a score of 0.

    Works with greedy search, sampling and beam search (sampled or not), passed as
    `generate(..., logits_processor=LogitsProcessorList([processor]))`. It is the fast counterpart of
    `generate(prefix_allowed_tokens_fn=...)` with a dict-of-dicts trie (`modeling_lmindexer.dict_trie.DictTrie`, the
    reference it is tested and benchmarked against) and masks the same tokens.

    Args:
        trie ([`IDTrie`]):
            The valid IDs, on the device that generation runs on.
        text_vocab_size (`int`):
            Number of text tokens before the first ID token.
        eos_token_id (`int`):
            The token that ends an ID, a text token.
        pad_token_id (`int`, *optional*):
            The token that follows `eos_token_id` in finished rows, a text token.
        decoder_start_length (`int`, *optional*, defaults to 1):
            Number of tokens in every row before the first ID token (the decoder start token of encoder-decoder
            models, or the prompt length of decoder-only models).
        num_threads (`int`, *optional*, defaults to 1):
            Torch intra-op threads for the masking (the previous setting is restored after every call); `None` keeps
            torch's setting. The masking is a few memory-bound operations: split over threads, each waits for the
            slowest, which stalls whenever another process holds a core (see `benchmarks/bench_decoding.py`).

    Examples:

    ```python
    >>> from transformers import LogitsProcessorList
    >>> from modeling_lmindexer import IDTrie, TrieConstrainedLogitsProcessor

    >>> trie = IDTrie.from_semantic_ids(semantic_ids)
    >>> processor = TrieConstrainedLogitsProcessor(trie, text_vocab_size=32100, eos_token_id=1, pad_token_id=0)
    >>> outputs = model.generate(
    ...     **inputs, num_beams=20, num_return_sequences=20, max_new_tokens=trie.num_levels + 1,
    ...     logits_processor=LogitsProcessorList([processor]),
    ... )
    ```
    """

    def __init__(
        self,
        trie: IDTrie,
        text_vocab_size: int,
        eos_token_id: int,
        pad_token_id: int | None = None,
        decoder_start_length: int = 1,
        num_threads: int | None = 1,
    ):
        check_decoder_start_length(decoder_start_length)
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads = {num_threads}: give at least 1 thread, or None for torch's setting.")
        self.trie = trie
        self.layout = IDTokenLayout(text_vocab_size, trie.codebook_sizes, eos_token_id, pad_token_id)
        self.decoder_start_length = decoder_start_length
        self.num_threads = num_threads

    def _allowed_id_tokens(self, generated: torch.LongTensor) -> tuple[torch.LongTensor, torch.BoolTensor]:
        """
        The ID tokens `(num_tokens,)` of the next level and which of them `(batch_size, num_tokens)` every row of
        `generated` `(batch_size, num_generated)` may continue with (no tokens after `num_levels` ID tokens).
        """
        num_generated = generated.shape[1]
        if num_generated >= self.trie.num_levels:
            no_tokens = torch.zeros(0, dtype=torch.long, device=generated.device)
            return no_tokens, torch.zeros(len(generated), 0, dtype=torch.bool, device=generated.device)
        level_tokens = self.layout.level_token_ids(num_generated)
        level_tokens = torch.arange(level_tokens.start, level_tokens.stop, device=generated.device)
        return level_tokens, self.trie.allowed_next(self.layout.tokens_to_codes(generated))

    @add_start_docstrings(LOGITS_PROCESSOR_INPUTS_DOCSTRING)
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        with torch_threads(self.num_threads):
            return self._mask(input_ids, scores)

    def _mask(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        num_generated = input_ids.shape[1] - self.decoder_start_length
        if num_generated < 0:
            raise ValueError(
                f"input_ids has {input_ids.shape[1]} tokens, fewer than decoder_start_length = "
                f"{self.decoder_start_length}"
            )
        layout = self.layout
        if scores.shape[-1] < layout.vocab_size:
            raise ValueError(
                f"scores cover {scores.shape[-1]} tokens but the ID tokens end at {layout.vocab_size} "
                f"(text_vocab_size = {layout.text_vocab_size} + codebook sizes {layout.codebook_sizes})"
            )
        generated = input_ids[:, self.decoder_start_length :]
        is_finished = (generated == layout.eos_token_id).any(dim=-1, keepdim=True)
        if layout.pad_token_id is not None:
            is_finished |= (generated == layout.pad_token_id).any(dim=-1, keepdim=True)

        # Only a few columns can be allowed: the next level's ID tokens, EOS and the finish token.
        id_tokens, allowed_id_tokens = self._allowed_id_tokens(generated)
        allowed_id_tokens &= ~is_finished
        # Full IDs, and prefixes outside the trie, may only end.
        must_end = ~allowed_id_tokens.any(dim=-1, keepdim=True) & ~is_finished
        if layout.finish_token_id == layout.eos_token_id:
            end_tokens, allowed_end_tokens = [layout.eos_token_id], must_end | is_finished
        else:
            end_tokens = [layout.eos_token_id, layout.finish_token_id]
            allowed_end_tokens = torch.cat([must_end, is_finished], dim=-1)
        candidate_tokens = torch.cat([id_tokens, torch.tensor(end_tokens, device=scores.device)])
        allowed_candidates = torch.cat([allowed_id_tokens, allowed_end_tokens], dim=-1)

        candidate_scores = scores[:, candidate_tokens].masked_fill(~allowed_candidates, -math.inf)
        # When an earlier processor already set every allowed token to -inf, allow them evenly (as transformers'
        # `PrefixConstrainedLogitsProcessor` does) rather than return a row without any possible token.
        is_dead_end = candidate_scores.amax(dim=-1, keepdim=True).isneginf()
        candidate_scores = torch.where(is_dead_end & allowed_candidates, 0.0, candidate_scores)
        scores_processed = torch.full_like(scores, -math.inf)
        scores_processed[:, candidate_tokens] = candidate_scores
        return scores_processed
