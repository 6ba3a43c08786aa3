"""
Where the ID tokens sit in a generative model's vocabulary: the one object that every user of the layout asks.

A model that generates semantic IDs (the retriever, the recommender) has a vocabulary of `text_vocab_size` text or
special tokens followed by one token per code per level: code `c` of level `t` is token
`text_vocab_size + level_offsets[t] + c`, with `level_offsets[t] = sum(codebook_sizes[:t])`. A generated ID is
`num_levels` ID tokens (level 0 first) then `eos_token_id`; a finished row continues with `pad_token_id`
(`eos_token_id` when there is no pad token). Like `semantic_ids.py`, which it
imports, it is copied next to saved models for `trust_remote_code` loading.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from .semantic_ids import validate_codebook_sizes


CodeArray = TypeVar("CodeArray", np.ndarray, torch.Tensor)

# The label of positions without a target: the cross-entropy's `ignore_index`, as in transformers.
IGNORE_INDEX = -100


def loss_denominator(is_target: torch.Tensor, num_items_in_batch: int | torch.Tensor | None) -> torch.Tensor:
    """
    What a summed token loss is divided by: `num_items_in_batch` when the `Trainer` passes it (the targets of the
    whole global batch, so that gradient accumulation and several processes give the loss of one large batch),
    otherwise the number of targets in `is_target` (`torch.bool`, any shape), at least 1.
    """
    if num_items_in_batch is not None:
        return torch.as_tensor(num_items_in_batch, device=is_target.device)
    return is_target.sum().clamp(min=1)


def check_share(name: str, value: float) -> None:
    """Raises `ValueError` naming `name` when `value` (a share or probability: smoothing, dropout) is outside
    `[0, 1)`."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} = {value}: a share in [0, 1) is needed.")


def smoothed_cross_entropy(scores: torch.Tensor, targets: torch.LongTensor, smoothing: float = 0.0) -> torch.Tensor:
    """
    The cross-entropy of each target under scores where `-inf` marks the tokens its position cannot produce, with
    `smoothing` (in `[0, 1)`) of the target's probability spread evenly over the tokens the position can produce.
    torch's `label_smoothing` spreads it over every token, which gives an infinite loss next to `-inf` scores.

    Args:
        scores (`torch.FloatTensor` of shape `(num_targets, num_tokens)`): Scores, `-inf` for impossible tokens.
        targets (`torch.LongTensor` of shape `(num_targets,)`): Token index of every target, in `0 .. num_tokens - 1`.
        smoothing (`float`, *optional*, defaults to 0.0): Share of the probability spread over the possible tokens.

    Returns:
        `torch.FloatTensor` of shape `(num_targets,)`, `float32`: every target's loss.
    """
    log_probs = torch.log_softmax(scores.float(), dim=-1)
    losses = -log_probs.gather(-1, targets[:, None])[:, 0]
    if smoothing:
        possible = log_probs.isfinite()
        uniform = -log_probs.masked_fill(~possible, 0.0).sum(-1) / possible.sum(-1)
        losses = (1.0 - smoothing) * losses + smoothing * uniform
    return losses


