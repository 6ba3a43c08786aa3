"""Reading the states a seq2seq model's output head receives, without computing its vocabulary logits."""

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


__all__ = ["skip_output_head"]
