"""
Attention for beam search over a shared prompt: the beams of one prompt read its keys and values once, not a copy each.

A decoder-only model that continues `batch_size` prompts with `num_beams` beams each would normally hold a key/value
cache of `batch_size * num_beams` rows of the whole prompt: copied `num_beams` times when the beams start, and again
(concatenated, reordered) at every step, although every beam of a prompt shares it. For the few tokens of a semantic
ID after a long history this copying, not the model, is what costs. Here the prompt's cache stays at `batch_size`
rows ([`SharedPrefix`]); the beams' cache holds only their generated tokens, and [`shared_prefix_attention`] (an
attention implementation of transformers' `AttentionInterface`) attends to both with one softmax, which is exactly
the attention over the concatenated keys.
"""

from dataclasses import dataclass

import torch
from transformers import AttentionInterface, DynamicCache


SHARED_PREFIX_ATTENTION = "lmindexer_shared_prefix"


@dataclass
class SharedPrefix:
    """
    The cached keys and values of the prompts that every beam continues.

    Args:
        keys (`list[torch.Tensor]`): Per layer, `(batch_size, num_key_value_heads, prompt_length, head_dim)`.
        values (`list[torch.Tensor]`): Per layer, of the same shape.
        key_mask (`torch.BoolTensor` of shape `(batch_size, prompt_length)`): False on the prompts' padding.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    key_mask: torch.Tensor

    @classmethod
    def from_cache(cls, cache: DynamicCache, attention_mask: torch.Tensor) -> "SharedPrefix":
        """The prefix held by the `cache` of a prompt pass; `attention_mask` `(batch_size, prompt_length)`."""
        return cls(
            keys=[layer.keys for layer in cache.layers],
            values=[layer.values for layer in cache.layers],
            key_mask=attention_mask.bool(),
        )


def _per_prompt(states: torch.Tensor, batch_size: int) -> torch.Tensor:
    """`(batch_size * beams, heads, q, d)` -> `(batch_size, heads, beams * q, d)`: a prompt's beams side by side."""
    rows, heads, length, dim = states.shape
    beams = rows // batch_size
    return states.reshape(batch_size, beams, heads, length, dim).transpose(1, 2).reshape(batch_size, heads, -1, dim)


def _per_beam(states: torch.Tensor, beams: int) -> torch.Tensor:
    """The inverse of [`_per_prompt`]: `(batch_size, heads, beams * q, d)` -> `(batch_size * beams, heads, q, d)`."""
    batch_size, heads, _, dim = states.shape
    per_beam = states.reshape(batch_size, heads, beams, -1, dim).transpose(1, 2)
    return per_beam.reshape(batch_size * beams, heads, -1, dim)


def shared_prefix_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    shared_prefix: SharedPrefix | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """
    Causal attention of the beams' newest tokens to their prompt's shared cache and to their own generated tokens.

    Args:
        module: The attention module (its `layer_idx` selects the prefix's layer).
        query (`torch.Tensor` of shape `(batch_size * num_beams, num_heads, query_length, head_dim)`): The newest
            `query_length` generated tokens of every beam, beams of one prompt in consecutive rows.
        key, value (`torch.Tensor` of shape `(batch_size * num_beams, num_key_value_heads, generated_length,
            head_dim)`): Every generated token so far (the beams' cache after its update), the newest last.
        attention_mask: Not used: the prefix's padding is `shared_prefix.key_mask`, generated tokens are causal.
        shared_prefix ([`SharedPrefix`]): The prompts' cache, passed through the model's keyword arguments.

    Returns:
        The attention output `(batch_size * num_beams, query_length, num_heads, head_dim)` and no weights.
    """
    if shared_prefix is None:
        raise ValueError(
            f"The '{SHARED_PREFIX_ATTENTION}' attention needs `shared_prefix=` in the model call; this model does not "
            "pass its keyword arguments on to its attention layers."
        )
    prefix_keys = shared_prefix.keys[module.layer_idx]
    prefix_values = shared_prefix.values[module.layer_idx]
    batch_size, num_heads = prefix_keys.shape[0], query.shape[1]
    num_beams = query.shape[0] // batch_size
    groups = num_heads // key.shape[1]
    if groups > 1:
        prefix_keys, prefix_values, key, value = (
            states.repeat_interleave(groups, dim=1) for states in (prefix_keys, prefix_values, key, value)
        )
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    query_length, generated_length = query.shape[2], key.shape[2]

    prefix_scores = _per_prompt(query, batch_size) @ prefix_keys.transpose(-1, -2) * scaling
    prefix_scores = prefix_scores.masked_fill(~shared_prefix.key_mask[:, None, None, :], float("-inf"))
    own_scores = query @ key.transpose(-1, -2) * scaling
    # Query i of the newest `query_length` tokens sits at generated position `generated_length - query_length + i`.
    positions = torch.arange(generated_length, device=query.device)
    future = positions[None, :] > positions[generated_length - query_length :, None]
    own_scores = own_scores.masked_fill(future, float("-inf"))
    prefix_length = prefix_scores.shape[-1]
    weights = torch.cat([_per_beam(prefix_scores, num_beams), own_scores], dim=-1).float().softmax(dim=-1)
    weights = weights.to(value.dtype)
    output = _per_beam(_per_prompt(weights[..., :prefix_length], batch_size) @ prefix_values, num_beams)
    output = output + weights[..., prefix_length:] @ value
    return output.transpose(1, 2).contiguous(), None


AttentionInterface.register(SHARED_PREFIX_ATTENTION, shared_prefix_attention)


__all__ = ["SHARED_PREFIX_ATTENTION", "SharedPrefix", "shared_prefix_attention"]
