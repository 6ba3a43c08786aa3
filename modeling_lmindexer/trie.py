"""
A prefix tree (trie) of valid semantic IDs stored as a few flat tensors, for constrained decoding on any device.

The layout follows the sparse transition matrix of Google's STATIC: the nodes of every depth are the sorted unique
prefixes of that length, stored as compressed sparse rows. A node's children are a contiguous, code-sorted slice of
the next depth, so one batched gather answers "which codes may follow?" for every beam at once, and a batched binary
search inside those slices finds a prefix's node. No Python loop runs over IDs or over the batch.
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from transformers.utils import logging

from .semantic_ids import (
    SemanticIDs,
    _as_code_array,
    check_codes,
    check_fits_codebook_sizes,
    first_shared_rows,
    group_rows,
    validate_codebook_sizes,
)


logger = logging.get_logger(__name__)


def _smallest_code_dtype(codebook_size: int) -> torch.dtype:
    """The smallest integer dtype that holds the codes `0 .. codebook_size - 1`."""
    for dtype in (torch.uint8, torch.int16, torch.int32):
        if codebook_size - 1 <= torch.iinfo(dtype).max:
            return dtype
    return torch.int64


def _smallest_index_dtype(max_value: int) -> torch.dtype:
    """`torch.int32` when it holds `max_value`, else `torch.int64`."""
    return torch.int32 if max_value <= torch.iinfo(torch.int32).max else torch.int64


class IDTrie(nn.Module):
    """
    The set of valid semantic IDs as a tensor trie: which codes may follow a prefix, which node a prefix is, and which
    document a full ID belongs to, for whole batches at once.

    Depth `t` (0 to `num_levels - 1`) holds one node per distinct prefix of length `t + 1`, in lexicographic order.
    The children of a node are a contiguous slice of the next depth, sorted by code. The root (the empty prefix) is
    node 0 of a virtual depth -1. The tensors are registered as non-persistent buffers, so `trie.to(device)` (or moving
    a model that holds the trie) moves them, and they stay out of the model's `state_dict`: build the trie again from
    the [`SemanticIDs`] after loading.

    Build it with [`~IDTrie.from_codes`] or [`~IDTrie.from_semantic_ids`] rather than calling the constructor.

    Args:
        node_codes (`Sequence[torch.Tensor]`):
            `num_levels` tensors; entry `t` has shape `(num_nodes(t),)` and holds the last code of every node at
            depth `t`, in the smallest integer dtype that holds the codes of level `t`.
        child_offsets (`Sequence[torch.Tensor]`):
            `num_levels` tensors; entry `t` has shape `(num_nodes(t - 1) + 1,)` (`(2,)` for the root at `t = 0`): the
            children of node `i` at depth `t - 1` are the nodes `child_offsets[t][i]` to `child_offsets[t][i + 1] - 1`
            at depth `t`. `torch.int32` when it fits, else `torch.int64`.
        leaf_doc_rows (`torch.Tensor` of shape `(num_ids,)`):
            Document row of every leaf (full ID) at depth `num_levels - 1`.
        codebook_sizes (`Sequence[int]`):
            Codebook size of every level, the collision level included.
    """

    def __init__(
        self,
        node_codes: Sequence[torch.Tensor],
        child_offsets: Sequence[torch.Tensor],
        leaf_doc_rows: torch.Tensor,
        codebook_sizes: Sequence[int],
    ):
        super().__init__()
        validate_codebook_sizes(codebook_sizes)
        num_levels = len(codebook_sizes)
        if len(node_codes) != num_levels or len(child_offsets) != num_levels:
            raise ValueError(
                f"expected {num_levels} node_codes and child_offsets tensors (one per level), got {len(node_codes)} "
                f"and {len(child_offsets)}"
            )
        if len(leaf_doc_rows) != len(node_codes[-1]):
            raise ValueError(f"got {len(leaf_doc_rows)} leaf_doc_rows for {len(node_codes[-1])} leaves")
        self._codebook_sizes = tuple(int(size) for size in codebook_sizes)
        self._max_children = []
        for depth, (codes, offsets) in enumerate(zip(node_codes, child_offsets)):
            self.register_buffer(f"node_codes_{depth}", codes, persistent=False)
            self.register_buffer(f"child_offsets_{depth}", offsets, persistent=False)
            self._max_children.append(int((offsets[1:] - offsets[:-1]).max()))
        self.register_buffer("leaf_doc_rows", leaf_doc_rows, persistent=False)

    @classmethod
    def from_codes(
        cls, codes: np.ndarray | torch.Tensor | Sequence[Sequence[int]], codebook_sizes: Sequence[int]
    ) -> "IDTrie":
        """
        Build the trie of a set of IDs in one vectorised pass (a lexicographic sort and a few comparisons).

        Args:
            codes (`np.ndarray`, `torch.LongTensor` or nested sequence of shape `(num_ids, num_levels)`):
                One unique ID per row; row `i` is reported as document row `i` by [`~IDTrie.doc_rows`].
            codebook_sizes (`Sequence[int]`): Codebook size of every level (at least 2 each).

        Returns:
            [`IDTrie`] on the CPU.

        Raises:
            `ValueError`: For codes that are not a non-empty 2-D integer array, do not match `codebook_sizes`, are out
            of range, or contain the same ID twice (naming both rows); for invalid codebook sizes.
        """
        codes = _as_code_array(codes)
        check_codes(codes, codebook_sizes)
        groups = group_rows(codes)
        shared = first_shared_rows(groups)
        if shared is not None:
            raise ValueError(
                f"rows {shared[0]} and {shared[1]} of codes are the same ID {tuple(codes[shared[0]].tolist())}: every "
                "ID in a trie must be unique"
            )
        order = groups.order
        sorted_codes = codes[order]

        num_ids = len(sorted_codes)
        starts_node = np.zeros(num_ids, dtype=bool)
        starts_node[0] = True
        parent_first_rows = np.zeros(1, dtype=np.int64)
        node_codes, child_offsets = [], []
        for level, codebook_size in enumerate(codebook_sizes):
            starts_node[1:] |= sorted_codes[1:, level] != sorted_codes[:-1, level]
            first_rows = np.flatnonzero(starts_node)
            offsets = np.append(np.searchsorted(first_rows, parent_first_rows), len(first_rows))
            node_codes.append(
                torch.from_numpy(sorted_codes[first_rows, level]).to(_smallest_code_dtype(codebook_size))
            )
            child_offsets.append(torch.from_numpy(offsets).to(_smallest_index_dtype(len(first_rows))))
            parent_first_rows = first_rows
        leaf_doc_rows = torch.from_numpy(order).to(_smallest_index_dtype(num_ids - 1))
        return cls(node_codes, child_offsets, leaf_doc_rows, codebook_sizes)

    @classmethod
    def from_semantic_ids(cls, semantic_ids: SemanticIDs) -> "IDTrie":
        """
        Build the trie of every ID in a [`SemanticIDs`] table; document rows are the table's rows (`doc_ids` order).

        Raises:
            `ValueError`: When two documents share an ID (only possible in a table without a collision level).
        """
        return cls.from_codes(semantic_ids.codes, semantic_ids.codebook_sizes)

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """Codebook size of every level, the collision level included."""
        return self._codebook_sizes

    @property
    def num_levels(self) -> int:
        """Length of every ID."""
        return len(self._codebook_sizes)

    @property
    def nbytes(self) -> int:
        """Memory held by the trie's tensors, in bytes."""
        return sum(buffer.numel() * buffer.element_size() for buffer in self.buffers())

    @property
    def bytes_per_id(self) -> float:
        """`nbytes` divided by the number of IDs."""
        return self.nbytes / len(self)

    def __len__(self) -> int:
        return len(self.leaf_doc_rows)

    def extra_repr(self) -> str:
        return f"num_ids={len(self)}, codebook_sizes={self._codebook_sizes}, bytes_per_id={self.bytes_per_id:.1f}"

    def num_nodes(self, depth: int) -> int:
        """Number of distinct prefixes of length `depth` (1 for the empty prefix, `len(self)` for full IDs)."""
        self._check_prefix_length(depth, self.num_levels)
        return 1 if depth == 0 else len(self._node_codes(depth - 1))

    def _node_codes(self, depth: int) -> torch.Tensor:
        return getattr(self, f"node_codes_{depth}")

    def _child_offsets(self, depth: int) -> torch.Tensor:
        return getattr(self, f"child_offsets_{depth}")

    def _check_prefix_length(self, length: int, max_length: int) -> None:
        if not 0 <= length <= max_length:
            raise ValueError(f"prefix length {length} is out of range 0 to {max_length} for {self.num_levels} levels")

    def _as_prefix_codes(self, prefix_codes: torch.Tensor, max_length: int) -> torch.LongTensor:
        if prefix_codes.dim() != 2 or prefix_codes.is_floating_point() or prefix_codes.is_complex():
            raise ValueError(
                f"prefix codes must be an integer tensor of shape (batch_size, prefix_length), got dtype "
                f"{prefix_codes.dtype} and shape {tuple(prefix_codes.shape)}"
            )
        self._check_prefix_length(prefix_codes.shape[1], max_length)
        return prefix_codes.long()

    def _child_ranges(self, parents: torch.LongTensor, depth: int) -> tuple[torch.LongTensor, torch.LongTensor]:
        """
        First and one-past-last child `(batch_size,)` at `depth` of every parent `(batch_size,)` at `depth - 1`;
        parents of -1 (missing prefixes) get an empty range.
        """
        offsets = self._child_offsets(depth)
        existing_parents = parents.clamp(min=0)
        starts = offsets[existing_parents].long()
        ends = torch.where(parents >= 0, offsets[existing_parents + 1].long(), starts)
        return starts, ends

    def _find_children(self, parents: torch.LongTensor, codes: torch.LongTensor, depth: int) -> torch.LongTensor:
        """
        The node `(batch_size,)` at `depth` reached from every parent `(batch_size,)` at `depth - 1` by its code
        `(batch_size,)`, or -1 when that child (or the parent) does not exist: a batched binary search in the
        code-sorted child ranges.
        """
        node_codes = self._node_codes(depth)
        last_node = len(node_codes) - 1
        low, high = self._child_ranges(parents, depth)
        ends = high
        for _ in range(self._max_children[depth].bit_length()):
            middle = (low + high) // 2
            searching = low < high
            go_right = searching & (node_codes[middle.clamp(max=last_node)].long() < codes)
            low = torch.where(go_right, middle + 1, low)
            high = torch.where(searching & ~go_right, middle, high)
        found = (low < ends) & (node_codes[low.clamp(max=last_node)].long() == codes)
        return torch.where(found, low, -1)

    def node_index(self, prefix_codes: torch.LongTensor) -> torch.LongTensor:
        """
        The node of every prefix, walking the trie depth by depth.

        Args:
            prefix_codes (`torch.LongTensor` of shape `(batch_size, prefix_length)`):
                Prefixes of one common length, 0 to `num_levels`, on the trie's device.

        Returns:
            `torch.LongTensor` of shape `(batch_size,)`: the index of every prefix among the `num_nodes(prefix_length)`
            distinct prefixes of that length in lexicographic order (0 for the empty prefix), or -1 for a prefix that
            no ID starts with (any code, even out of range or negative, is allowed in the input).
        """
        prefix_codes = self._as_prefix_codes(prefix_codes, self.num_levels)
        nodes = torch.zeros(len(prefix_codes), dtype=torch.long, device=prefix_codes.device)
        for depth in range(prefix_codes.shape[1]):
            nodes = self._find_children(nodes, prefix_codes[:, depth], depth)
        return nodes

    def allowed_next(self, prefix_codes: torch.LongTensor) -> torch.BoolTensor:
        """
        Which codes of the next level keep every prefix inside the trie.

        Args:
            prefix_codes (`torch.LongTensor` of shape `(batch_size, prefix_length)`):
                Prefixes of one common length, 0 to `num_levels - 1`, on the trie's device.

        Returns:
            `torch.BoolTensor` of shape `(batch_size, codebook_sizes[prefix_length])`: `True` for the codes that some
            ID continues the prefix with; all `False` for a prefix that no ID starts with.
        """
        prefix_codes = self._as_prefix_codes(prefix_codes, self.num_levels - 1)
        depth = prefix_codes.shape[1]
        starts, ends = self._child_ranges(self.node_index(prefix_codes), depth)
        children = starts[:, None] + torch.arange(self._max_children[depth], device=starts.device)
        is_child = children < ends[:, None]
        node_codes = self._node_codes(depth)
        child_codes = node_codes[children.clamp(max=len(node_codes) - 1)].long()
        codebook_size = self._codebook_sizes[depth]
        # Non-children write into an extra last column, dropped afterwards.
        allowed = torch.zeros(len(prefix_codes), codebook_size + 1, dtype=torch.bool, device=starts.device)
        allowed.scatter_(1, torch.where(is_child, child_codes, codebook_size), True)
        return allowed[:, :codebook_size]

    def _check_full_ids(self, codes: torch.LongTensor) -> None:
        if codes.dim() != 2 or codes.shape[1] != self.num_levels:
            raise ValueError(f"expected IDs of shape (batch_size, {self.num_levels}), got {tuple(codes.shape)}")

    def contains(self, codes: torch.LongTensor) -> torch.BoolTensor:
        """
        Whether every row is a valid ID.

        Args:
            codes (`torch.LongTensor` of shape `(batch_size, num_levels)`): Full IDs, on the trie's device.

        Returns:
            `torch.BoolTensor` of shape `(batch_size,)`.
        """
        self._check_full_ids(codes)
        return self.node_index(codes) >= 0

    def doc_rows(self, codes: torch.LongTensor) -> torch.LongTensor:
        """
        The document row of every ID: its row in the codes the trie was built from (the [`SemanticIDs`] row).

        Args:
            codes (`torch.LongTensor` of shape `(batch_size, num_levels)`): Full IDs, on the trie's device.

        Returns:
            `torch.LongTensor` of shape `(batch_size,)`: the row, or -1 for a row that is not a valid ID.
        """
        self._check_full_ids(codes)
        leaves = self.node_index(codes)
        rows = self.leaf_doc_rows[leaves.clamp(min=0)].long()
        return torch.where(leaves >= 0, rows, -1)


