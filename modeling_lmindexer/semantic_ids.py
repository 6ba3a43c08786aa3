"""
Semantic IDs: an immutable table between document ids and their code tuples, with ID tokens, statistics and storage.

A semantic ID is a tuple of T learned codes, one per level (level `t` has codebook size `K_t`), written as ID tokens
such as `<a_12><b_201><c_7>`. Documents whose learned codes coincide get one extra final code numbering them within
their group, so that every ID is unique. This file is standalone (standard library, numpy, torch and transformers'
logging only) because it is copied next to saved models for `trust_remote_code` loading.
"""

import json
import math
import os
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch
from transformers.utils import logging


logger = logging.get_logger(__name__)

LEVEL_LETTERS = string.ascii_lowercase
MAX_NUM_LEVELS = len(LEVEL_LETTERS)
SEMANTIC_IDS_FORMAT = "lmindexer-semantic-ids"
SEMANTIC_IDS_VERSION = 1
_ID_TOKEN_PATTERN = re.compile(r"<([a-z])_(0|[1-9][0-9]*)>")
_ID_STRING_PATTERN = re.compile(r"(?:<[a-z]_(?:0|[1-9][0-9]*)>)+")
_SAVED_FIELDS = ("codebook_sizes", "num_learned_levels", "collision_rate_before_resolution", "doc_ids", "codes")

PathLike = str | os.PathLike
CodeTuple = tuple[int, ...]


class RowGroups(NamedTuple):
    """
    Identical rows of an integer array, as `np.unique(rows, axis=0, return_inverse=True, return_counts=True)` gives.

    Args:
        order (`np.ndarray` of shape `(num_rows,)`): Stable lexicographic sort order of the rows.
        group_ids (`np.ndarray` of shape `(num_rows,)`): Group of every row; groups are numbered in sorted order.
        group_sizes (`np.ndarray` of shape `(num_groups,)`): Number of rows in every group.
    """

    order: np.ndarray
    group_ids: np.ndarray
    group_sizes: np.ndarray


def group_rows(rows: np.ndarray) -> RowGroups:
    """Group the identical rows of a non-empty `(num_rows, num_columns)` array (much faster than `np.unique`)."""
    order = np.lexsort(rows.T[::-1])
    sorted_rows = rows[order]
    starts_group = np.ones(len(rows), dtype=bool)
    np.any(sorted_rows[1:] != sorted_rows[:-1], axis=1, out=starts_group[1:])
    sorted_group_ids = np.cumsum(starts_group) - 1
    group_ids = np.empty_like(sorted_group_ids)
    group_ids[order] = sorted_group_ids
    return RowGroups(order, group_ids, np.bincount(sorted_group_ids))


def _rank_within_groups(groups: RowGroups) -> np.ndarray:
    """Position `(num_rows,)` of every row among the rows of its group, in row order (0, 1, 2, ...)."""
    group_starts = np.cumsum(groups.group_sizes) - groups.group_sizes
    ranks = np.empty_like(groups.order)
    ranks[groups.order] = np.arange(len(groups.order)) - group_starts[groups.group_ids[groups.order]]
    return ranks


def _shared_fraction(groups: RowGroups) -> float:
    """Fraction of rows that are identical to at least one other row."""
    return np.count_nonzero(groups.group_sizes[groups.group_ids] > 1) / len(groups.group_ids)


def first_shared_rows(groups: RowGroups) -> tuple[int, int] | None:
    """
    The first row (in row order) that is identical to another row, and the next row identical to it.

    Args:
        groups ([`RowGroups`]): The rows grouped by [`group_rows`].

    Returns:
        `tuple[int, int]` of the two row positions, or `None` when every row is unique.
    """
    if len(groups.group_sizes) == len(groups.group_ids):
        return None
    first_row = int(np.argmax(groups.group_sizes[groups.group_ids] > 1))
    return first_row, int(np.flatnonzero(groups.group_ids == groups.group_ids[first_row])[1])


def _code_rows(codes: np.ndarray) -> np.ndarray:
    """Non-empty codes `(N,)` or `(N, t)` as rows `(N, 1)` or `(N, t)`."""
    rows = np.asarray(codes)
    if rows.ndim not in (1, 2) or len(rows) == 0:
        raise ValueError(f"codes must be a non-empty (N,) or (N, t) array, got shape {rows.shape}")
    return rows.reshape(len(rows), -1)


