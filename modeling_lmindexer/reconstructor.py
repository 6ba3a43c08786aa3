"""The shallow reconstructor that rebuilds a document's tokens from its semantic ID."""

import torch
from torch import nn

from .configuration_lmindexer import LMIndexerConfig


def reconstruction_visibility_mask(
    attention_mask: torch.Tensor, num_id_vectors: int, mask_ratio: float, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """
    Which keys each reconstructed token may attend to.

    The ID vectors are always visible. Token `i` sees a random `1 - mask_ratio` share of the other (non-padding)
    tokens, never itself, so its content can only come from the ID and its context.

    Args:
        attention_mask (`torch.LongTensor` of shape `(batch_size, sequence_length)`): 1 for real tokens.
        num_id_vectors (`int`): Number P of ID vectors placed before the tokens among the keys.
        mask_ratio (`float`): Probability that a context token is hidden from a query.
        noise (`torch.FloatTensor` of shape `(batch_size, sequence_length, sequence_length)`, *optional*):
            Uniform [0, 1) values; query `i` does not see token `j` where `noise[:, i, j] < mask_ratio`. Drawn with
            `torch.rand` when absent.

    Returns:
        `torch.BoolTensor` of shape `(batch_size, sequence_length, num_id_vectors + sequence_length)`, `True` where
        attention is allowed.
    """
    batch_size, sequence_length = attention_mask.shape
    device = attention_mask.device
    token_visible = attention_mask.bool()[:, None, :].expand(batch_size, sequence_length, sequence_length)
    not_self = ~torch.eye(sequence_length, dtype=torch.bool, device=device)
    if noise is None:
        noise = torch.rand(batch_size, sequence_length, sequence_length, device=device)
    kept = noise >= mask_ratio
    id_visible = torch.ones(batch_size, sequence_length, num_id_vectors, dtype=torch.bool, device=device)
    return torch.cat([id_visible, token_visible & not_self & kept], dim=-1)


class LMIndexerReconstructorLayer(nn.Module):
    """Pre-norm cross-attention block: queries from the ID vector, keys and values from ID vectors and tokens."""

    def __init__(self, config: LMIndexerConfig):
        super().__init__()
        hidden_size = config.hidden_size
        self.num_heads = config.reconstructor_num_heads
        self.head_dim = hidden_size // self.num_heads
        self.query_norm = nn.LayerNorm(hidden_size)
        self.key_value_norm = nn.LayerNorm(hidden_size)
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.output = nn.Linear(hidden_size, hidden_size)
        self.feed_forward_norm = nn.LayerNorm(hidden_size)
        self.feed_forward = nn.Sequential(
            nn.Linear(hidden_size, config.reconstructor_intermediate_size),
            nn.GELU(),
            nn.Linear(config.reconstructor_intermediate_size, hidden_size),
        )
        self.dropout = nn.Dropout(config.reconstructor_dropout)

    def _split_heads(self, states: torch.Tensor) -> torch.Tensor:
        batch_size, length, _ = states.shape
        return states.view(batch_size, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, queries: torch.Tensor, keys_values: torch.Tensor, visibility: torch.Tensor) -> torch.Tensor:
        """
        Args:
            queries (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`)
            keys_values (`torch.FloatTensor` of shape `(batch_size, num_keys, hidden_size)`)
            visibility (`torch.BoolTensor` of shape `(batch_size, sequence_length, num_keys)`)

        Returns:
            `torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`.
        """
        normed_queries = self.query_norm(queries)
        normed_keys_values = self.key_value_norm(keys_values)
        attended = nn.functional.scaled_dot_product_attention(
            self._split_heads(self.query(normed_queries)),
            self._split_heads(self.key(normed_keys_values)),
            self._split_heads(self.value(normed_keys_values)),
            attn_mask=visibility[:, None],
            dropout_p=self.dropout.p if self.training else 0.0,
        )
        attended = attended.transpose(1, 2).reshape(queries.shape)
        hidden_states = queries + self.dropout(self.output(attended))
        return hidden_states + self.dropout(self.feed_forward(self.feed_forward_norm(hidden_states)))


class LMIndexerReconstructor(nn.Module):
    """
    Rebuilds every document token from the document's ID vectors and a masked view of the other tokens.

    The query at position `i` is the current level's ID vector plus a learned position embedding; keys and values are
    the ID vectors of all levels so far and the position-tagged token embeddings. Predictions go through the
    backbone's output head, outside this module. The reconstructor is only needed in training.
    """

    def __init__(self, config: LMIndexerConfig):
        super().__init__()
        self.position_embeddings = nn.Embedding(config.max_document_length, config.hidden_size)
        self.layers = nn.ModuleList(
            [LMIndexerReconstructorLayer(config) for _ in range(config.reconstructor_num_layers)]
        )
        self.final_norm = nn.LayerNorm(config.hidden_size)

    def forward(
        self,
        id_vectors: torch.Tensor,
        token_embeddings: torch.Tensor,
        attention_mask: torch.Tensor,
        mask_ratio: float,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            id_vectors (`torch.FloatTensor` of shape `(batch_size, num_id_vectors, hidden_size)`):
                Code vectors of the earlier levels followed by the current level's (quantised) vector.
            token_embeddings (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`):
                Input embeddings of the document tokens.
            attention_mask (`torch.LongTensor` of shape `(batch_size, sequence_length)`): 1 for real tokens.
            mask_ratio (`float`): Share of context tokens hidden from each prediction.
            noise (`torch.FloatTensor` of shape `(batch_size, sequence_length, sequence_length)`, *optional*):
                Uniform noise choosing the hidden tokens (see [`reconstruction_visibility_mask`]).

        Returns:
            `torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`: one state per token to predict.
        """
        sequence_length = token_embeddings.shape[1]
        positions = self.position_embeddings.weight[:sequence_length][None]
        queries = id_vectors[:, -1:, :] + positions
        keys_values = torch.cat([id_vectors, token_embeddings + positions], dim=1)
        visibility = reconstruction_visibility_mask(attention_mask, id_vectors.shape[1], mask_ratio, noise)
        hidden_states = queries
        for layer in self.layers:
            hidden_states = layer(hidden_states, keys_values, visibility)
        return self.final_norm(hidden_states)


__all__ = ["LMIndexerReconstructor", "LMIndexerReconstructorLayer", "reconstruction_visibility_mask"]