class ConstrainedIDsMixin:
    """
    The ID table of a generative model that decodes only valid IDs ([`LMIndexerRetriever`], [`LMIndexerRecommender`]):
    `semantic_ids` (assigning checks the IDs against `config.codebook_sizes`) and its prefix tree `trie`, rebuilt on
    the model's device at every assignment. The model sets `self._semantic_ids = None` and `self.trie = None` in
    `__init__` and names itself and what its IDs stand for in messages with the class attributes `ids_owner` and
    `ids_items`.
    """

    ids_owner = "model"
    ids_items = "items"

    @property
    def semantic_ids(self) -> SemanticIDs | None:
        """The IDs of the items the model generates; assigning new ones calls `set_semantic_ids`."""
        return self._semantic_ids

    @semantic_ids.setter
    def semantic_ids(self, semantic_ids: SemanticIDs) -> None:
        self.set_semantic_ids(semantic_ids)

    def set_semantic_ids(self, semantic_ids: SemanticIDs, source: str = "semantic_ids") -> None:
        """
        Use a new ID table (the config's codebook sizes) and rebuild the prefix tree `self.trie` on the model's device.

        Args:
            semantic_ids ([`SemanticIDs`]): The IDs of the documents or items.
            source (`str`): Where the IDs come from, for error messages.

        Raises:
            `ValueError`: Naming `source`, when the IDs have another number of levels or another codebook size at
            some level.
        """
        check_fits_codebook_sizes(semantic_ids, self.config.codebook_sizes, source, self.ids_owner)
        self._semantic_ids = semantic_ids
        self.trie = IDTrie.from_semantic_ids(semantic_ids).to(self.device)

    def _require_semantic_ids(self) -> SemanticIDs:
        if self._semantic_ids is None:
            raise ValueError(
                f"The {self.ids_owner} has no semantic IDs (a folder saved without semantic_ids.json?): call "
                "`set_semantic_ids(...)` first."
            )
        return self._semantic_ids

    def _ranking_size(self, k: int, num_beams: int | None, batch_size: int) -> tuple[int, int]:
        """
        How many IDs a ranking call (`recommend`, `retrieve`) returns per request and with how many beams: `k`, or
        every ID when there are fewer (with a warning), and `num_beams` beams (by default `k`), at least as many as
        the IDs returned.

        Raises:
            `ValueError`: For `k < 1`, `batch_size < 1`, or a model without IDs.
        """
        semantic_ids = self._require_semantic_ids()
        if k < 1 or batch_size < 1:
            raise ValueError(f"k = {k} and batch_size = {batch_size} must both be at least 1.")
        returned = min(k, len(semantic_ids))
        if k > returned:
            logger.warning(f"k = {k} is more than the {returned} {self.ids_items}: ranking all of them.")
        return returned, max(returned, num_beams or k)
