"""
The slow reference trie: valid semantic IDs as nested Python dicts of token ids (the GENRE way), for
`generate(prefix_allowed_tokens_fn=...)`. The tests check [`TrieConstrainedLogitsProcessor`] against it and
`benchmarks/bench_decoding.py` times it; it is not part of the public API.
"""

from collections.abc import Sequence

import numpy as np
import torch

from .id_tokens import IDTokenLayout
from .logits_process import check_decoder_start_length
from .semantic_ids import _as_code_array, check_codes


class DictTrie:
    """
    The valid IDs as nested Python dicts of token ids, walked once per row and step by
    `generate(prefix_allowed_tokens_fn=...)`. Use [`TrieConstrainedLogitsProcessor`] for real work; this class exists
    to check it and to benchmark against it. Both follow the [`IDTokenLayout`] and allow the same tokens at every step.

    Args:
        codes (`np.ndarray`, `torch.LongTensor` or nested sequence of shape `(num_ids, num_levels)`):
            The valid IDs.
        codebook_sizes (`Sequence[int]`):
            Codebook size of every level.
        text_vocab_size (`int`):
            Number of text tokens before the first ID token.
        eos_token_id (`int`):
            The token that ends an ID.
        pad_token_id (`int`, *optional*):
            The token that follows `eos_token_id` in finished rows.
        decoder_start_length (`int`, *optional*, defaults to 1):
            Number of tokens in every row before the first ID token.
    """

    def __init__(
        self,
        codes: np.ndarray | torch.Tensor | Sequence[Sequence[int]],
        codebook_sizes: Sequence[int],
        text_vocab_size: int,
        eos_token_id: int,
        pad_token_id: int | None = None,
        decoder_start_length: int = 1,
    ):
        codes = _as_code_array(codes)
        check_codes(codes, codebook_sizes)
        layout = IDTokenLayout(text_vocab_size, tuple(codebook_sizes), eos_token_id, pad_token_id)
        check_decoder_start_length(decoder_start_length)
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        self.decoder_start_length = decoder_start_length
        self.root: dict[int, dict] = {}
        for id_tokens in layout.codes_to_tokens(codes).tolist():
            node = self.root
            for token in id_tokens:
                node = node.setdefault(token, {})

    def prefix_allowed_tokens_fn(self, batch_id: int, sent: torch.LongTensor) -> list[int]:
        """
        The tokens allowed after one row, for `generate(prefix_allowed_tokens_fn=...)`.

        Args:
            batch_id (`int`): Index of the input in the batch (unused: every input shares the trie).
            sent (`torch.LongTensor` of shape `(sequence_length,)`): The row so far, decoder start tokens included.

        Returns:
            `list[int]`: The ID tokens that continue the prefix inside the trie; `[eos_token_id]` after a full ID or a
            prefix outside the trie; `[pad_token_id]` (or `[eos_token_id]` without a pad token) for a finished row.
        """
        generated = sent[self.decoder_start_length :].tolist()
        if self.eos_token_id in generated or (self.pad_token_id is not None and self.pad_token_id in generated):
            return [self.eos_token_id if self.pad_token_id is None else self.pad_token_id]
        node = self.root
        for token in generated:
            node = node.get(token, {})
        return list(node) or [self.eos_token_id]


__all__ = ["DictTrie"]
