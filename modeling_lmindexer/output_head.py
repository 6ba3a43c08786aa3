"""
The ID-only output heads' two parts: reading the states a model's output head receives, without computing its
vocabulary logits, and scoring states against a few rows in `float32`.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def skip_output_head(output_embeddings: nn.Module) -> Iterator[list[torch.Tensor]]:
    """
    Within this context the backbone's output head receives zero decoder positions, so a forward pass computes no
    vocabulary logits; the states the head would have read, `(batch_size, target_length, hidden_size)`, are appended
    to the yielded list instead. They already carry whatever the backbone applies before its output projection (T5's
    `d_model ** -0.5` rescaling with tied embeddings, BERT's prediction-head transform).
    """
    head_inputs = []

    def keep_states_drop_positions(module: nn.Module, args: tuple) -> tuple:
        head_inputs.append(args[0])
        return (args[0][..., :0, :], *args[1:])

    handle = output_embeddings.register_forward_pre_hook(keep_states_drop_positions)
    try:
        yield head_inputs
    finally:
        handle.remove()


def float32_linear(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """
    `inputs @ weight.T + bias` computed in `float32`, whatever the dtype of the tensors and outside any autocast.

    Code scores feed an argmax, a softmax or a beam ranking: in bfloat16 (8 bits of mantissa) near-tied codes swap
    and the centring by prefix-group means cancels most of the bits, while the matrices are small (a codebook, one
    level's output rows, a batch's similarities), so full precision costs little. Gradients reach the tensors in
    their own dtype.

    Args:
        inputs (`torch.Tensor` of shape `(..., hidden_size)`): The states to score.
        weight (`torch.Tensor` of shape `(num_rows, hidden_size)`): The rows to score them against.
        bias (`torch.Tensor` of shape `(num_rows,)`, *optional*): Added to the scores.

    Returns:
        `torch.FloatTensor` of shape `(..., num_rows)`, `float32`.
    """
    with torch.autocast(inputs.device.type, enabled=False):
        return nn.functional.linear(inputs.float(), weight.float(), None if bias is None else bias.float())


def output_rows_scores(
    head_states: torch.Tensor, output_embeddings: nn.Module, start: int, end: int | None = None
) -> torch.Tensor:
    """
    Scores `(..., end - start)` in `float32` ([`float32_linear`]) of states `(..., hidden_size)` against the rows
    `start .. end - 1` of a model's output head (its `weight` and, when it has one, its `bias`): the logits of those
    tokens alone, for ID-only heads that score one level's codes instead of the whole vocabulary.
    """
    bias = getattr(output_embeddings, "bias", None)
    return float32_linear(head_states, output_embeddings.weight[start:end], None if bias is None else bias[start:end])


__all__ = ["float32_linear", "output_rows_scores", "skip_output_head"]