def code_groups(codes: np.ndarray) -> np.ndarray:
    """
    Group documents by their code tuples, e.g. by the prefix of their first levels.

    Args:
        codes (`np.ndarray` of shape `(num_documents, num_levels)` or `(num_documents,)`): Non-empty integer codes;
            a 1-D array holds one level.

    Returns:
        `np.ndarray` of shape `(num_documents,)` and dtype `np.int64`: the group of every document, documents with the
        same codes sharing one, groups numbered 0, 1, ... in lexicographic code order.
    """
    return group_rows(_code_rows(codes)).group_ids


def prefix_collision_rate(codes: np.ndarray) -> float:
    """
    Fraction of documents whose code tuple is shared with at least one other document.

    Args:
        codes (`np.ndarray` of shape `(N, t)` or `(N,)`): Code prefixes of the documents.

    Returns:
        `float` in `[0, 1]`: 0 when every tuple is unique.
    """
    return _shared_fraction(group_rows(_code_rows(codes)))


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _format_token(level: int, code: int) -> str:
    return f"<{LEVEL_LETTERS[level]}_{code}>"


def _format_id_string(codes: Sequence[int]) -> str:
    return "".join(_format_token(level, code) for level, code in enumerate(codes))


def _register_doc_id(row_by_doc_id: dict[str, int], doc_id: str, position: int) -> None:
    """Add `doc_id` at `position` to `row_by_doc_id`, refusing non-strings and duplicates."""
    if not isinstance(doc_id, str):
        raise ValueError(f"doc_ids[{position}] must be a str, got {type(doc_id).__name__} ({doc_id!r})")
    first_position = row_by_doc_id.setdefault(doc_id, position)
    if first_position != position:
        raise ValueError(f"duplicate doc id {doc_id!r} at positions {first_position} and {position}")


def _index_doc_ids(doc_ids: Sequence[str]) -> dict[str, int]:
    """Map every doc id to its position, refusing non-strings and duplicates."""
    row_by_doc_id: dict[str, int] = {}
    for position, doc_id in enumerate(doc_ids):
        _register_doc_id(row_by_doc_id, doc_id, position)
    return row_by_doc_id