@dataclass(frozen=True)
class IDTokenLayout:
    """
    The token ids of the codes of every ID level, and which tokens each generation step may produce.

    Args:
        text_vocab_size (`int`): Number of tokens before the first ID token (text or special tokens).
        codebook_sizes (`tuple[int, ...]`): Number of codes of every ID level, the collision level included.
        eos_token_id (`int`): The token that ends an ID, one of the first `text_vocab_size` tokens.
        pad_token_id (`int`, *optional*): The token that follows `eos_token_id` in finished rows, one of the first
            `text_vocab_size` tokens.

    Example:

    ```python
    >>> layout = IDTokenLayout(text_vocab_size=100, codebook_sizes=(4, 5, 3), eos_token_id=1, pad_token_id=0)
    >>> layout.id_token_ids([2, 0, 1])  # [100 + 2, 104 + 0, 109 + 1, eos]
    [102, 104, 110, 1]
    >>> layout.step_token_range(1)  # the codes of level 1
    (104, 109)
    ```
    """

    text_vocab_size: int
    codebook_sizes: tuple[int, ...]
    eos_token_id: int
    pad_token_id: int | None = None

    def __post_init__(self):
        validate_codebook_sizes(self.codebook_sizes)
        object.__setattr__(self, "codebook_sizes", tuple(int(size) for size in self.codebook_sizes))
        if self.text_vocab_size < 0:
            raise ValueError(f"text_vocab_size must be non-negative, got {self.text_vocab_size}")
        for name in ("eos_token_id", "pad_token_id"):
            token_id = getattr(self, name)
            if token_id is not None and not 0 <= token_id < self.text_vocab_size:
                raise ValueError(
                    f"{name} = {token_id} must be a text token, i.e. in the range 0 to {self.text_vocab_size - 1} "
                    "before the ID tokens"
                )

    @property
    def num_levels(self) -> int:
        """Length of every ID, the collision level included."""
        return len(self.codebook_sizes)

    @property
    def vocab_size(self) -> int:
        """Size of the whole vocabulary: the text tokens, then the ID tokens of every level."""
        return self.text_vocab_size + sum(self.codebook_sizes)

    @property
    def level_start_token_ids(self) -> tuple[int, ...]:
        """`level_start_token_ids[t]`: the token id of code 0 of level `t`."""
        return tuple(int(start) for start in self.text_vocab_size + np.cumsum((0, *self.codebook_sizes[:-1])))

    @property
    def finish_token_id(self) -> int:
        """The token of a finished row: `pad_token_id`, or `eos_token_id` without a pad token."""
        return self.eos_token_id if self.pad_token_id is None else self.pad_token_id

    def _check_level(self, level: int) -> None:
        if not 0 <= level < self.num_levels:
            raise ValueError(f"level = {level} is outside the {self.num_levels} ID levels (0-based).")

    def level_token_ids(self, level: int) -> range:
        """The token ids of the codes `0 .. codebook_sizes[level] - 1` of one level."""
        self._check_level(level)
        start = self.level_start_token_ids[level]
        return range(start, start + self.codebook_sizes[level])

    def step_token_range(self, step: int) -> tuple[int, int]:
        """
        The tokens `start .. end - 1` that generation step `step` may produce (step 0 generates the level-0 token):
        the codes of level `step`, then `eos_token_id`, then the finish token.
        """
        if step < 0:
            raise ValueError(f"step = {step} must be non-negative.")
        if step < self.num_levels:
            start = self.level_start_token_ids[step]
            return start, start + self.codebook_sizes[step]
        token_id = self.eos_token_id if step == self.num_levels else self.finish_token_id
        return token_id, token_id + 1

    def _level_starts_like(self, values: CodeArray, first_level: int) -> CodeArray:
        num_levels = values.shape[-1]
        if first_level < 0 or first_level + num_levels > self.num_levels:
            raise ValueError(
                f"{num_levels} levels from level {first_level} do not fit IDs of {self.num_levels} levels."
            )
        starts = self.level_start_token_ids[first_level : first_level + num_levels]
        if isinstance(values, torch.Tensor):
            return torch.tensor(starts, dtype=torch.long, device=values.device)
        return np.asarray(starts, dtype=np.int64)

    def codes_to_tokens(self, codes: CodeArray, first_level: int = 0) -> CodeArray:
        """
        The ID tokens of codes.

        Args:
            codes (`torch.LongTensor` or `np.ndarray` of shape `(..., num_codes)`): Codes of the levels
                `first_level .. first_level + num_codes - 1`, in order.
            first_level (`int`): Level of the first column.

        Returns:
            Token ids of the same shape and kind (tensor on the same device, or array).
        """
        return codes + self._level_starts_like(codes, first_level)

    def tokens_to_codes(self, token_ids: CodeArray, first_level: int = 0) -> CodeArray:
        """
        The codes of ID tokens, the inverse of [`~IDTokenLayout.codes_to_tokens`]; tokens of another level give
        codes out of that level's range (not checked here: [`IDTrie`] lookups treat them as absent).

        Args:
            token_ids (`torch.LongTensor` or `np.ndarray` of shape `(..., num_tokens)`): ID tokens of the levels
                `first_level .. first_level + num_tokens - 1`, in order.
            first_level (`int`): Level of the first column.

        Returns:
            Codes of the same shape and kind.
        """
        return token_ids - self._level_starts_like(token_ids, first_level)

    def id_token_ids(self, codes: Sequence[int]) -> list[int]:
        """The tokens one whole ID is generated as: one ID token per level, then `eos_token_id`."""
        if len(codes) != self.num_levels:
            raise ValueError(f"got {len(codes)} codes for IDs of {self.num_levels} levels")
        return [*(int(token) for token in self.codes_to_tokens(np.asarray(codes, dtype=np.int64))), self.eos_token_id]


__all__ = ["IGNORE_INDEX", "IDTokenLayout", "check_share", "loss_denominator", "smoothed_cross_entropy"]