def _check_text(text: str, doc_id: str, position: int) -> None:
    if not isinstance(text, str):
        raise ValueError(f"text of document {doc_id!r} (position {position}) must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"text of document {doc_id!r} (position {position}) is empty or whitespace only")


def validate_corpus(doc_ids: Sequence[str], texts: Sequence[str]) -> None:
    """
    Check a corpus before encoding it, naming the first offending document.

    Args:
        doc_ids (`Sequence[str]`): Unique document ids.
        texts (`Sequence[str]`): Non-empty document texts, aligned with `doc_ids`.

    Raises:
        `ValueError`: For an empty corpus, different lengths, a non-string or duplicate doc id, or a non-string or
        empty (whitespace-only) text.
    """
    if len(doc_ids) != len(texts):
        raise ValueError(f"got {len(doc_ids)} doc ids but {len(texts)} texts")
    if len(texts) == 0:
        raise ValueError("the corpus is empty")
    row_by_doc_id: dict[str, int] = {}
    for position, (doc_id, text) in enumerate(zip(doc_ids, texts)):
        _register_doc_id(row_by_doc_id, doc_id, position)
        _check_text(text, doc_id, position)


def validate_codebook_sizes(codebook_sizes: Sequence[int]) -> None:
    """
    Check the codebook size of every ID level.

    Args:
        codebook_sizes (`Sequence[int]`): Number of codes of every level.

    Raises:
        `ValueError`: For an empty sequence, more than 26 levels, a non-integer size or a size below 2 (naming its
        index).
    """
    if len(codebook_sizes) == 0:
        raise ValueError("codebook_sizes is empty: a semantic ID needs at least one level")
    if len(codebook_sizes) > MAX_NUM_LEVELS:
        raise ValueError(
            f"codebook_sizes has {len(codebook_sizes)} entries: at most {MAX_NUM_LEVELS} levels are supported (ID "
            "tokens use the letters a-z)"
        )
    for level, size in enumerate(codebook_sizes):
        if not _is_int(size):
            raise ValueError(f"codebook_sizes[{level}] must be an int, got {type(size).__name__} ({size!r})")
        if size < 2:
            raise ValueError(f"codebook_sizes[{level}] = {size}: every level needs at least 2 codes")


def _as_code_array(codes: np.ndarray | torch.Tensor | Sequence[Sequence[int]]) -> np.ndarray:
    """A fresh `np.int64` array of the given codes, refusing ragged, non-2-D and non-integer input."""
    if isinstance(codes, torch.Tensor):
        codes = codes.detach().cpu().numpy()
    try:
        array = np.asarray(codes)
    except ValueError as error:
        raise ValueError(f"codes must be a rectangular (num_documents, num_levels) array: {error}") from error
    if array.ndim != 2:
        raise ValueError(f"codes must be 2-D of shape (num_documents, num_levels), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"codes must be integers, got dtype {array.dtype}")
    return array.astype(np.int64)


def check_codes(codes: np.ndarray, codebook_sizes: Sequence[int], doc_ids: Sequence[str] | None = None) -> None:
    """
    Check a table of IDs: the codebook sizes, and `codes` against them and against the doc ids.

    Args:
        codes (`np.ndarray` of shape `(num_rows, num_levels)`): `np.int64` codes, one ID per row.
        codebook_sizes (`Sequence[int]`): Codebook size of every level.
        doc_ids (`Sequence[str]`, *optional*): The document of every row; errors then name documents, not rows.

    Raises:
        `ValueError`: For invalid codebook sizes (see [`validate_codebook_sizes`]), no rows, a row count other than
        the number of doc ids, a column count other than the number of levels, or a code out of its level's range
        (naming the first).
    """
    validate_codebook_sizes(codebook_sizes)
    if doc_ids is not None and codes.shape[0] != len(doc_ids):
        raise ValueError(f"codes has {codes.shape[0]} rows but there are {len(doc_ids)} doc ids")
    if codes.shape[0] == 0:
        raise ValueError("codes is empty: a table of semantic IDs needs at least one document")
    if codes.shape[1] != len(codebook_sizes):
        raise ValueError(f"codes has {codes.shape[1]} columns but codebook_sizes has {len(codebook_sizes)} entries")
    out_of_range = (codes < 0) | (codes >= np.asarray(codebook_sizes, dtype=np.int64))
    if out_of_range.any():
        row, level = divmod(int(np.argmax(out_of_range.ravel())), codes.shape[1])
        code = (
            f"codes[{row}, {level}] = {codes[row, level]}"
            if doc_ids is None
            else f"code {codes[row, level]} of document {doc_ids[row]!r} at level {level}"
        )
        raise ValueError(f"{code} is out of range for codebook size {codebook_sizes[level]}")


def _check_num_learned_levels(num_learned_levels: int, num_levels: int) -> None:
    if not _is_int(num_learned_levels):
        raise ValueError(f"num_learned_levels must be an int, got {type(num_learned_levels).__name__}")
    if not max(1, num_levels - 1) <= num_learned_levels <= num_levels:
        raise ValueError(
            f"num_learned_levels = {num_learned_levels} does not fit codes with {num_levels} levels: it must be "
            f"{num_levels} (no collision level) or {num_levels - 1} (one collision level), and at least 1"
        )


def _check_collision_rate(collision_rate: float) -> None:
    is_number = isinstance(collision_rate, (int, float)) and not isinstance(collision_rate, bool)
    if not is_number or not 0 <= collision_rate <= 1:
        raise ValueError(f"collision_rate_before_resolution must be a number in [0, 1], got {collision_rate!r}")


def _check_level(level: int, num_levels: int) -> None:
    if not 0 <= level < num_levels:
        raise ValueError(f"level {level} is out of range for a semantic ID with {num_levels} levels")


def check_fits_codebook_sizes(
    semantic_ids: "SemanticIDs", codebook_sizes: Sequence[int], source: str, model_name: str
) -> None:
    """
    Check that an ID table has exactly `codebook_sizes` (every level, the collision level included), the ID tokens of
    a generative model.

    Raises:
        `ValueError`: Naming `source`, the model (`model_name`) and the first level that does not fit.
    """
    if semantic_ids.num_levels != len(codebook_sizes):
        raise ValueError(
            f"{source}: the IDs have {semantic_ids.num_levels} levels but the {model_name} has {len(codebook_sizes)} "
            f"(codebook sizes {list(codebook_sizes)})."
        )
    for level, (size, expected) in enumerate(zip(semantic_ids.codebook_sizes, codebook_sizes)):
        if size != expected:
            raise ValueError(
                f"{source}: level {level} has codebook size {size} but the {model_name}'s level {level} has "
                f"{expected}; these IDs do not fit this {model_name}'s ID tokens."
            )


def code_usage_perplexity(codes: np.ndarray) -> float:
    """
    Exponential of the entropy of a code distribution: the effective number of codes in use.

    Args:
        codes (`np.ndarray` of shape `(num_documents,)`): Non-negative integer codes of one level.

    Returns:
        `float` between 1 (one code for everyone) and the number of distinct codes (uniform use).
    """
    counts = np.bincount(codes)
    probabilities = counts[counts > 0] / len(codes)
    return math.exp(-float(np.sum(probabilities * np.log(probabilities))))


class SemanticIDs:
    """
    An immutable table between document ids and their semantic IDs (code tuples).

    Args:
        doc_ids (`Sequence[str]`): Unique document ids, one per row of `codes`.
        codes (`np.ndarray`, `torch.LongTensor` or nested sequence of shape `(num_documents, num_levels)`):
            The code of every document at every level.
        codebook_sizes (`Sequence[int]`): Codebook size of every level (at least 2 each), `num_levels` entries.
        num_learned_levels (`int`, *optional*): Number of leading learned levels; defaults to `num_levels`. When it
            is `num_levels - 1`, the last level is the collision code and every full ID must be unique.
        collision_rate_before_resolution (`float`, *optional*): Fraction of documents whose learned codes are shared
            with another document; computed from the learned levels when not given.

    Raises:
        `ValueError`: For an empty table, a non-string or duplicate doc id, codes of the wrong shape or out of range,
        invalid codebook sizes (see [`validate_codebook_sizes`]) or duplicate IDs despite a collision level.
    """

    def __init__(
        self,
        doc_ids: Sequence[str],
        codes: np.ndarray | torch.Tensor | Sequence[Sequence[int]],
        codebook_sizes: Sequence[int],
        num_learned_levels: int | None = None,
        *,
        collision_rate_before_resolution: float | None = None,
    ):
        codes = _as_code_array(codes)
        check_codes(codes, codebook_sizes, doc_ids)
        num_learned_levels = len(codebook_sizes) if num_learned_levels is None else num_learned_levels
        _check_num_learned_levels(num_learned_levels, len(codebook_sizes))
        if collision_rate_before_resolution is not None:
            _check_collision_rate(collision_rate_before_resolution)
            collision_rate_before_resolution = float(collision_rate_before_resolution)
        self._row_by_doc_id = _index_doc_ids(doc_ids)
        self._doc_ids = tuple(doc_ids)
        codes.flags.writeable = False
        self._codes = codes
        self._codebook_sizes = tuple(int(size) for size in codebook_sizes)
        self._num_learned_levels = int(num_learned_levels)
        self._collision_rate = collision_rate_before_resolution
        self._row_by_code: dict[CodeTuple, int] | None = None
        if self.has_collision_code:
            self._check_unique_ids()

    def _check_unique_ids(self) -> None:
        shared = first_shared_rows(group_rows(self._codes))
        if shared is not None:
            first_row, second_row = shared
            raise ValueError(
                f"documents {self._doc_ids[first_row]!r} and {self._doc_ids[second_row]!r} have the same semantic ID "
                f"{self._code_tuple(first_row)} despite the collision level"
            )

    @classmethod
    def from_learned_codes(
        cls,
        doc_ids: Sequence[str],
        codes: np.ndarray | torch.Tensor | Sequence[Sequence[int]],
        codebook_sizes: Sequence[int],
    ) -> "SemanticIDs":
        """
        Build unique IDs from learned codes, appending a collision level when some documents share their codes.

        The documents of a group with identical learned codes get the extra codes 0, 1, 2, ... in corpus order; the
        collision level's codebook size is the largest group size. Without any collision, no level is appended.

        Args:
            doc_ids (`Sequence[str]`): Unique document ids.
            codes (`np.ndarray`, `torch.LongTensor` or nested sequence of shape `(num_documents, num_learned_levels)`):
                The learned code of every document at every level.
            codebook_sizes (`Sequence[int]`): Codebook size of every learned level.

        Returns:
            [`SemanticIDs`] with `num_learned_levels` or `num_learned_levels + 1` levels.
        """
        learned_codes = _as_code_array(codes)
        check_codes(learned_codes, codebook_sizes, doc_ids)
        groups = group_rows(learned_codes)
        collision_rate = _shared_fraction(groups)
        largest_group_size = int(groups.group_sizes.max())
        if largest_group_size == 1:
            return cls(doc_ids, learned_codes, codebook_sizes, collision_rate_before_resolution=collision_rate)
        logger.info(
            f"{collision_rate:.2%} of the documents share their learned codes (groups of up to {largest_group_size}); "
            "appending a collision level to make every ID unique."
        )
        return cls(
            doc_ids,
            np.column_stack([learned_codes, _rank_within_groups(groups)]),
            [*codebook_sizes, largest_group_size],
            num_learned_levels=len(codebook_sizes),
            collision_rate_before_resolution=collision_rate,
        )

    def extend(
        self, doc_ids: Sequence[str], learned_codes: np.ndarray | torch.Tensor | Sequence[Sequence[int]]
    ) -> "SemanticIDs":
        """
        A new table with more documents after these, whose IDs it leaves unchanged.

        A new document whose learned codes are shared by an indexed document or an earlier new one gets the next
        collision code of its group (one more than the largest in the group, so numbering continues as in
        [`from_learned_codes`]); the collision level's codebook grows when a group outgrows it. A table without a
        collision level gains one (code 0 for every indexed document, a warning says so) only when a new document
        collides.

        Args:
            doc_ids (`Sequence[str]`): Ids of the new documents, unique and not in this table.
            learned_codes (`np.ndarray`, `torch.LongTensor` or nested sequence of shape
                `(num_new_documents, num_learned_levels)`): Their learned codes.

        Returns:
            [`SemanticIDs`]: these rows first, in order, then the new ones.

        Raises:
            `ValueError`: For a doc id already in the table or repeated, or codes of the wrong shape or out of range.
        """
        learned_codes = _as_code_array(learned_codes)
        num_learned_levels = self._num_learned_levels
        learned_sizes = self._codebook_sizes[:num_learned_levels]
        check_codes(learned_codes, learned_sizes, doc_ids)
        _index_doc_ids(doc_ids)
        for position, doc_id in enumerate(doc_ids):
            if doc_id in self._row_by_doc_id:
                raise ValueError(f"doc id {doc_id!r} (new document {position}) is already in the table")
        all_learned_codes = np.concatenate([self._codes[:, :num_learned_levels], learned_codes])
        groups = group_rows(all_learned_codes)
        indexed_collision_codes = (
            self._codes[:, -1] if self.has_collision_code else np.zeros(len(self), dtype=np.int64)
        )
        largest_indexed_code = np.full(len(groups.group_sizes), -1, dtype=np.int64)
        np.maximum.at(largest_indexed_code, groups.group_ids[: len(self)], indexed_collision_codes)
        new_collision_codes = (
            largest_indexed_code[groups.group_ids[len(self) :]] + 1 + _rank_within_groups(group_rows(learned_codes))
        )
        collision_rate = _shared_fraction(groups)
        if not self.has_collision_code and not new_collision_codes.any():
            return type(self)(
                [*self._doc_ids, *doc_ids],
                all_learned_codes,
                learned_sizes,
                collision_rate_before_resolution=collision_rate,
            )
        if not self.has_collision_code:
            logger.warning(
                "New documents share their learned codes with others: a collision level is appended to every ID "
                "(code 0 for the indexed documents, whose IDs gain one final token)."
            )
        collision_size = max(
            self._codebook_sizes[-1] if self.has_collision_code else 1, int(new_collision_codes.max()) + 1
        )
        return type(self)(
            [*self._doc_ids, *doc_ids],
            np.column_stack([all_learned_codes, np.concatenate([indexed_collision_codes, new_collision_codes])]),
            [*learned_sizes, collision_size],
            num_learned_levels=num_learned_levels,
            collision_rate_before_resolution=collision_rate,
        )

    @property
    def doc_ids(self) -> list[str]:
        """The document ids in row order."""
        return list(self._doc_ids)

    @property
    def codes(self) -> np.ndarray:
        """Read-only `np.int64` array of shape `(num_documents, num_levels)`."""
        return self._codes.view()

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        """Codebook size of every level, the collision level included."""
        return self._codebook_sizes

    @property
    def num_levels(self) -> int:
        """Length of every ID, the collision level included."""
        return len(self._codebook_sizes)

    @property
    def num_learned_levels(self) -> int:
        """Number of leading learned levels."""
        return self._num_learned_levels

    @property
    def has_collision_code(self) -> bool:
        """Whether the last level numbers documents whose learned codes coincide."""
        return self._num_learned_levels < self.num_levels

    @property
    def collision_rate_before_resolution(self) -> float:
        """Fraction of documents whose learned codes are shared with at least one other document."""
        if self._collision_rate is None:
            self._collision_rate = prefix_collision_rate(self._codes[:, : self._num_learned_levels])
        return self._collision_rate

    def __len__(self) -> int:
        return len(self._doc_ids)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._row_by_doc_id

    def __getitem__(self, doc_id: str) -> CodeTuple:
        return self._code_tuple(self._row(doc_id))

    def __iter__(self) -> Iterator[tuple[str, CodeTuple]]:
        return zip(self._doc_ids, map(tuple, self._codes.tolist()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SemanticIDs):
            return NotImplemented
        return (
            self._doc_ids == other._doc_ids
            and self._codebook_sizes == other._codebook_sizes
            and self._num_learned_levels == other._num_learned_levels
            and np.array_equal(self._codes, other._codes)
        )

    def __repr__(self) -> str:
        return (
            f"SemanticIDs(num_documents={len(self)}, codebook_sizes={self._codebook_sizes}, "
            f"num_learned_levels={self._num_learned_levels})"
        )

    def rows_of(self, doc_ids: Sequence[str]) -> np.ndarray:
        """The rows `(len(doc_ids),)` of documents in the table (the order of `doc_ids` and `codes`), -1 for an
        unknown doc id."""
        return np.asarray([self._row_by_doc_id.get(doc_id, -1) for doc_id in doc_ids], dtype=np.int64)

    def _row(self, doc_id: str) -> int:
        if doc_id not in self._row_by_doc_id:
            raise KeyError(f"unknown doc id {doc_id!r}")
        return self._row_by_doc_id[doc_id]

    def _code_tuple(self, row: int) -> CodeTuple:
        return tuple(self._codes[row].tolist())

    def doc_id_for(self, codes: Sequence[int]) -> str:
        """
        The document with the given semantic ID.

        Args:
            codes (`Sequence[int]` of length `num_levels`): A full code tuple.

        Returns:
            `str`: Its doc id; if several documents share it (only possible without a collision level), the first in
            row order.

        Raises:
            `KeyError`: When no document has this ID.
        """
        if self._row_by_code is None:
            rows = range(len(self) - 1, -1, -1)
            self._row_by_code = dict(zip(map(tuple, self._codes[::-1].tolist()), rows))
        code_tuple = tuple(int(code) for code in codes)
        if code_tuple not in self._row_by_code:
            raise KeyError(f"no document has the semantic ID {code_tuple}")
        return self._doc_ids[self._row_by_code[code_tuple]]

    def to_dict(self) -> dict[str, CodeTuple]:
        """A plain `{doc_id: code tuple}` dict."""
        return dict(iter(self))

    @staticmethod
    def level_token(level: int, code: int) -> str:
        """
        The ID token of a code, e.g. level 0 code 12 -> `"<a_12>"`.

        Args:
            level (`int`): ID level, 0 to 25 (letters a to z).
            code (`int`): Non-negative code.

        Returns:
            `str`: The token.
        """
        _check_level(level, MAX_NUM_LEVELS)
        if not _is_int(code) or code < 0:
            raise ValueError(f"code {code!r} at level {level} must be a non-negative int")
        return _format_token(level, code)

    def id_tokens(self, doc_id: str) -> list[str]:
        """The `num_levels` ID tokens of a document, e.g. `["<a_12>", "<b_201>", "<c_7>"]`."""
        return [_format_token(level, code) for level, code in enumerate(self[doc_id])]

    def id_string(self, doc_id: str) -> str:
        """The ID of a document as one string of tokens, e.g. `"<a_12><b_201><c_7>"`."""
        return _format_id_string(self[doc_id])

    def all_id_tokens(self) -> list[str]:
        """Every token of every level, in level then code order: the vocabulary a generative retriever must add."""
        return [_format_token(level, code) for level, size in enumerate(self._codebook_sizes) for code in range(size)]

    def parse_id_string(self, id_string: str) -> CodeTuple:
        """
        The code tuple of an ID string such as `"<a_12><b_201><c_7>"`.

        Args:
            id_string (`str`): Exactly `num_levels` tokens, one per level in order.

        Returns:
            `tuple[int, ...]` of length `num_levels`.

        Raises:
            `ValueError`: For malformed tokens, missing, extra or misordered levels, or codes out of range.
        """
        if _ID_STRING_PATTERN.fullmatch(id_string) is None:
            raise ValueError(f"malformed semantic ID {id_string!r}: expected tokens like '<a_12><b_7>'")
        tokens = _ID_TOKEN_PATTERN.findall(id_string)
        levels = "".join(letter for letter, _ in tokens)
        if levels != LEVEL_LETTERS[: self.num_levels]:
            raise ValueError(
                f"malformed semantic ID {id_string!r}: expected the levels {LEVEL_LETTERS[: self.num_levels]!r} in "
                f"order, got {levels!r}"
            )
        codes = tuple(int(code) for _, code in tokens)
        for level, (code, size) in enumerate(zip(codes, self._codebook_sizes)):
            if code >= size:
                raise ValueError(
                    f"malformed semantic ID {id_string!r}: code {code} at level {level} is out of range for "
                    f"codebook size {size}"
                )
        return codes

    def code_usage_perplexity(self, level: int) -> float:
        """
        Perplexity (exp of the entropy) of the code distribution at one level: 1 when every document has the same
        code, `K_level` when the codes are used uniformly.

        Args:
            level (`int`): ID level.

        Returns:
            `float` between 1 and `codebook_sizes[level]`.
        """
        _check_level(level, self.num_levels)
        return code_usage_perplexity(self._codes[:, level])

    def level_prefix_groups(self, level: int) -> np.ndarray:
        """
        Group documents by their first `level` codes, e.g. to draw hard negatives that share a prefix.

        Args:
            level (`int`): Prefix length, 0 to `num_levels`.

        Returns:
            `np.ndarray` of shape `(num_documents,)` and dtype `np.int64`: the group of every document, groups
            numbered 0, 1, ... in lexicographic prefix order (all zeros for `level=0`).
        """
        _check_level(level, self.num_levels + 1)
        if level == 0:
            return np.zeros(len(self), dtype=np.int64)
        return group_rows(self._codes[:, :level]).group_ids

    def save(self, path: PathLike) -> None:
        """
        Write the table as JSON (`{"format": "lmindexer-semantic-ids", "version": 1, "codebook_sizes": ...}`).

        Args:
            path (`str` or `os.PathLike`): Output file.
        """
        content = {
            "format": SEMANTIC_IDS_FORMAT,
            "version": SEMANTIC_IDS_VERSION,
            "codebook_sizes": list(self._codebook_sizes),
            "num_learned_levels": self._num_learned_levels,
            "collision_rate_before_resolution": self.collision_rate_before_resolution,
            "doc_ids": list(self._doc_ids),
            "codes": self._codes.tolist(),
        }
        with open(path, "w", encoding="utf-8") as file:
            json.dump(content, file, ensure_ascii=False)

    @classmethod
    def load(cls, path: PathLike) -> "SemanticIDs":
        """
        Read a table written by [`~SemanticIDs.save`].

        Args:
            path (`str` or `os.PathLike`): JSON file.

        Returns:
            [`SemanticIDs`], equal to the saved one.

        Raises:
            `ValueError`: Naming the file, when it is not valid JSON, not in this format or fails any table check.
        """
        try:
            with open(path, encoding="utf-8") as file:
                content = json.load(file)
            return cls._from_saved_content(content)
        except ValueError as error:
            raise ValueError(f"{path}: invalid semantic IDs file: {error}") from error

    @classmethod
    def _from_saved_content(cls, content: object) -> "SemanticIDs":
        if not isinstance(content, dict) or content.get("format") != SEMANTIC_IDS_FORMAT:
            raise ValueError(f"not a {SEMANTIC_IDS_FORMAT!r} JSON object")
        if content.get("version") != SEMANTIC_IDS_VERSION:
            raise ValueError(f"unsupported version {content.get('version')!r}, expected {SEMANTIC_IDS_VERSION}")
        missing = [field for field in _SAVED_FIELDS if field not in content]
        if missing:
            raise ValueError(f"missing fields {missing}")
        for field in ("codebook_sizes", "doc_ids", "codes"):
            if not isinstance(content[field], list):
                raise ValueError(f"{field!r} must be a list, got {type(content[field]).__name__}")
        return cls(
            content["doc_ids"],
            content["codes"],
            content["codebook_sizes"],
            content["num_learned_levels"],
            collision_rate_before_resolution=content["collision_rate_before_resolution"],
        )

    def to_jsonl(self, path: PathLike, texts: Mapping[str, str] | Sequence[str] | None = None) -> None:
        """
        Write one JSON line per document: `{"doc_id": ..., "codes": [...], "id": "<a_1><b_2>", "text": ...}`.

        Args:
            path (`str` or `os.PathLike`): Output file.
            texts (`Mapping[str, str]` or `Sequence[str]`, *optional*): Document texts, by doc id or in row order;
                the `"text"` field is written only when given.
        """
        row_texts = self._texts_in_row_order(texts)
        with open(path, "w", encoding="utf-8") as file:
            for row, (doc_id, codes) in enumerate(zip(self._doc_ids, self._codes.tolist())):
                record = {"doc_id": doc_id, "codes": codes, "id": _format_id_string(codes)}
                if row_texts is not None:
                    record["text"] = row_texts[row]
                file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def _texts_in_row_order(self, texts: Mapping[str, str] | Sequence[str] | None) -> Sequence[str] | None:
        if isinstance(texts, Mapping):
            missing = next((doc_id for doc_id in self._doc_ids if doc_id not in texts), None)
            if missing is not None:
                raise ValueError(f"texts has no entry for doc id {missing!r}")
            return [texts[doc_id] for doc_id in self._doc_ids]
        if texts is not None and len(texts) != len(self):
            raise ValueError(f"got {len(texts)} texts for {len(self)} documents")
        return texts

    @classmethod
    def from_jsonl(
        cls, path: PathLike, codebook_sizes: Sequence[int], num_learned_levels: int | None = None
    ) -> "SemanticIDs":
        """
        Read a table written by [`~SemanticIDs.to_jsonl`] (blank lines are skipped).

        Args:
            path (`str` or `os.PathLike`): JSON Lines file.
            codebook_sizes (`Sequence[int]`): Codebook size of every level, the collision level included.
            num_learned_levels (`int`, *optional*): Number of learned levels; defaults to all levels.

        Returns:
            [`SemanticIDs`]; its collision rate is computed from the learned levels.

        Raises:
            `ValueError`: Naming the file and line of a malformed line, or the file when a table check fails.
        """
        validate_codebook_sizes(codebook_sizes)
        doc_ids, codes = [], []
        with open(path, encoding="utf-8") as file:
            for line_number, line in enumerate(file, start=1):
                if not line.strip():
                    continue
                try:
                    doc_id, row_codes = _parse_jsonl_record(line, len(codebook_sizes))
                except ValueError as error:
                    raise ValueError(f"{path}, line {line_number}: {error}") from error
                doc_ids.append(doc_id)
                codes.append(row_codes)
        try:
            return cls(doc_ids, np.array(codes, dtype=np.int64), codebook_sizes, num_learned_levels)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error


def _parse_jsonl_record(line: str, num_levels: int) -> tuple[str, list[int]]:
    """The doc id and codes of one line written by [`SemanticIDs.to_jsonl`], checking its fields."""
    record = json.loads(line)
    if not isinstance(record, dict) or "doc_id" not in record or "codes" not in record:
        raise ValueError("expected a JSON object with 'doc_id' and 'codes'")
    doc_id, codes = record["doc_id"], record["codes"]
    if not isinstance(doc_id, str):
        raise ValueError(f"'doc_id' must be a str, got {type(doc_id).__name__}")
    if not isinstance(codes, list) or len(codes) != num_levels or not all(map(_is_int, codes)):
        raise ValueError(f"'codes' of {doc_id!r} must be a list of {num_levels} ints, got {codes!r}")
    if "id" in record and record["id"] != _format_id_string(codes):
        raise ValueError(f"'id' {record['id']!r} of {doc_id!r} does not match its codes {codes}")
    return doc_id, codes
